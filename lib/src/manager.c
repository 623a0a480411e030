/*
 * manager.c: the public entry points (A3).  Each one validates its
 * arguments first, then finds and locks the region it works on, asks the
 * policy, makes the OS calls, and only when they succeeded updates the
 * bookkeeping; a failed OS call is rolled back from the bookkeeping (which
 * still describes the state before the call).  Every exit goes through
 * finish(), which emits the trace events and delivers notifications once no
 * internal lock is held.
 *
 * Locks: the state lock guards the map's structure, the pools, the arenas and
 * the policy, and is never held across a syscall.  A region's own lock
 * serialises the operations on that region, syscalls included, so calls on
 * different regions run in parallel.  Order: region lock, then state lock.
 * Query takes neither: it reads the map with atomic loads and the region
 * under its seqlock.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

#define RELAXED memory_order_relaxed
#define ACQUIRE memory_order_acquire
#define RELEASE memory_order_release

/* Set while this thread is inside a region's seqlock write section, so a
 * query from a signal handler that interrupted it does not wait for itself. */
static __thread int tls_writing __attribute__((tls_model("initial-exec")));

/* ---- one public call in flight -------------------------------------------- */

typedef struct call {
    hostmem_manager *m;
    enum hostmem__op op;
    hostmem__trace_call trace;
    bool traced;
    hostmem__trace_op_event ev;
    hostmem__notice notice[3];
    enum hostmem__reason reason;
    int os_errno;
    hostmem__region *maker; /* the region this reserve-and-commit is making */
} call;

static void call_start(call *c, hostmem_manager *m, enum hostmem__op op, uintptr_t caller,
                       uintptr_t address, uint64_t size, int32_t level)
{
    /* Field by field: this runs on every call, query included. */
    c->m = m;
    c->op = op;
    c->traced = hostmem__trace_begin(op, &c->trace, caller);
    c->ev = (hostmem__trace_op_event){.op = op, .address = address, .size = size, .level = level};
    for (unsigned i = 0; i < 3; i++)
        c->notice[i].state = 0;
    c->reason = HOSTMEM_REASON_none;
    c->os_errno = 0;
    c->maker = NULL;
}

static hostmem__notice *notice_slot(call *c)
{
    for (unsigned i = 0; i < 3; i++)
        if (!c->notice[i].state)
            return &c->notice[i];
    return &c->notice[2]; /* the newest state wins */
}

/* The one exit: events, then notifications (no internal lock is held here). */
static HRESULT finish(call *c, HRESULT hr)
{
    hostmem_manager *m = c->m;
    c->ev.hr = hr;
    hostmem__trace_flush(); /* decisions made under the state lock, first */
    if (c->traced) {
        if (m) {
            /* Totals for the event: a racy but harmless read, for the trace only. */
            c->ev.committed_bytes = atomic_load_explicit(&m->policy.committed_now, RELAXED);
            c->ev.reserved_bytes = atomic_load_explicit(&m->policy.reserved_now, RELAXED);
        }
        hostmem__trace_region_op(m, &c->trace, &c->ev);
    }
    if (FAILED(hr))
        hostmem__trace_failure(m, c->op, hr, c->reason, c->os_errno, c->ev.address, c->ev.size,
                               c->ev.level);
    for (unsigned i = 0; i < 3; i++)
        if (c->notice[i].state)
            hostmem__notice_deliver(m, &c->notice[i]);
    return hr;
}

static HRESULT fail(call *c, HRESULT hr, enum hostmem__reason reason)
{
    c->reason = reason;
    return hr;
}

static HRESULT fail_os(call *c, int err, enum hostmem__reason reason)
{
    c->os_errno = err;
    c->reason = reason;
    return hostmem__hr_from_errno(err);
}

/* Entry checks shared by every call on a manager. */
static HRESULT enter(call *c)
{
    hostmem_manager *m = c->m;
    if (atomic_load_explicit(&m->unavailable, RELAXED))
        return fail(c, HOST_E_CLRNOTAVAILABLE, HOSTMEM_REASON_unavailable);
    if (atomic_load_explicit(&m->shutdown, RELAXED))
        return fail(c, HOST_E_CLRNOTAVAILABLE, HOSTMEM_REASON_shutdown);
    hostmem__trace_poll_statedump(m);
    return S_OK;
}

/* P7: the OS refused to restore state; nothing can be trusted any more. */
static HRESULT unrecoverable(call *c, int err)
{
    atomic_store(&c->m->unavailable, 1);
    c->os_errno = err;
    c->reason = HOSTMEM_REASON_rollback_failed;
    return E_FAIL;
}

/* ---- locks ----------------------------------------------------------------- */

static HRESULT lock(call *c, pthread_mutex_t *mu)
{
    DWORD ms = c->m->policy.config.lock_timeout_ms;
    int err;
    if (!ms) {
        err = pthread_mutex_lock(mu);
    } else {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += ms / 1000;
        ts.tv_nsec += (long)(ms % 1000) * 1000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        err = pthread_mutex_timedlock(mu, &ts);
    }
    if (err == ETIMEDOUT)
        return fail(c, HOST_E_TIMEOUT, HOSTMEM_REASON_timeout);
    if (err) { /* a broken mutex: E_FAIL, and unavailable from now on (P7) */
        atomic_store(&c->m->unavailable, 1);
        return fail(c, E_FAIL, HOSTMEM_REASON_unavailable);
    }
    if (atomic_load_explicit(&c->m->shutdown, RELAXED)) {
        pthread_mutex_unlock(mu);
        return fail(c, HOST_E_ABANDONED, HOSTMEM_REASON_abandoned);
    }
    return S_OK;
}

/* ThreadSanitizer does not model fences (and warns about them); every field a
 * reader touches is atomic, so under it a compiler barrier is enough. */
#ifdef __SANITIZE_THREAD__
#define seq_fence(order) atomic_signal_fence(order)
#else
#define seq_fence(order) atomic_thread_fence(order)
#endif

static void seq_begin(hostmem__region *r)
{
    tls_writing = 1;
    atomic_fetch_add_explicit(&r->seq, 1, RELAXED);
    seq_fence(memory_order_release);
}

static void seq_end(hostmem__region *r)
{
    atomic_fetch_add_explicit(&r->seq, 1, RELEASE);
    tls_writing = 0;
}

/* ---- sizes and ranges -------------------------------------------------------- */

static size_t page_down(const hostmem_manager *m, uintptr_t a) { return a & ~(m->page_size - 1); }
static uintptr_t round_up(uintptr_t a, size_t to) { return (a + to - 1) & ~(uintptr_t)(to - 1); }

/* S3 for a range at a given address: 0 or the failing HRESULT. */
static HRESULT check_range(call *c, uintptr_t addr, size_t size)
{
    uintptr_t end = c->m->user_end;
    if (!size)
        return fail(c, E_INVALIDARG, HOSTMEM_REASON_zero_size);
    if (addr + size < addr || addr + size - 1 + c->m->page_size < addr + size - 1)
        return fail(c, E_INVALIDARG, HOSTMEM_REASON_range_wraps);
    if (addr >= end || addr + size > end)
        return fail(c, E_INVALIDARG, HOSTMEM_REASON_beyond_user_space);
    return S_OK;
}

/* ---- regions ------------------------------------------------------------------ */

static uintptr_t region_end(const hostmem__region *r)
{
    return atomic_load_explicit(&r->base, RELAXED) + atomic_load_explicit(&r->size, RELAXED);
}

static size_t region_pages(const hostmem_manager *m, const hostmem__region *r)
{
    return atomic_load_explicit(&r->size, RELAXED) >> m->page_shift;
}

/* Find the region holding addr and lock it.  NULL with *hr = S_OK: addr is in
 * no region of this manager.  NULL with a failed *hr: the lock failed. */
static hostmem__region *region_lock(call *c, uintptr_t addr, HRESULT *hr)
{
    hostmem_manager *m = c->m;
    *hr = S_OK;
    for (unsigned tries = 0;; tries++) {
        if (tries == 1u << 20) {
            /* The map keeps naming a region that does not hold addr: a broken
             * invariant, never a state to wait out (P7: unavailable from now on). */
            atomic_store(&m->unavailable, 1);
            *hr = fail(c, E_FAIL, HOSTMEM_REASON_inconsistent);
            return NULL;
        }
        uintptr_t e = hostmem__map_lookup(&m->map, addr);
        if ((e & HOSTMEM_MAP_TAG_MASK) != HOSTMEM_MAP_TAG_REGION)
            return NULL;
        hostmem__region *r = (hostmem__region *)(e & ~HOSTMEM_MAP_TAG_MASK);
        if (FAILED(*hr = lock(c, &r->lock)))
            return NULL;
        if (atomic_load_explicit(&r->live, RELAXED) && addr >= atomic_load_explicit(&r->base, RELAXED)) {
            /* A reserve-and-commit in the making is one step (S9): until it
             * is done, no other call finds its region. */
            if (addr < region_end(r) && (!atomic_load_explicit(&r->making, RELAXED) || r == c->maker))
                return r;
            pthread_mutex_unlock(&r->lock); /* the unusable rest of its last granule */
            return NULL;
        }
        /* Released (and maybe reused) while we waited: look again. */
        pthread_mutex_unlock(&r->lock);
    }
}

