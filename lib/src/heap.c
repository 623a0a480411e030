/*
 * heap.c: IHostMalloc, the manager's own heap (H1-H4): the entry
 * points and the per-thread caches in front of the bins (heap_page.c).
 *
 * Fast path.  Each thread has a cache per heap: a stack of free blocks per
 * size class.  An allocation pops one, a free pushes one: no lock, no atomic
 * read-modify-write but the tag exchange that refuses a second free, no
 * syscall.  An empty stack takes half a cache's worth from the bin under the
 * bin's lock; a full one gives half back.  A thread finds its cache through a
 * few thread-local slots keyed by the heap's id (ids are never reused, so a
 * slot of a destroyed heap never matches).
 *
 * Free validates without a per-block structure: the manager's map (read
 * without a lock) names the region, whose owner tag says whether it is this
 * heap's; the span table in the segment's first page gives the class, from
 * which an interior pointer, a pointer to a block never handed out and a
 * pointer into a free span are recognised.  A free block carries a tag in its
 * second word (heap.h), exchanged atomically on free: a second free of a
 * block finds it and is refused, so no block ever enters a free list twice.
 *
 * Threads that end: a thread-specific key (one for the process) flushes the
 * thread's caches back to the bins, when glibc can hold the key in the
 * thread's own descriptor (keys below 32: setting one never allocates, and
 * this heap never calls malloc).  Otherwise a cache stays with its thread's
 * token and the next thread that gets the same token (the same TLS block)
 * takes it over.
 *
 * Memory state.  The manager counts every turn to Low (policy.c); a call that
 * sees a new count empties the calling thread's cache and decommits the
 * heap's free spans before it returns (H3), without a callback of its own.
 */
#include <string.h>
#include <time.h>

#include "heap.h"

#define RELAXED memory_order_relaxed
#define HEAP_TLS_SLOTS 4u
#define HEAP_SINGLE_OWNER ((uintptr_t)1)
#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

typedef struct heap_slot {
    uint64_t id;
    heap_cache *cache;
} heap_slot;

static __thread heap_slot tls_slot[HEAP_TLS_SLOTS] __attribute__((tls_model("initial-exec")));
static __thread bool tls_exit_armed __attribute__((tls_model("initial-exec")));

/* The address of this thread's slots: unique among live threads. */
static uintptr_t heap_token(void) { return (uintptr_t)&tls_slot[0]; }

static _Atomic uint64_t heap_next_id = 1;
static pthread_mutex_t heap_registry_lock = PTHREAD_MUTEX_INITIALIZER;
static hostmem_malloc *heap_registry;
static pthread_once_t heap_once = PTHREAD_ONCE_INIT;
static pthread_key_t heap_exit_key;
static bool heap_exit_usable;

/* Blocks a cache keeps per class: about 32 KiB, 4 to 128 blocks. */
static const uint8_t cache_caps[HEAP_CLASSES] = {128, 128, 128, 128, 128, 128, 128, 128, 128, 128, 128, 128, 102, 85, 73, 64, 51, 42, 36, 32, 25, 21, 18, 16, 12, 10, 9, 8, 6, 5, 4, 4, 4, 4, 4, 4};
static inline uint32_t cache_cap(uint32_t cls) { return cache_caps[cls]; }

static inline uint64_t low_count(const hostmem_malloc *h)
{
    return atomic_load_explicit(h->low, RELAXED);
}

#define HEAP_SEG_NONE ((uintptr_t)1 << 63) /* p - NONE >= HEAP_SEGMENT for any user address */

/* ---- counters (single writer per cache) -------------------------------------- */

static void cache_count(heap_cache *c, int64_t blocks, int64_t bytes)
{
    atomic_store_explicit(&c->live_blocks, atomic_load_explicit(&c->live_blocks, RELAXED) + blocks, RELAXED);
    atomic_store_explicit(&c->live_bytes, atomic_load_explicit(&c->live_bytes, RELAXED) + bytes, RELAXED);
}

