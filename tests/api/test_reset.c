/* S10 (reset, reset undo), S11 (guard, no-cache, write-combine) and the
 * faults of S4, S6, S7, S8, S11: touching memory that is not accessible kills the
 * process with SIGSEGV (death tests). */
#include "util.h"

TestSuite(s10_reset, .fini = hm_leak_check);
TestSuite(s11_modifiers, .fini = hm_leak_check);
TestSuite(faults);

/* ---- S10 ------------------------------------------------------------------------ */
static void each_page_zero_or(const char *p, size_t pages, unsigned char v)
{
    for (size_t i = 0; i < pages; i++)
        cr_assert(all_bytes(p + i * pg(), pg(), v) || all_bytes(p + i * pg(), pg(), 0),
                  "page %zu neither intact nor zero after reset", i);
}

Test(s10_reset, keeps_state_protection_and_charge)
{
    size_t P = pg();
    hostmem_manager *m = mk(NULL);
    char *r = reserve(m, NULL, 8 * P);
    commit(m, r + P, 4 * P, PAGE_READWRITE);
    DWORD old;
    HR_OK(hostmem_virtual_protect(m, r + 3 * P, P, PAGE_READONLY, &old));
    memset(r + P, 0x5e, 2 * P);
    snap before, after;
    snap_take(m, r, 8 * P, &before);
    hostmem_stats s0 = st(m);
    /* Covers reserved pages at both ends; the protection is validated and ignored. */
    void *out = NULL;
    HR_OK(hostmem_virtual_alloc(m, r, 8 * P, MEM_RESET, PAGE_NOACCESS, eTaskCritical, &out));
    snap_take(m, r, 8 * P, &after);
    snap_eq(&before, &after);
    hostmem_stats s1 = st(m);
    stats_eq(&s0, &s1);
    each_page_zero_or(r + P, 2, 0x5e);
    cr_assert(!faults_write(r + P, 1), "reset changed access");
    cr_assert(faults_write(r + 3 * P, 1), "reset changed access");
    hostmem_destroy(m);
}

Test(s10_reset, must_lie_in_one_region)
{
    size_t P = pg();
    hostmem_manager *m = mk(NULL);
    char *hole = free_va(2 * GRAN);
    char *a = alloc_ok(m, hole, GRAN, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE);
    alloc_ok(m, hole + GRAN, GRAN, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE);
    char *f = foreign_map(P, PROT_READ | PROT_WRITE);
    memset(f, 0x66, P);
    cr_assert_eq(alloc_fail(m, a + GRAN - P, 2 * P, MEM_RESET, PAGE_READWRITE, eTaskCritical),
                 HOSTMEM_E_INVALID_ADDRESS);
    cr_assert_eq(alloc_fail(m, f, P, MEM_RESET, PAGE_READWRITE, eTaskCritical), HOSTMEM_E_INVALID_ADDRESS);
    cr_assert_eq(alloc_fail(m, f, P, MEM_RESET_UNDO, PAGE_READWRITE, eTaskCritical), HOSTMEM_E_INVALID_ADDRESS);
    cr_assert(all_bytes(f, P, 0x66), "host data reset");
    char *small = commit(m, NULL, P, PAGE_READWRITE);
    cr_assert_eq(alloc_fail(m, small, 2 * P, MEM_RESET, PAGE_READWRITE, eTaskCritical), HOSTMEM_E_INVALID_ADDRESS);
    munmap(f, P);
    hostmem_destroy(m);
}

Test(s10_reset, undo_never_claims_lost_data)
{
    size_t P = pg();
    hostmem_manager *m = mk(NULL);
    char *r = commit(m, NULL, 16 * P, PAGE_READWRITE);
    memset(r, 0x7c, 16 * P);
    void *out;
    HR_OK(hostmem_virtual_alloc(m, r, 16 * P, MEM_RESET, PAGE_READWRITE, eTaskCritical, &out));
    out = (void *)0x1;
    HRESULT hr = hostmem_virtual_alloc(m, r, 16 * P, MEM_RESET_UNDO, PAGE_READWRITE, eTaskCritical, &out);
    cr_assert(hr == S_OK || hr == E_OUTOFMEMORY, "reset undo: %s", hostmem_hresult_name(hr));
    if (hr == S_OK)
        cr_assert(all_bytes(r, 16 * P, 0x7c), "MEM_RESET_UNDO succeeded over data that was lost");
    else
        cr_assert_null(out);
    /* Either way the pages stay committed and usable. */
    cr_assert_eq(q(m, r).State, MEM_COMMIT);
    cr_assert_eq(q(m, r).RegionSize, 16 * P);
    cr_assert(!faults_write(r, 1));
    hostmem_destroy(m);
}

