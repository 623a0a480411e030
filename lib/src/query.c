/*
 * query.c: hostmem_virtual_query (S9).  Lock-free: the map is read with
 * atomic loads and the region under its seqlock; an address that is not ours
 * is asked of the kernel and attributed (free space, a foreign mapping, a
 * mapping of ours in flight).
 */
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

#define RELAXED memory_order_relaxed
#define ACQUIRE memory_order_acquire

/* ---- virtual_query (S9) ------------------------------------------------ */

/* Visible state of a page: what query reports (the reset mark is not visible). */
static uint32_t query_visible(uint32_t st) { return st & (HOSTMEM_STATE_COMMITTED | HOSTMEM_STATE_PROTECT_MASK); }

typedef enum { Q_DONE, Q_OUTSIDE, Q_RETRY } query_result;

/* The answer from a map summary (types.h), read in one load: the region as it
 * was at that moment.  False for the rest of its last granule past its end. */
static bool query_summary(hostmem_manager *m, uintptr_t addr, uint64_t sum, MEMORY_BASIC_INFORMATION *mbi)
{
    uintptr_t leaf = (addr >> HOSTMEM_GRANULE_SHIFT) & ~(uintptr_t)255;
    uintptr_t base = (leaf | ((sum >> HOSTMEM_SUMMARY_INDEX_SHIFT) & 255)) << HOSTMEM_GRANULE_SHIFT;
    uintptr_t end = base + ((size_t)(sum >> HOSTMEM_SUMMARY_SIZE_SHIFT) << HOSTMEM_SUMMARY_UNIT_SHIFT);
    uintptr_t page = hostmem__page_down(m, addr);
    if (addr >= end)
        return false;
    uint32_t st = (uint32_t)((sum >> HOSTMEM_SUMMARY_STATE_SHIFT) & HOSTMEM_SUMMARY_STATE_MASK);
    bool committed = st & HOSTMEM_STATE_COMMITTED;
    mbi->BaseAddress = (void *)page;
    mbi->AllocationBase = (void *)base;
    mbi->AllocationProtect = (DWORD)((sum >> HOSTMEM_SUMMARY_PROTECT_SHIFT) & HOSTMEM_SUMMARY_PROTECT_MASK);
    mbi->RegionSize = end - page;
    mbi->State = committed ? MEM_COMMIT : MEM_RESERVE;
    mbi->Protect = committed ? (st & HOSTMEM_STATE_PROTECT_MASK) : 0;
    mbi->Type = MEM_PRIVATE;
    return true;
}

/* One optimistic read of the region holding addr; Q_RETRY if a writer raced. */
static query_result query_ours(hostmem_manager *m, uintptr_t addr, MEMORY_BASIC_INFORMATION *mbi,
                               uintptr_t *free_end, bool trust, uintptr_t *entry)
{
    uintptr_t e, page = hostmem__page_down(m, addr);
    uint64_t sum = hostmem__map_summary(&m->map, addr, &e);
    if (sum) {
        if (query_summary(m, addr, sum, mbi))
            return Q_DONE; /* a region in one state: the map said it all */
        e = hostmem__map_lookup(&m->map, addr);
    }
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
        *free_end = hostmem__round_up(base + size, HOSTMEM_GRANULE);
        res = Q_OUTSIDE;
    } else if (addr >= base + size) {
        /* The unusable rest of the region's last granule: free, as on Windows. */
        *free_end = hostmem__round_up(base + size, HOSTMEM_GRANULE);
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
            if (query_visible(js) != query_visible(st))
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
    HOSTMEM_SEQ_FENCE(memory_order_acquire);
    if (!trust && atomic_load_explicit(&r->seq, RELAXED) != s0)
        return Q_RETRY;
    return res;
}

static void query_describe_free(MEMORY_BASIC_INFORMATION *mbi, uintptr_t page, uintptr_t end)
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

static HRESULT query_answer(hostmem__call *c, uintptr_t addr, MEMORY_BASIC_INFORMATION *mbi)
{
    hostmem_manager *m = c->m;
    uintptr_t page = hostmem__page_down(m, addr), free_end = 0, entry = 0;
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
            res = query_ours(m, addr, mbi, &free_end, (hostmem__region_writing && attempt > 0) || attempt > 4096, &entry);
            if (res == Q_RETRY && attempt > 64)
                sched_yield();
        }
        if (res == Q_DONE)
            return S_OK;
        if (free_end) {
            query_describe_free(mbi, page, hostmem__arena_free_extend(m, free_end));
            return S_OK;
        }
        int err = hostmem__os_get()->query(page, &map);
        if (err)
            return hostmem__call_fail_os(c, err, HOSTMEM_REASON_os_query);
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
        /* Free space ends where the kernel stops mapping: S4 promises that
         * what query calls free can be reserved. */
        uintptr_t end = map.found ? map.start : m->map_end;
        query_describe_free(mbi, page, hostmem__arena_free_extend(m, end));
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
            ours_end = hostmem__region_end(r);
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

/* The worker: the checks, then the answer (no lock, no statedump poll:
 * query may run in a signal handler). */
static inline HRESULT query_virtual(hostmem__call *c, hostmem_manager *m, uintptr_t addr, void *buffer, size_t length,
                                    SIZE_T *out_written)
{
    if (!m || !buffer || !out_written)
        return hostmem__call_fail(c, E_POINTER, HOSTMEM_REASON_null_pointer);
    if (atomic_load_explicit(&m->unavailable, RELAXED) || atomic_load_explicit(&m->shutdown, RELAXED))
        return hostmem__call_fail(c, HOST_E_CLRNOTAVAILABLE,
                                  atomic_load(&m->unavailable) ? HOSTMEM_REASON_unavailable
                                                               : HOSTMEM_REASON_shutdown);
    if (length < sizeof(MEMORY_BASIC_INFORMATION))
        return hostmem__call_fail(c, HOSTMEM_E_BAD_LENGTH, HOSTMEM_REASON_bad_length);
    if (addr >= m->user_end)
        return hostmem__call_fail(c, E_INVALIDARG, HOSTMEM_REASON_beyond_user_space);
    MEMORY_BASIC_INFORMATION mbi;
    memset(&mbi, 0, sizeof mbi); /* padding too: no stack bytes leak to the caller */
    HRESULT hr = S_OK;
    if (addr >= m->map_end) /* the top page the kernel never maps (os.h): unmapped, but */
        query_describe_free(&mbi, m->map_end, m->user_end); /* not part of the free space below */
    else
        hr = query_answer(c, addr, &mbi);
    if (SUCCEEDED(hr)) {
        memcpy(buffer, &mbi, sizeof mbi);
        *out_written = sizeof mbi;
        c->ev.base = (uintptr_t)mbi.BaseAddress;
        c->ev.region_size = mbi.RegionSize;
        c->ev.protect = mbi.Protect;
        c->ev.alloc_type = mbi.State;
    }
    return hr;
}

HRESULT hostmem_virtual_query(hostmem_manager *m, const void *address, void *buffer, SIZE_T length,
                              SIZE_T *out_written)
{
    hostmem__call c;
    hostmem__call_start(&c, m, HOSTMEM_OP_query, (uintptr_t)__builtin_return_address(0), (uintptr_t)address,
                        length, -1);
    return hostmem__call_finish(&c, query_virtual(&c, m, (uintptr_t)address, buffer, length, out_written));
}
