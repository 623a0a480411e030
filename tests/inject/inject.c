/*
 * inject.c: libhostmem-inject.so, a fault injector preloaded in front of the
 * C library (see inject.h).  It wraps the calls libhostmem makes to the
 * kernel and fails those that come from libhostmem.so's own code, by count
 * or at random, with an errno the kernel documents for the call.
 *
 * It must not disturb anything else: the caller is known from the return
 * address (inside libhostmem.so's executable segments, found once with
 * dl_iterate_phdr), and every other call goes straight to the next
 * definition (the C library, or a sanitizer's interceptor before it).
 */
#define _GNU_SOURCE 1
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/types.h>
#include <unistd.h>

#include "inject.h"

#define EXPORT __attribute__((visibility("default")))

static void *(*next_mmap)(void *, size_t, int, int, int, off_t);
static int (*next_munmap)(void *, size_t);
static int (*next_mprotect)(void *, size_t, int);
static int (*next_madvise)(void *, size_t, int);
static int (*next_ioctl)(int, unsigned long, ...);
static int (*next_open)(const char *, int, ...);
static ssize_t (*next_read)(int, void *, size_t);
static int (*next_close)(int);

static void resolve(void)
{
    next_mmap = (void *(*)(void *, size_t, int, int, int, off_t))dlsym(RTLD_NEXT, "mmap");
    next_munmap = (int (*)(void *, size_t))dlsym(RTLD_NEXT, "munmap");
    next_mprotect = (int (*)(void *, size_t, int))dlsym(RTLD_NEXT, "mprotect");
    next_madvise = (int (*)(void *, size_t, int))dlsym(RTLD_NEXT, "madvise");
    next_ioctl = (int (*)(int, unsigned long, ...))dlsym(RTLD_NEXT, "ioctl");
    next_open = (int (*)(const char *, int, ...))dlsym(RTLD_NEXT, "open");
    next_read = (ssize_t(*)(int, void *, size_t))dlsym(RTLD_NEXT, "read");
    next_close = (int (*)(int))dlsym(RTLD_NEXT, "close");
}

/* ---- who is calling ----------------------------------------------------------- */

static struct {
    uintptr_t lo[4], hi[4];
    int n;
} lib;
static _Atomic int lib_state; /* 0 unknown, 1 found, 2 searching */

static int find_lib(struct dl_phdr_info *info, size_t size __attribute__((unused)), void *ctx __attribute__((unused)))
{
    const char *slash = info->dlpi_name ? strrchr(info->dlpi_name, '/') : NULL;
    const char *base = slash ? slash + 1 : info->dlpi_name;
    if (!base || strncmp(base, "libhostmem.so", 13) != 0)
        return 0;
    for (int i = 0; i < info->dlpi_phnum && lib.n < 4; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type == PT_LOAD && (ph->p_flags & PF_X)) {
            lib.lo[lib.n] = info->dlpi_addr + ph->p_vaddr;
            lib.hi[lib.n] = lib.lo[lib.n] + ph->p_memsz;
            lib.n++;
        }
    }
    return 1;
}

static bool from_lib(uintptr_t ret)
{
    int s = atomic_load_explicit(&lib_state, memory_order_acquire);
    if (s == 0) {
        int expected = 0;
        if (atomic_compare_exchange_strong(&lib_state, &expected, 2)) {
            dl_iterate_phdr(find_lib, NULL);
            atomic_store_explicit(&lib_state, lib.n ? 1 : 0, memory_order_release);
        }
        s = atomic_load_explicit(&lib_state, memory_order_acquire);
    }
    if (s != 1)
        return false;
    for (int i = 0; i < lib.n; i++)
        if (ret >= lib.lo[i] && ret < lib.hi[i])
            return true;
    return false;
}

/* ---- rules ------------------------------------------------------------------- */

typedef struct rule {
    _Atomic long nth_left; /* > 0: fail the call that brings it to 0 */
    _Atomic int nth_err;
    _Atomic int nth_how;
    _Atomic unsigned rate; /* per million */
    _Atomic int rate_errs[8];
    _Atomic int rate_nerrs;
    _Atomic int rate_how;
    _Atomic long reached, injected;
} rule;

