/*
 * alloc.c: hostmem_virtual_alloc: reserve (S4), commit (S5, P1, P2), reset
 * and reset-undo, and a reserve-and-commit as one step (S9).  Each step
 * validates first, asks the policy, makes the OS calls, and only when they
 * succeeded updates the books; a failed OS call is rolled back from the books
 * (which still describe the state before the call).
 */
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

#define RELAXED memory_order_relaxed

/* ---- reserve (S4) ------------------------------------------------------ */

/* `watch`: a write-watch region (W1), tracked before anyone can write to it.
 * `making`: a reserve-and-commit, whose region stays invisible to every other
 * call and queries as free until its commit is done (S9); it settles (raises
 * the peaks) after that commit. */
static HRESULT alloc_reserve(hostmem__call *c, uintptr_t addr, size_t size, DWORD protect, bool large, bool watch,
                             EMemoryCriticalLevel level, uintptr_t caller, bool making, hostmem__region **out)
{
    hostmem_manager *m = c->m;
    const hostmem__os *os = hostmem__os_get();
    const void *owner = hostmem__region_owner_next; /* this call's alone, not a nested one's */
    hostmem__region_owner_next = NULL;
    size_t align = large ? hostmem__os_caps_get()->huge_page_size : HOSTMEM_GRANULE;
    uintptr_t base = addr & ~(uintptr_t)(HOSTMEM_GRANULE - 1);
    size_t rsize = addr ? hostmem__round_up(addr + size, m->page_size) - base : hostmem__round_up(size, m->page_size);
    if (large)
        rsize = hostmem__round_up(rsize, align);
    HRESULT hr = hostmem__call_lock(c, &m->state_lock);
    if (FAILED(hr))
        return hr;
    hostmem__region *r = hostmem__region_new(m);
    pthread_mutex_unlock(&m->state_lock);
    if (!r)
        return hostmem__call_fail(c, E_OUTOFMEMORY, HOSTMEM_REASON_no_metadata);
    /* Hold the new region's lock until it is complete: a thread that found
     * this struct in its previous life and waits for its lock then sees
     * either a dead region or a whole new one (lock order: region, state).
     * fork() waits for every region lock, so the address space is counted
     * only under it: a child never inherits a reservation half made. */
    pthread_mutex_lock(&r->lock);
    int err = hostmem__runs_init(&r->runs, 0);
    pthread_mutex_lock(&m->state_lock);
    if (err) {
        hr = hostmem__call_fail(c, E_OUTOFMEMORY, HOSTMEM_REASON_no_metadata);
        goto undo_region;
    }
    if (FAILED(hr = hostmem__policy_reserve(m, level, rsize))) {
        hr = hostmem__call_fail(c, hr, HOSTMEM_REASON_limit_denied);
        goto undo_region;
    }
    uintptr_t hi_granule = hostmem__round_up(base + rsize, HOSTMEM_GRANULE);
    hostmem__arena *arena = NULL;
    bool tail_mapped = false;
    if (addr) {
        arena = hostmem__arena_free_at(m, base, hostmem__round_up(base + rsize, HOSTMEM_GRANULE));
    } else if (!large && rsize <= HOSTMEM_ARENA_MAX_REGION) {
        uint32_t granules = (uint32_t)(hostmem__round_up(rsize, HOSTMEM_GRANULE) >> HOSTMEM_GRANULE_SHIFT);
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
            hr = lost ? hostmem__call_unrecoverable(c, err) : hostmem__call_fail_os(c, err, HOSTMEM_REASON_os_reserve);
            goto undo_reserved;
        }
    }
    hi_granule = hostmem__round_up(base + rsize, HOSTMEM_GRANULE);
    if (arena) {
        /* The arena may hold whole-span entries: the region needs nodes. */
        if (hostmem__map_prepare(&m->map, base, hi_granule)) {
            hr = hostmem__call_fail(c, E_OUTOFMEMORY, HOSTMEM_REASON_no_metadata);
            goto undo_reserved;
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
            hi_granule = hostmem__round_up(base + rsize, HOSTMEM_GRANULE);
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
            if (lost)
                hr = hostmem__call_unrecoverable(c, err);
            else if (c->reason == HOSTMEM_REASON_no_metadata)
                hr = E_OUTOFMEMORY;
            else
                hr = hostmem__call_fail_os(c, err, err == EEXIST ? HOSTMEM_REASON_overlap : HOSTMEM_REASON_os_reserve);
            goto undo_reserved;
        }
    }
    hostmem__region_write_begin(r);
    atomic_store_explicit(&r->base, base, RELAXED);
    atomic_store_explicit(&r->size, rsize, RELAXED);
    atomic_store_explicit(&r->alloc_protect, protect, RELAXED);
    atomic_store_explicit(&r->committed_pages, 0, RELAXED);
    atomic_store_explicit(&r->live, true, RELAXED);
    atomic_store_explicit(&r->making, making, RELAXED);
    atomic_store_explicit(&r->releasing, false, RELAXED);
    atomic_store_explicit(&r->arena, arena, RELAXED);
    atomic_store_explicit(&r->tail_mapped, tail_mapped, RELAXED);
    atomic_store_explicit(&r->owner, owner, RELAXED); /* a recycled struct may name a heap */
    atomic_store_explicit(&r->watched, watch, RELAXED);
    hostmem__guard_forget(r, NULL, SIZE_MAX); /* hits of the struct's last life */
    r->caller = caller;
    hostmem__region_write_end(r);
    hostmem__call_order(c); /* in the map now, under the state lock */
    hostmem__region_enter_map(m, r, base, hi_granule);
    if (!arena) {
        hostmem__inflight_moved();
        hostmem__inflight_end();
    }
    m->policy.regions++;
    /* A write-watch region's pages are tracked as they are committed
     * (hostmem__watch_protect): a reservation costs the kernel nothing. */
    if (!making)
        hostmem__policy_settle(m, true, hostmem__call_notice(c));
    pthread_mutex_unlock(&m->state_lock);
    pthread_mutex_unlock(&r->lock);
    *out = r;
    return S_OK;

    /* The way back before the region is in the map (state lock held, the
     * region's lock too): the address space counted, then the struct. */
