/* S7 (release) and S8 (protect). */
#include "util.h"

TestSuite(s7_release, .fini = hm_leak_check);
TestSuite(s8_protect, .fini = hm_leak_check);

/* ---- S7 ------------------------------------------------------------------------- */
Test(s7_release, size_must_be_zero)
{
    hostmem_manager *m = mk(NULL);
    char *r = commit(m, NULL, 2 * pg(), PAGE_READWRITE);
    HR_EQ(hostmem_virtual_free(m, r, pg(), MEM_RELEASE), E_INVALIDARG);
    HR_EQ(hostmem_virtual_free(m, r, 2 * pg(), MEM_RELEASE), E_INVALIDARG);
    MEMORY_BASIC_INFORMATION mbi = q(m, r);
    MBI_IS(mbi, r, r, PAGE_READWRITE, 2 * pg(), MEM_COMMIT, PAGE_READWRITE);
    cr_assert_eq(st(m).region_count, 1);
    hostmem_destroy(m);
}

Test(s7_release, address_must_round_down_to_the_base)
{
    size_t P = pg();
    hostmem_manager *m = mk(NULL);
    char *r = commit(m, NULL, 4 * P, PAGE_READWRITE);
    HR_EQ(hostmem_virtual_free(m, r + P, 0, MEM_RELEASE), HOSTMEM_E_INVALID_ADDRESS);
    HR_EQ(hostmem_virtual_free(m, r + 3 * P + 1, 0, MEM_RELEASE), HOSTMEM_E_INVALID_ADDRESS);
    cr_assert_eq(st(m).region_count, 1);
    cr_assert_eq(q(m, r).State, MEM_COMMIT);
    /* An address inside the base page rounds down to the base. */
    HR_OK(hostmem_virtual_free(m, r + P - 1, 0, MEM_RELEASE));
    cr_assert_eq(st(m).region_count, 0);
    hostmem_destroy(m);
}

Test(s7_release, outside_any_region)
{
    hostmem_manager *m = mk(NULL);
    char *f = foreign_map(pg(), PROT_READ | PROT_WRITE);
    f[0] = 1;
    HR_EQ(hostmem_virtual_free(m, f, 0, MEM_RELEASE), HOST_E_INVALIDOPERATION);
    HR_EQ(hostmem_virtual_free(m, free_va(GRAN), 0, MEM_RELEASE), HOST_E_INVALIDOPERATION);
    cr_assert(!faults_write(f, 1), "host mapping lost");
    munmap(f, pg());
    hostmem_destroy(m);
}

Test(s7_release, twice)
{
    hostmem_manager *m = mk(NULL);
    char *big = reserve(m, NULL, 4 * MiB);
    HR_OK(hostmem_virtual_free(m, big, 0, MEM_RELEASE));
    HR_EQ(hostmem_virtual_free(m, big, 0, MEM_RELEASE), HOST_E_INVALIDOPERATION);
    hostmem_destroy(m);
}

Test(s7_release, whole_region_whatever_its_pages)
{
    size_t P = pg();
    static const size_t sizes[] = {3 * 4096, 2 * MiB + 4096};
    for (size_t k = 0; k < 2; k++) {
        hostmem_manager *m = mk(NULL);
        size_t n = sizes[k] / P;
        char *r = reserve(m, NULL, sizes[k]);
        ((char *)commit(m, r, P, PAGE_READWRITE))[0] = 1;
        commit(m, r + (n - 1) * P, P, PAGE_READONLY | PAGE_GUARD);
        if (n > 3)
            commit(m, r + 2 * P, P, PAGE_NOACCESS);
        HR_OK(hostmem_virtual_free(m, r, 0, MEM_RELEASE));
        hostmem_stats s = st(m);
        cr_assert_eq(s.region_count, 0);
        cr_assert_eq(s.reserved_bytes, 0);
        cr_assert_eq(s.committed_bytes, 0);
        MEMORY_BASIC_INFORMATION mbi = q(m, r);
        cr_assert_eq(mbi.State, MEM_FREE, "released region still reported: state 0x%x", (unsigned)mbi.State);
        cr_assert_null(mbi.AllocationBase);
        cr_assert_eq(mbi.Type, 0);
        cr_assert(faults_read(r), "released page readable");
        hostmem_destroy(m);
    }
}

Test(s7_release, leaves_neighbours_alone)
{
    size_t P = pg();
    hostmem_manager *m = mk(NULL);
    char *hole = free_va(3 * GRAN);
    char *a = alloc_ok(m, hole, GRAN, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE);
    char *b = alloc_ok(m, hole + GRAN, GRAN, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE);
    char *c = alloc_ok(m, hole + 2 * GRAN, P, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE);
    memset(a, 1, GRAN);
    memset(c, 3, P);
    HR_OK(hostmem_virtual_free(m, b, 0, MEM_RELEASE));
    cr_assert(all_bytes(a, GRAN, 1) && all_bytes(c, P, 3));
    MEMORY_BASIC_INFORMATION mbi = q(m, a);
    MBI_IS(mbi, a, a, PAGE_READWRITE, GRAN, MEM_COMMIT, PAGE_READWRITE);
    mbi = q(m, c);
    MBI_IS(mbi, c, c, PAGE_READWRITE, P, MEM_COMMIT, PAGE_READWRITE);
    cr_assert_eq(st(m).committed_bytes, GRAN + P);
    hostmem_destroy(m);
}