/* Every page touching [addr, addr + size) inside region r: first page index
 * and count, or a failed HRESULT. */
static HRESULT region_pages_of(call *c, hostmem__region *r, uintptr_t addr, size_t size,
                               size_t *first, size_t *count)
{
    hostmem_manager *m = c->m;
    uintptr_t lo = page_down(m, addr), hi = round_up(addr + size, m->page_size);
    if (hi > region_end(r))
        return fail(c, HOSTMEM_E_INVALID_ADDRESS, HOSTMEM_REASON_crosses_region);
    *first = (lo - atomic_load_explicit(&r->base, RELAXED)) >> m->page_shift;
    *count = (hi - lo) >> m->page_shift;
    return S_OK;
}

static void *page_addr(const hostmem_manager *m, const hostmem__region *r, size_t page)
{
    return (void *)(atomic_load_explicit(&r->base, RELAXED) + (page << m->page_shift));
}

/* Put the kernel's view of pages [first, first + count) back to what the runs
 * say (they still describe the state before the failed call).  0 or errno. */
static int restore_access(hostmem_manager *m, hostmem__region *r, size_t first, size_t count)
{
    const hostmem__os *os = hostmem__os_get();
    size_t npages = region_pages(m, r), end = first + count;
    uint32_t n = hostmem__runs_count(&r->runs);
    for (uint32_t i = hostmem__runs_find(&r->runs, first); i < n; i++) {
        size_t rf, rc;
        uint32_t st;
        hostmem__runs_get(&r->runs, npages, i, &rf, &rc, &st);
        if (rf >= end)
            break;
        size_t lo = rf > first ? rf : first, hi = rf + rc < end ? rf + rc : end;
        unsigned access = (st & HOSTMEM_STATE_COMMITTED)
                              ? hostmem__protect_access(st & HOSTMEM_STATE_PROTECT_MASK)
                              : HOSTMEM_ACCESS_NONE;
        int err = os->protect(page_addr(m, r, lo), (hi - lo) << m->page_shift, access);
        if (err)
            return err;
    }
    return 0;
}

static hostmem__region *region_new(hostmem_manager *m)
{
    /* state lock held */
    hostmem__region *r = m->free_regions;
    if (r) {
        m->free_regions = r->next_free;
        return r;
    }
    r = hostmem__meta_alloc(sizeof *r);
    if (!r)
        return NULL;
    pthread_mutex_init(&r->lock, NULL);
    r->next_all = m->all_regions;
    m->all_regions = r;
    m->metadata_bytes += sizeof *r;
    return r;
}

static void region_recycle(hostmem_manager *m, hostmem__region *r)
{
    /* state lock held; r is dead and unlocked */
    r->next_free = m->free_regions;
    m->free_regions = r;
}

/* ---- reserve (S4) ------------------------------------------------------ */

static HRESULT release_region(call *c, hostmem__region *r);

/* `watch`: a write-watch region (W1), tracked before anyone can write to it.
 * `making`: a reserve-and-commit, whose region stays invisible to every other
 * call and queries as free until its commit is done (S9); it settles (raises
 * the peaks) after that commit. */
static HRESULT reserve(call *c, uintptr_t addr, size_t size, DWORD protect, bool large, bool watch,
                       EMemoryCriticalLevel level, uintptr_t caller, bool making, hostmem__region **out)
{
    hostmem_manager *m = c->m;
    const hostmem__os *os = hostmem__os_get();
    size_t align = large ? hostmem__os_caps_get()->huge_page_size : HOSTMEM_GRANULE;
    uintptr_t base = addr & ~(uintptr_t)(HOSTMEM_GRANULE - 1);
    size_t rsize = addr ? round_up(addr + size, m->page_size) - base : round_up(size, m->page_size);
    if (large)
        rsize = round_up(rsize, align);
    HRESULT hr = lock(c, &m->state_lock);
    if (FAILED(hr))
        return hr;
    hostmem__region *r = region_new(m);
    pthread_mutex_unlock(&m->state_lock);
    if (!r)
        return fail(c, E_OUTOFMEMORY, HOSTMEM_REASON_no_metadata);
    /* Hold the new region's lock until it is complete: a thread that found
     * this struct in its previous life and waits for its lock then sees
     * either a dead region or a whole new one (lock order: region, state).
     * fork() waits for every region lock, so the address space is counted
     * only under it: a child never inherits a reservation half made. */
    pthread_mutex_lock(&r->lock);
    int err = hostmem__runs_init(&r->runs, 0);
    pthread_mutex_lock(&m->state_lock);
    if (err) {
        pthread_mutex_unlock(&r->lock);
        region_recycle(m, r);
        pthread_mutex_unlock(&m->state_lock);
        return fail(c, E_OUTOFMEMORY, HOSTMEM_REASON_no_metadata);
    }
    if (FAILED(hr = hostmem__policy_reserve(m, level, rsize))) {
        pthread_mutex_unlock(&r->lock);
        region_recycle(m, r);
        pthread_mutex_unlock(&m->state_lock);
        return fail(c, hr, HOSTMEM_REASON_limit_denied);
    }
    uintptr_t hi_granule = round_up(base + rsize, HOSTMEM_GRANULE);
    hostmem__arena *arena = NULL;
    bool tail_mapped = false;
    if (addr) {
        arena = hostmem__arena_free_at(m, base, round_up(base + rsize, HOSTMEM_GRANULE));
    } else if (!large && rsize <= HOSTMEM_ARENA_MAX_REGION) {
        uint32_t granules = (uint32_t)(round_up(rsize, HOSTMEM_GRANULE) >> HOSTMEM_GRANULE_SHIFT);
        bool lost;
        err = hostmem__arena_carve(m, granules, &base, &arena, &lost);
        if (err && !lost) {
            /* P7: the arena is an optimisation, not a requirement.  When 32 MiB
             * cannot be had (RLIMIT_AS, a full address space), the region gets
             * a mapping of its own, which may still fit. */
            err = 0;
            arena = NULL;
        }
        if (err) {
            pthread_mutex_unlock(&r->lock);
            region_recycle(m, r);
            hostmem__policy_unreserve(m, rsize);
            pthread_mutex_unlock(&m->state_lock);
            return lost ? unrecoverable(c, err) : fail_os(c, err, HOSTMEM_REASON_os_reserve);
        }
    }
    hi_granule = round_up(base + rsize, HOSTMEM_GRANULE);
    if (arena) {
        /* The arena may hold whole-span entries: the region needs nodes. */
        if (hostmem__map_prepare(&m->map, base, hi_granule)) {
            pthread_mutex_unlock(&r->lock);
            region_recycle(m, r);
            hostmem__policy_unreserve(m, rsize);
            pthread_mutex_unlock(&m->state_lock);
            return fail(c, E_OUTOFMEMORY, HOSTMEM_REASON_no_metadata);
        }
        hostmem__arena_mark(arena, base, hi_granule, true);
    } else {
        /* Our own mapping: the syscall runs without the state lock.  At an
         * address, it may also take free arena granules (S4: across an arena's
         * edge); those are already reserved memory, only the rest is mapped. */
        int claim = addr ? hostmem__arena_claim(m, base, hi_granule) : ENOENT;
        bool across = claim == 0;
        tail_mapped = across && (hostmem__map_lookup(&m->map, hi_granule - HOSTMEM_GRANULE) &
                                 HOSTMEM_MAP_TAG_MASK) == HOSTMEM_MAP_TAG_ARENA;
        pthread_mutex_unlock(&m->state_lock);
        /* In an in-flight slot until the region is in the map, so that no
         * query describes the kernel's view of a region half made (S9). */
        hostmem__inflight_begin(addr ? base : 0, addr ? base + rsize : 0);
        void *p = NULL;
        bool lost = false;
        if (claim == EEXIST) {
            err = EEXIST; /* a granule of one of our regions */
        } else if (across) {
            err = hostmem__arena_map_around(m, base, base + rsize, false, &lost);
        } else if (addr) {
            err = os->reserve((void *)base, rsize, &p);
            base = (uintptr_t)p;
        } else {
            err = hostmem__reserve_aligned(rsize, align, &base, &lost);
        }
        if (!err && large)
            os->advise_huge((void *)base, rsize); /* a hint; failure is not an error */
        pthread_mutex_lock(&m->state_lock);
        if (!across)
            hi_granule = round_up(base + rsize, HOSTMEM_GRANULE);
        if (!err && hostmem__map_prepare(&m->map, base, hi_granule)) {
            /* cannot keep it unaccounted */
            if (across)
                hostmem__arena_map_around(m, base, base + rsize, true, &lost);
            else
                lost = os->release((void *)base, rsize) != 0;
            err = ENOMEM;
            c->reason = HOSTMEM_REASON_no_metadata;
        }
        if (err && across)
            hostmem__arena_unclaim(m, base, hi_granule);
        if (err) {
            hostmem__inflight_end();
            pthread_mutex_unlock(&r->lock);
            region_recycle(m, r);
            hostmem__policy_unreserve(m, rsize);
            pthread_mutex_unlock(&m->state_lock);
            if (lost)
                return unrecoverable(c, err);
            if (c->reason == HOSTMEM_REASON_no_metadata)
                return E_OUTOFMEMORY;
            return fail_os(c, err, err == EEXIST ? HOSTMEM_REASON_overlap : HOSTMEM_REASON_os_reserve);
        }
    }
    seq_begin(r);
    atomic_store_explicit(&r->base, base, RELAXED);
    atomic_store_explicit(&r->size, rsize, RELAXED);
    atomic_store_explicit(&r->alloc_protect, protect, RELAXED);
    atomic_store_explicit(&r->committed_pages, 0, RELAXED);
    atomic_store_explicit(&r->live, true, RELAXED);
    atomic_store_explicit(&r->making, making, RELAXED);
    atomic_store_explicit(&r->releasing, false, RELAXED);
    atomic_store_explicit(&r->arena, arena, RELAXED);
    atomic_store_explicit(&r->tail_mapped, tail_mapped, RELAXED);
    atomic_store_explicit(&r->owner, NULL, RELAXED); /* a recycled struct may name a heap */
    atomic_store_explicit(&r->watched, watch, RELAXED);
    r->caller = caller;
    seq_end(r);
    hostmem__map_set(&m->map, base, hi_granule, (uintptr_t)r | HOSTMEM_MAP_TAG_REGION);
    if (!arena) {
        hostmem__inflight_moved();
        hostmem__inflight_end();
    }
    m->policy.regions++;
    if (!making && !watch)
        hostmem__policy_settle(m, true, notice_slot(c));
    pthread_mutex_unlock(&m->state_lock);
    if (watch) {
        /* Still under the region's lock: nobody has touched its pages yet. */
        err = os->watch((void *)base, rsize);
        if (err) {
            HRESULT hr2 = release_region(c, r);
            pthread_mutex_unlock(&r->lock);
            if (FAILED(hr2))
                return hr2;
            pthread_mutex_lock(&m->state_lock);
            region_recycle(m, r);
            pthread_mutex_unlock(&m->state_lock);
            return fail_os(c, err, HOSTMEM_REASON_os_watch);
        }
        if (!making)
            hostmem__policy_settle(m, false, notice_slot(c));
    }
    pthread_mutex_unlock(&r->lock);
    *out = r;
    return S_OK;
}