static rule rules[HMINJ_CALL_COUNT];
static _Atomic unsigned long long seed_base = 0x9e3779b97f4a7c15ull;
static _Atomic unsigned long long thread_counter;
static __thread unsigned long long rng;
static __thread long here;

#define MAX_FD 4096
static _Atomic uint64_t watched_fd[MAX_FD / 64];
static char path_filter[256];
static _Atomic int path_filter_on;

static unsigned long long next_rand(void)
{
    if (!rng)
        rng = atomic_load(&seed_base) + 0x2545f4914f6cdd1dull * (atomic_fetch_add(&thread_counter, 1) + 1);
    unsigned long long z = (rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static bool fd_watched(int fd)
{
    if (!atomic_load_explicit(&path_filter_on, memory_order_relaxed))
        return true;
    return fd >= 0 && fd < MAX_FD && ((atomic_load(&watched_fd[fd / 64]) >> (fd % 64)) & 1);
}

/* Count a call from libhostmem and decide: 0 (go on), or the errno to fail
 * with (*how set). */
static int decide(enum hminj_call c, int *how)
{
    rule *r = &rules[c];
    atomic_fetch_add_explicit(&r->reached, 1, memory_order_relaxed);
    int err = 0;
    long left = atomic_load_explicit(&r->nth_left, memory_order_relaxed);
    if (left > 0 && atomic_fetch_sub(&r->nth_left, 1) == 1) {
        err = atomic_load(&r->nth_err);
        *how = atomic_load(&r->nth_how);
    } else {
        unsigned rate = atomic_load_explicit(&r->rate, memory_order_relaxed);
        if (rate && next_rand() % 1000000u < rate) {
            int n = atomic_load(&r->rate_nerrs);
            err = n > 0 ? atomic_load(&r->rate_errs[next_rand() % (unsigned)n]) : ENOMEM;
            *how = atomic_load(&r->rate_how);
        }
    }
    if (err) {
        atomic_fetch_add_explicit(&r->injected, 1, memory_order_relaxed);
        here++;
    }
    return err;
}

/* The first half of [addr, addr + len) in whole pages, or 0 when the range is one page. */
static size_t half_of(size_t len)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t h = (len / 2) & ~(page - 1);
    return h;
}

/* ---- the wrapped calls --------------------------------------------------------- */

#define CALLER ((uintptr_t)__builtin_return_address(0))
/* A call before the constructor ran (another library's constructor). */
#define READY(fn) \
    do {            \
        if (!(fn))  \
            resolve(); \
    } while (0)

EXPORT void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    READY(next_mmap);
    if (from_lib(CALLER)) {
        int how, err = decide(HMINJ_MMAP, &how);
        if (err) {
            errno = err;
            return MAP_FAILED;
        }
    }
    return next_mmap(addr, len, prot, flags, fd, off);
}

EXPORT void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off)
    __attribute__((alias("mmap")));

EXPORT int munmap(void *addr, size_t len)
{
    READY(next_munmap);
    if (from_lib(CALLER)) {
        int how, err = decide(HMINJ_MUNMAP, &how);
        if (err) {
            size_t h = half_of(len);
            if (how == HMINJ_PARTIAL && h)
                next_munmap(addr, h);
            errno = err;
            return -1;
        }
    }
    return next_munmap(addr, len);
}

EXPORT int mprotect(void *addr, size_t len, int prot)
{
    READY(next_mprotect);
    if (from_lib(CALLER)) {
        int how, err = decide(HMINJ_MPROTECT, &how);
        if (err) {
            size_t h = half_of(len);
            if (how == HMINJ_PARTIAL && h)
                next_mprotect(addr, h, prot);
            errno = err;
            return -1;
        }
    }
    return next_mprotect(addr, len, prot);
}

EXPORT int madvise(void *addr, size_t len, int advice)
{
    READY(next_madvise);
    if (from_lib(CALLER)) {
        int how, err = decide(HMINJ_MADVISE, &how);
        if (err) {
            size_t h = half_of(len);
            if (how == HMINJ_PARTIAL && h)
                next_madvise(addr, h, advice);
            errno = err;
            return -1;
        }
    }
    return next_madvise(addr, len, advice);
}

