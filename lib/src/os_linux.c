/*
 * os_linux.c: the OS primitives of os.h over Linux.  The only file that
 * speaks POSIX memory calls.  Every function returns 0 or an errno value and
 * leaves errno as it found it.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/userfaultfd.h>

#include "internal.h"

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif
#ifndef MADV_FREE
#define MADV_FREE 8
#endif

/* PROCMAP_QUERY (Linux 6.11, include/uapi/linux/fs.h), declared here because
 * older kernel headers lack it; the ABI is extensible by `size`. */
struct hostmem_procmap_query {
    uint64_t size;
    uint64_t query_flags;
    uint64_t query_addr;
    uint64_t vma_start;
    uint64_t vma_end;
    uint64_t vma_flags;
    uint64_t vma_page_size;
    uint64_t vma_offset;
    uint64_t inode;
    uint32_t dev_major;
    uint32_t dev_minor;
    uint32_t vma_name_size;
    uint32_t build_id_size;
    uint64_t vma_name_addr;
    uint64_t build_id_addr;
};
#define HOSTMEM_PROCMAP_QUERY _IOWR('f', 17, struct hostmem_procmap_query)
#define PMQ_READABLE 0x01u
#define PMQ_WRITABLE 0x02u
#define PMQ_EXECUTABLE 0x04u
#define PMQ_SHARED 0x08u
#define PMQ_COVERING_OR_NEXT 0x10u
#define PMQ_FILE_BACKED 0x20u

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

/* ---- query: PROCMAP_QUERY, else /proc/self/maps ---------------------------- */

static _Atomic int maps_fd = -1;
static _Atomic int procmap_query_works = 1;

static void watch_close(void);

static void maps_fd_reset_in_child(void)
{
    /* /proc/self was resolved at open time: the child must open its own
     * (and its own userfaultfd: the parent's names the parent's memory). */
    int fd = atomic_exchange(&maps_fd, -1);
    if (fd >= 0)
        close(fd);
    watch_close();
}

static int maps_open(void)
{
    int fd = atomic_load(&maps_fd);
    if (fd >= 0)
        return fd;
    fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int expected = -1;
    if (!atomic_compare_exchange_strong(&maps_fd, &expected, fd)) {
        close(fd);
        fd = expected;
    }
    return fd;
}

static int pmq(int fd, uint64_t addr, uint64_t flags, struct hostmem_procmap_query *q)
{
    memset(q, 0, sizeof *q);
    q->size = sizeof *q;
    q->query_flags = flags;
    q->query_addr = addr;
    return ioctl(fd, HOSTMEM_PROCMAP_QUERY, q) ? errno : 0;
}

static unsigned access_of_pmq(uint64_t f)
{
    return ((f & PMQ_READABLE) ? HOSTMEM_ACCESS_READ : 0) |
           ((f & PMQ_WRITABLE) ? HOSTMEM_ACCESS_WRITE : 0) |
           ((f & PMQ_EXECUTABLE) ? HOSTMEM_ACCESS_EXEC : 0);
}

static int query_ioctl(int fd, uintptr_t addr, hostmem__os_mapping *out)
{
    struct hostmem_procmap_query q;
    int err = pmq(fd, addr, PMQ_COVERING_OR_NEXT, &q);
    if (err == ENOENT) {
        out->found = false;
        return 0;
    }
    if (err)
        return err;
    out->found = true;
    out->start = q.vma_start;
    out->end = q.vma_end;
    out->access = access_of_pmq(q.vma_flags);
    out->shared = q.vma_flags & PMQ_SHARED;
    out->file = q.inode != 0;
    out->image = false;
    if (out->file) {
        /* An image: the same file also has an executable mapping here. */
        uint64_t ino = q.inode, maj = q.dev_major, min = q.dev_minor;
        struct hostmem_procmap_query f;
        uint64_t at = 0;
        while ((err = pmq(fd, at, PMQ_COVERING_OR_NEXT | PMQ_FILE_BACKED, &f)) == 0) {
            if (f.inode == ino && f.dev_major == maj && f.dev_minor == min &&
                (f.vma_flags & PMQ_EXECUTABLE)) {
                out->image = true;
                break;
            }
            at = f.vma_end;
        }
        /* ENOENT: no file mapping above; anything else means the scan was cut
         * short and MEM_MAPPED might be wrong. */
        if (err && err != ENOENT)
            return err;
    }
    return 0;
}

