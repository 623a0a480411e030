/*
 * test_os_errors.c: what the kernel refuses, seen from outside the library.
 * Faults come from libhostmem-inject.so (preloaded, inject.h) or from real
 * limits (RLIMIT_NOFILE, RLIMIT_AS, mlock); the library runs as a host links
 * it (the shared library, no test seam).  Public header only.
 *
 * Each test is the regression test of one defect:
 *   query_*            the kernel's answer cannot be read: the call fails, it
 *                      never reports MEM_FREE for it (S9); a transient
 *                      PROCMAP_QUERY error does not give up the ioctl for good
 *   exhausted_*        EMFILE / ENFILE / ENOMEM / EAGAIN are E_OUTOFMEMORY and the
 *                      manager stays available (P7)
 *   small_reserve_*    a small reservation never fails where a mapping of its own
 *                      size would succeed (P7, S3): the arena is an optimisation
 *   reset_*            a failed MEM_RESET zeroes nothing MEM_RESET_UNDO then calls
 *                      intact (S10, P7)
 */
#define _GNU_SOURCE 1
#include <criterion/criterion.h>

#include <sys/stat.h>

#include "../soak/soak_util.h"
#include "inject.h"

static const hminj_api *J;

static void setup(void)
{
    J = hminj_get();
    cr_assert_not_null(J, "libhostmem-inject.so is not preloaded (LD_PRELOAD)");
    J->clear();
}

static void teardown(void)
{
    if (J)
        J->clear();
}

TestSuite(os_errors, .init = setup, .fini = teardown, .timeout = 120);

#define HR_EQ(expr, want)                                                                         \
    do {                                                                                          \
        HRESULT hr_got_ = (expr), hr_want_ = (want);                                              \
        cr_assert_eq(hr_got_, hr_want_, "%s\n  got  %s (0x%08" PRIx32 ")\n  want %s (0x%08" PRIx32 ")", \
                     #expr, hostmem_hresult_name(hr_got_), (uint32_t)hr_got_,                     \
                     hostmem_hresult_name(hr_want_), (uint32_t)hr_want_);                         \
    } while (0)
#define HR_OK(expr) HR_EQ(expr, S_OK)

static hostmem_manager *mk(void)
{
    hostmem_manager *m = NULL;
    HR_OK(hostmem_create(NULL, &m));
    return m;
}

static int some_static_variable = 42;

static HRESULT query(hostmem_manager *m, const void *addr, MEMORY_BASIC_INFORMATION *mbi)
{
    SIZE_T w = 0;
    memset(mbi, 0, sizeof *mbi);
    return hostmem_virtual_query(m, addr, mbi, sizeof *mbi, &w);
}

/* A query of this program's data, which is mapped: never MEM_FREE. */
static void query_mapped_ok(hostmem_manager *m)
{
    MEMORY_BASIC_INFORMATION mbi;
    HR_OK(query(m, &some_static_variable, &mbi));
    cr_assert_eq(mbi.State, MEM_COMMIT, "a static variable queries as state 0x%x", (unsigned)mbi.State);
    cr_assert_eq(mbi.Type, MEM_IMAGE);
}

/* A kernel before 6.11: every PROCMAP_QUERY answers ENOTTY. */
static void old_kernel(void)
{
    static const int enotty = ENOTTY;
    J->fail_rate(HMINJ_IOCTL, 1000000, &enotty, 1, HMINJ_FAIL);
}

/* S9: with the ioctl gone (a kernel before 6.11 answers ENOTTY), the answer
 * comes from /proc/self/maps; a read() of it that fails is not the end of the
 * file, whatever the errno. */
static void query_read_fails(int err, HRESULT want)
{
    hostmem_manager *m = mk();
    old_kernel();
    query_mapped_ok(m); /* from the maps file now */
    cr_assert_geq(J->injected(HMINJ_IOCTL), 1, "the query did not try PROCMAP_QUERY first");
    long reads = J->reached(HMINJ_READ);
    J->only_path("/proc/self/maps");
    for (long nth = 1; nth <= 3; nth++) {
        J->fail_nth(HMINJ_READ, nth, err, HMINJ_FAIL);
        MEMORY_BASIC_INFORMATION mbi;
        HRESULT hr = query(m, &some_static_variable, &mbi);
        if (J->injected(HMINJ_READ) < nth)
            break; /* the answer came from fewer reads */
        cr_assert_eq(hr, want, "read %ld of /proc/self/maps failed with errno %d: %s (state 0x%x, size 0x%zx), want %s",
                     nth, err, hostmem_hresult_name(hr), (unsigned)mbi.State, (size_t)mbi.RegionSize,
                     hostmem_hresult_name(want));
    }
    cr_assert_gt(J->reached(HMINJ_READ), reads);
    J->clear();
    query_mapped_ok(m); /* and the manager still answers */
    hostmem_destroy(m);
}

