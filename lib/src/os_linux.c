/*
 * os_linux.c: the OS primitives of os.h over Linux: the mapping calls, the
 * table of primitives, the seam tests swap and the capabilities.  The
 * os_linux*.c files (os_linux.h names them) are the only ones that speak
 * POSIX memory calls.  Every function returns 0 or an errno value and
 * leaves errno as it found it.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"
#include "os_linux.h"

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif
#ifndef MADV_FREE
#define MADV_FREE 8
#endif

static int prot_of(unsigned access)
{
    return ((access & HOSTMEM_ACCESS_READ) ? PROT_READ : 0) |
           ((access & HOSTMEM_ACCESS_WRITE) ? PROT_WRITE : 0) |
           ((access & HOSTMEM_ACCESS_EXEC) ? PROT_EXEC : 0);
}

/* Reservations are not MAP_NORESERVE: the kernel then charges pages when they
 * are made writable, so under vm.overcommit_memory=2 it can refuse a commit
 * (the PROT_NONE mapping itself is not charged). */
static int linux_reserve(void *addr, size_t size, void **out)
{
    int saved = errno, err = 0;
    int flags = MAP_PRIVATE | MAP_ANONYMOUS | (addr ? MAP_FIXED_NOREPLACE : 0);
    void *p = mmap(addr, size, PROT_NONE, flags, -1, 0);
    if (p == MAP_FAILED) {
        err = errno;
    } else if (addr && p != addr) {
        /* A kernel older than 4.17 treats the flag as a hint: undo and report
         * the overlap it would have refused. */
        munmap(p, size);
        err = EEXIST;
    } else {
        *out = p;
    }
    errno = saved;
    return err;
}

static int linux_release(void *addr, size_t size)
{
    int saved = errno;
    int err = munmap(addr, size) ? errno : 0;
    errno = saved;
    return err;
}

static int linux_protect(void *addr, size_t size, unsigned access)
{
    int saved = errno;
    int err = mprotect(addr, size, prot_of(access)) ? errno : 0;
    errno = saved;
    return err;
}

/* madvise(MADV_DONTNEED) + mprotect(PROT_NONE) would leave the commit charge in
 * place; a fresh mapping over our own range drops pages and charge at once, and
 * the pages read zero when made accessible again.  MAP_FIXED is safe only
 * because the manager owns the range (never over foreign memory). */
