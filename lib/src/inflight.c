/*
 * inflight.c: mappings the manager is making and has not yet put in the map.
 *
 * The kernel creates a mapping before the manager can record it: between the
 * mmap of a region of its own (or of an arena) and the moment the region
 * enters the map, the kernel already shows an inaccessible private mapping
 * there, which a query asking the kernel would describe as committed
 * PAGE_NOACCESS memory: a state the address never has as far as the contract
 * goes (S9).  So every such mmap runs inside a slot here, saying
 * which span it may touch (unknown until a mmap at NULL returns), and a query
 * whose kernel answer is an anonymous private mapping waits for the slots
 * whose span meets it to close, then asks again.  A region made and released
 * again between the query's look at the map and the kernel's answer leaves
 * the map as it was; the generation, moved each time a mapping of the manager
 * enters or leaves the map, tells the query to look again.  It waits only for the
 * operations in flight when it looked, each at most one mmap, a trim and a
 * few stores, so a stream of new reservations cannot starve it.
 *
 * The slots are shared by every manager of the process (a query cannot tell
 * whose mapping the kernel shows), written and read with atomics only, and
 * async-signal-safe: a query from a signal handler never waits for the slot
 * of the thread it interrupted, and never waits longer than
 * WAIT_NS for a writer that is not running.
 */
#include <sched.h>

#include "internal.h"

#define SLOTS 32u
#define WAIT_NS ((uint64_t)200 * 1000000u) /* a writer the host suspended, say */

typedef struct slot {
    _Atomic uint32_t seq;     /* odd while an operation holds the slot */
    _Atomic uintptr_t lo, hi; /* the span it may touch; 0 in either: not known yet */
} slot;

static slot slots[SLOTS];
static _Atomic uint64_t generation;
static __thread int tls_slot __attribute__((tls_model("initial-exec"))) = -1;
static __thread char tls_hash __attribute__((tls_model("initial-exec")));

void hostmem__inflight_begin(uintptr_t lo, uintptr_t hi)
{
    unsigned start = (unsigned)(((uintptr_t)&tls_hash >> 6) % SLOTS);
    for (;;) {
        for (unsigned k = 0; k < SLOTS; k++) {
            unsigned i = (start + k) % SLOTS;
            uint32_t s = atomic_load_explicit(&slots[i].seq, memory_order_relaxed);
            if ((s & 1) || !atomic_compare_exchange_strong_explicit(&slots[i].seq, &s, s + 1,
                                                                    memory_order_acq_rel,
                                                                    memory_order_relaxed))
                continue;
            atomic_store_explicit(&slots[i].lo, lo, memory_order_release);
            atomic_store_explicit(&slots[i].hi, hi, memory_order_release);
            tls_slot = (int)i;
            return;
        }
        sched_yield(); /* more than SLOTS mappings in flight at once */
    }
}

void hostmem__inflight_span(uintptr_t lo, uintptr_t hi)
{
    if (tls_slot < 0)
        return;
    slot *s = &slots[tls_slot];
    atomic_store_explicit(&s->hi, 0, memory_order_release); /* unknown while it changes */
    atomic_store_explicit(&s->lo, lo, memory_order_release);
    atomic_store_explicit(&s->hi, hi, memory_order_release);
}

void hostmem__inflight_end(void)
{
    if (tls_slot < 0)
        return;
    slot *s = &slots[tls_slot];
    atomic_store_explicit(&s->lo, 0, memory_order_relaxed);
    atomic_store_explicit(&s->hi, 0, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->seq, 1, memory_order_release);
    tls_slot = -1;
}

void hostmem__inflight_moved(void)
{
    atomic_fetch_add_explicit(&generation, 1, memory_order_acq_rel);
}

uint64_t hostmem__inflight_generation(void)
{
    return atomic_load_explicit(&generation, memory_order_acquire);
}

bool hostmem__inflight_wait(uintptr_t lo, uintptr_t hi)
{
    bool waited = false;
    uint64_t deadline = 0;
    for (unsigned i = 0; i < SLOTS; i++) {
        if ((int)i == tls_slot)
            continue; /* a signal handler on the thread that holds it */
        uint32_t s = atomic_load_explicit(&slots[i].seq, memory_order_acquire);
        if (!(s & 1))
            continue;
        uintptr_t slo = atomic_load_explicit(&slots[i].lo, memory_order_acquire);
        uintptr_t shi = atomic_load_explicit(&slots[i].hi, memory_order_acquire);
        if (atomic_load_explicit(&slots[i].seq, memory_order_acquire) != s)
            continue; /* closed meanwhile */
        if (slo && shi && (shi <= lo || slo >= hi))
            continue; /* a known span elsewhere */
        waited = true;
        while (atomic_load_explicit(&slots[i].seq, memory_order_acquire) == s) {
            uint64_t now = hostmem__now_ns();
            if (!deadline)
                deadline = now + WAIT_NS;
            else if (now > deadline)
                return waited;
            sched_yield();
        }
    }
    return waited;
}

void hostmem__inflight_reset_in_child(void)
{
    tls_slot = -1;
    /* Only the forking thread exists in a child: nothing else is in flight. */
    for (unsigned i = 0; i < SLOTS; i++) {
        if (atomic_load_explicit(&slots[i].seq, memory_order_relaxed) & 1)
            atomic_fetch_add_explicit(&slots[i].seq, 1, memory_order_relaxed);
        atomic_store_explicit(&slots[i].lo, 0, memory_order_relaxed);
        atomic_store_explicit(&slots[i].hi, 0, memory_order_relaxed);
    }
}
