/*
 * lifecycle.c: configuration, create, shutdown and destroy (A3), and fork:
 * every manager is known so that fork() can take every lock first and the
 * child starts with a consistent state.
 */
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

#define RELAXED memory_order_relaxed

/* ---- life cycle (A3) ------------------------------------------------------ */

/* Every manager, so fork() can take their locks (a child forked while another
 * thread held one would otherwise inherit it locked forever). */
static pthread_mutex_t managers_lock = PTHREAD_MUTEX_INITIALIZER;
static hostmem_manager *managers;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

/* fork() waits for every operation in flight on a region: it takes every
 * region lock, then the state lock (the lock order), so the child inherits
 * books and kernel state that agree, and totals that count its regions only
 * (P7).  A region is added to all_regions (at its head, under the
 * state lock) already locked by its maker: lock from the head down, then
 * again for any region added meanwhile, until the head holds still. */
static void fork_lock_regions(hostmem_manager *m)
{
    hostmem__region *done = NULL;
    for (;;) {
        pthread_mutex_lock(&m->state_lock);
        hostmem__region *head = m->all_regions;
        if (head == done)
            return; /* the state lock stays held */
        pthread_mutex_unlock(&m->state_lock);
        for (hostmem__region *r = head; r != done; r = r->next_all)
            pthread_mutex_lock(&r->lock);
        done = head;
    }
}

static void fork_prepare(void)
{
    hostmem__heap_fork_prepare();
    pthread_mutex_lock(&managers_lock);
    for (hostmem_manager *m = managers; m; m = m->next_manager)
        fork_lock_regions(m);
}

static void fork_parent(void)
{
    for (hostmem_manager *m = managers; m; m = m->next_manager) {
        for (hostmem__region *r = m->all_regions; r; r = r->next_all)
            pthread_mutex_unlock(&r->lock);
        pthread_mutex_unlock(&m->state_lock);
    }
    pthread_mutex_unlock(&managers_lock);
    hostmem__heap_fork_parent();
}

/* In a child: a reserve-and-commit that another thread of the parent had not
 * finished will never finish here; its region goes away, as a failed one
 * does (its pages were never made accessible: the commit that would have
 * done so holds the region lock across the syscall and the books update). */
static void fork_child_unmake(hostmem_manager *m, hostmem__region *r)
{
    uintptr_t base = atomic_load_explicit(&r->base, RELAXED);
    size_t size = atomic_load_explicit(&r->size, RELAXED);
    uintptr_t hi = hostmem__round_up(base + size, HOSTMEM_GRANULE);
    hostmem__arena *arena = atomic_load_explicit(&r->arena, RELAXED);
    if (arena) {
        hostmem__map_set(&m->map, base, hi, (uintptr_t)arena | HOSTMEM_MAP_TAG_ARENA);
        hostmem__arena_mark(arena, base, hi, false);
    } else {
        hostmem__os_get()->release((void *)base, hostmem__region_unmap_bytes(r)); /* ours alone: still mapped */
        hostmem__map_clear(&m->map, base, hi, (uintptr_t)r | HOSTMEM_MAP_TAG_REGION);
    }
    hostmem__region_write_begin(r);
    atomic_store_explicit(&r->live, false, RELAXED);
    atomic_store_explicit(&r->making, false, RELAXED);
    hostmem__region_write_end(r);
    hostmem__policy_unreserve(m, size); /* no charge: its commit never ran */
    m->policy.regions--;
    hostmem__region_recycle(m, r);
}

static void fork_child(void)
{
    /* Only this thread exists now; it holds every lock of every manager. */
    hostmem__in_fork_child = true;
    hostmem__inflight_reset_in_child();
    for (hostmem_manager *m = managers; m; m = m->next_manager) {
        for (hostmem__region *r = m->all_regions; r; r = r->next_all) {
            pthread_mutex_init(&r->lock, NULL);
            if (atomic_load_explicit(&r->live, RELAXED) && atomic_load_explicit(&r->making, RELAXED))
                fork_child_unmake(m, r);
        }
        /* Waiters of the parent do not exist here. */
        atomic_store(&m->waiters, 0);
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&m->freed, &ca);
        pthread_condattr_destroy(&ca);
        pthread_mutex_unlock(&m->state_lock);
    }
    hostmem__region_writing = 0;
    hostmem__in_fork_child = false;
    pthread_mutex_unlock(&managers_lock);
    hostmem__heap_fork_child();
}

static void atfork_install(void) { pthread_atfork(fork_prepare, fork_parent, fork_child); }

void hostmem_config_init(hostmem_config *config)
{
    if (!config)
        return;
    *config = (hostmem_config){
        .commit_limit = 0,
        .address_space_limit = 0,
        .task_percent = 90,
        .appdomain_percent = 97,
        .low_memory_percent = 90,
        .high_memory_percent = 60,
        .process_critical_wait_ms = 0,
        .lock_timeout_ms = 0,
        .deny_write_execute = false,
        .stack_depth = 0,
        .stack_walk = HOSTMEM_STACK_WALK_UNWIND,
    };
}

