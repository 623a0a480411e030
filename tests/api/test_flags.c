/* S1 (allocation types), S2 (protections, deny_write_execute), S7 (free types). */
#include "util.h"

TestSuite(s1_alloc_type, .fini = hm_leak_check);
TestSuite(s2_protect, .fini = hm_leak_check);

static const DWORD valid_at_null[] = {
    MEM_RESERVE,
    MEM_RESERVE | MEM_TOP_DOWN,
    MEM_COMMIT,
    MEM_COMMIT | MEM_TOP_DOWN,
    MEM_RESERVE | MEM_COMMIT,
    MEM_RESERVE | MEM_COMMIT | MEM_TOP_DOWN,
};

static const DWORD invalid_types[] = {
    0,
    MEM_DECOMMIT,
    MEM_RELEASE,
    MEM_FREE,
    MEM_PRIVATE,
    MEM_MAPPED,
    MEM_TOP_DOWN,
    MEM_LARGE_PAGES,
    MEM_WRITE_WATCH,
    MEM_WRITE_WATCH | MEM_TOP_DOWN,
    MEM_RESET | MEM_COMMIT,
    MEM_RESET | MEM_RESERVE,
    MEM_RESET | MEM_TOP_DOWN,
    MEM_RESET | MEM_RESET_UNDO,
    MEM_RESET_UNDO | MEM_COMMIT,
    MEM_RESET_UNDO | MEM_RESERVE,
    MEM_RESET_UNDO | MEM_TOP_DOWN,
    MEM_RESERVE | MEM_DECOMMIT,
    MEM_COMMIT | MEM_RELEASE,
    MEM_RESERVE | 0x1,
    MEM_COMMIT | 0x400000,   /* MEM_PHYSICAL */
    MEM_RESERVE | 0x80000000u,
    MEM_RESERVE | MEM_LARGE_PAGES,
    MEM_COMMIT | MEM_LARGE_PAGES,
    MEM_RESET | MEM_LARGE_PAGES,
};

Test(s1_alloc_type, valid_types_at_null)
{
    hostmem_manager *m = mk(NULL);
    for (size_t i = 0; i < sizeof valid_at_null / sizeof valid_at_null[0]; i++) {
        DWORD t = valid_at_null[i];
        void *p = (void *)0x1;
        HR_OK(hostmem_virtual_alloc(m, NULL, GRAN, t, PAGE_READWRITE, eTaskCritical, &p));
        cr_assert_eq((uintptr_t)p % GRAN, 0, "type 0x%x: base %p not 64 KiB-aligned", (unsigned)t, p);
        MEMORY_BASIC_INFORMATION mbi = q(m, p);
        DWORD state = (t & MEM_COMMIT) ? MEM_COMMIT : MEM_RESERVE;
        MBI_IS(mbi, p, p, PAGE_READWRITE, GRAN, state, state == MEM_COMMIT ? PAGE_READWRITE : 0);
        HR_OK(hostmem_virtual_free(m, p, 0, MEM_RELEASE));
    }
    hostmem_destroy(m);
}

Test(s1_alloc_type, invalid_types)
{
    hostmem_manager *m = mk(NULL);
    char *r = reserve(m, NULL, GRAN);
    for (size_t i = 0; i < sizeof invalid_types / sizeof invalid_types[0]; i++) {
        DWORD t = invalid_types[i];
        HRESULT a = alloc_fail(m, NULL, GRAN, t, PAGE_READWRITE, eTaskCritical);
        cr_assert_eq(a, E_INVALIDARG, "type 0x%x at NULL: %s", (unsigned)t, hostmem_hresult_name(a));
        HRESULT b = alloc_fail(m, r, pg(), t, PAGE_READWRITE, eTaskCritical);
        cr_assert_eq(b, E_INVALIDARG, "type 0x%x in a region: %s", (unsigned)t, hostmem_hresult_name(b));
    }
    hostmem_stats s = st(m);
    cr_assert_eq(s.region_count, 1);
    cr_assert_eq(s.committed_bytes, 0);
    hostmem_destroy(m);
}

/* W1: MEM_WRITE_WATCH needs MEM_RESERVE (what it makes: tests/api/test_write_watch.c). */
Test(s1_alloc_type, write_watch_without_reserve)
{
    hostmem_manager *m = mk(NULL);
    void *r = alloc_ok(m, NULL, GRAN, MEM_RESERVE, PAGE_READWRITE);
    cr_assert_eq(alloc_fail(m, NULL, GRAN, MEM_COMMIT | MEM_WRITE_WATCH, PAGE_READWRITE, eTaskCritical),
                 E_INVALIDARG);
    cr_assert_eq(alloc_fail(m, r, GRAN, MEM_COMMIT | MEM_WRITE_WATCH, PAGE_READWRITE, eTaskCritical),
                 E_INVALIDARG);
    cr_assert_eq(st(m).region_count, 1);
    cr_assert_eq(st(m).committed_bytes, 0);
    hostmem_destroy(m);
}

