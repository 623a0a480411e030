/*
 * free.c: hostmem_virtual_free: decommit (S6) and release (S7), and the
 * release of a region's address space that a failed reserve-and-commit
 * shares.
 */
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

#define RELAXED memory_order_relaxed

/* Give a region's address space back (region lock held, r still live).  On
 * failure nothing changed. */
HRESULT hostmem__free_region(hostmem__call *c, hostmem__region *r)
{
    hostmem_manager *m = c->m;
    const hostmem__os *os = hostmem__os_get();
    uintptr_t base = atomic_load_explicit(&r->base, RELAXED);
    size_t size = atomic_load_explicit(&r->size, RELAXED);
    size_t committed = atomic_load_explicit(&r->committed_pages, RELAXED);
    uintptr_t hi = hostmem__round_up(base + size, HOSTMEM_GRANULE);
    hostmem__notice *notice = hostmem__call_notice(c);
    HRESULT hr = S_OK;
    int err;
    hostmem__arena *arena = atomic_load_explicit(&r->arena, RELAXED);
    /* Before the address space can go to another reservation of ours (which
     * takes its seq once it is in the map). */
    hostmem__call_order(c);
    if (arena) {
        /* Back to the arena: its pages must read zero and be uncharged first
         * (and a write-watch region's tracking must go with the mapping). */
        if ((committed || atomic_load_explicit(&r->watched, RELAXED)) &&
            (err = os->decommit((void *)base, size))) {
            int rerr = hostmem__region_restore_access(m, r, 0, hostmem__region_pages(m, r));
            return rerr ? hostmem__call_unrecoverable(c, rerr) : hostmem__call_fail_os(c, err, HOSTMEM_REASON_os_decommit);
        }
        /* Out of the map, then dead: the map never names a dead region, so a
         * query that finds r dead only has to look again (S9). */
        pthread_mutex_lock(&m->state_lock);
        hostmem__map_set(&m->map, base, hi, (uintptr_t)arena | HOSTMEM_MAP_TAG_ARENA);
        hostmem__region_write_begin(r);
        atomic_store_explicit(&r->live, false, RELAXED);
        hostmem__region_write_end(r);
        hostmem__arena_mark(arena, base, hi, false);
    } else {
        /* The region stays in the map until the kernel has the range back,
         * marked releasing: a query meanwhile waits for the release rather
         * than describe the kernel's half-released view (S9).  Once unmapped
         * the range may go to another reservation of ours before the map is
         * updated, so only the entries still naming r are cleared. */
        hostmem__region_write_begin(r);
        atomic_store_explicit(&r->releasing, true, RELAXED);
        hostmem__region_write_end(r);
        hostmem__region_writing = 1; /* a query from a signal handler here must not wait for us */
        err = os->release((void *)base, hostmem__region_unmap_bytes(r));
        pthread_mutex_lock(&m->state_lock);
        if (!err) {
            hostmem__map_clear(&m->map, base, hi, (uintptr_t)r | HOSTMEM_MAP_TAG_REGION);
            hostmem__inflight_moved();
        }
        hostmem__region_write_begin(r);
        atomic_store_explicit(&r->releasing, false, RELAXED);
        if (!err)
            atomic_store_explicit(&r->live, false, RELAXED);
        hostmem__region_write_end(r);
        if (err) {
            hr = hostmem__call_fail_os(c, err, HOSTMEM_REASON_os_release);
            goto out;
        }
    }
    hostmem__policy_uncharge(m, committed << m->page_shift, notice);
    hostmem__policy_unreserve(m, size);
    m->policy.regions--;
out:
    pthread_mutex_unlock(&m->state_lock);
    return hr;
}

/* ---- virtual_free (S6, S7) ------------------------------------------ */