/* The worker of hostmem_create: the checks, then a manager (nothing can
 * fail once it is allocated).  No region event: the manager_create event. */
static HRESULT lifecycle_create(hostmem__call *c, const hostmem_config *config, hostmem_manager **out)
{
    c->traced = false;
    if (!out)
        return hostmem__call_fail(c, E_POINTER, HOSTMEM_REASON_null_pointer);
    *out = NULL;
    hostmem_config cfg;
    hostmem_config_init(&cfg);
    if (config)
        cfg = *config;
    hostmem__stack_configure(&cfg); /* T7: the environment has the last word */
    if (cfg.task_percent > 100 || cfg.appdomain_percent > 100 || cfg.task_percent > cfg.appdomain_percent ||
        cfg.low_memory_percent > 100 || cfg.high_memory_percent > cfg.low_memory_percent ||
        !hostmem__stack_config_valid(&cfg))
        return hostmem__call_fail(c, E_INVALIDARG, HOSTMEM_REASON_bad_type);
    if (cfg.guard_handler && hostmem__guard_install()) /* W2 */
        return hostmem__call_fail(c, E_OUTOFMEMORY, HOSTMEM_REASON_no_metadata);
    hostmem_manager *m = hostmem__meta_alloc(sizeof *m);
    if (!m)
        return hostmem__call_fail(c, E_OUTOFMEMORY, HOSTMEM_REASON_no_metadata);
    const hostmem__os_caps *caps = hostmem__os_caps_get();
    m->page_size = caps->page_size;
    m->page_shift = (unsigned)__builtin_ctzl(caps->page_size);
    m->user_end = caps->user_end;
    m->map_end = caps->map_end ? caps->map_end : caps->user_end;
    pthread_mutex_init(&m->state_lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&m->freed, &ca);
    pthread_condattr_destroy(&ca);
    hostmem__map_init(&m->map);
    hostmem__policy_init(&m->policy, &cfg);
    hostmem__stack_enable(&cfg);
    pthread_once(&atfork_once, atfork_install);
    pthread_mutex_lock(&managers_lock);
    m->next_manager = managers;
    managers = m;
    pthread_mutex_unlock(&managers_lock);
    hostmem__fault_register(m); /* W2: hostmem_handle_fault() finds its regions */
    hostmem__trace_manager_create(m, cfg.commit_limit, cfg.address_space_limit, m->page_size);
    *out = m;
    return S_OK;
}

HRESULT hostmem_create(const hostmem_config *config, hostmem_manager **out)
{
    hostmem__call c;
    hostmem__call_start(&c, NULL, HOSTMEM_OP_create, 0, 0, 0, -1);
    return hostmem__call_finish(&c, lifecycle_create(&c, config, out));
}

void hostmem_shutdown(hostmem_manager *m)
{
    if (!m)
        return;
    pthread_mutex_lock(&m->state_lock);
    atomic_store(&m->shutdown, 1);
    pthread_cond_broadcast(&m->freed); /* waiters wake to HOST_E_ABANDONED */
    pthread_mutex_unlock(&m->state_lock);
}

void hostmem_destroy(hostmem_manager *m)
{
    if (!m)
        return;
    pthread_mutex_lock(&managers_lock);
    for (hostmem_manager **link = &managers; *link; link = &(*link)->next_manager)
        if (*link == m) {
            *link = m->next_manager;
            break;
        }
    pthread_mutex_unlock(&managers_lock);
    hostmem__fault_unregister(m); /* no fault handler reads m once this returns */
    hostmem_shutdown(m);
    /* What the host left live, and what the kernel would not take back (a
     * failed munmap is retried, then reported: the mapping stays). */
    uint64_t live_regions = m->policy.regions, live_reserved = m->policy.reserved;
    uint64_t live_committed = m->policy.committed;
    hostmem__assert(hostmem__region_total_ok(m));
    hostmem__unreturned lost = {0, 0};
    hostmem__region *r = m->all_regions;
    while (r) {
        hostmem__region *next = r->next_all;
        if (atomic_load_explicit(&r->live, RELAXED) && !atomic_load_explicit(&r->arena, RELAXED))
            hostmem__release_retry((void *)atomic_load_explicit(&r->base, RELAXED), hostmem__region_unmap_bytes(r), &lost);
        hostmem__runs_free(&r->runs);
        pthread_mutex_destroy(&r->lock);
        hostmem__meta_free(r, sizeof *r);
        r = next;
    }
    hostmem__arena_destroy_all(m, &lost); /* and every region carved from them */
    hostmem__trace_manager_destroy(m, live_regions, live_reserved, live_committed, lost.mappings, lost.bytes);
    while (m->externals) {
        hostmem__external *x = m->externals;
        m->externals = x->next;
        hostmem__meta_free(x, sizeof *x);
    }
    hostmem__map_fini(&m->map);
    pthread_cond_destroy(&m->freed);
    pthread_mutex_destroy(&m->state_lock);
    hostmem__meta_free(m, sizeof *m);
}
