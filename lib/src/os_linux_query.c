/*
 * os_linux_query.c: os.h's query over Linux: what the kernel maps at an
 * address, from the PROCMAP_QUERY ioctl when the kernel has it, else from
 * /proc/self/maps.  Every function returns 0 or an errno value and leaves
 * errno as it found it.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "internal.h"
#include "os_linux.h"

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

static _Atomic int maps_fd = -1;
static _Atomic int procmap_query_works = 1;

void hostmem__linux_query_reset_in_child(void)
{
    /* /proc/self was resolved at open time: the child must open its own. */
    int fd = atomic_exchange(&maps_fd, -1);
    if (fd >= 0)
        close(fd);
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

/* A MAP_SHARED | MAP_ANONYMOUS mapping: the kernel backs it with a deleted
 * shmem file it names "/dev/zero (deleted)".  It is anonymous memory to the
 * process that made it (S9: MEM_PRIVATE), not a file mapping. */
#define SHARED_ANON_NAME "/dev/zero (deleted)"

static bool shared_anon_pmq(int fd, const struct hostmem_procmap_query *q)
{
    if (!(q->vma_flags & PMQ_SHARED) || q->dev_major != 0 || !q->inode)
        return false;
    char name[sizeof SHARED_ANON_NAME + 1] = {0}; /* (valgrind cannot see the kernel write it) */
    struct hostmem_procmap_query n;
    memset(&n, 0, sizeof n);
    n.size = sizeof n;
    n.query_flags = 0; /* the mapping covering the address */
    n.query_addr = q->vma_start;
    n.vma_name_addr = (uintptr_t)name;
    n.vma_name_size = sizeof name;
    if (ioctl(fd, HOSTMEM_PROCMAP_QUERY, &n) || n.vma_start != q->vma_start || n.inode != q->inode)
        return false; /* a longer name (ENAMETOOLONG) or a mapping that changed: a file */
    return n.vma_name_size > 0 && strcmp(name, SHARED_ANON_NAME) == 0;
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
    out->file = q.inode != 0 && !shared_anon_pmq(fd, &q);
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
    bool shared_anon; /* named SHARED_ANON_NAME */
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
    while (*s == ' ')
        s++;
    l->shared_anon = l->shared && l->dev_major == 0 && strcmp(s, SHARED_ANON_NAME) == 0;
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
    f->out->file = l->inode != 0 && !l->shared_anon;
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
int hostmem__linux_query(uintptr_t addr, hostmem__os_mapping *out)
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
