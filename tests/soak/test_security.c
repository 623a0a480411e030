/*
 * test_security.c: hostmem never touches memory it does not own, never lets
 * arithmetic wrap into someone else's memory, refuses write+execute when told
 * to, and never hands out stale data or accessible reserved pages.
 *
 * "Foreign" mappings are the test's own mmap()s (and its stack and heap):
 * after every refused call their extent, protection and contents are checked
 * against /proc/self/maps and a pattern written before.
 */
#include <criterion/criterion.h>

#include "soak_util.h"

#define HR_EQ(expr, want)                                                                            \
    do {                                                                                             \
        HRESULT hr_got_ = (expr), hr_want_ = (want);                                                 \
        cr_assert_eq(hr_got_, hr_want_, "%s\n  got  %s (0x%08" PRIx32 ")\n  want %s (0x%08" PRIx32 ")", \
                     #expr, hostmem_hresult_name(hr_got_), (uint32_t)hr_got_,                        \
                     hostmem_hresult_name(hr_want_), (uint32_t)hr_want_);                            \
    } while (0)

static hostmem_manager *m;
static size_t P;

static void setup(void)
{
    P = pg();
    HR_EQ(hostmem_create(NULL, &m), S_OK);
}

static void teardown(void)
{
    hostmem_destroy(m);
    m = NULL;
}

TestSuite(security, .init = setup, .fini = teardown);

static MEMORY_BASIC_INFORMATION query(const void *a)
{
    MEMORY_BASIC_INFORMATION mbi;
    SIZE_T w = 0;
    memset(&mbi, 0xa5, sizeof mbi);
    HR_EQ(hostmem_virtual_query(m, a, &mbi, sizeof mbi, &w), S_OK);
    return mbi;
}

static void *alloc_ok(void *addr, size_t size, DWORD type, DWORD prot)
{
    void *p = NULL;
    HR_EQ(hostmem_virtual_alloc(m, addr, size, type, prot, eTaskCritical, &p), S_OK);
    cr_assert_not_null(p);
    return p;
}

static HRESULT alloc_hr(void *addr, size_t size, DWORD type, DWORD prot)
{
    void *p = (void *)0x1;
    HRESULT hr = hostmem_virtual_alloc(m, addr, size, type, prot, eTaskCritical, &p);
    if (FAILED(hr))
        cr_assert_null(p, "*out_mem %p after %s", p, hostmem_hresult_name(hr));
    else
        cr_assert_fail("virtual_alloc(%p, %#zx, %#x, %#x) succeeded at %p", addr, size, (unsigned)type,
                       (unsigned)prot, p);
    return hr;
}

#define FOREIGN_INTACT(addr, size, perms, seed)                                                  \
    do {                                                                                         \
        const char *why_ = foreign_intact((uintptr_t)(addr), (size), (perms), (seed));           \
        cr_assert_null(why_, "foreign mapping %p+%#zx disturbed: %s", (void *)(addr), (size_t)(size), \
                       why_);                                                                    \
    } while (0)

/* The manager's totals did not move. */
#define STATS_UNCHANGED(before)                                                                  \
    do {                                                                                         \
        hostmem_stats now_ = stats_of(m);                                                        \
        cr_assert(stats_same(&(before), &now_), "stats moved: " STATS_FMT " -> " STATS_FMT,        \
                  STATS_ARGS(before), STATS_ARGS(now_));                                         \
    } while (0)

/* ---- reserve never maps over a foreign mapping ------------------------------------ */

Test(security, reserve_exactly_at_foreign_mapping)
{
    uintptr_t a = free_range(4 * GRAN, 4 * GRAN);
    cr_assert(foreign_map(a, GRAN, PROT_READ, 1));
    hostmem_stats s0 = stats_of(m);
    long lines = maps_lines();
    HR_EQ(alloc_hr((void *)a, GRAN, MEM_RESERVE, PAGE_READWRITE), HOSTMEM_E_INVALID_ADDRESS);
    HR_EQ(alloc_hr((void *)a, GRAN, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE), HOSTMEM_E_INVALID_ADDRESS);
    HR_EQ(alloc_hr((void *)a, P, MEM_RESERVE, PAGE_NOACCESS), HOSTMEM_E_INVALID_ADDRESS);
    HR_EQ(alloc_hr((void *)(a + 5), 1, MEM_RESERVE, PAGE_READWRITE), HOSTMEM_E_INVALID_ADDRESS);
    /* MEM_COMMIT at a foreign address: not inside a reservation of ours. */
    HR_EQ(alloc_hr((void *)a, GRAN, MEM_COMMIT, PAGE_READWRITE), HOSTMEM_E_INVALID_ADDRESS);
    FOREIGN_INTACT(a, GRAN, "r--p", 1);
    STATS_UNCHANGED(s0);
    cr_assert_eq(maps_lines(), lines, "/proc/self/maps changed");
    munmap((void *)a, GRAN);
}