static void heap_count(hostmem_malloc *h, int64_t blocks, int64_t bytes)
{
    atomic_fetch_add_explicit(&h->live_blocks, blocks, RELAXED);
    atomic_fetch_add_explicit(&h->live_bytes, bytes, RELAXED);
}

/* ---- caches ---------------------------------------------------------------------- */

/* True when the heap should be trimmed (hostmem__heap_give). */
static bool cache_flush_class(hostmem_malloc *h, heap_cache *c, uint32_t cls, uint32_t keep)
{
    uint32_t n = c->bin[cls].count;
    if (n <= keep)
        return false;
    /* Give the top n - keep blocks; the rest stay. */
    void *list = c->bin[cls].head, *cut = list;
    for (uint32_t i = 1; i < n - keep; i++)
        cut = *(void **)cut;
    c->bin[cls].head = *(void **)cut;
    c->bin[cls].count = keep;
    return hostmem__heap_give(h, cls, list, n - keep);
}

static bool cache_flush(hostmem_malloc *h, heap_cache *c)
{
    bool excess = false;
    for (uint32_t cls = 0; cls < HEAP_CLASSES; cls++)
        excess |= cache_flush_class(h, c, cls, 0);
    return excess;
}

static void heap_thread_exit(void *unused)
{
    uintptr_t me = heap_token();
    /* A call this thread still makes (from a later destructor) finds no
     * cache in its slots and takes one properly, never the one given up here. */
    for (unsigned i = 0; i < HEAP_TLS_SLOTS; i++)
        tls_slot[i] = (heap_slot){0, NULL};
    pthread_mutex_lock(&heap_registry_lock);
    for (hostmem_malloc *h = heap_registry; h; h = h->next_live) {
        if (!(h->type & MALLOC_THREADSAFE))
            continue;
        for (heap_cache *c = atomic_load_explicit(&h->caches, memory_order_acquire); c; c = c->next)
            if (atomic_load_explicit(&c->owner, RELAXED) == me) {
                cache_flush(h, c);
                atomic_store_explicit(&c->owner, 0, memory_order_release);
            }
    }
    pthread_mutex_unlock(&heap_registry_lock);
}

static void heap_once_init(void)
{
    /* glibc keeps the values of keys below 32 in the thread descriptor
     * (PTHREAD_KEY_2NDLEVEL_SIZE); higher keys make pthread_setspecific
     * calloc, which this heap never does. */
    if (pthread_key_create(&heap_exit_key, heap_thread_exit) == 0)
        heap_exit_usable = heap_exit_key < 32;
}

/* A new cache carved from the meta region (whose chunks are committed on
 * first use), or NULL (the caller then works on the bins directly). */
static heap_cache *cache_new(hostmem_malloc *h, uintptr_t owner, EMemoryCriticalLevel level)
{
    size_t first = (sizeof(hostmem_malloc) + 63) & ~(size_t)63; /* caches are 64-byte multiples */
    for (;;) {
        pthread_mutex_lock(&h->pool_lock);
        size_t off = first + (size_t)h->cache_count * sizeof(heap_cache);
        size_t end = off + sizeof(heap_cache);
        if (end > HEAP_META_SIZE) {
            pthread_mutex_unlock(&h->pool_lock);
            return NULL;
        }
        size_t c0 = off / HEAP_META_CHUNK, c1 = (end - 1) / HEAP_META_CHUNK, want = c1;
        if (h->chunk_state[c0] != 2)
            want = c0;
        if (h->chunk_state[want] == 2) {
            heap_cache *c = (heap_cache *)(h->meta + off);
            h->cache_count++;
            memset(c, 0, sizeof *c);
            for (unsigned i = 0; i < 4; i++)
                c->seg[i] = HEAP_SEG_NONE;
            atomic_store_explicit(&c->owner, owner, RELAXED);
            c->low_seen = low_count(h);
            c->next = atomic_load_explicit(&h->caches, RELAXED);
            atomic_store_explicit(&h->caches, c, memory_order_release);
            pthread_mutex_unlock(&h->pool_lock);
            return c;
        }
        if (h->chunk_state[want] == 1) { /* another thread commits it */
            pthread_mutex_unlock(&h->pool_lock);
            return NULL;
        }
        h->chunk_state[want] = 1;
        pthread_mutex_unlock(&h->pool_lock);
        uintptr_t lo = h->meta + want * HEAP_META_CHUNK;
        void *q;
        HRESULT hr = hostmem_virtual_alloc(h->m, (void *)lo, HEAP_META_CHUNK, MEM_COMMIT, PAGE_READWRITE,
                                           level, &q);
        if (SUCCEEDED(hr))
            atomic_fetch_add_explicit(&h->committed, HEAP_META_CHUNK, RELAXED);
        pthread_mutex_lock(&h->pool_lock);
        h->chunk_state[want] = SUCCEEDED(hr) ? 2 : 0;
        pthread_mutex_unlock(&h->pool_lock);
        if (FAILED(hr))
            return NULL;
    }
}

