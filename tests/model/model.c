/*
 * model.c: the reference model (see model.h).  Written from the S and P rules of docs/
 * alone; every rule is cited where it is applied.  Page-granular and slow on
 * purpose: obviously right beats fast here.
 */
#include "model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define B(c) HM_BIT(HM_##c)

static const HRESULT code_hr[HM_CODE_COUNT] = {
    [HM_S_OK] = S_OK,
    [HM_E_POINTER] = E_POINTER,
    [HM_E_INVALIDARG] = E_INVALIDARG,
    [HM_E_ACCESSDENIED] = E_ACCESSDENIED,
    [HM_E_NOTIMPL] = E_NOTIMPL,
    [HM_E_OUTOFMEMORY] = E_OUTOFMEMORY,
    [HM_E_INVALID_ADDRESS] = HOSTMEM_E_INVALID_ADDRESS,
    [HM_E_BAD_LENGTH] = HOSTMEM_E_BAD_LENGTH,
    [HM_E_INVALIDOPERATION] = HOST_E_INVALIDOPERATION,
    [HM_E_CLRNOTAVAILABLE] = HOST_E_CLRNOTAVAILABLE,
};
static const char *const code_name[HM_CODE_COUNT] = {
    "S_OK", "E_POINTER", "E_INVALIDARG", "E_ACCESSDENIED", "E_NOTIMPL", "E_OUTOFMEMORY",
    "HOSTMEM_E_INVALID_ADDRESS", "HOSTMEM_E_BAD_LENGTH", "HOST_E_INVALIDOPERATION",
    "HOST_E_CLRNOTAVAILABLE",
};

HRESULT hm_code_hr(enum hm_code c)
{
    return code_hr[c];
}

enum hm_code hm_hr_code(HRESULT hr)
{
    for (int c = 0; c < HM_CODE_COUNT; c++)
        if (code_hr[c] == hr)
            return (enum hm_code)c;
    return HM_CODE_COUNT;
}

const char *hm_accept_str(unsigned accept, char *buf, size_t len)
{
    size_t n = 0;
    buf[0] = 0;
    for (int c = 0; c < HM_CODE_COUNT; c++)
        if (accept & HM_BIT(c))
            n += (size_t)snprintf(buf + n, n < len ? len - n : 0, "%s%s", n ? "|" : "", code_name[c]);
    return buf;
}

static uintptr_t down(uintptr_t x, size_t a)
{
    return x & ~(uintptr_t)(a - 1);
}

/* Round up; the callers made sure it cannot wrap. */
static uintptr_t up(uintptr_t x, size_t a)
{
    return (x + a - 1) & ~(uintptr_t)(a - 1);
}

void hm_model_init(hm_model *m, size_t page, const hostmem_config *config, hm_probe_fn probe,
                   void *probe_ctx)
{
    memset(m, 0, sizeof *m);
    m->page = page;
    m->granule = 65536;
    m->huge = (size_t)2 << 20;
    FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/hpage_pmd_size", "r");
    if (f) {
        unsigned long long v;
        if (fscanf(f, "%llu", &v) == 1 && v)
            m->huge = (size_t)v;
        fclose(f);
    }
    m->user_end = (uintptr_t)1 << 47; /* S3: 4-level page tables */
    m->big = (size_t)256 << 20;
    if (config)
        m->config = *config;
    else
        hostmem_config_init(&m->config);
    m->probe = probe;
    m->probe_ctx = probe_ctx;
}

void hm_model_fini(hm_model *m)
{
    for (size_t i = 0; i < m->nregions; i++)
        free(m->regions[i].pages);
    free(m->regions);
    memset(m, 0, sizeof *m);
}

static uintptr_t region_end(const hm_model *m, const hm_region *r)
{
    return r->base + r->npages * m->page;
}

long hm_model_find(const hm_model *m, uintptr_t addr)
{
    for (size_t i = 0; i < m->nregions; i++)
        if (addr >= m->regions[i].base && addr < region_end(m, &m->regions[i]))
            return (long)i;
    return -1;
}

bool hm_model_overlaps(const hm_model *m, uintptr_t lo, uintptr_t hi)
{
    for (size_t i = 0; i < m->nregions; i++)
        if (lo < region_end(m, &m->regions[i]) && m->regions[i].base < hi)
            return true;
    return false;
}