/* What a region of its own unmaps at release: its pages, and the rest of its
 * last granule when that granule came from an arena. */
static size_t unmap_bytes(const hostmem__region *r)
{
    uintptr_t base = atomic_load_explicit(&r->base, RELAXED);
    size_t size = atomic_load_explicit(&r->size, RELAXED);
    if (atomic_load_explicit(&r->tail_mapped, RELAXED))
        return round_up(base + size, HOSTMEM_GRANULE) - base;
    return size;
}

/* Give a region's address space back (region lock held, r still live).  On
 * failure nothing changed. */
static HRESULT release_region(call *c, hostmem__region *r)
{
    hostmem_manager *m = c->m;
    const hostmem__os *os = hostmem__os_get();
    uintptr_t base = atomic_load_explicit(&r->base, RELAXED);
    size_t size = atomic_load_explicit(&r->size, RELAXED);
    size_t committed = atomic_load_explicit(&r->committed_pages, RELAXED);
    uintptr_t hi = round_up(base + size, HOSTMEM_GRANULE);
    hostmem__notice *notice = notice_slot(c);
    int err;
    hostmem__arena *arena = atomic_load_explicit(&r->arena, RELAXED);
    if (arena) {
        /* Back to the arena: its pages must read zero and be uncharged first
         * (and a write-watch region's tracking must go with the mapping). */
        if ((committed || atomic_load_explicit(&r->watched, RELAXED)) &&
            (err = os->decommit((void *)base, size))) {
            int rerr = restore_access(m, r, 0, region_pages(m, r));
            return rerr ? unrecoverable(c, rerr) : fail_os(c, err, HOSTMEM_REASON_os_decommit);
        }
        /* Out of the map, then dead: the map never names a dead region, so a
         * query that finds r dead only has to look again (S9). */
        pthread_mutex_lock(&m->state_lock);
        hostmem__map_set(&m->map, base, hi, (uintptr_t)arena | HOSTMEM_MAP_TAG_ARENA);
        seq_begin(r);
        atomic_store_explicit(&r->live, false, RELAXED);
        seq_end(r);
        hostmem__arena_mark(arena, base, hi, false);
    } else {
        /* The region stays in the map until the kernel has the range back,
         * marked releasing: a query meanwhile waits for the release rather
         * than describe the kernel's half-released view (S9).  Once unmapped
         * the range may go to another reservation of ours before the map is
         * updated, so only the entries still naming r are cleared. */
        seq_begin(r);
        atomic_store_explicit(&r->releasing, true, RELAXED);
        seq_end(r);
        tls_writing = 1; /* a query from a signal handler here must not wait for us */
        err = os->release((void *)base, unmap_bytes(r));
        pthread_mutex_lock(&m->state_lock);
        if (!err) {
            hostmem__map_clear(&m->map, base, hi, (uintptr_t)r | HOSTMEM_MAP_TAG_REGION);
            hostmem__inflight_moved();
        }
        seq_begin(r);
        atomic_store_explicit(&r->releasing, false, RELAXED);
        if (!err)
            atomic_store_explicit(&r->live, false, RELAXED);
        seq_end(r);
        if (err) {
            pthread_mutex_unlock(&m->state_lock);
            return fail_os(c, err, HOSTMEM_REASON_os_release);
        }
    }
    hostmem__policy_uncharge(m, committed << m->page_shift, notice);
    hostmem__policy_unreserve(m, size);
    m->policy.regions--;
    pthread_mutex_unlock(&m->state_lock);
    return S_OK;
}

/* ---- commit (S5, P1, P2) --------------------------------------------- */

static HRESULT commit(call *c, uintptr_t addr, size_t size, DWORD protect,
                      EMemoryCriticalLevel level, uintptr_t *out_base)
{
    hostmem_manager *m = c->m;
    const hostmem__os *os = hostmem__os_get();
    bool told_low = false;
    uint64_t started = 0, waited = 0;
    for (;;) {
        HRESULT hr;
        hostmem__region *r = region_lock(c, addr, &hr);
        if (!r)
            return FAILED(hr) ? hr : fail(c, HOSTMEM_E_INVALID_ADDRESS, HOSTMEM_REASON_not_in_region);
        size_t first, count, npages = region_pages(m, r);
        if (FAILED(hr = region_pages_of(c, r, addr, size, &first, &count))) {
            pthread_mutex_unlock(&r->lock);
            return hr;
        }
        size_t newly = count - hostmem__runs_pages(&r->runs, npages, first, count,
                                                   HOSTMEM_STATE_COMMITTED, HOSTMEM_STATE_COMMITTED);
        if (hostmem__runs_reserve(&r->runs, 2 + hostmem__guard_headroom(protect))) {
            pthread_mutex_unlock(&r->lock);
            return fail(c, E_OUTOFMEMORY, HOSTMEM_REASON_no_metadata);
        }
        pthread_mutex_lock(&m->state_lock);
        enum hostmem__decision d = HOSTMEM_DECISION_granted;
        if (newly)
            d = hostmem__policy_charge(m, level, newly << m->page_shift, waited);
        if (d == HOSTMEM_DECISION_denied) {
            /* P2: tell the host it is Low and look again; eProcessCritical then
             * waits for frees.  Never while holding the region's lock. */
            pthread_mutex_unlock(&r->lock);
            if (level != eTaskCritical && !told_low) {
                hostmem__policy_low_notice(m, notice_slot(c));
                pthread_mutex_unlock(&m->state_lock);
                hostmem__notice *n = c->notice;
                hostmem__trace_flush();
                for (unsigned i = 0; i < 3; i++)
                    hostmem__notice_deliver(m, &n[i]);
                told_low = true;
                continue;
            }
            DWORD wait_ms = m->policy.config.process_critical_wait_ms;
            if (level == eProcessCritical && wait_ms) {
                uint64_t now = hostmem__now_ns();
                if (!started)
                    started = now;
                uint64_t deadline = started + (uint64_t)wait_ms * 1000000u;
                if (now < deadline) {
                    hr = hostmem__policy_wait(m, deadline);
                    pthread_mutex_unlock(&m->state_lock);
                    hostmem__trace_flush();
                    waited = hostmem__now_ns() - started;
                    if (FAILED(hr))
                        return fail(c, hr, HOSTMEM_REASON_abandoned);
                    continue;
                }
            }
            pthread_mutex_unlock(&m->state_lock);
            return fail(c, E_OUTOFMEMORY, HOSTMEM_REASON_limit_denied);
        }
        pthread_mutex_unlock(&m->state_lock);
        void *lo = page_addr(m, r, first);
        int err = os->protect(lo, count << m->page_shift, hostmem__protect_access(protect));
        if (err) {
            /* Even a fresh region: the kernel may have applied part of it. */
            int rerr = restore_access(m, r, first, count);
            pthread_mutex_lock(&m->state_lock);
            hostmem__policy_uncharge(m, newly << m->page_shift, notice_slot(c));
            pthread_mutex_unlock(&m->state_lock);
            pthread_mutex_unlock(&r->lock);
            return rerr ? unrecoverable(c, rerr) : fail_os(c, err, HOSTMEM_REASON_os_protect);
        }
        seq_begin(r);
        hostmem__runs_apply(&r->runs, npages, first, count, HOSTMEM_PAGES_COMMIT, protect);
        atomic_fetch_add_explicit(&r->committed_pages, newly, RELAXED);
        atomic_store_explicit(&r->making, false, RELAXED); /* made: visible at last */
        seq_end(r);
        if (newly)
            hostmem__policy_settle(m, false, notice_slot(c));
        pthread_mutex_unlock(&r->lock);
        *out_base = (uintptr_t)lo;
        c->ev.base = (uintptr_t)lo;
        c->ev.region_size = count << m->page_shift;
        return S_OK;
    }
}