undo_reserved:
    hostmem__policy_unreserve(m, rsize);
undo_region:
    pthread_mutex_unlock(&r->lock);
    hostmem__region_recycle(m, r);
    pthread_mutex_unlock(&m->state_lock);
    return hr;
}

/* ---- commit (S5, P1, P2) --------------------------------------------- */

/* A commit denied (P2) tries again: what it has done so far. */
typedef struct alloc_retry {
    bool told_low;             /* the host was told Low (once per call) */
    uint64_t started, waited;  /* eProcessCritical: when the wait began, how long so far */
    size_t denied;             /* the charge the last try was denied */
} alloc_retry;

/* alloc_commit_once's answer to a denial: the state lock is still held. */
#define ALLOC_DENIED ((HRESULT)1)

/* One try at a commit (region lock taken and dropped here): S_OK, a
 * failure, or ALLOC_DENIED with the state lock held (and the region's lock
 * dropped: it is never held while waiting). */
static inline HRESULT alloc_commit_once(hostmem__call *c, uintptr_t addr, size_t size, DWORD protect,
                                        EMemoryCriticalLevel level, alloc_retry *w, uintptr_t *out_base)
{
    hostmem_manager *m = c->m;
    HRESULT hr;
    size_t first, count;
    hostmem__region *r = hostmem__region_lock_range(c, addr, size, &first, &count, &hr);
    if (!r)
        return hr;
    size_t npages = hostmem__region_pages(m, r);
    size_t newly = count - hostmem__runs_pages(&r->runs, npages, first, count,
                                               HOSTMEM_STATE_COMMITTED, HOSTMEM_STATE_COMMITTED);
    if (hostmem__region_runs_room(m, r, 2, (protect & PAGE_GUARD) ? count : 0)) {
        hr = hostmem__call_fail(c, E_OUTOFMEMORY, HOSTMEM_REASON_no_metadata);
        goto out;
    }
    bool unlimited = hostmem__policy_unlimited(&m->policy);
    enum hostmem__decision d = HOSTMEM_DECISION_granted;
    if (unlimited) {
        if (newly)
            hostmem__policy_charge_unlimited(m, newly << m->page_shift);
    } else {
        pthread_mutex_lock(&m->state_lock);
        if (newly)
            d = hostmem__policy_charge(m, level, newly << m->page_shift, w->waited);
    }
    if (d == HOSTMEM_DECISION_denied) {
        w->denied = newly << m->page_shift;
        hr = ALLOC_DENIED; /* the state lock stays held */
        goto out;
    }
    if (!unlimited)
        pthread_mutex_unlock(&m->state_lock);
    void *lo = hostmem__region_page_addr(m, r, first);
    int err = hostmem__os_get()->protect(lo, count << m->page_shift, hostmem__protect_access(protect));
    enum hostmem__reason reason = HOSTMEM_REASON_os_protect;
    /* W1: pages new to the commit start unwritten.  After the kernel took
     * the commit: marking the pages costs per page, a refusal must not. */
    if (!err && newly && atomic_load_explicit(&r->watched, RELAXED) &&
        (err = hostmem__watch_protect(m, r, first, count, false)))
        reason = HOSTMEM_REASON_os_watch;
    if (err) {
        /* Even a fresh region: the kernel may have applied part of it. */
        int rerr = hostmem__region_restore_access(m, r, first, count);
        if (unlimited) {
            hostmem__policy_uncharge_unlimited(m, newly << m->page_shift);
        } else {
            pthread_mutex_lock(&m->state_lock);
            hostmem__policy_uncharge(m, newly << m->page_shift, hostmem__call_notice(c));
            pthread_mutex_unlock(&m->state_lock);
        }
        hr = rerr ? hostmem__call_unrecoverable(c, rerr) : hostmem__call_fail_os(c, err, reason);
        goto out;
    }
    hostmem__region_write_begin(r);
    hostmem__runs_apply(&r->runs, npages, first, count, HOSTMEM_PAGES_COMMIT, protect);
    hostmem__guard_forget(r, lo, count << m->page_shift);
    atomic_fetch_add_explicit(&r->committed_pages, newly, RELAXED);
    atomic_store_explicit(&r->making, false, RELAXED); /* made: visible at last */
    hostmem__region_write_end(r);
    hostmem__call_order(c);
    hostmem__assert(hostmem__region_charge_ok(m, r));
    if (newly)
        hostmem__policy_settle(m, false, hostmem__call_notice(c));
    *out_base = (uintptr_t)lo;
    c->ev.base = (uintptr_t)lo;
    c->ev.region_size = count << m->page_shift;
out:
    pthread_mutex_unlock(&r->lock);
    return hr;
}

