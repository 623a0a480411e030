/*
 * heap_page.c: where the heap's blocks come from (H3).  Segments are
 * regions of the heap's manager, reserved and committed through the public
 * entry points, so the commit limit, the critical levels, the memory state
 * and the trace see every byte the heap holds, at the level of the allocation
 * that needed it.  A segment is cut into spans; a span serves one size class
 * from its bin.
 *
 * Locks: a bin's lock guards its spans' free lists; the pool lock guards the
 * free spans, the segment and large lists and the meta chunks.  Order: bin,
 * then pool.  No lock is held across a call into the manager (which may
 * trace and notify, A5), and nothing here calls the process heap.
 */
#include <string.h>

#include "heap.h"

#define RELAXED memory_order_relaxed

/* ---- size classes ------------------------------------------------------------ */

#define HEAP_SIZES_4(g) (128u << g) + 1 * (32u << g), (128u << g) + 2 * (32u << g), \
                        (128u << g) + 3 * (32u << g), (128u << g) + 4 * (32u << g)
/* 16-byte steps to 128, then four classes per doubling up to 16 KiB. */
const uint32_t hostmem__heap_sizes[HEAP_CLASSES] = {
    16, 32, 48, 64, 80, 96, 112, 128, HEAP_SIZES_4(0), HEAP_SIZES_4(1), HEAP_SIZES_4(2),
    HEAP_SIZES_4(3), HEAP_SIZES_4(4), HEAP_SIZES_4(5), HEAP_SIZES_4(6)};

uint32_t hostmem__heap_inverse(uint32_t bsize)
{
    /* off < 2^16 and bsize < 2^15: floor(off * ceil(2^32 / bsize) / 2^32) is
     * off / bsize exactly (the error term off * e / 2^32 stays below 1 / bsize). */
    return (uint32_t)(((uint64_t)1 << 32) / bsize + 1);
}

/* ---- regions of the manager --------------------------------------------------- */

static hostmem__region *heap_region_at(const hostmem_malloc *h, uintptr_t p)
{
    uintptr_t e = hostmem__map_lookup(&h->m->map, p);
    if ((e & HOSTMEM_MAP_TAG_MASK) != HOSTMEM_MAP_TAG_REGION)
        return NULL;
    return (hostmem__region *)(e & ~HOSTMEM_MAP_TAG_MASK);
}

uintptr_t hostmem__heap_region_of(const hostmem_malloc *h, uintptr_t p)
{
    /* The map is read without a lock and region structs live as long as the
     * manager: the owner tag, then the bounds, say whether p is ours. */
    hostmem__region *r = heap_region_at(h, p);
    if (!r || atomic_load_explicit(&r->owner, memory_order_acquire) != h)
        return 0;
    uintptr_t base = atomic_load_explicit(&r->base, RELAXED);
    if (!atomic_load_explicit(&r->live, RELAXED) || p < base ||
        p - base >= atomic_load_explicit(&r->size, RELAXED))
        return 0;
    return base;
}

/* The owner tag of a region the heap is making or giving back: no lookup
 * finds it as the heap's (its memory may not be there), and destroy's sweep
 * still does. */
static const void *heap_unlisted(const hostmem_malloc *h) { return (const char *)h + 1; }

static size_t round_page(const hostmem_malloc *h, size_t n)
{
    return (n + h->page_size - 1) & ~(h->page_size - 1);
}

HRESULT hostmem__heap_region_new(hostmem_malloc *h, size_t size, size_t commit, DWORD protect,
                                 EMemoryCriticalLevel level, uintptr_t *out)
{
    void *p;
    /* A region committed whole is one call (a reserve and a commit event).
     * It is the heap's from birth, unlisted until it is made (a forked
     * child's destroy finds it even if this call never finished there). */
    DWORD type = commit == size ? MEM_RESERVE | MEM_COMMIT : MEM_RESERVE;
    hostmem__region_owner_next = heap_unlisted(h);
    HRESULT hr = hostmem__heap_virtual_alloc(h->m, NULL, size, type, protect, level, &p);
    hostmem__region_owner_next = NULL;
    if (FAILED(hr))
        return hr;
    if (commit == size) {
        atomic_fetch_add_explicit(&h->committed, round_page(h, commit), RELAXED);
    } else if (commit) {
        void *q;
        hr = hostmem__heap_virtual_alloc(h->m, p, commit, MEM_COMMIT, protect, level, &q);
        if (FAILED(hr)) {
            hostmem__heap_virtual_free(h->m, p, 0, MEM_RELEASE);
            return hr;
        }
        atomic_fetch_add_explicit(&h->committed, round_page(h, commit), RELAXED);
    }
    hostmem__region *r = heap_region_at(h, (uintptr_t)p);
    if (r)
        atomic_store_explicit(&r->owner, h, memory_order_release);
    atomic_fetch_add_explicit(&h->reserved, round_page(h, size), RELAXED);
    hostmem__trace_malloc_region(h->m, h, (uintptr_t)p, round_page(h, size), true);
    *out = (uintptr_t)p;
    return S_OK;
}

