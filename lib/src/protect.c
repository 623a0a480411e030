/* protect.c: PAGE_* validation (S2), PAGE_* <-> access translation, and
 * hostmem_virtual_protect (S8). */
#include "internal.h"

#define RELAXED memory_order_relaxed

#define BASE_MASK 0xffu
#define MODIFIER_MASK (PAGE_GUARD | PAGE_NOCACHE | PAGE_WRITECOMBINE)

HRESULT hostmem__protect_check(DWORD protect, bool deny_write_execute, enum hostmem__reason *why)
{
    DWORD base = protect & BASE_MASK, mod = protect & MODIFIER_MASK;
    *why = HOSTMEM_REASON_bad_protect;
    if (protect & ~(BASE_MASK | MODIFIER_MASK))
        return E_INVALIDARG;
    switch (base) {
    case PAGE_NOACCESS:
        if (mod) /* GUARD, NOCACHE and WRITECOMBINE need an accessible base */
            return E_INVALIDARG;
        break;
    case PAGE_READONLY:
    case PAGE_READWRITE:
    case PAGE_EXECUTE:
    case PAGE_EXECUTE_READ:
    case PAGE_EXECUTE_READWRITE:
        break;
    default: /* 0, two base values, WRITECOPY, EXECUTE_WRITECOPY */
        return E_INVALIDARG;
    }
    if (mod & (mod - 1)) /* two modifiers */
        return E_INVALIDARG;
    if (deny_write_execute && base == PAGE_EXECUTE_READWRITE) {
        *why = HOSTMEM_REASON_write_execute_denied;
        return E_ACCESSDENIED;
    }
    *why = HOSTMEM_REASON_none;
    return S_OK;
}

unsigned hostmem__protect_access(DWORD protect)
{
    if (protect & PAGE_GUARD) /* a guard page faults on any access (S11) */
        return HOSTMEM_ACCESS_NONE;
    switch (protect & BASE_MASK) {
    case PAGE_READONLY:
        return HOSTMEM_ACCESS_READ;
    case PAGE_READWRITE:
        return HOSTMEM_ACCESS_READ | HOSTMEM_ACCESS_WRITE;
    case PAGE_EXECUTE:
        return HOSTMEM_ACCESS_EXEC;
    case PAGE_EXECUTE_READ:
        return HOSTMEM_ACCESS_READ | HOSTMEM_ACCESS_EXEC;
    case PAGE_EXECUTE_READWRITE:
        return HOSTMEM_ACCESS_READ | HOSTMEM_ACCESS_WRITE | HOSTMEM_ACCESS_EXEC;
    default:
        return HOSTMEM_ACCESS_NONE;
    }
}

DWORD hostmem__protect_from_access(unsigned access, bool private_file)
{
    bool r = access & HOSTMEM_ACCESS_READ, w = access & HOSTMEM_ACCESS_WRITE,
         x = access & HOSTMEM_ACCESS_EXEC;
    if (x)
        return w ? (private_file ? PAGE_EXECUTE_WRITECOPY : PAGE_EXECUTE_READWRITE)
                 : (r ? PAGE_EXECUTE_READ : PAGE_EXECUTE);
    if (w)
        return private_file ? PAGE_WRITECOPY : PAGE_READWRITE;
    return r ? PAGE_READONLY : PAGE_NOACCESS;
}

/* ---- virtual_protect (S8) -------------------------------------------- */

/* The worker: the checks, then the region's lock; one way out of it. */
static HRESULT protect_virtual(hostmem__call *c, hostmem_manager *m, uintptr_t addr, size_t size,
                               DWORD new_protect, DWORD *old_protect)
{
    HRESULT hr;
    c->ev.protect = new_protect;
    if (!m || !old_protect)
        return hostmem__call_fail(c, E_POINTER, HOSTMEM_REASON_null_pointer);
    if (FAILED(hr = hostmem__call_enter(c)))
        return hr;
    if (FAILED(hr = hostmem__protect_check(new_protect, m->policy.config.deny_write_execute, &c->reason)))
        return hr;
    if (FAILED(hr = hostmem__call_check_range(c, addr, size)))
        return hr;
    size_t first, count;
    hostmem__region *r = hostmem__region_lock_range(c, addr, size, &first, &count, &hr);
    if (!r)
        return hr;
    size_t npages = hostmem__region_pages(m, r);
    if (hostmem__runs_pages(&r->runs, npages, first, count, HOSTMEM_STATE_COMMITTED,
                            HOSTMEM_STATE_COMMITTED) != count) {
        hr = hostmem__call_fail(c, HOSTMEM_E_INVALID_ADDRESS, HOSTMEM_REASON_not_committed);
        goto out;
    }
    if (hostmem__region_runs_room(m, r, 2, (new_protect & PAGE_GUARD) ? count : 0)) {
        hr = hostmem__call_fail(c, E_OUTOFMEMORY, HOSTMEM_REASON_no_metadata);
        goto out;
    }
    size_t rf, rc;
    uint32_t st;
    hostmem__runs_get(&r->runs, npages, hostmem__runs_find(&r->runs, first), &rf, &rc, &st);
    c->ev.base = (uintptr_t)hostmem__region_page_addr(m, r, first);
    c->ev.region_size = count << m->page_shift;
    int err = hostmem__os_get()->protect((void *)c->ev.base, count << m->page_shift,
                                         hostmem__protect_access(new_protect));
    if (err) {
        int rerr = hostmem__region_restore_access(m, r, first, count);
        hr = rerr ? hostmem__call_unrecoverable(c, rerr) : hostmem__call_fail_os(c, err, HOSTMEM_REASON_os_protect);
        goto out;
    }
    hostmem__region_write_begin(r);
    hostmem__runs_apply(&r->runs, npages, first, count, HOSTMEM_PAGES_PROTECT, new_protect);
    hostmem__region_write_end(r);
    hostmem__guard_forget(r, (void *)c->ev.base, count << m->page_shift);
    c->ev.old_protect = st & HOSTMEM_STATE_PROTECT_MASK;
out:
    hostmem__call_order(c);
    pthread_mutex_unlock(&r->lock);
    /* After the lock: *old_protect may lie in a guard page of this region,
     * whose fault handler takes the lock (W2). */
    if (SUCCEEDED(hr))
        *old_protect = c->ev.old_protect;
    return hr;
}

HRESULT hostmem_virtual_protect(hostmem_manager *m, void *address, SIZE_T size, DWORD new_protect,
                                DWORD *old_protect)
{
    hostmem__call c;
    hostmem__call_start(&c, m, HOSTMEM_OP_protect, hostmem__caller((uintptr_t)__builtin_return_address(0)), (uintptr_t)address,
                        size, -1);
    return hostmem__call_finish(&c, protect_virtual(&c, m, (uintptr_t)address, size, new_protect, old_protect));
}
