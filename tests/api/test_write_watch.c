/*
 * W1: write watch, checked the way Windows behaves (the cases Wine's
 * conformance suite checks for GetWriteWatch / ResetWriteWatch, and the
 * Linux side of the same promises: writes by the kernel count, no write
 * faults, decommit keeps what was written).  Public header only.
 */
#include "util.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/resource.h>

#define RESET WRITE_WATCH_FLAG_RESET

static void ww_fini(void) { hm_leak_check(); }
TestSuite(w1_write_watch, .fini = ww_fini, .timeout = 60);

/* get_write_watch into `out` (64 entries), returning the count. */
static size_t ww(hostmem_manager *m, DWORD flags, void *base, size_t size, void **out, size_t max)
{
    ULONG_PTR count = max;
    DWORD gran = 0;
    HR_OK(hostmem_get_write_watch(m, flags, base, size, out, &count, &gran));
    cr_assert_eq(gran, (DWORD)pg(), "granularity %u", (unsigned)gran);
    cr_assert_leq(count, max);
    return count;
}

#define WW_IS(n_, got_, want_n, ...)                                                          \
    do {                                                                                      \
        void *want_[] = {__VA_ARGS__};                                                        \
        cr_assert_eq((n_), (size_t)(want_n), "count %zu, want %zu", (size_t)(n_), (size_t)(want_n)); \
        for (size_t i_ = 0; i_ < (size_t)(want_n); i_++)                                      \
            cr_assert_eq((got_)[i_], want_[i_], "result %zu: %p, want %p", i_, (got_)[i_], want_[i_]); \
    } while (0)

Test(w1_write_watch, pages_written_since_made_or_reset)
{
    size_t P = pg(), size = 16 * P;
    hostmem_manager *m = mk(NULL);
    char *base = alloc_ok(m, NULL, size, MEM_RESERVE | MEM_COMMIT | MEM_WRITE_WATCH, PAGE_READWRITE);
    MEMORY_BASIC_INFORMATION mbi = q(m, base);
    MBI_IS(mbi, base, base, PAGE_READWRITE, size, MEM_COMMIT, PAGE_READWRITE);
    void *res[64];
    size_t n = ww(m, 0, base, size, res, 64);
    cr_assert_eq(n, 0, "a new region has no written page");

    base[P + 1] = 0x44;
    n = ww(m, 0, base, size, res, 64);
    WW_IS(n, res, 1, base + P);
    n = ww(m, RESET, base, size, res, 64);
    WW_IS(n, res, 1, base + P);
    n = ww(m, 0, base, size, res, 64);
    cr_assert_eq(n, 0, "reset by the flag");

    base[2 * P + 3] = 0x11;
    base[4 * P + 8] = 0x11;
    n = ww(m, 0, base, size, res, 64);
    WW_IS(n, res, 2, base + 2 * P, base + 4 * P);
    n = ww(m, 0, base + 3 * P, 2 * P, res, 64);
    WW_IS(n, res, 1, base + 4 * P);

    HR_OK(hostmem_reset_write_watch(m, base, 3 * P));
    n = ww(m, 0, base, size, res, 64);
    WW_IS(n, res, 1, base + 4 * P);

    /* a write across a page boundary marks both pages */
    memcpy(base + 2 * P - 2, "\xef\xbe\xad\xde", 4);
    n = ww(m, 0, base, size, res, 64);
    WW_IS(n, res, 3, base + P, base + 2 * P, base + 4 * P);

    /* at most *count, and the reset flag resets only what was returned */
    n = ww(m, RESET, base, size, res, 1);
    WW_IS(n, res, 1, base + P);
    n = ww(m, 0, base, size, res, 64);
    WW_IS(n, res, 2, base + 2 * P, base + 4 * P);

    /* changing protections does not affect what was written */
    DWORD old = 0;
    HR_OK(hostmem_virtual_protect(m, base, 3 * P, PAGE_READONLY, &old));
    cr_assert_eq(old, PAGE_READWRITE);
    mbi = q(m, base);
    MBI_IS(mbi, base, base, PAGE_READWRITE, 3 * P, MEM_COMMIT, PAGE_READONLY);
    HR_OK(hostmem_virtual_protect(m, base, 3 * P, PAGE_READWRITE, &old));
    cr_assert_eq(old, PAGE_READONLY);
    n = ww(m, 0, base, size, res, 64);
    WW_IS(n, res, 2, base + 2 * P, base + 4 * P);
    mbi = q(m, base);
    MBI_IS(mbi, base, base, PAGE_READWRITE, size, MEM_COMMIT, PAGE_READWRITE);

    /* unaligned base and size: every page touched */
    n = ww(m, 0, base + 2 * P + 100, 2 * P, res, 64);
    WW_IS(n, res, 2, base + 2 * P, base + 4 * P);
    HR_OK(hostmem_virtual_free(m, base, 0, MEM_RELEASE));
    hostmem_destroy(m);
}

