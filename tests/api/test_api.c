/* A1-A4: names and values, the manager's life cycle, NULL pointers,
 * statistics, independent managers and shutdown. */
#include "util.h"

#include <stddef.h>

TestSuite(a1_names, .fini = hm_leak_check);
TestSuite(a2_hresult, .fini = hm_leak_check);
TestSuite(a3_manager, .fini = hm_leak_check);
TestSuite(a4_pointers, .fini = hm_leak_check);
TestSuite(stats, .fini = hm_leak_check);
TestSuite(two_managers, .fini = hm_leak_check);
TestSuite(shutdown, .fini = hm_leak_check);

/* ---- A1 ------------------------------------------------------------------ */
Test(a1_names, memory_basic_information_layout)
{
    cr_assert_eq(sizeof(MEMORY_BASIC_INFORMATION), 48);
    cr_assert_eq(offsetof(MEMORY_BASIC_INFORMATION, BaseAddress), 0);
    cr_assert_eq(offsetof(MEMORY_BASIC_INFORMATION, AllocationBase), 8);
    cr_assert_eq(offsetof(MEMORY_BASIC_INFORMATION, AllocationProtect), 16);
    cr_assert_eq(offsetof(MEMORY_BASIC_INFORMATION, RegionSize), 24);
    cr_assert_eq(offsetof(MEMORY_BASIC_INFORMATION, State), 32);
    cr_assert_eq(offsetof(MEMORY_BASIC_INFORMATION, Protect), 36);
    cr_assert_eq(offsetof(MEMORY_BASIC_INFORMATION, Type), 40);
    cr_assert_eq(sizeof(HRESULT), 4);
    cr_assert_eq(sizeof(DWORD), 4);
    cr_assert_eq(sizeof(SIZE_T), sizeof(size_t));
    cr_assert((HRESULT)-1 < 0, "HRESULT is signed");
}

Test(a1_names, flag_values)
{
    cr_assert_eq(MEM_COMMIT, 0x1000);
    cr_assert_eq(MEM_RESERVE, 0x2000);
    cr_assert_eq(MEM_DECOMMIT, 0x4000);
    cr_assert_eq(MEM_RELEASE, 0x8000);
    cr_assert_eq(MEM_FREE, 0x10000);
    cr_assert_eq(MEM_PRIVATE, 0x20000);
    cr_assert_eq(MEM_MAPPED, 0x40000);
    cr_assert_eq(MEM_RESET, 0x80000);
    cr_assert_eq(MEM_TOP_DOWN, 0x100000);
    cr_assert_eq(MEM_WRITE_WATCH, 0x200000);
    cr_assert_eq(MEM_RESET_UNDO, 0x1000000);
    cr_assert_eq(MEM_IMAGE, 0x1000000);
    cr_assert_eq(MEM_LARGE_PAGES, 0x20000000);
    cr_assert_eq(PAGE_NOACCESS, 0x01);
    cr_assert_eq(PAGE_READONLY, 0x02);
    cr_assert_eq(PAGE_READWRITE, 0x04);
    cr_assert_eq(PAGE_WRITECOPY, 0x08);
    cr_assert_eq(PAGE_EXECUTE, 0x10);
    cr_assert_eq(PAGE_EXECUTE_READ, 0x20);
    cr_assert_eq(PAGE_EXECUTE_READWRITE, 0x40);
    cr_assert_eq(PAGE_EXECUTE_WRITECOPY, 0x80);
    cr_assert_eq(PAGE_GUARD, 0x100);
    cr_assert_eq(PAGE_NOCACHE, 0x200);
    cr_assert_eq(PAGE_WRITECOMBINE, 0x400);
    cr_assert_eq(eTaskCritical, 0);
    cr_assert_eq(eAppDomainCritical, 1);
    cr_assert_eq(eProcessCritical, 2);
    cr_assert_eq(eMemoryAvailableLow, 1);
    cr_assert_eq(eMemoryAvailableNeutral, 2);
    cr_assert_eq(eMemoryAvailableHigh, 3);
    cr_assert_eq(HRESULT_FROM_WIN32(487), HOSTMEM_E_INVALID_ADDRESS);
    cr_assert_eq(HRESULT_FROM_WIN32(24), HOSTMEM_E_BAD_LENGTH);
    cr_assert(SUCCEEDED(S_OK) && FAILED(E_FAIL) && !FAILED(S_OK) && !SUCCEEDED(E_POINTER));
}

