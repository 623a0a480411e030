/*
 * heap_stress: the heap (H2-H3) under concurrency, as a plain
 * program (Criterion cannot run under TSan).  For HOSTMEM_STRESS_SECONDS
 * (default 2), on one thread-safe heap of a manager with a commit limit:
 *
 *   2 workers    allocate and free blocks of every size on their own thread,
 *                each block filled with a pattern checked before its free;
 *   1 producer   allocates blocks and hands them through a ring to
 *   1 consumer   which checks and frees them (frees on another thread);
 *   1 host       commits and decommits memory of its own beside the heap,
 *                driving the manager to Low and back (the heap trims);
 *   short-lived threads that allocate, keep nothing, and end (their caches
 *                go back to the bins).
 *
 * Then, alone (so that no other thread can take a freed block and make the
 * second free look like a first one), a racer frees blocks twice from two
 * threads at once: exactly one free must win.
 *
 * At the end the heap must count no live block and, once trimmed, hold only
 * its metadata; destroy must leave the manager with nothing.  Exit 0 when all
 * of that held.
 */
#define _GNU_SOURCE 1
#include <hostmem/hostmem.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define RING 256

static hostmem_manager *m;
static hostmem_malloc *h;
static atomic_int stop, failures;

#define CHECK(cond, ...)                                                                       \
    do {                                                                                       \
        if (!(cond) && atomic_fetch_add(&failures, 1) < 20) {                                 \
            fprintf(stderr, "%s:%d: ", __FILE__, __LINE__);                                    \
            fprintf(stderr, __VA_ARGS__);                                                      \
            fputc('\n', stderr);                                                               \
        }                                                                                      \
    } while (0)

static uint64_t rnd(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static size_t pick_size(uint64_t *s)
{
    uint64_t r = rnd(s);
    switch (r % 8) {
    case 0: return (size_t)(r >> 8) % 40000;
    case 1: case 2: return (size_t)(r >> 8) % 4096;
    default: return (size_t)(r >> 8) % 256;
    }
}

/* A pattern that depends on the block and the size: a block handed out twice shows. */
static void stamp(unsigned char *p, size_t n)
{
    size_t k = n < 64 ? n : 64;
    for (size_t i = 0; i < k; i++)
        p[i] = (unsigned char)((uintptr_t)p >> 4) + (unsigned char)i;
    if (n > 64)
        p[n - 1] = 0x5a;
}

static bool stamped(const unsigned char *p, size_t n)
{
    size_t k = n < 64 ? n : 64;
    for (size_t i = 0; i < k; i++)
        if (p[i] != (unsigned char)((unsigned char)((uintptr_t)p >> 4) + (unsigned char)i))
            return false;
    return n <= 64 || p[n - 1] == 0x5a;
}

static void *get(size_t n, EMemoryCriticalLevel level)
{
    void *p = NULL;
    HRESULT hr = hostmem_malloc_alloc(h, n, level, &p);
    CHECK(hr == S_OK || (hr == E_OUTOFMEMORY && p == NULL), "alloc %zu: %s", n, hostmem_hresult_name(hr));
    return FAILED(hr) ? NULL : p;
}

static void put(void *p)
{
    HRESULT hr = hostmem_malloc_free(h, p);
    CHECK(hr == S_OK, "free %p: %s", p, hostmem_hresult_name(hr));
}

static void *worker(void *arg)
{
    uint64_t s = (uintptr_t)arg * 0x9e3779b97f4a7c15u + 1;
    enum { K = 64 };
    unsigned char *b[K] = {0};
    size_t n[K] = {0};
    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        size_t i = rnd(&s) % K;
        if (b[i]) {
            CHECK(stamped(b[i], n[i]), "block %p of %zu bytes overwritten", (void *)b[i], n[i]);
            put(b[i]);
            b[i] = NULL;
        } else if ((b[i] = get(n[i] = pick_size(&s), (EMemoryCriticalLevel)(rnd(&s) % 3)))) {
            stamp(b[i], n[i]);
        }
    }
    for (size_t i = 0; i < K; i++)
        if (b[i])
            put(b[i]);
    return NULL;
}

static struct {
    _Atomic(void *) slot[RING];
    _Atomic size_t sizes[RING];
} ring;

static atomic_int producer_done;

static void *producer(void *arg)
{
    uint64_t s = 77;
    for (size_t i = 0; !atomic_load_explicit(&stop, memory_order_relaxed); i++) {
        size_t k = i % RING;
        while (atomic_load_explicit(&ring.slot[k], memory_order_acquire) &&
               !atomic_load_explicit(&stop, memory_order_relaxed))
            ;
        if (atomic_load_explicit(&ring.slot[k], memory_order_acquire))
            break; /* stopped with the slot still full: it keeps its block */
        size_t n = pick_size(&s);
        unsigned char *p = get(n, eTaskCritical);
        if (!p)
            continue;
        stamp(p, n);
        atomic_store_explicit(&ring.sizes[k], n, memory_order_relaxed);
        atomic_store_explicit(&ring.slot[k], p, memory_order_release);
    }
    atomic_store(&producer_done, 1);
    return NULL;
}

static void *consumer(void *arg)
{
    for (size_t i = 0;; i++) {
        size_t k = i % RING;
        void *p;
        while (!(p = atomic_load_explicit(&ring.slot[k], memory_order_acquire)))
            if (atomic_load(&producer_done))
                goto drain;
        size_t n = atomic_load_explicit(&ring.sizes[k], memory_order_relaxed);
        CHECK(stamped(p, n), "handed-over block %p of %zu bytes overwritten", p, n);
        put(p);
        atomic_store_explicit(&ring.slot[k], NULL, memory_order_release);
    }
drain:
    for (size_t k = 0; k < RING; k++) {
        void *p = atomic_exchange(&ring.slot[k], NULL);
        if (p)
            put(p);
    }
    return NULL;
}

