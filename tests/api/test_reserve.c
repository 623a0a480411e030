/* S3 (sizes and ranges), S4 (reserve), S12 (bookkeeping independent of size). */
#include "util.h"

TestSuite(s3_range, .fini = hm_leak_check);
TestSuite(s4_reserve, .fini = hm_leak_check);
TestSuite(s12_bookkeeping, .fini = hm_leak_check);

/* ---- S3 ------------------------------------------------------------------------- */
Test(s3_range, size_zero)
{
    hostmem_manager *m = mk(NULL);
    char *r = reserve(m, NULL, GRAN);
    commit(m, r, pg(), PAGE_READWRITE);
    DWORD old;
    cr_assert_eq(alloc_fail(m, NULL, 0, MEM_RESERVE, PAGE_READWRITE, eTaskCritical), E_INVALIDARG);
    cr_assert_eq(alloc_fail(m, NULL, 0, MEM_COMMIT, PAGE_READWRITE, eTaskCritical), E_INVALIDARG);
    cr_assert_eq(alloc_fail(m, r, 0, MEM_COMMIT, PAGE_READWRITE, eTaskCritical), E_INVALIDARG);
    cr_assert_eq(alloc_fail(m, r, 0, MEM_RESET, PAGE_READWRITE, eTaskCritical), E_INVALIDARG);
    cr_assert_eq(alloc_fail(m, free_va(GRAN), 0, MEM_RESERVE, PAGE_READWRITE, eTaskCritical), E_INVALIDARG);
    HR_EQ(hostmem_virtual_protect(m, r, 0, PAGE_READONLY, &old), E_INVALIDARG);
    cr_assert_eq(q(m, r).Protect, PAGE_READWRITE);
    cr_assert_eq(st(m).region_count, 1);
    hostmem_destroy(m);
}

Test(s3_range, wrapping_ranges)
{
    hostmem_manager *m = mk(NULL);
    char *r = reserve(m, NULL, GRAN);
    commit(m, r, pg(), PAGE_READWRITE);
    DWORD old;
    void *hi = (void *)(UINTPTR_MAX & ~(uintptr_t)0xfff);
    cr_assert_eq(alloc_fail(m, (void *)0x10000000, SIZE_MAX - 0x1000, MEM_RESERVE, PAGE_READWRITE, eTaskCritical),
                 E_INVALIDARG);
    cr_assert_eq(alloc_fail(m, hi, 0x2000, MEM_RESERVE, PAGE_READWRITE, eTaskCritical), E_INVALIDARG);
    cr_assert_eq(alloc_fail(m, r, SIZE_MAX, MEM_COMMIT, PAGE_READWRITE, eTaskCritical), E_INVALIDARG);
    cr_assert_eq(alloc_fail(m, r + 1, SIZE_MAX, MEM_COMMIT, PAGE_READWRITE, eTaskCritical), E_INVALIDARG);
    HR_EQ(hostmem_virtual_protect(m, r, SIZE_MAX, PAGE_READONLY, &old), E_INVALIDARG);
    HR_EQ(hostmem_virtual_free(m, r, SIZE_MAX, MEM_DECOMMIT), E_INVALIDARG);
    cr_assert_eq(q(m, r).Protect, PAGE_READWRITE);
    cr_assert_eq(st(m).committed_bytes, pg());
    hostmem_destroy(m);
}

Test(s3_range, beyond_user_space)
{
    hostmem_manager *m = mk(NULL);
    DWORD old;
    void *edge = (void *)(USER_END - GRAN);
    cr_assert_eq(alloc_fail(m, edge, 2 * GRAN, MEM_RESERVE, PAGE_READWRITE, eTaskCritical), E_INVALIDARG);
    cr_assert_eq(alloc_fail(m, (void *)USER_END, pg(), MEM_RESERVE, PAGE_READWRITE, eTaskCritical), E_INVALIDARG);
    cr_assert_eq(alloc_fail(m, (void *)(USER_END + GRAN), pg(), MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE,
                            eTaskCritical),
                 E_INVALIDARG);
    cr_assert_eq(alloc_fail(m, (void *)USER_END, pg(), MEM_COMMIT, PAGE_READWRITE, eTaskCritical), E_INVALIDARG);
    cr_assert_eq(alloc_fail(m, (void *)((uintptr_t)1 << 60), pg(), MEM_COMMIT, PAGE_READWRITE, eTaskCritical),
                 E_INVALIDARG);
    HR_EQ(hostmem_virtual_protect(m, (void *)USER_END, pg(), PAGE_READONLY, &old), E_INVALIDARG);
    cr_assert_eq(st(m).region_count, 0);
    hostmem_destroy(m);
}

