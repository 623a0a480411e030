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

/* S9: with the ioctl gone (a kernel before 6.11 answers ENOTTY), the answer
 * comes from /proc/self/maps; a read() of it that fails is not the end of the
 * file, whatever the errno. */
static void query_read_fails(int err, HRESULT want)
{
    hostmem_manager *m = mk();
    J->fail_nth(HMINJ_IOCTL, 1, ENOTTY, HMINJ_FAIL);
    query_mapped_ok(m); /* from the maps file now */
    cr_assert_eq(J->injected(HMINJ_IOCTL), 1, "the query did not try PROCMAP_QUERY first");
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
    J->fail_nth(HMINJ_IOCTL, 1, ENOTTY, HMINJ_FAIL);
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
    J->fail_nth(HMINJ_IOCTL, 1, ENOTTY, HMINJ_FAIL); /* the maps file from now on */
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
