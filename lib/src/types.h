/*
 * types.h: the words of hostmem and the structures behind them.
 *
 * Glossary
 *   page      P bytes (the OS page size, 4096 here): the unit of state.
 *   granule   G = 64 KiB: the unit of address space; every region starts on one.
 *   region    one reservation: [base, base + size), size a page multiple.  The rest
 *             of its last granule is unusable for other regions (S4).
 *   run       a maximal stretch of pages of one region in the same state; a region
 *             keeps its pages as runs, so its metadata never grows with its size.
 *   state     per page: reserved or committed, the PAGE_* protection, and whether
 *             its data was reset (MEM_RESET) and is no longer provably intact;
 *             in a write-watch region also whether it was written before it was
 *             decommitted (the kernel tracks the writes of committed pages).
 *   watch     write watch (W1): which pages were written since the last reset.
 *   guard     PAGE_GUARD (W2): the first access faults, clears the guard and
 *             is reported to the host as a guard hit; the next one is plain.
 *   charge    committed pages * P: what a commit limit counts (committed_bytes).
 *   level     EMemoryCriticalLevel of a request: how deep into a limit it may go.
 *   ceiling   the charge a level may reach: task_percent / appdomain_percent / 100 %
 *             of the limit (P1).
 *   arena     address space the manager already holds (inaccessible, uncharged), out
 *             of which small regions are carved with no syscall; its free granules
 *             query as MEM_FREE.
 *   map       the address -> region index (a radix tree over granules), readable
 *             without a lock.
 */
#ifndef HOSTMEM_TYPES_H
#define HOSTMEM_TYPES_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <hostmem/hostmem.h>

#define HOSTMEM_GRANULE ((size_t)65536)
#define HOSTMEM_GRANULE_SHIFT 16
/* The map covers user space up to 2^47 (x86-64 with 4-level page tables; with
 * 5-level tables the kernel still maps nothing above 2^47 unless asked). */
#define HOSTMEM_VA_BITS 47

/* ---- page state, packed in 16 bits --------------------------------------- */
#define HOSTMEM_STATE_PROTECT_MASK 0x07ffu /* PAGE_* value, 0 for reserved pages */
#define HOSTMEM_STATE_COMMITTED 0x1000u
#define HOSTMEM_STATE_RESET 0x2000u        /* data disposable since MEM_RESET */
#define HOSTMEM_STATE_WRITTEN 0x4000u      /* write watch: written before a decommit (W1) */
#define HOSTMEM_STATE_CACHE_MASK ((uint32_t)(PAGE_NOCACHE | PAGE_WRITECOMBINE)) /* S11 */

/* A run: first page (relative to the region base) << 16 | state.
 * 48 bits of page index cover any region the map can hold. */
typedef uint64_t hostmem__run;
#define HOSTMEM_RUN(first, state) (((uint64_t)(first) << 16) | (uint64_t)(state))
#define HOSTMEM_RUN_FIRST(r) ((r) >> 16)
#define HOSTMEM_RUN_STATE(r) ((uint32_t)((r) & 0xffffu))

/* Run storage.  Arrays only grow; a replaced array is kept until the manager is
 * destroyed (at most as many bytes as the current one, by doubling), so a
 * lock-free reader that loaded the old pointer never touches freed memory. */
typedef struct hostmem__run_block {
    struct hostmem__run_block *retired; /* older, smaller arrays of this region */
    uint32_t cap;
    _Atomic hostmem__run v[];
} hostmem__run_block;

typedef struct hostmem__runs {
    hostmem__run_block *_Atomic block;
    _Atomic uint32_t n;
} hostmem__runs;

/* How a page-range operation changes each page's state. */
enum hostmem__page_op {
    HOSTMEM_PAGES_COMMIT,   /* committed, new protection, reset bit kept if committed */
    HOSTMEM_PAGES_DECOMMIT, /* reserved */
    HOSTMEM_PAGES_PROTECT,  /* new protection (committed pages only) */
    HOSTMEM_PAGES_RESET,    /* committed pages: reset bit set */
    HOSTMEM_PAGES_SET,      /* every page: exactly `state` (rollback) */
    HOSTMEM_PAGES_MARK_WRITTEN,  /* written mark set (W1: latched before a decommit) */
    HOSTMEM_PAGES_CLEAR_WRITTEN, /* written mark cleared (W1: reset) */
    HOSTMEM_PAGES_UNGUARD,       /* committed pages: PAGE_GUARD cleared (W2: one-shot) */
};

