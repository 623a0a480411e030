/* S9: query, inside our regions and outside them. */
#include "util.h"

#include <fcntl.h>

TestSuite(s9_query, .fini = hm_leak_check);

Test(s9_query, bad_length)
{
    hostmem_manager *m = mk(NULL);
    char *r = reserve(m, NULL, pg());
    MEMORY_BASIC_INFORMATION mbi[2];
    SIZE_T w = 1234;
    HR_EQ(hostmem_virtual_query(m, r, mbi, sizeof mbi[0] - 1, &w), HOSTMEM_E_BAD_LENGTH);
    HR_EQ(hostmem_virtual_query(m, r, mbi, 0, &w), HOSTMEM_E_BAD_LENGTH);
    HR_EQ(hostmem_virtual_query(m, r, mbi, 1, &w), HOSTMEM_E_BAD_LENGTH);
    /* A longer buffer is fine: exactly one structure is written. */
    memset(mbi, 0xee, sizeof mbi);
    HR_OK(hostmem_virtual_query(m, r, mbi, sizeof mbi, &w));
    cr_assert_eq(w, sizeof mbi[0]);
    cr_assert(all_bytes(&mbi[1], sizeof mbi[1], 0xee), "query wrote past one structure");
    hostmem_destroy(m);
}

Test(s9_query, above_user_space)
{
    hostmem_manager *m = mk(NULL);
    MEMORY_BASIC_INFORMATION mbi;
    SIZE_T w;
    HR_EQ(hostmem_virtual_query(m, (void *)USER_END, &mbi, sizeof mbi, &w), E_INVALIDARG);
    HR_EQ(hostmem_virtual_query(m, (void *)(USER_END + 12345), &mbi, sizeof mbi, &w), E_INVALIDARG);
    HR_EQ(hostmem_virtual_query(m, (void *)UINTPTR_MAX, &mbi, sizeof mbi, &w), E_INVALIDARG);
    /* The last user page is not above user space. */
    HR_OK(hostmem_virtual_query(m, (void *)(USER_END - 1), &mbi, sizeof mbi, &w));
    hostmem_destroy(m);
}

/* S4: what query calls free can be reserved, up to the top of user space,
 * whose last page the kernel never maps (x86-64): the free space below ends
 * before it; queried itself, it is a free page of its own (S9: unmapped). */
Test(s9_query, free_at_the_top_of_user_space_can_be_reserved)
{
    size_t P = pg();
    hostmem_manager *m = mk(NULL);
    MEMORY_BASIC_INFORMATION mbi = q(m, (void *)(USER_END - GRAN));
    if (mbi.State != MEM_FREE)
        cr_skip_test("something is mapped at the top of user space");
    cr_assert_eq((uintptr_t)mbi.BaseAddress, USER_END - GRAN);
    void *p = NULL;
    HR_OK(hostmem_virtual_alloc(m, mbi.BaseAddress, mbi.RegionSize, MEM_RESERVE, PAGE_NOACCESS, eTaskCritical, &p));
    cr_assert_eq(p, mbi.BaseAddress);
    HR_OK(hostmem_virtual_free(m, p, 0, MEM_RELEASE));
#if defined(__x86_64__)
    cr_assert_eq(mbi.RegionSize, GRAN - P, "the top page is the kernel's");
    mbi = q(m, (void *)(USER_END - 1));
    cr_assert_eq(mbi.State, MEM_FREE);
    cr_assert_eq((uintptr_t)mbi.BaseAddress, USER_END - P);
    cr_assert_eq(mbi.RegionSize, P);
#endif
    hostmem_destroy(m);
}

/* Region of 16 pages:  0-1 reserved, 2-4 RW, 5 RO, 6-7 RW, 8-9 reserved, 10-12 RW|GUARD, 13-15 RW. */
Test(s9_query, runs_after_mixed_commits_and_protects)
{
    size_t P = pg();
    hostmem_manager *m = mk(NULL);
    char *r = alloc_ok(m, NULL, 16 * P, MEM_RESERVE, PAGE_EXECUTE_READ);
    commit(m, r + 2 * P, 6 * P, PAGE_READWRITE);
    DWORD old;
    HR_OK(hostmem_virtual_protect(m, r + 5 * P, P, PAGE_READONLY, &old));
    commit(m, r + 10 * P, 6 * P, PAGE_READWRITE | PAGE_GUARD);
    HR_OK(hostmem_virtual_protect(m, r + 13 * P, 3 * P, PAGE_READWRITE, &old));
    cr_assert_eq(old, PAGE_READWRITE | PAGE_GUARD);

    static const struct {
        size_t first, count;
        DWORD state, prot;
    } runs[] = {
        {0, 2, MEM_RESERVE, 0},
        {2, 3, MEM_COMMIT, PAGE_READWRITE},
        {5, 1, MEM_COMMIT, PAGE_READONLY},
        {6, 2, MEM_COMMIT, PAGE_READWRITE},
        {8, 2, MEM_RESERVE, 0},
        {10, 3, MEM_COMMIT, PAGE_READWRITE | PAGE_GUARD},
        {13, 3, MEM_COMMIT, PAGE_READWRITE},
    };
    for (size_t i = 0; i < sizeof runs / sizeof runs[0]; i++)
        for (size_t pgi = runs[i].first; pgi < runs[i].first + runs[i].count; pgi++) {
            size_t left = runs[i].first + runs[i].count - pgi;
            MEMORY_BASIC_INFORMATION mbi = q(m, r + pgi * P + (pgi % 3) * 100);
            MBI_IS(mbi, r + pgi * P, r, PAGE_EXECUTE_READ, left * P, runs[i].state, runs[i].prot);
        }
    /* Merged again after protecting back. */
    HR_OK(hostmem_virtual_protect(m, r + 5 * P, P, PAGE_READWRITE, &old));
    MEMORY_BASIC_INFORMATION mbi = q(m, r + 2 * P);
    MBI_IS(mbi, r + 2 * P, r, PAGE_EXECUTE_READ, 6 * P, MEM_COMMIT, PAGE_READWRITE);
    hostmem_destroy(m);
}

