/* S5 (commit) and S6 (decommit). */
#include "util.h"

TestSuite(s5_commit, .fini = hm_leak_check);
TestSuite(s6_decommit, .fini = hm_leak_check);

/* ---- S5 ------------------------------------------------------------------------- */
Test(s5_commit, returns_page_rounded_address)
{
    size_t P = pg();
    hostmem_manager *m = mk(NULL);
    char *r = reserve(m, NULL, 8 * P);
    char *c = commit(m, r + 3 * P + 0x123, 0x10, PAGE_READWRITE);
    cr_assert_eq(c, r + 3 * P);
    MEMORY_BASIC_INFORMATION mbi = q(m, r + 3 * P);
    MBI_IS(mbi, r + 3 * P, r, PAGE_READWRITE, P, MEM_COMMIT, PAGE_READWRITE);
    cr_assert_eq(st(m).committed_bytes, P);
    hostmem_destroy(m);
}

Test(s5_commit, every_page_touching_the_range)
{
    size_t P = pg();
    hostmem_manager *m = mk(NULL);
    char *r = reserve(m, NULL, 8 * P);
    char *c = commit(m, r + P - 1, 2, PAGE_READWRITE); /* touches pages 0 and 1 */
    cr_assert_eq(c, r);
    MEMORY_BASIC_INFORMATION mbi = q(m, r);
    MBI_IS(mbi, r, r, PAGE_READWRITE, 2 * P, MEM_COMMIT, PAGE_READWRITE);
    mbi = q(m, r + 2 * P);
    MBI_IS(mbi, r + 2 * P, r, PAGE_READWRITE, 6 * P, MEM_RESERVE, 0);
    cr_assert_eq(st(m).committed_bytes, 2 * P);
    hostmem_destroy(m);
}

Test(s5_commit, new_pages_read_zero)
{
    size_t P = pg();
    hostmem_manager *m = mk(NULL);
    char *r = reserve(m, NULL, 64 * P);
    commit(m, r, 64 * P, PAGE_READWRITE);
    cr_assert(all_bytes(r, 64 * P, 0));
    char *c = commit(m, NULL, 5 * P, PAGE_READONLY);
    cr_assert(all_bytes(c, 5 * P, 0));
    hostmem_destroy(m);
}

Test(s5_commit, recommit_keeps_data_and_takes_new_protection)
{
    size_t P = pg();
    hostmem_manager *m = mk(NULL);
    char *r = reserve(m, NULL, 4 * P);
    commit(m, r, 2 * P, PAGE_READWRITE);
    memset(r, 0x77, 2 * P);
    /* Recommit page 1 and the reserved page 2, read-only. */
    commit(m, r + P, 2 * P, PAGE_READONLY);
    cr_assert(all_bytes(r, 2 * P, 0x77), "recommit lost data");
    cr_assert(all_bytes(r + 2 * P, P, 0));
    MEMORY_BASIC_INFORMATION mbi = q(m, r);
    MBI_IS(mbi, r, r, PAGE_READWRITE, P, MEM_COMMIT, PAGE_READWRITE);
    mbi = q(m, r + P);
    MBI_IS(mbi, r + P, r, PAGE_READWRITE, 2 * P, MEM_COMMIT, PAGE_READONLY);
    cr_assert(faults_write(r + P, 1), "new protection not applied");
    cr_assert(!faults_write(r, 0x77));
    cr_assert_eq(st(m).committed_bytes, 3 * P, "recommit charged twice");
    hostmem_destroy(m);
}

