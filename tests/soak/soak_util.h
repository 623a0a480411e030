/*
 * soak_util.h: helpers of the reliability suites (exhaustion, fork, security,
 * soak).  Only the public header of hostmem; the rest is POSIX and /proc, used
 * to look at the process the way the kernel sees it.
 *
 * Two kinds of checks live here.  Criterion asserts run in a Criterion
 * worker; CK() runs in a child this suite forks itself (a child must not talk
 * to the Criterion runner): it prints the failed condition with its location
 * and ends the child with exit status 1, which the parent turns into a
 * Criterion failure through child_run().
 */
#ifndef HOSTMEM_SOAK_UTIL_H
#define HOSTMEM_SOAK_UTIL_H

#include <hostmem/hostmem.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#define SOAK_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SOAK_ASAN 1
#endif
#endif

#define SOAK_UNUSED __attribute__((unused))
#define KiB ((size_t)1 << 10)
#define MiB ((size_t)1 << 20)
#define GiB ((size_t)1 << 30)
#define GRAN ((size_t)65536)
#define USER_END ((uintptr_t)1 << 47)

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

static SOAK_UNUSED size_t pg(void) { return (size_t)sysconf(_SC_PAGESIZE); }

static SOAK_UNUSED uintptr_t round_up(uintptr_t x, size_t a) { return (x + a - 1) & ~(uintptr_t)(a - 1); }

/* ---- checks inside a forked child ------------------------------------------ */

static SOAK_UNUSED __attribute__((noreturn, format(printf, 3, 4))) void
ck_fail(const char *file, int line, const char *fmt, ...)
{
    char buf[1024];
    int n = snprintf(buf, sizeof buf, "%s:%d: [child %d] ", file, line, (int)getpid());
    va_list ap;
    va_start(ap, fmt);
    if (n >= 0 && (size_t)n < sizeof buf)
        n += vsnprintf(buf + n, sizeof buf - (size_t)n, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof buf - 1)
        n = (int)sizeof buf - 2;
    buf[n++] = '\n';
    /* write(2): no stdio buffer, no allocation (limits may be exhausted). */
    ssize_t w = write(2, buf, (size_t)n);
    (void)w;
    _exit(1);
}

#define CK(cond, ...)                                                            \
    do {                                                                         \
        if (!(cond))                                                             \
            ck_fail(__FILE__, __LINE__, "check failed: " #cond ": " __VA_ARGS__); \
    } while (0)

#define CK_HR(expr, want)                                                                            \
    do {                                                                                             \
        HRESULT ck_got_ = (expr), ck_want_ = (want);                                                 \
        if (ck_got_ != ck_want_)                                                                     \
            ck_fail(__FILE__, __LINE__, "%s\n  got  %s (0x%08" PRIx32 ")\n  want %s (0x%08" PRIx32 ")", \
                    #expr, hostmem_hresult_name(ck_got_), (uint32_t)ck_got_,                         \
                    hostmem_hresult_name(ck_want_), (uint32_t)ck_want_);                             \
    } while (0)

#define CK_OK(expr) CK_HR(expr, S_OK)

/* ---- children ------------------------------------------------------------------ */

static SOAK_UNUSED uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Wait for pid at most timeout_s seconds (a hang detector, not a timing
 * check: the bound is far above any honest run).  On timeout the child is
 * killed and *timed_out set.  Returns the wait status. */
static SOAK_UNUSED int child_wait(pid_t pid, unsigned timeout_s, int *timed_out)
{
    uint64_t deadline = now_ns() + (uint64_t)timeout_s * 1000000000u;
    int status = 0;
    *timed_out = 0;
    for (;;) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid)
            return status;
        if (r < 0 && errno != EINTR)
            return -1;
        if (now_ns() > deadline) {
            *timed_out = 1;
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            return status;
        }
        struct timespec ts = {0, 2000000}; /* 2 ms */
        nanosleep(&ts, NULL);
    }
}

/* Describe a wait status in buf. */
static SOAK_UNUSED const char *status_text(int status, int timed_out, char *buf, size_t len)
{
    if (timed_out)
        snprintf(buf, len, "hung (killed after the timeout)");
    else if (status == -1)
        snprintf(buf, len, "waitpid failed");
    else if (WIFEXITED(status))
        snprintf(buf, len, "exit status %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(buf, len, "killed by signal %d (%s)", WTERMSIG(status), strsignal(WTERMSIG(status)));
    else
        snprintf(buf, len, "status 0x%x", status);
    return buf;
}

/* Run fn(arg) in a forked child that exits with its result; 0 = passed.
 * stdout/stderr are flushed first so nothing is written twice. */
static SOAK_UNUSED int child_run(int (*fn)(void *), void *arg, unsigned timeout_s, char *why, size_t why_len)
{
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(why, why_len, "fork: %s", strerror(errno));
        return -1;
    }
    if (pid == 0) {
        alarm(timeout_s + 5); /* an orphan of a killed parent still ends */
        _exit(fn(arg));
    }
    int timed_out;
    int status = child_wait(pid, timeout_s, &timed_out);
    status_text(status, timed_out, why, why_len);
    return (!timed_out && status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0) ? 0 : -1;
}

/* Does touching addr (read, or write when `write`) kill a child with SIGSEGV?
 * The child restores the default action first, so a sanitizer's handler does
 * not turn the fault into a report. */
static SOAK_UNUSED int faults(const void *addr, int write)
{
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = SIG_DFL;
        sigaction(SIGSEGV, &sa, NULL);
        sigaction(SIGBUS, &sa, NULL);
        alarm(60);
        volatile char *p = (volatile char *)addr;
        if (write)
            *p = 1;
        else
            (void)*p;
        _exit(0);
    }
    int timed_out, status = child_wait(pid, 60, &timed_out);
    return !timed_out && WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV;
}