/* One line of /proc/self/maps: "start-end perms offset maj:min inode path". */
typedef struct maps_line {
    uintptr_t start, end;
    unsigned access;
    bool shared;
    unsigned long dev_major, dev_minor, inode;
} maps_line;

static const char *parse_hex(const char *s, unsigned long *out)
{
    unsigned long v = 0;
    for (;; s++) {
        unsigned d;
        if (*s >= '0' && *s <= '9')
            d = (unsigned)(*s - '0');
        else if (*s >= 'a' && *s <= 'f')
            d = (unsigned)(*s - 'a' + 10);
        else
            break;
        v = v * 16 + d;
    }
    *out = v;
    return s;
}

static bool parse_line(const char *s, maps_line *l)
{
    unsigned long v, off;
    s = parse_hex(s, &v);
    l->start = v;
    if (*s++ != '-')
        return false;
    s = parse_hex(s, &v);
    l->end = v;
    if (*s++ != ' ' || !s[0] || !s[1] || !s[2] || !s[3])
        return false;
    l->access = (s[0] == 'r' ? HOSTMEM_ACCESS_READ : 0) | (s[1] == 'w' ? HOSTMEM_ACCESS_WRITE : 0) |
                (s[2] == 'x' ? HOSTMEM_ACCESS_EXEC : 0);
    l->shared = s[3] == 's';
    s += 5;
    s = parse_hex(s, &off);
    s++;
    s = parse_hex(s, &l->dev_major);
    s++;
    s = parse_hex(s, &l->dev_minor);
    s++;
    unsigned long ino = 0;
    while (*s >= '0' && *s <= '9')
        ino = ino * 10 + (unsigned long)(*s++ - '0');
    l->inode = ino;
    return true;
}

/* Calls fn for each line; stops when fn returns true.  No allocation, so it
 * may run where malloc may not (a query from a signal handler).  0 once the
 * file was read to its end (or fn stopped it), else the errno of the open or
 * read that failed: a failed read is never taken for the end of the file,
 * which would describe everything after it as unmapped (S9). */
static int maps_each(bool (*fn)(const maps_line *, void *), void *ctx)
{
    int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno;
    char buf[4096];
    size_t have = 0;
    bool done = false, skipping = false; /* skipping: the rest of an overlong line */
    int err = 0;
    while (!done) {
        ssize_t n = read(fd, buf + have, sizeof buf - 1 - have);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            err = errno;
            break;
        }
        if (n == 0)
            break;
        have += (size_t)n;
        buf[have] = 0;
        char *line = buf, *nl;
        while (!done && (nl = memchr(line, '\n', have - (size_t)(line - buf)))) {
            *nl = 0;
            maps_line l;
            if (!skipping && parse_line(line, &l))
                done = fn(&l, ctx);
            skipping = false;
            line = nl + 1;
        }
        have -= (size_t)(line - buf);
        if (!done && have == sizeof buf - 1) {
            /* A line longer than the buffer (a path near PATH_MAX): its fields
             * are all in front of the path, so parse it now and drop the rest. */
            maps_line l;
            if (!skipping && parse_line(buf, &l))
                done = fn(&l, ctx);
            skipping = true;
            have = 0;
            continue;
        }
        memmove(buf, line, have);
    }
    close(fd);
    return err;
}

typedef struct maps_find {
    uintptr_t addr;
    hostmem__os_mapping *out;
    unsigned long dev_major, dev_minor, inode;
} maps_find;

static bool find_covering(const maps_line *l, void *ctx)
{
    maps_find *f = ctx;
    if (l->end <= f->addr)
        return false;
    if (l->start >= hostmem__os_caps_get()->user_end)
        return true; /* [vsyscall]: kernel space, which the ioctl leaves out too */
    f->out->found = true;
    f->out->start = l->start;
    f->out->end = l->end;
    f->out->access = l->access;
    f->out->shared = l->shared;
    f->out->file = l->inode != 0;
    f->dev_major = l->dev_major;
    f->dev_minor = l->dev_minor;
    f->inode = l->inode;
    return true;
}