/* ---- A2 ------------------------------------------------------------------ */
static const struct {
    HRESULT hr;
    uint32_t value;
    const char *name;
} codes[] = {
    {S_OK, 0x00000000u, "S_OK"},
    {E_NOTIMPL, 0x80004001u, "E_NOTIMPL"},
    {E_POINTER, 0x80004003u, "E_POINTER"},
    {E_FAIL, 0x80004005u, "E_FAIL"},
    {E_ACCESSDENIED, 0x80070005u, "E_ACCESSDENIED"},
    {E_OUTOFMEMORY, 0x8007000Eu, "E_OUTOFMEMORY"},
    {E_INVALIDARG, 0x80070057u, "E_INVALIDARG"},
    {HOST_E_INVALIDOPERATION, 0x80131022u, "HOST_E_INVALIDOPERATION"},
    {HOST_E_CLRNOTAVAILABLE, 0x80131023u, "HOST_E_CLRNOTAVAILABLE"},
    {HOST_E_TIMEOUT, 0x80131024u, "HOST_E_TIMEOUT"},
    {HOST_E_NOT_OWNER, 0x80131025u, "HOST_E_NOT_OWNER"},
    {HOST_E_ABANDONED, 0x80131026u, "HOST_E_ABANDONED"},
    {HOSTMEM_E_INVALID_ADDRESS, 0x800701E7u, "HOSTMEM_E_INVALID_ADDRESS"},
    {HOSTMEM_E_BAD_LENGTH, 0x80070018u, "HOSTMEM_E_BAD_LENGTH"},
};

Test(a2_hresult, values)
{
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++)
        cr_assert_eq((uint32_t)codes[i].hr, codes[i].value, "%s", codes[i].name);
}

Test(a2_hresult, name_of_every_code)
{
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        const char *n = hostmem_hresult_name(codes[i].hr);
        cr_assert_not_null(n);
        cr_assert_str_eq(n, codes[i].name);
    }
}

Test(a2_hresult, unknown_codes)
{
    static const uint32_t unknown[] = {1u /* S_FALSE */, 0x80000000u, 0x8007000Fu, 0x80131021u,
                                       0x80131027u, 0x800701E8u, 0xFFFFFFFFu, 0x7FFFFFFFu, 0x00000005u};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        const char *n = hostmem_hresult_name((HRESULT)unknown[i]);
        cr_assert_not_null(n);
        cr_assert_str_eq(n, "UNKNOWN", "0x%08x named %s", unknown[i], n);
    }
}

/* ---- A3 ------------------------------------------------------------------ */
Test(a3_manager, config_defaults)
{
    hostmem_config c;
    memset(&c, 0xff, sizeof c);
    hostmem_config_init(&c);
    cr_assert_eq(c.commit_limit, 0);
    cr_assert_eq(c.address_space_limit, 0);
    cr_assert_eq(c.task_percent, 90);
    cr_assert_eq(c.appdomain_percent, 97);
    cr_assert_eq(c.low_memory_percent, 90);
    cr_assert_eq(c.high_memory_percent, 60);
    cr_assert_eq(c.process_critical_wait_ms, 0);
    cr_assert_eq(c.lock_timeout_ms, 0);
    cr_assert_eq(c.deny_write_execute, false);
    cr_assert_eq(c.stack_depth, 0);
    cr_assert_eq(c.stack_walk, HOSTMEM_STACK_WALK_UNWIND);
}

/* T7: a stack depth above 64 or an unknown walk is refused; 64 is accepted. */
Test(a3_manager, create_checks_stack_config)
{
    unsetenv("HOSTMEM_STACKS");
    unsetenv("HOSTMEM_STACKS_UNWIND");
    hostmem_config c;
    hostmem_manager *m = NULL;
    hostmem_config_init(&c);
    c.stack_depth = HOSTMEM_STACK_DEPTH_MAX + 1;
    cr_assert_eq(hostmem_create(&c, &m), E_INVALIDARG);
    cr_assert_null(m);
    hostmem_config_init(&c);
    c.stack_walk = 2;
    cr_assert_eq(hostmem_create(&c, &m), E_INVALIDARG);
    hostmem_config_init(&c);
    c.stack_depth = HOSTMEM_STACK_DEPTH_MAX;
    c.stack_walk = HOSTMEM_STACK_WALK_FRAME_POINTERS;
    HR_OK(hostmem_create(&c, &m));
    void *p = commit(m, NULL, pg(), PAGE_READWRITE);
    HR_OK(hostmem_virtual_free(m, p, 0, MEM_RELEASE));
    hostmem_destroy(m);
}

