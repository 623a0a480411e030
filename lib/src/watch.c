/*
 * watch.c: write watch (W1), Windows' GetWriteWatch and
 * ResetWriteWatch over the kernel's own per-page record of writes.
 *
 * The kernel keeps the record for committed pages (os.h: watch, watch_scan,
 * watch_reset): a write costs the host nothing visible, no fault reaches the
 * process.  Only committed pages are ever tracked -- a commit registers and
 * marks the pages new to it (hostmem__watch_commit) -- since the kernel's
 * mark costs page tables per page.  Decommit replaces the mapping and the
 * kernel forgets, but Windows keeps reporting a page written before its
 * decommit until the next reset, so decommit first copies the kernel's
 * record of its committed runs into the runs (HOSTMEM_STATE_WRITTEN,
 * hostmem__watch_latch).  A page is written when its run is committed and
 * the kernel says so, or its run carries the mark; a reset clears both.
 *
 * A failed call leaves every page's record as it was: get_write_watch with
 * reset puts back, as marks, the pages it had reset before failing
 * (get_rollback); reset_write_watch latches the kernel's record into the
 * marks before it resets the kernel's, and clears the marks last.
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

/* A failed get_write_watch with reset: the pages it reset so far (the first
 * n of `addresses`, in address order) read as written again, through the
 * written mark.  Its room was taken before each reset (get_room). */
static void get_rollback(hostmem_manager *m, hostmem__region *r, void **addresses, size_t n)
{
    size_t npages = atomic_load_explicit(&r->size, RELAXED) >> m->page_shift;
    uintptr_t base = atomic_load_explicit(&r->base, RELAXED);
    hostmem__region_write_begin(r);
    for (size_t i = 0; i < n;) {
        size_t j = i + 1;
        while (j < n && (uintptr_t)addresses[j] == (uintptr_t)addresses[j - 1] + m->page_size)
            j++;
        hostmem__runs_apply(&r->runs, npages, ((uintptr_t)addresses[i] - base) >> m->page_shift, j - i,
                            HOSTMEM_PAGES_MARK_WRITTEN, 0);
        i = j;
    }
    hostmem__region_write_end(r);
}

/* Room for what a reset may have to put back: two entries for every range
 * reset so far and for every range the next step may reset, and for the
 * step's own splits. */
static int get_room(hostmem_manager *m, hostmem__region *r, size_t ranges, size_t next)
{
    return hostmem__region_runs_room(m, r, 2 * ((uint64_t)ranges + next) + 2, 0);
}

#define GET_VEC 256 /* ranges per scan: one ioctl per 256 written runs */

