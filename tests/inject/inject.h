/*
 * inject.h: the control interface of libhostmem-inject.so, a fault injector
 * that sits outside the library: it is preloaded (LD_PRELOAD) in front of the
 * C library and wraps the calls libhostmem makes to the kernel (mmap, munmap,
 * mprotect, madvise, ioctl, open, read, close).  Only calls made from
 * libhostmem.so's own code are counted and failed; everything else (the C
 * library, the sanitizers, Criterion, the test itself) passes straight
 * through.
 *
 * A test reaches these functions with hminj_get() (dlsym), so it runs, and
 * says it is skipped, when the injector is not preloaded.  Rules are global
 * (every thread); counts of injected faults are also kept per thread, so a
 * multi-threaded test knows which of its calls saw one.
 */
#ifndef HOSTMEM_TEST_INJECT_H
#define HOSTMEM_TEST_INJECT_H

#include <dlfcn.h>
#include <stddef.h>

enum hminj_call {
    HMINJ_MMAP,
    HMINJ_MUNMAP,
    HMINJ_MPROTECT,
    HMINJ_MADVISE,
    HMINJ_IOCTL,
    HMINJ_OPEN,
    HMINJ_READ,
    HMINJ_CLOSE,
    HMINJ_CALL_COUNT
};

/* What happens to a call that is failed. */
enum hminj_how {
    HMINJ_FAIL,    /* nothing is done, -1 with the errno */
    HMINJ_PARTIAL, /* mprotect / madvise / munmap: the first half of the range (whole pages,
                      at least one) is done, then -1 with the errno, as the kernel does when
                      it fails part-way through a range of several VMAs */
};

typedef struct hminj_api {
    /* Fail the nth call of `call` (counted from now, 1 = the next one) with
     * err; 0 disarms. */
    void (*fail_nth)(enum hminj_call call, long nth, int err, enum hminj_how how);
    /* Fail each call of `call` with probability per_million / 1e6, with an
     * errno picked from errs[0..nerrs) (copied). */
    void (*fail_rate)(enum hminj_call call, unsigned per_million, const int *errs, int nerrs,
                      enum hminj_how how);
    /* Only count and fail read() / ioctl() on a file whose path contains
     * `path` (NULL: every file); fds are tracked from open(). */
    void (*only_path)(const char *path);
    void (*clear)(void);   /* every rule off (counts kept) */
    void (*seed)(unsigned long long s);
    /* Calls of `call` libhostmem made, and faults injected, since load. */
    long (*reached)(enum hminj_call call);
    long (*injected)(enum hminj_call call);
    /* Faults injected on the calling thread since load. */
    long (*injected_here)(void);
    const char *(*name)(enum hminj_call call);
} hminj_api;

/* The injector's interface, or NULL when it is not preloaded. */
static inline const hminj_api *hminj_get(void)
{
    const hminj_api *(*get)(void) = (const hminj_api *(*)(void))dlsym(RTLD_DEFAULT, "hminj_api_get");
    return get ? get() : NULL;
}

#endif