static __attribute__((noinline)) heap_cache *cache_slow(hostmem_malloc *h, heap_slot *slot,
                                                        EMemoryCriticalLevel level)
{
    uintptr_t me = heap_token();
    heap_cache *c, *head = atomic_load_explicit(&h->caches, memory_order_acquire);
    for (c = head; c; c = c->next)
        if (atomic_load_explicit(&c->owner, RELAXED) == me)
            goto found;
    for (c = head; c; c = c->next) {
        uintptr_t none = 0;
        if (atomic_load_explicit(&c->owner, RELAXED) == 0 &&
            atomic_compare_exchange_strong_explicit(&c->owner, &none, me, memory_order_acquire, RELAXED))
            goto found;
    }
    if (!(c = cache_new(h, me, level)))
        return NULL;
found:
    if (!tls_exit_armed && heap_exit_usable) {
        tls_exit_armed = true;
        pthread_setspecific(heap_exit_key, (void *)1);
    }
    slot->id = h->id;
    slot->cache = c;
    return c;
}

static inline heap_cache *cache_get(hostmem_malloc *h, EMemoryCriticalLevel level)
{
    if (!(h->type & MALLOC_THREADSAFE))
        return h->single;
    heap_slot *slot = &tls_slot[h->id & (HEAP_TLS_SLOTS - 1)];
    if (likely(slot->id == h->id))
        return slot->cache;
    return cache_slow(h, slot, level);
}

/* The manager went Low since this cache (or the heap) last looked: empty the
 * cache and decommit every free span (H3).  Each cache does it once per turn
 * to Low, so what the caches of other threads give back later is trimmed by
 * their own next call. */
static __attribute__((noinline)) void heap_low(hostmem_malloc *h, heap_cache *c)
{
    uint64_t now = low_count(h);
    if (c) {
        cache_flush(h, c);
        c->low_seen = now;
    }
    atomic_store_explicit(&h->low_seen, now, RELAXED);
    hostmem__heap_trim(h, 0);
}

/* ---- failures ------------------------------------------------------------------- */

static HRESULT heap_fail(hostmem_malloc *h, enum hostmem__op op, HRESULT hr, enum hostmem__reason why,
                         uintptr_t address, size_t size, int32_t level)
{
    hostmem__trace_failure(h ? h->m : NULL, op, hr, why, 0, address, size, level);
    return hr;
}

/* ---- allocation ------------------------------------------------------------------ */