void hostmem__heap_region_retire(hostmem_malloc *h, uintptr_t base)
{
    hostmem__region *r = heap_region_at(h, base);
    if (r && atomic_load_explicit(&r->owner, RELAXED) == h)
        atomic_store_explicit(&r->owner, heap_unlisted(h), memory_order_release);
}

void hostmem__heap_region_free(hostmem_malloc *h, uintptr_t base)
{
    hostmem__region *r = heap_region_at(h, base);
    size_t size = 0;
    /* Retired, not untagged, until the release is done (a recycled region
     * struct is untagged by its next reserve): a child forked meanwhile
     * still finds the region at destroy. */
    const void *owner = r ? atomic_load_explicit(&r->owner, RELAXED) : NULL;
    if (owner == h || owner == heap_unlisted(h)) {
        size = atomic_load_explicit(&r->size, RELAXED);
        atomic_store_explicit(&r->owner, heap_unlisted(h), memory_order_release);
    }
    hostmem__trace_malloc_region(h->m, h, base, size, false);
    atomic_fetch_sub_explicit(&h->reserved, size, RELAXED);
    hostmem__heap_virtual_free(h->m, (void *)base, 0, MEM_RELEASE);
}

static HRESULT heap_commit(hostmem_malloc *h, uintptr_t lo, uintptr_t hi, DWORD protect,
                           EMemoryCriticalLevel level)
{
    void *q;
    HRESULT hr = hostmem__heap_virtual_alloc(h->m, (void *)lo, hi - lo, MEM_COMMIT, protect, level, &q);
    if (SUCCEEDED(hr))
        atomic_fetch_add_explicit(&h->committed, hi - lo, RELAXED);
    return hr;
}

/* ---- spans ------------------------------------------------------------------- */

static uintptr_t span_end(const heap_span *s)
{
    return s->seg->base + ((uintptr_t)s->index + 1) * HEAP_SPAN;
}

static void list_push(heap_span **head, heap_span *s)
{
    s->prev = NULL;
    s->next = *head;
    if (*head)
        (*head)->prev = s;
    *head = s;
}

static void list_remove(heap_span **head, heap_span *s)
{
    if (s->prev)
        s->prev->next = s->next;
    else
        *head = s->next;
    if (s->next)
        s->next->prev = s->prev;
    s->next = s->prev = NULL;
}

static heap_span *list_pop(heap_span **head)
{
    heap_span *s = *head;
    if (s)
        list_remove(head, s);
    return s;
}

/* A new segment: header page read-write, span 0 committed for the caller. */
static heap_span *segment_new(hostmem_malloc *h, EMemoryCriticalLevel level, HRESULT *hr)
{
    uintptr_t base;
    *hr = hostmem__heap_region_new(h, HEAP_SEGMENT, 0, h->protect, level, &base);
    if (FAILED(*hr))
        return NULL;
    size_t page = h->page_size;
    /* The header is metadata: read-write even in an executable heap. */
    *hr = heap_commit(h, base, base + page, PAGE_READWRITE, level);
    if (SUCCEEDED(*hr) && FAILED(*hr = heap_commit(h, base + page, base + HEAP_SPAN, h->protect, level)))
        atomic_fetch_sub_explicit(&h->committed, page, RELAXED); /* released with the region */
    if (FAILED(*hr)) {
        hostmem__heap_region_free(h, base);
        return NULL;
    }
    heap_segment *seg = (heap_segment *)base;
    seg->kind = HEAP_KIND_SEGMENT;
    seg->heap = h;
    seg->base = base;
    for (uint32_t i = 0; i < HEAP_SEGMENT_SPANS; i++) {
        heap_span *s = &seg->span[i];
        s->seg = seg;
        s->index = (uint8_t)i;
        atomic_store_explicit(&s->start, base + i * HEAP_SPAN + (i ? 0 : page), RELAXED);
        s->state = i ? HEAP_SPAN_UNCOMMITTED : HEAP_SPAN_BUSY;
    }
    pthread_mutex_lock(&h->pool_lock);
    seg->next = h->segments;
    h->segments = seg;
    for (uint32_t i = HEAP_SEGMENT_SPANS - 1; i > 0; i--)
        list_push(&h->uncommitted_spans, &seg->span[i]);
    pthread_mutex_unlock(&h->pool_lock);
    atomic_fetch_add_explicit(&h->segment_count, 1, RELAXED);
    return &seg->span[0];
}

