/*
 * procmap.h: the kernel's own answer to "what is mapped at X", the
 * PROCMAP_QUERY ioctl on /proc/self/maps (Linux 6.11).  Defined here when
 * <linux/fs.h> predates it; the layout is the kernel's ABI (104 bytes).
 */
#ifndef HOSTMEM_BENCH_PROCMAP_H
#define HOSTMEM_BENCH_PROCMAP_H

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <linux/fs.h>

#ifndef PROCMAP_QUERY
struct procmap_query {
    uint64_t size;          /* sizeof(struct procmap_query) */
    uint64_t query_flags;   /* in: PROCMAP_QUERY_* */
    uint64_t query_addr;    /* in */
    uint64_t vma_start;     /* out */
    uint64_t vma_end;       /* out */
    uint64_t vma_flags;     /* out: PROCMAP_QUERY_VMA_* */
    uint64_t vma_page_size; /* out */
    uint64_t vma_offset;    /* out */
    uint64_t inode;         /* out */
    uint32_t dev_major;     /* out */
    uint32_t dev_minor;     /* out */
    uint32_t vma_name_size; /* in/out: 0 = no name wanted */
    uint32_t build_id_size; /* in/out: 0 = no build id wanted */
    uint64_t vma_name_addr; /* in */
    uint64_t build_id_addr; /* in */
};
#define PROCMAP_QUERY _IOWR('f', 17, struct procmap_query)
#define PROCMAP_QUERY_VMA_READABLE 0x01
#define PROCMAP_QUERY_VMA_WRITABLE 0x02
#define PROCMAP_QUERY_VMA_EXECUTABLE 0x04
#define PROCMAP_QUERY_VMA_SHARED 0x08
#define PROCMAP_QUERY_COVERING_OR_NEXT_VMA 0x10
#define PROCMAP_QUERY_FILE_BACKED_VMA 0x20
#endif

_Static_assert(sizeof(struct procmap_query) == 104, "PROCMAP_QUERY ABI");

static inline int procmap_open(void)
{
    return open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
}

/* The mapping covering addr, or the next one above it.  0 or an errno
 * (ENOTTY: the kernel is older than 6.11). */
static inline int procmap_query(int fd, const void *addr, struct procmap_query *q)
{
    *q = (struct procmap_query){.size = sizeof *q,
                                .query_flags = PROCMAP_QUERY_COVERING_OR_NEXT_VMA,
                                .query_addr = (uint64_t)(uintptr_t)addr};
    return ioctl(fd, PROCMAP_QUERY, q) == 0 ? 0 : errno;
}

/* Whether this kernel answers PROCMAP_QUERY. */
static inline int procmap_available(void)
{
    int fd = procmap_open();
    if (fd < 0)
        return 0;
    struct procmap_query q;
    int rc = procmap_query(fd, (const void *)&procmap_available, &q);
    close(fd);
    return rc == 0;
}

#endif