static HRESULT alloc_large(hostmem_malloc *h, size_t size, EMemoryCriticalLevel level, void **out)
{
    if (size > h->m->user_end - HEAP_LARGE_OFFSET)
        return E_OUTOFMEMORY;
    size_t total = HEAP_LARGE_OFFSET + size;
    uintptr_t base;
    HRESULT hr = hostmem__heap_region_new(h, total, total, h->protect, level, &base);
    if (FAILED(hr))
        return hr;
    heap_large *l = (heap_large *)base;
    l->kind = HEAP_KIND_LARGE;
    atomic_store_explicit(&l->live, 1, RELAXED);
    l->heap = h;
    l->size = size;
    l->region = (total + h->page_size - 1) & ~(h->page_size - 1);
    pthread_mutex_lock(&h->pool_lock);
    l->prev = NULL;
    l->next = h->large;
    if (h->large)
        h->large->prev = l;
    h->large = l;
    pthread_mutex_unlock(&h->pool_lock);
    atomic_fetch_add_explicit(&h->large_count, 1, RELAXED);
    heap_count(h, 1, (int64_t)size);
    *out = (void *)(base + HEAP_LARGE_OFFSET);
    return S_OK;
}

static __attribute__((noinline)) HRESULT
heap_alloc(hostmem_malloc *h, size_t size, EMemoryCriticalLevel level, void **out, uintptr_t caller,
           const char *file, int line)
{
    if (!out)
        return heap_fail(h, HOSTMEM_OP_malloc_alloc, E_POINTER, HOSTMEM_REASON_null_pointer, 0, size, level);
    *out = NULL;
    if (!h)
        return heap_fail(h, HOSTMEM_OP_malloc_alloc, E_POINTER, HOSTMEM_REASON_null_pointer, 0, size, level);
    if ((unsigned)level > eProcessCritical)
        return heap_fail(h, HOSTMEM_OP_malloc_alloc, E_INVALIDARG, HOSTMEM_REASON_bad_type, 0, size, level);
    HRESULT hr = S_OK;
    size_t usable;
    if (likely(size <= HEAP_SMALL_MAX)) {
        uint32_t cls = hostmem__heap_class(size);
        usable = hostmem__heap_class_size(cls);
        heap_cache *c = cache_get(h, level);
        if (likely(c)) {
            if (unlikely(c->low_seen != low_count(h)))
                heap_low(h, c);
            void *b = c->bin[cls].head;
            if (unlikely(!b)) {
                void *list;
                uint32_t n = hostmem__heap_take(h, cls, (cache_cap(cls) + 1) / 2, level, &list, &hr);
                if (!n)
                    goto failed;
                c->bin[cls].head = b = list;
                c->bin[cls].count = n;
            }
            c->bin[cls].head = *(void **)b;
            c->bin[cls].count--;
            hostmem__heap_tag_set((uintptr_t)b, 0); /* the tag: live now */
            cache_count(c, 1, (int64_t)usable);
            *out = b;
        } else {
            if (atomic_load_explicit(&h->low_seen, RELAXED) != low_count(h))
                heap_low(h, NULL);
            void *b;
            if (!hostmem__heap_take(h, cls, 1, level, &b, &hr))
                goto failed;
            hostmem__heap_tag_set((uintptr_t)b, 0);
            heap_count(h, 1, (int64_t)usable);
            *out = b;
        }
    } else {
        if (atomic_load_explicit(&h->low_seen, RELAXED) != low_count(h))
            heap_low(h, NULL);
        usable = size;
        if (FAILED(hr = alloc_large(h, size, level, out)))
            goto failed;
    }
    if (unlikely(atomic_load_explicit((const _Atomic int *)hostmem__trace_malloc_alloc_on, RELAXED)))
        hostmem__trace_malloc_alloc(h, (uintptr_t)*out, size, level, caller, file, line);
    return S_OK;
failed:
    return heap_fail(h, HOSTMEM_OP_malloc_alloc, hr, HOSTMEM_REASON_limit_denied, 0, size, level);
}

static inline bool trace_on(const int *const *state)
{
    return atomic_load_explicit((const _Atomic int *)*state, RELAXED) != 0;
}

