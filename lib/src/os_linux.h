/*
 * os_linux.h: what the os_linux*.c files share, and no other file includes.
 * os.h is the contract; these are the pieces of its Linux implementation
 * that live in one file and are named in another (the table of primitives
 * in os_linux.c, the capability probe).
 *
 *   os_linux.c         mapping calls (reserve, release, protect, decommit,
 *                      reset), the table, the seam, the capabilities, meta
 *   os_linux_query.c   what the kernel maps at an address: PROCMAP_QUERY,
 *                      else /proc/self/maps
 *   os_linux_watch.c   write watch: userfaultfd write-protect + PAGEMAP_SCAN
 *   os_linux_system.c  the system around the mappings: memory load, the
 *                      SIGSEGV hook
 */
#ifndef HOSTMEM_OS_LINUX_H
#define HOSTMEM_OS_LINUX_H

#include "os.h"

/* ---- os_linux_query.c ----------------------------------------------------- */
/* os.h's query primitive. */
int hostmem__linux_query(uintptr_t addr, hostmem__os_mapping *out);
/* In a child made by fork(): forget the parent's /proc/self/maps descriptor. */
void hostmem__linux_query_reset_in_child(void);

/* ---- os_linux_watch.c ----------------------------------------------------- */
/* os.h's watch primitives. */
int hostmem__linux_watch(void *addr, size_t size);
int hostmem__linux_watch_reset(void *addr, size_t size);
int hostmem__linux_watch_scan(void *addr, size_t size, bool reset, size_t max_pages,
                              hostmem__os_range *out, size_t len, size_t *out_n, uintptr_t *out_next);
/* Whether the kernel tracks writes as the watch primitives need (pages of
 * `page_size` bytes).  Probed once, by the capabilities. */
int hostmem__linux_watch_probe(size_t page_size);
/* Close the write-watch descriptors (a child made by fork(), a failed probe). */
void hostmem__linux_watch_close(void);

#endif
