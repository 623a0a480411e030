/*
 * os.h: the OS contract.  Every primitive the manager needs from the kernel,
 * with its pre- and postconditions.  The os_linux*.c files (os_linux.h says
 * which holds what) are the only implementation and the only files that
 * speak POSIX (mmap, mprotect, madvise, munmap).
 *
 * Every primitive returns 0 on success or an errno value; none sets errno,
 * none allocates, none takes a lock, all are async-signal-safe except
 * query's fallback path (which reads /proc/self/maps with read(2)).
 *
 * Tests replace the primitives through hostmem__os_set(): a replacement can
 * fail the Nth call with a chosen errno, then delegate to the real one
 * (hostmem__os_linux) for the rest.
 */
#ifndef HOSTMEM_OS_H
#define HOSTMEM_OS_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Access rights, independent of PROT_* so that only os_linux*.c need <sys/mman.h>. */
enum {
    HOSTMEM_ACCESS_NONE = 0,
    HOSTMEM_ACCESS_READ = 1,
    HOSTMEM_ACCESS_WRITE = 2,
    HOSTMEM_ACCESS_EXEC = 4,
};

/* What the kernel says is mapped at an address (query outside our regions). */
typedef struct hostmem__os_mapping {
    uintptr_t start, end; /* the mapping covering the address, or the next one above it */
    unsigned access;      /* HOSTMEM_ACCESS_* bits */
    bool shared;          /* MAP_SHARED */
    bool file;            /* backed by a file (inode != 0) */
    bool image;           /* that file has an executable mapping in this process */
    bool found;           /* false: nothing mapped at or above the address */
} hostmem__os_mapping;

/* A run of pages [start, end), page-aligned (write-watch scans). */
typedef struct hostmem__os_range {
    uintptr_t start, end;
} hostmem__os_range;

typedef struct hostmem__os {
    /* Map `size` bytes of inaccessible anonymous memory, not charged until made
     * writable.  addr == NULL: anywhere, *out set to the result.  addr != NULL
     * (page-aligned): exactly there, EEXIST when anything is mapped in the range
     * (never replaces a mapping).  size > 0, page multiple. */
    int (*reserve)(void *addr, size_t size, void **out);
    /* Unmap [addr, addr+size), which the manager owns.  Page-aligned. */
    int (*release)(void *addr, size_t size);
    /* Set access of [addr, addr+size), which the manager owns and reserved. */
    int (*protect)(void *addr, size_t size, unsigned access);
    /* Give the pages of [addr, addr+size) back: afterwards they are inaccessible,
     * uncharged and read zero when made accessible again.  The manager owns the
     * range (this replaces the mapping in place). */
    int (*decommit)(void *addr, size_t size);
    /* Mark the data of [addr, addr+size) disposable (contents afterwards zero or intact). */
    int (*reset)(void *addr, size_t size);
    /* Hint that [addr, addr+size) should use huge pages; failure is not an error. */
    int (*advise_huge)(void *addr, size_t size);
    /* Describe the mapping covering addr or the next one above it. */
    int (*query)(uintptr_t addr, hostmem__os_mapping *out);

    /* Write watch (W1), only where caps.write_watch.  The kernel
     * tracks writes per page without a fault reaching the process: every
     * write, the host's or the kernel's (read(2) into the page), marks the
     * page written.  A tracked range loses its tracking when its mapping is
     * replaced (decommit): watch it again.  Ranges page-aligned, size > 0,
     * owned by the manager. */
    /* Track writes to [addr, addr+size), nothing per page yet: a page reads
     * as written once touched, until watch_reset protects it. */
    int (*watch)(void *addr, size_t size);
    /* No page of the tracked range [addr, addr+size) reads as written any
     * more (costs per page, touched or not: committed pages only). */
    int (*watch_reset)(void *addr, size_t size);
    /* The written pages of the tracked range [addr, addr+size), in address
     * order, as at most `len` ranges holding at most `max_pages` pages.  With
     * `reset`, exactly the pages reported stop reading as written.  *out_n:
     * ranges stored; *out_next: where the walk stopped (addr + size once the
     * whole range was covered). */
    int (*watch_scan)(void *addr, size_t size, bool reset, size_t max_pages, hostmem__os_range *out,
                      size_t len, size_t *out_n, uintptr_t *out_next);
} hostmem__os;

/* Capabilities, filled once at first use. */
typedef struct hostmem__os_caps {
    size_t page_size;      /* P */
    size_t huge_page_size; /* transparent huge page size, 0 if unknown */
    uintptr_t user_end;    /* first address past user space (2^47 on x86-64 4-level) */
    uintptr_t map_end;     /* first address the kernel never maps: on x86-64 it keeps
                              the top page of user space out (TASK_SIZE) */
    bool write_watch;      /* the watch primitives work: userfaultfd asynchronous
                              write-protect and PAGEMAP_SCAN (Linux 6.7+); known
                              once hostmem__os_watch_ready has answered */
} hostmem__os_caps;

extern const hostmem__os hostmem__os_linux;
const hostmem__os_caps *hostmem__os_caps_get(void);
/* Whether write watch works: 0, EOPNOTSUPP when the kernel lacks it, or the
 * errno that kept the probe from telling (no descriptor left...; it is
 * probed again at the next call). */
int hostmem__os_watch_ready(void);
/* Tests pretend the kernel has other capabilities (NULL: the probed ones). */
void hostmem__os_caps_set(const hostmem__os_caps *caps);
/* The primitives in use; tests swap them (NULL restores the real ones). */
const hostmem__os *hostmem__os_get(void);
void hostmem__os_set(const hostmem__os *ops);
/* The two ways linux_query asks the kernel, for tests that compare them:
 * the PROCMAP_QUERY ioctl (ENOTTY before Linux 6.11) and /proc/self/maps. */
int hostmem__os_query_ioctl(uintptr_t addr, hostmem__os_mapping *out);
int hostmem__os_query_maps_file(uintptr_t addr, hostmem__os_mapping *out);
/* Readable, writable, zeroed anonymous memory for the manager's own bookkeeping
 * (meta.c), never from the process heap.  Not replaceable by tests: failing it
 * would only test the metadata allocator.  size > 0, page multiple. */
int hostmem__os_map_meta(size_t size, void **out);
int hostmem__os_unmap_meta(void *addr, size_t size);
/* Install, once per process, a SIGSEGV handler that calls on_fault(info) and
 * returns -- retrying the faulting access -- when it answers true, and else
 * hands the fault to the handler installed before it (the default action when
 * there was none).  It stays installed.  0 or errno. */
int hostmem__os_fault_hook(bool (*on_fault)(const siginfo_t *info));
/* Memory in use / available for the system (get_memory_load without a limit). */
int hostmem__os_meminfo(uint64_t *total, uint64_t *available);
/* The calling thread's kernel id (a failed internal assertion names lock owners by it). */
int hostmem__os_thread_id(void);
/* Write msg[0, len) to stderr and abort the process (a failed internal
 * assertion).  Async-signal-safe. */
__attribute__((noreturn)) void hostmem__os_abort(const char *msg, size_t len);

#endif