Test(security, reserve_adjacent_to_foreign_mapping)
{
    /* Layout: [F below: 64 KiB] [gap for a region: 2 x 64 KiB] [F above: 64 KiB] */
    uintptr_t a = free_range(4 * GRAN, 4 * GRAN);
    uintptr_t lo = a, gap = a + GRAN, hi = a + 3 * GRAN;
    cr_assert(foreign_map(lo, GRAN, PROT_READ | PROT_WRITE, 2));
    cr_assert(foreign_map(hi, GRAN, PROT_READ, 3));

    /* A request whose 64 KiB-rounded base touches F below and whose end touches F above. */
    char *r = alloc_ok((void *)(gap + 100), 2 * GRAN - 100, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE);
    cr_assert_eq((uintptr_t)r, gap, "base %p, want %p", r, (void *)gap);
    MEMORY_BASIC_INFORMATION mbi = query(r);
    cr_assert_eq(mbi.RegionSize, 2 * GRAN);
    cr_assert(all_zero(r, 2 * GRAN));
    memset(r, 0xcc, 2 * GRAN);
    FOREIGN_INTACT(lo, GRAN, "rw-p", 2);
    FOREIGN_INTACT(hi, GRAN, "r--p", 3);
    /* Decommit and release of the region leave both neighbours alone. */
    HR_EQ(hostmem_virtual_free(m, r, 0, MEM_DECOMMIT), S_OK);
    FOREIGN_INTACT(lo, GRAN, "rw-p", 2);
    FOREIGN_INTACT(hi, GRAN, "r--p", 3);
    HR_EQ(hostmem_virtual_free(m, r, 0, MEM_RELEASE), S_OK);
    FOREIGN_INTACT(lo, GRAN, "rw-p", 2);
    FOREIGN_INTACT(hi, GRAN, "r--p", 3);
    mbi = query(r);
    cr_assert_eq(mbi.State, MEM_FREE);

    /* A one-page region in the first granule, F above one page past its end
     * (inside the region's unusable 64 KiB tail): F stays as it was. */
    uintptr_t tail = gap + GRAN - P;
    munmap((void *)hi, GRAN);
    cr_assert(foreign_map(tail, P, PROT_READ, 4));
    void *p = (void *)0x1;
    HRESULT hr = hostmem_virtual_alloc(m, (void *)gap, P, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE, eTaskCritical, &p);
    cr_assert(hr == S_OK || hr == HOSTMEM_E_INVALID_ADDRESS, "%s", hostmem_hresult_name(hr));
    FOREIGN_INTACT(tail, P, "r--p", 4);
    if (hr == S_OK) {
        memset(p, 1, P);
        HR_EQ(hostmem_virtual_free(m, p, 0, MEM_RELEASE), S_OK);
        FOREIGN_INTACT(tail, P, "r--p", 4);
    }
    FOREIGN_INTACT(lo, GRAN, "rw-p", 2);
    munmap((void *)lo, GRAN);
    munmap((void *)tail, P);
}