/* ---- S8 ------------------------------------------------------------------------- */
Test(s8_protect, old_protect_is_the_first_page)
{
    size_t P = pg();
    hostmem_manager *m = mk(NULL);
    char *r = reserve(m, NULL, 4 * P);
    commit(m, r, P, PAGE_READONLY);
    commit(m, r + P, 2 * P, PAGE_READWRITE | PAGE_NOCACHE);
    DWORD old = 0;
    HR_OK(hostmem_virtual_protect(m, r + 10, 3 * P - 10, PAGE_EXECUTE_READ, &old));
    cr_assert_eq(old, PAGE_READONLY);
    /* S11: the pages committed with PAGE_NOCACHE keep it. */
    MEMORY_BASIC_INFORMATION mbi = q(m, r);
    MBI_IS(mbi, r, r, PAGE_READWRITE, P, MEM_COMMIT, PAGE_EXECUTE_READ);
    mbi = q(m, r + P);
    MBI_IS(mbi, r + P, r, PAGE_READWRITE, 2 * P, MEM_COMMIT, PAGE_EXECUTE_READ | PAGE_NOCACHE);
    HR_OK(hostmem_virtual_protect(m, r + P, P, PAGE_READWRITE, &old));
    cr_assert_eq(old, PAGE_EXECUTE_READ | PAGE_NOCACHE);
    commit(m, r + 2 * P, P, PAGE_READWRITE | PAGE_GUARD);
    HR_OK(hostmem_virtual_protect(m, r + 2 * P, P, PAGE_READONLY, &old));
    cr_assert_eq(old, PAGE_READWRITE | PAGE_GUARD);
    hostmem_destroy(m);
}

Test(s8_protect, takes_effect)
{
    size_t P = pg();
    hostmem_manager *m = mk(NULL);
    char *r = commit(m, NULL, 3 * P, PAGE_READWRITE);
    memset(r, 0x21, 3 * P);
    DWORD old;
    HR_OK(hostmem_virtual_protect(m, r, P, PAGE_READONLY, &old));
    HR_OK(hostmem_virtual_protect(m, r + P, P, PAGE_NOACCESS, &old));
    cr_assert(!faults_read(r) && faults_write(r, 0x21));
    cr_assert(faults_read(r + P));
    cr_assert(!faults_write(r + 2 * P, 0x21));
    HR_OK(hostmem_virtual_protect(m, r, 2 * P, PAGE_READWRITE, &old));
    cr_assert_eq(old, PAGE_READONLY);
    cr_assert(all_bytes(r, 3 * P, 0x21), "protect changed data");
    cr_assert_eq(st(m).committed_bytes, 3 * P, "protect changed the charge");
    hostmem_destroy(m);
}

Test(s8_protect, reserved_page_in_range_changes_nothing)
{
    size_t P = pg();
    hostmem_manager *m = mk(NULL);
    char *r = reserve(m, NULL, 4 * P);
    commit(m, r, 2 * P, PAGE_READWRITE);
    commit(m, r + 3 * P, P, PAGE_READWRITE);
    DWORD old = 0xdead;
    HR_EQ(hostmem_virtual_protect(m, r, 4 * P, PAGE_READONLY, &old), HOSTMEM_E_INVALID_ADDRESS);
    HR_EQ(hostmem_virtual_protect(m, r + 2 * P, P, PAGE_READONLY, &old), HOSTMEM_E_INVALID_ADDRESS);
    MEMORY_BASIC_INFORMATION mbi = q(m, r);
    MBI_IS(mbi, r, r, PAGE_READWRITE, 2 * P, MEM_COMMIT, PAGE_READWRITE);
    mbi = q(m, r + 3 * P);
    MBI_IS(mbi, r + 3 * P, r, PAGE_READWRITE, P, MEM_COMMIT, PAGE_READWRITE);
    cr_assert(!faults_write(r, 0), "first page changed by a failed protect");
    hostmem_destroy(m);
}

Test(s8_protect, outside_any_region_is_invalid_address)
{
    size_t P = pg();
    hostmem_manager *m = mk(NULL);
    char *f = foreign_map(P, PROT_READ | PROT_WRITE);
    DWORD old;
    HR_EQ(hostmem_virtual_protect(m, f, P, PAGE_READONLY, &old), HOSTMEM_E_INVALID_ADDRESS);
    HR_EQ(hostmem_virtual_protect(m, free_va(GRAN), P, PAGE_READONLY, &old), HOSTMEM_E_INVALID_ADDRESS);
    cr_assert(!faults_write(f, 1), "host mapping changed");
    munmap(f, P);
    hostmem_destroy(m);
}

Test(s8_protect, past_region_end)
{
    size_t P = pg();
    hostmem_manager *m = mk(NULL);
    char *hole = free_va(2 * GRAN);
    char *a = alloc_ok(m, hole, GRAN, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE);
    char *b = alloc_ok(m, hole + GRAN, GRAN, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE);
    DWORD old;
    HR_EQ(hostmem_virtual_protect(m, a + GRAN - P, 2 * P, PAGE_READONLY, &old), HOSTMEM_E_INVALID_ADDRESS);
    char *c = commit(m, NULL, P, PAGE_READWRITE);
    HR_EQ(hostmem_virtual_protect(m, c, 2 * P, PAGE_READONLY, &old), HOSTMEM_E_INVALID_ADDRESS);
    cr_assert_eq(q(m, a + GRAN - P).Protect, PAGE_READWRITE);
    cr_assert_eq(q(m, b).Protect, PAGE_READWRITE);
    cr_assert_eq(q(m, c).Protect, PAGE_READWRITE);
    hostmem_destroy(m);
}