Test(s1_alloc_type, reset_types_need_a_region)
{
    hostmem_manager *m = mk(NULL);
    void *hole = free_va(GRAN);
    cr_assert_eq(alloc_fail(m, hole, pg(), MEM_RESET, PAGE_READWRITE, eTaskCritical), HOSTMEM_E_INVALID_ADDRESS);
    cr_assert_eq(alloc_fail(m, hole, pg(), MEM_RESET_UNDO, PAGE_READWRITE, eTaskCritical),
                 HOSTMEM_E_INVALID_ADDRESS);
    hostmem_destroy(m);
}

static size_t huge_page(void)
{
    size_t hp = 2 * MiB;
    FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/hpage_pmd_size", "r");
    if (f) {
        if (fscanf(f, "%zu", &hp) != 1)
            hp = 2 * MiB;
        fclose(f);
    }
    return hp;
}

Test(s1_alloc_type, large_pages_reserve_commit_huge_multiple)
{
    size_t hp = huge_page();
    hostmem_manager *m = mk(NULL);
    char *p = alloc_ok(m, NULL, 2 * hp, MEM_RESERVE | MEM_COMMIT | MEM_LARGE_PAGES, PAGE_READWRITE);
    MEMORY_BASIC_INFORMATION mbi = q(m, p);
    MBI_IS(mbi, p, p, PAGE_READWRITE, 2 * hp, MEM_COMMIT, PAGE_READWRITE);
    p[0] = 1;
    p[2 * hp - 1] = 2;
    cr_assert_eq(st(m).committed_bytes, 2 * hp);
    HR_OK(hostmem_virtual_free(m, p, 0, MEM_RELEASE));
    hostmem_destroy(m);
}

Test(s1_alloc_type, large_pages_at_huge_aligned_address)
{
    size_t hp = huge_page();
    hostmem_manager *m = mk(NULL);
    char *hole = (char *)up((uintptr_t)free_va(3 * hp), hp);
    char *p = alloc_ok(m, hole, hp, MEM_RESERVE | MEM_COMMIT | MEM_LARGE_PAGES, PAGE_READWRITE);
    cr_assert_eq(p, hole);
    hostmem_destroy(m);
}

Test(s1_alloc_type, large_pages_misaligned)
{
    size_t hp = huge_page();
    hostmem_manager *m = mk(NULL);
    DWORD t = MEM_RESERVE | MEM_COMMIT | MEM_LARGE_PAGES;
    cr_assert_eq(alloc_fail(m, NULL, hp + pg(), t, PAGE_READWRITE, eTaskCritical), E_INVALIDARG);
    cr_assert_eq(alloc_fail(m, NULL, hp / 2, t, PAGE_READWRITE, eTaskCritical), E_INVALIDARG);
    char *hole = (char *)up((uintptr_t)free_va(3 * hp), hp);
    cr_assert_eq(alloc_fail(m, hole + GRAN, hp, t, PAGE_READWRITE, eTaskCritical), E_INVALIDARG);
    cr_assert_eq(st(m).region_count, 0);
    hostmem_destroy(m);
}

/* ---- S2 --------------------------------------------------------------------------- */
static const DWORD bases[] = {PAGE_NOACCESS, PAGE_READONLY, PAGE_READWRITE,
                              PAGE_EXECUTE, PAGE_EXECUTE_READ, PAGE_EXECUTE_READWRITE};
static const DWORD modifiers[] = {0, PAGE_GUARD, PAGE_NOCACHE, PAGE_WRITECOMBINE};

static const DWORD invalid_prots[] = {
    0,
    PAGE_WRITECOPY,
    PAGE_EXECUTE_WRITECOPY,
    PAGE_WRITECOPY | PAGE_GUARD,
    PAGE_EXECUTE_WRITECOPY | PAGE_NOCACHE,
    PAGE_READONLY | PAGE_READWRITE,
    PAGE_EXECUTE | PAGE_READWRITE,
    PAGE_NOACCESS | PAGE_READONLY,
    PAGE_EXECUTE_READ | PAGE_EXECUTE_READWRITE,
    PAGE_NOACCESS | PAGE_GUARD,
    PAGE_NOACCESS | PAGE_NOCACHE,
    PAGE_NOACCESS | PAGE_WRITECOMBINE,
    PAGE_GUARD,
    PAGE_NOCACHE,
    PAGE_WRITECOMBINE,
    PAGE_READWRITE | PAGE_GUARD | PAGE_NOCACHE,
    PAGE_READWRITE | PAGE_NOCACHE | PAGE_WRITECOMBINE,
    PAGE_READONLY | PAGE_GUARD | PAGE_WRITECOMBINE,
    0x800,
    PAGE_READWRITE | 0x800,
    PAGE_READWRITE | 0x1000,
    PAGE_READWRITE | 0x40000000u, /* PAGE_TARGETS_INVALID */
    PAGE_READWRITE | 0x80000000u,
};