Test(s10_reset, undo_of_pages_never_reset_succeeds)
{
    size_t P = pg();
    hostmem_manager *m = mk(NULL);
    char *r = commit(m, NULL, 4 * P, PAGE_READWRITE);
    memset(r, 0x19, 4 * P);
    void *out;
    HR_OK(hostmem_virtual_alloc(m, r, 4 * P, MEM_RESET_UNDO, PAGE_READWRITE, eTaskCritical, &out));
    cr_assert(all_bytes(r, 4 * P, 0x19));
    hostmem_destroy(m);
}

Test(s10_reset, undo_after_reset_of_other_pages)
{
    size_t P = pg();
    hostmem_manager *m = mk(NULL);
    char *r = commit(m, NULL, 4 * P, PAGE_READWRITE);
    memset(r, 0x19, 4 * P);
    void *out;
    HR_OK(hostmem_virtual_alloc(m, r + 2 * P, 2 * P, MEM_RESET, PAGE_READWRITE, eTaskCritical, &out));
    HR_OK(hostmem_virtual_alloc(m, r, 2 * P, MEM_RESET_UNDO, PAGE_READWRITE, eTaskCritical, &out));
    cr_assert(all_bytes(r, 2 * P, 0x19));
    hostmem_destroy(m);
}

/* Where the contract is silent, Windows: VirtualAlloc(MEM_RESET / MEM_RESET_UNDO)
 * returns the (page-rounded) address it was given. */
Test(s10_reset, returns_the_address)
{
    size_t P = pg();
    hostmem_manager *m = mk(NULL);
    char *r = commit(m, NULL, 4 * P, PAGE_READWRITE);
    void *out = NULL;
    HR_OK(hostmem_virtual_alloc(m, r + P + 10, P, MEM_RESET, PAGE_READWRITE, eTaskCritical, &out));
    cr_assert_eq(out, r + P, "MEM_RESET returned %p, want %p", out, (void *)(r + P));
    out = NULL;
    HR_OK(hostmem_virtual_alloc(m, r, P, MEM_RESET_UNDO, PAGE_READWRITE, eTaskCritical, &out));
    cr_assert_eq(out, r, "MEM_RESET_UNDO returned %p, want %p", out, (void *)r);
    hostmem_destroy(m);
}

/* ---- S11 ------------------------------------------------------------------------ */
Test(s11_modifiers, guard_page_faults_and_stays)
{
    size_t P = pg();
    hostmem_manager *m = mk(NULL);
    char *r = commit(m, NULL, 2 * P, PAGE_READWRITE | PAGE_GUARD);
    MEMORY_BASIC_INFORMATION mbi = q(m, r);
    MBI_IS(mbi, r, r, PAGE_READWRITE | PAGE_GUARD, 2 * P, MEM_COMMIT, PAGE_READWRITE | PAGE_GUARD);
    cr_assert(faults_read(r));
    cr_assert(faults_write(r + P, 1));
    /* PAGE_GUARD stays after an access (no one-shot clearing yet). */
    cr_assert_eq(q(m, r).Protect, PAGE_READWRITE | PAGE_GUARD);
    cr_assert(faults_read(r), "guard cleared by the first access");
    DWORD old;
    HR_OK(hostmem_virtual_protect(m, r, P, PAGE_READWRITE, &old));
    cr_assert_eq(old, PAGE_READWRITE | PAGE_GUARD);
    cr_assert(!faults_write(r, 1));
    cr_assert(faults_read(r + P));
    cr_assert_eq(st(m).committed_bytes, 2 * P, "guard pages are committed");
    hostmem_destroy(m);
}

Test(s11_modifiers, nocache_and_writecombine_recorded_and_accessible)
{
    size_t P = pg();
    hostmem_manager *m = mk(NULL);
    char *r = alloc_ok(m, NULL, 4 * P, MEM_RESERVE, PAGE_READWRITE | PAGE_NOCACHE);
    commit(m, r, P, PAGE_READWRITE | PAGE_NOCACHE);
    commit(m, r + P, P, PAGE_READWRITE | PAGE_WRITECOMBINE);
    commit(m, r + 2 * P, P, PAGE_READONLY | PAGE_WRITECOMBINE);
    MEMORY_BASIC_INFORMATION mbi = q(m, r);
    MBI_IS(mbi, r, r, PAGE_READWRITE | PAGE_NOCACHE, P, MEM_COMMIT, PAGE_READWRITE | PAGE_NOCACHE);
    mbi = q(m, r + P);
    MBI_IS(mbi, r + P, r, PAGE_READWRITE | PAGE_NOCACHE, P, MEM_COMMIT, PAGE_READWRITE | PAGE_WRITECOMBINE);
    mbi = q(m, r + 2 * P);
    MBI_IS(mbi, r + 2 * P, r, PAGE_READWRITE | PAGE_NOCACHE, P, MEM_COMMIT, PAGE_READONLY | PAGE_WRITECOMBINE);
    cr_assert(!faults_write(r, 1) && !faults_write(r + P, 2));
    cr_assert(!faults_read(r + 2 * P) && faults_write(r + 2 * P, 3));
    hostmem_destroy(m);
}