/* ---- virtual_alloc ----------------------------------------------------------- */

#define ALLOC_KNOWN                                                                        \
    (MEM_COMMIT | MEM_RESERVE | MEM_RESET | MEM_RESET_UNDO | MEM_TOP_DOWN | MEM_LARGE_PAGES | \
     MEM_WRITE_WATCH)

/* S1. */
static HRESULT check_alloc_type(call *c, DWORD type)
{
    DWORD base = type & (MEM_COMMIT | MEM_RESERVE);
    if (type & ~(DWORD)ALLOC_KNOWN)
        return fail(c, E_INVALIDARG, HOSTMEM_REASON_bad_type);
    if (type & (MEM_RESET | MEM_RESET_UNDO))
        return (type == MEM_RESET || type == MEM_RESET_UNDO) ? S_OK
                                                             : fail(c, E_INVALIDARG, HOSTMEM_REASON_bad_type);
    if (!base)
        return fail(c, E_INVALIDARG, HOSTMEM_REASON_bad_type);
    if ((type & MEM_LARGE_PAGES) && base != (MEM_COMMIT | MEM_RESERVE))
        return fail(c, E_INVALIDARG, HOSTMEM_REASON_bad_type);
    if ((type & MEM_WRITE_WATCH) && !(type & MEM_RESERVE))
        return fail(c, E_INVALIDARG, HOSTMEM_REASON_bad_type);
    return S_OK;
}

static HRESULT reset_pages(call *c, uintptr_t addr, size_t size, bool undo)
{
    hostmem_manager *m = c->m;
    HRESULT hr;
    hostmem__region *r = region_lock(c, addr, &hr);
    if (!r)
        return FAILED(hr) ? hr : fail(c, HOSTMEM_E_INVALID_ADDRESS, HOSTMEM_REASON_not_in_region);
    size_t first, count, npages = region_pages(m, r);
    if (FAILED(hr = region_pages_of(c, r, addr, size, &first, &count)))
        goto out;
    c->ev.base = (uintptr_t)page_addr(m, r, first);
    c->ev.region_size = count << m->page_shift;
    if (undo) {
        /* Only pages never reset since their commit are provably intact. */
        if (hostmem__runs_pages(&r->runs, npages, first, count, HOSTMEM_STATE_RESET, HOSTMEM_STATE_RESET))
            hr = fail(c, E_OUTOFMEMORY, HOSTMEM_REASON_data_lost);
        goto out;
    }
    if (!hostmem__runs_pages(&r->runs, npages, first, count, HOSTMEM_STATE_COMMITTED,
                             HOSTMEM_STATE_COMMITTED))
        goto out; /* only reserved pages: nothing to discard */
    if (hostmem__runs_reserve(&r->runs, 2)) {
        hr = fail(c, E_OUTOFMEMORY, HOSTMEM_REASON_no_metadata);
        goto out;
    }
    int err = hostmem__os_get()->reset((void *)c->ev.base, count << m->page_shift);
    if (err) {
        /* The kernel may have applied part of the range before it failed (an
         * madvise over several VMAs stops at the first it refuses): the data
         * of those pages may be gone.  Which pages is unknown, so every
         * committed page of the range is marked reset and MEM_RESET_UNDO fails
         * for them (S10, P7); state and protection are unchanged. */
        seq_begin(r);
        hostmem__runs_apply(&r->runs, npages, first, count, HOSTMEM_PAGES_RESET, 0);
        seq_end(r);
        hr = fail_os(c, err, HOSTMEM_REASON_os_reset);
        goto out;
    }
    seq_begin(r);
    hostmem__runs_apply(&r->runs, npages, first, count, HOSTMEM_PAGES_RESET, 0);
    seq_end(r);
out:
    pthread_mutex_unlock(&r->lock);
    return hr;
}

/* A reserve-and-commit whose commit failed: the new region goes away again,
 * so nothing is left half done (even when the failure was a shutdown).  Its
 * notices join the failed call's.  E_FAIL when the OS refused. */
static HRESULT undo_reserve(call *c, hostmem__region *r, uintptr_t caller)
{
    hostmem_manager *m = c->m;
    call undo;
    call_start(&undo, m, HOSTMEM_OP_release, caller, atomic_load_explicit(&r->base, RELAXED), 0, -1);
    undo.traced = false;
    pthread_mutex_lock(&r->lock);
    HRESULT hr = atomic_load_explicit(&r->live, RELAXED) ? release_region(&undo, r) : S_OK;
    pthread_mutex_unlock(&r->lock);
    if (SUCCEEDED(hr)) {
        pthread_mutex_lock(&m->state_lock);
        region_recycle(m, r);
        pthread_mutex_unlock(&m->state_lock);
    }
    for (unsigned i = 0; i < 3; i++)
        if (undo.notice[i].state)
            *notice_slot(c) = undo.notice[i];
    if (FAILED(hr)) {
        atomic_store(&m->unavailable, 1);
        c->os_errno = undo.os_errno;
        c->reason = HOSTMEM_REASON_rollback_failed;
    }
    return hr;
}