/* S2. */
unsigned hm_protect_errors(const hm_model *m, DWORD protect)
{
    DWORD base = protect & 0xff, mod = protect & 0x700;
    unsigned err = 0;
    if (protect & ~(DWORD)0x7ff)
        err |= B(E_INVALIDARG);
    switch (base) {
    case PAGE_NOACCESS:
        if (mod)
            err |= B(E_INVALIDARG);
        break;
    case PAGE_READONLY:
    case PAGE_READWRITE:
    case PAGE_EXECUTE:
    case PAGE_EXECUTE_READ:
    case PAGE_EXECUTE_READWRITE:
        break;
    default:
        err |= B(E_INVALIDARG);
    }
    if (mod != 0 && mod != PAGE_GUARD && mod != PAGE_NOCACHE && mod != PAGE_WRITECOMBINE)
        err |= B(E_INVALIDARG);
    if (m->config.deny_write_execute && base == PAGE_EXECUTE_READWRITE)
        err |= B(E_ACCESSDENIED);
    return err;
}

bool hm_protect_readable(DWORD p)
{
    if (p & PAGE_GUARD)
        return false;
    p &= 0xff;
    return p == PAGE_READONLY || p == PAGE_READWRITE || p == PAGE_EXECUTE_READ ||
           p == PAGE_EXECUTE_READWRITE;
}

bool hm_protect_writable(DWORD p)
{
    if (p & PAGE_GUARD)
        return false;
    p &= 0xff;
    return p == PAGE_READWRITE || p == PAGE_EXECUTE_READWRITE;
}

/* P1/P3: may `used + add` bytes be held at `level` under `limit`?
 * 0 granted, 1 denied, 2 either: nothing is added but the level is already
 * past its ceiling (the contract's formula denies; a library may skip the
 * check when no charge is added). */
static int ceiling_check(const hm_model *m, size_t limit, size_t used, size_t add,
                         EMemoryCriticalLevel level)
{
    if (!limit)
        return 0;
    unsigned pct = level == eTaskCritical        ? m->config.task_percent
                   : level == eAppDomainCritical ? m->config.appdomain_percent
                                                 : 100;
    unsigned __int128 lhs = ((unsigned __int128)used + add) * 100;
    unsigned __int128 rhs = (unsigned __int128)limit * pct;
    if (lhs <= rhs)
        return 0;
    return add ? 1 : 2;
}