Test(s11_modifiers, guard_on_reserve_protect_only)
{
    size_t P = pg();
    hostmem_manager *m = mk(NULL);
    char *r = alloc_ok(m, NULL, 2 * P, MEM_RESERVE, PAGE_READWRITE | PAGE_GUARD);
    MEMORY_BASIC_INFORMATION mbi = q(m, r);
    MBI_IS(mbi, r, r, PAGE_READWRITE | PAGE_GUARD, 2 * P, MEM_RESERVE, 0);
    commit(m, r, P, PAGE_READWRITE);
    cr_assert(!faults_write(r, 1), "the reserve protection leaked into the commit");
    hostmem_destroy(m);
}

/* ---- faults (death tests) -------------------------------------------------------- */
static volatile char sink;

Test(faults, reserved_page_read, .signal = SIGSEGV)
{
    hostmem_manager *m = mk(NULL);
    char *r = reserve(m, NULL, pg());
    sink = *(volatile char *)r;
}

Test(faults, reserved_page_write, .signal = SIGSEGV)
{
    hostmem_manager *m = mk(NULL);
    char *r = reserve(m, NULL, 4 * MiB);
    *(volatile char *)(r + 2 * MiB) = 1;
}

Test(faults, decommitted_page_read, .signal = SIGSEGV)
{
    hostmem_manager *m = mk(NULL);
    char *r = commit(m, NULL, 2 * pg(), PAGE_READWRITE);
    r[pg()] = 1;
    HR_OK(hostmem_virtual_free(m, r + pg(), pg(), MEM_DECOMMIT));
    sink = *(volatile char *)(r + pg());
}

Test(faults, released_small_region_read, .signal = SIGSEGV)
{
    hostmem_manager *m = mk(NULL);
    char *r = commit(m, NULL, pg(), PAGE_READWRITE);
    HR_OK(hostmem_virtual_free(m, r, 0, MEM_RELEASE));
    sink = *(volatile char *)r;
}

Test(faults, released_large_region_write, .signal = SIGSEGV)
{
    hostmem_manager *m = mk(NULL);
    char *r = commit(m, NULL, 4 * MiB, PAGE_READWRITE);
    HR_OK(hostmem_virtual_free(m, r, 0, MEM_RELEASE));
    *(volatile char *)(r + MiB) = 1;
}

Test(faults, guard_page_read, .signal = SIGSEGV)
{
    hostmem_manager *m = mk(NULL);
    char *r = commit(m, NULL, pg(), PAGE_READONLY | PAGE_GUARD);
    sink = *(volatile char *)r;
}

Test(faults, guard_page_write, .signal = SIGSEGV)
{
    hostmem_manager *m = mk(NULL);
    char *r = commit(m, NULL, pg(), PAGE_READWRITE);
    DWORD old;
    HR_OK(hostmem_virtual_protect(m, r, pg(), PAGE_READWRITE | PAGE_GUARD, &old));
    *(volatile char *)r = 1;
}

Test(faults, readonly_page_write, .signal = SIGSEGV)
{
    hostmem_manager *m = mk(NULL);
    char *r = commit(m, NULL, pg(), PAGE_READONLY);
    *(volatile char *)r = 1;
}

Test(faults, noaccess_page_read, .signal = SIGSEGV)
{
    hostmem_manager *m = mk(NULL);
    char *r = commit(m, NULL, pg(), PAGE_NOACCESS);
    sink = *(volatile char *)r;
}

Test(faults, whole_region_decommit_then_read, .signal = SIGSEGV)
{
    hostmem_manager *m = mk(NULL);
    char *r = commit(m, NULL, 3 * pg(), PAGE_READWRITE);
    HR_OK(hostmem_virtual_free(m, r, 0, MEM_DECOMMIT));
    sink = *(volatile char *)(r + 2 * pg());
}

/* The control: the same accesses on committed pages do not fault. */
Test(faults, committed_pages_do_not_fault)
{
    hostmem_manager *m = mk(NULL);
    char *r = commit(m, NULL, 2 * pg(), PAGE_READWRITE);
    *(volatile char *)r = 1;
    sink = *(volatile char *)(r + pg());
    hostmem_destroy(m);
}