HRESULT hostmem_virtual_alloc(hostmem_manager *m, void *address, SIZE_T size, DWORD type,
                              DWORD protect, EMemoryCriticalLevel level, void **out_mem)
{
    uintptr_t caller = (uintptr_t)__builtin_return_address(0);
    uintptr_t addr = (uintptr_t)address;
    enum hostmem__op op = (type & MEM_RESET)        ? HOSTMEM_OP_reset
                          : (type & MEM_RESET_UNDO) ? HOSTMEM_OP_reset_undo
                          : ((type & MEM_RESERVE) || !address) ? HOSTMEM_OP_reserve
                                                               : HOSTMEM_OP_commit;
    call c;
    call_start(&c, m, op, caller, addr, size, (int32_t)level);
    c.ev.alloc_type = type;
    c.ev.protect = protect;
    if (out_mem)
        *out_mem = NULL;
    if (!m || !out_mem)
        return finish(&c, fail(&c, E_POINTER, HOSTMEM_REASON_null_pointer));
    HRESULT hr = enter(&c);
    if (FAILED(hr))
        return finish(&c, hr);
    if (FAILED(hr = check_alloc_type(&c, type)))
        return finish(&c, hr);
    if ((unsigned)level > eProcessCritical)
        return finish(&c, fail(&c, E_INVALIDARG, HOSTMEM_REASON_bad_type));
    if (FAILED(hr = hostmem__protect_check(protect, m->policy.config.deny_write_execute, &c.reason)))
        return finish(&c, hr);
    if ((type & MEM_WRITE_WATCH) && !hostmem__os_caps_get()->write_watch) /* W1 */
        return finish(&c, fail(&c, E_NOTIMPL, HOSTMEM_REASON_not_implemented));
    if (!size)
        return finish(&c, fail(&c, E_INVALIDARG, HOSTMEM_REASON_zero_size));
    if (!address && (op == HOSTMEM_OP_reserve)) {
        if (size > m->user_end - HOSTMEM_GRANULE)
            return finish(&c, fail(&c, E_OUTOFMEMORY, HOSTMEM_REASON_too_large));
    } else if (FAILED(hr = check_range(&c, addr, size))) {
        return finish(&c, hr);
    }
    if (address && op == HOSTMEM_OP_reserve && addr < HOSTMEM_GRANULE)
        /* Rounds down to 0: the first 64 KiB are never available (Win32
         * answers ERROR_INVALID_PARAMETER), and 0 must not mean "anywhere". */
        return finish(&c, fail(&c, E_INVALIDARG, HOSTMEM_REASON_low_address));
    if (type & MEM_LARGE_PAGES) {
        size_t huge = hostmem__os_caps_get()->huge_page_size;
        if ((addr | size) & (huge - 1))
            return finish(&c, fail(&c, E_INVALIDARG, HOSTMEM_REASON_misaligned));
    }

    if (op == HOSTMEM_OP_reset || op == HOSTMEM_OP_reset_undo) {
        hr = reset_pages(&c, addr, size, op == HOSTMEM_OP_reset_undo);
        if (SUCCEEDED(hr)) /* as Windows: the page-rounded address */
            *out_mem = (void *)c.ev.base;
        return finish(&c, hr);
    }

    uintptr_t result;
    if (op == HOSTMEM_OP_commit) {
        hr = commit(&c, addr, size, protect, level, &result);
        if (SUCCEEDED(hr))
            *out_mem = (void *)result;
        return finish(&c, hr);
    }

    hostmem__region *r = NULL;
    hr = reserve(&c, addr, size, protect, type & MEM_LARGE_PAGES, type & MEM_WRITE_WATCH, level, caller,
                 type & MEM_COMMIT, &r);
    if (FAILED(hr))
        return finish(&c, hr);
    uintptr_t base = atomic_load_explicit(&r->base, RELAXED);
    size_t rsize = atomic_load_explicit(&r->size, RELAXED);
    c.ev.base = base;
    c.ev.region_size = rsize;
    if (!(type & MEM_COMMIT)) {
        *out_mem = (void *)base;
        return finish(&c, S_OK);
    }
    /* Reserve-and-commit: a reserve event, then a commit event. */
    finish(&c, S_OK);
    call_start(&c, m, HOSTMEM_OP_commit, caller, addr, size, (int32_t)level);
    c.ev.alloc_type = type;
    c.ev.protect = protect;
    c.ev.base = base; /* the event names the region even if the commit fails */
    c.ev.region_size = rsize;
    c.maker = r;
    /* The whole new region is committed, as Windows does for both flags. */
    hr = commit(&c, base, rsize, protect, level, &result);
    if (FAILED(hr) && FAILED(undo_reserve(&c, r, caller)))
        hr = E_FAIL;
    if (SUCCEEDED(hr))
        *out_mem = (void *)base;
    return finish(&c, hr);
}

/* ---- virtual_free (S6, S7) ------------------------------------------ */

static HRESULT decommit(call *c, uintptr_t addr, size_t size)
{
    hostmem_manager *m = c->m;
    HRESULT hr;
    hostmem__region *r = region_lock(c, addr, &hr);
    if (!r)
        return FAILED(hr) ? hr : fail(c, HOST_E_INVALIDOPERATION, HOSTMEM_REASON_not_in_region);
    uintptr_t base = atomic_load_explicit(&r->base, RELAXED);
    size_t npages = region_pages(m, r), first, count;
    if (!size) {
        /* Size 0 means the whole region, given an address in its base page. */
        if (page_down(m, addr) != base) {
            hr = fail(c, HOSTMEM_E_INVALID_ADDRESS, HOSTMEM_REASON_not_region_base);
            goto out;
        }
        first = 0;
        count = npages;
    } else {
        if (round_up(addr + size, m->page_size) > region_end(r)) {
            hr = fail(c, E_INVALIDARG, HOSTMEM_REASON_past_region_end);
            goto out;
        }
        first = (page_down(m, addr) - base) >> m->page_shift;
        count = ((round_up(addr + size, m->page_size) - page_down(m, addr)) >> m->page_shift);
    }
    c->ev.base = (uintptr_t)page_addr(m, r, first);
    c->ev.region_size = count << m->page_shift;
    size_t committed = hostmem__runs_pages(&r->runs, npages, first, count, HOSTMEM_STATE_COMMITTED,
                                           HOSTMEM_STATE_COMMITTED);
    if (!committed)
        goto out; /* reserved pages stay reserved: nothing to do */
    if (hostmem__runs_reserve(&r->runs, 2)) {
        hr = fail(c, E_OUTOFMEMORY, HOSTMEM_REASON_no_metadata);
        goto out;
    }
    bool watched = atomic_load_explicit(&r->watched, RELAXED);
    int err;
    /* W1: the new mapping forgets what was written; the books remember it. */
    if (watched && (err = hostmem__watch_latch(m, r, first, count))) {
        hr = fail_os(c, err, HOSTMEM_REASON_os_watch);
        goto out;
    }
    err = hostmem__os_get()->decommit((void *)c->ev.base, count << m->page_shift);
    if (err) {
        int rerr = restore_access(m, r, first, count);
        hr = rerr ? unrecoverable(c, rerr) : fail_os(c, err, HOSTMEM_REASON_os_decommit);
        goto out;
    }
    seq_begin(r);
    hostmem__runs_apply(&r->runs, npages, first, count, HOSTMEM_PAGES_DECOMMIT, 0);
    atomic_fetch_sub_explicit(&r->committed_pages, committed, RELAXED);
    seq_end(r);
    if (watched && (err = hostmem__os_get()->watch((void *)c->ev.base, count << m->page_shift)))
        hr = unrecoverable(c, err); /* the range can no longer be tracked */
    pthread_mutex_lock(&m->state_lock);
    hostmem__policy_uncharge(m, committed << m->page_shift, notice_slot(c));
    pthread_mutex_unlock(&m->state_lock);
out:
    pthread_mutex_unlock(&r->lock);
    return hr;
}

static HRESULT release(call *c, uintptr_t addr)
{
    hostmem_manager *m = c->m;
    HRESULT hr;
    hostmem__region *r = region_lock(c, addr, &hr);
    if (!r)
        return FAILED(hr) ? hr : fail(c, HOST_E_INVALIDOPERATION, HOSTMEM_REASON_not_in_region);
    uintptr_t base = atomic_load_explicit(&r->base, RELAXED);
    if (page_down(m, addr) != base) {
        pthread_mutex_unlock(&r->lock);
        return fail(c, HOSTMEM_E_INVALID_ADDRESS, HOSTMEM_REASON_not_region_base);
    }
    c->ev.base = base;
    c->ev.region_size = atomic_load_explicit(&r->size, RELAXED);
    hr = release_region(c, r);
    pthread_mutex_unlock(&r->lock);
    if (SUCCEEDED(hr)) {
        pthread_mutex_lock(&m->state_lock);
        region_recycle(m, r);
        pthread_mutex_unlock(&m->state_lock);
    }
    return hr;
}

HRESULT hostmem_virtual_free(hostmem_manager *m, void *address, SIZE_T size, DWORD free_type)
{
    uintptr_t addr = (uintptr_t)address;
    call c;
    call_start(&c, m, free_type == MEM_DECOMMIT ? HOSTMEM_OP_decommit : HOSTMEM_OP_release,
               (uintptr_t)__builtin_return_address(0), addr, size, -1);
    c.ev.free_type = free_type;
    if (!m)
        return finish(&c, fail(&c, E_POINTER, HOSTMEM_REASON_null_pointer));
    HRESULT hr = enter(&c);
    if (FAILED(hr))
        return finish(&c, hr);
    if (free_type != MEM_DECOMMIT && free_type != MEM_RELEASE)
        return finish(&c, fail(&c, E_INVALIDARG, HOSTMEM_REASON_bad_type));
    if (free_type == MEM_RELEASE && size)
        return finish(&c, fail(&c, E_INVALIDARG, HOSTMEM_REASON_bad_type));
    if (size && FAILED(hr = check_range(&c, addr, size)))
        return finish(&c, hr);
    if (!size && addr >= m->user_end)
        return finish(&c, fail(&c, E_INVALIDARG, HOSTMEM_REASON_beyond_user_space));
    return finish(&c, free_type == MEM_DECOMMIT ? decommit(&c, addr, size) : release(&c, addr));
}

/* ---- virtual_protect (S8) -------------------------------------------- */