Test(w1_write_watch, writes_by_the_kernel_count)
{
    size_t P = pg(), size = 16 * P;
    hostmem_manager *m = mk(NULL);
    char *base = alloc_ok(m, NULL, size, MEM_RESERVE | MEM_COMMIT | MEM_WRITE_WATCH, PAGE_READWRITE);
    void *res[64];
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    cr_assert_eq(write(fds[1], "Hello World", 12), 12);
    /* read(2) copies into a write-protected page: the kernel resolves it, no EFAULT */
    cr_assert_eq(read(fds[0], base + 3 * P + 10, 12), 12);
    cr_assert_str_eq(base + 3 * P + 10, "Hello World");
    size_t n = ww(m, RESET, base, size, res, 64);
    WW_IS(n, res, 1, base + 3 * P);

    /* a file read of 2 pages + 3 bytes writes three pages */
    char path[] = "/tmp/hostmem-ww-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    unlink(path);
    char *buf = calloc(1, 2 * P + 3);
    memset(buf, 7, 2 * P + 3);
    cr_assert_eq(write(fd, buf, 2 * P + 3), (ssize_t)(2 * P + 3));
    free(buf);
    cr_assert_eq(pread(fd, base, size, 0), (ssize_t)(2 * P + 3));
    n = ww(m, RESET, base, size, res, 64);
    WW_IS(n, res, 3, base, base + P, base + 2 * P);
    /* a read that copies nothing writes nothing */
    cr_assert_eq(pread(fd, base, size, 2 * P + 3), 0);
    n = ww(m, RESET, base, size, res, 64);
    cr_assert_eq(n, 0);
    close(fd);
    close(fds[0]);
    close(fds[1]);
    hostmem_destroy(m);
}

static volatile sig_atomic_t ww_faults;
static void ww_count_fault(int sig)
{
    (void)sig;
    ww_faults++;
    signal(SIGSEGV, SIG_DFL); /* a second one ends the test */
}

Test(w1_write_watch, no_fault_on_the_hosts_writes)
{
    size_t P = pg(), size = 64 * P;
    hostmem_manager *m = mk(NULL);
    char *base = alloc_ok(m, NULL, size, MEM_RESERVE | MEM_COMMIT | MEM_WRITE_WATCH, PAGE_READWRITE);
    signal(SIGSEGV, ww_count_fault);
    void *res[64];
    for (int round = 0; round < 3; round++) {
        for (size_t i = 0; i < 64; i++)
            base[i * P + (size_t)round] = (char)i;
        cr_assert_eq(ww(m, RESET, base, size, res, 64), 64);
    }
    signal(SIGSEGV, SIG_DFL);
    cr_assert_eq(ww_faults, 0, "%d fault(s) on writes to watched pages", (int)ww_faults);
    hostmem_destroy(m);
}