Test(a3_manager, create_with_null_config_uses_defaults)
{
    hostmem_manager *m = mk(NULL);
    hostmem_stats s = st(m);
    cr_assert_eq(s.reserved_bytes, 0);
    cr_assert_eq(s.committed_bytes, 0);
    cr_assert_eq(s.peak_committed_bytes, 0);
    cr_assert_eq(s.peak_reserved_bytes, 0);
    cr_assert_eq(s.region_count, 0);
    cr_assert_eq(s.external_bytes, 0);
    cr_assert_eq(s.page_size, pg());
    cr_assert_eq(s.granularity, GRAN);
    /* No limit: deny_write_execute off, so EXECUTE_READWRITE is allowed. */
    void *p = commit(m, NULL, pg(), PAGE_EXECUTE_READWRITE);
    HR_OK(hostmem_virtual_free(m, p, 0, MEM_RELEASE));
    hostmem_destroy(m);
}

Test(a3_manager, destroy_null_is_noop)
{
    hostmem_destroy(NULL);
}

Test(a3_manager, destroy_releases_every_region)
{
    hostmem_manager *witness = mk(NULL);
    hostmem_manager *m = mk(NULL);
    char *small = commit(m, NULL, pg(), PAGE_READWRITE);
    char *large = reserve(m, NULL, 4 * MiB);
    commit(m, large + MiB, pg(), PAGE_READWRITE);
    small[0] = 1;
    hostmem_destroy(m);
    /* Seen from another manager, the ranges are no longer mapped at all. */
    MEMORY_BASIC_INFORMATION a = q(witness, small), b = q(witness, large);
    cr_assert_eq(a.State, MEM_FREE, "small region still mapped: state 0x%x", (unsigned)a.State);
    cr_assert_eq(b.State, MEM_FREE, "large region still mapped: state 0x%x", (unsigned)b.State);
    cr_assert(faults_read(small));
    cr_assert(faults_read(large + MiB));
    hostmem_destroy(witness);
}

/* ---- A4 ------------------------------------------------------------------ */
Test(a4_pointers, null_manager_everywhere)
{
    void *out = (void *)0x1;
    MEMORY_BASIC_INFORMATION mbi;
    SIZE_T w = 0;
    DWORD d = 0;
    SIZE_T sz = 0;
    hostmem_stats s;
    HR_EQ(hostmem_virtual_alloc(NULL, NULL, pg(), MEM_RESERVE, PAGE_READWRITE, eTaskCritical, &out),
          E_POINTER);
    cr_assert_null(out);
    HR_EQ(hostmem_virtual_free(NULL, (void *)0x10000, 0, MEM_RELEASE), E_POINTER);
    HR_EQ(hostmem_virtual_query(NULL, &mbi, &mbi, sizeof mbi, &w), E_POINTER);
    HR_EQ(hostmem_virtual_protect(NULL, &mbi, 1, PAGE_READWRITE, &d), E_POINTER);
    HR_EQ(hostmem_get_memory_load(NULL, &d, &sz), E_POINTER);
    HR_EQ(hostmem_register_memory_notification_callback(NULL, NULL, NULL), E_POINTER);
    HR_EQ(hostmem_needs_virtual_address_space(NULL, (void *)0x10000, pg()), E_POINTER);
    HR_EQ(hostmem_acquired_virtual_address_space(NULL, (void *)0x10000, pg()), E_POINTER);
    HR_EQ(hostmem_released_virtual_address_space(NULL, (void *)0x10000), E_POINTER);
    HR_EQ(hostmem_get_stats(NULL, &s), E_POINTER);
    HR_EQ(hostmem_create(NULL, NULL), E_POINTER);
}

Test(a4_pointers, null_out_mem_reserves_nothing)
{
    hostmem_manager *m = mk(NULL);
    HR_EQ(hostmem_virtual_alloc(m, NULL, pg(), MEM_RESERVE, PAGE_READWRITE, eTaskCritical, NULL), E_POINTER);
    HR_EQ(hostmem_virtual_alloc(m, NULL, pg(), MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE, eTaskCritical, NULL),
          E_POINTER);
    hostmem_stats s = st(m);
    cr_assert_eq(s.region_count, 0);
    cr_assert_eq(s.reserved_bytes, 0);
    cr_assert_eq(s.committed_bytes, 0);
    cr_assert_eq(s.peak_reserved_bytes, 0);
    hostmem_destroy(m);
}

