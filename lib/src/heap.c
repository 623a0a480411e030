/*
 * heap.c: IHostMalloc, the manager's own heap (H1-H4): the allocation and
 * free entry points, fast paths first, in front of the per-thread caches
 * (heap_cache.c) and the bins (heap_page.c).  heap_life.c creates and
 * destroys heaps.
 *
 * Fast path.  Each thread has a cache per heap: a stack of free blocks per
 * size class.  An allocation pops one, a free pushes one: no lock, no atomic
 * read-modify-write but the tag exchange that refuses a second free, no
 * syscall.  An empty stack takes half a cache's worth from the bin under the
 * bin's lock; a full one gives half back.
 *
 * Free validates without a per-block structure: the manager's map (read
 * without a lock) names the region, whose owner tag says whether it is this
 * heap's; the span table in the segment's first page gives the class, from
 * which an interior pointer, a pointer to a block never handed out and a
 * pointer into a free span are recognised.  A free block carries a tag in its
 * second word (heap.h), exchanged atomically on free: a second free of a
 * block finds it and is refused, so no block ever enters a free list twice.
 *
 * Memory state.  The manager counts every turn to Low (policy.c); a call that
 * sees a new count empties the calling thread's cache and decommits the
 * heap's free spans before it returns (H3), without a callback of its own.
 */
#include "heap.h"

#define RELAXED memory_order_relaxed
#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

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
    hostmem__heap_count(h, 1, (int64_t)size);
    *out = (void *)(base + HEAP_LARGE_OFFSET);
    return S_OK;
}

static HRESULT heap_alloc_body(hostmem_malloc *h, size_t size, EMemoryCriticalLevel level, void **out,
                               uintptr_t caller, const char *file, int line)
{
    if (!out)
        return hostmem__heap_fail(h, HOSTMEM_OP_malloc_alloc, E_POINTER, HOSTMEM_REASON_null_pointer, 0, size, level);
    *out = NULL;
    if (!h)
        return hostmem__heap_fail(h, HOSTMEM_OP_malloc_alloc, E_POINTER, HOSTMEM_REASON_null_pointer, 0, size, level);
    if ((unsigned)level > eProcessCritical)
        return hostmem__heap_fail(h, HOSTMEM_OP_malloc_alloc, E_INVALIDARG, HOSTMEM_REASON_bad_type, 0, size, level);
    HRESULT hr = S_OK;
    size_t usable;
    if (likely(size <= HEAP_SMALL_MAX)) {
        uint32_t cls = hostmem__heap_class(size);
        usable = hostmem__heap_class_size(cls);
        heap_cache *c = hostmem__heap_cache_get(h, level);
        if (likely(c)) {
            if (unlikely(c->low_seen != hostmem__heap_low_count(h)))
                hostmem__heap_low(h, c);
            void *b = c->bin[cls].head;
            if (unlikely(!b)) {
                void *list;
                uint32_t n = hostmem__heap_take(h, cls, (hostmem__heap_cache_cap(cls) + 1) / 2, level, &list, &hr);
                if (!n)
                    goto failed;
                c->bin[cls].head = b = list;
                c->bin[cls].count = n;
            }
            c->bin[cls].head = *(void **)b;
            c->bin[cls].count--;
            hostmem__heap_tag_set((uintptr_t)b, 0); /* the tag: live now */
            hostmem__heap_cache_count(c, 1, (int64_t)usable);
            *out = b;
        } else {
            if (atomic_load_explicit(&h->low_seen, RELAXED) != hostmem__heap_low_count(h))
                hostmem__heap_low(h, NULL);
            void *b;
            if (!hostmem__heap_take(h, cls, 1, level, &b, &hr))
                goto failed;
            hostmem__heap_tag_set((uintptr_t)b, 0);
            hostmem__heap_count(h, 1, (int64_t)usable);
            *out = b;
        }
    } else {
        if (atomic_load_explicit(&h->low_seen, RELAXED) != hostmem__heap_low_count(h))
            hostmem__heap_low(h, NULL);
        usable = size;
        if (FAILED(hr = alloc_large(h, size, level, out)))
            goto failed;
    }
    if (unlikely(atomic_load_explicit((const _Atomic int *)hostmem__trace_malloc_alloc_on, RELAXED)))
        hostmem__trace_malloc_alloc(h, (uintptr_t)*out, size, level, caller, file, line);
    return S_OK;
failed:
    return hostmem__heap_fail(h, HOSTMEM_OP_malloc_alloc, hr, HOSTMEM_REASON_limit_denied, 0, size, level);
}