/* P2 after a denial (state lock held, dropped here): tell the host it is
 * Low and look again; eProcessCritical then waits for frees, up to its
 * deadline.  S_OK: try again. */
static HRESULT alloc_commit_denied(hostmem__call *c, EMemoryCriticalLevel level, alloc_retry *w)
{
    hostmem_manager *m = c->m;
    HRESULT hr = S_OK;
    bool low = level != eTaskCritical && !w->told_low, waiting = false;
    DWORD wait_ms = m->policy.config.process_critical_wait_ms;
    if (low) {
        hostmem__policy_low_notice(m, hostmem__call_notice(c));
        w->told_low = true;
    } else if (level == eProcessCritical && wait_ms) {
        uint64_t now = hostmem__now_ns();
        if (!w->started)
            w->started = now;
        uint64_t deadline = w->started + (uint64_t)wait_ms * 1000000u;
        if ((waiting = now < deadline))
            hr = hostmem__policy_wait(m, deadline);
    }
    /* Denied for good: the request's one decision (the tries before it were
     * not decisions yet). */
    if (!low && (!waiting || FAILED(hr)))
        hostmem__policy_denied(m, level, w->denied, w->started ? hostmem__now_ns() - w->started : 0);
    pthread_mutex_unlock(&m->state_lock);
    if (low || waiting)
        hostmem__trace_flush();
    if (low)
        for (unsigned i = 0; i < 3; i++)
            hostmem__notice_deliver(m, &c->notice[i]);
    if (waiting) {
        w->waited = hostmem__now_ns() - w->started;
        if (FAILED(hr))
            hr = hostmem__call_fail(c, hr, HOSTMEM_REASON_abandoned);
    } else if (!low) {
        hr = hostmem__call_fail(c, E_OUTOFMEMORY, HOSTMEM_REASON_limit_denied);
    }
    return hr;
}