void hm_model_alloc(hm_model *m, uintptr_t addr, size_t size, DWORD type, DWORD protect,
                    EMemoryCriticalLevel level, hm_expect *e, hm_alloc_plan *plan)
{
    const size_t P = m->page, G = m->granule;
    const DWORD known = MEM_COMMIT | MEM_RESERVE | MEM_RESET | MEM_RESET_UNDO | MEM_TOP_DOWN |
                        MEM_LARGE_PAGES | MEM_WRITE_WATCH;
    unsigned arg = 0, lenient = 0;
    bool reset = type & (MEM_RESET | MEM_RESET_UNDO);
    memset(e, 0, sizeof *e);
    memset(plan, 0, sizeof *plan);
    plan->protect = protect;

    /* S1: allocation type. */
    if (type & ~known)
        arg |= B(E_INVALIDARG);
    if (reset) {
        if (type != MEM_RESET && type != MEM_RESET_UNDO)
            arg |= B(E_INVALIDARG);
        unsigned pe = hm_protect_errors(m, protect);
        if (type == MEM_RESET) {
            /* S10: the protection is ignored but validated (Win32: "must still be valid"). */
            arg |= pe & B(E_INVALIDARG);
            lenient |= pe & B(E_ACCESSDENIED); /* silent: is W^X part of that validation? */
        } else {
            lenient |= pe; /* silent for MEM_RESET_UNDO */
        }
    } else {
        DWORD core = type & (MEM_COMMIT | MEM_RESERVE);
        if (!core)
            arg |= B(E_INVALIDARG);
        if (type & MEM_WRITE_WATCH) {
            if (type & MEM_RESERVE)
                lenient |= B(E_NOTIMPL); /* W1: a kernel without write-protect tracking */
            else
                arg |= B(E_INVALIDARG);
        }
        if (type & MEM_LARGE_PAGES) {
            if (core != (MEM_COMMIT | MEM_RESERVE))
                arg |= B(E_INVALIDARG);
            if (size % m->huge || addr % m->huge)
                arg |= B(E_INVALIDARG);
        }
        arg |= hm_protect_errors(m, protect); /* S2 */
    }
    /* S3: size and range. */
    if (size == 0)
        arg |= B(E_INVALIDARG);
    if (addr) {
        if (addr + size < addr || addr + size > m->user_end)
            arg |= B(E_INVALIDARG);
    } else if (reset && size > m->user_end) {
        arg |= B(E_INVALIDARG);
        lenient |= B(E_INVALID_ADDRESS);
    }
    /* A NULL-address size that cannot be reserved (S3) may be refused before or after the
     * argument checks: the order is not specified. */
    if (!reset && addr == 0 && size > m->user_end - G)
        lenient |= B(E_OUTOFMEMORY);
    if (arg) {
        e->accept = arg | lenient;
        return;
    }

    if (!reset && ((type & MEM_RESERVE) || addr == 0)) {
        /* S4: reserve (MEM_RESERVE, or MEM_COMMIT at NULL). */
        unsigned st = 0, st_other = 0; /* st_other: failures other than the commit charge */
        bool commit_denied = false;
        size_t R;
        plan->kind = HM_ALLOC_RESERVE;
        plan->commit = type & MEM_COMMIT;
        plan->large = type & MEM_LARGE_PAGES;
        if (addr == 0) {
            if (size > SIZE_MAX - (P - 1)) {
                /* rounding the size up wraps: "a range that wraps" or "cannot be reserved" */
                e->accept = B(E_INVALIDARG) | B(E_OUTOFMEMORY);
                return;
            }
            R = up(size, P);
            if (R >= m->user_end)
                st_other |= B(E_OUTOFMEMORY); /* S3: a size that cannot be reserved */
            else if (R > m->big)
                lenient |= B(E_OUTOFMEMORY);
        } else {
            uintptr_t base = down(addr, G), end = up(addr + size, P);
            R = end - base;
            plan->fixed = true;
            if (base < G) {
                /* Silent in the contract; Win32 refuses the first 64 KiB (ERROR_INVALID_PARAMETER),
                 * and a base that rounds to 0 can be nothing but a refusal. */
                st_other |= B(E_INVALIDARG) | B(E_INVALID_ADDRESS);
            } else if (hm_model_overlaps(m, base, end)) {
                st_other |= B(E_INVALID_ADDRESS);
            } else {
                switch (m->probe ? m->probe(m->probe_ctx, base, end) : HM_PROBE_FREE) {
                case HM_PROBE_FREE:
                    break;
                case HM_PROBE_FOREIGN:
                    st_other |= B(E_INVALID_ADDRESS);
                    break;
                case HM_PROBE_UNKNOWN:
                    lenient |= B(E_INVALID_ADDRESS);
                    break;
                case HM_PROBE_UNMAPPABLE:
                    st_other |= B(E_INVALID_ADDRESS);
                    lenient |= B(E_INVALIDARG) | B(E_OUTOFMEMORY);
                    break;
                }
            }
            if (R > m->big)
                lenient |= B(E_OUTOFMEMORY);
            if (end > m->user_end - P) /* the kernel never maps the last page of user space */
                lenient |= B(E_INVALIDARG) | B(E_OUTOFMEMORY);
            plan->base = base;
            e->out = base;
        }
        if (plan->large)
            lenient |= B(E_OUTOFMEMORY); /* huge pages may not be available at all */
        plan->npages = R / P;
        /* P3: address space; P1: commit charge. */
        if (ceiling_check(m, m->config.address_space_limit, m->reserved + m->external, R, level) == 1)
            st_other |= B(E_OUTOFMEMORY);
        if (plan->commit && ceiling_check(m, m->config.commit_limit, m->committed, R, level) == 1) {
            st |= B(E_OUTOFMEMORY);
            commit_denied = true;
        }
        if (commit_denied && level != eTaskCritical) {
            e->p2_possible = true;
            e->p2_required = !st_other && !lenient;
        }
        st |= st_other;
        e->accept = (st ? st : B(S_OK)) | lenient;
        return;
    }

    /* S5 (commit), S10 (reset, reset undo): the range must lie in one region. */
    uintptr_t start = down(addr, P), end = up(addr + size, P);
    long i = addr ? hm_model_find(m, start) : -1;
    if (i < 0 || end > region_end(m, &m->regions[i])) {
        e->accept = B(E_INVALID_ADDRESS) | lenient;
        return;
    }
    const hm_region *r = &m->regions[i];
    plan->base = start;
    plan->npages = (end - start) / P;
    e->out = start;
    if (type == MEM_RESET) {
        plan->kind = HM_ALLOC_RESET;
        e->accept = B(S_OK) | lenient;
        return;
    }
    if (type == MEM_RESET_UNDO) {
        /* S10: success only when provably intact; failing conservatively is allowed. */
        plan->kind = HM_ALLOC_RESET_UNDO;
        e->accept = B(S_OK) | B(E_OUTOFMEMORY) | lenient;
        return;
    }
    plan->kind = HM_ALLOC_COMMIT;
    size_t first = (start - r->base) / P, add = 0;
    for (size_t k = first; k < first + plan->npages; k++)
        if (!r->pages[k].protect)
            add += P;
    switch (ceiling_check(m, m->config.commit_limit, m->committed, add, level)) {
    case 0:
        e->accept = B(S_OK);
        break;
    case 1:
        e->accept = B(E_OUTOFMEMORY);
        e->p2_possible = e->p2_required = level != eTaskCritical;
        break;
    default:
        e->accept = B(S_OK) | B(E_OUTOFMEMORY);
        e->p2_possible = level != eTaskCritical;
        break;
    }
    e->accept |= lenient;
}