HRESULT hostmem_malloc_alloc(hostmem_malloc *h, SIZE_T size, EMemoryCriticalLevel level, void **out)
{
    /* The fast path: a thread-safe heap, a small block in this thread's
     * cache, no turn to Low to follow, no event to emit.  Anything else takes
     * the general path, which checks everything from the start. */
    if (likely(h && out && size <= HEAP_SMALL_MAX && (unsigned)level <= eProcessCritical &&
               (h->type & MALLOC_THREADSAFE))) {
        heap_slot *slot = &tls_slot[h->id & (HEAP_TLS_SLOTS - 1)];
        if (likely(slot->id == h->id)) {
            heap_cache *c = slot->cache;
            uint32_t cls = hostmem__heap_class(size);
            void *b = c->bin[cls].head;
            if (likely(b && c->low_seen == low_count(h) && !trace_on(&hostmem__trace_malloc_alloc_on))) {
                c->bin[cls].head = *(void **)b;
                c->bin[cls].count--;
                hostmem__heap_tag_set((uintptr_t)b, 0); /* the tag: live now */
                cache_count(c, 1, (int64_t)hostmem__heap_class_size(cls));
                *out = b;
                return S_OK;
            }
        }
    }
    return heap_alloc(h, size, level, out, (uintptr_t)__builtin_return_address(0), NULL, 0);
}

HRESULT hostmem_malloc_debug_alloc(hostmem_malloc *h, SIZE_T size, EMemoryCriticalLevel level,
                                   const char *file, int line, void **out)
{
    return heap_alloc(h, size, level, out, (uintptr_t)__builtin_return_address(0), file, line);
}

/* ---- free -------------------------------------------------------------------------- */

static HRESULT free_large(hostmem_malloc *h, uintptr_t base, uintptr_t p, size_t *size)
{
    heap_large *l = (heap_large *)base;
    if (p != base + HEAP_LARGE_OFFSET)
        return E_INVALIDARG;
    uint32_t one = 1;
    if (!atomic_compare_exchange_strong(&l->live, &one, 0))
        return HOSTMEM_E_INVALID_ADDRESS; /* told apart from an interior pointer below */
    *size = l->size;
    pthread_mutex_lock(&h->pool_lock);
    if (l->prev)
        l->prev->next = l->next;
    else
        h->large = l->next;
    if (l->next)
        l->next->prev = l->prev;
    pthread_mutex_unlock(&h->pool_lock);
    atomic_fetch_sub_explicit(&h->large_count, 1, RELAXED);
    atomic_fetch_sub_explicit(&h->committed, l->region, RELAXED);
    heap_count(h, -1, -(int64_t)l->size);
    hostmem__heap_region_free(h, base);
    return S_OK;
}