HRESULT hostmem_virtual_protect(hostmem_manager *m, void *address, SIZE_T size, DWORD new_protect,
                                DWORD *old_protect)
{
    uintptr_t addr = (uintptr_t)address;
    call c;
    call_start(&c, m, HOSTMEM_OP_protect, (uintptr_t)__builtin_return_address(0), addr, size, -1);
    c.ev.protect = new_protect;
    if (!m || !old_protect)
        return finish(&c, fail(&c, E_POINTER, HOSTMEM_REASON_null_pointer));
    HRESULT hr = enter(&c);
    if (FAILED(hr))
        return finish(&c, hr);
    if (FAILED(hr = hostmem__protect_check(new_protect, m->policy.config.deny_write_execute, &c.reason)))
        return finish(&c, hr);
    if (FAILED(hr = check_range(&c, addr, size)))
        return finish(&c, hr);
    hostmem__region *r = region_lock(&c, addr, &hr);
    if (!r)
        return finish(&c, FAILED(hr) ? hr : fail(&c, HOSTMEM_E_INVALID_ADDRESS, HOSTMEM_REASON_not_in_region));
    size_t first, count, npages = region_pages(m, r);
    if (FAILED(hr = region_pages_of(&c, r, addr, size, &first, &count)))
        goto out;
    if (hostmem__runs_pages(&r->runs, npages, first, count, HOSTMEM_STATE_COMMITTED,
                            HOSTMEM_STATE_COMMITTED) != count) {
        hr = fail(&c, HOSTMEM_E_INVALID_ADDRESS, HOSTMEM_REASON_not_committed);
        goto out;
    }
    if (hostmem__runs_reserve(&r->runs, 2 + hostmem__guard_headroom(new_protect))) {
        hr = fail(&c, E_OUTOFMEMORY, HOSTMEM_REASON_no_metadata);
        goto out;
    }
    size_t rf, rc;
    uint32_t st;
    hostmem__runs_get(&r->runs, npages, hostmem__runs_find(&r->runs, first), &rf, &rc, &st);
    c.ev.base = (uintptr_t)page_addr(m, r, first);
    c.ev.region_size = count << m->page_shift;
    int err = hostmem__os_get()->protect((void *)c.ev.base, count << m->page_shift,
                                         hostmem__protect_access(new_protect));
    if (err) {
        int rerr = restore_access(m, r, first, count);
        hr = rerr ? unrecoverable(&c, rerr) : fail_os(&c, err, HOSTMEM_REASON_os_protect);
        goto out;
    }
    seq_begin(r);
    hostmem__runs_apply(&r->runs, npages, first, count, HOSTMEM_PAGES_PROTECT, new_protect);
    seq_end(r);
    *old_protect = st & HOSTMEM_STATE_PROTECT_MASK;
    c.ev.old_protect = *old_protect;
out:
    pthread_mutex_unlock(&r->lock);
    return finish(&c, hr);
}

/* ---- virtual_query (S9) ------------------------------------------------ */

/* Visible state of a page: what query reports (the reset mark is not visible). */
static uint32_t visible(uint32_t st) { return st & (HOSTMEM_STATE_COMMITTED | HOSTMEM_STATE_PROTECT_MASK); }

typedef enum { Q_DONE, Q_OUTSIDE, Q_RETRY } query_result;

/* One optimistic read of the region holding addr; Q_RETRY if a writer raced. */
static query_result query_ours(hostmem_manager *m, uintptr_t addr, MEMORY_BASIC_INFORMATION *mbi,
                               uintptr_t *free_end, bool trust, uintptr_t *entry)
{
    uintptr_t e = hostmem__map_lookup(&m->map, addr), page = page_down(m, addr);
    *entry = e;
    if (!e)
        return Q_OUTSIDE;
    if ((e & HOSTMEM_MAP_TAG_MASK) == HOSTMEM_MAP_TAG_ARENA) {
        const hostmem__arena *a = (const hostmem__arena *)(e & ~HOSTMEM_MAP_TAG_MASK);
        uintptr_t end = hostmem__arena_next_used(a, addr);
        if (hostmem__map_lookup(&m->map, addr) != e)
            return Q_RETRY;
        *free_end = end;
        return Q_OUTSIDE;
    }
    hostmem__region *r = (hostmem__region *)(e & ~HOSTMEM_MAP_TAG_MASK);
    uint32_t s0 = atomic_load_explicit(&r->seq, ACQUIRE);
    if ((s0 & 1) && !trust)
        return Q_RETRY;
    uintptr_t base = atomic_load_explicit(&r->base, RELAXED);
    size_t size = atomic_load_explicit(&r->size, RELAXED);
    bool live = atomic_load_explicit(&r->live, RELAXED);
    query_result res = Q_DONE;
    if (!live || addr < base) {
        res = trust ? Q_OUTSIDE : Q_RETRY; /* trusted: the region is going away */
    } else if (atomic_load_explicit(&r->releasing, RELAXED) && !trust) {
        res = Q_RETRY; /* being unmapped: wait for the release to be done (S9) */
    } else if (atomic_load_explicit(&r->making, RELAXED) && addr < base + size) {
        /* A reserve-and-commit not done yet: the space as it was before. */
        *free_end = round_up(base + size, HOSTMEM_GRANULE);
        res = Q_OUTSIDE;
    } else if (addr >= base + size) {
        /* The unusable rest of the region's last granule: free, as on Windows. */
        *free_end = round_up(base + size, HOSTMEM_GRANULE);
        res = Q_OUTSIDE;
        if (*free_end <= page)
            res = trust ? Q_OUTSIDE : Q_RETRY; /* torn: addr is past that granule */
        if (*free_end <= page ||
            (!atomic_load_explicit(&r->arena, RELAXED) && !atomic_load_explicit(&r->tail_mapped, RELAXED)))
            *free_end = 0; /* ask the kernel: something foreign may sit there */
    } else {
        size_t npages = size >> m->page_shift, at = (page - base) >> m->page_shift;
        uint32_t n = hostmem__runs_count(&r->runs), i = hostmem__runs_find(&r->runs, at);
        size_t rf, rc;
        uint32_t st;
        hostmem__runs_get(&r->runs, npages, i, &rf, &rc, &st);
        size_t end = rf + rc;
        for (uint32_t j = i + 1; j < n && end < npages; j++) {
            size_t jf, jc;
            uint32_t js;
            hostmem__runs_get(&r->runs, npages, j, &jf, &jc, &js);
            if (visible(js) != visible(st))
                break;
            end = jf + jc;
        }
        if (end > npages || end <= at)
            end = at + 1; /* torn read; the seqlock check below catches it */
        mbi->BaseAddress = (void *)page;
        mbi->AllocationBase = (void *)base;
        mbi->AllocationProtect = atomic_load_explicit(&r->alloc_protect, RELAXED);
        mbi->RegionSize = (end - at) << m->page_shift;
        mbi->State = (st & HOSTMEM_STATE_COMMITTED) ? MEM_COMMIT : MEM_RESERVE;
        mbi->Protect = (st & HOSTMEM_STATE_COMMITTED) ? (st & HOSTMEM_STATE_PROTECT_MASK) : 0;
        mbi->Type = MEM_PRIVATE;
    }
    /* Same even sequence: r was neither changed nor released and reused
     * meanwhile, so it still holds addr and the map still points at it. */
    seq_fence(memory_order_acquire);
    if (!trust && atomic_load_explicit(&r->seq, RELAXED) != s0)
        return Q_RETRY;
    return res;
}

static void describe_free(MEMORY_BASIC_INFORMATION *mbi, uintptr_t page, uintptr_t end)
{
    if (end <= page) /* only a trusted (unvalidated) read gets here: stay sane */
        end = page + 4096;
    mbi->BaseAddress = (void *)page;
    mbi->AllocationBase = NULL;
    mbi->AllocationProtect = 0;
    mbi->RegionSize = end - page;
    mbi->State = MEM_FREE;
    mbi->Protect = PAGE_NOACCESS;
    mbi->Type = 0;
}