static void note_peaks(hm_model *m)
{
    if (m->committed > m->peak_committed)
        m->peak_committed = m->committed;
    if (m->reserved > m->peak_reserved)
        m->peak_reserved = m->reserved;
}

bool hm_model_alloc_apply(hm_model *m, const hm_alloc_plan *plan, uintptr_t out, const char **why)
{
    const size_t P = m->page;
    *why = NULL;
    if (plan->kind == HM_ALLOC_RESERVE) {
        uintptr_t base = plan->fixed ? plan->base : out;
        size_t R = plan->npages * P;
        if (!plan->fixed) {
            if (!base || base % m->granule) {
                *why = "a NULL-address reservation returned a base that is not 64 KiB-aligned (S4)";
                return false;
            }
            if (base + R < base || base + R > m->user_end) {
                *why = "a NULL-address reservation ends beyond user space";
                return false;
            }
            if (hm_model_overlaps(m, base, base + R)) {
                *why = "a NULL-address reservation overlaps a live region (S4)";
                return false;
            }
            if (plan->large && base % m->huge) {
                *why = "a MEM_LARGE_PAGES reservation is not huge-page aligned (S1)";
                return false;
            }
        }
        if (m->nregions == m->cap) {
            m->cap = m->cap ? 2 * m->cap : 16;
            m->regions = realloc(m->regions, m->cap * sizeof *m->regions);
            if (!m->regions)
                abort();
        }
        hm_region *r = &m->regions[m->nregions++];
        r->base = base;
        r->npages = plan->npages;
        r->alloc_protect = plan->protect;
        r->pages = calloc(plan->npages, sizeof *r->pages);
        if (!r->pages)
            abort();
        for (size_t k = 0; k < r->npages; k++) {
            r->pages[k].dirty = true;
            if (plan->commit)
                r->pages[k].protect = plan->protect;
        }
        m->reserved += R;
        if (plan->commit)
            m->committed += R;
        note_peaks(m);
        return true;
    }
    long i = hm_model_find(m, plan->base);
    if (i < 0)
        abort();
    hm_region *r = &m->regions[i];
    size_t first = (plan->base - r->base) / P;
    for (size_t k = first; k < first + plan->npages; k++) {
        hm_page *pg = &r->pages[k];
        switch (plan->kind) {
        case HM_ALLOC_COMMIT:
            if (!pg->protect) { /* S5: newly committed pages read zero */
                pg->tag = 0;
                pg->reset = false;
                m->committed += P;
            }
            pg->protect = plan->protect; /* already committed: keep data, new protection */
            pg->dirty = true;
            break;
        case HM_ALLOC_RESET:
            if (pg->protect) {
                pg->reset = true;
                pg->dirty = true;
            }
            break;
        case HM_ALLOC_RESET_UNDO:
            if (pg->protect) { /* the library claims every page is intact: prove it */
                pg->reset = false;
                pg->dirty = true;
            }
            break;
        default:
            abort();
        }
    }
    note_peaks(m);
    return true;
}

