/*
 * trace_lttng_dump.c: the statedump of live regions (hostmem:region_state)
 * and the managers' life (hostmem:manager_create, manager_destroy), which
 * keeps the list of managers the statedump walks.  Part of the LTTng facade
 * (trace_lttng.h).
 */
#include <pthread.h>
#include <string.h>

#include "trace_lttng.h"

/* ---- statedump: region_state ------------------------------------------------
 *
 * A session that enables hostmem:region_state should see every region that
 * was live before it started.  lttng-ust gives an application no hook for a
 * session start, so the manager polls at every public entry
 * (hostmem__trace_poll_statedump): when the set of probes attached to
 * region_state changes -- lttng-ust attaches one per session that enables the
 * event, in a new array -- a new dump generation begins, and each manager
 * dumps its regions on its next call.  A session that goes away also starts a
 * generation, so the remaining ones may see a region twice: region_state is a
 * snapshot, and readers keep the latest per (manager, base).
 *
 * The managers are known from manager_create / manager_destroy (which the
 * manager calls whether or not their events are enabled), or met at a poll.
 */
typedef struct trace_dump_entry {
    const struct hostmem_manager *m;
    uint64_t gen; /* the generation this manager last dumped for */
} trace_dump_entry;

static pthread_mutex_t trace_dump_lock = PTHREAD_MUTEX_INITIALIZER;
static trace_dump_entry *trace_dump_table; /* under trace_dump_lock */
static size_t trace_dump_count, trace_dump_cap;
static _Atomic uintptr_t trace_dump_token;  /* probes of region_state last seen */
static _Atomic uint64_t trace_dump_gen = 1;
static _Atomic size_t trace_dump_pending;   /* managers yet to dump for trace_dump_gen */

void hostmem__trace_dump_atfork_prepare(void) { pthread_mutex_lock(&trace_dump_lock); }
void hostmem__trace_dump_atfork_release(void) { pthread_mutex_unlock(&trace_dump_lock); }

static trace_dump_entry *trace_dump_find(const struct hostmem_manager *m)
{
    for (size_t i = 0; i < trace_dump_count; i++)
        if (trace_dump_table[i].m == m)
            return &trace_dump_table[i];
    return NULL;
}

/* Add m with generation `gen` (lock held).  False when out of memory. */
static bool trace_dump_add(const struct hostmem_manager *m, uint64_t gen)
{
    if (trace_dump_count == trace_dump_cap) {
        size_t cap = trace_dump_cap != 0 ? trace_dump_cap * 2 : 8;
        /* Never the process heap (A5): the host's malloc may be ours. */
        trace_dump_entry *t = hostmem__meta_alloc(cap * sizeof *t);
        if (t == NULL)
            return false;
        if (trace_dump_count != 0)
            memcpy(t, trace_dump_table, trace_dump_count * sizeof *t);
        hostmem__meta_free(trace_dump_table, trace_dump_cap * sizeof *t);
        trace_dump_table = t;
        trace_dump_cap = cap;
    }
    trace_dump_table[trace_dump_count++] = (trace_dump_entry){m, gen};
    return true;
}

static uintptr_t trace_dump_probes(void)
{
    return (uintptr_t)CMM_LOAD_SHARED(lttng_ust_tracepoint_hostmem___region_state.probes);
}

static void trace_dump_one(void *ctx, const hostmem__region_info *info)
{
    hostmem__trace_region_state(ctx, info);
}