static HRESULT query(call *c, uintptr_t addr, MEMORY_BASIC_INFORMATION *mbi)
{
    hostmem_manager *m = c->m;
    uintptr_t page = page_down(m, addr), free_end = 0, entry = 0;
    hostmem__os_mapping map;
    for (unsigned round = 0;; round++) {
        uint64_t generation = hostmem__inflight_generation();
        query_result res = Q_RETRY;
        /* Writers hold a region's seqlock only to edit memory, never across a
         * syscall: a retry waits for a few stores (or for a release's munmap).
         * A query from a signal handler that interrupted this thread's own
         * write section cannot wait for it, and neither can one whose writer
         * was suspended: after a bounded number of tries it reads what is
         * there (memory-safe: nothing a reader can reach is ever freed while
         * the manager lives). */
        for (unsigned attempt = 0; res == Q_RETRY; attempt++) {
            free_end = 0;
            res = query_ours(m, addr, mbi, &free_end, (tls_writing && attempt > 0) || attempt > 4096, &entry);
            if (res == Q_RETRY && attempt > 64)
                sched_yield();
        }
        if (res == Q_DONE)
            return S_OK;
        if (free_end) {
            describe_free(mbi, page, hostmem__arena_free_extend(m, free_end));
            return S_OK;
        }
        int err = hostmem__os_get()->query(page, &map);
        if (err)
            return fail_os(c, err, HOSTMEM_REASON_os_query);
        /* An anonymous private mapping may be one the manager is making and
         * has not put in the map yet, or one it made (and perhaps released)
         * since the map was read (S9): wait for the first, then look again.
         * In this order: once no slot is open, what those operations did to
         * the map and the generation is visible here. */
        if (!map.found || map.file || map.shared || round >= 64)
            break;
        if (!hostmem__inflight_wait(map.start, map.end) && hostmem__map_lookup(&m->map, addr) == entry &&
            hostmem__inflight_generation() == generation)
            break;
    }
    if (!map.found || map.start > page) {
        uintptr_t end = map.found ? map.start : m->user_end;
        describe_free(mbi, page, hostmem__arena_free_extend(m, end));
        return S_OK;
    }
    /* The kernel merges a foreign anonymous mapping with an adjacent region of
     * ours when their flags match: the foreign part ends where ours begins. */
    uintptr_t start = map.start, end = map.end, g = page & ~(uintptr_t)(HOSTMEM_GRANULE - 1), at;
    if (hostmem__map_find(&m->map, g + HOSTMEM_GRANULE, end, true, &at) && at < end)
        end = at;
    if (start < page && hostmem__map_find(&m->map, start, g + 1, false, &at)) {
        uintptr_t e = hostmem__map_lookup(&m->map, at), ours_end = at + HOSTMEM_GRANULE;
        if ((e & HOSTMEM_MAP_TAG_MASK) == HOSTMEM_MAP_TAG_REGION) {
            const hostmem__region *r = (const hostmem__region *)(e & ~HOSTMEM_MAP_TAG_MASK);
            ours_end = region_end(r);
        }
        if (ours_end > start && ours_end <= page)
            start = ours_end;
    }
    mbi->BaseAddress = (void *)page;
    mbi->AllocationBase = (void *)start;
    mbi->Protect = hostmem__protect_from_access(map.access, map.file && !map.shared);
    mbi->AllocationProtect = mbi->Protect;
    mbi->RegionSize = end - page;
    mbi->State = MEM_COMMIT;
    mbi->Type = map.image ? MEM_IMAGE : map.file ? MEM_MAPPED : MEM_PRIVATE;
    return S_OK;
}

HRESULT hostmem_virtual_query(hostmem_manager *m, const void *address, void *buffer, SIZE_T length,
                              SIZE_T *out_written)
{
    uintptr_t addr = (uintptr_t)address;
    call c;
    call_start(&c, m, HOSTMEM_OP_query, (uintptr_t)__builtin_return_address(0), addr, length, -1);
    if (!m || !buffer || !out_written)
        return finish(&c, fail(&c, E_POINTER, HOSTMEM_REASON_null_pointer));
    /* No statedump poll here: query may run in a signal handler. */
    if (atomic_load_explicit(&m->unavailable, RELAXED) || atomic_load_explicit(&m->shutdown, RELAXED))
        return finish(&c, fail(&c, HOST_E_CLRNOTAVAILABLE,
                               atomic_load(&m->unavailable) ? HOSTMEM_REASON_unavailable : HOSTMEM_REASON_shutdown));
    if (length < sizeof(MEMORY_BASIC_INFORMATION))
        return finish(&c, fail(&c, HOSTMEM_E_BAD_LENGTH, HOSTMEM_REASON_bad_length));
    if (addr >= m->user_end)
        return finish(&c, fail(&c, E_INVALIDARG, HOSTMEM_REASON_beyond_user_space));
    MEMORY_BASIC_INFORMATION mbi;
    memset(&mbi, 0, sizeof mbi); /* padding too: no stack bytes leak to the caller */
    HRESULT hr = query(&c, addr, &mbi);
    if (SUCCEEDED(hr)) {
        memcpy(buffer, &mbi, sizeof mbi);
        *out_written = sizeof mbi;
        c.ev.base = (uintptr_t)mbi.BaseAddress;
        c.ev.region_size = mbi.RegionSize;
        c.ev.protect = mbi.Protect;
        c.ev.alloc_type = mbi.State;
    }
    return finish(&c, hr);
}

/* ---- memory load, notifications, address space (P4-P6) ------------------ */

HRESULT hostmem_get_memory_load(hostmem_manager *m, DWORD *memory_load, SIZE_T *available_bytes)
{
    call c;
    call_start(&c, m, HOSTMEM_OP_memory_load, 0, 0, 0, -1);
    c.traced = false;
    if (!m || !memory_load || !available_bytes)
        return finish(&c, fail(&c, E_POINTER, HOSTMEM_REASON_null_pointer));
    HRESULT hr = enter(&c);
    if (FAILED(hr))
        return finish(&c, hr);
    size_t limit = m->policy.config.commit_limit;
    if (limit) {
        if (FAILED(hr = lock(&c, &m->state_lock)))
            return finish(&c, hr);
        size_t used = m->policy.committed;
        pthread_mutex_unlock(&m->state_lock);
        *memory_load = (DWORD)((unsigned __int128)used * 100 / limit);
        *available_bytes = used < limit ? limit - used : 0;
        return finish(&c, S_OK);
    }
    uint64_t total, avail;
    int err = hostmem__os_meminfo(&total, &avail);
    if (err || !total)
        return finish(&c, fail_os(&c, err ? err : EIO, HOSTMEM_REASON_os_query));
    *memory_load = (DWORD)((total - avail) * 100 / total);
    *available_bytes = (SIZE_T)avail;
    return finish(&c, S_OK);
}

HRESULT hostmem_register_memory_notification_callback(
    hostmem_manager *m, void (*on_notification)(void *context, EMemoryAvailable state), void *context)
{
    call c;
    call_start(&c, m, HOSTMEM_OP_register_callback, 0, 0, 0, -1);
    c.traced = false;
    if (!m || !on_notification)
        return finish(&c, fail(&c, E_POINTER, HOSTMEM_REASON_null_pointer));
    HRESULT hr = enter(&c);
    if (FAILED(hr) || FAILED(hr = lock(&c, &m->state_lock)))
        return finish(&c, hr);
    hostmem__policy_register(m, on_notification, context, notice_slot(&c));
    pthread_mutex_unlock(&m->state_lock);
    return finish(&c, S_OK);
}

static HRESULT address_space_call(hostmem_manager *m, enum hostmem__op op, enum hostmem__as_action action,
                                  uintptr_t start, size_t size)
{
    call c;
    call_start(&c, m, op, 0, start, size, -1);
    c.traced = false;
    if (!m)
        return finish(&c, fail(&c, E_POINTER, HOSTMEM_REASON_null_pointer));
    HRESULT hr = enter(&c);
    if (FAILED(hr) || FAILED(hr = lock(&c, &m->state_lock)))
        return finish(&c, hr);
    hostmem__policy *p = &m->policy;
    hostmem__external **link = &m->externals;
    while (*link && (*link)->start != start)
        link = &(*link)->next;
    switch (action) {
    case HOSTMEM_AS_needs:
        if (p->config.address_space_limit &&
            (size > p->config.address_space_limit ||
             p->reserved + p->external > p->config.address_space_limit - size))
            hr = fail(&c, E_OUTOFMEMORY, HOSTMEM_REASON_limit_denied);
        break;
    case HOSTMEM_AS_acquired: {
        if (*link) {
            hr = fail(&c, HOST_E_INVALIDOPERATION, HOSTMEM_REASON_already_acquired);
            break;
        }
        hostmem__external *x = hostmem__meta_alloc(sizeof *x);
        if (!x) {
            hr = fail(&c, E_OUTOFMEMORY, HOSTMEM_REASON_no_metadata);
            break;
        }
        *x = (hostmem__external){.start = start, .size = size, .next = m->externals};
        m->externals = x;
        p->external += size;
        break;
    }
    case HOSTMEM_AS_released: {
        hostmem__external *x = *link;
        if (!x) {
            hr = fail(&c, HOST_E_INVALIDOPERATION, HOSTMEM_REASON_unknown_external);
            break;
        }
        *link = x->next;
        p->external -= x->size;
        c.ev.size = size = x->size;
        hostmem__meta_free(x, sizeof *x);
        break;
    }
    default:
        break;
    }
    size_t external = p->external;
    pthread_mutex_unlock(&m->state_lock);
    hostmem__trace_address_space(m, action, start, size, hr, external);
    return finish(&c, hr);
}

