/*
 * watch.c: write watch (W1), Windows' GetWriteWatch and
 * ResetWriteWatch over the kernel's own per-page record of writes.
 *
 * The kernel keeps the record for committed pages (os.h: watch, watch_scan,
 * watch_reset): a write costs the host nothing visible, no fault reaches the
 * process.  Decommit replaces the mapping and the kernel forgets, but Windows
 * keeps reporting a page written before its decommit until the next reset, so
 * decommit first copies the kernel's record of its range into the runs
 * (HOSTMEM_STATE_WRITTEN, hostmem__watch_latch).  A page is written when the
 * kernel says so or its run carries the mark; a reset clears both.
 *
 * The entry points take the manager's shape with a record of their own
 * (watch_call): watch_start, one worker (the checks, the region's lock, one
 * way out of it), and watch_finish, the one exit, which emits the event
 * (write_watch) and, on failure, the failure event.
 */
#include <errno.h>

#include "internal.h"

#define RELAXED memory_order_relaxed

/* As region.c: ThreadSanitizer does not model fences. */
#ifdef __SANITIZE_THREAD__
#define watch_fence(order) atomic_signal_fence(order)
#else
#define watch_fence(order) atomic_thread_fence(order)
#endif

typedef struct watch_call {
    hostmem_manager *m;
    enum hostmem__op op;
    uintptr_t address;
    size_t size;
    enum hostmem__reason reason;
    int os_errno;
    uint64_t t0;
    bool reached; /* the region was found: the write_watch event is due */
    bool reset;
    uint64_t pages;
} watch_call;

static HRESULT watch_fail(watch_call *c, HRESULT hr, enum hostmem__reason reason)
{
    c->reason = reason;
    return hr;
}

static HRESULT watch_fail_os(watch_call *c, int err)
{
    c->os_errno = err;
    c->reason = HOSTMEM_REASON_os_watch;
    return hostmem__hr_from_errno(err);
}

/* Open the record of a write-watch call (its clock starts here). */
static void watch_start(watch_call *c, hostmem_manager *m, enum hostmem__op op, uintptr_t address, size_t size,
                        bool reset)
{
    *c = (watch_call){.m = m, .op = op, .address = address, .size = size, .reset = reset};
    c->t0 = hostmem__trace_now_ns();
}

/* The one exit: the write_watch event once the region was found, and on
 * failure the failure event. */
static HRESULT watch_finish(watch_call *c, HRESULT hr)
{
    if (c->reached)
        hostmem__trace_write_watch(c->m, c->address, c->size, c->pages, c->reset,
                                   c->op == HOSTMEM_OP_get_write_watch, hr,
                                   c->t0 ? hostmem__trace_now_ns() - c->t0 : 0);
    if (FAILED(hr))
        hostmem__trace_failure(c->m, c->op, hr, c->reason, c->os_errno, c->address, c->size, -1);
    return hr;
}

/* Checks shared by both calls, then the region's lock: the pages of
 * [address, address + size) are [*first, *first + *count) of *out. */
