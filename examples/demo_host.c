/*
 * hostmem-demo: a host that behaves like a managed runtime's garbage-collected
 * heap.  It reserves a large heap range, commits segments as the program
 * allocates, collects (decommits) when the commit budget runs short, retries
 * critical allocations at higher levels, listens to memory notifications,
 * allocates and frees short-lived large objects, protects segments the way a
 * concurrent collector does, and finally releases everything but one small
 * region it "forgets" (so a trace shows a leak and where it came from).
 *
 *   hostmem-demo [--cycles N] [--quiet]
 */
#include <hostmem/hostmem.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MiB ((size_t)1 << 20)
#define HEAP_BYTES (512 * MiB)
#define SEGMENT (2 * MiB)
#define SEGMENTS (HEAP_BYTES / SEGMENT)
#define COMMIT_LIMIT (96 * MiB)

static bool quiet;
static const char *state_names[] = {"?", "Low", "Neutral", "High"};

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
    if (quiet)
        return;
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
}

typedef struct heap {
    hostmem_manager *m;
    char *base;
    bool committed[SEGMENTS]; /* main's alone: the finalizer never reads it */
    atomic_uint low_notices;  /* the callback runs on whichever thread caused the change */
    unsigned gcs;
} heap;

static void on_memory(void *context, EMemoryAvailable state)
{
    heap *h = context;
    if (state == eMemoryAvailableLow)
        atomic_fetch_add(&h->low_notices, 1);
    say("  [notification] memory is %s\n", state_names[state]);
}

static HRESULT commit_segment(heap *h, size_t i, EMemoryCriticalLevel level)
{
    void *p;
    HRESULT hr = hostmem_virtual_alloc(h->m, h->base + i * SEGMENT, SEGMENT, MEM_COMMIT,
                                       PAGE_READWRITE, level, &p);
    if (SUCCEEDED(hr)) {
        h->committed[i] = true;
        memset(p, (int)(i & 0xff), SEGMENT / 8); /* the mutator allocates objects */
    }
    return hr;
}

/* A collection: decommit every other live segment (the survivors are compacted). */
static void collect(heap *h)
{
    size_t freed = 0;
    for (size_t i = 0, k = 0; i < SEGMENTS; i++)
        if (h->committed[i] && (k++ % 2 == 0)) {
            if (SUCCEEDED(hostmem_virtual_free(h->m, h->base + i * SEGMENT, SEGMENT, MEM_DECOMMIT))) {
                h->committed[i] = false;
                freed++;
            }
        }
    h->gcs++;
    say("  gc #%u: decommitted %zu segments\n", h->gcs, freed);
}

/* A finalizer thread that gives memory back a little later: the segment main
 * handed it when it started, which main does not touch until it has joined
 * the thread (main keeps committed[] to itself). */
typedef struct finalizer_work {
    heap *h;
    size_t segment;
    HRESULT hr;
} finalizer_work;

static void *finalizer(void *arg)
{
    finalizer_work *w = arg;
    usleep(5000);
    w->hr = hostmem_virtual_free(w->h->m, w->h->base + w->segment * SEGMENT, SEGMENT, MEM_DECOMMIT);
    return NULL;
}

