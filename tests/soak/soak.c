/*
 * soak.c: a bounded soak of a GC-host-like workload, checked for drift.
 *
 * Threads, in cycles separated by barriers:
 *   - the heap thread commits 1 MiB segments of a 256 MiB reserved heap at
 *     eTaskCritical, then eAppDomainCritical, then eProcessCritical, each until
 *     the 64 MiB commit limit denies it; checks new segments read zero, writes
 *     them, protects some READONLY and back, queries them, decommits every
 *     other one and recommits at mixed levels, and ends the cycle with the
 *     whole heap decommitted;
 *   - OBJECT_THREADS object threads reserve-and-commit short-lived objects of
 *     64 KiB to 1 MiB (some not granule multiples), check they read zero,
 *     fill, protect READONLY, query, protect back, keep up to 8 alive and
 *     release the oldest; denials under the limit are expected and counted;
 *     everything is released at the end of the cycle.
 * At every cycle boundary (all threads parked) the main thread checks the
 * manager is back at its baseline (one region, the heap; nothing committed)
 * and records /proc/self/maps lines and VmRSS.  It runs cycles until
 * HOSTMEM_SOAK_SECONDS (default 20) have passed, at least MIN_CYCLES, then
 * checks for drift: maps lines and RSS after cycle 2N against cycle N (the
 * manager keeps its 32 MiB arenas mapped, which the first cycles create: no
 * growth per cycle is allowed), and after releasing the heap, stats at zero.
 * The amount of work per cycle is fixed; only the number of cycles depends
 * on the clock, and no check depends on timing.
 *
 * Usage: hostmem-soak            (HOSTMEM_SOAK_SECONDS=3600 hostmem-soak for an hour)
 * Exit status 0 = no drift, 1 = a check failed (the reason on stderr).
 */
#include <pthread.h>
#include <stdatomic.h>

#include "soak_util.h"

#define OBJECT_THREADS 2
#define HEAP_BYTES (256 * MiB)
#define SEGMENT (1 * MiB)
#define SEGMENTS (HEAP_BYTES / SEGMENT)
#define COMMIT_LIMIT (64 * MiB)
#define OBJECT_OPS_PER_CYCLE 300
#define LIVE_OBJECTS 8
#define MIN_CYCLES 6
#ifdef SOAK_ASAN
#define MAPS_DRIFT 64 /* lines: the sanitizer's allocator maps chunks of its own as it goes */
#else
#define MAPS_DRIFT 4 /* lines: a thread's malloc arena appearing late, at most */
#endif
#define RSS_DRIFT ((long long)(16 * MiB))

static hostmem_manager *m;
static char *heap;
static pthread_barrier_t cycle_start, cycle_end;
static atomic_int quit;
static atomic_ulong notifications_low;

#define FAIL(...)                                                  \
    do {                                                           \
        fprintf(stderr, "soak: %s:%d: ", __FILE__, __LINE__);      \
        fprintf(stderr, __VA_ARGS__);                              \
        fprintf(stderr, "\n");                                     \
        _exit(1); /* no leak report of a run that already failed */ \
    } while (0)
#define CHECK(cond, ...)      \
    do {                      \
        if (!(cond))          \
            FAIL(__VA_ARGS__); \
    } while (0)