Test(s3_range, unreservable_size_is_out_of_memory)
{
    hostmem_manager *m = mk(NULL);
    cr_assert_eq(alloc_fail(m, NULL, (size_t)1 << 62, MEM_RESERVE, PAGE_READWRITE, eTaskCritical), E_OUTOFMEMORY);
    cr_assert_eq(alloc_fail(m, NULL, (size_t)1 << 62, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE, eTaskCritical),
                 E_OUTOFMEMORY);
    cr_assert_eq(alloc_fail(m, NULL, (size_t)1 << 62, MEM_COMMIT, PAGE_READONLY, eTaskCritical), E_OUTOFMEMORY);
    hostmem_stats s = st(m);
    cr_assert_eq(s.region_count, 0);
    cr_assert_eq(s.reserved_bytes, 0);
    cr_assert_eq(s.peak_reserved_bytes, 0);
    cr_assert_eq(s.committed_bytes, 0);
    hostmem_destroy(m);
}

/* ---- S4 ------------------------------------------------------------------------- */
Test(s4_reserve, null_address_is_granule_aligned_and_page_rounded)
{
    static const size_t sizes[] = {1, 4095, 4096, 4097, 65535, 65536, 65537, 3 * 65536 + 1, 1048575,
                                   1048576, 1048577, 4 * 1048576 + 12345};
    hostmem_manager *m = mk(NULL);
    void *got[sizeof sizes / sizeof sizes[0]];
    size_t total = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        char *p = reserve(m, NULL, sizes[i]);
        got[i] = p;
        cr_assert_eq((uintptr_t)p % GRAN, 0, "size %zu: base %p", sizes[i], (void *)p);
        size_t want = up(sizes[i], pg());
        total += want;
        MEMORY_BASIC_INFORMATION mbi = q(m, p);
        MBI_IS(mbi, p, p, PAGE_READWRITE, want, MEM_RESERVE, 0);
        /* The last page, queried alone, belongs to the region too. */
        mbi = q(m, p + want - 1);
        MBI_IS(mbi, p + want - pg(), p, PAGE_READWRITE, pg(), MEM_RESERVE, 0);
    }
    hostmem_stats s = st(m);
    cr_assert_eq(s.reserved_bytes, total);
    cr_assert_eq(s.committed_bytes, 0, "reserved pages are not charged");
    cr_assert_eq(s.region_count, sizeof sizes / sizeof sizes[0]);
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        HR_OK(hostmem_virtual_free(m, got[i], 0, MEM_RELEASE));
    hostmem_destroy(m);
}

Test(s4_reserve, regions_do_not_share_a_granule)
{
    hostmem_manager *m = mk(NULL);
    uintptr_t b[32];
    for (size_t i = 0; i < 32; i++)
        b[i] = (uintptr_t)reserve(m, NULL, 1 + i * 1000);
    for (size_t i = 0; i < 32; i++)
        for (size_t j = i + 1; j < 32; j++) {
            uintptr_t lo = b[i] < b[j] ? b[i] : b[j], hi = b[i] < b[j] ? b[j] : b[i];
            size_t lo_size = up(1 + (b[i] < b[j] ? i : j) * 1000, GRAN);
            cr_assert_geq(hi, lo + lo_size, "regions %zu and %zu share a granule", i, j);
        }
    hostmem_destroy(m);
}

Test(s4_reserve, given_address_rounds_down_to_granule)
{
    hostmem_manager *m = mk(NULL);
    char *hole = free_va(4 * GRAN);
    char *p = reserve(m, hole + GRAN + 0x1234, 0x2000);
    cr_assert_eq(p, hole + GRAN);
    /* Every page touching [address, address + size), measured from the base. */
    MEMORY_BASIC_INFORMATION mbi = q(m, p);
    MBI_IS(mbi, p, p, PAGE_READWRITE, 0x4000, MEM_RESERVE, 0);
    cr_assert_eq(st(m).reserved_bytes, 0x4000);
    hostmem_destroy(m);
}

Test(s4_reserve, given_address_exact)
{
    hostmem_manager *m = mk(NULL);
    char *hole = free_va(2 * MiB);
    char *p = reserve(m, hole, 2 * MiB);
    cr_assert_eq(p, hole);
    MEMORY_BASIC_INFORMATION mbi = q(m, p);
    MBI_IS(mbi, p, p, PAGE_READWRITE, 2 * MiB, MEM_RESERVE, 0);
    hostmem_destroy(m);
}