static HRESULT watch_enter(watch_call *c, hostmem__region **out, size_t *first, size_t *count)
{
    hostmem_manager *m = c->m;
    uintptr_t addr = c->address;
    size_t size = c->size;
    if (atomic_load_explicit(&m->unavailable, RELAXED))
        return watch_fail(c, HOST_E_CLRNOTAVAILABLE, HOSTMEM_REASON_unavailable);
    if (atomic_load_explicit(&m->shutdown, RELAXED))
        return watch_fail(c, HOST_E_CLRNOTAVAILABLE, HOSTMEM_REASON_shutdown);
    if (!size)
        return watch_fail(c, E_INVALIDARG, HOSTMEM_REASON_zero_size);
    if (addr + size < addr || addr + size > m->user_end)
        return watch_fail(c, E_INVALIDARG, HOSTMEM_REASON_beyond_user_space);
    HRESULT hr;
    enum hostmem__reason why;
    hostmem__region *r = hostmem__region_acquire(m, addr, &hr, &why);
    if (!r)
        return FAILED(hr) ? watch_fail(c, hr, why) : watch_fail(c, E_INVALIDARG, HOSTMEM_REASON_not_watched);
    hr = S_OK;
    uintptr_t base = atomic_load_explicit(&r->base, RELAXED);
    uintptr_t lo = addr & ~(uintptr_t)(m->page_size - 1);
    uintptr_t hi = (addr + size + m->page_size - 1) & ~(uintptr_t)(m->page_size - 1);
    if (!atomic_load_explicit(&r->watched, RELAXED))
        hr = watch_fail(c, E_INVALIDARG, HOSTMEM_REASON_not_watched);
    else if (hi > base + atomic_load_explicit(&r->size, RELAXED))
        hr = watch_fail(c, E_INVALIDARG, HOSTMEM_REASON_crosses_region);
    if (FAILED(hr)) {
        pthread_mutex_unlock(&r->lock); /* only a region of the right kind stays locked */
    } else {
        *out = r;
        *first = (lo - base) >> m->page_shift;
        *count = (hi - lo) >> m->page_shift;
        c->reached = true;
    }
    return hr;
}

static void *page_at(const hostmem_manager *m, const hostmem__region *r, size_t page)
{
    return (void *)(atomic_load_explicit(&r->base, RELAXED) + (page << m->page_shift));
}

/* Runs of [first, end) carrying the written mark. */
static uint32_t written_runs(const hostmem__region *r, size_t npages, size_t first, size_t end)
{
    uint32_t n = hostmem__runs_count(&r->runs), k = 0;
    for (uint32_t i = hostmem__runs_find(&r->runs, first); i < n; i++) {
        size_t rf, rc;
        uint32_t st;
        hostmem__runs_get(&r->runs, npages, i, &rf, &rc, &st);
        if (rf >= end)
            break;
        k += (st & HOSTMEM_STATE_WRITTEN) != 0;
    }
    return k;
}

/* The worker of get_write_watch (region lock held). */
static HRESULT get_pages(watch_call *c, hostmem__region *r, size_t first, size_t count, bool reset,
                         void **addresses, size_t max)
{
    hostmem_manager *m = c->m;
    const hostmem__os *os = hostmem__os_get();
    size_t npages = atomic_load_explicit(&r->size, RELAXED) >> m->page_shift, end = first + count;
    size_t n = 0, pos = first;
    /* Clearing marks is the only step that needs memory: room first. */
    if (reset && hostmem__region_runs_room(m, r, 2 * (uint64_t)written_runs(r, npages, first, end), 0))
        return watch_fail(c, E_OUTOFMEMORY, HOSTMEM_REASON_no_metadata);
    while (pos < end && n < max) {
        size_t rf, rc;
        uint32_t st;
        hostmem__runs_get(&r->runs, npages, hostmem__runs_find(&r->runs, pos), &rf, &rc, &st);
        size_t run_end = rf + rc < end ? rf + rc : end;
        if (st & HOSTMEM_STATE_WRITTEN) {
            /* Written before a decommit: every page of the run counts. */
            size_t take = run_end - pos < max - n ? run_end - pos : max - n;
            for (size_t k = 0; k < take; k++)
                addresses[n++] = page_at(m, r, pos + k);
            if (reset) {
                int err = (st & HOSTMEM_STATE_COMMITTED)
                              ? os->watch_reset(page_at(m, r, pos), take << m->page_shift)
                              : 0;
                if (err) {
                    c->pages = n;
                    return watch_fail_os(c, err);
                }
                hostmem__region_write_begin(r);
                hostmem__runs_apply(&r->runs, npages, pos, take, HOSTMEM_PAGES_CLEAR_WRITTEN, 0);
                hostmem__region_write_end(r);
            }
            pos += take;
        } else if (st & HOSTMEM_STATE_COMMITTED) {
            /* The kernel's record, at most the room left. */
            hostmem__os_range v[256];
            size_t nv;
            uintptr_t next, stop = (uintptr_t)page_at(m, r, run_end);
            int err = os->watch_scan(page_at(m, r, pos), (run_end - pos) << m->page_shift, reset,
                                     max - n, v, sizeof v / sizeof v[0], &nv, &next);
            if (err) {
                c->pages = n;
                return watch_fail_os(c, err);
            }
            for (size_t i = 0; i < nv; i++)
                for (uintptr_t a = v[i].start; a < v[i].end && n < max; a += m->page_size)
                    addresses[n++] = (void *)a;
            size_t at = next >= stop ? run_end : (next - atomic_load_explicit(&r->base, RELAXED)) >> m->page_shift;
            pos = at > pos ? at : run_end; /* the walk always moves on */
        } else {
            pos = run_end; /* reserved and never written since its decommit */
        }
    }
    c->pages = n;
    return S_OK;
}