Test(s5_commit, noaccess_commit_is_charged_and_faults)
{
    size_t P = pg();
    hostmem_manager *m = mk(NULL);
    char *r = commit(m, NULL, 2 * P, PAGE_NOACCESS);
    MEMORY_BASIC_INFORMATION mbi = q(m, r);
    MBI_IS(mbi, r, r, PAGE_NOACCESS, 2 * P, MEM_COMMIT, PAGE_NOACCESS);
    cr_assert_eq(st(m).committed_bytes, 2 * P);
    cr_assert(faults_read(r));
    DWORD old;
    HR_OK(hostmem_virtual_protect(m, r, P, PAGE_READWRITE, &old));
    cr_assert_eq(old, PAGE_NOACCESS);
    cr_assert(all_bytes(r, P, 0));
    hostmem_destroy(m);
}

Test(s5_commit, commit_at_null_reserves_and_commits)
{
    size_t P = pg();
    hostmem_manager *m = mk(NULL);
    char *p = commit(m, NULL, 3 * P + 1, PAGE_READWRITE);
    cr_assert_eq((uintptr_t)p % GRAN, 0);
    MEMORY_BASIC_INFORMATION mbi = q(m, p);
    MBI_IS(mbi, p, p, PAGE_READWRITE, 4 * P, MEM_COMMIT, PAGE_READWRITE);
    p[4 * P - 1] = 1;
    hostmem_stats s = st(m);
    cr_assert_eq(s.region_count, 1);
    cr_assert_eq(s.reserved_bytes, 4 * P);
    cr_assert_eq(s.committed_bytes, 4 * P);
    hostmem_destroy(m);
}

Test(s5_commit, outside_any_region)
{
    size_t P = pg();
    hostmem_manager *m = mk(NULL);
    char *hole = free_va(GRAN);
    char *f = foreign_map(P, PROT_READ | PROT_WRITE);
    f[0] = 9;
    cr_assert_eq(alloc_fail(m, hole, P, MEM_COMMIT, PAGE_READWRITE, eTaskCritical), HOSTMEM_E_INVALID_ADDRESS);
    cr_assert_eq(alloc_fail(m, f, P, MEM_COMMIT, PAGE_READWRITE, eTaskCritical), HOSTMEM_E_INVALID_ADDRESS);
    cr_assert_eq(f[0], 9);
    cr_assert_eq(st(m).region_count, 0);
    cr_assert_eq(st(m).committed_bytes, 0);
    munmap(f, P);
    hostmem_destroy(m);
}

Test(s5_commit, past_region_end_changes_nothing)
{
    size_t P = pg();
    hostmem_manager *m = mk(NULL);
    char *r = reserve(m, NULL, 4 * P);
    /* Crosses the end of the region into the unusable rest of its granule. */
    cr_assert_eq(alloc_fail(m, r + 3 * P, 2 * P, MEM_COMMIT, PAGE_READWRITE, eTaskCritical),
                 HOSTMEM_E_INVALID_ADDRESS);
    /* Wholly inside the unusable rest. */
    cr_assert_eq(alloc_fail(m, r + 4 * P, P, MEM_COMMIT, PAGE_READWRITE, eTaskCritical), HOSTMEM_E_INVALID_ADDRESS);
    MEMORY_BASIC_INFORMATION mbi = q(m, r);
    MBI_IS(mbi, r, r, PAGE_READWRITE, 4 * P, MEM_RESERVE, 0);
    cr_assert_eq(st(m).committed_bytes, 0);
    cr_assert(faults_read(r + 3 * P));
    hostmem_destroy(m);
}

Test(s5_commit, across_two_adjacent_regions_changes_nothing)
{
    size_t P = pg();
    hostmem_manager *m = mk(NULL);
    char *hole = free_va(2 * GRAN);
    char *a = reserve(m, hole, GRAN);
    char *b = reserve(m, hole + GRAN, GRAN);
    cr_assert_eq(alloc_fail(m, a + GRAN - P, 2 * P, MEM_COMMIT, PAGE_READWRITE, eTaskCritical),
                 HOSTMEM_E_INVALID_ADDRESS);
    MEMORY_BASIC_INFORMATION mbi = q(m, a);
    MBI_IS(mbi, a, a, PAGE_READWRITE, GRAN, MEM_RESERVE, 0);
    mbi = q(m, b);
    MBI_IS(mbi, b, b, PAGE_READWRITE, GRAN, MEM_RESERVE, 0);
    cr_assert_eq(st(m).committed_bytes, 0);
    hostmem_destroy(m);
}