void hm_model_free(hm_model *m, uintptr_t addr, size_t size, DWORD free_type, hm_expect *e)
{
    memset(e, 0, sizeof *e);
    if (free_type != MEM_DECOMMIT && free_type != MEM_RELEASE) { /* S7 */
        e->accept = B(E_INVALIDARG);
        return;
    }
    long i = hm_model_find(m, addr);
    /* An address beyond user space is "inside no region" (S6, S7) and "beyond the user
     * address space" (S3): either answer. */
    unsigned beyond = addr >= m->user_end ? B(E_INVALIDARG) : 0;
    if (free_type == MEM_RELEASE) { /* S7 */
        if (size != 0)
            e->accept = B(E_INVALIDARG);
        else if (i < 0)
            e->accept = B(E_INVALIDOPERATION) | beyond;
        else if (down(addr, m->page) != m->regions[i].base)
            e->accept = B(E_INVALID_ADDRESS);
        else
            e->accept = B(S_OK);
        return;
    }
    /* S6 (and S3 for the range). */
    if (size != 0 && (addr + size < addr || addr + size > m->user_end)) {
        e->accept = B(E_INVALIDARG) | (i < 0 ? B(E_INVALIDOPERATION) : 0);
        return;
    }
    if (i < 0) {
        e->accept = B(E_INVALIDOPERATION) | beyond;
        return;
    }
    const hm_region *r = &m->regions[i];
    if (size == 0)
        e->accept = down(addr, m->page) == r->base ? B(S_OK) : B(E_INVALID_ADDRESS);
    else if (up(addr + size, m->page) > region_end(m, r))
        e->accept = B(E_INVALIDARG);
    else
        e->accept = B(S_OK);
}

void hm_model_free_apply(hm_model *m, uintptr_t addr, size_t size, DWORD free_type)
{
    const size_t P = m->page;
    long i = hm_model_find(m, addr);
    if (i < 0)
        abort();
    hm_region *r = &m->regions[i];
    size_t first = 0, count = r->npages;
    if (free_type == MEM_DECOMMIT && size) {
        first = (down(addr, P) - r->base) / P;
        count = (up(addr + size, P) - down(addr, P)) / P;
    }
    for (size_t k = first; k < first + count; k++) {
        if (r->pages[k].protect) {
            m->committed -= P;
            r->pages[k].protect = 0;
            r->pages[k].reset = false;
            r->pages[k].tag = 0;
        }
    }
    if (free_type == MEM_RELEASE) {
        m->reserved -= r->npages * P;
        free(r->pages);
        memmove(r, r + 1, (m->nregions - (size_t)i - 1) * sizeof *r);
        m->nregions--;
    }
}

void hm_model_protect(hm_model *m, uintptr_t addr, size_t size, DWORD protect, hm_expect *e)
{
    const size_t P = m->page;
    memset(e, 0, sizeof *e);
    unsigned arg = hm_protect_errors(m, protect);
    if (size == 0 || addr + size < addr || addr + size > m->user_end)
        arg |= B(E_INVALIDARG);
    if (arg) {
        e->accept = arg;
        return;
    }
    /* S8: every page committed, inside one reservation. */
    uintptr_t start = down(addr, P), end = up(addr + size, P);
    long i = hm_model_find(m, start);
    if (i < 0 || end > region_end(m, &m->regions[i])) {
        e->accept = B(E_INVALID_ADDRESS);
        return;
    }
    const hm_region *r = &m->regions[i];
    size_t first = (start - r->base) / P;
    for (size_t k = first; k < first + (end - start) / P; k++) {
        if (!r->pages[k].protect) {
            e->accept = B(E_INVALID_ADDRESS);
            return;
        }
    }
    e->accept = B(S_OK);
    e->old_protect = r->pages[first].protect;
}