/* A committed span with no block out, for a bin.  No lock held. */
static heap_span *span_get(hostmem_malloc *h, EMemoryCriticalLevel level, HRESULT *hr)
{
    pthread_mutex_lock(&h->pool_lock);
    heap_span *s = list_pop(&h->committed_spans);
    if (s) {
        h->free_committed -= span_end(s) - atomic_load_explicit(&s->start, RELAXED);
        s->state = HEAP_SPAN_BUSY;
        pthread_mutex_unlock(&h->pool_lock);
        return s;
    }
    s = list_pop(&h->uncommitted_spans);
    if (!s) {
        pthread_mutex_unlock(&h->pool_lock);
        return segment_new(h, level, hr);
    }
    s->state = HEAP_SPAN_BUSY;
    pthread_mutex_unlock(&h->pool_lock);
    *hr = heap_commit(h, atomic_load_explicit(&s->start, RELAXED), span_end(s), h->protect, level);
    if (SUCCEEDED(*hr))
        return s;
    pthread_mutex_lock(&h->pool_lock);
    s->state = HEAP_SPAN_UNCOMMITTED;
    list_push(&h->uncommitted_spans, s);
    pthread_mutex_unlock(&h->pool_lock);
    return NULL;
}

static void span_init(heap_span *s, uint32_t cls)
{
    uint32_t bsize = hostmem__heap_class_size(cls);
    uintptr_t start = atomic_load_explicit(&s->start, RELAXED);
    s->capacity = (uint32_t)((span_end(s) - start) / bsize);
    s->used = 0;
    s->free = NULL;
    s->state = HEAP_SPAN_ACTIVE;
    s->in_bin = 0;
    atomic_store_explicit(&s->bsize, bsize, RELAXED);
    atomic_store_explicit(&s->inv, hostmem__heap_inverse(bsize), RELAXED);
    atomic_store_explicit(&s->bumped, 0, RELAXED);
    atomic_store_explicit(&s->cls1, cls + 1, memory_order_release);
}

/* ---- bins --------------------------------------------------------------------- */

uint32_t hostmem__heap_take(hostmem_malloc *h, uint32_t cls, uint32_t want, EMemoryCriticalLevel level,
                            void **out, HRESULT *hr)
{
    heap_bin *b = &h->bin[cls];
    void *list = NULL;
    uint32_t n = 0;
    heap_span *fresh = NULL;
    for (;;) {
        pthread_mutex_lock(&b->lock);
        if (fresh) {
            list_push(&b->spans, fresh);
            fresh->in_bin = 1;
            fresh = NULL;
        }
        while (n < want && b->spans) {
            heap_span *s = b->spans;
            while (n < want && s->free) {
                void *blk = s->free;
                s->free = *(void **)blk;
                *(void **)blk = list;
                list = blk;
                n++;
                s->used++;
            }
            uint32_t bumped = atomic_load_explicit(&s->bumped, RELAXED);
            if (n < want && bumped < s->capacity) {
                uintptr_t start = atomic_load_explicit(&s->start, RELAXED);
                uint32_t bsize = atomic_load_explicit(&s->bsize, RELAXED);
                while (n < want && bumped < s->capacity) {
                    uintptr_t blk = start + (uintptr_t)bumped * bsize;
                    ((uintptr_t *)blk)[0] = (uintptr_t)list;
                    /* Fresh blocks enter a cache as free ones: tagged. */
                    hostmem__heap_tag_set(blk, hostmem__heap_tag(h, s, blk));
                    list = (void *)blk;
                    n++;
                    s->used++;
                    bumped++;
                }
                atomic_store_explicit(&s->bumped, bumped, RELAXED);
            }
            if (!s->free && bumped == s->capacity) {
                list_remove(&b->spans, s);
                s->in_bin = 0;
            }
        }
        pthread_mutex_unlock(&b->lock);
        if (n)
            break;
        fresh = span_get(h, level, hr);
        if (!fresh)
            return 0;
        span_init(fresh, cls);
    }
    *out = list;
    return n;
}