Test(w1_write_watch, many_scattered_pages_in_address_order)
{
    /* More written runs than one kernel scan returns (256 ranges per call). */
    size_t P = pg(), pages = 16384, size = pages * P;
    hostmem_manager *m = mk(NULL);
    char *base = alloc_ok(m, NULL, size, MEM_RESERVE | MEM_COMMIT | MEM_WRITE_WATCH, PAGE_READWRITE);
    static void *res[1024];
    size_t want = 0;
    for (size_t i = 3; i < pages; i += 37, want++)
        base[i * P] = 1;
    size_t n = ww(m, 0, base, size, res, 1024);
    cr_assert_eq(n, want);
    for (size_t k = 0; k < n; k++)
        cr_assert_eq(res[k], base + (3 + 37 * k) * P);
    /* in slices of 7 with the reset flag: each page once, then nothing */
    size_t seen = 0;
    while ((n = ww(m, RESET, base, size, res, 7)) > 0) {
        for (size_t k = 0; k < n; k++)
            cr_assert_eq(res[k], base + (3 + 37 * (seen + k)) * P);
        seen += n;
    }
    cr_assert_eq(seen, want);
    hostmem_destroy(m);
}

Test(w1_write_watch, initial_protection_does_not_matter_and_decommit_keeps_writes)
{
    size_t P = pg(), size = 16 * P;
    hostmem_manager *m = mk(NULL);
    char *base = alloc_ok(m, NULL, size, MEM_RESERVE | MEM_WRITE_WATCH, PAGE_NOACCESS);
    cr_assert_eq(commit(m, base, size, PAGE_NOACCESS), base);
    void *res[64];
    cr_assert_eq(ww(m, 0, base, size, res, 64), 0);
    DWORD old = 0;
    HR_OK(hostmem_virtual_protect(m, base, 6 * P, PAGE_READWRITE, &old));
    cr_assert_eq(old, PAGE_NOACCESS);
    base[5 * P + 200] = 3;
    HR_OK(hostmem_virtual_protect(m, base, 6 * P, PAGE_NOACCESS, &old));
    cr_assert_eq(old, PAGE_READWRITE);
    size_t n = ww(m, 0, base, size, res, 64);
    WW_IS(n, res, 1, base + 5 * P);

    /* As on Windows, decommit does not forget a written page. */
    HR_OK(hostmem_virtual_free(m, base, size, MEM_DECOMMIT));
    n = ww(m, 0, base, size, res, 64);
    WW_IS(n, res, 1, base + 5 * P);
    /* recommitted it reads zero, and still counts as written until a reset */
    commit(m, base, size, PAGE_READWRITE);
    cr_assert_eq(base[5 * P + 200], 0);
    base[9 * P] = 1;
    n = ww(m, 0, base, size, res, 64);
    WW_IS(n, res, 2, base + 5 * P, base + 9 * P);
    n = ww(m, RESET, base, size, res, 64);
    WW_IS(n, res, 2, base + 5 * P, base + 9 * P);
    cr_assert_eq(ww(m, 0, base, size, res, 64), 0);
    /* decommitted pages are tracked again once recommitted */
    HR_OK(hostmem_virtual_free(m, base + 2 * P, 4 * P, MEM_DECOMMIT));
    commit(m, base + 2 * P, 4 * P, PAGE_READWRITE);
    base[3 * P] = 1;
    n = ww(m, 0, base, size, res, 64);
    WW_IS(n, res, 1, base + 3 * P);
    /* a decommitted written page is reset by reset_write_watch too */
    HR_OK(hostmem_virtual_free(m, base + 3 * P, P, MEM_DECOMMIT));
    HR_OK(hostmem_reset_write_watch(m, base, size));
    cr_assert_eq(ww(m, 0, base, size, res, 64), 0);
    /* and the query walk never shows the bookkeeping */
    MEMORY_BASIC_INFORMATION mbi = q(m, base);
    MBI_IS(mbi, base, base, PAGE_NOACCESS, 3 * P, MEM_COMMIT, PAGE_READWRITE);
    hostmem_destroy(m);
}

/* A decommit inside a watched region, around written pages: every range of
 * a 16-page region against every written page, on a new region each time
 * (its books as small as they start).  Remembering the written pages splits
 * runs of its own; the decommit must still find room for its own splits. */
