/*
 * region.c: region life and the region seqlock.  Finding and locking the
 * region that holds an address, the pages of a range inside it, putting the
 * kernel's view back to what its runs say, the pool of region structs (never
 * freed while the manager lives, so a lock-free reader can always touch
 * one), and the walk over live regions for the statedump.
 */
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

#define RELAXED memory_order_relaxed

/* Set while this thread is inside a region's seqlock write section, so a
 * query from a signal handler that interrupted it does not wait for itself. */
__thread int hostmem__region_writing __attribute__((tls_model("initial-exec")));
__thread const void *hostmem__region_owner_next __attribute__((tls_model("initial-exec")));
__thread uintptr_t hostmem__caller_next __attribute__((tls_model("initial-exec")));

/* Find the region holding addr and lock it.  NULL with *hr = S_OK: addr is in
 * no region of this manager.  NULL with a failed *hr: the lock failed. */
hostmem__region *hostmem__region_lock(hostmem__call *c, uintptr_t addr, HRESULT *hr)
{
    hostmem_manager *m = c->m;
    *hr = S_OK;
    for (unsigned tries = 0;; tries++) {
        if (tries == 1u << 20) {
            /* The map keeps naming a region that does not hold addr: a broken
             * invariant, never a state to wait out (P7: unavailable from now on). */
            atomic_store(&m->unavailable, 1);
            *hr = hostmem__call_fail(c, E_FAIL, HOSTMEM_REASON_inconsistent);
            return NULL;
        }
        uintptr_t e = hostmem__map_lookup(&m->map, addr);
        if ((e & HOSTMEM_MAP_TAG_MASK) != HOSTMEM_MAP_TAG_REGION)
            return NULL;
        hostmem__region *r = (hostmem__region *)(e & ~HOSTMEM_MAP_TAG_MASK);
        if (FAILED(*hr = hostmem__call_lock(c, &r->lock)))
            return NULL;
        if (atomic_load_explicit(&r->live, RELAXED) && addr >= atomic_load_explicit(&r->base, RELAXED)) {
            /* A reserve-and-commit in the making is one step (S9): until it
             * is done, no other call finds its region. */
            if (addr < hostmem__region_end(r) && (!atomic_load_explicit(&r->making, RELAXED) || r == c->maker))
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
static HRESULT region_pages_of(hostmem__call *c, hostmem__region *r, uintptr_t addr, size_t size,
                               size_t *first, size_t *count)
{
    hostmem_manager *m = c->m;
    uintptr_t lo = hostmem__page_down(m, addr), hi = hostmem__round_up(addr + size, m->page_size);
    if (hi > hostmem__region_end(r))
        return hostmem__call_fail(c, HOSTMEM_E_INVALID_ADDRESS, HOSTMEM_REASON_crosses_region);
    *first = (lo - atomic_load_explicit(&r->base, RELAXED)) >> m->page_shift;
    *count = (hi - lo) >> m->page_shift;
    return S_OK;
}

/* The region holding [addr, addr + size), locked, with the range's first
 * page index and page count in it.  NULL with a failed *hr: addr is in no
 * region (not_in_region), the range leaves it (crosses_region), or the lock
 * failed; no lock is held then. */
hostmem__region *hostmem__region_lock_range(hostmem__call *c, uintptr_t addr, size_t size, size_t *first,
                                            size_t *count, HRESULT *hr)
{
    hostmem__region *r = hostmem__region_lock(c, addr, hr);
    if (!r) {
        if (SUCCEEDED(*hr))
            *hr = hostmem__call_fail(c, HOSTMEM_E_INVALID_ADDRESS, HOSTMEM_REASON_not_in_region);
        return NULL;
    }
    if (FAILED(*hr = region_pages_of(c, r, addr, size, first, count))) {
        pthread_mutex_unlock(&r->lock);
        return NULL;
    }
    return r;
}

/* Put the kernel's view of pages [first, first + count) back to what the runs
 * say (they still describe the state before the failed call).  0 or errno. */
int hostmem__region_restore_access(hostmem_manager *m, hostmem__region *r, size_t first, size_t count)
{
    const hostmem__os *os = hostmem__os_get();
    size_t npages = hostmem__region_pages(m, r), end = first + count;
    for (size_t lo = first, hi; lo < end; lo = hi) {
        uint32_t st = hostmem__runs_at(&r->runs, npages, lo, end, &hi);
        void *at = hostmem__region_page_addr(m, r, lo);
        size_t len = (hi - lo) << m->page_shift;
        int err;
        if (st & HOSTMEM_STATE_COMMITTED) {
            err = os->protect(at, len, hostmem__protect_access(st & HOSTMEM_STATE_PROTECT_MASK));
        } else {
            /* Reserved: a new mapping, as a decommit makes (S6), since once
             * accessible the old one keeps the kernel's commit charge under
             * PROT_NONE.  Its contents were never the host's to keep. */
            err = os->decommit(at, len);
            if (err)
                err = os->protect(at, len, HOSTMEM_ACCESS_NONE);
        }
        if (err)
            return err;
    }
    return 0;
}

/* ---- summaries (types.h): a whole region in one map word ------------------------ */

/* The parts of r's summary that stay while it is in the map (its allocation
 * protection, first granule and size), 0 when it cannot have one. */
static uint64_t region_summary_fixed(const hostmem__region *r)
{
    uint32_t protect = atomic_load_explicit(&r->alloc_protect, RELAXED);
    size_t size = atomic_load_explicit(&r->size, RELAXED);
    if ((protect & ~HOSTMEM_SUMMARY_PROTECT_MASK) || (size & (((size_t)1 << HOSTMEM_SUMMARY_UNIT_SHIFT) - 1)))
        return 0;
    uint64_t index = (atomic_load_explicit(&r->base, RELAXED) >> HOSTMEM_GRANULE_SHIFT) & 255;
    return 1 | (uint64_t)protect << HOSTMEM_SUMMARY_PROTECT_SHIFT | index << HOSTMEM_SUMMARY_INDEX_SHIFT |
           (uint64_t)(size >> HOSTMEM_SUMMARY_UNIT_SHIFT) << HOSTMEM_SUMMARY_SIZE_SHIFT;
}

/* The summary of r as it is now: 0 unless it is live, made, not being
 * released and in one run. */
static uint64_t region_summary_of(const hostmem__region *r)
{
    uint32_t st;
    if (!hostmem__runs_single(&r->runs, &st) || !atomic_load_explicit(&r->live, RELAXED) ||
        atomic_load_explicit(&r->making, RELAXED) || atomic_load_explicit(&r->releasing, RELAXED))
        return 0;
    return r->summary_fixed | ((uint64_t)st & HOSTMEM_SUMMARY_STATE_MASK) << HOSTMEM_SUMMARY_STATE_SHIFT;
}

static void region_summary_store(hostmem__region *r, uint64_t v, memory_order order)
{
    _Atomic uint64_t *s = r->summary, *end = s + 2 * (size_t)r->summaries;
    for (; s < end; s += 2)
        atomic_store_explicit(s, v, order);
    r->summary_value = v;
}

void hostmem__region_summary_hide(hostmem__region *r)
{
    region_summary_store(r, 0, RELAXED); /* ordered by publish's release stores */
}

void hostmem__region_summary_publish(hostmem__region *r)
{
    if (!atomic_load_explicit(&r->live, RELAXED)) {
        r->summary = NULL; /* out of the map: its entries' summaries went with them */
        r->summaries = 0;
        r->summary_value = 0;
        return;
    }
    uint64_t v = region_summary_of(r);
    if (v != r->summary_value)
        region_summary_store(r, v, memory_order_release);
}

void hostmem__region_enter_map(hostmem_manager *m, hostmem__region *r, uintptr_t lo, uintptr_t hi)
{
    hostmem__assert(hostmem__lock_held(&m->state_lock) && hostmem__lock_held(&r->lock));
    hostmem__map_set(&m->map, lo, hi, (uintptr_t)r | HOSTMEM_MAP_TAG_REGION);
    /* Nothing changes while both locks are held: the summaries may appear
     * one by one, each telling the truth. */
    uint32_t granules = (uint32_t)((hi - lo) >> HOSTMEM_GRANULE_SHIFT);
    r->summary_fixed = region_summary_fixed(r);
    r->summary = granules <= HOSTMEM_SUMMARY_GRANULES && r->summary_fixed
                     ? hostmem__map_summaries(&m->map, lo, hi)
                     : NULL;
    r->summaries = r->summary ? granules : 0;
    r->summary_value = 0; /* the map's stores cleared them */
    if (r->summary)
        hostmem__region_summary_publish(r);
}

hostmem__region *hostmem__region_new(hostmem_manager *m)
{
    hostmem__assert(hostmem__lock_held(&m->state_lock));
    hostmem__region *r = m->free_regions;
    if (r) {
        m->free_regions = r->next_free;
        hostmem__assert(!r->summary);
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

void hostmem__region_recycle(hostmem_manager *m, hostmem__region *r)
{
    /* state lock held; r is dead and unlocked */
    hostmem__assert(hostmem__lock_held(&m->state_lock));
    r->next_free = m->free_regions;
    m->free_regions = r;
}

/* What a region of its own unmaps at release: its pages, and the rest of its
 * last granule when that granule came from an arena. */
size_t hostmem__region_unmap_bytes(const hostmem__region *r)
{
    uintptr_t base = atomic_load_explicit(&r->base, RELAXED);
    size_t size = atomic_load_explicit(&r->size, RELAXED);
    if (atomic_load_explicit(&r->tail_mapped, RELAXED))
        return hostmem__round_up(base + size, HOSTMEM_GRANULE) - base;
    return size;
}

void hostmem__region_foreach(struct hostmem_manager *m,
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

/* ---- for watch.c and guard.c ------------------------------------------------------ */

hostmem__region *hostmem__region_acquire(hostmem_manager *m, uintptr_t addr, HRESULT *hr,
                                         enum hostmem__reason *why)
{
    hostmem__call c = {.m = m, .reason = HOSTMEM_REASON_none};
    hostmem__region *r = hostmem__region_lock(&c, addr, hr);
    *why = c.reason;
    return r;
}

bool hostmem__region_charge_ok(const hostmem_manager *m, const hostmem__region *r)
{
    size_t npages = hostmem__region_pages(m, r);
    if (hostmem__runs_count(&r->runs) > HOSTMEM_ASSERT_RUNS)
        return true;
    return hostmem__runs_canonical(&r->runs, npages) &&
           atomic_load_explicit(&r->committed_pages, RELAXED) ==
               hostmem__runs_pages(&r->runs, npages, 0, npages, HOSTMEM_STATE_COMMITTED,
                                   HOSTMEM_STATE_COMMITTED);
}

bool hostmem__region_total_ok(const hostmem_manager *m)
{
    size_t pages = 0;
    for (const hostmem__region *r = m->all_regions; r; r = r->next_all)
        if (atomic_load_explicit(&r->live, RELAXED))
            pages += atomic_load_explicit(&r->committed_pages, RELAXED);
    return pages << m->page_shift == m->policy.committed;
}