static HRESULT free_decommit(hostmem__call *c, uintptr_t addr, size_t size)
{
    hostmem_manager *m = c->m;
    HRESULT hr;
    hostmem__region *r = hostmem__region_lock(c, addr, &hr);
    if (!r)
        return FAILED(hr) ? hr : hostmem__call_fail(c, HOST_E_INVALIDOPERATION, HOSTMEM_REASON_not_in_region);
    uintptr_t base = atomic_load_explicit(&r->base, RELAXED);
    size_t npages = hostmem__region_pages(m, r), first, count;
    if (!size) {
        /* Size 0 means the whole region, given an address in its base page. */
        if (hostmem__page_down(m, addr) != base) {
            hr = hostmem__call_fail(c, HOSTMEM_E_INVALID_ADDRESS, HOSTMEM_REASON_not_region_base);
            goto out;
        }
        first = 0;
        count = npages;
    } else {
        if (hostmem__round_up(addr + size, m->page_size) > hostmem__region_end(r)) {
            hr = hostmem__call_fail(c, E_INVALIDARG, HOSTMEM_REASON_past_region_end);
            goto out;
        }
        first = (hostmem__page_down(m, addr) - base) >> m->page_shift;
        count = ((hostmem__round_up(addr + size, m->page_size) - hostmem__page_down(m, addr)) >> m->page_shift);
    }
    c->ev.base = (uintptr_t)hostmem__region_page_addr(m, r, first);
    c->ev.region_size = count << m->page_shift;
    size_t committed = hostmem__runs_pages(&r->runs, npages, first, count, HOSTMEM_STATE_COMMITTED,
                                           HOSTMEM_STATE_COMMITTED);
    if (!committed)
        goto out; /* reserved pages stay reserved: nothing to do */
    bool watched = atomic_load_explicit(&r->watched, RELAXED);
    int err;
    /* W1: the new mapping forgets what was written (and is not tracked until
     * its pages are committed again); the books remember it.
     * (Marking pages the kernel already reports written changes nothing a
     * caller can see, so a failure below leaves the state as it was.)  The
     * latch splits runs of its own: the decommit's room is taken after it. */
    if (watched && (err = hostmem__watch_latch(m, r, first, count))) {
        hr = hostmem__call_fail_os(c, err, HOSTMEM_REASON_os_watch);
        goto out;
    }
    if (hostmem__region_runs_room(m, r, 2, 0)) {
        hr = hostmem__call_fail(c, E_OUTOFMEMORY, HOSTMEM_REASON_no_metadata);
        goto out;
    }
    err = hostmem__os_get()->decommit((void *)c->ev.base, count << m->page_shift);
    if (err) {
        int rerr = hostmem__region_restore_access(m, r, first, count);
        hr = rerr ? hostmem__call_unrecoverable(c, rerr) : hostmem__call_fail_os(c, err, HOSTMEM_REASON_os_decommit);
        goto out;
    }
    hostmem__region_write_begin(r);
    hostmem__runs_apply(&r->runs, npages, first, count, HOSTMEM_PAGES_DECOMMIT, 0);
    hostmem__guard_forget(r, (void *)c->ev.base, count << m->page_shift);
    atomic_fetch_sub_explicit(&r->committed_pages, committed, RELAXED);
    hostmem__region_write_end(r);
    hostmem__call_order(c);
    hostmem__assert(hostmem__region_charge_ok(m, r));
    if (hostmem__policy_unlimited(&m->policy)) {
        hostmem__policy_uncharge_unlimited(m, committed << m->page_shift);
    } else {
        pthread_mutex_lock(&m->state_lock);
        hostmem__policy_uncharge(m, committed << m->page_shift, hostmem__call_notice(c));
        pthread_mutex_unlock(&m->state_lock);
    }
out:
    pthread_mutex_unlock(&r->lock);
    return hr;
}

static HRESULT free_release(hostmem__call *c, uintptr_t addr)
{
    hostmem_manager *m = c->m;
    HRESULT hr;
    hostmem__region *r = hostmem__region_lock(c, addr, &hr);
    if (!r)
        return FAILED(hr) ? hr : hostmem__call_fail(c, HOST_E_INVALIDOPERATION, HOSTMEM_REASON_not_in_region);
    uintptr_t base = atomic_load_explicit(&r->base, RELAXED);
    if (hostmem__page_down(m, addr) != base) {
        hr = hostmem__call_fail(c, HOSTMEM_E_INVALID_ADDRESS, HOSTMEM_REASON_not_region_base);
        goto out;
    }
    c->ev.base = base;
    c->ev.region_size = atomic_load_explicit(&r->size, RELAXED);
    hr = hostmem__free_region(c, r);
out:
    pthread_mutex_unlock(&r->lock);
    if (SUCCEEDED(hr)) { /* released: the struct goes back to the pool */
        pthread_mutex_lock(&m->state_lock);
        hostmem__region_recycle(m, r);
        pthread_mutex_unlock(&m->state_lock);
    }
    return hr;
}

/* The worker: the checks of S6 and S7, then decommit or release. */
static inline HRESULT free_virtual(hostmem__call *c, hostmem_manager *m, uintptr_t addr, size_t size,
                                   DWORD free_type)
{
    HRESULT hr;
    if (!m)
        return hostmem__call_fail(c, E_POINTER, HOSTMEM_REASON_null_pointer);
    if (FAILED(hr = hostmem__call_enter(c)))
        return hr;
    if (free_type == MEM_RELEASE) {
        if (size) /* S7: a release is of the whole region, size 0 */
            return hostmem__call_fail(c, E_INVALIDARG, HOSTMEM_REASON_bad_type);
        if (addr >= m->user_end)
            return hostmem__call_fail(c, E_INVALIDARG, HOSTMEM_REASON_beyond_user_space);
        return free_release(c, addr);
    }
    if (free_type != MEM_DECOMMIT)
        return hostmem__call_fail(c, E_INVALIDARG, HOSTMEM_REASON_bad_type);
    if (size && FAILED(hr = hostmem__call_check_range(c, addr, size)))
        return hr;
    if (!size && addr >= m->user_end)
        return hostmem__call_fail(c, E_INVALIDARG, HOSTMEM_REASON_beyond_user_space);
    return free_decommit(c, addr, size);
}

HRESULT hostmem_virtual_free(hostmem_manager *m, void *address, SIZE_T size, DWORD free_type)
{
    hostmem__call c;
    hostmem__call_start(&c, m, free_type == MEM_DECOMMIT ? HOSTMEM_OP_decommit : HOSTMEM_OP_release,
                        hostmem__caller((uintptr_t)__builtin_return_address(0)), (uintptr_t)address, size, -1);
    return hostmem__call_finish(&c, free_virtual(&c, m, (uintptr_t)address, size, free_type));
}