#define CHECK_HR(expr, want)                                                                    \
    do {                                                                                        \
        HRESULT h_ = (expr);                                                                    \
        CHECK(h_ == (want), "%s: %s, want %s", #expr, hostmem_hresult_name(h_), hostmem_hresult_name(want)); \
    } while (0)

static unsigned rnd(unsigned *s)
{
    *s = *s * 1103515245u + 12345u;
    return *s >> 8;
}

static void on_notification(void *ctx, EMemoryAvailable state)
{
    (void)ctx;
    if (state == eMemoryAvailableLow)
        atomic_fetch_add(&notifications_low, 1);
}

/* ---- the heap thread ---------------------------------------------------------- */

typedef struct heap_counts {
    unsigned long granted, denied, recommits;
} heap_counts;

static int commit_segment(size_t i, EMemoryCriticalLevel level)
{
    void *p = NULL;
    HRESULT hr = hostmem_virtual_alloc(m, heap + i * SEGMENT, SEGMENT, MEM_COMMIT, PAGE_READWRITE, level, &p);
    if (hr == E_OUTOFMEMORY) {
        CHECK(p == NULL, "out_mem set on denial");
        return 0;
    }
    CHECK_HR(hr, S_OK);
    CHECK(p == heap + i * SEGMENT, "commit returned %p", p);
    return 1;
}

static void heap_cycle(heap_counts *hc, unsigned cycle)
{
    static char committed[SEGMENTS];
    size_t P = pg();
    size_t next = 0;
    memset(committed, 0, sizeof committed);
    EMemoryCriticalLevel levels[] = {eTaskCritical, eAppDomainCritical, eProcessCritical};
    for (int l = 0; l < 3; l++) {
        while (next < SEGMENTS && commit_segment(next, levels[l])) {
            char *s = heap + next * SEGMENT;
            CHECK(all_zero(s, P) && all_zero(s + SEGMENT - P, P), "new segment %zu not zero", next);
            s[0] = (char)cycle;
            s[SEGMENT - 1] = (char)next;
            committed[next++] = 1;
            hc->granted++;
        }
        hc->denied++;
    }
    for (size_t i = 0; i < next; i++) {
        char *s = heap + i * SEGMENT;
        MEMORY_BASIC_INFORMATION mbi;
        SIZE_T w;
        CHECK_HR(hostmem_virtual_query(m, s, &mbi, sizeof mbi, &w), S_OK);
        CHECK(mbi.State == MEM_COMMIT && mbi.AllocationBase == heap, "segment %zu query", i);
        CHECK(s[0] == (char)cycle && s[SEGMENT - 1] == (char)i, "segment %zu data", i);
        if (i % 4 == 1) {
            DWORD old;
            CHECK_HR(hostmem_virtual_protect(m, s, SEGMENT, PAGE_READONLY, &old), S_OK);
            CHECK(old == PAGE_READWRITE, "old protect 0x%x", (unsigned)old);
            CHECK_HR(hostmem_virtual_protect(m, s, SEGMENT, PAGE_READWRITE, &old), S_OK);
        }
    }
    /* Every other segment out and back at mixed levels: recommitted pages read zero. */
    for (size_t i = 0; i < next; i += 2) {
        CHECK_HR(hostmem_virtual_free(m, heap + i * SEGMENT, SEGMENT, MEM_DECOMMIT), S_OK);
        committed[i] = 0;
    }
    for (size_t i = 0; i < next; i += 2) {
        if (commit_segment(i, levels[(i / 2 + cycle) % 3])) {
            CHECK(all_zero(heap + i * SEGMENT, P), "recommitted segment %zu not zero", i);
            committed[i] = 1;
            hc->recommits++;
        }
    }
    /* End of cycle: the whole heap decommitted. */
    CHECK_HR(hostmem_virtual_free(m, heap, 0, MEM_DECOMMIT), S_OK);
}

static void *heap_main(void *arg)
{
    heap_counts *hc = arg;
    for (unsigned cycle = 0;; cycle++) {
        pthread_barrier_wait(&cycle_start);
        if (atomic_load(&quit))
            return NULL;
        heap_cycle(hc, cycle);
        pthread_barrier_wait(&cycle_end);
    }
}

/* ---- object threads ------------------------------------------------------------ */

typedef struct object_thread {
    unsigned seed;
    unsigned long made, denied;
} object_thread;

static void object_release(char *p)
{
    CHECK_HR(hostmem_virtual_free(m, p, 0, MEM_RELEASE), S_OK);
}

static void *object_main(void *arg)
{
    object_thread *t = arg;
    char *live[LIVE_OBJECTS] = {0};
    for (;;) {
        pthread_barrier_wait(&cycle_start);
        if (atomic_load(&quit))
            return NULL;
        for (unsigned op = 0; op < OBJECT_OPS_PER_CYCLE; op++) {
            unsigned r = rnd(&t->seed);
            unsigned slot = r % LIVE_OBJECTS;
            if (live[slot]) {
                object_release(live[slot]);
                live[slot] = NULL;
            }
            size_t size = (size_t)(1 + (r >> 4) % 16) * 64 * KiB;
            if (r & 0x10000)
                size -= (r >> 8) % 4096 + 1; /* not a page multiple */
            void *p = NULL;
            EMemoryCriticalLevel level = (EMemoryCriticalLevel)((r >> 20) % 3);
            HRESULT hr = hostmem_virtual_alloc(m, NULL, size, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE, level, &p);
            if (hr == E_OUTOFMEMORY) {
                CHECK(p == NULL, "out_mem set on denial");
                t->denied++;
                continue;
            }
            CHECK_HR(hr, S_OK);
            char *o = p;
            CHECK(all_zero(o, 256) && all_zero(o + size - 256, 256), "new object not zero");
            memset(o, (int)(r & 0xff), 256);
            MEMORY_BASIC_INFORMATION mbi;
            SIZE_T w;
            CHECK_HR(hostmem_virtual_query(m, o, &mbi, sizeof mbi, &w), S_OK);
            CHECK(mbi.AllocationBase == o && mbi.State == MEM_COMMIT && mbi.RegionSize == round_up(size, pg()),
                  "object query: base %p state 0x%x size %zu (object %p size %zu)", mbi.AllocationBase,
                  (unsigned)mbi.State, (size_t)mbi.RegionSize, (void *)o, size);
            if (r & 0x20000) {
                DWORD old;
                CHECK_HR(hostmem_virtual_protect(m, o, size, PAGE_READONLY, &old), S_OK);
                CHECK_HR(hostmem_virtual_query(m, o + size - 1, &mbi, sizeof mbi, &w), S_OK);
                CHECK(mbi.Protect == PAGE_READONLY, "protect not applied");
                CHECK_HR(hostmem_virtual_protect(m, o, size, PAGE_READWRITE, &old), S_OK);
            }
            if (r & 0x40000)
                CHECK_HR(hostmem_virtual_free(m, o + size / 4, size / 2, MEM_DECOMMIT), S_OK);
            live[slot] = o;
            t->made++;
        }
        for (unsigned i = 0; i < LIVE_OBJECTS; i++) {
            if (live[i]) {
                CHECK((unsigned char)live[i][0] == (unsigned char)live[i][255], "object data changed");
                object_release(live[i]);
                live[i] = NULL;
            }
        }
        pthread_barrier_wait(&cycle_end);
    }
}

/* ---- main: cycles, baselines, drift ----------------------------------------------- */

static void on_alarm(int sig)
{
    (void)sig;
    static const char msg[] = "soak: no cycle finished within the watchdog's bound: hung\n";
    ssize_t w = write(2, msg, sizeof msg - 1);
    (void)w;
    _exit(1);
}

typedef struct sample {
    long maps;
    long long rss;
} sample;

int main(void)
{
    const char *env = getenv("HOSTMEM_SOAK_SECONDS");
    double seconds = env && *env ? strtod(env, NULL) : 20.0;
    if (seconds < 0)
        seconds = 0;
    signal(SIGALRM, on_alarm);
    hostmem_config cfg;
    hostmem_config_init(&cfg);
    cfg.commit_limit = COMMIT_LIMIT;
    CHECK_HR(hostmem_create(&cfg, &m), S_OK);
    CHECK_HR(hostmem_register_memory_notification_callback(m, on_notification, NULL), S_OK);
    long maps_before = maps_lines();
    void *p = NULL;
    CHECK_HR(hostmem_virtual_alloc(m, NULL, HEAP_BYTES, MEM_RESERVE, PAGE_READWRITE, eTaskCritical, &p), S_OK);
    heap = p;
    hostmem_stats base = stats_of(m);
    CHECK(base.region_count == 1 && base.reserved_bytes == HEAP_BYTES && base.committed_bytes == 0,
          "baseline " STATS_FMT, STATS_ARGS(base));

    pthread_barrier_init(&cycle_start, NULL, 1 + 1 + OBJECT_THREADS);
    pthread_barrier_init(&cycle_end, NULL, 1 + 1 + OBJECT_THREADS);
    heap_counts hc = {0};
    object_thread ot[OBJECT_THREADS];
    pthread_t th[1 + OBJECT_THREADS];
    pthread_create(&th[0], NULL, heap_main, &hc);
    for (int i = 0; i < OBJECT_THREADS; i++) {
        ot[i] = (object_thread){.seed = 99u + (unsigned)i};
        pthread_create(&th[1 + i], NULL, object_main, &ot[i]);
    }

    size_t cap = 1024, cycles = 0;
    sample *samples = calloc(cap, sizeof *samples);
    CHECK(samples, "calloc");
    uint64_t start = now_ns(), deadline = start + (uint64_t)(seconds * 1e9);
    while (cycles < MIN_CYCLES || now_ns() < deadline) {
        alarm(300); /* a hang detector: a cycle takes milliseconds */
        pthread_barrier_wait(&cycle_start);
        pthread_barrier_wait(&cycle_end);
        /* Everyone is parked: the manager must be back at its baseline. */
        hostmem_stats s = stats_of(m);
        CHECK(s.region_count == base.region_count && s.reserved_bytes == base.reserved_bytes &&
                  s.committed_bytes == 0,
              "cycle %zu: drift from the baseline: " STATS_FMT, cycles, STATS_ARGS(s));
        CHECK(s.peak_committed_bytes <= COMMIT_LIMIT, "peak_committed_bytes %zu above the limit",
              (size_t)s.peak_committed_bytes);
        if (cycles == cap) {
            cap *= 2;
            samples = realloc(samples, cap * sizeof *samples);
            CHECK(samples, "realloc");
        }
        samples[cycles].maps = maps_lines();
        samples[cycles].rss = status_bytes("VmRSS");
        cycles++;
    }
    alarm(0);
    atomic_store(&quit, 1);
    pthread_barrier_wait(&cycle_start);
    for (int i = 0; i < 1 + OBJECT_THREADS; i++)
        pthread_join(th[i], NULL);

    /* Drift between cycle N and cycle 2N (1-based: samples[N - 1], samples[2N - 1]). */
    size_t n = cycles / 2;
    sample a = samples[n - 1], b = samples[2 * n - 1];
    unsigned long made = 0, denied = 0;
    for (int i = 0; i < OBJECT_THREADS; i++) {
        made += ot[i].made;
        denied += ot[i].denied;
    }
    printf("soak: %.1f s, %zu cycles; heap: %lu segment commits granted, %lu denials, %lu recommits; "
           "objects: %lu made, %lu denied; %lu Low notifications\n",
           (double)(now_ns() - start) / 1e9, cycles, hc.granted, hc.denied, hc.recommits, made, denied,
           (unsigned long)atomic_load(&notifications_low));
    printf("soak: maps lines: before heap %ld, cycle 1 %ld, cycle %zu %ld, cycle %zu %ld; "
           "VmRSS: cycle %zu %lld KiB, cycle %zu %lld KiB\n",
           maps_before, samples[0].maps, n, a.maps, 2 * n, b.maps, n, a.rss / 1024, 2 * n, b.rss / 1024);
    CHECK(b.maps - a.maps <= MAPS_DRIFT, "/proc/self/maps grew from %ld lines (cycle %zu) to %ld (cycle %zu)", a.maps,
          n, b.maps, 2 * n);
    CHECK(b.rss - a.rss <= RSS_DRIFT, "VmRSS grew from %lld KiB (cycle %zu) to %lld KiB (cycle %zu)", a.rss / 1024, n,
          b.rss / 1024, 2 * n);
    CHECK(hc.granted > 0 && hc.denied >= 3 * cycles, "the heap never reached the commit limit");
    CHECK(made > 0, "no object was ever made");
    CHECK(atomic_load(&notifications_low) > 0, "the host never heard Low");

    CHECK_HR(hostmem_virtual_free(m, heap, 0, MEM_RELEASE), S_OK);
    hostmem_stats s = stats_of(m);
    CHECK(s.region_count == 0 && s.reserved_bytes == 0 && s.committed_bytes == 0, "after release: " STATS_FMT,
          STATS_ARGS(s));
    long maps_after = maps_lines();
    /* Back to what cycle 1 left (the threads' stacks and malloc arenas, the
     * manager's 32 MiB arenas, the heap), less the heap's own line. */
    printf("soak: maps lines after releasing the heap: %ld\n", maps_after);
    CHECK(maps_after <= samples[0].maps + MAPS_DRIFT,
          "/proc/self/maps: %ld lines after cycle 1, %ld after everything was released", samples[0].maps,
          maps_after);
    hostmem_destroy(m);
    free(samples);
    printf("soak: no drift\n");
    return 0;
}