int main(int argc, char **argv)
{
    int cycles = 6;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--cycles") && i + 1 < argc)
            cycles = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--quiet"))
            quiet = true;
        else {
            fprintf(stderr, "usage: %s [--cycles N] [--quiet]\n", argv[0]);
            return 2;
        }
    }
    static heap h;
    hostmem_config cfg;
    hostmem_config_init(&cfg);
    cfg.commit_limit = COMMIT_LIMIT;
    cfg.process_critical_wait_ms = 50;
    HRESULT hr = hostmem_create(&cfg, &h.m);
    if (FAILED(hr)) {
        fprintf(stderr, "hostmem_create: %s\n", hostmem_hresult_name(hr));
        return 1;
    }
    hostmem_register_memory_notification_callback(h.m, on_memory, &h);

    void *base;
    hr = hostmem_virtual_alloc(h.m, NULL, HEAP_BYTES, MEM_RESERVE, PAGE_READWRITE, eTaskCritical, &base);
    if (FAILED(hr)) {
        fprintf(stderr, "reserving the heap: %s\n", hostmem_hresult_name(hr));
        return 1;
    }
    h.base = base;
    say("heap: %zu MiB reserved at %p, commit limit %zu MiB\n", HEAP_BYTES / MiB, base, COMMIT_LIMIT / MiB);

    /* A forgotten cache: reserved and committed, never released. */
    void *cache;
    hostmem_virtual_alloc(h.m, NULL, 256 * 1024, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE, eTaskCritical, &cache);

    unsigned denied[3] = {0}, granted = 0;
    for (int cycle = 1; cycle <= cycles; cycle++) {
        say("cycle %d\n", cycle);
        size_t next = 0;
        for (;;) {
            while (next < SEGMENTS && h.committed[next])
                next++;
            if (next == SEGMENTS)
                break;
            hr = commit_segment(&h, next, eTaskCritical);
            if (SUCCEEDED(hr)) {
                granted++;
                continue;
            }
            denied[eTaskCritical]++;
            /* The allocation matters to the app domain: ask from the reserve. */
            hr = commit_segment(&h, next, eAppDomainCritical);
            if (SUCCEEDED(hr)) {
                say("  segment %zu granted from reserve (app-domain critical)\n", next);
                continue;
            }
            denied[eAppDomainCritical]++;
            /* Process-critical, while a finalizer frees the newest segment. */
            size_t victim = SEGMENTS;
            while (victim-- > 0 && !h.committed[victim])
                ;
            finalizer_work w = {.h = &h, .segment = victim, .hr = E_FAIL};
            pthread_t t;
            bool started = victim < SEGMENTS && pthread_create(&t, NULL, finalizer, &w) == 0;
            hr = commit_segment(&h, next, eProcessCritical);
            if (started) {
                pthread_join(t, NULL);
                if (SUCCEEDED(w.hr))
                    h.committed[victim] = false;
            }
            if (FAILED(hr))
                denied[eProcessCritical]++;
            else
                say("  segment %zu granted to a process-critical request after waiting\n", next);
            break;
        }
        collect(&h);

        /* Short-lived large objects: reserve+commit, touch, release. */
        for (int k = 0; k < 200; k++) {
            void *obj;
            size_t size = (size_t)(64 + (k % 4) * 64) * 1024;
            if (SUCCEEDED(hostmem_virtual_alloc(h.m, NULL, size, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE,
                                                eTaskCritical, &obj))) {
                ((char *)obj)[0] = 1;
                hostmem_virtual_free(h.m, obj, 0, MEM_RELEASE);
            }
        }
        /* A concurrent mark phase write-protects live segments, then lifts it. */
        for (size_t i = 0; i < SEGMENTS; i++)
            if (h.committed[i]) {
                DWORD old;
                hostmem_virtual_protect(h.m, h.base + i * SEGMENT, SEGMENT, PAGE_READONLY, &old);
                hostmem_virtual_protect(h.m, h.base + i * SEGMENT, SEGMENT, PAGE_READWRITE, &old);
            }
        /* Mistakes a real host makes, each a clean HRESULT. */
        void *bad;
        hostmem_virtual_alloc(h.m, h.base + HEAP_BYTES, SEGMENT, MEM_COMMIT, PAGE_READWRITE, eTaskCritical, &bad);
        hostmem_virtual_free(h.m, h.base + 4096, 0, MEM_RELEASE);
        hostmem_virtual_alloc(h.m, NULL, SEGMENT, MEM_RESERVE, PAGE_EXECUTE_WRITECOPY, eTaskCritical, &bad);
        MEMORY_BASIC_INFORMATION mbi;
        SIZE_T written;
        hostmem_virtual_query(h.m, h.base, &mbi, sizeof mbi, &written);
    }

    hostmem_stats st;
    hostmem_get_stats(h.m, &st);
    printf("demo: %d cycles, %u segments granted at task level, denied task %u / app-domain %u / process %u, "
           "%u collections, %u Low notices\n",
           cycles, granted, denied[0], denied[1], denied[2], h.gcs, atomic_load(&h.low_notices));
    printf("demo: peak committed %zu MiB of a %zu MiB limit; now %zu regions, %zu bytes committed\n",
           st.peak_committed_bytes / MiB, COMMIT_LIMIT / MiB, st.region_count, st.committed_bytes);
    hostmem_virtual_free(h.m, h.base, 0, MEM_RELEASE);
    (void)cache; /* the forgotten cache: still reserved when the manager goes */
    hostmem_destroy(h.m);
    return 0;
}