static inline HRESULT alloc_commit(hostmem__call *c, uintptr_t addr, size_t size, DWORD protect,
                                   EMemoryCriticalLevel level, uintptr_t *out_base)
{
    alloc_retry w = {.told_low = false, .started = 0, .waited = 0, .denied = 0};
    HRESULT hr;
    while ((hr = alloc_commit_once(c, addr, size, protect, level, &w, out_base)) == ALLOC_DENIED)
        if (FAILED(hr = alloc_commit_denied(c, level, &w)))
            break;
    return hr;
}

/* ---- virtual_alloc ----------------------------------------------------------- */

#define ALLOC_KNOWN                                                                        \
    (MEM_COMMIT | MEM_RESERVE | MEM_RESET | MEM_RESET_UNDO | MEM_TOP_DOWN | MEM_LARGE_PAGES | \
     MEM_WRITE_WATCH)

/* S1. */
static HRESULT alloc_check_type(hostmem__call *c, DWORD type)
{
    DWORD base = type & (MEM_COMMIT | MEM_RESERVE);
    if (type & ~(DWORD)ALLOC_KNOWN)
        return hostmem__call_fail(c, E_INVALIDARG, HOSTMEM_REASON_bad_type);
    if (type & (MEM_RESET | MEM_RESET_UNDO))
        return (type == MEM_RESET || type == MEM_RESET_UNDO) ? S_OK
                                                             : hostmem__call_fail(c, E_INVALIDARG, HOSTMEM_REASON_bad_type);
    if (!base)
        return hostmem__call_fail(c, E_INVALIDARG, HOSTMEM_REASON_bad_type);
    if ((type & MEM_LARGE_PAGES) && base != (MEM_COMMIT | MEM_RESERVE))
        return hostmem__call_fail(c, E_INVALIDARG, HOSTMEM_REASON_bad_type);
    if ((type & MEM_WRITE_WATCH) && !(type & MEM_RESERVE))
        return hostmem__call_fail(c, E_INVALIDARG, HOSTMEM_REASON_bad_type);
    return S_OK;
}

static HRESULT alloc_reset(hostmem__call *c, uintptr_t addr, size_t size, bool undo)
{
    hostmem_manager *m = c->m;
    HRESULT hr;
    size_t first, count;
    hostmem__region *r = hostmem__region_lock_range(c, addr, size, &first, &count, &hr);
    if (!r)
        return hr;
    size_t npages = hostmem__region_pages(m, r);
    c->ev.base = (uintptr_t)hostmem__region_page_addr(m, r, first);
    c->ev.region_size = count << m->page_shift;
    if (undo) {
        /* Only pages never reset since their commit are provably intact. */
        if (hostmem__runs_pages(&r->runs, npages, first, count, HOSTMEM_STATE_RESET, HOSTMEM_STATE_RESET))
            hr = hostmem__call_fail(c, E_OUTOFMEMORY, HOSTMEM_REASON_data_lost);
        goto out;
    }
    if (!hostmem__runs_pages(&r->runs, npages, first, count, HOSTMEM_STATE_COMMITTED,
                             HOSTMEM_STATE_COMMITTED))
        goto out; /* only reserved pages: nothing to discard */
    if (hostmem__region_runs_room(m, r, 2, 0)) {
        hr = hostmem__call_fail(c, E_OUTOFMEMORY, HOSTMEM_REASON_no_metadata);
        goto out;
    }
    int err = hostmem__os_get()->reset((void *)c->ev.base, count << m->page_shift);
    if (err) {
        /* The kernel may have applied part of the range before it failed (an
         * madvise over several VMAs stops at the first it refuses): the data
         * of those pages may be gone.  Which pages is unknown, so every
         * committed page of the range is marked reset and MEM_RESET_UNDO fails
         * for them (S10, P7); state and protection are unchanged. */
        hostmem__region_write_begin(r);
        hostmem__runs_apply(&r->runs, npages, first, count, HOSTMEM_PAGES_RESET, 0);
        hostmem__region_write_end(r);
        hr = hostmem__call_fail_os(c, err, HOSTMEM_REASON_os_reset);
        goto out;
    }
    hostmem__region_write_begin(r);
    hostmem__runs_apply(&r->runs, npages, first, count, HOSTMEM_PAGES_RESET, 0);
    hostmem__region_write_end(r);
out:
    hostmem__call_order(c);
    pthread_mutex_unlock(&r->lock);
    return hr;
}

