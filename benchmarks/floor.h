/*
 * floor.h: the floors.  Each is the raw syscall sequence that does the kernel
 * work of one hostmem operation and nothing else: what the operation would
 * cost if the library were free.  All return 0 or an errno.
 */
#ifndef HOSTMEM_BENCH_FLOOR_H
#define HOSTMEM_BENCH_FLOOR_H

#include <errno.h>
#include <stddef.h>
#include <sys/mman.h>

/* Reserve: inaccessible anonymous memory, not charged (no MAP_NORESERVE,
 * as a reservation that lets the kernel refuse a later commit must be). */
static inline int floor_reserve(size_t size, void **out)
{
    void *p = mmap(NULL, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        *out = NULL;
        return errno;
    }
    *out = p;
    return 0;
}

static inline int floor_release(void *p, size_t size)
{
    return munmap(p, size) == 0 ? 0 : errno;
}

/* Commit and protect: one mprotect. */
static inline int floor_protect(void *p, size_t size, int prot)
{
    return mprotect(p, size, prot) == 0 ? 0 : errno;
}

static inline int floor_commit(void *p, size_t size)
{
    return floor_protect(p, size, PROT_READ | PROT_WRITE);
}

/* Decommit as it must be done: a fresh inaccessible mapping over the range
 * gives the pages and their commit charge back, and they read zero when made
 * accessible again.  Only ever over a range the caller owns. */
static inline int floor_decommit_remap(void *p, size_t size)
{
    void *q = mmap(p, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    return q == MAP_FAILED ? errno : 0;
}

/* Decommit as it is often written: drops the pages but (after they were
 * written) leaves the commit charge in place, so it is not a correct
 * decommit; shown because it is the cheapest sequence that looks like one. */
static inline int floor_decommit_madvise(void *p, size_t size)
{
    if (madvise(p, size, MADV_DONTNEED) != 0)
        return errno;
    return mprotect(p, size, PROT_NONE) == 0 ? 0 : errno;
}

/* Reset: the pages' data becomes disposable. */
static inline int floor_reset(void *p, size_t size)
{
    return madvise(p, size, MADV_FREE) == 0 ? 0 : errno;
}

#endif