Test(security, reserve_overlapping_foreign_mapping)
{
    uintptr_t a = free_range(16 * GRAN, 16 * GRAN);
    uintptr_t f = a + 4 * GRAN; /* F: 2 granules */
    cr_assert(foreign_map(f, 2 * GRAN, PROT_READ, 5));
    hostmem_stats s0 = stats_of(m);
    long lines = maps_lines();
    struct {
        uintptr_t addr;
        size_t size;
    } cases[] = {
        {f - GRAN, 2 * GRAN},           /* the granule below and F's first */
        {f - GRAN, GRAN + 1},           /* one byte into F */
        {f - 4 * GRAN, 4 * GRAN + P},   /* F's first page at the end */
        {f + GRAN, 2 * GRAN},           /* F's second granule and the one above */
        {f + 2 * GRAN - 1, 2},          /* rounds down into F's last granule */
        {a, 16 * GRAN},                 /* F in the middle */
        {f + 100, 10},                  /* inside F, unaligned */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        HR_EQ(alloc_hr((void *)cases[i].addr, cases[i].size, MEM_RESERVE, PAGE_READWRITE), HOSTMEM_E_INVALID_ADDRESS);
        HR_EQ(alloc_hr((void *)cases[i].addr, cases[i].size, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE),
              HOSTMEM_E_INVALID_ADDRESS);
        FOREIGN_INTACT(f, 2 * GRAN, "r--p", 5);
    }
    STATS_UNCHANGED(s0);
    cr_assert_eq(maps_lines(), lines, "/proc/self/maps changed: a refused reserve left something mapped");
    /* Nothing of ours was left around F. */
    cr_assert_eq(query((void *)a).State, MEM_FREE);
    cr_assert_eq(query((void *)(f - GRAN)).State, MEM_FREE);
    cr_assert_eq(query((void *)(f + 2 * GRAN)).State, MEM_FREE);
    munmap((void *)f, 2 * GRAN);
}

/* ---- other calls at foreign addresses ---------------------------------------------- */

Test(security, calls_inside_foreign_mappings)
{
    uintptr_t a = free_range(8 * GRAN, 4 * GRAN);
    /* A region of ours with F right above it, and F's pattern readable. */
    char *r = alloc_ok((void *)a, 2 * GRAN, MEM_RESERVE, PAGE_READWRITE);
    alloc_ok(r, 2 * GRAN, MEM_COMMIT, PAGE_READWRITE);
    memset(r, 0x5e, 2 * GRAN);
    uintptr_t f = a + 2 * GRAN;
    cr_assert(foreign_map(f, 2 * GRAN, PROT_READ | PROT_WRITE, 6));
    hostmem_stats s0 = stats_of(m);
    DWORD old = 0x77;
    void *in = (void *)(f + GRAN + 123);
    int on_stack = 0x1234;
    void *heap = malloc(4096);
    cr_assert_not_null(heap);
    memset(heap, 0x33, 4096);
    void *targets[] = {(void *)f, in, &on_stack, heap};
    for (size_t i = 0; i < 4; i++) {
        void *t = targets[i];
        HR_EQ(alloc_hr(t, P, MEM_COMMIT, PAGE_READWRITE), HOSTMEM_E_INVALID_ADDRESS);
        HR_EQ(alloc_hr(t, P, MEM_COMMIT, PAGE_NOACCESS), HOSTMEM_E_INVALID_ADDRESS);
        HR_EQ(alloc_hr(t, P, MEM_RESET, PAGE_READWRITE), HOSTMEM_E_INVALID_ADDRESS);
        HR_EQ(hostmem_virtual_protect(m, t, P, PAGE_NOACCESS, &old), HOSTMEM_E_INVALID_ADDRESS);
        HR_EQ(hostmem_virtual_free(m, t, P, MEM_DECOMMIT), HOST_E_INVALIDOPERATION);
        HR_EQ(hostmem_virtual_free(m, t, 0, MEM_DECOMMIT), HOST_E_INVALIDOPERATION);
        HR_EQ(hostmem_virtual_free(m, t, 0, MEM_RELEASE), HOST_E_INVALIDOPERATION);
    }
    cr_assert_eq(old, 0x77, "old_protect written by a failed protect");
    /* Ranges that start in our region and run into F. */
    HR_EQ(alloc_hr(r + GRAN, 2 * GRAN, MEM_COMMIT, PAGE_READONLY), HOSTMEM_E_INVALID_ADDRESS);
    HR_EQ(hostmem_virtual_protect(m, r, 3 * GRAN, PAGE_NOACCESS, &old), HOSTMEM_E_INVALID_ADDRESS);
    HR_EQ(hostmem_virtual_free(m, r + GRAN, 2 * GRAN, MEM_DECOMMIT), E_INVALIDARG);
    HR_EQ(alloc_hr(r, 3 * GRAN, MEM_RESET, PAGE_READWRITE), HOSTMEM_E_INVALID_ADDRESS);
    FOREIGN_INTACT(f, 2 * GRAN, "rw-p", 6);
    cr_assert_eq(on_stack, 0x1234);
    for (size_t i = 0; i < 4096; i++)
        cr_assert_eq(((unsigned char *)heap)[i], 0x33, "heap byte %zu", i);
    /* Our region kept its state and data. */
    MEMORY_BASIC_INFORMATION mbi = query(r);
    cr_assert(mbi.State == MEM_COMMIT && mbi.Protect == PAGE_READWRITE && mbi.RegionSize == 2 * GRAN);
    for (size_t i = 0; i < 2 * GRAN; i++)
        cr_assert_eq((unsigned char)r[i], 0x5e, "region byte %zu", i);
    STATS_UNCHANGED(s0);
    /* Releasing our region leaves F alone. */
    HR_EQ(hostmem_virtual_free(m, r, 0, MEM_RELEASE), S_OK);
    FOREIGN_INTACT(f, 2 * GRAN, "rw-p", 6);
    free(heap);
    munmap((void *)f, 2 * GRAN);
}