/* The worker of hostmem_get_write_watch: the checks, then the pages under
 * the region's lock. */
static HRESULT watch_get(watch_call *c, hostmem_manager *m, DWORD flags, void **addresses, ULONG_PTR *count,
                         DWORD *granularity)
{
    if (!m || !count || !granularity)
        return watch_fail(c, E_POINTER, HOSTMEM_REASON_null_pointer);
    if (flags & ~(DWORD)WRITE_WATCH_FLAG_RESET)
        return watch_fail(c, E_INVALIDARG, HOSTMEM_REASON_bad_type);
    if (!*count) /* checked before addresses: Windows answers a NULL array of 0 so too */
        return watch_fail(c, E_INVALIDARG, HOSTMEM_REASON_zero_count);
    if (!addresses)
        return watch_fail(c, E_POINTER, HOSTMEM_REASON_null_pointer);
    hostmem__region *r;
    size_t first, pages;
    HRESULT hr = watch_enter(c, &r, &first, &pages);
    if (FAILED(hr))
        return hr;
    hr = get_pages(c, r, first, pages, c->reset, addresses, (size_t)*count);
    pthread_mutex_unlock(&r->lock);
    if (SUCCEEDED(hr)) {
        *count = (ULONG_PTR)c->pages;
        *granularity = (DWORD)m->page_size;
    }
    return hr;
}

HRESULT hostmem_get_write_watch(hostmem_manager *m, DWORD flags, void *base, SIZE_T size,
                                void **addresses, ULONG_PTR *count, DWORD *granularity)
{
    watch_call c;
    watch_start(&c, m, HOSTMEM_OP_get_write_watch, (uintptr_t)base, size, flags & WRITE_WATCH_FLAG_RESET);
    return watch_finish(&c, watch_get(&c, m, flags, addresses, count, granularity));
}

/* The worker of hostmem_reset_write_watch. */
static HRESULT watch_reset_range(watch_call *c, hostmem_manager *m)
{
    if (!m)
        return watch_fail(c, E_POINTER, HOSTMEM_REASON_null_pointer);
    hostmem__region *r;
    size_t first, pages;
    HRESULT hr = watch_enter(c, &r, &first, &pages);
    if (FAILED(hr))
        return hr;
    size_t npages = atomic_load_explicit(&r->size, RELAXED) >> m->page_shift;
    int err;
    if (hostmem__region_runs_room(m, r, 2, 0)) {
        hr = watch_fail(c, E_OUTOFMEMORY, HOSTMEM_REASON_no_metadata);
    } else if ((err = hostmem__watch_protect(m, r, first, pages, true))) {
        hr = watch_fail_os(c, err);
    } else {
        hostmem__region_write_begin(r);
        hostmem__runs_apply(&r->runs, npages, first, pages, HOSTMEM_PAGES_CLEAR_WRITTEN, 0);
        hostmem__region_write_end(r);
    }
    pthread_mutex_unlock(&r->lock);
    return hr;
}