static size_t nvalid(DWORD *out)
{
    size_t n = 0;
    for (size_t b = 0; b < 6; b++)
        for (size_t k = 0; k < 4; k++)
            if (!(bases[b] == PAGE_NOACCESS && modifiers[k]))
                out[n++] = bases[b] | modifiers[k];
    return n;
}

Test(s2_protect, valid_on_reserve_recorded_as_allocation_protect)
{
    DWORD v[32];
    size_t n = nvalid(v);
    cr_assert_eq(n, 21);
    hostmem_manager *m = mk(NULL);
    for (size_t i = 0; i < n; i++) {
        void *p = alloc_ok(m, NULL, GRAN, MEM_RESERVE, v[i]);
        MEMORY_BASIC_INFORMATION mbi = q(m, p);
        MBI_IS(mbi, p, p, v[i], GRAN, MEM_RESERVE, 0);
        HR_OK(hostmem_virtual_free(m, p, 0, MEM_RELEASE));
    }
    hostmem_destroy(m);
}

Test(s2_protect, valid_on_commit_reported_by_query)
{
    DWORD v[32];
    size_t n = nvalid(v);
    hostmem_manager *m = mk(NULL);
    char *r = reserve(m, NULL, n * pg());
    for (size_t i = 0; i < n; i++) {
        char *p = alloc_ok(m, r + i * pg(), pg(), MEM_COMMIT, v[i]);
        cr_assert_eq(p, r + i * pg());
        MEMORY_BASIC_INFORMATION mbi = q(m, p);
        MBI_IS(mbi, p, r, PAGE_READWRITE, pg(), MEM_COMMIT, v[i]);
    }
    cr_assert_eq(st(m).committed_bytes, n * pg());
    hostmem_destroy(m);
}

Test(s2_protect, valid_on_reserve_and_commit)
{
    DWORD v[32];
    size_t n = nvalid(v);
    hostmem_manager *m = mk(NULL);
    for (size_t i = 0; i < n; i++) {
        void *p = alloc_ok(m, NULL, pg(), MEM_RESERVE | MEM_COMMIT, v[i]);
        MEMORY_BASIC_INFORMATION mbi = q(m, p);
        MBI_IS(mbi, p, p, v[i], pg(), MEM_COMMIT, v[i]);
        HR_OK(hostmem_virtual_free(m, p, 0, MEM_RELEASE));
    }
    hostmem_destroy(m);
}

Test(s2_protect, valid_on_protect_old_is_previous)
{
    DWORD v[32];
    size_t n = nvalid(v);
    hostmem_manager *m = mk(NULL);
    char *p = commit(m, NULL, pg(), PAGE_READWRITE);
    DWORD prev = PAGE_READWRITE;
    for (size_t i = 0; i < n; i++) {
        DWORD old = 0xdead;
        HR_OK(hostmem_virtual_protect(m, p, pg(), v[i], &old));
        cr_assert_eq(old, prev, "protect to 0x%x: old 0x%x, want 0x%x", (unsigned)v[i], (unsigned)old,
                     (unsigned)prev);
        /* S11: a cache modifier passed to protect is ignored (the page was
         * committed without one). */
        DWORD want = v[i] & ~(DWORD)(PAGE_NOCACHE | PAGE_WRITECOMBINE);
        cr_assert_eq(q(m, p).Protect, want);
        prev = want;
    }
    hostmem_destroy(m);
}