/* ---- size and address arithmetic ------------------------------------------------------ */

Test(security, size_and_address_overflow)
{
    char *r = alloc_ok(NULL, 4 * GRAN, MEM_RESERVE, PAGE_READWRITE);
    alloc_ok(r, GRAN, MEM_COMMIT, PAGE_READWRITE);
    memset(r, 0x6b, GRAN);
    hostmem_stats s0 = stats_of(m);
    long lines = maps_lines();
    DWORD old = 0x77;

    /* NULL address: sizes no address space can hold. */
    size_t huge[] = {SIZE_MAX, SIZE_MAX - P + 1, SIZE_MAX - GRAN + 1, (size_t)1 << 63, (size_t)1 << 62,
                     ((size_t)1 << 47) - GRAN + 1, (size_t)1 << 47};
    for (size_t i = 0; i < sizeof huge / sizeof huge[0]; i++) {
        HR_EQ(alloc_hr(NULL, huge[i], MEM_RESERVE, PAGE_READWRITE), E_OUTOFMEMORY);
        HR_EQ(alloc_hr(NULL, huge[i], MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE), E_OUTOFMEMORY);
        HR_EQ(alloc_hr(NULL, huge[i], MEM_COMMIT, PAGE_READWRITE), E_OUTOFMEMORY);
    }
    /* A given address: address + size wraps, or ends past the user address space. */
    struct {
        uintptr_t addr;
        size_t size;
    } bad[] = {
        {0x10000, SIZE_MAX},
        {0x10000, SIZE_MAX - 0x10000 + 1},          /* ends exactly at 2^64: wraps to 0 */
        {0x10000, SIZE_MAX - 0x10000 - 10},         /* fits in 64 bits, the page round-up wraps */
        {(uintptr_t)r, SIZE_MAX},
        {(uintptr_t)r, SIZE_MAX - (uintptr_t)r + 2},
        {USER_END - GRAN, 2 * GRAN},                /* crosses 2^47 */
        {USER_END - P, P + 1},
        {USER_END, P},                              /* at 2^47 */
        {USER_END + GRAN, GRAN},
        {(uintptr_t)1 << 56, P},                    /* 5-level page tables' end */
        {(uintptr_t)1 << 63, P},
        {UINTPTR_MAX - P + 1, P},                   /* the last page of the address space */
        {UINTPTR_MAX, 1},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        void *ad = (void *)bad[i].addr;
        size_t sz = bad[i].size;
        HR_EQ(alloc_hr(ad, sz, MEM_RESERVE, PAGE_READWRITE), E_INVALIDARG);
        HR_EQ(alloc_hr(ad, sz, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE), E_INVALIDARG);
        HR_EQ(alloc_hr(ad, sz, MEM_COMMIT, PAGE_READWRITE), E_INVALIDARG);
        HR_EQ(alloc_hr(ad, sz, MEM_RESET, PAGE_READWRITE), E_INVALIDARG);
        HR_EQ(hostmem_virtual_protect(m, ad, sz, PAGE_READONLY, &old), E_INVALIDARG);
        HR_EQ(hostmem_virtual_free(m, ad, sz, MEM_DECOMMIT), E_INVALIDARG);
    }
    /* Size 0 and addresses at or above 2^47 with the calls that take no size. */
    uintptr_t high[] = {USER_END, USER_END + P, (uintptr_t)1 << 56, (uintptr_t)1 << 63, UINTPTR_MAX};
    for (size_t i = 0; i < sizeof high / sizeof high[0]; i++) {
        HR_EQ(hostmem_virtual_free(m, (void *)high[i], 0, MEM_RELEASE), E_INVALIDARG);
        HR_EQ(hostmem_virtual_free(m, (void *)high[i], 0, MEM_DECOMMIT), E_INVALIDARG);
        MEMORY_BASIC_INFORMATION mbi;
        SIZE_T w = 0;
        HR_EQ(hostmem_virtual_query(m, (void *)high[i], &mbi, sizeof mbi, &w), E_INVALIDARG);
    }
    /* The last page below 2^47 is a valid address to ask about. */
    MEMORY_BASIC_INFORMATION top = query((void *)(USER_END - 1));
    cr_assert_eq((uintptr_t)top.BaseAddress, USER_END - P);
    cr_assert_leq((uintptr_t)top.BaseAddress + top.RegionSize, USER_END);
    HR_EQ(alloc_hr(r, 0, MEM_COMMIT, PAGE_READWRITE), E_INVALIDARG);
    HR_EQ(alloc_hr(NULL, 0, MEM_RESERVE, PAGE_READWRITE), E_INVALIDARG);
    /* Inside the region, ranges past its end. */
    HR_EQ(alloc_hr(r, 4 * GRAN + 1, MEM_COMMIT, PAGE_READWRITE), HOSTMEM_E_INVALID_ADDRESS);
    HR_EQ(alloc_hr(r + 4 * GRAN - 1, 2, MEM_COMMIT, PAGE_READWRITE), HOSTMEM_E_INVALID_ADDRESS);
    HR_EQ(hostmem_virtual_free(m, r + GRAN, 3 * GRAN + 1, MEM_DECOMMIT), E_INVALIDARG);
    HR_EQ(hostmem_virtual_protect(m, r, GRAN + 1, PAGE_READONLY, &old), HOSTMEM_E_INVALID_ADDRESS);
    cr_assert_eq(old, 0x77, "old_protect written by a failed protect");

    STATS_UNCHANGED(s0);
    cr_assert_eq(maps_lines(), lines, "/proc/self/maps changed");
    MEMORY_BASIC_INFORMATION mbi = query(r);
    cr_assert(mbi.State == MEM_COMMIT && mbi.Protect == PAGE_READWRITE && mbi.RegionSize == GRAN);
    mbi = query(r + GRAN);
    cr_assert(mbi.State == MEM_RESERVE && mbi.RegionSize == 3 * GRAN);
    for (size_t i = 0; i < GRAN; i++)
        cr_assert_eq((unsigned char)r[i], 0x6b);
    HR_EQ(hostmem_virtual_free(m, r, 0, MEM_RELEASE), S_OK);
}