typedef struct duel {
    void *p;
    pthread_barrier_t *go;
    HRESULT hr;
} duel;

static void *duel_free(void *arg)
{
    duel *d = arg;
    pthread_barrier_wait(d->go);
    d->hr = hostmem_malloc_free(h, d->p);
    return NULL;
}

static void *racer(void *arg)
{
    uint64_t s = 5;
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, 2);
    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        void *p = get(pick_size(&s), eTaskCritical);
        if (!p)
            continue;
        duel a = {p, &go, 0}, b = {p, &go, 0};
        pthread_t t;
        pthread_create(&t, NULL, duel_free, &a);
        duel_free(&b);
        pthread_join(t, NULL);
        CHECK((a.hr == S_OK) + (b.hr == S_OK) == 1 && (a.hr == E_INVALIDARG || b.hr == E_INVALIDARG),
              "double free of %p: %s and %s", p, hostmem_hresult_name(a.hr), hostmem_hresult_name(b.hr));
    }
    pthread_barrier_destroy(&go);
    return NULL;
}

static void *host(void *arg)
{
    size_t size = 16u << 20;
    void *r = NULL, *got;
    CHECK(hostmem_virtual_alloc(m, NULL, size, MEM_RESERVE, PAGE_READWRITE, eTaskCritical, &r) == S_OK, "host reserve");
    while (r && !atomic_load_explicit(&stop, memory_order_relaxed)) {
        hostmem_virtual_alloc(m, r, 12u << 20, MEM_COMMIT, PAGE_READWRITE, eProcessCritical, &got);
        struct timespec ts = {0, 2000000};
        nanosleep(&ts, NULL);
        CHECK(hostmem_virtual_free(m, r, size, MEM_DECOMMIT) == S_OK, "host decommit");
        nanosleep(&ts, NULL);
    }
    if (r)
        hostmem_virtual_free(m, r, 0, MEM_RELEASE);
    return NULL;
}

static void *brief(void *arg)
{
    uint64_t s = (uintptr_t)arg + 3;
    void *b[16];
    for (int i = 0; i < 16; i++)
        b[i] = get(pick_size(&s), eTaskCritical);
    for (int i = 0; i < 16; i++)
        if (b[i])
            put(b[i]);
    return NULL;
}

static void *churner(void *arg)
{
    for (uintptr_t i = 0; !atomic_load_explicit(&stop, memory_order_relaxed); i++) {
        pthread_t t;
        pthread_create(&t, NULL, brief, (void *)i);
        pthread_join(t, NULL);
    }
    return NULL;
}

int main(void)
{
    const char *e = getenv("HOSTMEM_STRESS_SECONDS");
    double seconds = e && *e ? atof(e) : 2.0;
    hostmem_config c;
    hostmem_config_init(&c);
    c.commit_limit = 64u << 20;
    if (hostmem_create(&c, &m) || hostmem_create_malloc(m, MALLOC_THREADSAFE, &h)) {
        fprintf(stderr, "heap_stress: cannot create the manager or the heap\n");
        return 1;
    }
    void *(*fns[])(void *) = {worker, worker, producer, consumer, host, churner};
    enum { T = sizeof fns / sizeof *fns };
    pthread_t t[T];
    for (uintptr_t i = 0; i < T; i++)
        pthread_create(&t[i], NULL, fns[i], (void *)i);
    struct timespec ts = {(time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9)};
    nanosleep(&ts, NULL);
    atomic_store(&stop, 1);
    for (int i = 0; i < T; i++)
        pthread_join(t[i], NULL);

    atomic_store(&stop, 0);
    pthread_t r;
    pthread_create(&r, NULL, racer, NULL);
    nanosleep(&(struct timespec){0, 300000000}, NULL);
    atomic_store(&stop, 1);
    pthread_join(r, NULL);

    hostmem_malloc_stats hs;
    hostmem_malloc_get_stats(h, &hs);
    CHECK(hs.live_blocks == 0 && hs.live_bytes == 0, "%zu blocks (%zu bytes) still live",
          (size_t)hs.live_blocks, (size_t)hs.live_bytes);
    hostmem_malloc_trim(h);
    hostmem_malloc_get_stats(h, &hs);
    hostmem_stats ms;
    hostmem_get_stats(m, &ms);
    CHECK(hs.committed_bytes == ms.committed_bytes, "heap %zu, manager %zu committed",
          (size_t)hs.committed_bytes, (size_t)ms.committed_bytes);
    /* Metadata only: the meta chunks in use and one header page per segment. */
    CHECK(hs.committed_bytes <= (1u << 20) + hs.segments * 4096, "%zu bytes committed after trim (%zu segments)",
          (size_t)hs.committed_bytes, (size_t)hs.segments);
    hostmem_malloc_destroy(h);
    hostmem_get_stats(m, &ms);
    CHECK(ms.committed_bytes == 0 && ms.region_count == 0, "manager holds %zu bytes in %zu regions",
          (size_t)ms.committed_bytes, (size_t)ms.region_count);
    hostmem_destroy(m);
    int f = atomic_load(&failures);
    printf("heap_stress: %.1f s, %d failures\n", seconds, f);
    return f ? 1 : 0;
}
