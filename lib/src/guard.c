/*
 * guard.c: guard pages (W2).  A PAGE_GUARD page is mapped with no
 * access; its first access faults, and the host's SIGSEGV handler (or the one
 * hostmem installs with config.guard_handler) asks hostmem_handle_fault()
 * what the fault was.  For a guard page the answer clears the guard -- the
 * page gets its plain protection, the runs lose the PAGE_GUARD bit -- and the
 * access is retried: one-shot, as on Windows.
 *
 * Everything here may run inside a fault, so nothing allocates or blocks:
 *   - the managers hostmem_handle_fault() searches form a list read with
 *     atomic loads; a destroy unlinks its manager and waits until no handler
 *     is inside the list (fault_readers), so none reads freed memory;
 *   - a region is found through the lock-free map and read under its seqlock,
 *     as query does;
 *   - the region's lock is taken with trylock in a loop: a fault is raised by
 *     the host's own instruction, never while its thread is inside hostmem, so
 *     whoever holds the lock is another thread that releases it without
 *     waiting for this one (the mutex is a plain one: trylock is one atomic
 *     exchange, no syscall);
 *   - the runs need room for two more entries to clear one page: every
 *     operation on a region that has guard pages keeps two spare entries per
 *     guard page beforehand (hostmem__region_runs_room), up to
 *     GUARD_ROOM_PAGES guard pages per region.  Should the room run out anyway
 *     (more guard pages than that, hit one by one with no call on the region
 *     in between), the hit clears the guard of the whole run of like pages
 *     around it, which needs no room.
 */
#include <errno.h>
#include <sched.h>

#include "internal.h"

#define RELAXED memory_order_relaxed
#define GUARD_ROOM_PAGES 65536u /* 1 MiB of runs at most, per region */

#ifdef __SANITIZE_THREAD__
#define guard_fence(order) atomic_signal_fence(order)
#else
#define guard_fence(order) atomic_thread_fence(order)
#endif

int hostmem__region_runs_room(hostmem_manager *m, hostmem__region *r, uint64_t extra, size_t adding)
{
    uint64_t guards = adding;
    if (adding)
        atomic_store_explicit(&r->guarded, true, RELAXED);
    if (atomic_load_explicit(&r->guarded, RELAXED)) {
        const uint32_t mask = HOSTMEM_STATE_COMMITTED | PAGE_GUARD;
        size_t npages = hostmem__region_pages(m, r);
        guards += hostmem__runs_pages(&r->runs, npages, 0, npages, mask, mask);
    }
    if (guards > GUARD_ROOM_PAGES)
        guards = GUARD_ROOM_PAGES;
    extra += 2 * guards;
    return extra > UINT32_MAX ? ENOMEM : hostmem__runs_grow(&r->runs, (uint32_t)extra);
}

/* ---- the managers a fault may belong to ------------------------------------ */

static pthread_mutex_t fault_lock = PTHREAD_MUTEX_INITIALIZER; /* writers only */
static hostmem_manager *_Atomic fault_list;
static _Atomic unsigned fault_readers;

void hostmem__fault_register(hostmem_manager *m)
{
    pthread_mutex_lock(&fault_lock);
    atomic_store(&m->next_fault, atomic_load(&fault_list));
    atomic_store(&fault_list, m);
    pthread_mutex_unlock(&fault_lock);
}

void hostmem__fault_unregister(hostmem_manager *m)
{
    pthread_mutex_lock(&fault_lock);
    for (hostmem_manager *_Atomic *link = &fault_list; atomic_load(link); link = &atomic_load(link)->next_fault)
        if (atomic_load(link) == m) {
            atomic_store(link, atomic_load(&m->next_fault));
            break;
        }
    pthread_mutex_unlock(&fault_lock);
    /* A handler that entered before the unlink may still stand on m. */
    while (atomic_load(&fault_readers))
        sched_yield();
}

/* ---- one fault ------------------------------------------------------------- */

static void *guard_page_at(const hostmem_manager *m, const hostmem__region *r, size_t page)
{
    return (void *)(atomic_load_explicit(&r->base, RELAXED) + (page << m->page_shift));
}

/* The region of m holding addr and the state of addr's page, read without a
 * lock.  False: addr is in no region of m. */
