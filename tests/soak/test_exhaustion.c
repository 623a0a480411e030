/*
 * test_exhaustion.c: real resource exhaustion, not injected.  The kernel
 * itself refuses: the per-process map count (vm.max_map_count), the address
 * space limit (RLIMIT_AS) and the data limit (RLIMIT_DATA).  Each scenario
 * runs in a child forked by the test, so the limits and the thousands of
 * mappings die with it and never reach the Criterion runner.
 *
 * What every scenario proves: the failing call returns E_OUTOFMEMORY and
 * nothing else happens (no crash, *out_mem NULL, the pages keep their state,
 * the manager's totals are exact, /proc/self/maps did not grow), and the
 * manager works again once memory or the limit is given back.
 */
#include <criterion/criterion.h>

#include "soak_util.h"

#define CHILD_TIMEOUT_S 600 /* a hang detector; an honest run takes seconds */

static void run_in_child(int (*fn)(void *), const char *what)
{
    char why[256];
    int rc = child_run(fn, NULL, CHILD_TIMEOUT_S, why, sizeof why);
    cr_assert_eq(rc, 0, "%s: child failed: %s (its report is on stderr above)", what, why);
}

static MEMORY_BASIC_INFORMATION query(hostmem_manager *m, const void *a)
{
    MEMORY_BASIC_INFORMATION mbi;
    SIZE_T w = 0;
    memset(&mbi, 0xa5, sizeof mbi);
    CK_OK(hostmem_virtual_query(m, a, &mbi, sizeof mbi, &w));
    CK(w == sizeof mbi, "written %zu", (size_t)w);
    return mbi;
}

static void *alloc(hostmem_manager *m, void *addr, size_t size, DWORD type, DWORD prot, HRESULT *hr)
{
    void *p = (void *)0x1;
    *hr = hostmem_virtual_alloc(m, addr, size, type, prot, eTaskCritical, &p);
    if (FAILED(*hr))
        CK(p == NULL, "*out_mem %p after %s", p, hostmem_hresult_name(*hr));
    return p;
}

/* ---- 1a. vm.max_map_count ------------------------------------------------------- */

/*
 * Commit every other page of one big reservation, alternating READWRITE and
 * READONLY: each commit splits the inaccessible rest in two, so the process
 * gains two VMAs per commit until the kernel refuses the split (ENOMEM from
 * mprotect) at vm.max_map_count.
 */