struct hostmem__arena;

/* One reservation.  Region structs are never freed while the manager lives
 * (a free list recycles them), so a lock-free reader may always dereference
 * one it found in the map; `seq` tells it whether what it read is consistent. */
/* Guard hits a region remembers for threads that report them late (W2). */
#define HOSTMEM_GUARD_RECENT 8

typedef struct hostmem__region {
    /* First line (the struct sits on a cache line, meta.c): what a query
     * reads.  Second: what a commit or decommit adds.  The rest after. */
    _Atomic uint32_t seq;      /* even: stable; odd: a writer is changing the fields below */
    _Atomic uint32_t alloc_protect;
    _Atomic uintptr_t base;
    _Atomic size_t size;       /* page multiple */
    _Atomic bool live;
    _Atomic bool making;       /* a reserve-and-commit not yet committed: query sees free
                                  space, other calls no region (S9) */
    _Atomic bool releasing;    /* its mapping is being unmapped: query waits (S9) */
    /* Own mapping whose last granule came from an arena: the rest of that
     * granule after the region is mapped too, and is unmapped with it. */
    _Atomic bool tail_mapped;
    _Atomic bool watched;      /* a write-watch region (MEM_WRITE_WATCH, W1) */
    _Atomic bool guarded;      /* has had guard pages: its runs keep room for their hits (guard.c) */
    struct hostmem__arena *_Atomic arena; /* carved from this arena, or NULL (own mapping) */
    hostmem__runs runs;
    /* Its summaries in the map (region_map.c, one per granule, 2 words
     * apart), or NULL when it has none; the value they hold now; the part
     * that never changes while it is in the map.  Written under `lock` and
     * the state lock, read under `lock`. */
    _Atomic uint64_t *summary;
    pthread_mutex_t lock;      /* serialises operations on this region, syscalls included */
    _Atomic size_t committed_pages; /* written under `lock` */
    uint64_t summary_value;
    uint32_t summaries;
    uint64_t summary_fixed;
    /* The last HOSTMEM_GUARD_RECENT guard hits (W2, guard.c): the page whose
     * guard each cleared (0: none, or forgotten by a call), the thread whose
     * hit it was, and its number among the region's hits. */
    _Atomic uintptr_t guard_recent[HOSTMEM_GUARD_RECENT];
    _Atomic uintptr_t guard_recent_by[HOSTMEM_GUARD_RECENT];
    _Atomic uint32_t guard_recent_epoch[HOSTMEM_GUARD_RECENT];
    _Atomic uint32_t guard_epoch; /* hits so far */
    uintptr_t caller;          /* who reserved it (for region_state and leaks) */
    _Atomic(const void *) owner; /* the heap (heap.h) that reserved it, else NULL */
    struct hostmem__region *next_free;
    struct hostmem__region *next_all; /* every region struct ever made, for destroy */
} hostmem__region;

/* Address space held for small regions: `granules` granules from `base`. */
#define HOSTMEM_ARENA_GRANULES 512u /* 32 MiB */
typedef struct hostmem__arena {
    uintptr_t base;
    uint32_t free_granules;
    uint32_t hint;                  /* no free granule below this one */
    _Atomic uint64_t used[HOSTMEM_ARENA_GRANULES / 64]; /* bit set: granule belongs to a region */
    /* Bit set: the granule went to a region of its own that also covers space
     * outside the arena (a reservation across the arena's edge); it left the
     * arena for good, and the region's release gives it back to the kernel. */
    _Atomic uint64_t gone[HOSTMEM_ARENA_GRANULES / 64];
    struct hostmem__arena *next;
} hostmem__arena;

/* The map: a radix tree over granule numbers (31 bits: 7 + 8 + 8 + 8).  An entry
 * is 0 (nothing of ours), a child node, or a tagged region / arena pointer that
 * covers the entry's whole span, so a 1 TiB region takes a handful of entries. */