Test(w1_write_watch, decommit_anywhere_around_written_pages)
{
    size_t P = pg(), size = 16 * P;
    hostmem_manager *m = mk(NULL);
    void *res[64];
    for (size_t first = 0; first < 16; first++)
        for (size_t count = 1; first + count <= 16; count++)
            for (size_t w = 0; w < 16; w++) {
                char *base = alloc_ok(m, NULL, size, MEM_RESERVE | MEM_COMMIT | MEM_WRITE_WATCH,
                                      PAGE_READWRITE);
                base[w * P] = 1;
                HR_OK(hostmem_virtual_free(m, base + first * P, count * P, MEM_DECOMMIT));
                size_t n = ww(m, 0, base, size, res, 64);
                WW_IS(n, res, 1, base + w * P);
                MEMORY_BASIC_INFORMATION mbi = q(m, base + first * P);
                cr_assert_eq(mbi.State, MEM_RESERVE, "[%zu,+%zu) written %zu", first, count, w);
                cr_assert_eq(mbi.RegionSize, count * P);
                HR_OK(hostmem_virtual_free(m, base, 0, MEM_RELEASE));
            }
    hostmem_destroy(m);
}

/* Whether the kernel has write watch is learned at first use: when no file
 * descriptor is left then, the call fails for that (P7), and the library
 * asks again once there are (not "not implemented" for good).  This test's
 * process makes its first hostmem call here. */
