/*
 * heap.h: the manager's own heap (IHostMalloc, H1-H4), its words and
 * structures.  heap.c holds the allocation and free entry points (the fast
 * paths), heap_cache.c the per-thread caches, heap_life.c a heap's creation
 * and end, heap_page.c the segments, spans and bins behind them.
 *
 * Glossary
 *   heap      one hostmem_malloc: blocks served from regions of its manager.
 *   segment   a 1 MiB region the heap reserves from its manager; its first page
 *             is the segment header (the span table), the rest is 16 spans.
 *   span      64 KiB of a segment that serves blocks of one size class; it is
 *             committed when a bin first needs it and decommitted when it is free
 *             and the manager went Low (or the heap is trimmed).
 *   class     one of HEAP_CLASSES block sizes, 16 B to 16 KiB, four per
 *             doubling above 128 B (at most 25 % rounding).
 *   bin       the heap's spans of one class that still have free blocks, under
 *             the bin's own lock (never one lock for the whole heap).
 *   cache     a thread's stack of free blocks per class (the fast path: no
 *             lock, no atomic read-modify-write, no syscall).
 *   large     a block above HEAP_SMALL_MAX: a region of its own.
 *   meta      the region holding the hostmem_malloc itself and its caches.
 *   tag       the second word of a free block: (span ^ block ^ key).  A block
 *             whose tag is intact is free, so a second free is refused; the
 *             cache flush finds a block's span from it.
 */
#ifndef HOSTMEM_HEAP_H
#define HOSTMEM_HEAP_H

#include "internal.h"

#define HEAP_SPAN_SHIFT 16
#define HEAP_SPAN ((size_t)1 << HEAP_SPAN_SHIFT)
#define HEAP_SEGMENT_SPANS 16u
#define HEAP_SEGMENT (HEAP_SPAN * HEAP_SEGMENT_SPANS) /* carved from an arena: no syscall */
#define HEAP_CLASSES 36u
#define HEAP_SMALL_MAX ((size_t)16384)
#define HEAP_LARGE_OFFSET ((size_t)64) /* a large block starts this far into its region */
#define HEAP_RETAIN ((size_t)4 << 20) /* free committed spans kept for reuse; more are decommitted */
#define HEAP_META_SIZE ((size_t)1 << 20)
#define HEAP_META_CHUNK ((size_t)65536) /* meta is committed a chunk at a time */
#define HEAP_META_CHUNKS (HEAP_META_SIZE / HEAP_META_CHUNK)

enum { HEAP_KIND_SEGMENT = 0x53454748u, HEAP_KIND_LARGE = 0x4c524745u };

/* Where a span is, for the heap's pool (under pool_lock) and its bin. */
enum heap_span_state {
    HEAP_SPAN_UNCOMMITTED, /* in the pool, pages reserved only */
    HEAP_SPAN_COMMITTED,   /* in the pool, pages committed, no block out */
    HEAP_SPAN_BUSY,        /* out of every list while a call commits / decommits it */
    HEAP_SPAN_ACTIVE,      /* serves a class (in its bin's list while it has free blocks) */
};

typedef struct heap_span {
    /* Read by free without a lock (validation): atomics. */
    _Atomic uint32_t cls1;    /* class + 1; 0 when it serves no class */
    _Atomic uint32_t bsize;   /* block size */
    _Atomic uint32_t inv;     /* ceil(2^32 / bsize): offset -> index without a division */
    _Atomic uint32_t bumped;  /* blocks ever handed out of the fresh area */
    _Atomic uintptr_t start;  /* first block (span 0 starts after the header page) */
    /* Under the bin's lock (active) or the pool's lock (free). */
    uint32_t capacity;        /* blocks that fit */
    uint32_t used;            /* blocks out of the span: live or in a cache */
    void *free;               /* freed blocks, linked through their first word */
    struct heap_span *next, *prev;
    uint8_t state;            /* enum heap_span_state */
    uint8_t in_bin;           /* linked in its bin's list */
    uint8_t index;            /* in its segment */
    struct heap_segment *seg;
} heap_span;

