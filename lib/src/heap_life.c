/*
 * heap_life.c: a heap's life: hostmem_create_malloc, its statistics, trim
 * and hostmem_malloc_destroy (H1-H4).  The heap lives in its meta region,
 * the caches beside it (heap_cache.c).
 */
#include <string.h>
#include <time.h>

#include "heap.h"

#define RELAXED memory_order_relaxed
#define HEAP_SINGLE_OWNER ((uintptr_t)1)

static _Atomic uint64_t heap_next_id = 1;

static HRESULT create_malloc(hostmem_manager *m, DWORD malloc_type, hostmem_malloc **out)
{
    if (out)
        *out = NULL;
    if (!m || !out)
        return hostmem__heap_fail(NULL, HOSTMEM_OP_create_malloc, E_POINTER, HOSTMEM_REASON_null_pointer, 0, 0, -1);
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
    /* The heap itself lives in its meta region: reserve it, commit the pages
     * under the struct, then tag the region once the struct exists. */
    void *p, *q;
    HRESULT hr = hostmem__heap_virtual_alloc(m, NULL, HEAP_META_SIZE, MEM_RESERVE, PAGE_READWRITE, eTaskCritical, &p);
    if (FAILED(hr))
        return hr;
    if (FAILED(hr = hostmem__heap_virtual_alloc(m, p, HEAP_META_CHUNK, MEM_COMMIT, PAGE_READWRITE, eTaskCritical, &q))) {
        hostmem__heap_virtual_free(m, p, 0, MEM_RELEASE);
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
    atomic_init(&h->low_seen, hostmem__heap_low_count(h));
    if (!(malloc_type & MALLOC_THREADSAFE))
        h->single = hostmem__heap_cache_new(h, HEAP_SINGLE_OWNER, eTaskCritical); /* in chunk 0: cannot fail */
    hostmem__trace_malloc_heap(m, h, true, malloc_type, 0, 0);
    hostmem__trace_malloc_region(m, h, h->meta, HEAP_META_SIZE, true);
    hostmem__heap_registry_add(h);
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

static HRESULT malloc_trim(hostmem_malloc *h)
{
    if (!h)
        return E_POINTER;
    heap_cache *c = hostmem__heap_cache_get(h, eTaskCritical);
    if (c)
        hostmem__heap_cache_flush(h, c);
    hostmem__heap_trim(h, 0);
    return S_OK;
}

static void malloc_destroy(hostmem_malloc *h)
{
    if (!h)
        return;
    hostmem__heap_registry_remove(h);
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
    hostmem__heap_virtual_free(m, (void *)meta, 0, MEM_RELEASE);
}

/* The entry points that ask the manager for the heap's own memory, as the
 * host's calls (heap.h: hostmem__heap_caller). */
HRESULT hostmem_create_malloc(hostmem_manager *m, DWORD malloc_type, hostmem_malloc **out)
{
    uintptr_t outer = hostmem__heap_caller;
    hostmem__heap_caller = (uintptr_t)__builtin_return_address(0);
    HRESULT hr = create_malloc(m, malloc_type, out);
    hostmem__heap_caller = outer;
    return hr;
}

HRESULT hostmem_malloc_trim(hostmem_malloc *h)
{
    uintptr_t outer = hostmem__heap_caller;
    hostmem__heap_caller = (uintptr_t)__builtin_return_address(0);
    HRESULT hr = malloc_trim(h);
    hostmem__heap_caller = outer;
    return hr;
}

void hostmem_malloc_destroy(hostmem_malloc *h)
{
    uintptr_t outer = hostmem__heap_caller;
    hostmem__heap_caller = (uintptr_t)__builtin_return_address(0);
    malloc_destroy(h);
    hostmem__heap_caller = outer;
}