/* ---- /proc ------------------------------------------------------------------------ */

/* Lines of /proc/self/maps (one per VMA), read without allocating. */
static SOAK_UNUSED long maps_lines(void)
{
    int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    char buf[65536];
    long lines = 0;
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        for (ssize_t i = 0; i < n; i++)
            lines += buf[i] == '\n';
    }
    close(fd);
    return lines;
}

/* The VMA of /proc/self/maps holding addr: start, end and the four
 * permission characters ("rw-p").  0 if found, -1 if addr is unmapped. */
static SOAK_UNUSED int maps_find(uintptr_t addr, uintptr_t *start, uintptr_t *end, char perms[5])
{
    int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    char buf[65536], line[512];
    size_t ll = 0;
    int found = -1;
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        for (ssize_t i = 0; i < n && found < 0; i++) {
            if (buf[i] != '\n') {
                if (ll < sizeof line - 1)
                    line[ll++] = buf[i];
                continue;
            }
            line[ll] = 0;
            ll = 0;
            unsigned long s, e;
            char p[5] = {0};
            if (sscanf(line, "%lx-%lx %4c", &s, &e, p) == 3 && addr >= s && addr < e) {
                *start = s;
                *end = e;
                memcpy(perms, p, 5);
                found = 0;
            }
        }
        if (found == 0)
            break;
    }
    close(fd);
    return found;
}

/* A "Vm...:" or "...:" field of /proc/self/status in bytes (-1 if absent). */
static SOAK_UNUSED long long status_bytes(const char *field)
{
    int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    char buf[8192];
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = 0;
    size_t fl = strlen(field);
    for (char *p = buf; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
        if (!strncmp(p, field, fl) && p[fl] == ':')
            return strtoll(p + fl + 1, NULL, 10) * 1024;
    }
    return -1;
}

static SOAK_UNUSED long long read_proc_number(const char *path)
{
    FILE *f = fopen(path, "r");
    long long v = -1;
    if (f) {
        if (fscanf(f, "%lld", &v) != 1)
            v = -1;
        fclose(f);
    }
    return v;
}

/* ---- address space the test owns ------------------------------------------------- */

/* A 64 KiB-aligned range of `size` bytes that is free right now (mapped and
 * unmapped again), with a free guard of `guard` bytes on each side. */
static SOAK_UNUSED uintptr_t free_range(size_t size, size_t guard)
{
    size_t span = size + 2 * guard + 2 * GRAN;
    void *p = mmap(NULL, span, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED)
        return 0;
    munmap(p, span);
    return round_up((uintptr_t)p + guard, GRAN);
}

/* A mapping of our own (not the manager's) at exactly addr, filled with a
 * pattern derived from `seed`, then given protection prot.  NULL on failure. */
static SOAK_UNUSED void *foreign_map(uintptr_t addr, size_t size, int prot, unsigned seed)
{
    void *p = mmap((void *)addr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE,
                   -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    if ((uintptr_t)p != addr) {
        munmap(p, size);
        return NULL;
    }
    for (size_t i = 0; i < size; i++)
        ((unsigned char *)p)[i] = (unsigned char)(seed + i * 131u + (i >> 12));
    if (prot != (PROT_READ | PROT_WRITE) && mprotect(p, size, prot)) {
        munmap(p, size);
        return NULL;
    }
    return p;
}

/* Is the foreign mapping [addr, addr + size) still mapped with perms, its
 * pattern intact?  Returns NULL if so, else what differs.  The mapping must be
 * readable for the pattern check (prot includes PROT_READ). */
static SOAK_UNUSED const char *foreign_intact(uintptr_t addr, size_t size, const char *perms, unsigned seed)
{
    static __thread char why[256];
    uintptr_t s, e;
    char p[5];
    if (maps_find(addr, &s, &e, p))
        return "unmapped";
    /* The kernel may merge it with a neighbour of the same protection (one of
     * ours): the VMA must still cover all of it. */
    if (s > addr || e < addr + size) {
        snprintf(why, sizeof why, "VMA is now %#lx-%#lx, was %#lx-%#lx", (unsigned long)s, (unsigned long)e,
                 (unsigned long)addr, (unsigned long)(addr + size));
        return why;
    }
    if (memcmp(p, perms, 4)) {
        snprintf(why, sizeof why, "permissions %.4s, were %.4s", p, perms);
        return why;
    }
    for (size_t i = 0; i < size; i++)
        if (((const unsigned char *)addr)[i] != (unsigned char)(seed + i * 131u + (i >> 12))) {
            snprintf(why, sizeof why, "byte %zu changed", i);
            return why;
        }
    return NULL;
}

/* Every byte zero? */
static SOAK_UNUSED int all_zero(const void *p, size_t n)
{
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++)
        if (c[i])
            return 0;
    return 1;
}

/* Stats equal in the live totals (the peaks are checked on their own). */
static SOAK_UNUSED int stats_same(const hostmem_stats *a, const hostmem_stats *b)
{
    return a->reserved_bytes == b->reserved_bytes && a->committed_bytes == b->committed_bytes &&
           a->region_count == b->region_count && a->external_bytes == b->external_bytes;
}

static SOAK_UNUSED hostmem_stats stats_of(hostmem_manager *m)
{
    hostmem_stats s;
    memset(&s, 0, sizeof s);
    if (FAILED(hostmem_get_stats(m, &s)))
        memset(&s, 0xff, sizeof s);
    return s;
}

#define STATS_FMT "reserved %zu committed %zu regions %zu"
#define STATS_ARGS(s) (size_t)(s).reserved_bytes, (size_t)(s).committed_bytes, (size_t)(s).region_count

#endif /* HOSTMEM_SOAK_UTIL_H */