Test(a4_pointers, null_out_mem_commits_nothing)
{
    hostmem_manager *m = mk(NULL);
    char *r = reserve(m, NULL, 4 * pg());
    HR_EQ(hostmem_virtual_alloc(m, r, pg(), MEM_COMMIT, PAGE_READWRITE, eTaskCritical, NULL), E_POINTER);
    MEMORY_BASIC_INFORMATION mbi = q(m, r);
    MBI_IS(mbi, r, r, PAGE_READWRITE, 4 * pg(), MEM_RESERVE, 0);
    cr_assert_eq(st(m).committed_bytes, 0);
    hostmem_destroy(m);
}

Test(a4_pointers, null_query_buffer_and_written)
{
    hostmem_manager *m = mk(NULL);
    char *r = reserve(m, NULL, pg());
    MEMORY_BASIC_INFORMATION mbi;
    SIZE_T w = 0;
    HR_EQ(hostmem_virtual_query(m, r, NULL, sizeof mbi, &w), E_POINTER);
    HR_EQ(hostmem_virtual_query(m, r, &mbi, sizeof mbi, NULL), E_POINTER);
    hostmem_destroy(m);
}

Test(a4_pointers, null_old_protect_changes_nothing)
{
    hostmem_manager *m = mk(NULL);
    char *r = commit(m, NULL, pg(), PAGE_READWRITE);
    HR_EQ(hostmem_virtual_protect(m, r, pg(), PAGE_READONLY, NULL), E_POINTER);
    cr_assert_eq(q(m, r).Protect, PAGE_READWRITE);
    cr_assert(!faults_write(r, 7));
    hostmem_destroy(m);
}

Test(a4_pointers, null_load_outputs_stats_callback)
{
    hostmem_manager *m = mk_limit(16 * pg());
    DWORD load;
    SIZE_T avail;
    HR_EQ(hostmem_get_memory_load(m, NULL, &avail), E_POINTER);
    HR_EQ(hostmem_get_memory_load(m, &load, NULL), E_POINTER);
    HR_EQ(hostmem_get_stats(m, NULL), E_POINTER);
    HR_EQ(hostmem_register_memory_notification_callback(m, NULL, NULL), E_POINTER);
    hostmem_destroy(m);
}

Test(a4_pointers, out_mem_null_on_every_failure)
{
    hostmem_manager *m = mk(NULL);
    char *r = reserve(m, NULL, pg());
    cr_assert_eq(alloc_fail(m, NULL, 0, MEM_RESERVE, PAGE_READWRITE, eTaskCritical), E_INVALIDARG);
    cr_assert_eq(alloc_fail(m, NULL, pg(), 0, PAGE_READWRITE, eTaskCritical), E_INVALIDARG);
    cr_assert_eq(alloc_fail(m, NULL, pg(), MEM_RESERVE, 0, eTaskCritical), E_INVALIDARG);
    cr_assert_eq(alloc_fail(m, r, pg(), MEM_RESERVE, PAGE_READWRITE, eTaskCritical), HOSTMEM_E_INVALID_ADDRESS);
    cr_assert_eq(alloc_fail(m, NULL, (size_t)1 << 62, MEM_RESERVE, PAGE_READWRITE, eTaskCritical), E_OUTOFMEMORY);
    cr_assert_eq(alloc_fail(m, NULL, pg(), MEM_COMMIT | MEM_WRITE_WATCH, PAGE_READWRITE, eTaskCritical),
                 E_INVALIDARG);
    hostmem_destroy(m);
}