Test(os_errors, query_read_enomem_fails) { query_read_fails(ENOMEM, E_OUTOFMEMORY); }
Test(os_errors, query_read_eagain_fails) { query_read_fails(EAGAIN, E_OUTOFMEMORY); }
Test(os_errors, query_read_eio_fails) { query_read_fails(EIO, E_OUTOFMEMORY); }
Test(os_errors, query_read_eintr_is_retried)
{
    hostmem_manager *m = mk();
    old_kernel();
    query_mapped_ok(m);
    J->only_path("/proc/self/maps");
    J->fail_nth(HMINJ_READ, 1, EINTR, HMINJ_FAIL);
    query_mapped_ok(m);
    cr_assert_eq(J->injected(HMINJ_READ), 1);
    hostmem_destroy(m);
}

/* S9: a PROCMAP_QUERY that fails once for a reason other than "no such
 * ioctl" is answered from the file for that call only; the next query uses
 * the ioctl again. */
Test(os_errors, query_transient_ioctl_error_keeps_the_ioctl)
{
    static const int errs[] = {EINVAL, EOPNOTSUPP, EINTR};
    hostmem_manager *m = mk();
    query_mapped_ok(m);
    if (J->reached(HMINJ_IOCTL) == 0)
        cr_skip_test("this kernel has no PROCMAP_QUERY");
    for (size_t i = 0; i < sizeof errs / sizeof *errs; i++) {
        J->fail_nth(HMINJ_IOCTL, 1, errs[i], HMINJ_FAIL);
        query_mapped_ok(m);
        cr_assert_eq(J->injected(HMINJ_IOCTL), (long)i + 1);
        long ioctls = J->reached(HMINJ_IOCTL), reads = J->reached(HMINJ_READ);
        query_mapped_ok(m);
        cr_assert_gt(J->reached(HMINJ_IOCTL), ioctls, "after one ioctl failing with errno %d the ioctl is never used again",
                     errs[i]);
        cr_assert_eq(J->reached(HMINJ_READ), reads, "after one ioctl failing with errno %d queries read /proc/self/maps",
                     errs[i]);
    }
    hostmem_destroy(m);
}

/* S9 / P7: the ioctl itself failing for want of memory fails the query. */
Test(os_errors, query_ioctl_enomem_fails)
{
    hostmem_manager *m = mk();
    query_mapped_ok(m);
    if (J->reached(HMINJ_IOCTL) == 0)
        cr_skip_test("this kernel has no PROCMAP_QUERY");
    J->fail_nth(HMINJ_IOCTL, 1, ENOMEM, HMINJ_FAIL);
    MEMORY_BASIC_INFORMATION mbi;
    HR_EQ(query(m, &some_static_variable, &mbi), E_OUTOFMEMORY);
    query_mapped_ok(m);
    hostmem_destroy(m);
}

/* P7: a process out of file descriptors (RLIMIT_NOFILE) gets E_OUTOFMEMORY
 * for the calls that open a /proc file, and the manager stays available. */
static int exhausted_nofile_child(void *arg)
{
    (void)arg;
    hostmem_manager *m = NULL;
    CK_OK(hostmem_create(NULL, &m));
    struct rlimit rl;
    CK(getrlimit(RLIMIT_NOFILE, &rl) == 0, "getrlimit");
    rl.rlim_cur = 64;
    CK(setrlimit(RLIMIT_NOFILE, &rl) == 0, "setrlimit");
    int fds[64], n = 0;
    while (n < 64 && (fds[n] = dup(0)) >= 0)
        n++;
    CK(n < 64 && errno == EMFILE, "could not exhaust the descriptors");
    MEMORY_BASIC_INFORMATION mbi;
    SIZE_T w;
    DWORD load;
    SIZE_T avail;
    CK_HR(hostmem_virtual_query(m, &some_static_variable, &mbi, sizeof mbi, &w), E_OUTOFMEMORY);
    CK_HR(hostmem_get_memory_load(m, &load, &avail), E_OUTOFMEMORY);
    while (n > 0)
        close(fds[--n]);
    CK_OK(hostmem_virtual_query(m, &some_static_variable, &mbi, sizeof mbi, &w));
    CK(mbi.State == MEM_COMMIT, "state 0x%x", (unsigned)mbi.State);
    CK_OK(hostmem_get_memory_load(m, &load, &avail));
    void *p;
    CK_OK(hostmem_virtual_alloc(m, NULL, 65536, MEM_COMMIT, PAGE_READWRITE, eTaskCritical, &p));
    hostmem_destroy(m);
    return 0;
}

Test(os_errors, exhausted_nofile_is_out_of_memory)
{
    char why[128];
    cr_assert_eq(child_run(exhausted_nofile_child, NULL, 60, why, sizeof why), 0, "child: %s", why);
}