Test(s5_commit, in_released_region)
{
    hostmem_manager *m = mk(NULL);
    char *r = reserve(m, NULL, 4 * MiB);
    HR_OK(hostmem_virtual_free(m, r, 0, MEM_RELEASE));
    cr_assert_eq(alloc_fail(m, r, pg(), MEM_COMMIT, PAGE_READWRITE, eTaskCritical), HOSTMEM_E_INVALID_ADDRESS);
    char *s = reserve(m, NULL, pg());
    HR_OK(hostmem_virtual_free(m, s, 0, MEM_RELEASE));
    cr_assert_eq(alloc_fail(m, s, pg(), MEM_COMMIT, PAGE_READWRITE, eTaskCritical), HOSTMEM_E_INVALID_ADDRESS);
    hostmem_destroy(m);
}

Test(s5_commit, reserve_and_commit_inside_a_region_is_an_overlap)
{
    hostmem_manager *m = mk(NULL);
    char *r = reserve(m, NULL, 4 * pg());
    cr_assert_eq(alloc_fail(m, r, pg(), MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE, eTaskCritical),
                 HOSTMEM_E_INVALID_ADDRESS);
    cr_assert_eq(q(m, r).State, MEM_RESERVE);
    cr_assert_eq(st(m).region_count, 1);
    hostmem_destroy(m);
}

/* ---- S6 ------------------------------------------------------------------------- */
/* Bytes of [p, p + n) resident in memory (mincore works on inaccessible pages). */
static size_t resident_pages(void *p, size_t n)
{
    size_t P = pg(), count = 0;
    unsigned char vec[256];
    cr_assert_leq(n / P, sizeof vec);
    cr_assert_eq(mincore(p, n, vec), 0, "mincore: %s", strerror(errno));
    for (size_t i = 0; i < n / P; i++)
        count += vec[i] & 1;
    return count;
}

/* Whether the kernel still charges the mapping holding addr to the commit limit
 * (the VM_ACCOUNT flag "ac" in /proc/self/smaps). */
static int kernel_charges(void *addr)
{
    FILE *f = fopen("/proc/self/smaps", "r");
    cr_assert_not_null(f);
    char line[1024];
    int in = 0, charged = -1;
    while (fgets(line, sizeof line, f)) {
        uintptr_t lo, hi;
        if (sscanf(line, "%" SCNxPTR "-%" SCNxPTR " ", &lo, &hi) == 2) {
            in = (uintptr_t)addr >= lo && (uintptr_t)addr < hi;
            continue;
        }
        if (in && strncmp(line, "VmFlags:", 8) == 0) {
            charged = 0;
            for (char *t = strtok(line + 8, " \n"); t; t = strtok(NULL, " \n"))
                if (strcmp(t, "ac") == 0)
                    charged = 1;
            break;
        }
    }
    fclose(f);
    cr_assert_neq(charged, -1, "no mapping at %p", addr);
    return charged;
}