Test(s9_query, never_past_the_region)
{
    size_t P = pg();
    hostmem_manager *m = mk(NULL);
    char *hole = free_va(4 * GRAN);
    char *a = reserve(m, hole, 3 * P);
    char *b = reserve(m, hole + GRAN, 3 * P);
    commit(m, a + 2 * P, P, PAGE_READWRITE);
    commit(m, b, P, PAGE_READWRITE);
    MEMORY_BASIC_INFORMATION mbi = q(m, a + 2 * P);
    MBI_IS(mbi, a + 2 * P, a, PAGE_READWRITE, P, MEM_COMMIT, PAGE_READWRITE);
    mbi = q(m, a);
    MBI_IS(mbi, a, a, PAGE_READWRITE, 2 * P, MEM_RESERVE, 0);
    commit(m, a, 2 * P, PAGE_READWRITE);
    mbi = q(m, a);
    MBI_IS(mbi, a, a, PAGE_READWRITE, 3 * P, MEM_COMMIT, PAGE_READWRITE);
    /* Adjacent regions with the same state stay apart. */
    char *c = alloc_ok(m, hole + 2 * GRAN, GRAN, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE);
    char *d = alloc_ok(m, hole + 3 * GRAN, GRAN, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE);
    (void)d;
    mbi = q(m, c);
    MBI_IS(mbi, c, c, PAGE_READWRITE, GRAN, MEM_COMMIT, PAGE_READWRITE);
    hostmem_destroy(m);
}

Test(s9_query, foreign_anonymous_is_private)
{
    size_t P = pg();
    hostmem_manager *m = mk(NULL);
    char *f = foreign_map(3 * P, PROT_READ | PROT_WRITE);
    MEMORY_BASIC_INFORMATION mbi = q(m, f + P + 5);
    cr_assert_eq(mbi.BaseAddress, f + P);
    cr_assert_eq(mbi.AllocationBase, f);
    cr_assert_eq(mbi.RegionSize, 2 * P);
    cr_assert_eq(mbi.State, MEM_COMMIT);
    cr_assert_eq(mbi.Type, MEM_PRIVATE);
    cr_assert_eq(mbi.Protect, PAGE_READWRITE);
    /* Protections as the OS sees them. */
    cr_assert_eq(mprotect(f, P, PROT_READ), 0);
    cr_assert_eq(q(m, f).Protect, PAGE_READONLY);
    cr_assert_eq(q(m, f).RegionSize, P);
    cr_assert_eq(mprotect(f, P, PROT_NONE), 0);
    cr_assert_eq(q(m, f).Protect, PAGE_NOACCESS);
    cr_assert_eq(q(m, f).State, MEM_COMMIT);
    munmap(f, 3 * P);
    hostmem_destroy(m);
}

