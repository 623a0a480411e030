/* protect.c: PAGE_* validation (S2) and PAGE_* <-> access translation. */
#include "internal.h"

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