/* ---- write xor execute ------------------------------------------------------------------ */

Test(security, deny_write_execute)
{
    hostmem_config cfg;
    hostmem_config_init(&cfg);
    cfg.deny_write_execute = true;
    hostmem_manager *w = NULL;
    HR_EQ(hostmem_create(&cfg, &w), S_OK);
    hostmem_manager *saved = m;
    m = w;
    char *r = alloc_ok(NULL, 4 * GRAN, MEM_RESERVE, PAGE_READWRITE);
    alloc_ok(r, GRAN, MEM_COMMIT, PAGE_READWRITE);
    memset(r, 0x1f, GRAN);
    hostmem_stats s0 = stats_of(m);
    long lines = maps_lines();
    DWORD old = 0x77;
    DWORD wx[] = {PAGE_EXECUTE_READWRITE, PAGE_EXECUTE_READWRITE | PAGE_NOCACHE,
                  PAGE_EXECUTE_READWRITE | PAGE_WRITECOMBINE, PAGE_EXECUTE_READWRITE | PAGE_GUARD};
    for (size_t i = 0; i < sizeof wx / sizeof wx[0]; i++) {
        HR_EQ(alloc_hr(NULL, GRAN, MEM_RESERVE, wx[i]), E_ACCESSDENIED);
        HR_EQ(alloc_hr(NULL, GRAN, MEM_RESERVE | MEM_COMMIT, wx[i]), E_ACCESSDENIED);
        HR_EQ(alloc_hr(NULL, GRAN, MEM_COMMIT, wx[i]), E_ACCESSDENIED);
        HR_EQ(alloc_hr(r + GRAN, GRAN, MEM_COMMIT, wx[i]), E_ACCESSDENIED); /* reserved pages */
        HR_EQ(alloc_hr(r, GRAN, MEM_COMMIT, wx[i]), E_ACCESSDENIED);        /* committed pages */
        HR_EQ(hostmem_virtual_protect(m, r, GRAN, wx[i], &old), E_ACCESSDENIED);
    }
    cr_assert_eq(old, 0x77, "old_protect written by a refused protect");
    STATS_UNCHANGED(s0);
    cr_assert_eq(maps_lines(), lines, "/proc/self/maps changed");
    MEMORY_BASIC_INFORMATION mbi = query(r);
    cr_assert(mbi.State == MEM_COMMIT && mbi.Protect == PAGE_READWRITE && mbi.RegionSize == GRAN);
    cr_assert_eq(query(r + GRAN).State, MEM_RESERVE);
    uintptr_t s, e;
    char perms[5];
    cr_assert_eq(maps_find((uintptr_t)r, &s, &e, perms), 0);
    cr_assert(!memcmp(perms, "rw-p", 4), "region pages are %.4s", perms);
    for (size_t i = 0; i < GRAN; i++)
        cr_assert_eq((unsigned char)r[i], 0x1f);
    /* Execute without write, and write without execute, remain allowed. */
    HR_EQ(hostmem_virtual_protect(m, r, GRAN, PAGE_EXECUTE_READ, &old), S_OK);
    cr_assert_eq(old, PAGE_READWRITE);
    cr_assert_eq(maps_find((uintptr_t)r, &s, &e, perms), 0);
    cr_assert(!memcmp(perms, "r-xp", 4), "region pages are %.4s", perms);
    HR_EQ(hostmem_virtual_protect(m, r, GRAN, PAGE_READWRITE, &old), S_OK);
    cr_assert_eq(old, PAGE_EXECUTE_READ);
    HR_EQ(hostmem_virtual_free(m, r, 0, MEM_RELEASE), S_OK);
    m = saved;
    hostmem_destroy(w);
}