/* P7: every errno of exhausted resources is E_OUTOFMEMORY, for each call that
 * opens or reads a /proc file, and nothing becomes unavailable. */
Test(os_errors, exhausted_open_and_read)
{
    static const int errs[] = {EMFILE, ENFILE, ENOMEM, EAGAIN};
    for (size_t i = 0; i < sizeof errs / sizeof *errs; i++) {
        hostmem_manager *m = mk(); /* a fresh manager: the first query opens the maps file */
        DWORD load;
        SIZE_T avail;
        MEMORY_BASIC_INFORMATION mbi;
        J->fail_nth(HMINJ_OPEN, 1, errs[i], HMINJ_FAIL);
        HR_EQ(hostmem_get_memory_load(m, &load, &avail), E_OUTOFMEMORY);
        cr_assert_eq(J->injected(HMINJ_OPEN), (long)i + 1, "get_memory_load opened no file");
        J->only_path("/proc/meminfo");
        J->fail_nth(HMINJ_READ, 1, errs[i] == EMFILE || errs[i] == ENFILE ? EAGAIN : errs[i], HMINJ_FAIL);
        HR_EQ(hostmem_get_memory_load(m, &load, &avail), E_OUTOFMEMORY);
        J->clear();
        HR_OK(hostmem_get_memory_load(m, &load, &avail));
        HR_OK(query(m, &some_static_variable, &mbi));
        hostmem_destroy(m);
    }
}

/* S9: /proc/self/maps may hold a line longer than any fixed buffer (a file
 * whose path is near PATH_MAX); the lines after it are still read. */
Test(os_errors, query_maps_file_after_an_overlong_line)
{
    char dir[] = "/tmp/hostmem-longpath-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char path[4096];
    size_t len = (size_t)snprintf(path, sizeof path, "%s", dir);
    char comp[201];
    memset(comp, 'd', 200);
    comp[200] = 0;
    int depth = 0;
    while (len + 1 + 200 + 1 + 40 < sizeof path) {
        len += (size_t)snprintf(path + len, sizeof path - len, "/%s", comp);
        cr_assert_eq(mkdir(path, 0700), 0, "mkdir: %s", strerror(errno));
        depth++;
    }
    size_t pad = sizeof path - 1 - len - 1; /* the file name fills the path to PATH_MAX - 1 */
    path[len++] = '/';
    memset(path + len, 'f', pad > 250 ? 250 : pad);
    len += pad > 250 ? 250 : pad;
    path[len] = 0;
    int fd = open(path, O_RDWR | O_CREAT, 0600);
    cr_assert_geq(fd, 0, "open (%zu chars): %s", len, strerror(errno));
    cr_assert_eq(ftruncate(fd, 4096), 0);
    void *file = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, fd, 0);
    cr_assert_neq(file, MAP_FAILED);
    close(fd);
    int local = 1;
    hostmem_manager *m = mk();
    old_kernel(); /* the maps file from now on */
    MEMORY_BASIC_INFORMATION mbi;
    HR_OK(query(m, &local, &mbi));
    cr_assert_eq(mbi.State, MEM_COMMIT, "the stack (after a %zu-char path in the maps file) queries as state 0x%x", len,
                 (unsigned)mbi.State);
    HR_OK(query(m, file, &mbi));
    cr_assert_eq(mbi.State, MEM_COMMIT);
    cr_assert_eq(mbi.Type, MEM_MAPPED);
    hostmem_destroy(m);
    munmap(file, 4096);
    unlink(path);
    for (; depth >= 0; depth--) {
        char *slash = strrchr(path, '/');
        *slash = 0;
        rmdir(path);
    }
}

/* ---- P7, S3: the arena is an optimisation ------------------------------------------ */

/* RLIMIT_AS just above what the process uses: the 32 MiB arena cannot be
 * mapped, a 64 KiB region can.  `slack` is the room left above VmSize. */