static int child_map_count(void *arg)
{
    (void)arg;
    size_t P = pg();
    long long max = read_proc_number("/proc/sys/vm/max_map_count");
    CK(max > 0, "cannot read /proc/sys/vm/max_map_count");
    hostmem_manager *m = NULL;
    CK_OK(hostmem_create(NULL, &m));

    long start_lines = maps_lines();
    size_t pages = 2 * ((size_t)max + 4096);
    size_t size = pages * P;
    HRESULT hr;
    char *base = alloc(m, NULL, size, MEM_RESERVE, PAGE_READWRITE, &hr);
    CK_OK(hr);

    /* Once the count is near the limit, measure it before each call. */
    size_t n = 0;  /* commits that succeeded */
    size_t failed_at = (size_t)-1;
    long lines_before = -1, lines_after = -1;
    for (size_t i = 0; i < pages / 2; i++) {
        char *a = base + 2 * i * P;
        DWORD prot = (i & 1) ? PAGE_READONLY : PAGE_READWRITE;
        int near = start_lines + 2 * (long)n + 64 >= max;
        if (near)
            lines_before = maps_lines();
        void *got = alloc(m, a, P, MEM_COMMIT, prot, &hr);
        if (FAILED(hr)) {
            lines_after = maps_lines();
            CK_HR(hr, E_OUTOFMEMORY);
            failed_at = i;
            break;
        }
        CK(got == a, "commit returned %p, want %p", got, (void *)a);
        if (prot == PAGE_READWRITE && i % 256 == 0)
            *(size_t *)a = i; /* a tag, checked after the failure */
        n++;
    }
    CK(failed_at != (size_t)-1, "%zu checkerboard commits never hit vm.max_map_count = %lld", n, max);
    fprintf(stderr, "max_map_count %lld: commit %zu failed with E_OUTOFMEMORY (/proc/self/maps %ld lines)\n",
            max, n + 1, lines_after);

    char *bad = base + 2 * failed_at * P;
    /* The page that failed is still reserved; the one before keeps its protection. */
    MEMORY_BASIC_INFORMATION mbi = query(m, bad);
    CK(mbi.State == MEM_RESERVE && mbi.Protect == 0 && mbi.AllocationBase == base,
       "failed page: State 0x%x Protect 0x%x AllocationBase %p", (unsigned)mbi.State, (unsigned)mbi.Protect,
       mbi.AllocationBase);
    CK(mbi.RegionSize == size - 2 * failed_at * P, "reserved run after the failed page: %zu bytes, want %zu",
       (size_t)mbi.RegionSize, size - 2 * failed_at * P);
    if (failed_at > 0) {
        DWORD prev = ((failed_at - 1) & 1) ? PAGE_READONLY : PAGE_READWRITE;
        mbi = query(m, bad - 2 * P);
        CK(mbi.State == MEM_COMMIT && mbi.Protect == prev && mbi.RegionSize == P,
           "last committed page: State 0x%x Protect 0x%x RegionSize %zu", (unsigned)mbi.State,
           (unsigned)mbi.Protect, (size_t)mbi.RegionSize);
    }
    hostmem_stats s = stats_of(m);
    CK(s.committed_bytes == n * P, "committed_bytes %zu, want %zu commits * %zu", (size_t)s.committed_bytes, n, P);
    CK(s.reserved_bytes == size && s.region_count == 1, STATS_FMT, STATS_ARGS(s));
    if (lines_before >= 0 && lines_after == lines_before + 1) {
        /* The kernel's doing, not hostmem's: with one VMA to spare, mprotect
         * splits the inaccessible run at the page's start, then fails the
         * second split and returns ENOMEM without merging the first back.
         * The protections are unchanged on both sides of the leftover split. */
        uintptr_t s0, e0, s1, e1;
        char p0[5], p1[5];
        CK(maps_find((uintptr_t)bad, &s0, &e0, p0) == 0 && maps_find((uintptr_t)bad - 1, &s1, &e1, p1) == 0,
           "no VMA around the failed page");
        CK(s0 == (uintptr_t)bad && e1 == (uintptr_t)bad && !memcmp(p0, "---p", 4) && !memcmp(p1, "---p", 4),
           "the failed call left a new VMA that is not the kernel's split at the failed page: %#lx-%#lx %.4s, "
           "below %#lx-%#lx %.4s", (unsigned long)s0, (unsigned long)e0, p0, (unsigned long)s1, (unsigned long)e1, p1);
        fprintf(stderr, "note: the kernel left its first split of the refused mprotect behind (one VMA, no "
                        "protection changed)\n");
    } else {
        CK(lines_before < 0 || lines_after <= lines_before,
           "/proc/self/maps grew from %ld to %ld lines in the failed call", lines_before, lines_after);
    }
    for (size_t i = 0; i < n; i += 256)
        if (!(i & 1))
            CK(*(size_t *)(base + 2 * i * P) == i, "tag of page %zu lost", 2 * i);

    /* Still at the limit: the same commit fails again, changing nothing. */
    long again_before = maps_lines();
    alloc(m, bad, P, MEM_COMMIT, PAGE_READWRITE, &hr);
    CK_HR(hr, E_OUTOFMEMORY);
    CK(maps_lines() <= again_before, "/proc/self/maps grew in the repeated failed commit");
    hostmem_stats s2 = stats_of(m);
    CK(stats_same(&s, &s2), "stats moved: " STATS_FMT " -> " STATS_FMT, STATS_ARGS(s), STATS_ARGS(s2));

    /* Give some back: decommitting the last 8 committed pages merges their VMAs away. */
    CK(n > 16, "too few commits (%zu)", n);
    for (size_t k = 0; k < 8; k++)
        CK_OK(hostmem_virtual_free(m, base + 2 * (n - 1 - k) * P, P, MEM_DECOMMIT));
    s = stats_of(m);
    CK(s.committed_bytes == (n - 8) * P, "committed_bytes %zu after 8 decommits, want %zu",
       (size_t)s.committed_bytes, (n - 8) * P);
    mbi = query(m, base + 2 * (n - 8) * P);
    CK(mbi.State == MEM_RESERVE, "decommitted page State 0x%x", (unsigned)mbi.State);

    /* The manager works again: the page that failed commits now, zeroed and writable. */
    void *got = alloc(m, bad, P, MEM_COMMIT, PAGE_READWRITE, &hr);
    CK_OK(hr);
    CK(got == bad, "commit returned %p, want %p", got, (void *)bad);
    CK(all_zero(bad, P), "recovered page not zero");
    memset(bad, 0x5a, P);
    s = stats_of(m);
    CK(s.committed_bytes == (n - 7) * P, "committed_bytes %zu, want %zu", (size_t)s.committed_bytes, (n - 7) * P);

    /* Release the whole checkerboard: every VMA goes, the totals return to zero. */
    CK_OK(hostmem_virtual_free(m, base, 0, MEM_RELEASE));
    s = stats_of(m);
    CK(s.committed_bytes == 0 && s.reserved_bytes == 0 && s.region_count == 0, STATS_FMT, STATS_ARGS(s));
    long end_lines = maps_lines();
#ifdef SOAK_ASAN
    const long slack = 64; /* the sanitizer's allocator maps its own chunks meanwhile */
#else
    const long slack = 4;
#endif
    CK(end_lines <= start_lines + slack, "/proc/self/maps: %ld lines after release, %ld before the test", end_lines,
       start_lines);
    mbi = query(m, bad);
    CK(mbi.State == MEM_FREE, "released checkerboard State 0x%x", (unsigned)mbi.State);

    /* And a fresh reserve-and-commit works. */
    char *fresh = alloc(m, NULL, MiB, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE, &hr);
    CK_OK(hr);
    CK(all_zero(fresh, MiB), "fresh region not zero");
    memset(fresh, 1, MiB);
    CK_OK(hostmem_virtual_free(m, fresh, 0, MEM_RELEASE));
    hostmem_destroy(m);
    return 0;
}