static bool find_exec_of_file(const maps_line *l, void *ctx)
{
    maps_find *f = ctx;
    if (l->inode == f->inode && l->dev_major == f->dev_major && l->dev_minor == f->dev_minor &&
        (l->access & HOSTMEM_ACCESS_EXEC)) {
        f->out->image = true;
        return true;
    }
    return false;
}

static int query_maps_file(uintptr_t addr, hostmem__os_mapping *out)
{
    maps_find f = {.addr = addr, .out = out};
    out->found = false;
    out->image = false;
    int err = maps_each(find_covering, &f);
    if (!err && out->found && out->file)
        err = maps_each(find_exec_of_file, &f);
    return err;
}

int hostmem__os_query_ioctl(uintptr_t addr, hostmem__os_mapping *out)
{
    int saved = errno;
    int fd = maps_open();
    int err = fd < 0 ? errno : query_ioctl(fd, addr, out);
    errno = saved;
    return err;
}

int hostmem__os_query_maps_file(uintptr_t addr, hostmem__os_mapping *out)
{
    int saved = errno;
    int err = query_maps_file(addr, out);
    errno = saved;
    return err;
}

/* The ioctl when the kernel has it, else the file.  Only ENOTTY ("no such
 * ioctl": a kernel before 6.11) gives up the ioctl for good; any other error
 * that is not about resources (EINVAL, EOPNOTSUPP, an interrupted wait)
 * answers this one call from the file.  Running out of descriptors or memory
 * fails the call: the file would need them too. */
static int linux_query(uintptr_t addr, hostmem__os_mapping *out)
{
    int saved = errno, err;
    if (atomic_load(&procmap_query_works)) {
        int fd = maps_open();
        if (fd < 0) {
            err = errno;
            goto done;
        }
        err = query_ioctl(fd, addr, out);
        for (unsigned tries = 0; err == EINTR && tries < 3; tries++)
            err = query_ioctl(fd, addr, out);
        if (err == EBADF || err == ENOTTY) {
            /* The host may have closed our descriptor (a daemon closing every
             * inherited one), and maybe opened something else under its
             * number: ask through a fresh one.  Never close the old number,
             * which may be the host's now. */
            int nfd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
            if (nfd < 0) {
                err = errno;
                goto done;
            }
            int again = query_ioctl(nfd, addr, out);
            if (again == ENOTTY) {
                close(nfd); /* the kernel has no such ioctl: the old one was ours */
            } else {
                int expected = fd;
                if (!atomic_compare_exchange_strong(&maps_fd, &expected, nfd))
                    close(nfd); /* another thread replaced it first */
                err = again;
            }
        }
        if (err != ENOTTY && err != EINVAL && err != EOPNOTSUPP && err != EINTR)
            goto done;
        if (err == ENOTTY)
            atomic_store(&procmap_query_works, 0);
    }
    err = query_maps_file(addr, out);
done:
    errno = saved;
    return err;
}

static hostmem__os_caps caps; /* probed once (caps_init) */

/* ---- write watch: userfaultfd asynchronous write-protect + PAGEMAP_SCAN ----
 *
 * A range registered with a userfaultfd in write-protect mode, with the
 * features WP_ASYNC (the kernel resolves a write to a protected page itself,
 * no event, no signal) and WP_UNPOPULATED (pages never touched are protected
 * too), keeps one bit per page: protected = not written since the last
 * reset.  The PAGEMAP_SCAN ioctl of /proc/self/pagemap lists the pages whose
 * bit is clear (PAGE_IS_WRITTEN) and, with PM_SCAN_WP_MATCHING, protects
 * exactly the pages it listed again.  Both arrived in Linux 6.7; the
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

static void watch_close(void)
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

static int linux_watch_reset(void *addr, size_t size)
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

static int linux_watch(void *addr, size_t size)
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
    return err ? err : linux_watch_reset(addr, size);
}

static int linux_watch_scan(void *addr, size_t size, bool reset, size_t max_pages,
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

/* Whether the kernel tracks writes as the watch primitives need: a small
 * mapping is watched, written once and scanned. */