static bool guard_page_state(hostmem_manager *m, uintptr_t addr, hostmem__region **out_r, uint32_t *out_state,
                             uint32_t *out_seq)
{
    uintptr_t e = hostmem__map_lookup(&m->map, addr);
    if ((e & HOSTMEM_MAP_TAG_MASK) != HOSTMEM_MAP_TAG_REGION)
        return false;
    hostmem__region *r = (hostmem__region *)(e & ~HOSTMEM_MAP_TAG_MASK);
    bool found = false;
    for (unsigned tries = 0; tries < 4096; tries++) {
        uint32_t s0 = atomic_load_explicit(&r->seq, memory_order_acquire);
        if ((s0 & 1) && tries < 4000)
            continue;
        uintptr_t base = atomic_load_explicit(&r->base, RELAXED);
        size_t size = atomic_load_explicit(&r->size, RELAXED);
        found = atomic_load_explicit(&r->live, RELAXED) && addr >= base && addr < base + size;
        if (found) {
            size_t page = (addr - base) >> m->page_shift, rf, rc;
            hostmem__runs_get(&r->runs, size >> m->page_shift, hostmem__runs_find(&r->runs, page), &rf,
                              &rc, out_state);
        }
        guard_fence(memory_order_acquire);
        *out_seq = s0;
        if (atomic_load_explicit(&r->seq, RELAXED) == s0)
            break;
    }
    *out_r = r;
    return found;
}

/* Names the calling thread, async-signal-safely (a TLS address). */
static __thread char guard_tls_self __attribute__((tls_model("initial-exec")));
static uintptr_t guard_self(void) { return (uintptr_t)&guard_tls_self; }

/* The fault answers; RETRY is GUARD for the host, without a hit of its own. */
enum { FAULT_NOT_OURS, FAULT_ACCESS, FAULT_HIT, FAULT_RETRY };

/* The region's lock, from a fault: trylock in a loop (see the top). */
static void guard_lock(hostmem__region *r)
{
    while (pthread_mutex_trylock(&r->lock))
        sched_yield();
}

/* With r's lock held: clear the guard of addr's page if it has one.  *page:
 * addr's page in r. */
static int guard_clear_locked(hostmem_manager *m, hostmem__region *r, uintptr_t addr, size_t *out_page)
{
    size_t page = 0, rf, rc;
    uint32_t st;
    uintptr_t base = atomic_load_explicit(&r->base, RELAXED);
    size_t size = atomic_load_explicit(&r->size, RELAXED), npages = size >> m->page_shift;
    *out_page = 0;
    if (!atomic_load_explicit(&r->live, RELAXED) || addr < base || addr >= base + size)
        return FAULT_ACCESS; /* released meanwhile */
    page = (addr - base) >> m->page_shift;
    *out_page = page;
    hostmem__runs_get(&r->runs, npages, hostmem__runs_find(&r->runs, page), &rf, &rc, &st);
    if (!(st & HOSTMEM_STATE_COMMITTED))
        return FAULT_ACCESS; /* decommitted meanwhile */
    if (!(st & PAGE_GUARD)) {
        /* Another thread's hit cleared it after this fault, or a call made
         * the page accessible: retrying behaves as the protection now says. */
        return (st & HOSTMEM_STATE_PROTECT_MASK) == PAGE_NOACCESS ? FAULT_ACCESS : FAULT_RETRY;
    }
    size_t first = page, count = 1;
    if (hostmem__runs_room(&r->runs) < 2) {
        first = rf;
        count = rc;
    }
    unsigned access = hostmem__protect_access(st & HOSTMEM_STATE_PROTECT_MASK & ~(uint32_t)PAGE_GUARD);
    if (hostmem__os_get()->protect(guard_page_at(m, r, first), count << m->page_shift, access))
        return FAULT_ACCESS; /* the kernel refused: it stays a guard page */
    /* Other threads that faulted on this page before the guard went report
     * it once each: published before the books, so that whoever reads the
     * page unguarded also finds the hit (guard_late). */
    uint32_t epoch = atomic_load_explicit(&r->guard_epoch, RELAXED) + 1;
    if (!epoch)
        epoch = 1; /* 0: never hit (hostmem__guard_forget) */
    unsigned slot = epoch % HOSTMEM_GUARD_RECENT;
    atomic_store_explicit(&r->guard_epoch, epoch, RELAXED);
    atomic_store_explicit(&r->guard_recent[slot], 0, RELAXED);
    atomic_store_explicit(&r->guard_recent_by[slot], guard_self(), RELAXED);
    atomic_store_explicit(&r->guard_recent_epoch[slot], epoch, RELAXED);
    atomic_store_explicit(&r->guard_recent[slot], (uintptr_t)guard_page_at(m, r, page), memory_order_release);
    hostmem__region_write_begin(r);
    hostmem__runs_apply(&r->runs, npages, first, count, HOSTMEM_PAGES_UNGUARD, 0);
    hostmem__region_write_end(r);
    return FAULT_HIT;
}