/* The first page of a segment. */
typedef struct heap_segment {
    uint32_t kind;            /* HEAP_KIND_SEGMENT */
    struct hostmem_malloc *heap;
    uintptr_t base;
    struct heap_segment *next; /* every segment of the heap (pool_lock) */
    heap_span span[HEAP_SEGMENT_SPANS];
} heap_segment;

/* The first HEAP_LARGE_OFFSET bytes of a large block's region. */
typedef struct heap_large {
    uint32_t kind;            /* HEAP_KIND_LARGE */
    _Atomic uint32_t live;    /* 1 until freed: a second free loses the exchange */
    struct hostmem_malloc *heap;
    size_t size;              /* bytes asked for */
    size_t region;            /* bytes committed */
    struct heap_large *next, *prev; /* live large blocks (pool_lock) */
} heap_large;

typedef struct heap_bin {
    pthread_mutex_t lock;
    heap_span *spans;         /* active spans with a free or fresh block */
} __attribute__((aligned(64))) heap_bin;

/* A thread's cache in one heap.  Only its owner touches the lists; the
 * counters are read by hostmem_malloc_get_stats (single writer, atomic
 * loads and stores without a read-modify-write). */
typedef struct heap_cache {
    _Atomic uintptr_t owner;  /* thread token, 0 = free for any thread */
    uint64_t low_seen;        /* manager's Low count when this cache last emptied */
    _Atomic int64_t live_blocks, live_bytes;
    struct heap_cache *next;  /* every cache of the heap (push only) */
    /* Segments this thread found lately (segments live as long as the heap):
     * a free inside one skips the lookup in the manager's map. */
    uintptr_t seg[4];
    struct {
        void *head;
        uint32_t count;
    } bin[HEAP_CLASSES];
} __attribute__((aligned(64))) heap_cache; /* no line shared by two threads' caches */

struct hostmem_malloc {
    hostmem_manager *m;
    const _Atomic uint64_t *low; /* the manager's count of turns to Low */
    uint64_t id;              /* unique in the process, never reused */
    uint64_t key;             /* mixed into tags */
    DWORD type;               /* MALLOC_* */
    DWORD protect;            /* of block memory */
    uintptr_t meta;           /* base of the meta region (this struct) */
    size_t page_size;
    heap_cache *_Atomic caches; /* every cache (push only, under pool_lock) */
    heap_cache *single;       /* the one cache of a heap without MALLOC_THREADSAFE */
    uint32_t cache_count;     /* caches carved from meta (pool_lock) */
    uint8_t chunk_state[HEAP_META_CHUNKS]; /* 0 reserved, 1 committing, 2 committed (pool_lock) */
    pthread_mutex_t pool_lock;
    heap_span *committed_spans, *uncommitted_spans; /* free spans (pool_lock) */
    size_t free_committed;    /* bytes of committed_spans (pool_lock) */
    heap_segment *segments;
    heap_large *large;
    _Atomic size_t committed, reserved, segment_count, large_count;
    _Atomic int64_t live_blocks, live_bytes; /* frees and allocations made without a cache */
    _Atomic uint64_t low_seen; /* manager's Low count when the pool was last trimmed */
    struct hostmem_malloc *next_live; /* the registry of live heaps */
    heap_bin bin[HEAP_CLASSES];
};

/* ---- heap_page.c -------------------------------------------------------- */
/* Class of a size <= HEAP_SMALL_MAX, and the block size of a class. */
static inline uint32_t hostmem__heap_class(size_t size)
{
    if (size <= 128)
        return size ? (uint32_t)((size - 1) >> 4) : 0; /* 16, 32, ... 128 */
    /* Four classes per doubling: the top bit and the two below it. */
    size_t s = size - 1;
    uint32_t top = 63u - (uint32_t)__builtin_clzl(s);
    return 8u + (top - 7u) * 4u + (uint32_t)((s >> (top - 2)) & 3u);
}
extern const uint32_t hostmem__heap_sizes[HEAP_CLASSES];
static inline uint32_t hostmem__heap_class_size(uint32_t cls) { return hostmem__heap_sizes[cls]; }
/* The block index of `off` bytes into a span of blocks of size `bsize`
 * (inverse `inv`), as off / bsize. */
