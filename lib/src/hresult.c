/* hresult.c: the code tables.  Names come from the X-macro lists in codes.h,
 * the same lists the LTTng provider builds its enums from. */
#include <errno.h>

#include "internal.h"

const char *hostmem_hresult_name(HRESULT hr)
{
    switch ((uint32_t)hr) {
#define HOSTMEM__HR_CASE(name, value) \
    case (uint32_t)(value):           \
        return #name;
        HOSTMEM_HRESULT_LIST(HOSTMEM__HR_CASE)
#undef HOSTMEM__HR_CASE
    default:
        return "UNKNOWN";
    }
}

/* P7: exhausted resources are E_OUTOFMEMORY, and so is any errno the
 * kernel gives that names no argument or permission problem (EIO, EBUSY...):
 * the request could not be met and nothing changed.  E_FAIL is never an errno's
 * translation: it is kept for an inconsistency the manager cannot recover from,
 * after which the manager is unavailable. */
HRESULT hostmem__hr_from_errno(int err)
{
    switch (err) {
    case 0:
        return S_OK;
    case ENOMEM: /* no memory, or too many mappings (vm.max_map_count) */
    case EAGAIN: /* locked memory or a temporary shortage */
    case EMFILE: /* no file descriptor left for /proc (RLIMIT_NOFILE) */
    case ENFILE: /* ... or in the whole system */
    case EFBIG:
    case EOVERFLOW:
        return E_OUTOFMEMORY;
    case EEXIST: /* something is mapped there already */
        return HOSTMEM_E_INVALID_ADDRESS;
    case EACCES: /* e.g. an LSM refused executable memory */
    case EPERM:
        return E_ACCESSDENIED;
    case EINVAL:
        return E_INVALIDARG;
    default:
        return E_OUTOFMEMORY;
    }
}