Test(w1_write_watch, first_use_without_descriptors_is_out_of_memory_then_works)
{
    struct rlimit old, low;
    cr_assert_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
    low = old;
    low.rlim_cur = 64;
    cr_assert_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
    int fds[64], n = 0;
    for (int fd; n < 64 && (fd = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0;)
        fds[n++] = fd;
    hostmem_manager *m;
    HRESULT hr = hostmem_create(NULL, &m);
    void *p = NULL;
    HRESULT ww_hr = SUCCEEDED(hr) ? hostmem_virtual_alloc(m, NULL, GRAN, MEM_RESERVE | MEM_WRITE_WATCH,
                                                           PAGE_READWRITE, eTaskCritical, &p)
                                  : hr;
    while (n > 0)
        close(fds[--n]);
    cr_assert_eq(setrlimit(RLIMIT_NOFILE, &old), 0);
    HR_OK(hr);
    HR_EQ(ww_hr, E_OUTOFMEMORY);
    cr_assert_null(p);
    char *w = alloc_ok(m, NULL, GRAN, MEM_RESERVE | MEM_COMMIT | MEM_WRITE_WATCH, PAGE_READWRITE);
    w[0] = 1;
    void *res[4];
    size_t got = ww(m, 0, w, GRAN, res, 4);
    WW_IS(got, res, 1, w);
    hostmem_destroy(m);
}

Test(w1_write_watch, reset_of_data_keeps_writes)
{
    size_t P = pg(), size = 16 * P;
    hostmem_manager *m = mk(NULL);
    char *base = alloc_ok(m, NULL, size, MEM_RESERVE | MEM_COMMIT | MEM_WRITE_WATCH, PAGE_READWRITE);
    void *res[64], *out = NULL;
    base[2 * P] = 1;
    HR_OK(hostmem_virtual_alloc(m, base, size, MEM_RESET, PAGE_READWRITE, eTaskCritical, &out));
    size_t n = ww(m, 0, base, size, res, 64);
    WW_IS(n, res, 1, base + 2 * P);
    hostmem_destroy(m);
}

/* This process's page tables, in bytes (VmPTE of /proc/self/status). */
static size_t page_table_bytes(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    cr_assert(f);
    char line[256];
    size_t kib = (size_t)-1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmPTE: %zu kB", &kib) == 1)
            break;
    fclose(f);
    cr_assert_neq(kib, (size_t)-1, "no VmPTE line");
    return kib * 1024;
}

/* The kernel's per-page record is kept for committed pages only: a large
 * write-watch reservation costs no page tables (protecting all of its pages
 * would take 8 bytes of page table per page, 128 MiB for these 64 GiB, and
 * seconds), and neither does a reset over all of it.  The few committed
 * pages are tracked as ever: a read is not a write, a recommit keeps what
 * was written. */
Test(w1_write_watch, a_large_reservation_costs_nothing_per_page_until_committed)
{
    size_t P = pg(), size = (size_t)64 << 30, limit = 8u << 20;
    hostmem_manager *m = mk(NULL);
    size_t before = page_table_bytes();
    char *base = alloc_ok(m, NULL, size, MEM_RESERVE | MEM_WRITE_WATCH, PAGE_READWRITE);
    cr_assert_lt(page_table_bytes() - before, limit, "page tables grew by %zu bytes",
                 page_table_bytes() - before);
    char *mid = base + size / 2;
    void *out = NULL, *res[8];
    HR_OK(hostmem_virtual_alloc(m, mid, 4 * P, MEM_COMMIT, PAGE_READWRITE, eTaskCritical, &out));
    cr_assert_eq(out, mid);
    cr_assert_eq(((volatile char *)mid)[0], 0, "a committed page reads zero");
    mid[2 * P] = 7;
    size_t n = ww(m, 0, base, size, res, 8);
    WW_IS(n, res, 1, mid + 2 * P);
    HR_OK(hostmem_virtual_alloc(m, mid, 4 * P, MEM_COMMIT, PAGE_READWRITE, eTaskCritical, &out));
    n = ww(m, 0, base, size, res, 8);
    WW_IS(n, res, 1, mid + 2 * P); /* a recommit is not a reset */
    HR_OK(hostmem_reset_write_watch(m, base, size));
    n = ww(m, 0, base, size, res, 8);
    cr_assert_eq(n, 0, "reset");
    mid[3 * P] = 1;
    n = ww(m, RESET, base, size, res, 8);
    WW_IS(n, res, 1, mid + 3 * P);
    cr_assert_lt(page_table_bytes() - before, limit, "page tables grew by %zu bytes",
                 page_table_bytes() - before);
    /* A decommit of all of it keeps what was written, and only that. */
    mid[P] = 1;
    HR_OK(hostmem_virtual_free(m, base, 0, MEM_DECOMMIT));
    n = ww(m, 0, base, size, res, 8);
    WW_IS(n, res, 1, mid + P);
    HR_OK(hostmem_virtual_free(m, base, 0, MEM_RELEASE));
    hostmem_destroy(m);
}

/* A decommit over committed and reserved pages reports afterwards the pages
 * written, not the reserved ones it covered. */
Test(w1_write_watch, decommit_over_reserved_pages_reports_only_writes)
{
    size_t P = pg(), size = 16 * P;
    hostmem_manager *m = mk(NULL);
    char *b = alloc_ok(m, NULL, size, MEM_RESERVE | MEM_WRITE_WATCH, PAGE_READWRITE);
    void *out = NULL, *res[16];
    HR_OK(hostmem_virtual_alloc(m, b, 4 * P, MEM_COMMIT, PAGE_READWRITE, eTaskCritical, &out));
    b[P] = 1;
    HR_OK(hostmem_virtual_free(m, b, 8 * P, MEM_DECOMMIT));
    size_t n = ww(m, 0, b, size, res, 16);
    WW_IS(n, res, 1, b + P);
    HR_OK(hostmem_virtual_alloc(m, b, size, MEM_COMMIT, PAGE_READWRITE, eTaskCritical, &out));
    n = ww(m, 0, b, size, res, 16);
    WW_IS(n, res, 1, b + P);
    HR_OK(hostmem_virtual_free(m, b, 0, MEM_DECOMMIT));
    n = ww(m, RESET, b, size, res, 16);
    WW_IS(n, res, 1, b + P);
    n = ww(m, 0, b, size, res, 16);
    cr_assert_eq(n, 0);
    hostmem_destroy(m);
}

Test(w1_write_watch, invalid_parameters)
{
    size_t P = pg(), size = 16 * P;
    hostmem_manager *m = mk(NULL);
    char *base = alloc_ok(m, NULL, size, MEM_RESERVE | MEM_COMMIT | MEM_WRITE_WATCH, PAGE_READWRITE);
    char *plain = alloc_ok(m, NULL, size, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE);
    char *foreign = foreign_map(P, PROT_READ | PROT_WRITE);
    void *res[64];
    ULONG_PTR count = 64;
    DWORD gran = 0;
    base[0] = 1;
    hostmem_stats before = st(m);
#define GWW(flags, b, s, r, c, g) hostmem_get_write_watch(m, flags, b, s, r, c, g)
    HR_EQ(GWW(0, NULL, size, res, &count, &gran), E_INVALIDARG);
    HR_EQ(GWW(0, foreign, P, res, &count, &gran), E_INVALIDARG);
    HR_EQ(GWW(0, plain, size, res, &count, &gran), E_INVALIDARG);
    count = 0;
    HR_EQ(GWW(0, base, size, res, &count, &gran), E_INVALIDARG);
    HR_EQ(GWW(0, base, size, NULL, &count, &gran), E_INVALIDARG);
    count = 64;
    HR_EQ(GWW(0, base, size, res, NULL, &gran), E_POINTER);
    HR_EQ(GWW(0, base, size, res, &count, NULL), E_POINTER);
    HR_EQ(GWW(0, base, size, NULL, &count, &gran), E_POINTER);
    HR_EQ(GWW(0xdeadbeef, base, size, res, &count, &gran), E_INVALIDARG);
    HR_EQ(GWW(2, base, size, res, &count, &gran), E_INVALIDARG);
    HR_EQ(GWW(0, base, 0, res, &count, &gran), E_INVALIDARG);
    HR_EQ(GWW(0, base, size * 2, res, &count, &gran), E_INVALIDARG);
    HR_EQ(GWW(0, base + size - P, P + 1, res, &count, &gran), E_INVALIDARG);
    HR_EQ(GWW(0, (void *)(USER_END - P), 2 * P, res, &count, &gran), E_INVALIDARG);
    HR_EQ(hostmem_get_write_watch(NULL, 0, base, size, res, &count, &gran), E_POINTER);
    cr_assert_eq(count, 64, "a failed call leaves *count alone");
    HR_EQ(hostmem_reset_write_watch(m, base, 0), E_INVALIDARG);
    HR_EQ(hostmem_reset_write_watch(m, foreign, P), E_INVALIDARG);
    HR_EQ(hostmem_reset_write_watch(m, plain, P), E_INVALIDARG);
    HR_EQ(hostmem_reset_write_watch(m, base, size + P), E_INVALIDARG);
    HR_EQ(hostmem_reset_write_watch(NULL, base, size), E_POINTER);
#undef GWW
    /* none of them reset anything */
    size_t n = ww(m, 0, base, size, res, 64);
    WW_IS(n, res, 1, base);
    hostmem_stats after = st(m);
    stats_eq(&before, &after);

    /* MEM_WRITE_WATCH needs MEM_RESERVE */
    HR_EQ(alloc_fail(m, NULL, size, MEM_WRITE_WATCH, PAGE_READWRITE, eTaskCritical), E_INVALIDARG);
    HR_EQ(alloc_fail(m, NULL, size, MEM_COMMIT | MEM_WRITE_WATCH, PAGE_READWRITE, eTaskCritical), E_INVALIDARG);
    HR_EQ(alloc_fail(m, base, P, MEM_COMMIT | MEM_WRITE_WATCH, PAGE_READWRITE, eTaskCritical), E_INVALIDARG);
    munmap(foreign, P);
    hostmem_destroy(m);
}

Test(w1_write_watch, release_stats_and_reuse)
{
    size_t P = pg();
    hostmem_manager *m = mk(NULL);
    void *w = alloc_ok(m, NULL, GRAN, MEM_RESERVE | MEM_WRITE_WATCH, PAGE_READWRITE);
    MEMORY_BASIC_INFORMATION mbi = q(m, w);
    MBI_IS(mbi, w, w, PAGE_READWRITE, GRAN, MEM_RESERVE, 0);
    cr_assert_eq(st(m).watched_bytes, GRAN);
    HR_OK(hostmem_virtual_free(m, w, 0, MEM_RELEASE));
    /* small (arena) and large (own mapping) regions */
    char *a = alloc_ok(m, NULL, 16 * P, MEM_RESERVE | MEM_COMMIT | MEM_WRITE_WATCH, PAGE_READWRITE);
    char *b = alloc_ok(m, NULL, 4 * MiB, MEM_RESERVE | MEM_WRITE_WATCH, PAGE_READWRITE);
    cr_assert_eq(st(m).watched_bytes, 16 * P + 4 * MiB);
    a[0] = 1;
    HR_OK(hostmem_virtual_free(m, a, 0, MEM_RELEASE));
    cr_assert_eq(st(m).watched_bytes, 4 * MiB);
    void *res[4];
    ULONG_PTR count = 4;
    DWORD gran;
    HR_EQ(hostmem_get_write_watch(m, 0, a, P, res, &count, &gran), E_INVALIDARG);
    /* the space reused by a plain region: not watched, fully writable */
    char *c = alloc_ok(m, a, 16 * P, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE);
    cr_assert_eq(c, a);
    memset(c, 5, 16 * P);
    HR_EQ(hostmem_get_write_watch(m, 0, c, P, res, &count, &gran), E_INVALIDARG);
    /* and by a watched one again: starts clean */
    HR_OK(hostmem_virtual_free(m, c, 0, MEM_RELEASE));
    char *d = alloc_ok(m, a, 16 * P, MEM_RESERVE | MEM_COMMIT | MEM_WRITE_WATCH, PAGE_READWRITE);
    cr_assert_eq(ww(m, 0, d, 16 * P, res, 4), 0);
    HR_OK(hostmem_virtual_free(m, b, 0, MEM_RELEASE));
    HR_OK(hostmem_virtual_free(m, d, 0, MEM_RELEASE));
    cr_assert_eq(st(m).watched_bytes, 0);
    hostmem_destroy(m);
}

/* ---- threads: every write is seen by some read ----------------------------------- */
typedef struct ww_writer {
    char *base;
    size_t first, pages, P;
    atomic_int *stop;
} ww_writer;

static void *ww_write_loop(void *arg)
{
    ww_writer *w = arg;
    for (size_t i = 0; i < w->pages; i++)
        ((volatile char *)w->base)[(w->first + i) * w->P] = 1;
    return NULL;
}

Test(w1_write_watch, concurrent_writers_every_page_reported_once_reset)
{
    size_t P = pg(), pages = 2048, size = pages * P;
    hostmem_manager *m = mk(NULL);
    char *base = alloc_ok(m, NULL, size, MEM_RESERVE | MEM_COMMIT | MEM_WRITE_WATCH, PAGE_READWRITE);
    unsigned char *seen = calloc(pages, 1);
    pthread_t t[4];
    ww_writer w[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (ww_writer){.base = base, .first = (size_t)i * (pages / 4), .pages = pages / 4, .P = P};
        pthread_create(&t[i], NULL, ww_write_loop, &w[i]);
    }
    static void *res[256];
    for (int rounds = 0; rounds < 4; rounds++) {
        size_t n = ww(m, RESET, base, size, res, 256);
        for (size_t k = 0; k < n; k++)
            seen[((char *)res[k] - base) / P] = 1;
    }
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    size_t n;
    while ((n = ww(m, RESET, base, size, res, 256)) > 0)
        for (size_t k = 0; k < n; k++)
            seen[((char *)res[k] - base) / P] = 1;
    for (size_t i = 0; i < pages; i++)
        cr_assert(seen[i], "page %zu was written and never reported", i);
    free(seen);
    hostmem_destroy(m);
}