Test(exhaustion, max_map_count_checkerboard, .timeout = 900)
{
    run_in_child(child_map_count, "max_map_count");
}

/* ---- 1b. RLIMIT_AS ---------------------------------------------------------------- */

static __attribute__((unused)) int child_rlimit_as(void *arg)
{
    (void)arg;
    hostmem_manager *m = NULL;
    CK_OK(hostmem_create(NULL, &m));
    HRESULT hr;
    /* A small region (carves the first arena) with data, and a big one to give back later. */
    char *small = alloc(m, NULL, 64 * KiB, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE, &hr);
    CK_OK(hr);
    memset(small, 0x3c, 64 * KiB);
    char *big = alloc(m, NULL, 256 * MiB, MEM_RESERVE, PAGE_READWRITE, &hr);
    CK_OK(hr);
    CK(alloc(m, big, MiB, MEM_COMMIT, PAGE_READWRITE, &hr) == big, "commit in big");
    CK_OK(hr);
    memset(big, 0x4d, MiB);
    uintptr_t spot = free_range(GiB, 16 * MiB); /* an explicit address that is free now */
    CK(spot, "no free GiB of address space");

    long long vmsize = status_bytes("VmSize");
    CK(vmsize > 0, "VmSize unreadable");
    struct rlimit old, lim;
    CK(getrlimit(RLIMIT_AS, &old) == 0, "getrlimit");
    lim = old;
    lim.rlim_cur = (rlim_t)vmsize + 64 * MiB;
    CK(setrlimit(RLIMIT_AS, &lim) == 0, "setrlimit(RLIMIT_AS): %s", strerror(errno));

    hostmem_stats s0 = stats_of(m);
    long lines0 = maps_lines();
    MEMORY_BASIC_INFORMATION q0 = query(m, big), q1 = query(m, big + MiB);

    /* Past the limit: reserve, reserve-and-commit, commit at NULL, reserve at an address. */
    alloc(m, NULL, GiB, MEM_RESERVE, PAGE_READWRITE, &hr);
    CK_HR(hr, E_OUTOFMEMORY);
    alloc(m, NULL, GiB, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE, &hr);
    CK_HR(hr, E_OUTOFMEMORY);
    alloc(m, NULL, 512 * MiB, MEM_COMMIT, PAGE_READWRITE, &hr);
    CK_HR(hr, E_OUTOFMEMORY);
    alloc(m, (void *)spot, GiB, MEM_RESERVE, PAGE_READWRITE, &hr);
    CK_HR(hr, E_OUTOFMEMORY);

    /* Nothing changed. */
    hostmem_stats s1 = stats_of(m);
    CK(stats_same(&s0, &s1), "stats moved: " STATS_FMT " -> " STATS_FMT, STATS_ARGS(s0), STATS_ARGS(s1));
    long lines1 = maps_lines();
    CK(lines1 == lines0, "/proc/self/maps %ld -> %ld lines", lines0, lines1);
    MEMORY_BASIC_INFORMATION r0 = query(m, big), r1 = query(m, big + MiB);
    CK(!memcmp(&q0, &r0, sizeof q0) && !memcmp(&q1, &r1, sizeof q1), "big region's query changed");
    MEMORY_BASIC_INFORMATION qs = query(m, (void *)spot);
    CK(qs.State == MEM_FREE, "the refused address is not free: State 0x%x", (unsigned)qs.State);
    for (size_t i = 0; i < 64 * KiB; i++)
        CK(small[i] == 0x3c, "small region byte %zu changed", i);
    for (size_t i = 0; i < MiB; i += 4096)
        CK(big[i] == 0x4d, "big region byte %zu changed", i);

    /* What fits still works: a small region from the arena already mapped. */
    char *s2 = alloc(m, NULL, 64 * KiB, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE, &hr);
    CK_OK(hr);
    CK(all_zero(s2, 64 * KiB), "small region not zero");
    CK_OK(hostmem_virtual_free(m, s2, 0, MEM_RELEASE));

    /* Memory given back: after releasing the big region a 192 MiB reserve fits. */
    CK_OK(hostmem_virtual_free(m, big, 0, MEM_RELEASE));
    char *mid = alloc(m, NULL, 192 * MiB, MEM_RESERVE, PAGE_READWRITE, &hr);
    CK_OK(hr);
    CK_OK(hostmem_virtual_free(m, mid, 0, MEM_RELEASE));

    /* Limit raised: the refused reservation succeeds, at the very address too. */
    CK(setrlimit(RLIMIT_AS, &old) == 0, "restore RLIMIT_AS: %s", strerror(errno));
    char *g = alloc(m, (void *)spot, GiB, MEM_RESERVE, PAGE_READWRITE, &hr);
    CK_OK(hr);
    CK(g == (char *)spot, "reserve at %p returned %p", (void *)spot, (void *)g);
    CK(alloc(m, g + 512 * MiB, MiB, MEM_COMMIT, PAGE_READWRITE, &hr) == g + 512 * MiB, "commit in the new GiB");
    CK(all_zero(g + 512 * MiB, MiB), "new commit not zero");
    memset(g + 512 * MiB, 7, MiB);
    CK_OK(hostmem_virtual_free(m, g, 0, MEM_RELEASE));
    CK_OK(hostmem_virtual_free(m, small, 0, MEM_RELEASE));
    hostmem_stats s3 = stats_of(m);
    CK(s3.reserved_bytes == 0 && s3.committed_bytes == 0 && s3.region_count == 0, STATS_FMT, STATS_ARGS(s3));
    hostmem_destroy(m);
    return 0;
}