bool hostmem__heap_give(hostmem_malloc *h, uint32_t cls, void *list, uint32_t n)
{
    heap_bin *b = &h->bin[cls];
    heap_span *emptied = NULL;
    pthread_mutex_lock(&b->lock);
    while (list && n--) {
        uintptr_t blk = (uintptr_t)list;
        list = *(void **)list;
        heap_span *s = (heap_span *)(hostmem__heap_tag_get(blk) ^ blk ^ h->key);
        *(void **)blk = s->free;
        s->free = (void *)blk;
        if (--s->used == 0) {
            /* Every block is home: the span goes back to the pool, and a
             * stale pointer into it no longer passes for a block. */
            if (s->in_bin)
                list_remove(&b->spans, s);
            s->in_bin = 0;
            atomic_store_explicit(&s->cls1, 0, memory_order_release);
            s->next = emptied;
            emptied = s;
        } else if (!s->in_bin) {
            list_push(&b->spans, s);
            s->in_bin = 1;
        }
    }
    pthread_mutex_unlock(&b->lock);
    if (!emptied)
        return false;
    pthread_mutex_lock(&h->pool_lock);
    while (emptied) {
        heap_span *s = emptied;
        emptied = s->next;
        s->state = HEAP_SPAN_COMMITTED;
        list_push(&h->committed_spans, s);
        h->free_committed += span_end(s) - atomic_load_explicit(&s->start, RELAXED);
    }
    bool excess = h->free_committed > HEAP_RETAIN;
    pthread_mutex_unlock(&h->pool_lock);
    return excess;
}

/* ---- giving memory back --------------------------------------------------------- */

size_t hostmem__heap_trim(hostmem_malloc *h, size_t keep)
{
    pthread_mutex_lock(&h->pool_lock);
    heap_span *list = NULL;
    while (h->committed_spans && h->free_committed > keep) {
        heap_span *s = list_pop(&h->committed_spans);
        h->free_committed -= span_end(s) - atomic_load_explicit(&s->start, RELAXED);
        s->state = HEAP_SPAN_BUSY;
        s->next = list;
        list = s;
    }
    pthread_mutex_unlock(&h->pool_lock);
    size_t freed = 0;
    while (list) {
        heap_span *s = list;
        list = s->next;
        uintptr_t lo = atomic_load_explicit(&s->start, RELAXED), hi = span_end(s);
        HRESULT hr = hostmem__heap_virtual_free(h->m, (void *)lo, hi - lo, MEM_DECOMMIT);
        pthread_mutex_lock(&h->pool_lock);
        if (SUCCEEDED(hr)) {
            s->state = HEAP_SPAN_UNCOMMITTED;
            list_push(&h->uncommitted_spans, s);
            atomic_fetch_sub_explicit(&h->committed, hi - lo, RELAXED);
            freed += hi - lo;
        } else {
            s->state = HEAP_SPAN_COMMITTED;
            list_push(&h->committed_spans, s);
            h->free_committed += hi - lo;
        }
        pthread_mutex_unlock(&h->pool_lock);
    }
    return freed;
}

void hostmem__heap_release_all(hostmem_malloc *h)
{
    /* Destroy: no other call runs on this heap any more. */
    while (h->large) {
        heap_large *l = h->large;
        h->large = l->next;
        hostmem__heap_region_free(h, (uintptr_t)l);
    }
    while (h->segments) {
        heap_segment *seg = h->segments;
        h->segments = seg->next;
        hostmem__heap_region_free(h, (uintptr_t)seg);
    }
    /* Regions no list holds: those of a call that never finished here (a
     * forked child inherits them from threads it does not have).  Their
     * owner tag, set when they were made, finds them. */
    for (uintptr_t last = 0;;) {
        uintptr_t base = 0;
        pthread_mutex_lock(&h->m->state_lock);
        for (hostmem__region *r = h->m->all_regions; r && !base; r = r->next_all)
            if (atomic_load_explicit(&r->live, RELAXED) && !atomic_load_explicit(&r->releasing, RELAXED) &&
                (atomic_load_explicit(&r->owner, RELAXED) == h ||
                 atomic_load_explicit(&r->owner, RELAXED) == heap_unlisted(h)))
                base = atomic_load_explicit(&r->base, RELAXED);
        pthread_mutex_unlock(&h->m->state_lock);
        if (!base || base == last) /* none left, or the manager would not release it */
            break;
        hostmem__heap_region_free(h, base);
        last = base;
    }
}