/* Judge addr's fault under r's lock, where no call is half done: a guard
 * page is a hit, cleared here.  `seq` NULL: the fault read a guard page.
 * Otherwise the fault read a page the books do not call a guard page, at
 * region state *seq; it may come from a call between its kernel change and
 * its books (protect sets the kernel's view first).  If the region changed
 * since, the page is judged as it is now (a guard page is a hit, an
 * accessible one is retried); if not, the access is one the protection
 * refuses.  Each retry needs a change of the region, so none loops. */
static int guard_judge(hostmem_manager *m, hostmem__region *r, uintptr_t addr, const uint32_t *seq)
{
    size_t page = 0;
    int res = FAULT_ACCESS;
    guard_lock(r);
    if (!seq || atomic_load_explicit(&r->seq, RELAXED) != *seq)
        res = guard_clear_locked(m, r, addr, &page);
    pthread_mutex_unlock(&r->lock);
    if (res == FAULT_HIT) /* the trace, with the lock free */
        hostmem__trace_guard_hit(m, addr, (uintptr_t)guard_page_at(m, r, page));
    return res;
}

/* The region and hit of this thread's last late report (initial-exec TLS:
 * async-signal-safe). */
static __thread const hostmem__region *guard_tls_late_region __attribute__((tls_model("initial-exec")));
static __thread uint32_t guard_tls_late_epoch __attribute__((tls_model("initial-exec")));

/* A late report of another thread's recent hit on this page: true once per
 * thread and hit. */
static bool guard_late(hostmem__region *r, uintptr_t page)
{
    for (unsigned i = 0; i < HOSTMEM_GUARD_RECENT; i++) {
        if (atomic_load_explicit(&r->guard_recent[i], memory_order_acquire) != page ||
            atomic_load_explicit(&r->guard_recent_by[i], RELAXED) == guard_self())
            continue;
        uint32_t epoch = atomic_load_explicit(&r->guard_recent_epoch[i], RELAXED);
        if (guard_tls_late_region == r && guard_tls_late_epoch == epoch)
            continue;
        guard_tls_late_region = r;
        guard_tls_late_epoch = epoch;
        return true;
    }
    return false;
}

static int fault_handle(const siginfo_t *info, hostmem_manager **out_m)
{
    *out_m = NULL;
    if (!info || (info->si_signo != SIGSEGV && info->si_signo != SIGBUS))
        return FAULT_NOT_OURS;
    uintptr_t addr = (uintptr_t)info->si_addr;
    int res = FAULT_NOT_OURS;
    atomic_fetch_add(&fault_readers, 1);
    for (hostmem_manager *m = atomic_load(&fault_list); m; m = atomic_load(&m->next_fault)) {
        if (addr >= m->user_end)
            continue;
        hostmem__region *r;
        uint32_t st, seq = 0;
        if (!guard_page_state(m, addr, &r, &st, &seq))
            continue;
        *out_m = m;
        if ((st & HOSTMEM_STATE_COMMITTED) && (st & PAGE_GUARD))
            res = guard_judge(m, r, addr, NULL);
        else if (guard_late(r, addr & ~(uintptr_t)(m->page_size - 1)))
            res = FAULT_RETRY;
        else
            res = guard_judge(m, r, addr, &seq);
        break;
    }
    atomic_fetch_sub(&fault_readers, 1);
    return res;
}

hostmem_fault hostmem_handle_fault(const void *info)
{
    int saved = errno;
    hostmem_manager *m;
    int res = fault_handle((const siginfo_t *)info, &m);
    errno = saved;
    return res == FAULT_NOT_OURS ? HOSTMEM_FAULT_NOT_OURS
           : res == FAULT_ACCESS ? HOSTMEM_FAULT_ACCESS
                                 : HOSTMEM_FAULT_GUARD;
}

/* ---- the handler config.guard_handler installs ------------------------------ */

/* Called by the OS layer's SIGSEGV handler: true retries the access. */
static bool guard_on_fault(const siginfo_t *info)
{
    int saved = errno;
    hostmem_manager *m;
    int res = fault_handle(info, &m);
    bool retry = res == FAULT_HIT || res == FAULT_RETRY;
    if (res == FAULT_HIT) {
        const hostmem_config *cfg = &m->policy.config;
        if (cfg->guard_handler && cfg->on_guard)
            cfg->on_guard(cfg->guard_context, info->si_addr);
    }
    errno = saved;
    return retry;
}

int hostmem__guard_install(void)
{
    return hostmem__os_fault_hook(guard_on_fault);
}