/* The worker of get_write_watch (region lock held). */
static HRESULT get_pages(watch_call *c, hostmem__region *r, size_t first, size_t count, bool reset,
                         void **addresses, size_t max)
{
    hostmem_manager *m = c->m;
    const hostmem__os *os = hostmem__os_get();
    size_t npages = atomic_load_explicit(&r->size, RELAXED) >> m->page_shift, end = first + count;
    size_t n = 0, pos = first;
    int err = 0;
    bool no_room = false;
    size_t ranges = 0; /* runs of consecutive pages among addresses[0, n) */
#define GET_ADD(a)                                                                                 \
    do {                                                                                           \
        void *a_ = (a);                                                                            \
        ranges += n == 0 || (uintptr_t)a_ != (uintptr_t)addresses[n - 1] + m->page_size;           \
        addresses[n++] = a_;                                                                       \
    } while (0)
    while (pos < end && n < max) {
        size_t run_end;
        uint32_t st = hostmem__runs_at(&r->runs, npages, pos, end, &run_end);
        if (st & HOSTMEM_STATE_WRITTEN) {
            /* Written before a decommit: every page of the run counts. */
            size_t take = run_end - pos < max - n ? run_end - pos : max - n;
            if (reset && (no_room = get_room(m, r, ranges, 1) != 0))
                break;
            if (reset && (st & HOSTMEM_STATE_COMMITTED) &&
                (err = os->watch_reset(page_at(m, r, pos), take << m->page_shift)))
                break;
            for (size_t k = 0; k < take; k++)
                GET_ADD(page_at(m, r, pos + k));
            if (reset) {
                hostmem__region_write_begin(r);
                hostmem__runs_apply(&r->runs, npages, pos, take, HOSTMEM_PAGES_CLEAR_WRITTEN, 0);
                hostmem__region_write_end(r);
            }
            pos += take;
        } else if (st & HOSTMEM_STATE_COMMITTED) {
            /* The kernel's record, at most the room left. */
            hostmem__os_range v[GET_VEC];
            size_t nv;
            uintptr_t next, stop = (uintptr_t)page_at(m, r, run_end);
            /* At most one range in two pages, and no more pages than are
             * left to report: the room a small region needs stays small. */
            size_t ahead = (run_end - pos + 1) / 2;
            if (ahead > max - n)
                ahead = max - n;
            if (reset && (no_room = get_room(m, r, ranges, ahead < GET_VEC ? ahead : GET_VEC) != 0))
                break;
            err = os->watch_scan(page_at(m, r, pos), (run_end - pos) << m->page_shift, reset, max - n, v,
                                 GET_VEC, &nv, &next);
            if (err)
                break;
            for (size_t i = 0; i < nv; i++)
                for (uintptr_t a = v[i].start; a < v[i].end && n < max; a += m->page_size)
                    GET_ADD((void *)a);
            size_t at = next >= stop ? run_end : (next - atomic_load_explicit(&r->base, RELAXED)) >> m->page_shift;
            pos = at > pos ? at : run_end; /* the walk always moves on */
        } else {
            pos = run_end; /* reserved and never written since its decommit */
        }
    }
#undef GET_ADD
    if (err || no_room) {
        if (reset && n)
            get_rollback(m, r, addresses, n);
        return no_room ? watch_fail(c, E_OUTOFMEMORY, HOSTMEM_REASON_no_metadata) : watch_fail_os(c, err);
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
    /* The results are written under the region's lock, and `addresses` may
     * lie in a guard page of that region, whose fault handler takes the lock
     * (W2): touch the pages they can reach first, with the lock free. */
    if (c->size) {
        size_t reach = (size_t)*count, in_range = c->size / m->page_size + 2;
        if (reach > in_range)
            reach = in_range;
        uintptr_t lo = (uintptr_t)addresses & ~(uintptr_t)(m->page_size - 1);
        uintptr_t hi = (uintptr_t)(addresses + reach);
        for (uintptr_t a = lo; a < hi; a += m->page_size) {
            volatile char *t = (volatile char *)(a < (uintptr_t)addresses ? (uintptr_t)addresses : a);
            *t = *t;
        }
    }
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
    /* The kernel's record into the marks first: should resetting it fail
     * part-way, every written page still reads as written. */
    if ((err = hostmem__watch_latch(m, r, first, pages))) {
        hr = err == ENOMEM ? watch_fail(c, E_OUTOFMEMORY, HOSTMEM_REASON_no_metadata) : watch_fail_os(c, err);
    } else if (hostmem__region_runs_room(m, r, 2, 0)) {
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
    for (size_t lo = first, hi; lo < end; lo = hi) {
        uint32_t st = hostmem__runs_at(&r->runs, npages, lo, end, &hi);
        if (((st & HOSTMEM_STATE_COMMITTED) != 0) != committed)
            continue;
        void *at = page_at(m, r, lo);
        size_t len = (hi - lo) << m->page_shift;
        /* Pages new to a commit are not tracked yet (a reservation never is,
         * and a decommit's new mapping is not): register them first. */
        int err = committed ? 0 : os->watch(at, len);
        if (!err)
            err = os->watch_reset(at, len);
        if (err)
            return err;
    }
    return 0;
}

int hostmem__watch_latch(hostmem_manager *m, hostmem__region *r, size_t first, size_t count)
{
    const hostmem__os *os = hostmem__os_get();
    size_t npages = atomic_load_explicit(&r->size, RELAXED) >> m->page_shift, end = first + count;
    uintptr_t base = atomic_load_explicit(&r->base, RELAXED);
    for (size_t pos = first, run_end; pos < end; pos = run_end) {
        uint32_t st = hostmem__runs_at(&r->runs, npages, pos, end, &run_end);
        /* Reserved pages have no record in the kernel (their marks are in
         * the runs already), and marked ones have theirs. */
        if ((st & HOSTMEM_STATE_COMMITTED) && !(st & HOSTMEM_STATE_WRITTEN)) {
            uintptr_t at = base + (pos << m->page_shift), stop = base + (run_end << m->page_shift);
            while (at < stop) {
                hostmem__os_range v[GET_VEC];
                size_t nv;
                uintptr_t next;
                int err = os->watch_scan((void *)at, stop - at, false, 0, v, GET_VEC, &nv, &next);
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
        }
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
