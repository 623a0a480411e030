/*
 * hosting.c: the calls a host makes about memory rather than regions: the
 * memory load and the notification callback (P4-P6), the address-space
 * calls, and the stats.
 */
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

#define RELAXED memory_order_relaxed

/* ---- memory load, notifications, address space (P4-P6) ------------------ */

/* The calls of this file emit no region event (c->traced = false): memory
 * load, callbacks and stats are not traced, the address-space calls have an
 * event of their own (hostmem__trace_address_space). */

static HRESULT hosting_memory_load(hostmem__call *c, hostmem_manager *m, DWORD *memory_load,
                                   SIZE_T *available_bytes)
{
    HRESULT hr;
    c->traced = false;
    if (!m || !memory_load || !available_bytes)
        return hostmem__call_fail(c, E_POINTER, HOSTMEM_REASON_null_pointer);
    if (FAILED(hr = hostmem__call_enter(c)))
        return hr;
    size_t limit = m->policy.config.commit_limit;
    if (limit) {
        if (FAILED(hr = hostmem__call_lock(c, &m->state_lock)))
            return hr;
        size_t used = m->policy.committed;
        pthread_mutex_unlock(&m->state_lock);
        *memory_load = (DWORD)((unsigned __int128)used * 100 / limit);
        *available_bytes = used < limit ? limit - used : 0;
    } else {
        uint64_t total, avail;
        int err = hostmem__os_meminfo(&total, &avail);
        if (err || !total)
            return hostmem__call_fail_os(c, err ? err : EIO, HOSTMEM_REASON_os_query);
        *memory_load = (DWORD)((total - avail) * 100 / total);
        *available_bytes = (SIZE_T)avail;
    }
    return S_OK;
}

HRESULT hostmem_get_memory_load(hostmem_manager *m, DWORD *memory_load, SIZE_T *available_bytes)
{
    hostmem__call c;
    hostmem__call_start(&c, m, HOSTMEM_OP_memory_load, 0, 0, 0, -1);
    return hostmem__call_finish(&c, hosting_memory_load(&c, m, memory_load, available_bytes));
}

static HRESULT hosting_register_callback(hostmem__call *c, hostmem_manager *m,
                                         void (*on_notification)(void *, EMemoryAvailable), void *context)
{
    HRESULT hr;
    c->traced = false;
    if (!m || !on_notification)
        return hostmem__call_fail(c, E_POINTER, HOSTMEM_REASON_null_pointer);
    if (FAILED(hr = hostmem__call_enter(c)) || FAILED(hr = hostmem__call_lock(c, &m->state_lock)))
        return hr;
    hostmem__policy_register(m, on_notification, context, hostmem__call_notice(c));
    pthread_mutex_unlock(&m->state_lock);
    return S_OK;
}

HRESULT hostmem_register_memory_notification_callback(
    hostmem_manager *m, void (*on_notification)(void *context, EMemoryAvailable state), void *context)
{
    hostmem__call c;
    hostmem__call_start(&c, m, HOSTMEM_OP_register_callback, 0, 0, 0, -1);
    return hostmem__call_finish(&c, hosting_register_callback(&c, m, on_notification, context));
}

/* The worker of the three address-space calls: under the state lock, one
 * way out of it. */