EXPORT int ioctl(int fd, unsigned long request, ...)
{
    va_list ap;
    va_start(ap, request);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    READY(next_ioctl);
    if (from_lib(CALLER) && fd_watched(fd)) {
        int how, err = decide(HMINJ_IOCTL, &how);
        if (err) {
            errno = err;
            return -1;
        }
    }
    return next_ioctl(fd, request, arg);
}

static int open_common(uintptr_t caller, const char *path, int flags, mode_t mode)
{
    READY(next_open);
    bool ours = from_lib(caller);
    if (ours) {
        int how, err = decide(HMINJ_OPEN, &how);
        if (err) {
            errno = err;
            return -1;
        }
    }
    int fd = next_open(path, flags, mode);
    if (fd >= 0 && fd < MAX_FD) {
        uint64_t bit = (uint64_t)1 << (fd % 64);
        bool watch = ours && atomic_load(&path_filter_on) && path && strstr(path, path_filter);
        if (watch)
            atomic_fetch_or(&watched_fd[fd / 64], bit);
        else
            atomic_fetch_and(&watched_fd[fd / 64], ~bit);
    }
    return fd;
}

EXPORT int open(const char *path, int flags, ...)
{
    mode_t mode = 0;
    if (flags & (O_CREAT | O_TMPFILE)) {
        va_list ap;
        va_start(ap, flags);
        mode = (mode_t)va_arg(ap, int);
        va_end(ap);
    }
    return open_common(CALLER, path, flags, mode);
}

EXPORT int open64(const char *path, int flags, ...)
{
    mode_t mode = 0;
    if (flags & (O_CREAT | O_TMPFILE)) {
        va_list ap;
        va_start(ap, flags);
        mode = (mode_t)va_arg(ap, int);
        va_end(ap);
    }
    return open_common(CALLER, path, flags, mode);
}

EXPORT ssize_t read(int fd, void *buf, size_t len)
{
    READY(next_read);
    if (from_lib(CALLER) && fd_watched(fd)) {
        int how, err = decide(HMINJ_READ, &how);
        if (err) {
            errno = err;
            return -1;
        }
    }
    return next_read(fd, buf, len);
}

EXPORT int close(int fd)
{
    READY(next_close);
    if (from_lib(CALLER))
        atomic_fetch_add_explicit(&rules[HMINJ_CLOSE].reached, 1, memory_order_relaxed);
    if (fd >= 0 && fd < MAX_FD)
        atomic_fetch_and(&watched_fd[fd / 64], ~((uint64_t)1 << (fd % 64)));
    return next_close(fd);
}

/* ---- control ------------------------------------------------------------------- */

static void api_fail_nth(enum hminj_call c, long nth, int err, enum hminj_how how)
{
    atomic_store(&rules[c].nth_err, err);
    atomic_store(&rules[c].nth_how, (int)how);
    atomic_store(&rules[c].nth_left, nth);
}

static void api_fail_rate(enum hminj_call c, unsigned per_million, const int *errs, int nerrs,
                          enum hminj_how how)
{
    if (nerrs > 8)
        nerrs = 8;
    for (int i = 0; i < nerrs; i++)
        atomic_store(&rules[c].rate_errs[i], errs[i]);
    atomic_store(&rules[c].rate_nerrs, nerrs);
    atomic_store(&rules[c].rate_how, (int)how);
    atomic_store(&rules[c].rate, per_million);
}

static void api_only_path(const char *path)
{
    atomic_store(&path_filter_on, 0);
    if (!path)
        return;
    strncpy(path_filter, path, sizeof path_filter - 1);
    atomic_store(&path_filter_on, 1);
}

static void api_clear(void)
{
    for (int c = 0; c < HMINJ_CALL_COUNT; c++) {
        atomic_store(&rules[c].nth_left, 0);
        atomic_store(&rules[c].rate, 0);
    }
    atomic_store(&path_filter_on, 0);
}

