/*
 * ahead_clock.c: an LTTng-UST clock plugin (LTTNG_UST_CLOCK_PLUGIN) for the
 * seq-order test: CLOCK_MONOTONIC, except that a thread named
 * "hm-clock-ahead" reads it 50 ms ahead -- as a CPU whose counter is not in
 * step with the others would.  Its events, on a CPU of their own, sort
 * after events the process emitted later.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>

#include <lttng/ust-clock.h>

#define AHEAD_NS 50000000ull

static uint64_t ahead_read64(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
    char name[17] = {0};
    if (prctl(PR_GET_NAME, name) == 0 && strcmp(name, "hm-clock-ahead") == 0)
        ns += AHEAD_NS;
    return ns;
}

static uint64_t ahead_freq(void) { return 1000000000ull; }

static int ahead_uuid(char *uuid)
{
    memcpy(uuid, "8d1f3c52-7a4e-4b0c-9e21-5f6a7b8c9d0e", LTTNG_UST_UUID_STR_LEN);
    return 0;
}

static const char *ahead_name(void) { return "hostmem_test_ahead"; }

static const char *ahead_description(void)
{
    return "CLOCK_MONOTONIC, 50 ms ahead on threads named hm-clock-ahead";
}

void lttng_ust_clock_plugin_init(void);
void lttng_ust_clock_plugin_init(void)
{
    if (lttng_ust_trace_clock_set_read64_cb(ahead_read64) || lttng_ust_trace_clock_set_freq_cb(ahead_freq) ||
        lttng_ust_trace_clock_set_uuid_cb(ahead_uuid) || lttng_ust_trace_clock_set_name_cb(ahead_name) ||
        lttng_ust_trace_clock_set_description_cb(ahead_description))
        return;
    lttng_ust_enable_trace_clock_override();
}