/* The allocation's slow path, as the host's call: what it asks of the
 * manager is reported with the host's caller (heap.h). */
static __attribute__((noinline)) HRESULT
heap_alloc(hostmem_malloc *h, size_t size, EMemoryCriticalLevel level, void **out, uintptr_t caller,
           const char *file, int line)
{
    uintptr_t outer = hostmem__heap_caller;
    hostmem__heap_caller = caller;
    HRESULT hr = heap_alloc_body(h, size, level, out, caller, file, line);
    hostmem__heap_caller = outer;
    return hr;
}

static inline bool trace_on(const int *const *state)
{
    return atomic_load_explicit((const _Atomic int *)*state, RELAXED) != 0;
}

HRESULT hostmem_malloc_alloc(hostmem_malloc *h, SIZE_T size, EMemoryCriticalLevel level, void **out)
{
    /* The fast path: a thread-safe heap, a small block in this thread's
     * cache, no turn to Low to follow (an enabled event is emitted after it).
     * Anything else takes the general path, which checks everything from the
     * start. */
    if (likely(h && out && size <= HEAP_SMALL_MAX && (unsigned)level <= eProcessCritical &&
               (h->type & MALLOC_THREADSAFE))) {
        heap_slot *slot = &hostmem__heap_tls[h->id & (HEAP_TLS_SLOTS - 1)];
        if (likely(slot->id == h->id)) {
            heap_cache *c = slot->cache;
            uint32_t cls = hostmem__heap_class(size);
            void *b = c->bin[cls].head;
            if (likely(b && c->low_seen == hostmem__heap_low_count(h))) {
                c->bin[cls].head = *(void **)b;
                c->bin[cls].count--;
                hostmem__heap_tag_set((uintptr_t)b, 0); /* the tag: live now */
                hostmem__heap_cache_count(c, 1, (int64_t)hostmem__heap_class_size(cls));
                *out = b;
                if (unlikely(trace_on(&hostmem__trace_malloc_alloc_on)))
                    hostmem__trace_malloc_alloc(h, (uintptr_t)b, size, level,
                                                (uintptr_t)__builtin_return_address(0), NULL, 0);
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

/* Under pool_lock, which also covered finding the block's region: a racing
 * free of the same block finds the region retired, never memory on its way
 * out.  The caller releases the region once the lock is dropped. */
static HRESULT free_large(hostmem_malloc *h, uintptr_t base, uintptr_t p, size_t *size)
{
    heap_large *l = (heap_large *)base;
    if (p != base + HEAP_LARGE_OFFSET)
        return E_INVALIDARG;
    uint32_t one = 1;
    if (!atomic_compare_exchange_strong(&l->live, &one, 0))
        return HOSTMEM_E_INVALID_ADDRESS; /* told apart from an interior pointer below */
    *size = l->size;
    if (l->prev)
        l->prev->next = l->next;
    else
        h->large = l->next;
    if (l->next)
        l->next->prev = l->prev;
    hostmem__heap_region_retire(h, base);
    return S_OK;
}

static void free_large_release(hostmem_malloc *h, uintptr_t base)
{
    heap_large *l = (heap_large *)base;
    atomic_fetch_sub_explicit(&h->large_count, 1, RELAXED);
    atomic_fetch_sub_explicit(&h->committed, l->region, RELAXED);
    hostmem__heap_count(h, -1, -(int64_t)l->size);
    hostmem__heap_region_free(h, base);
}

static HRESULT free_general_body(hostmem_malloc *h, void *ptr, uintptr_t caller)
{
    uintptr_t p = (uintptr_t)ptr;
    enum hostmem__reason why;
    if (!h)
        return hostmem__heap_fail(h, HOSTMEM_OP_malloc_free, E_POINTER, HOSTMEM_REASON_null_pointer, p, 0, -1);
    if (!p) {
        hostmem__trace_malloc_free(h, 0, 0, caller);
        return S_OK;
    }
    why = HOSTMEM_REASON_misaligned;
    if (p & 15)
        goto invalid;
    size_t usable;
    heap_cache *c = hostmem__heap_cache_get(h, eTaskCritical);
    uintptr_t base;
    unsigned slot = (unsigned)(p >> 20) & 3u;
    if (!(likely(c) && p - (base = c->seg[slot]) < HEAP_SEGMENT)) {
        why = HOSTMEM_REASON_foreign_pointer;
        pthread_mutex_lock(&h->pool_lock);
        if (!(base = hostmem__heap_region_of(h, p))) {
            pthread_mutex_unlock(&h->pool_lock);
            goto invalid;
        }
        if (*(const uint32_t *)base == HEAP_KIND_LARGE) {
            HRESULT hr = free_large(h, base, p, &usable);
            pthread_mutex_unlock(&h->pool_lock);
            if (FAILED(hr)) {
                why = hr == E_INVALIDARG ? HOSTMEM_REASON_interior_pointer : HOSTMEM_REASON_double_free;
                goto invalid;
            }
            free_large_release(h, base);
            goto done;
        }
        pthread_mutex_unlock(&h->pool_lock); /* a segment lives as long as the heap */
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
            hostmem__heap_cache_count(c, -1, -(int64_t)usable);
            if (unlikely(++c->bin[cls].count >= hostmem__heap_cache_cap(cls)) &&
                hostmem__heap_cache_flush_class(h, c, cls, hostmem__heap_cache_cap(cls) / 2))
                hostmem__heap_trim(h, HEAP_RETAIN / 2); /* no lock held here */
            if (unlikely(c->low_seen != hostmem__heap_low_count(h)))
                hostmem__heap_low(h, c);
        } else {
            if (hostmem__heap_give(h, cls, (void *)p, 1))
                hostmem__heap_trim(h, HEAP_RETAIN / 2);
            hostmem__heap_count(h, -1, -(int64_t)usable);
            if (atomic_load_explicit(&h->low_seen, RELAXED) != hostmem__heap_low_count(h))
                hostmem__heap_low(h, NULL);
        }
    }
done:
    if (unlikely(atomic_load_explicit((const _Atomic int *)hostmem__trace_malloc_free_on, RELAXED)))
        hostmem__trace_malloc_free(h, p, usable, caller);
    return S_OK;
invalid:
    return hostmem__heap_fail(h, HOSTMEM_OP_malloc_free, E_INVALIDARG, why, p, 0, -1);
}

static __attribute__((noinline)) HRESULT free_general(hostmem_malloc *h, void *ptr, uintptr_t caller)
{
    uintptr_t outer = hostmem__heap_caller;
    hostmem__heap_caller = caller;
    HRESULT hr = free_general_body(h, ptr, caller);
    hostmem__heap_caller = outer;
    return hr;
}

/* After a free on the fast path: what a full cache, a turn to Low or an
 * enabled event still asks for. */
static __attribute__((noinline)) void free_tail(hostmem_malloc *h, heap_cache *c, uint32_t cls, uintptr_t p,
                                                size_t usable, uintptr_t caller)
{
    uintptr_t outer = hostmem__heap_caller;
    hostmem__heap_caller = caller;
    if (c->bin[cls].count >= hostmem__heap_cache_cap(cls) && hostmem__heap_cache_flush_class(h, c, cls, hostmem__heap_cache_cap(cls) / 2))
        hostmem__heap_trim(h, HEAP_RETAIN / 2);
    if (c->low_seen != hostmem__heap_low_count(h))
        hostmem__heap_low(h, c);
    if (trace_on(&hostmem__trace_malloc_free_on))
        hostmem__trace_malloc_free(h, p, usable, caller);
    hostmem__heap_caller = outer;
}

HRESULT hostmem_malloc_free(hostmem_malloc *h, void *ptr)
{
    uintptr_t p = (uintptr_t)ptr;
    /* The fast path: a block of a segment this thread has seen, in a
     * thread-safe heap.  It validates as free_general does (class, interior,
     * never handed out, the tag) and leaves for free_general, which starts over,
     * at the first doubt: nothing changes before the tag is installed. */
    if (likely(h && p && !(p & 15) && (h->type & MALLOC_THREADSAFE))) {
        heap_slot *slot = &hostmem__heap_tls[h->id & (HEAP_TLS_SLOTS - 1)];
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
                hostmem__heap_cache_count(c, -1, -(int64_t)bsize);
                if (unlikely(++c->bin[cls].count >= hostmem__heap_cache_cap(cls) || c->low_seen != hostmem__heap_low_count(h) ||
                             trace_on(&hostmem__trace_malloc_free_on)))
                    free_tail(h, c, cls, p, bsize, (uintptr_t)__builtin_return_address(0));
                return S_OK;
            }
        }
    }
    return free_general(h, ptr, (uintptr_t)__builtin_return_address(0));
}