static void api_seed(unsigned long long s) { atomic_store(&seed_base, s); }
static long api_reached(enum hminj_call c) { return atomic_load(&rules[c].reached); }
static long api_injected(enum hminj_call c) { return atomic_load(&rules[c].injected); }
static long api_injected_here(void) { return here; }

static const char *api_name(enum hminj_call c)
{
    static const char *names[HMINJ_CALL_COUNT] = {"mmap", "munmap", "mprotect", "madvise",
                                                  "ioctl", "open", "read", "close"};
    return (unsigned)c < HMINJ_CALL_COUNT ? names[c] : "?";
}

static const hminj_api api = {
    .fail_nth = api_fail_nth,
    .fail_rate = api_fail_rate,
    .only_path = api_only_path,
    .clear = api_clear,
    .seed = api_seed,
    .reached = api_reached,
    .injected = api_injected,
    .injected_here = api_injected_here,
    .name = api_name,
};

EXPORT const hminj_api *hminj_api_get(void);
EXPORT const hminj_api *hminj_api_get(void) { return &api; }

/* HOSTMEM_INJECT="call:when:errno[:partial],...": rules from the environment,
 * for a host run under the injector without a line of test code.  `when` is
 * N (the Nth call), pN (N per million calls) or always; errno is a number or
 * one of ENOMEM EAGAIN EINVAL EPERM EACCES EIO EMFILE ENFILE EINTR ENOTTY.
 * Example: HOSTMEM_INJECT=munmap:always:ENOMEM,mmap:p20000:ENOMEM */
static int errno_of(const char *s, size_t n)
{
    static const struct {
        const char *name;
        int err;
    } names[] = {{"ENOMEM", ENOMEM}, {"EAGAIN", EAGAIN}, {"EINVAL", EINVAL}, {"EPERM", EPERM},
                 {"EACCES", EACCES}, {"EIO", EIO},       {"EMFILE", EMFILE}, {"ENFILE", ENFILE},
                 {"EINTR", EINTR},   {"ENOTTY", ENOTTY}};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if (strlen(names[i].name) == n && !strncmp(s, names[i].name, n))
            return names[i].err;
    int v = 0;
    for (size_t i = 0; i < n && s[i] >= '0' && s[i] <= '9'; i++)
        v = v * 10 + (s[i] - '0');
    return v ? v : ENOMEM;
}

static void env_rules(void)
{
    const char *spec = getenv("HOSTMEM_INJECT");
    while (spec && *spec) {
        const char *end = strchr(spec, ',');
        size_t len = end ? (size_t)(end - spec) : strlen(spec);
        const char *f[4] = {spec, NULL, NULL, NULL};
        size_t fl[4] = {0, 0, 0, 0};
        int nf = 1;
        for (size_t i = 0; i < len; i++) {
            if (spec[i] == ':' && nf < 4) {
                fl[nf - 1] = (size_t)(&spec[i] - f[nf - 1]);
                f[nf++] = &spec[i + 1];
            }
        }
        fl[nf - 1] = (size_t)(spec + len - f[nf - 1]);
        for (int c = 0; c < HMINJ_CALL_COUNT && nf >= 3; c++) {
            const char *name = api.name((enum hminj_call)c);
            if (strlen(name) != fl[0] || strncmp(name, f[0], fl[0]))
                continue;
            int err = errno_of(f[2], fl[2]);
            enum hminj_how how = nf == 4 && fl[3] == 7 && !strncmp(f[3], "partial", 7) ? HMINJ_PARTIAL : HMINJ_FAIL;
            if (fl[1] == 6 && !strncmp(f[1], "always", 6)) {
                api_fail_rate((enum hminj_call)c, 1000000, &err, 1, how);
            } else if (f[1][0] == 'p') {
                api_fail_rate((enum hminj_call)c, (unsigned)strtoul(f[1] + 1, NULL, 10), &err, 1, how);
            } else {
                api_fail_nth((enum hminj_call)c, strtol(f[1], NULL, 10), err, how);
            }
        }
        spec = end ? end + 1 : NULL;
    }
}

__attribute__((constructor)) static void inject_init(void)
{
    resolve();
    env_rules();
}