/* ---- statistics, exact to the byte -------------------------------------------- */
Test(stats, exact_after_a_sequence)
{
    size_t P = pg();
    hostmem_manager *m = mk(NULL);
    char *a = reserve(m, NULL, P + 1);           /* 2 pages */
    char *b = reserve(m, NULL, GRAN);            /* 16 pages */
    char *c = reserve(m, NULL, MiB + 1);         /* 257 pages */
    hostmem_stats s = st(m);
    cr_assert_eq(s.reserved_bytes, 2 * P + GRAN + MiB + P);
    cr_assert_eq(s.peak_reserved_bytes, 2 * P + GRAN + MiB + P);
    cr_assert_eq(s.region_count, 3);
    cr_assert_eq(s.committed_bytes, 0);

    commit(m, a + 1, 1, PAGE_READWRITE);          /* 1 page */
    commit(m, b + P - 1, 2, PAGE_READONLY);       /* pages 0 and 1 */
    commit(m, c + 10 * P, 5 * P, PAGE_READWRITE); /* 5 pages */
    commit(m, c + 12 * P, 5 * P, PAGE_READONLY);  /* pages 12..16: 2 new (12..14 recommitted) */
    s = st(m);
    cr_assert_eq(s.committed_bytes, (1 + 2 + 7) * P);
    cr_assert_eq(s.peak_committed_bytes, 10 * P);

    HR_OK(hostmem_virtual_free(m, c + 11 * P, 2 * P, MEM_DECOMMIT));
    s = st(m);
    cr_assert_eq(s.committed_bytes, 8 * P);
    cr_assert_eq(s.peak_committed_bytes, 10 * P);

    HR_OK(hostmem_virtual_free(m, b, 0, MEM_RELEASE));
    s = st(m);
    cr_assert_eq(s.committed_bytes, 6 * P);
    cr_assert_eq(s.reserved_bytes, 2 * P + MiB + P);
    cr_assert_eq(s.peak_reserved_bytes, 2 * P + GRAN + MiB + P);
    cr_assert_eq(s.region_count, 2);

    HR_OK(hostmem_acquired_virtual_address_space(m, (void *)0x100000000ull, 3 * P));
    cr_assert_eq(st(m).external_bytes, 3 * P);
    HR_OK(hostmem_released_virtual_address_space(m, (void *)0x100000000ull));
    cr_assert_eq(st(m).external_bytes, 0);

    HR_OK(hostmem_virtual_free(m, a, 0, MEM_RELEASE));
    HR_OK(hostmem_virtual_free(m, c, 0, MEM_RELEASE));
    s = st(m);
    cr_assert_eq(s.committed_bytes, 0);
    cr_assert_eq(s.reserved_bytes, 0);
    cr_assert_eq(s.region_count, 0);
    cr_assert_eq(s.peak_committed_bytes, 10 * P);
    hostmem_destroy(m);
}

Test(stats, reserve_and_commit_counts_both)
{
    hostmem_manager *m = mk(NULL);
    commit(m, NULL, 3 * pg() + 5, PAGE_READWRITE);
    hostmem_stats s = st(m);
    cr_assert_eq(s.reserved_bytes, 4 * pg());
    cr_assert_eq(s.committed_bytes, 4 * pg());
    cr_assert_eq(s.region_count, 1);
    hostmem_destroy(m);
}

/* ---- two managers ------------------------------------------------------------ */
Test(two_managers, region_of_one_is_inside_no_region_of_the_other)
{
    size_t P = pg();
    hostmem_manager *m1 = mk(NULL), *m2 = mk(NULL);
    char *r = reserve(m1, NULL, 4 * P);
    commit(m1, r, P, PAGE_READWRITE);
    void *out = (void *)0x1;
    DWORD old = 0;
    HR_EQ(hostmem_virtual_free(m2, r, 0, MEM_RELEASE), HOST_E_INVALIDOPERATION);
    HR_EQ(hostmem_virtual_free(m2, r, P, MEM_DECOMMIT), HOST_E_INVALIDOPERATION);
    HR_EQ(hostmem_virtual_alloc(m2, r + P, P, MEM_COMMIT, PAGE_READWRITE, eTaskCritical, &out),
          HOSTMEM_E_INVALID_ADDRESS);
    cr_assert_null(out);
    HR_EQ(hostmem_virtual_protect(m2, r, P, PAGE_READONLY, &old), HOSTMEM_E_INVALID_ADDRESS);
    out = (void *)0x1;
    HR_EQ(hostmem_virtual_alloc(m2, r, P, MEM_RESERVE, PAGE_READWRITE, eTaskCritical, &out),
          HOSTMEM_E_INVALID_ADDRESS);
    cr_assert_null(out);
    /* m2 sees m1's pages as the OS does: committed anonymous memory, not a region of its own. */
    MEMORY_BASIC_INFORMATION mbi = q(m2, r);
    cr_assert_eq(mbi.State, MEM_COMMIT);
    cr_assert_eq(mbi.Type, MEM_PRIVATE);
    cr_assert_eq(mbi.Protect, PAGE_READWRITE);
    /* Nothing of m1 changed; m2 holds nothing. */
    mbi = q(m1, r);
    MBI_IS(mbi, r, r, PAGE_READWRITE, P, MEM_COMMIT, PAGE_READWRITE);
    cr_assert_eq(st(m1).region_count, 1);
    cr_assert_eq(st(m1).committed_bytes, P);
    cr_assert_eq(st(m2).region_count, 0);
    cr_assert_eq(st(m2).committed_bytes, 0);
    hostmem_destroy(m1);
    hostmem_destroy(m2);
}

