/*
 * heap_cache.c: the heap's per-thread caches (heap.c's fast paths pop and
 * push their blocks): taking a cache for a thread, flushing it back to the
 * bins, following the manager's turns to Low, and giving the caches of a
 * thread that ends back (the registry of live heaps).
 *
 * A thread finds its cache through a few thread-local slots keyed by the
 * heap's id (ids are never reused, so a slot of a destroyed heap never
 * matches).
 *
 * Threads that end: a thread-specific key (one for the process) flushes the
 * thread's caches back to the bins, when glibc can hold the key in the
 * thread's own descriptor (keys below 32: setting one never allocates, and
 * this heap never calls malloc).  Otherwise a cache stays with its thread's
 * token and the next thread that gets the same token (the same TLS block)
 * takes it over.
 */
#include <string.h>

#include "heap.h"

#define RELAXED memory_order_relaxed

__thread heap_slot hostmem__heap_tls[HEAP_TLS_SLOTS] __attribute__((tls_model("initial-exec")));
__thread uintptr_t hostmem__heap_caller __attribute__((tls_model("initial-exec")));
static __thread bool tls_exit_armed __attribute__((tls_model("initial-exec")));

static pthread_mutex_t heap_registry_lock = PTHREAD_MUTEX_INITIALIZER;
static hostmem_malloc *heap_registry;
static pthread_once_t heap_once = PTHREAD_ONCE_INIT;
static pthread_key_t heap_exit_key;
static bool heap_exit_usable;

/* Blocks a cache keeps per class: about 32 KiB, 4 to 128 blocks. */
const uint8_t hostmem__heap_cache_caps[HEAP_CLASSES] = {128, 128, 128, 128, 128, 128, 128, 128, 128, 128, 128, 128, 102, 85, 73, 64, 51, 42, 36, 32, 25, 21, 18, 16, 12, 10, 9, 8, 6, 5, 4, 4, 4, 4, 4, 4};

#define HEAP_SEG_NONE ((uintptr_t)1 << 63) /* p - NONE >= HEAP_SEGMENT for any user address */

bool hostmem__heap_cache_flush_class(hostmem_malloc *h, heap_cache *c, uint32_t cls, uint32_t keep)
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

bool hostmem__heap_cache_flush(hostmem_malloc *h, heap_cache *c)
{
    bool excess = false;
    for (uint32_t cls = 0; cls < HEAP_CLASSES; cls++)
        excess |= hostmem__heap_cache_flush_class(h, c, cls, 0);
    return excess;
}

static void heap_thread_exit(void *unused)
{
    uintptr_t me = hostmem__heap_token();
    /* A call this thread still makes (from a later destructor) finds no
     * cache in its slots and takes one properly, never the one given up here. */
    for (unsigned i = 0; i < HEAP_TLS_SLOTS; i++)
        hostmem__heap_tls[i] = (heap_slot){0, NULL};
    pthread_mutex_lock(&heap_registry_lock);
    for (hostmem_malloc *h = heap_registry; h; h = h->next_live) {
        if (!(h->type & MALLOC_THREADSAFE))
            continue;
        for (heap_cache *c = atomic_load_explicit(&h->caches, memory_order_acquire); c; c = c->next)
            if (atomic_load_explicit(&c->owner, RELAXED) == me) {
                hostmem__heap_cache_flush(h, c);
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

heap_cache *hostmem__heap_cache_new(hostmem_malloc *h, uintptr_t owner, EMemoryCriticalLevel level)
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
            c->low_seen = hostmem__heap_low_count(h);
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
        HRESULT hr = hostmem__heap_virtual_alloc(h->m, (void *)lo, HEAP_META_CHUNK, MEM_COMMIT, PAGE_READWRITE,
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

__attribute__((noinline)) heap_cache *hostmem__heap_cache_slow(hostmem_malloc *h, heap_slot *slot,
                                                                EMemoryCriticalLevel level)
{
    uintptr_t me = hostmem__heap_token();
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
    if (!(c = hostmem__heap_cache_new(h, me, level)))
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

__attribute__((noinline)) void hostmem__heap_low(hostmem_malloc *h, heap_cache *c)
{
    uint64_t now = hostmem__heap_low_count(h);
    if (c) {
        hostmem__heap_cache_flush(h, c);
        c->low_seen = now;
    }
    atomic_store_explicit(&h->low_seen, now, RELAXED);
    hostmem__heap_trim(h, 0);
}

void hostmem__heap_registry_add(hostmem_malloc *h)
{
    pthread_once(&heap_once, heap_once_init);
    pthread_mutex_lock(&heap_registry_lock);
    h->next_live = heap_registry;
    heap_registry = h;
    pthread_mutex_unlock(&heap_registry_lock);
}

void hostmem__heap_registry_remove(hostmem_malloc *h)
{
    pthread_mutex_lock(&heap_registry_lock);
    for (hostmem_malloc **link = &heap_registry; *link; link = &(*link)->next_live)
        if (*link == h) {
            *link = h->next_live;
            break;
        }
    pthread_mutex_unlock(&heap_registry_lock);
}

/* ---- fork ------------------------------------------------------------------------- */

/* A cache whose thread does not exist in a forked child.  Its lists may have
 * been mid-update when the parent forked (the fast paths take no lock), so
 * no thread of the child takes it over; its blocks come back with destroy. */
#define HEAP_CACHE_ORPHAN ((uintptr_t)1)

/* Before fork(): every heap lock, in the lock order (registry, bins, pool), so
 * the child inherits no lock held by a thread it does not have.  No heap code
 * holds one of these across a call into its manager, whose locks fork() takes
 * after these (lifecycle.c). */
void hostmem__heap_fork_prepare(void)
{
    pthread_mutex_lock(&heap_registry_lock);
    for (hostmem_malloc *h = heap_registry; h; h = h->next_live) {
        for (uint32_t i = 0; i < HEAP_CLASSES; i++)
            pthread_mutex_lock(&h->bin[i].lock);
        pthread_mutex_lock(&h->pool_lock);
    }
}

void hostmem__heap_fork_parent(void)
{
    for (hostmem_malloc *h = heap_registry; h; h = h->next_live) {
        pthread_mutex_unlock(&h->pool_lock);
        for (uint32_t i = HEAP_CLASSES; i--;)
            pthread_mutex_unlock(&h->bin[i].lock);
    }
    pthread_mutex_unlock(&heap_registry_lock);
}

void hostmem__heap_fork_child(void)
{
    uintptr_t me = hostmem__heap_token();
    for (hostmem_malloc *h = heap_registry; h; h = h->next_live) {
        pthread_mutex_init(&h->pool_lock, NULL);
        for (uint32_t i = 0; i < HEAP_CLASSES; i++)
            pthread_mutex_init(&h->bin[i].lock, NULL);
        for (heap_cache *c = atomic_load_explicit(&h->caches, RELAXED); c; c = c->next) {
            uintptr_t owner = atomic_load_explicit(&c->owner, RELAXED);
            if (owner && owner != me)
                atomic_store_explicit(&c->owner, HEAP_CACHE_ORPHAN, RELAXED);
        }
    }
    pthread_mutex_init(&heap_registry_lock, NULL);
}