static HRESULT hosting_address_space(hostmem__call *c, hostmem_manager *m, enum hostmem__as_action action,
                                     uintptr_t start, size_t size)
{
    HRESULT hr;
    c->traced = false;
    if (!m)
        return hostmem__call_fail(c, E_POINTER, HOSTMEM_REASON_null_pointer);
    if (FAILED(hr = hostmem__call_enter(c)) || FAILED(hr = hostmem__call_lock(c, &m->state_lock)))
        return hr;
    hostmem__policy *p = &m->policy;
    hostmem__external **link = &m->externals;
    while (*link && (*link)->start != start)
        link = &(*link)->next;
    switch (action) {
    case HOSTMEM_AS_needs:
        if (p->config.address_space_limit &&
            (size > p->config.address_space_limit ||
             p->reserved + p->external > p->config.address_space_limit - size))
            hr = hostmem__call_fail(c, E_OUTOFMEMORY, HOSTMEM_REASON_limit_denied);
        break;
    case HOSTMEM_AS_acquired: {
        if (*link) {
            hr = hostmem__call_fail(c, HOST_E_INVALIDOPERATION, HOSTMEM_REASON_already_acquired);
            break;
        }
        hostmem__external *x = hostmem__meta_alloc(sizeof *x);
        if (!x) {
            hr = hostmem__call_fail(c, E_OUTOFMEMORY, HOSTMEM_REASON_no_metadata);
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
            hr = hostmem__call_fail(c, HOST_E_INVALIDOPERATION, HOSTMEM_REASON_unknown_external);
            break;
        }
        *link = x->next;
        p->external -= x->size;
        c->ev.size = size = x->size;
        hostmem__meta_free(x, sizeof *x);
        break;
    }
    default:
        break;
    }
    size_t external = p->external;
    pthread_mutex_unlock(&m->state_lock);
    hostmem__trace_address_space(m, action, start, size, hr, external);
    return hr;
}

HRESULT hostmem_needs_virtual_address_space(hostmem_manager *m, void *start, SIZE_T size)
{
    hostmem__call c;
    hostmem__call_start(&c, m, HOSTMEM_OP_needs_address_space, 0, (uintptr_t)start, size, -1);
    return hostmem__call_finish(&c, hosting_address_space(&c, m, HOSTMEM_AS_needs, (uintptr_t)start, size));
}

HRESULT hostmem_acquired_virtual_address_space(hostmem_manager *m, void *start, SIZE_T size)
{
    hostmem__call c;
    hostmem__call_start(&c, m, HOSTMEM_OP_acquired_address_space, 0, (uintptr_t)start, size, -1);
    return hostmem__call_finish(&c, hosting_address_space(&c, m, HOSTMEM_AS_acquired, (uintptr_t)start, size));
}

HRESULT hostmem_released_virtual_address_space(hostmem_manager *m, void *start)
{
    hostmem__call c;
    hostmem__call_start(&c, m, HOSTMEM_OP_released_address_space, 0, (uintptr_t)start, 0, -1);
    return hostmem__call_finish(&c, hosting_address_space(&c, m, HOSTMEM_AS_released, (uintptr_t)start, 0));
}

/* ---- stats ----------------------------------------------------------------------- */

static size_t hosting_metadata_bytes(hostmem_manager *m)
{
    /* state lock held */
    size_t bytes = sizeof *m + m->metadata_bytes + hostmem__map_bytes(&m->map) - sizeof m->map;
    for (hostmem__region *r = m->all_regions; r; r = r->next_all)
        bytes += hostmem__runs_bytes(&r->runs);
    for (hostmem__external *x = m->externals; x; x = x->next)
        bytes += sizeof *x;
    return bytes;
}

static HRESULT hosting_stats(hostmem__call *c, hostmem_manager *m, hostmem_stats *out)
{
    HRESULT hr;
    c->traced = false;
    if (!m || !out)
        return hostmem__call_fail(c, E_POINTER, HOSTMEM_REASON_null_pointer);
    if (FAILED(hr = hostmem__call_enter(c)) || FAILED(hr = hostmem__call_lock(c, &m->state_lock)))
        return hr;
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
        .metadata_bytes = hosting_metadata_bytes(m),
    };
    hostmem__win32_stats(m, &out->watched_bytes, &out->guard_pages);
    pthread_mutex_unlock(&m->state_lock);
    return S_OK;
}

HRESULT hostmem_get_stats(hostmem_manager *m, hostmem_stats *out)
{
    hostmem__call c;
    hostmem__call_start(&c, m, HOSTMEM_OP_stats, 0, 0, 0, -1);
    return hostmem__call_finish(&c, hosting_stats(&c, m, out));
}