static inline uint32_t hostmem__heap_index(uintptr_t off, uint32_t inv)
{
    return (uint32_t)(((uint64_t)off * inv) >> 32);
}
uint32_t hostmem__heap_inverse(uint32_t bsize);
/* Take up to `want` free blocks of class `cls`, linked through their first
 * word, into *out (count returned).  May commit a span (or reserve a segment)
 * at `level`, with no lock held; 0 with *hr set when memory is refused. */
uint32_t hostmem__heap_take(hostmem_malloc *h, uint32_t cls, uint32_t want, EMemoryCriticalLevel level,
                            void **out, HRESULT *hr);
/* Give back `n` free blocks of class `cls` (linked, tags set).  True when the
 * heap now keeps more than HEAP_RETAIN bytes of free committed spans: the
 * caller, once it holds no lock, trims them (hostmem__heap_trim). */
bool hostmem__heap_give(hostmem_malloc *h, uint32_t cls, void *list, uint32_t n);
/* Decommit free committed spans (the pool's) until at most `keep` bytes of
 * them remain, with no lock held across a manager call.  Returns the bytes
 * decommitted. */
size_t hostmem__heap_trim(hostmem_malloc *h, size_t keep);
/* A region of the manager for the heap (reserve, then commit `commit` bytes of
 * it with `protect`); the region is tagged as the heap's.  S_OK or the
 * manager's HRESULT. */
/* The host's return address into the hostmem_malloc_* call running on this
 * thread (0: none): the heap's own calls on the manager report it as their
 * caller (hostmem__caller_next), so the heap's regions belong to the host's
 * call site, not to the heap's internals. */
extern __thread uintptr_t hostmem__heap_caller __attribute__((tls_model("initial-exec")));
static inline HRESULT hostmem__heap_virtual_alloc(hostmem_manager *m, void *address, SIZE_T size, DWORD type,
                                                  DWORD protect, EMemoryCriticalLevel level, void **out)
{
    hostmem__caller_next = hostmem__heap_caller;
    return hostmem_virtual_alloc(m, address, size, type, protect, level, out);
}
static inline HRESULT hostmem__heap_virtual_free(hostmem_manager *m, void *address, SIZE_T size, DWORD type)
{
    hostmem__caller_next = hostmem__heap_caller;
    return hostmem_virtual_free(m, address, size, type);
}

HRESULT hostmem__heap_region_new(hostmem_malloc *h, size_t size, size_t commit, DWORD protect,
                                 EMemoryCriticalLevel level, uintptr_t *out);
void hostmem__heap_region_free(hostmem_malloc *h, uintptr_t base);
/* Under pool_lock: the region at base is on its way out (heap_page.c). */
void hostmem__heap_region_retire(hostmem_malloc *h, uintptr_t base);
/* The base of the region of the heap holding `p`, or 0 (foreign memory). */
uintptr_t hostmem__heap_region_of(const hostmem_malloc *h, uintptr_t p);
/* Return every region: segments, large blocks (the meta region is the caller's). */
void hostmem__heap_release_all(hostmem_malloc *h);

static inline uintptr_t hostmem__heap_tag(const hostmem_malloc *h, const heap_span *s, uintptr_t block)
{
    return (uintptr_t)s ^ block ^ h->key;
}

/* A block's second word is its tag.  Two threads freeing the same block race
 * on it by design (one compare-and-swap wins, the other reports a double
 * free), so every access is atomic; relaxed ones are plain moves on x86. */
static inline uintptr_t hostmem__heap_tag_get(uintptr_t block)
{
    return __atomic_load_n((uintptr_t *)block + 1, __ATOMIC_RELAXED);
}

static inline void hostmem__heap_tag_set(uintptr_t block, uintptr_t tag)
{
    __atomic_store_n((uintptr_t *)block + 1, tag, __ATOMIC_RELAXED);
}

