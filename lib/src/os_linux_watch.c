/*
 * os_linux_watch.c: os.h's write-watch primitives over Linux.  Every
 * function returns 0 or an errno value and leaves errno as it found it.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/userfaultfd.h>

#include "internal.h"
#include "os_linux.h"

/*
 * A range registered with a userfaultfd in write-protect mode, with the
 * features WP_ASYNC (the kernel resolves a write to a protected page itself,
 * no event, no signal) and WP_UNPOPULATED (pages never touched are protected
 * too), keeps one bit per page: protected = not written since the last
 * reset.  The PAGEMAP_SCAN ioctl of /proc/self/pagemap lists the pages whose
 * bit is clear (PAGE_IS_WRITTEN) and, with PM_SCAN_WP_MATCHING, protects
 * exactly the pages it listed again.  Protecting a page the process never
 * touched leaves a marker in its page table: registering costs nothing per
 * page, protecting does (8 bytes of page table a page, and time), so the
 * library protects committed pages only.  Both arrived in Linux 6.7; the
 * structures and constants below are from include/uapi/linux/fs.h and
 * userfaultfd.h of that version, which older headers lack.
 */
struct hostmem_page_region {
    uint64_t start, end, categories;
};
struct hostmem_pm_scan_arg {
    uint64_t size, flags, start, end, walk_end, vec, vec_len, max_pages;
    uint64_t category_inverted, category_mask, category_anyof_mask, return_mask;
};
#define HOSTMEM_PAGEMAP_SCAN _IOWR('f', 16, struct hostmem_pm_scan_arg)
#define HOSTMEM_PM_SCAN_WP_MATCHING 1u
#define HOSTMEM_PM_SCAN_CHECK_WPASYNC 2u
#define HOSTMEM_PAGE_IS_WRITTEN 2u
#define HOSTMEM_UFFD_FEATURE_WP_UNPOPULATED (1u << 13)
#define HOSTMEM_UFFD_FEATURE_WP_ASYNC (1u << 15)
#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif

/* One userfaultfd and one pagemap descriptor per process.  Both name this
 * process's address space: a child made by fork() opens its own. */
static pthread_mutex_t watch_lock = PTHREAD_MUTEX_INITIALIZER;
static _Atomic int watch_uffd = -1, watch_pagemap = -1;

void hostmem__linux_watch_close(void)
{
    int fd = atomic_exchange(&watch_uffd, -1);
    if (fd >= 0)
        close(fd);
    fd = atomic_exchange(&watch_pagemap, -1);
    if (fd >= 0)
        close(fd);
}

/* Open both descriptors (once per process).  0 or errno. */
static int watch_open(void)
{
    if (atomic_load(&watch_pagemap) >= 0)
        return 0;
    int err = 0;
    pthread_mutex_lock(&watch_lock);
    if (atomic_load(&watch_pagemap) < 0) {
        int uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);
        if (uffd < 0) {
            err = errno;
        } else {
            struct uffdio_api api = {
                .api = UFFD_API,
                .features = HOSTMEM_UFFD_FEATURE_WP_ASYNC | HOSTMEM_UFFD_FEATURE_WP_UNPOPULATED,
            };
            int pm = -1;
            if (ioctl(uffd, UFFDIO_API, &api))
                err = errno;
            else if ((pm = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC)) < 0)
                err = errno;
            if (err) {
                close(uffd);
            } else {
                atomic_store(&watch_uffd, uffd);
                atomic_store(&watch_pagemap, pm);
            }
        }
    }
    pthread_mutex_unlock(&watch_lock);
    return err;
}

int hostmem__linux_watch_reset(void *addr, size_t size)
{
    int saved = errno, err = watch_open();
    if (!err) {
        struct uffdio_writeprotect wp = {
            .range = {.start = (uintptr_t)addr, .len = size},
            .mode = UFFDIO_WRITEPROTECT_MODE_WP,
        };
        err = ioctl(atomic_load(&watch_uffd), UFFDIO_WRITEPROTECT, &wp) ? errno : 0;
    }
    errno = saved;
    return err;
}

int hostmem__linux_watch(void *addr, size_t size)
{
    int saved = errno, err = watch_open();
    if (!err) {
        struct uffdio_register reg = {
            .range = {.start = (uintptr_t)addr, .len = size},
            .mode = UFFDIO_REGISTER_MODE_WP,
        };
        err = ioctl(atomic_load(&watch_uffd), UFFDIO_REGISTER, &reg) ? errno : 0;
    }
    errno = saved;
    return err;
}

int hostmem__linux_watch_scan(void *addr, size_t size, bool reset, size_t max_pages,
                              hostmem__os_range *out, size_t len, size_t *out_n, uintptr_t *out_next)
{
    int saved = errno, err = watch_open();
    struct hostmem_page_region vec[256]; /* 6 KiB: one ioctl per 256 written runs */
    *out_n = 0;
    *out_next = (uintptr_t)addr;
    if (err)
        goto done;
    if (len > sizeof vec / sizeof vec[0])
        len = sizeof vec / sizeof vec[0];
    struct hostmem_pm_scan_arg arg = {
        .size = sizeof arg,
        .flags = HOSTMEM_PM_SCAN_CHECK_WPASYNC | (reset ? HOSTMEM_PM_SCAN_WP_MATCHING : 0),
        .start = (uintptr_t)addr,
        .end = (uintptr_t)addr + size,
        .vec = (uintptr_t)vec,
        .vec_len = len,
        .max_pages = max_pages,
        .category_mask = HOSTMEM_PAGE_IS_WRITTEN,
        .return_mask = HOSTMEM_PAGE_IS_WRITTEN,
    };
    long n = ioctl(atomic_load(&watch_pagemap), HOSTMEM_PAGEMAP_SCAN, &arg);
    if (n < 0) {
        err = errno;
        goto done;
    }
    for (long i = 0; i < n; i++)
        out[i] = (hostmem__os_range){.start = vec[i].start, .end = vec[i].end};
    *out_n = (size_t)n;
    *out_next = arg.walk_end;
done:
    errno = saved;
    return err;
}

/* A small mapping is watched, written once and scanned: 0 when it works,
 * the errno of the step that failed otherwise (EOPNOTSUPP: the scan did not
 * see the write as it should). */
int hostmem__linux_watch_probe(size_t page_size)
{
    size_t ps = page_size, pages = 4;
    int saved = errno;
    void *p = mmap(NULL, pages * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        int err = errno;
        errno = saved;
        return err;
    }
    hostmem__os_range r[4];
    size_t n;
    uintptr_t next;
    int err = hostmem__linux_watch(p, pages * ps);
    if (!err)
        err = hostmem__linux_watch_reset(p, pages * ps);
    if (!err) {
        ((volatile char *)p)[ps] = 1;
        err = hostmem__linux_watch_scan(p, pages * ps, true, 0, r, 4, &n, &next);
        if (!err && !(n == 1 && r[0].start == (uintptr_t)p + ps && r[0].end == (uintptr_t)p + 2 * ps))
            err = EOPNOTSUPP;
        if (!err)
            err = hostmem__linux_watch_scan(p, pages * ps, false, 0, r, 4, &n, &next);
        if (!err && n != 0)
            err = EOPNOTSUPP;
    }
    munmap(p, pages * ps);
    if (err)
        hostmem__linux_watch_close();
    return err;
}