Test(exhaustion, rlimit_as_reserve, .timeout = 300)
{
#ifdef SOAK_ASAN
    cr_skip_test("RLIMIT_AS cannot be tested under AddressSanitizer: its shadow memory alone reserves "
                 "terabytes of address space, so no limit just above current usage exists");
#else
    run_in_child(child_rlimit_as, "RLIMIT_AS");
#endif
}

/* ---- 1c. RLIMIT_DATA --------------------------------------------------------------- */

/*
 * RLIMIT_DATA counts private writable mappings.  A reservation (PROT_NONE)
 * is not counted; making its pages writable is, so the kernel refuses the
 * commit's mprotect with ENOMEM.  Read-only pages are not counted either, so
 * a READONLY commit passes and its protect to READWRITE is refused.
 */
static int child_rlimit_data(void *arg)
{
    (void)arg;
    size_t P = pg();
    hostmem_manager *m = NULL;
    CK_OK(hostmem_create(NULL, &m));
    HRESULT hr;
    char *r = alloc(m, NULL, 64 * MiB, MEM_RESERVE, PAGE_READWRITE, &hr);
    CK_OK(hr);
    /* Warm up: the bookkeeping of a commit and a decommit exists before the limit. */
    CK(alloc(m, r, MiB, MEM_COMMIT, PAGE_READWRITE, &hr) == r, "warm-up commit");
    memset(r, 1, MiB);
    CK_OK(hostmem_virtual_free(m, r, MiB, MEM_DECOMMIT));
    char *keep = alloc(m, NULL, 64 * KiB, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE, &hr);
    CK_OK(hr);
    memset(keep, 0x77, 64 * KiB);

    long long vmdata = status_bytes("VmData");
    CK(vmdata > 0, "VmData unreadable");
    struct rlimit old, lim;
    CK(getrlimit(RLIMIT_DATA, &old) == 0, "getrlimit");
    lim = old;
    lim.rlim_cur = (rlim_t)vmdata + 512 * KiB;
    CK(setrlimit(RLIMIT_DATA, &lim) == 0, "setrlimit(RLIMIT_DATA): %s", strerror(errno));

    hostmem_stats s0 = stats_of(m);
    long lines0 = maps_lines();

    /* A 32 MiB read-write commit: the mprotect is refused. */
    alloc(m, r, 32 * MiB, MEM_COMMIT, PAGE_READWRITE, &hr);
    CK_HR(hr, E_OUTOFMEMORY);
    MEMORY_BASIC_INFORMATION mbi = query(m, r);
    CK(mbi.State == MEM_RESERVE && mbi.Protect == 0 && mbi.RegionSize == 64 * MiB,
       "after the refused commit: State 0x%x Protect 0x%x RegionSize %zu", (unsigned)mbi.State,
       (unsigned)mbi.Protect, (size_t)mbi.RegionSize);
    mbi = query(m, r + 31 * MiB);
    CK(mbi.State == MEM_RESERVE, "last page of the refused range: State 0x%x", (unsigned)mbi.State);
    hostmem_stats s1 = stats_of(m);
    CK(stats_same(&s0, &s1), "stats moved: " STATS_FMT " -> " STATS_FMT, STATS_ARGS(s0), STATS_ARGS(s1));
    CK(maps_lines() == lines0, "/proc/self/maps changed in the refused commit");
    CK(faults(r, 0), "a page of the refused commit is accessible");

    /* Reserve-and-commit: refused, and the new region is gone again (direct and arena-carved). */
    alloc(m, NULL, 8 * MiB, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE, &hr);
    CK_HR(hr, E_OUTOFMEMORY);
    alloc(m, NULL, MiB, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE, &hr);
    CK_HR(hr, E_OUTOFMEMORY);
    s1 = stats_of(m);
    CK(stats_same(&s0, &s1), "stats moved: " STATS_FMT " -> " STATS_FMT, STATS_ARGS(s0), STATS_ARGS(s1));
    CK(maps_lines() == lines0, "/proc/self/maps changed in the refused reserve-and-commit");

    /* Read-only pages are not data: the commit passes, the protect to READWRITE is refused. */
    char *ro = r + 32 * MiB;
    CK(alloc(m, ro, 4 * MiB, MEM_COMMIT, PAGE_READONLY, &hr) == ro, "read-only commit: %s", hostmem_hresult_name(hr));
    CK(all_zero(ro, 4 * MiB), "read-only commit not zero");
    hostmem_stats s2 = stats_of(m);
    CK(s2.committed_bytes == s0.committed_bytes + 4 * MiB, "committed_bytes %zu", (size_t)s2.committed_bytes);
    DWORD oldp = 0xdead;
    CK_HR(hostmem_virtual_protect(m, ro, 4 * MiB, PAGE_READWRITE, &oldp), E_OUTOFMEMORY);
    mbi = query(m, ro);
    CK(mbi.State == MEM_COMMIT && mbi.Protect == PAGE_READONLY && mbi.RegionSize == 4 * MiB,
       "after the refused protect: State 0x%x Protect 0x%x RegionSize %zu", (unsigned)mbi.State,
       (unsigned)mbi.Protect, (size_t)mbi.RegionSize);
    CK(faults(ro, 1), "a page of the refused protect is writable");
    hostmem_stats s3 = stats_of(m);
    CK(stats_same(&s2, &s3), "stats moved in the refused protect");
    CK_OK(hostmem_virtual_free(m, ro, 4 * MiB, MEM_DECOMMIT));

    /* What fits in the margin still commits. */
    CK(alloc(m, r + 16 * P, 4 * P, MEM_COMMIT, PAGE_READWRITE, &hr) == r + 16 * P, "small commit: %s",
       hostmem_hresult_name(hr));
    memset(r + 16 * P, 9, 4 * P);
    CK_OK(hostmem_virtual_free(m, r + 16 * P, 4 * P, MEM_DECOMMIT));
    for (size_t i = 0; i < 64 * KiB; i++)
        CK((unsigned char)keep[i] == 0x77, "kept region byte %zu changed", i);

    /* Limit raised: the refused calls now succeed. */
    CK(setrlimit(RLIMIT_DATA, &old) == 0, "restore RLIMIT_DATA: %s", strerror(errno));
    CK(alloc(m, r, 32 * MiB, MEM_COMMIT, PAGE_READWRITE, &hr) == r, "commit after raise: %s",
       hostmem_hresult_name(hr));
    CK(all_zero(r, 32 * MiB), "commit after raise not zero");
    memset(r, 2, 32 * MiB);
    char *rc = alloc(m, NULL, 8 * MiB, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE, &hr);
    CK_OK(hr);
    memset(rc, 3, 8 * MiB);
    hostmem_stats s4 = stats_of(m);
    CK(s4.committed_bytes == s0.committed_bytes + 40 * MiB, "committed_bytes %zu, want %zu",
       (size_t)s4.committed_bytes, (size_t)s0.committed_bytes + 40 * MiB);
    CK_OK(hostmem_virtual_free(m, rc, 0, MEM_RELEASE));
    CK_OK(hostmem_virtual_free(m, r, 0, MEM_RELEASE));
    CK_OK(hostmem_virtual_free(m, keep, 0, MEM_RELEASE));
    s4 = stats_of(m);
    CK(s4.reserved_bytes == 0 && s4.committed_bytes == 0 && s4.region_count == 0, STATS_FMT, STATS_ARGS(s4));
    hostmem_destroy(m);
    return 0;
}