HRESULT hostmem_needs_virtual_address_space(hostmem_manager *m, void *start, SIZE_T size)
{
    return address_space_call(m, HOSTMEM_OP_needs_address_space, HOSTMEM_AS_needs, (uintptr_t)start, size);
}

HRESULT hostmem_acquired_virtual_address_space(hostmem_manager *m, void *start, SIZE_T size)
{
    return address_space_call(m, HOSTMEM_OP_acquired_address_space, HOSTMEM_AS_acquired, (uintptr_t)start, size);
}

HRESULT hostmem_released_virtual_address_space(hostmem_manager *m, void *start)
{
    return address_space_call(m, HOSTMEM_OP_released_address_space, HOSTMEM_AS_released, (uintptr_t)start, 0);
}

/* ---- stats ----------------------------------------------------------------------- */

static size_t metadata_bytes(hostmem_manager *m)
{
    /* state lock held */
    size_t bytes = sizeof *m + m->metadata_bytes + hostmem__map_bytes(&m->map) - sizeof m->map;
    for (hostmem__region *r = m->all_regions; r; r = r->next_all)
        bytes += hostmem__runs_bytes(&r->runs);
    for (hostmem__external *x = m->externals; x; x = x->next)
        bytes += sizeof *x;
    return bytes;
}

HRESULT hostmem_get_stats(hostmem_manager *m, hostmem_stats *out)
{
    call c;
    call_start(&c, m, HOSTMEM_OP_stats, 0, 0, 0, -1);
    c.traced = false;
    if (!m || !out)
        return finish(&c, fail(&c, E_POINTER, HOSTMEM_REASON_null_pointer));
    HRESULT hr = enter(&c);
    if (FAILED(hr) || FAILED(hr = lock(&c, &m->state_lock)))
        return finish(&c, hr);
    const hostmem__policy *p = &m->policy;
    *out = (hostmem_stats){
        .reserved_bytes = p->reserved,
        .committed_bytes = p->committed,
        .peak_committed_bytes = atomic_load(&p->peak_committed),
        .region_count = p->regions,
        .external_bytes = p->external,
        .peak_reserved_bytes = atomic_load(&p->peak_reserved),
        .page_size = m->page_size,
        .granularity = HOSTMEM_GRANULE,
        .metadata_bytes = metadata_bytes(m),
    };
    hostmem__win32_stats(m, &out->watched_bytes, &out->guard_pages);
    pthread_mutex_unlock(&m->state_lock);
    return finish(&c, S_OK);
}

void hostmem__manager_foreach_region(struct hostmem_manager *m,
                                     void (*fn)(void *ctx, const hostmem__region_info *info), void *ctx)
{
    /* fn emits events, which may call the host's malloc and so hostmem: never
     * under the lock (A5).  Copy a batch under it, call fn after.
     * Region structs are never freed while the manager lives, so `next`
     * stays a valid place to resume; regions made meanwhile join at the head
     * of the list and are not visited (their own reserve event tells them). */
    enum { BATCH = 32 };
    hostmem__region_info batch[BATCH];
    pthread_mutex_lock(&m->state_lock);
    hostmem__region *next = m->all_regions;
    while (next) {
        unsigned n = 0;
        for (; next && n < BATCH; next = next->next_all) {
            hostmem__region *r = next;
            if (!atomic_load_explicit(&r->live, RELAXED))
                continue;
            batch[n++] = (hostmem__region_info){
                .base = atomic_load_explicit(&r->base, RELAXED),
                .size = atomic_load_explicit(&r->size, RELAXED),
                .committed_bytes = atomic_load_explicit(&r->committed_pages, RELAXED) << m->page_shift,
                .alloc_protect = atomic_load_explicit(&r->alloc_protect, RELAXED),
                .caller = r->caller,
            };
        }
        pthread_mutex_unlock(&m->state_lock);
        for (unsigned i = 0; i < n; i++)
            fn(ctx, &batch[i]);
        pthread_mutex_lock(&m->state_lock);
    }
    pthread_mutex_unlock(&m->state_lock);
}

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
}

/* In a child: a reserve-and-commit that another thread of the parent had not
 * finished will never finish here; its region goes away, as a failed one
 * does (its pages were never made accessible: the commit that would have
 * done so holds the region lock across the syscall and the books update). */
static void fork_child_unmake(hostmem_manager *m, hostmem__region *r)
{
    uintptr_t base = atomic_load_explicit(&r->base, RELAXED);
    size_t size = atomic_load_explicit(&r->size, RELAXED);
    uintptr_t hi = round_up(base + size, HOSTMEM_GRANULE);
    hostmem__arena *arena = atomic_load_explicit(&r->arena, RELAXED);
    if (arena) {
        hostmem__map_set(&m->map, base, hi, (uintptr_t)arena | HOSTMEM_MAP_TAG_ARENA);
        hostmem__arena_mark(arena, base, hi, false);
    } else {
        hostmem__os_get()->release((void *)base, unmap_bytes(r)); /* ours alone: still mapped */
        hostmem__map_clear(&m->map, base, hi, (uintptr_t)r | HOSTMEM_MAP_TAG_REGION);
    }
    seq_begin(r);
    atomic_store_explicit(&r->live, false, RELAXED);
    atomic_store_explicit(&r->making, false, RELAXED);
    seq_end(r);
    hostmem__policy_unreserve(m, size); /* no charge: its commit never ran */
    m->policy.regions--;
    region_recycle(m, r);
}

static void fork_child(void)
{
    /* Only this thread exists now; it holds every lock of every manager. */
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
    tls_writing = 0;
    pthread_mutex_unlock(&managers_lock);
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
    };
}

HRESULT hostmem_create(const hostmem_config *config, hostmem_manager **out)
{
    call c;
    call_start(&c, NULL, HOSTMEM_OP_create, 0, 0, 0, -1);
    c.traced = false;
    if (!out)
        return finish(&c, fail(&c, E_POINTER, HOSTMEM_REASON_null_pointer));
    *out = NULL;
    hostmem_config cfg;
    hostmem_config_init(&cfg);
    if (config)
        cfg = *config;
    if (cfg.task_percent > 100 || cfg.appdomain_percent > 100 || cfg.task_percent > cfg.appdomain_percent ||
        cfg.low_memory_percent > 100 || cfg.high_memory_percent > cfg.low_memory_percent)
        return finish(&c, fail(&c, E_INVALIDARG, HOSTMEM_REASON_bad_type));
    if (cfg.guard_handler && hostmem__guard_install()) /* W2 */
        return finish(&c, fail(&c, E_OUTOFMEMORY, HOSTMEM_REASON_no_metadata));
    hostmem_manager *m = hostmem__meta_alloc(sizeof *m);
    if (!m)
        return finish(&c, fail(&c, E_OUTOFMEMORY, HOSTMEM_REASON_no_metadata));
    const hostmem__os_caps *caps = hostmem__os_caps_get();
    m->page_size = caps->page_size;
    m->page_shift = (unsigned)__builtin_ctzl(caps->page_size);
    m->user_end = caps->user_end;
    pthread_mutex_init(&m->state_lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&m->freed, &ca);
    pthread_condattr_destroy(&ca);
    hostmem__map_init(&m->map);
    hostmem__policy_init(&m->policy, &cfg);
    pthread_once(&atfork_once, atfork_install);
    pthread_mutex_lock(&managers_lock);
    m->next_manager = managers;
    managers = m;
    pthread_mutex_unlock(&managers_lock);
    hostmem__fault_register(m); /* W2: hostmem_handle_fault() finds its regions */
    hostmem__trace_manager_create(m, cfg.commit_limit, cfg.address_space_limit, m->page_size);
    *out = m;
    return finish(&c, S_OK);
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
    hostmem__unreturned lost = {0, 0};
    hostmem__region *r = m->all_regions;
    while (r) {
        hostmem__region *next = r->next_all;
        if (atomic_load_explicit(&r->live, RELAXED) && !atomic_load_explicit(&r->arena, RELAXED))
            hostmem__release_retry((void *)atomic_load_explicit(&r->base, RELAXED), unmap_bytes(r), &lost);
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

/* ---- for watch.c and guard.c ------------------------------------------------------ */

hostmem__region *hostmem__region_acquire(hostmem_manager *m, uintptr_t addr, HRESULT *hr,
                                         enum hostmem__reason *why)
{
    call c = {.m = m, .reason = HOSTMEM_REASON_none};
    hostmem__region *r = region_lock(&c, addr, hr);
    *why = c.reason;
    return r;
}

void hostmem__region_write_begin(hostmem__region *r) { seq_begin(r); }
void hostmem__region_write_end(hostmem__region *r) { seq_end(r); }