#define HOSTMEM_MAP_TAG_REGION ((uintptr_t)1)
#define HOSTMEM_MAP_TAG_ARENA ((uintptr_t)2)
#define HOSTMEM_MAP_TAG_MASK ((uintptr_t)3)
typedef struct hostmem__map_node {
    _Atomic uintptr_t slot[256];
} hostmem__map_node;
/* The last level: entry i at slot[2i], its summary at slot[2i + 1] (0, or
 * HOSTMEM_SUMMARY_* below: the region the entry names, whole). */
typedef struct hostmem__map_leaf {
    _Atomic uintptr_t slot[512];
} hostmem__map_leaf;

typedef struct hostmem__map {
    _Atomic uintptr_t root[128];
    uintptr_t *nodes; /* every node allocated (bit 0: a leaf), freed at destroy */
    size_t node_count, node_cap, leaf_count;
} hostmem__map;

/* A summary: a live region (not making, not releasing) of at most
 * HOSTMEM_SUMMARY_GRANULES granules inside one leaf whose pages are all in
 * one visible state, so a query needs nothing else (each change of a larger
 * region would rewrite more words than a query saves).  Bit 0
 * set; the visible state (committed bit and PAGE_* value); the region's
 * allocation protection; its first granule's index in the leaf; its size in
 * 4 KiB units. */
#define HOSTMEM_SUMMARY_GRANULES 16u
#define HOSTMEM_SUMMARY_STATE_SHIFT 1
#define HOSTMEM_SUMMARY_STATE_MASK ((uint64_t)(HOSTMEM_STATE_COMMITTED | HOSTMEM_STATE_PROTECT_MASK))
#define HOSTMEM_SUMMARY_PROTECT_SHIFT 14
#define HOSTMEM_SUMMARY_PROTECT_MASK ((uint64_t)HOSTMEM_STATE_PROTECT_MASK)
#define HOSTMEM_SUMMARY_INDEX_SHIFT 25
#define HOSTMEM_SUMMARY_SIZE_SHIFT 33
#define HOSTMEM_SUMMARY_UNIT_SHIFT 12

/* Commit charge, limits and memory state: guarded by the manager's state lock. */
typedef struct hostmem__policy {
    hostmem_config config;
    /* Bytes charged, including in-flight commits.  Under a commit limit it
     * changes only under the state lock (P1 decides on it); without one a
     * commit or decommit counts it with one atomic add and no lock.
     * Lock-free readers (the trace) read it too. */
    _Atomic size_t committed;
    _Atomic size_t peak_committed; /* raised only by calls that succeeded */
    size_t reserved;       /* bytes of live regions (page-rounded) */
    _Atomic size_t peak_reserved;
    size_t external;       /* acquired_virtual_address_space bytes */
    _Atomic size_t reserved_now; /* copy for lock-free readers (trace) */
    size_t regions;
    int state;             /* current EMemoryAvailable under the limit, 0 = none yet */
    void (*callback)(void *, EMemoryAvailable);
    void *callback_context;
    uint64_t generation;   /* +1 per notice made; older notices are dropped */
    _Atomic uint64_t delivered; /* generation of the newest notice delivered */
    _Atomic uint64_t low_count; /* +1 whenever the state becomes (or is told) Low: heaps trim */
} hostmem__policy;

typedef struct hostmem__external {
    uintptr_t start;
    size_t size;
    struct hostmem__external *next;
} hostmem__external;

struct hostmem_manager {
    pthread_mutex_t state_lock; /* map structure, pools, arenas, policy: never held across a syscall
                                 * but the rare mapping of a metadata chunk (meta.c) */
    pthread_cond_t freed;       /* signalled when charge goes down (eProcessCritical waits) */
    hostmem__map map;
    hostmem__policy policy;
    hostmem__region *free_regions;
    hostmem__region *all_regions;
    hostmem__arena *arenas;
    hostmem__external *externals;
    size_t metadata_bytes;
    _Atomic int shutdown;       /* 1 after hostmem_shutdown */
    _Atomic int unavailable;    /* 1 after E_FAIL (P7) */
    _Atomic int waiters;
    size_t page_size;
    unsigned page_shift;
    uintptr_t user_end;         /* first address past user space */
    uintptr_t map_end;          /* first address the kernel never maps (os.h) */
    struct hostmem_manager *next_manager; /* every manager, for fork() */
    struct hostmem_manager *_Atomic next_fault; /* managers hostmem_handle_fault() searches */
};

#endif
