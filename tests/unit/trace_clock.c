/*
 * trace_clock.c: the clock of start_ns (trace_lttng.c) against
 * CLOCK_MONOTONIC.  Every reading taken between two clock_gettime reads must
 * fall between them, give or take the error the library documents (a few ns;
 * TOLERANCE_NS leaves room), over long enough for many per-thread pairs to
 * expire and be renewed, on two threads.
 */
#include <pthread.h>
#include <stdint.h>
#include <time.h>

#include <criterion/criterion.h>

#include "internal.h"

#define TOLERANCE_NS 200u

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Readings for `ms` ms; the number of them outside the bracket. */
static void *bracket(void *arg)
{
    uintptr_t bad = 0;
    uint64_t end = mono_ns() + (uint64_t)(uintptr_t)arg * 1000000u;
    for (;;) {
        uint64_t a = mono_ns();
        uint64_t t = hostmem__trace_clock_ns();
        uint64_t b = mono_ns();
        if (t + TOLERANCE_NS < a || t > b + TOLERANCE_NS)
            bad++;
        if (b > end)
            break;
    }
    return (void *)bad;
}

Test(trace_clock, follows_clock_monotonic)
{
    /* Past the library's first millisecond, where the TSC's rate is known. */
    struct timespec pause = {0, 5 * 1000 * 1000};
    nanosleep(&pause, NULL);
    if (hostmem__trace_clock_ns() == 0)
        cr_skip_test("built without LTTng: start_ns is never taken");
    pthread_t other;
    cr_assert_eq(pthread_create(&other, NULL, bracket, (void *)(uintptr_t)100), 0);
    uintptr_t bad = (uintptr_t)bracket((void *)(uintptr_t)100);
    void *bad_other;
    pthread_join(other, &bad_other);
    cr_assert_eq(bad, 0, "%lu readings outside [clock - %u ns, clock + %u ns]", (unsigned long)bad,
                 TOLERANCE_NS, TOLERANCE_NS);
    cr_assert_eq((uintptr_t)bad_other, 0, "other thread: %lu readings outside",
                 (unsigned long)(uintptr_t)bad_other);
}

/* Sparse calls (each after the pair expired) read the clock themselves. */
Test(trace_clock, sparse_calls)
{
    for (int i = 0; i < 50; i++) {
        struct timespec pause = {0, 50 * 1000};
        nanosleep(&pause, NULL);
        uint64_t a = mono_ns(), t = hostmem__trace_clock_ns(), b = mono_ns();
        if (t == 0)
            cr_skip_test("built without LTTng");
        cr_assert(t + TOLERANCE_NS >= a && t <= b + TOLERANCE_NS, "%lu not in [%lu, %lu]",
                  (unsigned long)t, (unsigned long)a, (unsigned long)b);
    }
}