HRESULT hostmem_reset_write_watch(hostmem_manager *m, void *base, SIZE_T size)
{
    watch_call c;
    watch_start(&c, m, HOSTMEM_OP_reset_write_watch, (uintptr_t)base, size, true);
    return watch_finish(&c, watch_reset_range(&c, m));
}

int hostmem__watch_protect(hostmem_manager *m, hostmem__region *r, size_t first, size_t count, bool committed)
{
    const hostmem__os *os = hostmem__os_get();
    size_t npages = atomic_load_explicit(&r->size, RELAXED) >> m->page_shift, end = first + count;
    uint32_t n = hostmem__runs_count(&r->runs);
    for (uint32_t i = hostmem__runs_find(&r->runs, first); i < n; i++) {
        size_t rf, rc;
        uint32_t st;
        hostmem__runs_get(&r->runs, npages, i, &rf, &rc, &st);
        if (rf >= end)
            break;
        if (((st & HOSTMEM_STATE_COMMITTED) != 0) != committed)
            continue;
        size_t lo = rf > first ? rf : first, hi = rf + rc < end ? rf + rc : end;
        int err = os->watch_reset(page_at(m, r, lo), (hi - lo) << m->page_shift);
        if (err)
            return err;
    }
    return 0;
}

int hostmem__watch_latch(hostmem_manager *m, hostmem__region *r, size_t first, size_t count)
{
    const hostmem__os *os = hostmem__os_get();
    size_t npages = atomic_load_explicit(&r->size, RELAXED) >> m->page_shift;
    uintptr_t base = atomic_load_explicit(&r->base, RELAXED);
    uintptr_t at = base + (first << m->page_shift), stop = at + (count << m->page_shift);
    while (at < stop) {
        hostmem__os_range v[256];
        size_t nv;
        uintptr_t next;
        int err = os->watch_scan((void *)at, stop - at, false, 0, v, sizeof v / sizeof v[0], &nv, &next);
        if (err)
            return err;
        if (hostmem__region_runs_room(m, r, 2 * (uint64_t)nv, 0))
            return ENOMEM;
        hostmem__region_write_begin(r);
        for (size_t i = 0; i < nv; i++)
            hostmem__runs_apply(&r->runs, npages, (v[i].start - base) >> m->page_shift,
                                (v[i].end - v[i].start) >> m->page_shift, HOSTMEM_PAGES_MARK_WRITTEN, 0);
        hostmem__region_write_end(r);
        at = next > at ? next : stop;
    }
    return 0;
}

void hostmem__win32_stats(hostmem_manager *m, SIZE_T *watched_bytes, SIZE_T *guard_pages)
{
    /* State lock held: no region is made or released meanwhile, but its pages
     * may change under its own lock; read them as query does. */
    const uint32_t mask = HOSTMEM_STATE_COMMITTED | PAGE_GUARD;
    size_t watched = 0, guards = 0;
    for (hostmem__region *r = m->all_regions; r; r = r->next_all) {
        if (!atomic_load_explicit(&r->live, RELAXED))
            continue;
        size_t size = atomic_load_explicit(&r->size, RELAXED), g = 0;
        for (unsigned tries = 0; tries < 1024; tries++) {
            uint32_t s0 = atomic_load_explicit(&r->seq, memory_order_acquire);
            if (s0 & 1)
                continue;
            g = hostmem__runs_pages(&r->runs, size >> m->page_shift, 0, size >> m->page_shift, mask, mask);
            watch_fence(memory_order_acquire);
            if (atomic_load_explicit(&r->seq, RELAXED) == s0)
                break;
        }
        guards += g;
        if (atomic_load_explicit(&r->watched, RELAXED))
            watched += size;
    }
    *watched_bytes = watched;
    *guard_pages = guards;
}