static SOAK_UNUSED int small_reserve_child(void *arg)
{
    size_t slack = (size_t)(uintptr_t)arg;
    hostmem_manager *m = NULL;
    CK_OK(hostmem_create(NULL, &m));
    /* Warm up: the bookkeeping of one region exists before the limit. */
    void *w;
    CK_OK(hostmem_virtual_alloc(m, NULL, 2 * MiB, MEM_RESERVE, PAGE_READWRITE, eTaskCritical, &w));
    CK_OK(hostmem_virtual_free(m, w, 0, MEM_RELEASE));
    long long vm = status_bytes("VmSize");
    CK(vm > 0, "VmSize unreadable");
    struct rlimit lim;
    CK(getrlimit(RLIMIT_AS, &lim) == 0, "getrlimit");
    lim.rlim_cur = (rlim_t)vm + slack;
    CK(setrlimit(RLIMIT_AS, &lim) == 0, "setrlimit(RLIMIT_AS): %s", strerror(errno));
    /* The premise: a mapping of 64 KiB fits, 32 MiB does not. */
    void *probe = mmap(NULL, 64 * KiB, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CK(probe != MAP_FAILED, "a 64 KiB mmap fails under the limit");
    munmap(probe, 64 * KiB);
    probe = mmap(NULL, 32 * MiB, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CK(probe == MAP_FAILED, "a 32 MiB mmap fits under the limit");
    char *p = NULL;
    CK_OK(hostmem_virtual_alloc(m, NULL, 64 * KiB, MEM_RESERVE, PAGE_READWRITE, eTaskCritical, (void **)&p));
    CK(((uintptr_t)p & (GRAN - 1)) == 0, "base %p not 64 KiB-aligned", (void *)p);
    MEMORY_BASIC_INFORMATION mbi;
    SIZE_T n;
    CK_OK(hostmem_virtual_query(m, p, &mbi, sizeof mbi, &n));
    CK(mbi.State == MEM_RESERVE && mbi.AllocationBase == p && mbi.RegionSize == 64 * KiB,
       "state 0x%x base %p size %zu", (unsigned)mbi.State, mbi.AllocationBase, (size_t)mbi.RegionSize);
    void *c;
    CK_OK(hostmem_virtual_alloc(m, p, 64 * KiB, MEM_COMMIT, PAGE_READWRITE, eTaskCritical, &c));
    memset(p, 0x5a, 64 * KiB);
    hostmem_stats s = stats_of(m);
    CK(s.reserved_bytes == 64 * KiB && s.committed_bytes == 64 * KiB && s.region_count == 1, "stats");
    CK_OK(hostmem_virtual_free(m, p, 0, MEM_RELEASE));
    uintptr_t st, en;
    char perms[5];
    CK(maps_find((uintptr_t)p, &st, &en, perms) != 0, "the released region is still mapped");
    hostmem_destroy(m);
    return 0;
}

Test(os_errors, small_reserve_without_room_for_an_arena)
{
#ifdef SOAK_ASAN
    cr_skip_test("RLIMIT_AS cannot be tested under AddressSanitizer (its shadow reserves terabytes)");
#else
    char why[128];
    cr_assert_eq(child_run(small_reserve_child, (void *)(uintptr_t)(4 * MiB), 60, why, sizeof why), 0,
                 "4 MiB above VmSize: %s", why);
#endif
}

/* Room for the region alone, not for the slack an aligned over-reservation
 * takes (64 KiB + 60 KiB). */
Test(os_errors, small_reserve_with_room_for_itself_only)
{
#ifdef SOAK_ASAN
    cr_skip_test("RLIMIT_AS cannot be tested under AddressSanitizer (its shadow reserves terabytes)");
#else
    char why[128];
    cr_assert_eq(child_run(small_reserve_child, (void *)(uintptr_t)(64 * KiB + 16 * KiB), 60, why, sizeof why), 0,
                 "80 KiB above VmSize: %s", why);
#endif
}

/* The exact mapping (of a region too big for an arena) lands in a hole just
 * its size, unaligned, whose aligned
 * neighbours both overlap a mapping (the one above it, where the kernel put
 * it, and one the test puts just below): the reserve still finds an aligned
 * place further out.  The kernel's choice is learnt first (a probe of the
 * same size lands where the library's will) and the over-reservation is
 * failed by the injector, so the exact path runs every time. */
static SOAK_UNUSED int exact_in_a_hole_child(void *arg)
{
    (void)arg;
    /* Above what an arena takes (a mapping of its own), below 2 MiB (which the
     * kernel may align to a huge page by itself). */
    const size_t S = 1 * MiB + 64 * KiB;
    hostmem_manager *m = NULL;
    CK_OK(hostmem_create(NULL, &m));
    void *w; /* warm up: the bookkeeping of a region exists before the probe */
    CK_OK(hostmem_virtual_alloc(m, NULL, 2 * MiB, MEM_RESERVE, PAGE_READWRITE, eTaskCritical, &w));
    CK_OK(hostmem_virtual_free(m, w, 0, MEM_RELEASE));
    uintptr_t q = 0;
    void *spacers[16];
    int nspacers = 0;
    for (;;) {
        void *probe = mmap(NULL, S, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        CK(probe != MAP_FAILED, "mmap");
        munmap(probe, S);
        q = (uintptr_t)probe;
        if (q & (GRAN - 1))
            break;
        /* aligned: shift the next one down a page */
        CK(nspacers < 16, "the kernel keeps placing 64 KiB aligned");
        spacers[nspacers] = mmap((void *)(q + S - 4 * KiB), 4 * KiB, PROT_NONE,
                                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
        CK(spacers[nspacers] != MAP_FAILED, "spacer: %s", strerror(errno));
        nspacers++;
    }
    uintptr_t down = q & ~(uintptr_t)(GRAN - 1);
    void *below = mmap((void *)down, q - down, PROT_NONE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    /* (EEXIST: something is mapped there already, which is as good) */
    CK(below == (void *)down || errno == EEXIST, "the mapping below the hole: %s", strerror(errno));
    long before = J->reached(HMINJ_MMAP);
    J->fail_nth(HMINJ_MMAP, 1, ENOMEM, HMINJ_FAIL); /* no room for the slack */
    char *p = NULL;
    CK_OK(hostmem_virtual_alloc(m, NULL, S, MEM_RESERVE, PAGE_READWRITE, eTaskCritical, (void **)&p));
    long calls = J->reached(HMINJ_MMAP) - before;
    CK(((uintptr_t)p & (GRAN - 1)) == 0, "base %p not 64 KiB-aligned", (void *)p);
    CK((uintptr_t)p + S <= down || (uintptr_t)p >= q + S, "base %p over the hole or its neighbours", (void *)p);
    /* the over-reservation, the exact mapping in the hole, both neighbours, more */
    CK(calls > 4, "%ld mmaps: the exact mapping did not land in the hole (at %#lx, below %#lx; got %p)", calls, (unsigned long)q, (unsigned long)down, (void *)p);
    MEMORY_BASIC_INFORMATION mbi;
    SIZE_T n;
    CK_OK(hostmem_virtual_query(m, p, &mbi, sizeof mbi, &n));
    CK(mbi.State == MEM_RESERVE && mbi.AllocationBase == p && mbi.RegionSize == S, "query");
    CK_OK(hostmem_virtual_free(m, p, 0, MEM_RELEASE));
    hostmem_destroy(m);
    if (below != MAP_FAILED)
        munmap(below, q - down);
    while (nspacers > 0)
        munmap(spacers[--nspacers], 4 * KiB);
    return 0;
}

Test(os_errors, small_reserve_exact_in_a_hole)
{
    char why[128];
    cr_assert_eq(child_run(exact_in_a_hole_child, NULL, 60, why, sizeof why), 0, "%s", why);
}

/* ---- S10, P7: a failed MEM_RESET -------------------------------------------------- */

static void fill(char *p, size_t n, int v) { memset(p, v, n); }
static int intact(const char *p, size_t n, int v)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != (char)v)
            return 0;
    return 1;
}

/* Two committed pages, the second locked in memory: the kernel refuses to
 * reset a locked page after it has already advised the first. */
Test(os_errors, reset_failing_on_a_locked_page)
{
    size_t P = pg();
    hostmem_manager *m = mk();
    char *p;
    HR_OK(hostmem_virtual_alloc(m, NULL, 2 * P, MEM_COMMIT, PAGE_READWRITE, eTaskCritical, (void **)&p));
    fill(p, 2 * P, 0x3c);
    if (mlock(p + P, P))
        cr_skip_test("mlock: %s (RLIMIT_MEMLOCK)", strerror(errno));
    if (status_bytes("VmLck") <= 0) /* the sanitizers make mlock a no-op */
        cr_skip_test("mlock locked nothing (VmLck 0): a sanitizer's interceptor");
    void *out;
    HRESULT hr = hostmem_virtual_alloc(m, p, 2 * P, MEM_RESET, PAGE_READWRITE, eTaskCritical, &out);
    cr_assert(FAILED(hr), "MEM_RESET over a locked page succeeded");
    HRESULT undo = hostmem_virtual_alloc(m, p, P, MEM_RESET_UNDO, PAGE_READWRITE, eTaskCritical, &out);
    if (undo == S_OK)
        cr_assert(intact(p, P, 0x3c), "MEM_RESET failed (%s), zeroed page 0, and MEM_RESET_UNDO calls it intact",
                  hostmem_hresult_name(hr));
    /* The kernel advised page 0 before it refused page 1: its data may go. */
    HR_EQ(undo, E_OUTOFMEMORY);
    cr_assert(intact(p + P, P, 0x3c), "the locked page lost its data");
    /* State and protection did not change. */
    MEMORY_BASIC_INFORMATION mbi;
    HR_OK(query(m, p, &mbi));
    cr_assert(mbi.State == MEM_COMMIT && mbi.Protect == PAGE_READWRITE && mbi.RegionSize == 2 * P);
    munlock(p + P, P);
    hostmem_destroy(m);
}

/* An madvise that fails part-way (ENOMEM after the first half of the range):
 * the advised half may lose its data, so MEM_RESET_UNDO must not call it intact. */
Test(os_errors, reset_partially_applied)
{
    static const int errs[] = {ENOMEM, EAGAIN, EINVAL};
    size_t P = pg();
    for (size_t i = 0; i < sizeof errs / sizeof *errs; i++) {
        hostmem_manager *m = mk();
        char *p;
        HR_OK(hostmem_virtual_alloc(m, NULL, 8 * P, MEM_COMMIT, PAGE_READWRITE, eTaskCritical, (void **)&p));
        fill(p, 8 * P, 0x11);
        J->fail_nth(HMINJ_MADVISE, 1, errs[i], HMINJ_PARTIAL);
        void *out;
        HRESULT hr = hostmem_virtual_alloc(m, p, 8 * P, MEM_RESET, PAGE_READWRITE, eTaskCritical, &out);
        cr_assert_eq(J->injected(HMINJ_MADVISE), (long)i + 1, "MEM_RESET made no madvise");
        cr_assert(FAILED(hr));
        HRESULT undo = hostmem_virtual_alloc(m, p, P, MEM_RESET_UNDO, PAGE_READWRITE, eTaskCritical, &out);
        HR_EQ(undo, E_OUTOFMEMORY);
        /* Pages never part of a reset are still provably intact. */
        char *q;
        HR_OK(hostmem_virtual_alloc(m, NULL, P, MEM_COMMIT, PAGE_READWRITE, eTaskCritical, (void **)&q));
        HR_OK(hostmem_virtual_alloc(m, q, P, MEM_RESET_UNDO, PAGE_READWRITE, eTaskCritical, &out));
        /* A reset that succeeds later keeps working. */
        HR_OK(hostmem_virtual_alloc(m, p, 8 * P, MEM_RESET, PAGE_READWRITE, eTaskCritical, &out));
        hostmem_destroy(m);
    }
}

/* ---- S4: query and reserve agree at an arena's edge ------------------------------ */

/* A fresh manager's first small region sits at the start of a new arena.
 * Find one whose granule below is free space (the kernel placed the arena
 * after trimming an over-reservation, so the granule below is usually free;
 * keep trying with more managers otherwise).  Returns the arena's base. */
static char *arena_with_free_space_below(hostmem_manager **ms, int *nms)
{
    for (*nms = 0; *nms < 8;) {
        hostmem_manager *m = ms[(*nms)++] = mk();
        char *p;
        HR_OK(hostmem_virtual_alloc(m, NULL, 64 * KiB, MEM_RESERVE, PAGE_READWRITE, eTaskCritical, (void **)&p));
        MEMORY_BASIC_INFORMATION mbi;
        HR_OK(query(m, p - GRAN, &mbi));
        if (mbi.State == MEM_FREE && (char *)mbi.BaseAddress + mbi.RegionSize >= p)
            return p;
    }
    cr_assert_fail("no arena with free space below it in 8 tries");
    return NULL;
}

Test(os_errors, reserve_across_an_arena_edge)
{
    size_t P = pg();
    hostmem_manager *ms[8];
    int nms;
    char *p = arena_with_free_space_below(ms, &nms);
    hostmem_manager *m = ms[nms - 1];
    HR_OK(hostmem_virtual_free(m, p, 0, MEM_RELEASE));
    /* What query says: the granule below and the arena's first granules are free. */
    MEMORY_BASIC_INFORMATION below, at;
    HR_OK(query(m, p - GRAN, &below));
    HR_OK(query(m, p, &at));
    cr_assert_eq(below.State, MEM_FREE);
    cr_assert_eq(at.State, MEM_FREE);
    cr_assert_geq(at.RegionSize, 2 * GRAN);
    /* So a reservation across the edge succeeds, at the address asked for. */
    char *r;
    HR_OK(hostmem_virtual_alloc(m, p - GRAN, 2 * GRAN, MEM_RESERVE, PAGE_READWRITE, eTaskCritical, (void **)&r));
    cr_assert_eq(r, p - GRAN);
    MEMORY_BASIC_INFORMATION mbi;
    HR_OK(query(m, r + GRAN + P, &mbi));
    cr_assert(mbi.State == MEM_RESERVE && mbi.AllocationBase == r && mbi.BaseAddress == r + GRAN + P &&
              mbi.RegionSize == 2 * GRAN - GRAN - P, "state 0x%x base %p size 0x%zx", (unsigned)mbi.State,
              mbi.AllocationBase, (size_t)mbi.RegionSize);
    /* It is a whole region: commit across the edge, write, read back. */
    void *c;
    HR_OK(hostmem_virtual_alloc(m, r, 2 * GRAN, MEM_COMMIT, PAGE_READWRITE, eTaskCritical, &c));
    memset(r, 0x6b, 2 * GRAN);
    cr_assert(intact(r, 2 * GRAN, 0x6b));
    hostmem_stats s = stats_of(m);
    cr_assert_eq(s.reserved_bytes, 2 * GRAN);
    cr_assert_eq(s.committed_bytes, 2 * GRAN);
    /* The arena still serves small regions, never from the granule now taken. */
    char *small;
    HR_OK(hostmem_virtual_alloc(m, NULL, 64 * KiB, MEM_COMMIT, PAGE_READWRITE, eTaskCritical, (void **)&small));
    cr_assert(small >= r + 2 * GRAN || small + 64 * KiB <= r, "small region %p inside %p", (void *)small, (void *)r);
    /* A region ending mid-granule inside the arena, then released: the rest of
     * that granule goes back to the kernel with it. */
    HR_OK(hostmem_virtual_free(m, r, 0, MEM_RELEASE));
    uintptr_t st, en;
    char perms[5];
    cr_assert_neq(maps_find((uintptr_t)r, &st, &en, perms), 0, "the released region is still mapped");
    cr_assert_neq(maps_find((uintptr_t)r + GRAN, &st, &en, perms), 0, "the arena granule it took is still mapped");
    HR_OK(hostmem_virtual_alloc(m, r, GRAN + 3 * P, MEM_RESERVE, PAGE_READWRITE, eTaskCritical, (void **)&r));
    HR_OK(hostmem_virtual_free(m, r, 0, MEM_RELEASE));
    cr_assert_neq(maps_find((uintptr_t)r + GRAN + 3 * P, &st, &en, perms), 0,
                  "the rest of the last granule is still mapped after release");
    /* Space given back is the host's: destroying the manager leaves a mapping
     * the host made there alone. */
    char *host = mmap(r + GRAN, GRAN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    cr_assert_eq(host, r + GRAN, "the granule the region gave back cannot be mapped: %s", strerror(errno));
    memset(host, 0x42, GRAN);
    for (int i = 0; i < nms; i++)
        hostmem_destroy(ms[i]);
    cr_assert_eq(maps_find((uintptr_t)host, &st, &en, perms), 0, "destroy unmapped the host's mapping");
    cr_assert(intact(host, GRAN, 0x42));
    munmap(host, GRAN);
}

/* Free granules of two arenas side by side, or an arena and free space on
 * both sides: one reservation over all of it. */
Test(os_errors, reserve_over_a_whole_free_arena_and_beyond)
{
    hostmem_manager *ms[8];
    int nms;
    char *p = arena_with_free_space_below(ms, &nms);
    hostmem_manager *m = ms[nms - 1];
    HR_OK(hostmem_virtual_free(m, p, 0, MEM_RELEASE));
    MEMORY_BASIC_INFORMATION at;
    HR_OK(query(m, p, &at));
    size_t arena_free = at.RegionSize; /* the whole arena is free now */
    char *r;
    HRESULT hr = hostmem_virtual_alloc(m, p - GRAN, GRAN + arena_free, MEM_RESERVE, PAGE_READWRITE, eTaskCritical,
                                       (void **)&r);
    HR_OK(hr);
    cr_assert_eq(r, p - GRAN);
    /* The arena is all gone: small regions come from a new one. */
    char *small;
    HR_OK(hostmem_virtual_alloc(m, NULL, 64 * KiB, MEM_RESERVE, PAGE_READWRITE, eTaskCritical, (void **)&small));
    cr_assert(small >= r + GRAN + arena_free || small + 64 * KiB <= r);
    HR_OK(hostmem_virtual_free(m, r, 0, MEM_RELEASE));
    for (int i = 0; i < nms; i++)
        hostmem_destroy(ms[i]);
}

/* A reservation that touches a granule of a region is refused, with nothing
 * taken from the arena. */
Test(os_errors, reserve_across_an_arena_edge_into_a_region)
{
    hostmem_manager *ms[8];
    int nms;
    char *p = arena_with_free_space_below(ms, &nms);
    hostmem_manager *m = ms[nms - 1];
    void *o = (void *)1;
    HR_EQ(hostmem_virtual_alloc(m, p - GRAN, 2 * GRAN, MEM_RESERVE, PAGE_READWRITE, eTaskCritical, &o),
          HOSTMEM_E_INVALID_ADDRESS);
    cr_assert_null(o);
    MEMORY_BASIC_INFORMATION mbi;
    HR_OK(query(m, p - GRAN, &mbi));
    cr_assert_eq(mbi.State, MEM_FREE);
    HR_OK(query(m, p, &mbi));
    cr_assert_eq(mbi.State, MEM_RESERVE);
    HR_OK(hostmem_virtual_free(m, p, 0, MEM_RELEASE));
    char *r;
    HR_OK(hostmem_virtual_alloc(m, p - GRAN, 2 * GRAN, MEM_RESERVE, PAGE_READWRITE, eTaskCritical, (void **)&r));
    HR_OK(hostmem_virtual_free(m, r, 0, MEM_RELEASE));
    for (int i = 0; i < nms; i++)
        hostmem_destroy(ms[i]);
}

/* ---- destroy gives everything back, asking again when refused --------------------- */

Test(os_errors, destroy_retries_a_refused_munmap)
{
    hostmem_manager *m = mk();
    char *big, *small;
    HR_OK(hostmem_virtual_alloc(m, NULL, 4 * MiB, MEM_RESERVE, PAGE_READWRITE, eTaskCritical, (void **)&big));
    HR_OK(hostmem_virtual_alloc(m, NULL, 64 * KiB, MEM_RESERVE, PAGE_READWRITE, eTaskCritical, (void **)&small));
    uintptr_t st, en;
    char perms[5];
    J->fail_nth(HMINJ_MUNMAP, 1, ENOMEM, HMINJ_FAIL);
    hostmem_destroy(m);
    cr_assert_eq(J->injected(HMINJ_MUNMAP), 1, "destroy made no munmap");
    cr_assert_neq(maps_find((uintptr_t)big, &st, &en, perms), 0, "a region refused once stays mapped after destroy");
    cr_assert_neq(maps_find((uintptr_t)small, &st, &en, perms), 0, "the arena stays mapped after destroy");
}

/* ---- S9: the descriptor of /proc/self/maps belongs to the host too ---------------- */

/* The descriptor the manager keeps for PROCMAP_QUERY, found in /proc/self/fd. */
static int maps_descriptor(void)
{
    char path[64], target[256];
    for (int fd = 3; fd < 1024; fd++) {
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        ssize_t n = readlink(path, target, sizeof target - 1);
        if (n <= 0)
            continue;
        target[n] = 0;
        size_t len = strlen(target);
        if (len > 5 && !strcmp(target + len - 5, "/maps") && !strncmp(target, "/proc/", 6))
            return fd;
    }
    return -1;
}

/* A host that closes every descriptor it did not open (as daemons do), or
 * reuses the number for a file of its own: queries still answer, through the
 * ioctl. */
Test(os_errors, query_after_the_host_closed_the_descriptor)
{
    hostmem_manager *m = mk();
    query_mapped_ok(m);
    if (J->reached(HMINJ_IOCTL) == 0)
        cr_skip_test("this kernel has no PROCMAP_QUERY");
    int fd = maps_descriptor();
    cr_assert_geq(fd, 0, "no descriptor of /proc/self/maps is open");
    close(fd);
    query_mapped_ok(m);
    /* Now the host's own file under the number the manager uses. */
    fd = maps_descriptor();
    cr_assert_geq(fd, 0);
    int other = open("/dev/null", O_RDONLY);
    cr_assert_geq(other, 0);
    cr_assert_eq(dup2(other, fd), fd);
    close(other);
    query_mapped_ok(m);
    long reads = J->reached(HMINJ_READ);
    query_mapped_ok(m);
    cr_assert_eq(J->reached(HMINJ_READ), reads, "queries read /proc/self/maps: the ioctl was given up");
    close(fd);
    hostmem_destroy(m);
}

/* S9: free space runs to the next mapping, across an arena's edge: free
 * arena granules are no mapping as far as a host can tell. */
Test(os_errors, free_space_runs_across_an_arena_edge)
{
    hostmem_manager *ms[8];
    int nms;
    char *p = arena_with_free_space_below(ms, &nms);
    hostmem_manager *m = ms[nms - 1];
    HR_OK(hostmem_virtual_free(m, p, 0, MEM_RELEASE));
    MEMORY_BASIC_INFORMATION below, at;
    HR_OK(query(m, p - GRAN, &below));
    HR_OK(query(m, p, &at));
    cr_assert_eq(below.State, MEM_FREE);
    cr_assert_gt((char *)below.BaseAddress + below.RegionSize, p,
                 "free space below the arena ends at its edge (%p + %#zx)", below.BaseAddress,
                 (size_t)below.RegionSize);
    cr_assert_eq((char *)below.BaseAddress + below.RegionSize, (char *)at.BaseAddress + at.RegionSize,
                 "the free space below the arena and the arena's free granules end at different places");
    /* And all of it can be reserved at once. */
    char *r;
    size_t span = (size_t)((char *)below.BaseAddress + below.RegionSize - (p - GRAN));
    if (span > 64 * MiB)
        span = 64 * MiB;
    HR_OK(hostmem_virtual_alloc(m, p - GRAN, span, MEM_RESERVE, PAGE_READWRITE, eTaskCritical, (void **)&r));
    HR_OK(hostmem_virtual_free(m, r, 0, MEM_RELEASE));
    for (int i = 0; i < nms; i++)
        hostmem_destroy(ms[i]);
}