Test(exhaustion, rlimit_data_commit, .timeout = 300)
{
    run_in_child(child_rlimit_data, "RLIMIT_DATA");
}

/* ---- a refused call leaves the peaks alone ---------------------------------------- */

/*
 * "A failed call changes nothing" (hostmem.h) includes the peaks: a
 * reservation or commit the kernel refused was never reserved or committed.
 */
static int child_peaks(void *arg)
{
    (void)arg;
    hostmem_manager *m = NULL;
    CK_OK(hostmem_create(NULL, &m));
    HRESULT hr;
    char *r = alloc(m, NULL, 64 * MiB, MEM_RESERVE, PAGE_READWRITE, &hr);
    CK_OK(hr);
    CK(alloc(m, r, MiB, MEM_COMMIT, PAGE_READWRITE, &hr) == r, "commit");
    long long vmdata = status_bytes("VmData");
    struct rlimit old, lim;
    CK(getrlimit(RLIMIT_DATA, &old) == 0, "getrlimit");
    lim = old;
    lim.rlim_cur = (rlim_t)vmdata + 512 * KiB;
    CK(setrlimit(RLIMIT_DATA, &lim) == 0, "setrlimit(RLIMIT_DATA): %s", strerror(errno));
    hostmem_stats s0 = stats_of(m);
    alloc(m, r + MiB, 32 * MiB, MEM_COMMIT, PAGE_READWRITE, &hr);
    CK_HR(hr, E_OUTOFMEMORY);
    hostmem_stats s1 = stats_of(m);
    CK(s1.peak_committed_bytes == s0.peak_committed_bytes,
       "a refused 32 MiB commit moved peak_committed_bytes from %zu to %zu", (size_t)s0.peak_committed_bytes,
       (size_t)s1.peak_committed_bytes);
    CK(setrlimit(RLIMIT_DATA, &old) == 0, "restore");
#ifndef SOAK_ASAN
    CK(getrlimit(RLIMIT_AS, &old) == 0, "getrlimit");
    lim = old;
    lim.rlim_cur = (rlim_t)status_bytes("VmSize") + 64 * MiB;
    CK(setrlimit(RLIMIT_AS, &lim) == 0, "setrlimit(RLIMIT_AS): %s", strerror(errno));
    alloc(m, NULL, GiB, MEM_RESERVE, PAGE_READWRITE, &hr);
    CK_HR(hr, E_OUTOFMEMORY);
    hostmem_stats s2 = stats_of(m);
    CK(s2.peak_reserved_bytes == s0.peak_reserved_bytes,
       "a refused 1 GiB reserve moved peak_reserved_bytes from %zu to %zu", (size_t)s0.peak_reserved_bytes,
       (size_t)s2.peak_reserved_bytes);
    CK(setrlimit(RLIMIT_AS, &old) == 0, "restore");
#endif
    hostmem_destroy(m);
    return 0;
}

Test(exhaustion, refused_calls_leave_peaks)
{
    run_in_child(child_peaks, "peaks");
}