Test(s4_reserve, reserve_and_commit_at_given_address)
{
    hostmem_manager *m = mk(NULL);
    char *hole = free_va(GRAN);
    char *p = alloc_ok(m, hole + 100, 3 * pg(), MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE);
    cr_assert_eq(p, hole);
    MEMORY_BASIC_INFORMATION mbi = q(m, p);
    MBI_IS(mbi, p, p, PAGE_READWRITE, 4 * pg(), MEM_COMMIT, PAGE_READWRITE);
    cr_assert(all_bytes(p, 4 * pg(), 0));
    hostmem_destroy(m);
}

Test(s4_reserve, overlap_with_foreign_mapping_leaves_it_alone)
{
    hostmem_manager *m = mk(NULL);
    char *hole = free_va(4 * GRAN);
    /* A host mapping in the middle of a granule. */
    char *f = mmap(hole + GRAN + 2 * pg(), 2 * pg(), PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    cr_assert_eq(f, hole + GRAN + 2 * pg());
    memset(f, 0x5a, 2 * pg());
    /* Exactly over it, over its granule, from the granule before, ending inside it. */
    cr_assert_eq(alloc_fail(m, f, pg(), MEM_RESERVE, PAGE_READWRITE, eTaskCritical), HOSTMEM_E_INVALID_ADDRESS);
    cr_assert_eq(alloc_fail(m, hole + GRAN, GRAN, MEM_RESERVE, PAGE_READWRITE, eTaskCritical),
                 HOSTMEM_E_INVALID_ADDRESS);
    cr_assert_eq(alloc_fail(m, hole, 2 * GRAN, MEM_RESERVE, PAGE_READWRITE, eTaskCritical),
                 HOSTMEM_E_INVALID_ADDRESS);
    cr_assert_eq(alloc_fail(m, hole, GRAN + 3 * pg(), MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE, eTaskCritical),
                 HOSTMEM_E_INVALID_ADDRESS);
    cr_assert_eq(alloc_fail(m, hole + GRAN + 4 * pg(), pg(), MEM_RESERVE, PAGE_READWRITE, eTaskCritical),
                 HOSTMEM_E_INVALID_ADDRESS, "the granule holding a host mapping is not free");
    cr_assert(all_bytes(f, 2 * pg(), 0x5a), "host data touched");
    cr_assert(!faults_write(f, 0x5a) && !faults_write(f + 2 * pg() - 1, 0x5a), "host mapping lost access");
    /* Nothing next to it was mapped either: the granule before is still free for a host mmap. */
    void *g = mmap(hole, GRAN, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    cr_assert_eq(g, (void *)hole, "the manager left something mapped before the host mapping");
    munmap(g, GRAN);
    munmap(f, 2 * pg());
    hostmem_stats s = st(m);
    cr_assert_eq(s.region_count, 0);
    cr_assert_eq(s.reserved_bytes, 0);
    hostmem_destroy(m);
}

Test(s4_reserve, overlap_with_own_region)
{
    hostmem_manager *m = mk(NULL);
    char *hole = free_va(4 * GRAN);
    char *p = reserve(m, hole + GRAN, pg());
    cr_assert_eq(alloc_fail(m, p, pg(), MEM_RESERVE, PAGE_READWRITE, eTaskCritical), HOSTMEM_E_INVALID_ADDRESS);
    cr_assert_eq(alloc_fail(m, hole, 2 * GRAN, MEM_RESERVE, PAGE_READWRITE, eTaskCritical),
                 HOSTMEM_E_INVALID_ADDRESS);
    /* The rest of the region's granule is unusable: it rounds down onto the region. */
    cr_assert_eq(alloc_fail(m, p + pg(), pg(), MEM_RESERVE, PAGE_READWRITE, eTaskCritical),
                 HOSTMEM_E_INVALID_ADDRESS);
    cr_assert_eq(alloc_fail(m, p + GRAN - pg(), pg(), MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE, eTaskCritical),
                 HOSTMEM_E_INVALID_ADDRESS);
    /* The next granule is fine. */
    char *n = reserve(m, p + GRAN, pg());
    cr_assert_eq(n, p + GRAN);
    cr_assert_eq(st(m).region_count, 2);
    hostmem_destroy(m);
}

Test(s4_reserve, released_address_can_be_reserved_again)
{
    hostmem_manager *m = mk(NULL);
    char *small = reserve(m, NULL, pg());
    char *large = reserve(m, NULL, 8 * MiB);
    HR_OK(hostmem_virtual_free(m, small, 0, MEM_RELEASE));
    HR_OK(hostmem_virtual_free(m, large, 0, MEM_RELEASE));
    cr_assert_eq(reserve(m, small, pg()), small);
    cr_assert_eq(reserve(m, large, 8 * MiB), large);
    cr_assert_eq(st(m).region_count, 2);
    hostmem_destroy(m);
}

Test(s4_reserve, top_down)
{
    hostmem_manager *m = mk(NULL);
    char *p = alloc_ok(m, NULL, 3 * GRAN, MEM_RESERVE | MEM_TOP_DOWN, PAGE_READWRITE);
    cr_assert_eq((uintptr_t)p % GRAN, 0);
    cr_assert_lt((uintptr_t)p + 3 * GRAN, USER_END + 1);
    MEMORY_BASIC_INFORMATION mbi = q(m, p);
    MBI_IS(mbi, p, p, PAGE_READWRITE, 3 * GRAN, MEM_RESERVE, 0);
    hostmem_destroy(m);
}

Test(s4_reserve, reserved_pages_are_inaccessible)
{
    hostmem_manager *m = mk(NULL);
    char *p = reserve(m, NULL, 3 * pg());
    for (size_t i = 0; i < 3; i++) {
        cr_assert(faults_read(p + i * pg()), "reserved page %zu readable", i);
        cr_assert(faults_write(p + i * pg() + 7, 1), "reserved page %zu writable", i);
    }
    cr_assert_eq(st(m).committed_bytes, 0);
    hostmem_destroy(m);
}

Test(s4_reserve, large_reservation_16g)
{
    size_t big = 16 * GiB;
    hostmem_manager *m = mk(NULL);
    char *p = reserve(m, NULL, big);
    cr_assert_eq((uintptr_t)p % GRAN, 0);
    hostmem_stats s = st(m);
    cr_assert_eq(s.reserved_bytes, big);
    cr_assert_eq(s.committed_bytes, 0);
    char *mid = p + big / 2 + 12345;
    ((char *)commit(m, mid, 1, PAGE_READWRITE))[0] = 1;
    ((char *)commit(m, p + big - 1, 1, PAGE_READWRITE))[0] = 2;
    cr_assert_eq(st(m).committed_bytes, 2 * pg());
    MEMORY_BASIC_INFORMATION mbi = q(m, p);
    MBI_IS(mbi, p, p, PAGE_READWRITE, (uintptr_t)(mid - p) & ~(uintptr_t)(pg() - 1), MEM_RESERVE, 0);
    mbi = q(m, p + big - 1);
    MBI_IS(mbi, p + big - pg(), p, PAGE_READWRITE, pg(), MEM_COMMIT, PAGE_READWRITE);
    HR_OK(hostmem_virtual_free(m, p, 0, MEM_RELEASE));
    s = st(m);
    cr_assert_eq(s.reserved_bytes, 0);
    cr_assert_eq(s.committed_bytes, 0);
    hostmem_destroy(m);
}

/* ---- S12 ------------------------------------------------------------------------ */
static size_t region_metadata(size_t size, int checkerboard)
{
    hostmem_manager *m = mk(NULL);
    size_t before = st(m).metadata_bytes;
    char *p = reserve(m, NULL, size);
    if (checkerboard) /* a handful of runs spread over the whole region */
        for (size_t i = 1; i < 8; i++)
            commit(m, p + (size / 8) * i, pg(), PAGE_READWRITE);
    size_t after = st(m).metadata_bytes;
    hostmem_destroy(m);
    return after - before;
}

Test(s12_bookkeeping, huge_region_costs_what_a_small_one_costs)
{
    size_t small = region_metadata(GRAN, 0);
    size_t huge = region_metadata(huge_size(), 0);
    /* A page array would need a byte per page (256 MiB for 1 TiB); the map may need a
     * few more tree nodes for a span that crosses more granule levels. */
    cr_assert_leq(huge, small + 32 * KiB, "64 KiB region: %zu bytes of metadata, %zu GiB region: %zu bytes",
                  small, huge_size() >> 30, huge);
}

Test(s12_bookkeeping, runs_not_pages)
{
    size_t small = region_metadata(64 * pg(), 1);
    size_t huge = region_metadata(huge_size(), 1);
    cr_assert_leq(huge, small + 32 * KiB, "%zu vs %zu bytes", small, huge);
}