void hostmem__trace_poll_statedump(struct hostmem_manager *m)
{
    if (!HOSTMEM_TRACE_ON(region_state) || hostmem__trace_depth != 0)
        return;
    uintptr_t token = trace_dump_probes();
    if (token == atomic_load_explicit(&trace_dump_token, memory_order_acquire) &&
        atomic_load_explicit(&trace_dump_pending, memory_order_acquire) == 0)
        return;

    bool dump = false;
    pthread_mutex_lock(&trace_dump_lock);
    uint64_t gen = atomic_load_explicit(&trace_dump_gen, memory_order_relaxed);
    if (token != atomic_load_explicit(&trace_dump_token, memory_order_relaxed)) {
        atomic_store_explicit(&trace_dump_token, token, memory_order_release);
        atomic_store_explicit(&trace_dump_gen, ++gen, memory_order_relaxed);
        atomic_store_explicit(&trace_dump_pending, trace_dump_count, memory_order_release);
    }
    trace_dump_entry *e = trace_dump_find(m);
    if (e == NULL) {
        /* Never announced: dump now, and remember it (if memory allows). */
        dump = true;
        (void)trace_dump_add(m, gen);
    } else if (e->gen != gen) {
        e->gen = gen;
        atomic_fetch_sub_explicit(&trace_dump_pending, 1, memory_order_release);
        dump = true;
    }
    pthread_mutex_unlock(&trace_dump_lock);

    if (dump)
        hostmem__region_foreach(m, trace_dump_one, m);
}

void hostmem__trace_region_state(const struct hostmem_manager *m, const hostmem__region_info *r)
{
    if (!HOSTMEM_TRACE_ON(region_state))
        return;
    struct hostmem_tp_region_v1 e = {
        .seq = hostmem__trace_seq_next(),
        .manager = hostmem__trace_id(m),
        .base = (uint64_t)r->base,
        .region_size = r->size,
        .committed_bytes = r->committed_bytes,
        .protect = r->alloc_protect,
        .caller = (uint64_t)r->caller,
    };
    HOSTMEM_TRACE_EMIT(lttng_ust_do_tracepoint(hostmem, region_state, &e));
}

/* ---- manager life (T4) ------------------------------------------------------ */

void hostmem__trace_manager_create(const struct hostmem_manager *m, uint64_t commit_limit,
                                   uint64_t address_space_limit, uint64_t page_size)
{
    /* A new manager has no regions: nothing to dump for the current
     * generation.  Out of memory only costs a redundant dump later. */
    pthread_mutex_lock(&trace_dump_lock);
    if (trace_dump_find(m) == NULL)
        (void)trace_dump_add(m, atomic_load_explicit(&trace_dump_gen, memory_order_relaxed));
    pthread_mutex_unlock(&trace_dump_lock);

    if (!HOSTMEM_TRACE_ON(manager_create))
        return;
    HOSTMEM_TRACE_EMIT(lttng_ust_do_tracepoint(hostmem, manager_create, hostmem__trace_seq_next(),
                                       hostmem__trace_id(m), commit_limit, address_space_limit,
                                       page_size));
}

void hostmem__trace_manager_destroy(const struct hostmem_manager *m, uint64_t regions,
                                    uint64_t reserved_bytes, uint64_t committed_bytes,
                                    uint64_t unreturned_mappings, uint64_t unreturned_bytes)
{
    pthread_mutex_lock(&trace_dump_lock);
    trace_dump_entry *e = trace_dump_find(m);
    if (e != NULL) {
        if (e->gen != atomic_load_explicit(&trace_dump_gen, memory_order_relaxed))
            atomic_fetch_sub_explicit(&trace_dump_pending, 1, memory_order_release);
        *e = trace_dump_table[--trace_dump_count];
    }
    if (trace_dump_count == 0) {
        hostmem__meta_free(trace_dump_table, trace_dump_cap * sizeof *trace_dump_table);
        trace_dump_table = NULL;
        trace_dump_cap = 0;
    }
    pthread_mutex_unlock(&trace_dump_lock);

    if (!HOSTMEM_TRACE_ON(manager_destroy))
        return;
    HOSTMEM_TRACE_EMIT(lttng_ust_do_tracepoint(hostmem, manager_destroy, hostmem__trace_seq_next(),
                                       hostmem__trace_id(m), regions, reserved_bytes,
                                       committed_bytes, unreturned_mappings, unreturned_bytes));
}
