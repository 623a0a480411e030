/*
 * hostmem-heap-demo: a host that gives its runtime the manager's heap
 * (IHostMalloc), as CreateMalloc does.  The "runtime" keeps type descriptors,
 * interned strings and per-thread scratch buffers in it, from four threads,
 * under a commit limit: ordinary allocations at task level, the ones it cannot
 * do without at process level.  The host listens to memory notifications; the
 * heap gives its free spans back by itself when memory turns Low.  Some blocks
 * are never freed (a cache of interned strings that nobody clears, a
 * descriptor leaked on an error path), so a trace shows heap leaks by call
 * site and by file:line.
 *
 *   hostmem-heap-demo [--rounds N] [--quiet]
 *
 * Profile it with:  analysis/hostmem-profile -o report -- hostmem-heap-demo
 */
#include <hostmem/hostmem.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MiB ((size_t)1 << 20)
#define THREADS 4
#ifdef __FILE_NAME__ /* the file name alone, not the build machine's path */
#define DEMO_FILE __FILE_NAME__
#else
#define DEMO_FILE __FILE__
#endif
#define HALLOC(h, size, level, out) hostmem_malloc_debug_alloc(h, size, level, DEMO_FILE, __LINE__, out)

static hostmem_malloc *heap;
static bool quiet;
static int rounds = 60;
static atomic_uint low_notices, denied, from_reserve;

static void on_memory(void *context, EMemoryAvailable state)
{
    if (state == eMemoryAvailableLow)
        atomic_fetch_add(&low_notices, 1);
}

typedef struct descriptor {
    char name[48];
    size_t fields;
    void *layout;
} descriptor;

/* A type descriptor and its field layout; on "error" the descriptor leaks
 * (the bug the trace is meant to find). */
static descriptor *load_type(unsigned id, bool error_path)
{
    descriptor *d;
    if (FAILED(HALLOC(heap, sizeof *d, eAppDomainCritical, (void **)&d)))
        return NULL;
    snprintf(d->name, sizeof d->name, "Type%u", id);
    d->fields = 1 + id % 13;
    if (FAILED(HALLOC(heap, d->fields * 24, eAppDomainCritical, &d->layout)) || error_path) {
        if (d->layout)
            hostmem_malloc_free(heap, d->layout);
        return NULL; /* forgets d */
    }
    return d;
}

static void unload_type(descriptor *d)
{
    hostmem_malloc_free(heap, d->layout);
    hostmem_malloc_free(heap, d);
}

/* Interned strings: a cache that only grows (leaks by design). */
static char *intern(unsigned id)
{
    char buf[64];
    int n = snprintf(buf, sizeof buf, "System.Generic.Name%u", id % 200);
    char *s;
    if (FAILED(HALLOC(heap, (size_t)n + 1, eTaskCritical, (void **)&s)))
        return NULL;
    memcpy(s, buf, (size_t)n + 1);
    return s;
}

static void *mutator(void *arg)
{
    unsigned t = (unsigned)(uintptr_t)arg, seed = t * 2654435761u + 1;
    enum { LIVE = 2048 };
    void *scratch[LIVE] = {0};
    for (int r = 0; r < rounds; r++) {
        /* Scratch buffers: 16 B to 8 KiB, most short-lived, at task level;
         * when the task ceiling refuses, the runtime asks from the reserve. */
        for (int i = 0; i < 4000; i++) {
            seed = seed * 1103515245u + 12345u;
            unsigned k = (seed >> 8) % LIVE;
            if (scratch[k]) {
                hostmem_malloc_free(heap, scratch[k]);
                scratch[k] = NULL;
            }
            size_t size = 16 + (seed >> 12) % ((seed & 7) ? 512 : 8192);
            void *p;
            HRESULT hr = hostmem_malloc_alloc(heap, size, eTaskCritical, &p);
            if (hr == E_OUTOFMEMORY) {
                atomic_fetch_add(&denied, 1);
                if (FAILED(hostmem_malloc_alloc(heap, size, eProcessCritical, &p)))
                    continue;
                atomic_fetch_add(&from_reserve, 1);
            } else if (FAILED(hr)) {
                continue;
            }
            memset(p, (int)t, size);
            scratch[k] = p;
        }
        /* Types come and go; one in 97 takes the leaking error path. */
        for (unsigned i = 0; i < 50; i++) {
            unsigned id = t * 100000u + (unsigned)r * 50u + i;
            descriptor *d = load_type(id, id % 97 == 0);
            if (d)
                unload_type(d);
        }
        if (t == 0 && r % 4 == 0)
            (void)intern((unsigned)r);
    }
    for (int k = 0; k < LIVE; k++)
        if (scratch[k])
            hostmem_malloc_free(heap, scratch[k]);
    return NULL;
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quiet") == 0)
            quiet = true;
        else if (strcmp(argv[i], "--rounds") == 0 && i + 1 < argc)
            rounds = atoi(argv[++i]);
    }
    hostmem_config cfg;
    hostmem_config_init(&cfg);
    cfg.commit_limit = 24 * MiB;
    hostmem_manager *m;
    if (FAILED(hostmem_create(&cfg, &m)) ||
        FAILED(hostmem_register_memory_notification_callback(m, on_memory, NULL)) ||
        FAILED(hostmem_create_malloc(m, MALLOC_THREADSAFE, &heap))) {
        fprintf(stderr, "hostmem-heap-demo: cannot set up the manager and its heap\n");
        return 1;
    }
    /* The host's own memory beside the runtime's heap: 18 MiB committed for
     * a while, which pushes the manager to Low and the heap to give back. */
    void *own = NULL, *p;
    hostmem_virtual_alloc(m, NULL, 32 * MiB, MEM_RESERVE, PAGE_READWRITE, eTaskCritical, &own);
    pthread_t t[THREADS];
    for (uintptr_t i = 0; i < THREADS; i++)
        pthread_create(&t[i], NULL, mutator, (void *)i);
    /* Once the runtime holds a few MiB, the host takes 16 MiB for 100 ms. */
    hostmem_malloc_stats hs;
    for (int i = 0; i < 2000 && SUCCEEDED(hostmem_malloc_get_stats(heap, &hs)) && hs.committed_bytes < 5 * MiB; i++)
        nanosleep(&(struct timespec){0, 1000000}, NULL);
    if (own && SUCCEEDED(hostmem_virtual_alloc(m, own, 16 * MiB, MEM_COMMIT, PAGE_READWRITE,
                                               eProcessCritical, &p))) {
        nanosleep(&(struct timespec){0, 100000000}, NULL);
        hostmem_virtual_free(m, own, 16 * MiB, MEM_DECOMMIT);
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    hostmem_stats ms;
    hostmem_malloc_get_stats(heap, &hs);
    hostmem_get_stats(m, &ms);
    if (!quiet)
        printf("heap demo: %d rounds x %d threads; task-level denials %u (%u then granted at process "
               "level); Low notices %u; %zu blocks (%zu bytes) still live; heap committed %zu KiB "
               "of the manager's %zu KiB, peak %zu KiB\n",
               rounds, THREADS, atomic_load(&denied), atomic_load(&from_reserve),
               atomic_load(&low_notices), (size_t)hs.live_blocks, (size_t)hs.live_bytes,
               (size_t)hs.committed_bytes >> 10, (size_t)ms.committed_bytes >> 10,
               (size_t)ms.peak_committed_bytes >> 10);
    hostmem_malloc_destroy(heap); /* the leaked blocks go with it: the trace says whose */
    if (own)
        hostmem_virtual_free(m, own, 0, MEM_RELEASE);
    hostmem_destroy(m);
    return 0;
}