static __attribute__((noinline)) HRESULT free_general(hostmem_malloc *h, void *ptr, uintptr_t caller)
{
    uintptr_t p = (uintptr_t)ptr;
    enum hostmem__reason why;
    if (!h)
        return heap_fail(h, HOSTMEM_OP_malloc_free, E_POINTER, HOSTMEM_REASON_null_pointer, p, 0, -1);
    if (!p) {
        hostmem__trace_malloc_free(h, 0, 0, caller);
        return S_OK;
    }
    why = HOSTMEM_REASON_misaligned;
    if (p & 15)
        goto invalid;
    size_t usable;
    heap_cache *c = cache_get(h, eTaskCritical);
    uintptr_t base;
    unsigned slot = (unsigned)(p >> 20) & 3u;
    if (!(likely(c) && p - (base = c->seg[slot]) < HEAP_SEGMENT)) {
        why = HOSTMEM_REASON_foreign_pointer;
        if (!(base = hostmem__heap_region_of(h, p)))
            goto invalid;
        if (*(const uint32_t *)base == HEAP_KIND_LARGE) {
            HRESULT hr = free_large(h, base, p, &usable);
            if (FAILED(hr)) {
                why = hr == E_INVALIDARG ? HOSTMEM_REASON_interior_pointer : HOSTMEM_REASON_double_free;
                goto invalid;
            }
            goto done;
        }
        if (c)
            c->seg[slot] = base; /* a segment: it lives as long as the heap */
    }
    {
        heap_segment *seg = (heap_segment *)base;
        heap_span *s = &seg->span[(p - base) >> HEAP_SPAN_SHIFT];
        uint32_t cls1 = atomic_load_explicit(&s->cls1, memory_order_acquire);
        why = HOSTMEM_REASON_double_free; /* a span with no block out */
        if (!cls1)
            goto invalid;
        uintptr_t start = atomic_load_explicit(&s->start, RELAXED);
        why = HOSTMEM_REASON_interior_pointer;
        if (p < start)
            goto invalid;
        uint32_t bsize = atomic_load_explicit(&s->bsize, RELAXED);
        uint32_t i = hostmem__heap_index(p - start, atomic_load_explicit(&s->inv, RELAXED));
        if ((uintptr_t)i * bsize != p - start || i >= atomic_load_explicit(&s->bumped, RELAXED))
            goto invalid;
        /* The tag: whoever installs it owns the free; a block that has it is free already. */
        uintptr_t tag = hostmem__heap_tag(h, s, p), seen = hostmem__heap_tag_get(p);
        why = HOSTMEM_REASON_double_free;
        if (seen == tag ||
            !__atomic_compare_exchange_n((uintptr_t *)p + 1, &seen, tag, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
            goto invalid;
        uint32_t cls = cls1 - 1;
        usable = bsize;
        if (likely(c)) {
            *(void **)p = c->bin[cls].head;
            c->bin[cls].head = (void *)p;
            cache_count(c, -1, -(int64_t)usable);
            if (unlikely(++c->bin[cls].count >= cache_cap(cls)) &&
                cache_flush_class(h, c, cls, cache_cap(cls) / 2))
                hostmem__heap_trim(h, HEAP_RETAIN / 2); /* no lock held here */
            if (unlikely(c->low_seen != low_count(h)))
                heap_low(h, c);
        } else {
            if (hostmem__heap_give(h, cls, (void *)p, 1))
                hostmem__heap_trim(h, HEAP_RETAIN / 2);
            heap_count(h, -1, -(int64_t)usable);
            if (atomic_load_explicit(&h->low_seen, RELAXED) != low_count(h))
                heap_low(h, NULL);
        }
    }
done:
    if (unlikely(atomic_load_explicit((const _Atomic int *)hostmem__trace_malloc_free_on, RELAXED)))
        hostmem__trace_malloc_free(h, p, usable, caller);
    return S_OK;
invalid:
    return heap_fail(h, HOSTMEM_OP_malloc_free, E_INVALIDARG, why, p, 0, -1);
}

/* ---- life cycle ---------------------------------------------------------------------- */

HRESULT hostmem_create_malloc(hostmem_manager *m, DWORD malloc_type, hostmem_malloc **out)
{
    if (out)
        *out = NULL;
    if (!m || !out)
        return heap_fail(NULL, HOSTMEM_OP_create_malloc, E_POINTER, HOSTMEM_REASON_null_pointer, 0, 0, -1);
    if (malloc_type & ~(DWORD)(MALLOC_THREADSAFE | MALLOC_EXECUTABLE)) {
        hostmem__trace_failure(m, HOSTMEM_OP_create_malloc, E_INVALIDARG, HOSTMEM_REASON_bad_type, 0, 0,
                               malloc_type, -1);
        return E_INVALIDARG;
    }
    if ((malloc_type & MALLOC_EXECUTABLE) && m->policy.config.deny_write_execute) {
        hostmem__trace_failure(m, HOSTMEM_OP_create_malloc, E_ACCESSDENIED,
                               HOSTMEM_REASON_write_execute_denied, 0, 0, malloc_type, -1);
        return E_ACCESSDENIED;
    }
    pthread_once(&heap_once, heap_once_init);
    /* The heap itself lives in its meta region: reserve it, commit the pages
     * under the struct, then tag the region once the struct exists. */
    void *p, *q;
    HRESULT hr = hostmem_virtual_alloc(m, NULL, HEAP_META_SIZE, MEM_RESERVE, PAGE_READWRITE, eTaskCritical, &p);
    if (FAILED(hr))
        return hr;
    if (FAILED(hr = hostmem_virtual_alloc(m, p, HEAP_META_CHUNK, MEM_COMMIT, PAGE_READWRITE, eTaskCritical, &q))) {
        hostmem_virtual_free(m, p, 0, MEM_RELEASE);
        return hr;
    }
    hostmem_malloc *h = p;
    h->m = m;
    h->low = &m->policy.low_count;
    h->id = atomic_fetch_add(&heap_next_id, 1);
    h->type = malloc_type;
    h->protect = (malloc_type & MALLOC_EXECUTABLE) ? PAGE_EXECUTE_READWRITE : PAGE_READWRITE;
    h->meta = (uintptr_t)p;
    h->page_size = m->page_size;
    /* Not a secret: it only keeps a tag from matching data by accident. */
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t k = ((uint64_t)(uintptr_t)h ^ (uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15u ^ h->id) * 0xbf58476d1ce4e5b9u;
    h->key = (k ^ (k >> 31)) & ~(uint64_t)15; /* tags never equal a plausible small value */
    h->key |= (uint64_t)1 << 63;
    pthread_mutex_init(&h->pool_lock, NULL);
    for (uint32_t i = 0; i < HEAP_CLASSES; i++)
        pthread_mutex_init(&h->bin[i].lock, NULL);
    h->chunk_state[0] = 2;
    atomic_init(&h->committed, HEAP_META_CHUNK);
    atomic_init(&h->reserved, HEAP_META_SIZE);
    atomic_init(&h->low_seen, low_count(h));
    if (!(malloc_type & MALLOC_THREADSAFE))
        h->single = cache_new(h, HEAP_SINGLE_OWNER, eTaskCritical); /* in chunk 0: cannot fail */
    hostmem__trace_malloc_heap(m, h, true, malloc_type, 0, 0);
    hostmem__trace_malloc_region(m, h, h->meta, HEAP_META_SIZE, true);
    pthread_mutex_lock(&heap_registry_lock);
    h->next_live = heap_registry;
    heap_registry = h;
    pthread_mutex_unlock(&heap_registry_lock);
    *out = h;
    return S_OK;
}

HRESULT hostmem_malloc_get_stats(hostmem_malloc *h, hostmem_malloc_stats *out)
{
    if (!h || !out)
        return E_POINTER;
    int64_t blocks = atomic_load_explicit(&h->live_blocks, RELAXED);
    int64_t bytes = atomic_load_explicit(&h->live_bytes, RELAXED);
    for (heap_cache *c = atomic_load_explicit(&h->caches, memory_order_acquire); c; c = c->next) {
        blocks += atomic_load_explicit(&c->live_blocks, RELAXED);
        bytes += atomic_load_explicit(&c->live_bytes, RELAXED);
    }
    *out = (hostmem_malloc_stats){
        .live_blocks = blocks > 0 ? (SIZE_T)blocks : 0,
        .live_bytes = bytes > 0 ? (SIZE_T)bytes : 0,
        .committed_bytes = atomic_load_explicit(&h->committed, RELAXED),
        .reserved_bytes = atomic_load_explicit(&h->reserved, RELAXED),
        .segments = atomic_load_explicit(&h->segment_count, RELAXED),
        .large_blocks = atomic_load_explicit(&h->large_count, RELAXED),
    };
    return S_OK;
}

HRESULT hostmem_malloc_trim(hostmem_malloc *h)
{
    if (!h)
        return E_POINTER;
    heap_cache *c = cache_get(h, eTaskCritical);
    if (c)
        cache_flush(h, c);
    hostmem__heap_trim(h, 0);
    return S_OK;
}

void hostmem_malloc_destroy(hostmem_malloc *h)
{
    if (!h)
        return;
    pthread_mutex_lock(&heap_registry_lock);
    for (hostmem_malloc **link = &heap_registry; *link; link = &(*link)->next_live)
        if (*link == h) {
            *link = h->next_live;
            break;
        }
    pthread_mutex_unlock(&heap_registry_lock);
    hostmem_malloc_stats st;
    hostmem_malloc_get_stats(h, &st);
    hostmem_manager *m = h->m;
    hostmem__trace_malloc_heap(m, h, false, h->type, st.live_blocks, st.live_bytes);
    hostmem__heap_release_all(h);
    for (uint32_t i = 0; i < HEAP_CLASSES; i++)
        pthread_mutex_destroy(&h->bin[i].lock);
    pthread_mutex_destroy(&h->pool_lock);
    uintptr_t meta = h->meta;
    hostmem__trace_malloc_region(m, h, meta, HEAP_META_SIZE, false);
    hostmem_virtual_free(m, (void *)meta, 0, MEM_RELEASE);
}

/* After a free on the fast path: what a full cache, a turn to Low or an
 * enabled event still asks for. */
static __attribute__((noinline)) void free_tail(hostmem_malloc *h, heap_cache *c, uint32_t cls, uintptr_t p,
                                                size_t usable, uintptr_t caller)
{
    if (c->bin[cls].count >= cache_cap(cls) && cache_flush_class(h, c, cls, cache_cap(cls) / 2))
        hostmem__heap_trim(h, HEAP_RETAIN / 2);
    if (c->low_seen != low_count(h))
        heap_low(h, c);
    if (trace_on(&hostmem__trace_malloc_free_on))
        hostmem__trace_malloc_free(h, p, usable, caller);
}

HRESULT hostmem_malloc_free(hostmem_malloc *h, void *ptr)
{
    uintptr_t p = (uintptr_t)ptr;
    /* The fast path: a block of a segment this thread has seen, in a
     * thread-safe heap.  It validates as free_general does (class, interior,
     * never handed out, the tag) and leaves for free_general, which starts over,
     * at the first doubt: nothing changes before the tag is installed. */
    if (likely(h && p && !(p & 15) && (h->type & MALLOC_THREADSAFE))) {
        heap_slot *slot = &tls_slot[h->id & (HEAP_TLS_SLOTS - 1)];
        heap_cache *c = slot->cache;
        uintptr_t base;
        if (likely(slot->id == h->id) && p - (base = c->seg[(p >> 20) & 3u]) < HEAP_SEGMENT) {
            heap_span *s = &((heap_segment *)base)->span[(p - base) >> HEAP_SPAN_SHIFT];
            uint32_t cls1 = atomic_load_explicit(&s->cls1, memory_order_acquire);
            uintptr_t start = atomic_load_explicit(&s->start, RELAXED), off = p - start;
            uint32_t bsize = atomic_load_explicit(&s->bsize, RELAXED);
            uint32_t i = hostmem__heap_index(off, atomic_load_explicit(&s->inv, RELAXED));
            uintptr_t tag = hostmem__heap_tag(h, s, p), seen;
            /* The block is read only once the span says it is one (a free
             * span may be decommitted). */
            if (likely(cls1 && p >= start && (uintptr_t)i * bsize == off &&
                       i < atomic_load_explicit(&s->bumped, RELAXED)) &&
                likely((seen = hostmem__heap_tag_get(p)) != tag) &&
                __atomic_compare_exchange_n((uintptr_t *)p + 1, &seen, tag, false, __ATOMIC_RELAXED,
                                            __ATOMIC_RELAXED)) {
                uint32_t cls = cls1 - 1;
                *(void **)p = c->bin[cls].head;
                c->bin[cls].head = (void *)p;
                cache_count(c, -1, -(int64_t)bsize);
                if (unlikely(++c->bin[cls].count >= cache_cap(cls) || c->low_seen != low_count(h) ||
                             trace_on(&hostmem__trace_malloc_free_on)))
                    free_tail(h, c, cls, p, bsize, (uintptr_t)__builtin_return_address(0));
                return S_OK;
            }
        }
    }
    return free_general(h, ptr, (uintptr_t)__builtin_return_address(0));
}