static int linux_decommit(void *addr, size_t size)
{
    int saved = errno, err = 0;
    void *p = mmap(addr, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    if (p == MAP_FAILED)
        err = errno;
    errno = saved;
    return err;
}

/* Does this kernel know MADV_FREE (Linux 4.5)?  Asked once, at start-up
 * (caps_init), with an empty range: madvise(2) accepts that for any advice it
 * knows and refuses one it does not with EINVAL. */
static bool madv_free_known = true;

/* One advice, never two: an EINVAL for MADV_FREE over a range with a locked
 * page (mlock) comes after the pages before it were already freed, and
 * falling back to MADV_DONTNEED there would zero them at once. */
static int linux_reset(void *addr, size_t size)
{
    int saved = errno;
    hostmem__os_caps_get();
    int advice = madv_free_known ? MADV_FREE : MADV_DONTNEED;
    int err = madvise(addr, size, advice) ? errno : 0;
    errno = saved;
    return err;
}

static int linux_advise_huge(void *addr, size_t size)
{
    int saved = errno;
    int err = madvise(addr, size, MADV_HUGEPAGE) ? errno : 0;
    errno = saved;
    return err;
}

static hostmem__os_caps caps; /* probed once (caps_init) */

const hostmem__os hostmem__os_linux = {
    .reserve = linux_reserve,
    .release = linux_release,
    .protect = linux_protect,
    .decommit = linux_decommit,
    .reset = linux_reset,
    .advise_huge = linux_advise_huge,
    .query = hostmem__linux_query,
    .watch = hostmem__linux_watch,
    .watch_reset = hostmem__linux_watch_reset,
    .watch_scan = hostmem__linux_watch_scan,
};

/* ---- the seam and the capabilities ----------------------------------------- */

static const hostmem__os *_Atomic current_os = &hostmem__os_linux;

const hostmem__os *hostmem__os_get(void) { return atomic_load_explicit(&current_os, memory_order_acquire); }

void hostmem__os_set(const hostmem__os *ops)
{
    atomic_store_explicit(&current_os, ops ? ops : &hostmem__os_linux, memory_order_release);
}

static pthread_once_t caps_once = PTHREAD_ONCE_INIT;
static const hostmem__os_caps *_Atomic caps_fake;

static size_t read_size_file(const char *path)
{
    char buf[64];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = 0;
    return (size_t)strtoull(buf, NULL, 10);
}

/* /proc/self was resolved when its descriptors were opened: a child made by
 * fork() must open its own (and its own userfaultfd: the parent's names the
 * parent's memory). */
static void linux_reset_in_child(void)
{
    hostmem__linux_query_reset_in_child();
    hostmem__linux_watch_close();
}

/* Write watch (W1) is probed at first use.  A probe that could not tell --
 * no descriptor or memory left at that moment -- decides nothing: the next
 * call that asks probes again, and fails meanwhile with that errno (P7),
 * not with "not implemented". */
static _Atomic int watch_known; /* 0: not yet, 1: works, -1: the kernel lacks it */
static pthread_mutex_t watch_lock = PTHREAD_MUTEX_INITIALIZER;

static int watch_probe(void)
{
    int err = hostmem__linux_watch_probe(caps.page_size);
    bool transient = err == EMFILE || err == ENFILE || err == ENOMEM || err == EAGAIN || err == EINTR;
    if (!err || !transient) {
        caps.write_watch = !err; /* before watch_known publishes it */
        atomic_store_explicit(&watch_known, err ? -1 : 1, memory_order_release);
    }
    return err;
}

int hostmem__os_watch_ready(void)
{
    const hostmem__os_caps *c = hostmem__os_caps_get();
    if (c != &caps) /* a test's capabilities */
        return c->write_watch ? 0 : EOPNOTSUPP;
    int known = atomic_load_explicit(&watch_known, memory_order_acquire), err = 0;
    if (!known) {
        pthread_mutex_lock(&watch_lock);
        if (!atomic_load_explicit(&watch_known, memory_order_acquire))
            err = watch_probe();
        known = atomic_load_explicit(&watch_known, memory_order_acquire);
        pthread_mutex_unlock(&watch_lock);
    }
    return known > 0 ? 0 : known < 0 ? EOPNOTSUPP : err;
}

static void caps_init(void)
{
    long ps = sysconf(_SC_PAGESIZE);
    caps.page_size = ps > 0 ? (size_t)ps : 4096;
    caps.huge_page_size = read_size_file("/sys/kernel/mm/transparent_hugepage/hpage_pmd_size");
    if (!caps.huge_page_size)
        caps.huge_page_size = (size_t)2 << 20;
    caps.user_end = (uintptr_t)1 << HOSTMEM_VA_BITS;
#if defined(__x86_64__)
    caps.map_end = caps.user_end - caps.page_size;
#else
    caps.map_end = caps.user_end;
#endif
    int saved = errno;
    madv_free_known = !(madvise((void *)caps.page_size, 0, MADV_FREE) && errno == EINVAL);
    errno = saved;
    pthread_atfork(NULL, NULL, linux_reset_in_child);
    (void)watch_probe();
}

const hostmem__os_caps *hostmem__os_caps_get(void)
{
    pthread_once(&caps_once, caps_init);
    const hostmem__os_caps *fake = atomic_load_explicit(&caps_fake, memory_order_acquire);
    return fake ? fake : &caps;
}

void hostmem__os_caps_set(const hostmem__os_caps *c)
{
    pthread_once(&caps_once, caps_init);
    atomic_store_explicit(&caps_fake, c, memory_order_release);
}

int hostmem__os_map_meta(size_t size, void **out)
{
    int saved = errno, err = 0;
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        err = errno;
    else
        *out = p;
    errno = saved;
    return err;
}

int hostmem__os_unmap_meta(void *addr, size_t size) { return linux_release(addr, size); }