static bool watch_probe(void)
{
    size_t ps = caps.page_size, pages = 4;
    void *p = mmap(NULL, pages * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return false;
    bool ok = false;
    hostmem__os_range r[4];
    size_t n;
    uintptr_t next;
    if (!linux_watch(p, pages * ps)) {
        ((volatile char *)p)[ps] = 1;
        ok = !linux_watch_scan(p, pages * ps, true, 0, r, 4, &n, &next) && n == 1 &&
             r[0].start == (uintptr_t)p + ps && r[0].end == (uintptr_t)p + 2 * ps &&
             !linux_watch_scan(p, pages * ps, false, 0, r, 4, &n, &next) && n == 0;
    }
    munmap(p, pages * ps);
    if (!ok)
        watch_close();
    return ok;
}

const hostmem__os hostmem__os_linux = {
    .reserve = linux_reserve,
    .release = linux_release,
    .protect = linux_protect,
    .decommit = linux_decommit,
    .reset = linux_reset,
    .advise_huge = linux_advise_huge,
    .query = linux_query,
    .watch = linux_watch,
    .watch_reset = linux_watch_reset,
    .watch_scan = linux_watch_scan,
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

static void caps_init(void)
{
    long ps = sysconf(_SC_PAGESIZE);
    caps.page_size = ps > 0 ? (size_t)ps : 4096;
    caps.huge_page_size = read_size_file("/sys/kernel/mm/transparent_hugepage/hpage_pmd_size");
    if (!caps.huge_page_size)
        caps.huge_page_size = (size_t)2 << 20;
    caps.user_end = (uintptr_t)1 << HOSTMEM_VA_BITS;
    int saved = errno;
    madv_free_known = !(madvise((void *)caps.page_size, 0, MADV_FREE) && errno == EINVAL);
    errno = saved;
    pthread_atfork(NULL, NULL, maps_fd_reset_in_child);
    caps.write_watch = watch_probe();
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

int hostmem__os_meminfo(uint64_t *total, uint64_t *available)
{
    char buf[4096];
    int fd = open("/proc/meminfo", O_RDONLY | O_CLOEXEC), saved = errno;
    if (fd < 0)
        return errno;
    ssize_t n;
    do
        n = read(fd, buf, sizeof buf - 1);
    while (n < 0 && errno == EINTR);
    int err = n < 0 ? errno : n == 0 ? EIO : 0; /* the read's own errno (EAGAIN, ENOMEM...) */
    close(fd);
    errno = saved;
    if (err)
        return err;
    buf[n] = 0;
    const char *t = strstr(buf, "MemTotal:"), *a = strstr(buf, "MemAvailable:");
    if (!t || !a)
        return EIO;
    *total = strtoull(t + 9, NULL, 10) * 1024;
    *available = strtoull(a + 13, NULL, 10) * 1024;
    return 0;
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

/* ---- the SIGSEGV handler of config.guard_handler (W2) ------------------------ */

static pthread_mutex_t fault_hook_lock = PTHREAD_MUTEX_INITIALIZER;
static bool (*_Atomic fault_hook)(const siginfo_t *);
static struct sigaction fault_previous;

static void fault_chain(int sig, siginfo_t *info, void *context)
{
    if (fault_previous.sa_flags & SA_SIGINFO) {
        if (fault_previous.sa_sigaction) {
            fault_previous.sa_sigaction(sig, info, context);
            return;
        }
    } else if (fault_previous.sa_handler != SIG_DFL && fault_previous.sa_handler != SIG_IGN) {
        fault_previous.sa_handler(sig);
        return;
    }
    /* The default action (a fault cannot be ignored): the access faults again
     * on return and the process ends with SIGSEGV, as it would have. */
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    sigaction(sig, &dfl, NULL);
}

static void fault_on_signal(int sig, siginfo_t *info, void *context)
{
    int saved = errno;
    bool (*hook)(const siginfo_t *) = atomic_load(&fault_hook);
    if (hook && hook(info)) {
        errno = saved;
        return;
    }
    errno = saved;
    fault_chain(sig, info, context);
}

int hostmem__os_fault_hook(bool (*on_fault)(const siginfo_t *info))
{
    int err = 0, saved = errno;
    pthread_mutex_lock(&fault_hook_lock);
    if (!atomic_load(&fault_hook)) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_sigaction = fault_on_signal;
        sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESTART;
        sigemptyset(&sa.sa_mask);
        atomic_store(&fault_hook, on_fault);
        if (sigaction(SIGSEGV, &sa, &fault_previous)) {
            err = errno;
            atomic_store(&fault_hook, NULL);
        }
    }
    pthread_mutex_unlock(&fault_hook_lock);
    errno = saved;
    return err;
}