Test(s6_decommit, pages_become_reserved_and_fault)
{
    size_t P = pg();
    hostmem_manager *m = mk(NULL);
    char *r = commit(m, NULL, 8 * P, PAGE_READWRITE);
    memset(r, 0x33, 8 * P);
    HR_OK(hostmem_virtual_free(m, r + 2 * P + 5, P, MEM_DECOMMIT)); /* pages 2 and 3 */
    MEMORY_BASIC_INFORMATION mbi = q(m, r);
    MBI_IS(mbi, r, r, PAGE_READWRITE, 2 * P, MEM_COMMIT, PAGE_READWRITE);
    mbi = q(m, r + 2 * P);
    MBI_IS(mbi, r + 2 * P, r, PAGE_READWRITE, 2 * P, MEM_RESERVE, 0);
    mbi = q(m, r + 4 * P);
    MBI_IS(mbi, r + 4 * P, r, PAGE_READWRITE, 4 * P, MEM_COMMIT, PAGE_READWRITE);
    cr_assert_eq(st(m).committed_bytes, 6 * P);
    cr_assert(faults_read(r + 2 * P));
    cr_assert(faults_write(r + 3 * P + 17, 1));
    cr_assert(all_bytes(r, 2 * P, 0x33) && all_bytes(r + 4 * P, 4 * P, 0x33), "neighbours lost data");
    hostmem_destroy(m);
}

Test(s6_decommit, recommitted_pages_read_zero)
{
    size_t P = pg();
    hostmem_manager *m = mk(NULL);
    char *r = commit(m, NULL, 4 * P, PAGE_READWRITE);
    memset(r, 0x44, 4 * P);
    HR_OK(hostmem_virtual_free(m, r + P, 2 * P, MEM_DECOMMIT));
    commit(m, r, 4 * P, PAGE_READWRITE);
    cr_assert(all_bytes(r, P, 0x44));
    cr_assert(all_bytes(r + P, 2 * P, 0), "decommitted data survived");
    cr_assert(all_bytes(r + 3 * P, P, 0x44));
    hostmem_destroy(m);
}

Test(s6_decommit, memory_returns_to_the_os)
{
    size_t P = pg();
    hostmem_manager *m = mk(NULL);
    char *r = reserve(m, NULL, 64 * P);
    commit(m, r, 64 * P, PAGE_READWRITE);
    memset(r, 0x11, 64 * P);
    cr_assert_eq(resident_pages(r, 64 * P), 64);
    cr_assert(kernel_charges(r + 16 * P));
    HR_OK(hostmem_virtual_free(m, r + 16 * P, 32 * P, MEM_DECOMMIT));
    cr_assert_eq(resident_pages(r + 16 * P, 32 * P), 0, "decommitted pages still resident");
    cr_assert(!kernel_charges(r + 16 * P), "decommitted pages still charged by the kernel");
    cr_assert_eq(st(m).committed_bytes, 32 * P);
    hostmem_destroy(m);
}

Test(s6_decommit, size0_at_base_page_decommits_whole_region)
{
    size_t P = pg();
    hostmem_manager *m = mk(NULL);
    char *r = reserve(m, NULL, 6 * P);
    commit(m, r + P, 2 * P, PAGE_READWRITE);
    commit(m, r + 4 * P, P, PAGE_READONLY);
    HR_OK(hostmem_virtual_free(m, r + 0x10, 0, MEM_DECOMMIT));
    MEMORY_BASIC_INFORMATION mbi = q(m, r);
    MBI_IS(mbi, r, r, PAGE_READWRITE, 6 * P, MEM_RESERVE, 0);
    cr_assert_eq(st(m).committed_bytes, 0);
    cr_assert_eq(st(m).region_count, 1, "decommit released the region");
    commit(m, r, P, PAGE_READWRITE);
    HR_OK(hostmem_virtual_free(m, r, 0, MEM_DECOMMIT));
    cr_assert_eq(q(m, r).State, MEM_RESERVE);
    hostmem_destroy(m);
}

Test(s6_decommit, size0_away_from_base_page)
{
    size_t P = pg();
    hostmem_manager *m = mk(NULL);
    char *r = commit(m, NULL, 4 * P, PAGE_READWRITE);
    HR_EQ(hostmem_virtual_free(m, r + P, 0, MEM_DECOMMIT), HOSTMEM_E_INVALID_ADDRESS);
    HR_EQ(hostmem_virtual_free(m, r + 3 * P + 100, 0, MEM_DECOMMIT), HOSTMEM_E_INVALID_ADDRESS);
    MEMORY_BASIC_INFORMATION mbi = q(m, r);
    MBI_IS(mbi, r, r, PAGE_READWRITE, 4 * P, MEM_COMMIT, PAGE_READWRITE);
    cr_assert_eq(st(m).committed_bytes, 4 * P);
    hostmem_destroy(m);
}