/* ---- heap.c ---------------------------------------------------------------- */
/* Emit the failure event of a heap call and return hr. */
static inline HRESULT hostmem__heap_fail(hostmem_malloc *h, enum hostmem__op op, HRESULT hr,
                                         enum hostmem__reason why, uintptr_t address, size_t size,
                                         int32_t level)
{
    hostmem__trace_failure(h ? h->m : NULL, op, hr, why, 0, address, size, level);
    return hr;
}

/* ---- heap_cache.c ---------------------------------------------------------- */
#define HEAP_TLS_SLOTS 4u

/* A thread's way to its cache in one heap (the heap's id picks the slot). */
typedef struct heap_slot {
    uint64_t id;
    heap_cache *cache;
} heap_slot;

extern __thread heap_slot hostmem__heap_tls[HEAP_TLS_SLOTS] __attribute__((tls_model("initial-exec")));

/* The address of this thread's slots: unique among live threads. */
static inline uintptr_t hostmem__heap_token(void) { return (uintptr_t)&hostmem__heap_tls[0]; }

/* Blocks a cache keeps per class. */
extern const uint8_t hostmem__heap_cache_caps[HEAP_CLASSES];
static inline uint32_t hostmem__heap_cache_cap(uint32_t cls) { return hostmem__heap_cache_caps[cls]; }

/* The manager's count of turns to Low. */
static inline uint64_t hostmem__heap_low_count(const hostmem_malloc *h)
{
    return atomic_load_explicit(h->low, memory_order_relaxed);
}

/* Live blocks and bytes, counted by the cache's single writer. */
static inline void hostmem__heap_cache_count(heap_cache *c, int64_t blocks, int64_t bytes)
{
    atomic_store_explicit(&c->live_blocks,
                          atomic_load_explicit(&c->live_blocks, memory_order_relaxed) + blocks,
                          memory_order_relaxed);
    atomic_store_explicit(&c->live_bytes, atomic_load_explicit(&c->live_bytes, memory_order_relaxed) + bytes,
                          memory_order_relaxed);
}

/* Live blocks and bytes of calls made without a cache. */
static inline void hostmem__heap_count(hostmem_malloc *h, int64_t blocks, int64_t bytes)
{
    atomic_fetch_add_explicit(&h->live_blocks, blocks, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->live_bytes, bytes, memory_order_relaxed);
}

/* Give the blocks of class `cls` above `keep` back to the bin.  True when the
 * heap should be trimmed (hostmem__heap_give). */
bool hostmem__heap_cache_flush_class(hostmem_malloc *h, heap_cache *c, uint32_t cls, uint32_t keep);
/* Every class of the cache, as above. */
bool hostmem__heap_cache_flush(hostmem_malloc *h, heap_cache *c);
/* A new cache carved from the meta region (whose chunks are committed on
 * first use), or NULL (the caller then works on the bins directly). */
heap_cache *hostmem__heap_cache_new(hostmem_malloc *h, uintptr_t owner, EMemoryCriticalLevel level);
/* This thread's cache when its slot does not name it yet (or NULL). */
heap_cache *hostmem__heap_cache_slow(hostmem_malloc *h, heap_slot *slot, EMemoryCriticalLevel level);

/* This thread's cache in h, or NULL (then the bins directly). */
static inline heap_cache *hostmem__heap_cache_get(hostmem_malloc *h, EMemoryCriticalLevel level)
{
    if (!(h->type & MALLOC_THREADSAFE))
        return h->single;
    heap_slot *slot = &hostmem__heap_tls[h->id & (HEAP_TLS_SLOTS - 1)];
    if (__builtin_expect(slot->id == h->id, 1))
        return slot->cache;
    return hostmem__heap_cache_slow(h, slot, level);
}

/* The manager went Low since this cache (or the heap) last looked: empty the
 * cache and decommit every free span (H3).  Each cache does it once per turn
 * to Low, so what the caches of other threads give back later is trimmed by
 * their own next call.  c may be NULL (a call without a cache). */
void hostmem__heap_low(hostmem_malloc *h, heap_cache *c);
/* The registry of live heaps, whose caches a thread that ends gives back. */
void hostmem__heap_registry_add(hostmem_malloc *h);
void hostmem__heap_registry_remove(hostmem_malloc *h);

#endif