/* ---- zero on every (re)commit, faults where nothing is committed ------------------------ */

Test(security, recommit_reads_zero)
{
    const size_t pages = 64;
    char *r = alloc_ok(NULL, pages * P, MEM_RESERVE, PAGE_READWRITE);
    unsigned seed = 7;
    for (int cycle = 0; cycle < 50; cycle++) {
        seed = seed * 1103515245u + 12345u;
        size_t first = (seed >> 8) % pages, count = 1 + (seed >> 16) % (pages - first);
        char *lo = r + first * P;
        cr_assert_eq(alloc_ok(lo, count * P, MEM_COMMIT, PAGE_READWRITE), lo);
        cr_assert(all_zero(lo, count * P), "cycle %d: recommitted pages %zu+%zu not zero", cycle, first, count);
        memset(lo, 0xa0 + cycle, count * P);
        /* Decommit the whole region, or part of the range (the rest keeps its data). */
        if (cycle % 3 == 0) {
            HR_EQ(hostmem_virtual_free(m, r, 0, MEM_DECOMMIT), S_OK);
        } else {
            HR_EQ(hostmem_virtual_free(m, lo, count * P, MEM_DECOMMIT), S_OK);
        }
        cr_assert_eq(stats_of(m).committed_bytes, 0);
        if (cycle % 10 == 0)
            cr_assert(faults(lo, 0), "decommitted page readable");
    }
    /* Commit over a half-committed range: the old half keeps its data, the new half is zero. */
    alloc_ok(r, 8 * P, MEM_COMMIT, PAGE_READWRITE);
    memset(r, 0x99, 8 * P);
    alloc_ok(r, 16 * P, MEM_COMMIT, PAGE_READWRITE);
    for (size_t i = 0; i < 8 * P; i++)
        cr_assert_eq((unsigned char)r[i], 0x99, "committed data lost at %zu", i);
    cr_assert(all_zero(r + 8 * P, 8 * P), "newly committed half not zero");
    HR_EQ(hostmem_virtual_free(m, r, 0, MEM_RELEASE), S_OK);
}