Test(s9_query, foreign_shared_anonymous_is_private)
{
    size_t P = pg();
    hostmem_manager *m = mk(NULL);
    char *f = mmap(NULL, 2 * P, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(f, MAP_FAILED);
    MEMORY_BASIC_INFORMATION mbi = q(m, f + P);
    cr_assert_eq(mbi.AllocationBase, f);
    cr_assert_eq(mbi.State, MEM_COMMIT);
    cr_assert_eq(mbi.Type, MEM_PRIVATE, "anonymous, though the kernel backs it with a file");
    cr_assert_eq(mbi.Protect, PAGE_READWRITE);
    munmap(f, 2 * P);
    hostmem_destroy(m);
}

Test(s9_query, foreign_file_is_mapped)
{
    size_t P = pg();
    char path[] = "/tmp/hostmem-query-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    unlink(path);
    cr_assert_eq(ftruncate(fd, 4 * (off_t)P), 0);
    char *hole = free_va(GRAN);
    char *f = mmap(hole, 4 * P, PROT_READ, MAP_SHARED | MAP_FIXED_NOREPLACE, fd, 0);
    cr_assert_eq(f, hole);
    close(fd);
    hostmem_manager *m = mk(NULL);
    MEMORY_BASIC_INFORMATION mbi = q(m, f + 2 * P);
    cr_assert_eq(mbi.BaseAddress, f + 2 * P);
    cr_assert_eq(mbi.AllocationBase, f);
    cr_assert_eq(mbi.RegionSize, 2 * P);
    cr_assert_eq(mbi.State, MEM_COMMIT);
    cr_assert_eq(mbi.Type, MEM_MAPPED, "Type 0x%x", (unsigned)mbi.Type);
    cr_assert_eq(mbi.Protect, PAGE_READONLY);
    munmap(f, 4 * P);
    hostmem_destroy(m);
}

Test(s9_query, library_code_is_image)
{
    hostmem_manager *m = mk(NULL);
    const void *code = (const void *)(uintptr_t)&hostmem_virtual_query;
    MEMORY_BASIC_INFORMATION mbi = q(m, code);
    cr_assert_eq(mbi.State, MEM_COMMIT);
    cr_assert_eq(mbi.Type, MEM_IMAGE, "Type 0x%x", (unsigned)mbi.Type);
    cr_assert(mbi.Protect == PAGE_EXECUTE_READ || mbi.Protect == PAGE_EXECUTE, "Protect 0x%x",
              (unsigned)mbi.Protect);
    cr_assert_eq(mbi.BaseAddress, (void *)((uintptr_t)code & ~(uintptr_t)(pg() - 1)));
    cr_assert_leq((uintptr_t)mbi.AllocationBase, (uintptr_t)mbi.BaseAddress);
    cr_assert_gt((uintptr_t)mbi.BaseAddress + mbi.RegionSize, (uintptr_t)code);
    /* The library's read-only data is part of the same image. */
    const char *name = hostmem_hresult_name(S_OK);
    mbi = q(m, name);
    cr_assert_eq(mbi.Type, MEM_IMAGE, "rodata Type 0x%x", (unsigned)mbi.Type);
    /* And so is this executable's code. */
    mbi = q(m, (const void *)(uintptr_t)&pg);
    cr_assert_eq(mbi.Type, MEM_IMAGE);
    hostmem_destroy(m);
}

Test(s9_query, unmapped_is_free)
{
    size_t P = pg();
    hostmem_manager *m = mk(NULL);
    char *hole = free_va(GRAN);
    char *a = mmap(hole, 4 * P, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    cr_assert_eq(a, hole);
    cr_assert_eq(munmap(a + P, 2 * P), 0);
    MEMORY_BASIC_INFORMATION mbi = q(m, a + P + 123);
    cr_assert_eq(mbi.BaseAddress, a + P);
    cr_assert_null(mbi.AllocationBase);
    cr_assert_eq(mbi.AllocationProtect, 0);
    cr_assert_eq(mbi.RegionSize, 2 * P, "RegionSize 0x%zx: not to the next mapping", (size_t)mbi.RegionSize);
    cr_assert_eq(mbi.State, MEM_FREE);
    cr_assert_eq(mbi.Protect, PAGE_NOACCESS);
    cr_assert_eq(mbi.Type, 0);
    mbi = q(m, a + 2 * P);
    cr_assert_eq(mbi.BaseAddress, a + 2 * P);
    cr_assert_eq(mbi.RegionSize, P);
    munmap(a, P);
    munmap(a + 3 * P, P);
    hostmem_destroy(m);
}

Test(s9_query, page_zero_is_free)
{
    hostmem_manager *m = mk(NULL);
    MEMORY_BASIC_INFORMATION mbi = q(m, NULL);
    cr_assert_null(mbi.BaseAddress);
    cr_assert_eq(mbi.State, MEM_FREE);
    cr_assert_null(mbi.AllocationBase);
    cr_assert_gt(mbi.RegionSize, 0);
    cr_assert_eq(mbi.RegionSize % pg(), 0);
    hostmem_destroy(m);
}

Test(s9_query, region_of_own_manager_reports_reserve_protection)
{
    size_t P = pg();
    hostmem_manager *m = mk(NULL);
    char *r = alloc_ok(m, NULL, 2 * MiB, MEM_RESERVE, PAGE_NOACCESS);
    commit(m, r + MiB, P, PAGE_EXECUTE_READWRITE);
    MEMORY_BASIC_INFORMATION mbi = q(m, r + MiB);
    MBI_IS(mbi, r + MiB, r, PAGE_NOACCESS, P, MEM_COMMIT, PAGE_EXECUTE_READWRITE);
    mbi = q(m, r + MiB + P);
    MBI_IS(mbi, r + MiB + P, r, PAGE_NOACCESS, MiB - P, MEM_RESERVE, 0);
    hostmem_destroy(m);
}