/* A reserve-and-commit whose commit failed: the new region goes away again,
 * so nothing is left half done (even when the failure was a shutdown).  Its
 * notices join the failed call's.  E_FAIL when the OS refused. */
static HRESULT alloc_undo_reserve(hostmem__call *c, hostmem__region *r, uintptr_t caller)
{
    hostmem_manager *m = c->m;
    hostmem__call undo;
    hostmem__call_start(&undo, m, HOSTMEM_OP_release, caller, atomic_load_explicit(&r->base, RELAXED), 0, -1);
    undo.traced = false;
    pthread_mutex_lock(&r->lock);
    HRESULT hr = atomic_load_explicit(&r->live, RELAXED) ? hostmem__free_region(&undo, r) : S_OK;
    pthread_mutex_unlock(&r->lock);
    if (SUCCEEDED(hr)) {
        pthread_mutex_lock(&m->state_lock);
        hostmem__region_recycle(m, r);
        pthread_mutex_unlock(&m->state_lock);
    }
    for (unsigned i = 0; i < 3; i++)
        if (undo.notice[i].state)
            *hostmem__call_notice(c) = undo.notice[i];
    if (FAILED(hr)) {
        atomic_store(&m->unavailable, 1);
        c->os_errno = undo.os_errno;
        c->reason = HOSTMEM_REASON_rollback_failed;
    }
    return hr;
}

/* A MEM_RESERVE, or a MEM_RESERVE | MEM_COMMIT: two calls in one (S9), the
 * reserve's event then the commit's.  The reserve's record is held here and
 * the call records the commit from there; the entry point's finish emits
 * both (hostmem__call_commit_half).  *out_base: the region's base. */
static HRESULT alloc_reserve_commit(hostmem__call *c, uintptr_t addr, size_t size, DWORD type, DWORD protect,
                                    EMemoryCriticalLevel level, uintptr_t caller, uintptr_t *out_base)
{
    hostmem__region *r = NULL;
    HRESULT hr = alloc_reserve(c, addr, size, protect, type & MEM_LARGE_PAGES, type & MEM_WRITE_WATCH, level,
                               caller, type & MEM_COMMIT, &r);
    if (FAILED(hr))
        return hr;
    uintptr_t base = atomic_load_explicit(&r->base, RELAXED), result;
    size_t rsize = atomic_load_explicit(&r->size, RELAXED);
    c->ev.base = base;
    c->ev.region_size = rsize;
    if (type & MEM_COMMIT) {
        hostmem__call_commit_half(c, caller, addr, size, (int32_t)level);
        c->ev.alloc_type = type;
        c->ev.protect = protect;
        c->ev.base = base; /* the event names the region even if the commit fails */
        c->ev.region_size = rsize;
        c->maker = r;
        /* The whole new region is committed, as Windows does for both flags. */
        hr = alloc_commit(c, base, rsize, protect, level, &result);
        if (FAILED(hr) && FAILED(alloc_undo_reserve(c, r, caller)))
            hr = E_FAIL;
    }
    *out_base = base;
    return hr;
}

/* The call's op, from its type (S1 rejects the combinations not named). */
static inline enum hostmem__op alloc_op(DWORD type, const void *address)
{
    return (type & MEM_RESET)                     ? HOSTMEM_OP_reset
           : (type & MEM_RESET_UNDO)              ? HOSTMEM_OP_reset_undo
           : ((type & MEM_RESERVE) || !address) ? HOSTMEM_OP_reserve
                                                  : HOSTMEM_OP_commit;
}