Test(s6_decommit, past_region_end)
{
    size_t P = pg();
    hostmem_manager *m = mk(NULL);
    char *r = commit(m, NULL, 4 * P, PAGE_READWRITE);
    HR_EQ(hostmem_virtual_free(m, r + 3 * P, 2 * P, MEM_DECOMMIT), E_INVALIDARG);
    HR_EQ(hostmem_virtual_free(m, r, 4 * P + 1, MEM_DECOMMIT), E_INVALIDARG);
    MEMORY_BASIC_INFORMATION mbi = q(m, r);
    MBI_IS(mbi, r, r, PAGE_READWRITE, 4 * P, MEM_COMMIT, PAGE_READWRITE);
    cr_assert_eq(st(m).committed_bytes, 4 * P);
    /* Exactly to the end is fine. */
    HR_OK(hostmem_virtual_free(m, r + 3 * P, P, MEM_DECOMMIT));
    cr_assert_eq(st(m).committed_bytes, 3 * P);
    hostmem_destroy(m);
}

Test(s6_decommit, reserved_pages_succeed)
{
    size_t P = pg();
    hostmem_manager *m = mk(NULL);
    char *r = reserve(m, NULL, 4 * P);
    HR_OK(hostmem_virtual_free(m, r, 4 * P, MEM_DECOMMIT));
    commit(m, r + P, P, PAGE_READWRITE);
    HR_OK(hostmem_virtual_free(m, r, 3 * P, MEM_DECOMMIT)); /* reserved, committed, reserved */
    MEMORY_BASIC_INFORMATION mbi = q(m, r);
    MBI_IS(mbi, r, r, PAGE_READWRITE, 4 * P, MEM_RESERVE, 0);
    cr_assert_eq(st(m).committed_bytes, 0);
    hostmem_destroy(m);
}

Test(s6_decommit, outside_any_region)
{
    size_t P = pg();
    hostmem_manager *m = mk(NULL);
    char *f = foreign_map(P, PROT_READ | PROT_WRITE);
    f[0] = 3;
    char *hole = free_va(GRAN);
    HR_EQ(hostmem_virtual_free(m, f, P, MEM_DECOMMIT), HOST_E_INVALIDOPERATION);
    HR_EQ(hostmem_virtual_free(m, f, 0, MEM_DECOMMIT), HOST_E_INVALIDOPERATION);
    HR_EQ(hostmem_virtual_free(m, hole, P, MEM_DECOMMIT), HOST_E_INVALIDOPERATION);
    cr_assert_eq(f[0], 3);
    cr_assert(!faults_write(f, 3));
    munmap(f, P);
    hostmem_destroy(m);
}

Test(s6_decommit, range_crossing_into_next_region)
{
    size_t P = pg();
    hostmem_manager *m = mk(NULL);
    char *hole = free_va(2 * GRAN);
    char *a = commit(m, NULL, P, PAGE_READWRITE);
    (void)a;
    char *b = reserve(m, hole, GRAN);
    char *c = reserve(m, hole + GRAN, GRAN);
    commit(m, b, GRAN, PAGE_READWRITE);
    commit(m, c, GRAN, PAGE_READWRITE);
    HR_EQ(hostmem_virtual_free(m, b + GRAN - P, 2 * P, MEM_DECOMMIT), E_INVALIDARG);
    cr_assert_eq(q(m, b).RegionSize, GRAN);
    cr_assert_eq(q(m, c).State, MEM_COMMIT);
    cr_assert_eq(st(m).committed_bytes, 2 * GRAN + P);
    hostmem_destroy(m);
}