Test(s2_protect, invalid_everywhere)
{
    hostmem_manager *m = mk(NULL);
    char *r = reserve(m, NULL, 2 * pg());
    commit(m, r, pg(), PAGE_READWRITE);
    for (size_t i = 0; i < sizeof invalid_prots / sizeof invalid_prots[0]; i++) {
        DWORD p = invalid_prots[i];
        cr_assert_eq(alloc_fail(m, NULL, GRAN, MEM_RESERVE, p, eTaskCritical), E_INVALIDARG, "reserve 0x%x",
                     (unsigned)p);
        cr_assert_eq(alloc_fail(m, NULL, GRAN, MEM_RESERVE | MEM_COMMIT, p, eTaskCritical), E_INVALIDARG,
                     "reserve+commit 0x%x", (unsigned)p);
        cr_assert_eq(alloc_fail(m, r + pg(), pg(), MEM_COMMIT, p, eTaskCritical), E_INVALIDARG, "commit 0x%x",
                     (unsigned)p);
        cr_assert_eq(alloc_fail(m, r, pg(), MEM_RESET, p, eTaskCritical), E_INVALIDARG, "reset 0x%x",
                     (unsigned)p);
        DWORD old = 0xdead;
        HR_EQ(hostmem_virtual_protect(m, r, pg(), p, &old), E_INVALIDARG);
    }
    MEMORY_BASIC_INFORMATION mbi = q(m, r);
    MBI_IS(mbi, r, r, PAGE_READWRITE, pg(), MEM_COMMIT, PAGE_READWRITE);
    mbi = q(m, r + pg());
    MBI_IS(mbi, r + pg(), r, PAGE_READWRITE, pg(), MEM_RESERVE, 0);
    hostmem_stats s = st(m);
    cr_assert_eq(s.region_count, 1);
    cr_assert_eq(s.committed_bytes, pg());
    hostmem_destroy(m);
}

Test(s2_protect, deny_write_execute)
{
    hostmem_config c;
    hostmem_config_init(&c);
    c.deny_write_execute = true;
    hostmem_manager *m = mk(&c);
    char *r = reserve(m, NULL, 2 * pg());
    commit(m, r, pg(), PAGE_READWRITE);
    static const DWORD wx[] = {PAGE_EXECUTE_READWRITE, PAGE_EXECUTE_READWRITE | PAGE_GUARD,
                               PAGE_EXECUTE_READWRITE | PAGE_NOCACHE, PAGE_EXECUTE_READWRITE | PAGE_WRITECOMBINE};
    for (size_t i = 0; i < 4; i++) {
        cr_assert_eq(alloc_fail(m, NULL, GRAN, MEM_RESERVE, wx[i], eTaskCritical), E_ACCESSDENIED);
        cr_assert_eq(alloc_fail(m, NULL, GRAN, MEM_COMMIT, wx[i], eTaskCritical), E_ACCESSDENIED);
        cr_assert_eq(alloc_fail(m, r + pg(), pg(), MEM_COMMIT, wx[i], eTaskCritical), E_ACCESSDENIED);
        DWORD old = 0;
        HR_EQ(hostmem_virtual_protect(m, r, pg(), wx[i], &old), E_ACCESSDENIED);
    }
    /* Everything else stays allowed. */
    DWORD old = 0;
    HR_OK(hostmem_virtual_protect(m, r, pg(), PAGE_EXECUTE_READ, &old));
    cr_assert_eq(old, PAGE_READWRITE);
    void *p = alloc_ok(m, NULL, GRAN, MEM_COMMIT, PAGE_EXECUTE);
    HR_OK(hostmem_virtual_free(m, p, 0, MEM_RELEASE));
    cr_assert_eq(q(m, r).Protect, PAGE_EXECUTE_READ);
    cr_assert_eq(q(m, r + pg()).State, MEM_RESERVE);
    cr_assert_eq(st(m).region_count, 1);
    hostmem_destroy(m);
}

Test(s2_protect, write_execute_allowed_by_default)
{
    hostmem_manager *m = mk(NULL);
    char *p = commit(m, NULL, pg(), PAGE_EXECUTE_READWRITE);
    p[0] = (char)0xc3;
    cr_assert_eq(q(m, p).Protect, PAGE_EXECUTE_READWRITE);
    hostmem_destroy(m);
}

/* ---- S7 free types ------------------------------------------------------------------ */
Test(s7_release, invalid_free_types)
{
    hostmem_manager *m = mk(NULL);
    char *r = commit(m, NULL, pg(), PAGE_READWRITE);
    static const DWORD bad[] = {0, MEM_FREE, MEM_DECOMMIT | MEM_RELEASE, MEM_RELEASE | 0x1, MEM_DECOMMIT | 0x1,
                                MEM_COMMIT, MEM_RESERVE, MEM_RELEASE | MEM_COMMIT, MEM_RESET, 0x80000000u | MEM_RELEASE};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        HR_EQ(hostmem_virtual_free(m, r, 0, bad[i]), E_INVALIDARG);
        HR_EQ(hostmem_virtual_free(m, r, pg(), bad[i]), E_INVALIDARG);
    }
    MEMORY_BASIC_INFORMATION mbi = q(m, r);
    MBI_IS(mbi, r, r, PAGE_READWRITE, pg(), MEM_COMMIT, PAGE_READWRITE);
    hostmem_destroy(m);
}