/* Release a small region with data, reserve again (the manager reuses the
 * address space of small regions, so the same address comes back): reserved
 * pages fault, committed pages read zero. */
Test(security, reused_address_space_reads_zero)
{
    int same = 0;
    for (int i = 0; i < 32; i++) {
        size_t size = (size_t)(1 + i % 4) * GRAN;
        char *a = alloc_ok(NULL, size, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE);
        memset(a, 0xe1, size);
        HR_EQ(hostmem_virtual_free(m, a, 0, MEM_RELEASE), S_OK);
        cr_assert_eq(query(a).State, MEM_FREE, "released region not MEM_FREE");
        if (i % 8 == 0) {
            cr_assert(faults(a, 0), "released region readable");
            cr_assert(faults(a, 1), "released region writable");
        }
        char *b = alloc_ok(NULL, size, MEM_RESERVE, PAGE_READWRITE);
        same += b == a;
        cr_assert_eq(query(b).State, MEM_RESERVE);
        if (i % 8 == 0)
            cr_assert(faults(b, 0), "reserved page of a reused range readable");
        alloc_ok(b, size, MEM_COMMIT, PAGE_READWRITE);
        cr_assert(all_zero(b, size), "reused range reads old data (iteration %d, %s address)", i,
                  b == a ? "same" : "other");
        HR_EQ(hostmem_virtual_free(m, b, 0, MEM_RELEASE), S_OK);
    }
    /* The same address, asked for explicitly. */
    char *a = alloc_ok(NULL, GRAN, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE);
    memset(a, 0xe2, GRAN);
    HR_EQ(hostmem_virtual_free(m, a, 0, MEM_RELEASE), S_OK);
    char *b = alloc_ok(a, GRAN, MEM_RESERVE, PAGE_READWRITE);
    cr_assert_eq(b, a);
    cr_assert(faults(b, 0), "reserved page readable");
    cr_assert(faults(b + GRAN - 1, 1), "reserved page writable");
    alloc_ok(b, GRAN, MEM_COMMIT, PAGE_READWRITE);
    cr_assert(all_zero(b, GRAN), "explicitly reused address reads old data");
    HR_EQ(hostmem_virtual_free(m, b, 0, MEM_RELEASE), S_OK);
    cr_log_info("%d of 32 small reservations got the released address back", same);
}

Test(security, reserved_decommitted_and_released_pages_fault)
{
    /* Small (carved from the manager's address space) and large (own mapping). */
    size_t sizes[] = {GRAN, 8 * MiB};
    for (size_t k = 0; k < 2; k++) {
        size_t size = sizes[k];
        char *r = alloc_ok(NULL, size, MEM_RESERVE, PAGE_READWRITE);
        cr_assert(faults(r, 0) && faults(r, 1), "reserved page accessible");
        cr_assert(faults(r + size - 1, 0), "last reserved page readable");
        alloc_ok(r, size, MEM_COMMIT, PAGE_READWRITE);
        memset(r, 0x4f, size);
        HR_EQ(hostmem_virtual_free(m, r + P, P, MEM_DECOMMIT), S_OK);
        cr_assert(faults(r + P, 0), "decommitted page readable");
        cr_assert(!faults(r, 0), "committed page faults");
        DWORD old;
        HR_EQ(hostmem_virtual_protect(m, r, P, PAGE_NOACCESS, &old), S_OK);
        cr_assert(faults(r, 0), "PAGE_NOACCESS page readable");
        HR_EQ(hostmem_virtual_protect(m, r + 2 * P, P, PAGE_READONLY | PAGE_GUARD, &old), S_OK);
        cr_assert(faults(r + 2 * P, 0), "guard page readable");
        HR_EQ(hostmem_virtual_free(m, r, 0, MEM_RELEASE), S_OK);
        MEMORY_BASIC_INFORMATION mbi = query(r);
        cr_assert_eq(mbi.State, MEM_FREE, "released region State 0x%x", (unsigned)mbi.State);
        cr_assert(faults(r, 0) && faults(r + size - 1, 1), "released region accessible");
    }
}