void hm_model_protect_apply(hm_model *m, uintptr_t addr, size_t size, DWORD protect)
{
    const size_t P = m->page;
    uintptr_t start = down(addr, P), end = up(addr + size, P);
    hm_region *r = &m->regions[hm_model_find(m, start)];
    const DWORD cache = PAGE_NOCACHE | PAGE_WRITECOMBINE;
    for (size_t k = (start - r->base) / P; k < (end - r->base) / P; k++) {
        /* S11: the cache modifier stays as committed; one passed to protect is ignored. */
        r->pages[k].protect = (protect & ~cache) | (r->pages[k].protect & cache);
        r->pages[k].dirty = true;
    }
}

bool hm_model_query(const hm_model *m, uintptr_t addr, MEMORY_BASIC_INFORMATION *out)
{
    const size_t P = m->page;
    long i = hm_model_find(m, addr);
    memset(out, 0, sizeof *out);
    if (i < 0)
        return false;
    const hm_region *r = &m->regions[i];
    size_t k = (down(addr, P) - r->base) / P, n = k;
    DWORD p = r->pages[k].protect;
    while (n < r->npages && r->pages[n].protect == p) /* S9: the run, never past the region */
        n++;
    out->BaseAddress = (void *)down(addr, P);
    out->AllocationBase = (void *)r->base;
    out->AllocationProtect = r->alloc_protect;
    out->RegionSize = (n - k) * P;
    out->State = p ? MEM_COMMIT : MEM_RESERVE;
    out->Protect = p;
    out->Type = MEM_PRIVATE;
    return true;
}

static long external_find(const hm_model *m, uintptr_t start)
{
    for (size_t i = 0; i < HM_MAX_EXTERNAL; i++)
        if (m->ext[i].size && m->ext[i].start == start)
            return (long)i;
    return -1;
}

void hm_model_needs(const hm_model *m, uintptr_t start, size_t size, hm_expect *e)
{
    memset(e, 0, sizeof *e);
    e->accept = B(S_OK);
    if (size == 0)
        e->accept |= B(E_INVALIDARG); /* silent */
    size_t used = m->reserved + m->external;
    /* P6: E_OUTOFMEMORY past the limit; below it, the call has no level: any ceiling may apply. */
    if (ceiling_check(m, m->config.address_space_limit, used, size, eProcessCritical))
        e->accept = B(E_OUTOFMEMORY);
    else if (ceiling_check(m, m->config.address_space_limit, used, size, eTaskCritical))
        e->accept |= B(E_OUTOFMEMORY);
}

void hm_model_acquired(const hm_model *m, uintptr_t start, size_t size, hm_expect *e)
{
    memset(e, 0, sizeof *e);
    if (external_find(m, start) >= 0) {
        e->accept = B(E_INVALIDOPERATION);
        return;
    }
    e->accept = B(S_OK);
    if (size == 0)
        e->accept |= B(E_INVALIDARG);
    if (ceiling_check(m, m->config.address_space_limit, m->reserved + m->external, size,
                      eProcessCritical))
        e->accept |= B(E_OUTOFMEMORY); /* silent: accounting only, or admission */
}

void hm_model_acquired_apply(hm_model *m, uintptr_t start, size_t size)
{
    for (size_t i = 0; i < HM_MAX_EXTERNAL; i++) {
        if (!m->ext[i].size) {
            m->ext[i].start = start;
            m->ext[i].size = size;
            m->external += size;
            return;
        }
    }
    abort();
}

void hm_model_released(const hm_model *m, uintptr_t start, hm_expect *e)
{
    memset(e, 0, sizeof *e);
    e->accept = external_find(m, start) >= 0 ? B(S_OK) : B(E_INVALIDOPERATION);
}

void hm_model_released_apply(hm_model *m, uintptr_t start)
{
    long i = external_find(m, start);
    m->external -= m->ext[i].size;
    m->ext[i].size = 0;
}

int hm_model_state(const hm_model *m)
{
    size_t L = m->config.commit_limit;
    if (!L)
        return 0;
    unsigned __int128 c = (unsigned __int128)m->committed * 100;
    if (c >= (unsigned __int128)L * m->config.low_memory_percent)
        return eMemoryAvailableLow;
    if (c < (unsigned __int128)L * m->config.high_memory_percent)
        return eMemoryAvailableHigh;
    return eMemoryAvailableNeutral;
}