Test(two_managers, destroying_one_leaves_the_other)
{
    hostmem_manager *m1 = mk(NULL), *m2 = mk(NULL);
    char *a = commit(m1, NULL, pg(), PAGE_READWRITE);
    char *b = commit(m2, NULL, pg(), PAGE_READWRITE);
    b[0] = 42;
    hostmem_destroy(m1);
    cr_assert_eq(b[0], 42);
    MEMORY_BASIC_INFORMATION mbi = q(m2, b);
    MBI_IS(mbi, b, b, PAGE_READWRITE, pg(), MEM_COMMIT, PAGE_READWRITE);
    cr_assert_eq(q(m2, a).State, MEM_FREE, "m1's region outlived m1");
    hostmem_destroy(m2);
}

/* ---- shutdown ------------------------------------------------------------------ */
static void note_cb(void *ctx, EMemoryAvailable s)
{
    (void)ctx;
    (void)s;
}

Test(shutdown, every_later_call_is_clr_not_available)
{
    size_t P = pg();
    hostmem_manager *m = mk(NULL);
    char *r = commit(m, NULL, P, PAGE_READWRITE);
    hostmem_shutdown(m);
    void *out = (void *)0x1;
    MEMORY_BASIC_INFORMATION mbi;
    SIZE_T w = 0, avail = 0;
    DWORD d = 0;
    hostmem_stats s;
    HR_EQ(hostmem_virtual_alloc(m, NULL, P, MEM_RESERVE, PAGE_READWRITE, eTaskCritical, &out),
          HOST_E_CLRNOTAVAILABLE);
    cr_assert_null(out);
    out = (void *)0x1;
    HR_EQ(hostmem_virtual_alloc(m, r, P, MEM_COMMIT, PAGE_READWRITE, eTaskCritical, &out),
          HOST_E_CLRNOTAVAILABLE);
    cr_assert_null(out);
    HR_EQ(hostmem_virtual_free(m, r, P, MEM_DECOMMIT), HOST_E_CLRNOTAVAILABLE);
    HR_EQ(hostmem_virtual_free(m, r, 0, MEM_RELEASE), HOST_E_CLRNOTAVAILABLE);
    HR_EQ(hostmem_virtual_query(m, r, &mbi, sizeof mbi, &w), HOST_E_CLRNOTAVAILABLE);
    HR_EQ(hostmem_virtual_protect(m, r, P, PAGE_READONLY, &d), HOST_E_CLRNOTAVAILABLE);
    HR_EQ(hostmem_get_memory_load(m, &d, &avail), HOST_E_CLRNOTAVAILABLE);
    HR_EQ(hostmem_register_memory_notification_callback(m, note_cb, NULL), HOST_E_CLRNOTAVAILABLE);
    HR_EQ(hostmem_needs_virtual_address_space(m, (void *)0x100000000ull, P), HOST_E_CLRNOTAVAILABLE);
    HR_EQ(hostmem_acquired_virtual_address_space(m, (void *)0x100000000ull, P), HOST_E_CLRNOTAVAILABLE);
    HR_EQ(hostmem_released_virtual_address_space(m, (void *)0x100000000ull), HOST_E_CLRNOTAVAILABLE);
    HR_EQ(hostmem_get_stats(m, &s), HOST_E_CLRNOTAVAILABLE);
    /* The host's memory stays usable until destroy. */
    r[0] = 1;
    hostmem_shutdown(m); /* twice is harmless */
    hostmem_destroy(m);
}

Test(shutdown, destroy_after_shutdown_releases)
{
    hostmem_manager *witness = mk(NULL), *m = mk(NULL);
    char *r = reserve(m, NULL, 4 * MiB);
    hostmem_shutdown(m);
    hostmem_destroy(m);
    cr_assert_eq(q(witness, r).State, MEM_FREE);
    hostmem_destroy(witness);
}