/* The worker: the checks of S1-S3 in their order, then reset, commit or
 * reserve. */
static inline HRESULT alloc_virtual(hostmem__call *c, hostmem_manager *m, uintptr_t addr, size_t size,
                                    DWORD type, DWORD protect, EMemoryCriticalLevel level, void **out_mem,
                                    uintptr_t caller)
{
    enum hostmem__op op = alloc_op(type, (const void *)addr); /* as the start read it: no reload */
    HRESULT hr;
    c->ev.alloc_type = type;
    c->ev.protect = protect;
    if (out_mem)
        *out_mem = NULL;
    if (!m || !out_mem)
        return hostmem__call_fail(c, E_POINTER, HOSTMEM_REASON_null_pointer);
    if (FAILED(hr = hostmem__call_enter(c)))
        return hr;
    if (FAILED(hr = alloc_check_type(c, type)))
        return hr;
    if ((unsigned)level > eProcessCritical)
        return hostmem__call_fail(c, E_INVALIDARG, HOSTMEM_REASON_bad_type);
    if (FAILED(hr = hostmem__protect_check(protect, m->policy.config.deny_write_execute, &c->reason)))
        return hr;
    if (type & MEM_WRITE_WATCH) { /* W1 */
        int err = hostmem__os_watch_ready();
        if (err == EOPNOTSUPP)
            return hostmem__call_fail(c, E_NOTIMPL, HOSTMEM_REASON_not_implemented);
        if (err)
            return hostmem__call_fail_os(c, err, HOSTMEM_REASON_os_watch);
    }
    if (!size)
        return hostmem__call_fail(c, E_INVALIDARG, HOSTMEM_REASON_zero_size);
    if (!addr && op == HOSTMEM_OP_reserve) {
        if (size > m->user_end - HOSTMEM_GRANULE)
            return hostmem__call_fail(c, E_OUTOFMEMORY, HOSTMEM_REASON_too_large);
    } else if (FAILED(hr = hostmem__call_check_range(c, addr, size))) {
        return hr;
    }
    if (addr && op == HOSTMEM_OP_reserve && addr < HOSTMEM_GRANULE)
        /* Rounds down to 0: the first 64 KiB are never available (Win32
         * answers ERROR_INVALID_PARAMETER), and 0 must not mean "anywhere". */
        return hostmem__call_fail(c, E_INVALIDARG, HOSTMEM_REASON_low_address);
    if ((type & MEM_LARGE_PAGES) && ((addr | size) & (hostmem__os_caps_get()->huge_page_size - 1)))
        return hostmem__call_fail(c, E_INVALIDARG, HOSTMEM_REASON_misaligned);

    uintptr_t result;
    if (op == HOSTMEM_OP_reset || op == HOSTMEM_OP_reset_undo) {
        hr = alloc_reset(c, addr, size, op == HOSTMEM_OP_reset_undo);
        result = c->ev.base; /* as Windows: the page-rounded address */
    } else if (op == HOSTMEM_OP_commit) {
        hr = alloc_commit(c, addr, size, protect, level, &result);
    } else {
        hr = alloc_reserve_commit(c, addr, size, type, protect, level, caller, &result);
    }
    if (SUCCEEDED(hr))
        *out_mem = (void *)result;
    return hr;
}

HRESULT hostmem_virtual_alloc(hostmem_manager *m, void *address, SIZE_T size, DWORD type,
                              DWORD protect, EMemoryCriticalLevel level, void **out_mem)
{
    hostmem__call c;
    hostmem__call_start(&c, m, alloc_op(type, address), hostmem__caller((uintptr_t)__builtin_return_address(0)),
                        (uintptr_t)address, size, (int32_t)level);
    return hostmem__call_finish(&c, alloc_virtual(&c, m, (uintptr_t)address, size, type, protect, level, out_mem,
                                                  (uintptr_t)c.ev.caller));
}
