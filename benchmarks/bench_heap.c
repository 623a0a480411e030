/*
 * bench_heap.c: the manager's heap (hostmem_malloc_*, CONTRACT H) beside
 * glibc's malloc/free, measured in the same run.  The floor here is not a
 * syscall but the process heap doing the same work.
 *
 *   alloc+free      an allocation and its free, single threaded, untraced, at
 *                   16 B ... 4 KiB and at random sizes in that range, 16 pairs
 *                   per timed sample (target: p50 at most 1.5x glibc's);
 *   2 threads       the same pairs (random sizes, a few blocks kept live)
 *                   on one and on two threads: per-pair time at two threads
 *                   over one thread, for each allocator (scaling; target: no
 *                   worse than glibc's, with 25 % slack for a 2-core box);
 *   producer/consumer  one thread allocates, another frees (blocks cross
 *                   threads): time per block, hostmem over glibc;
 *   fragmenting peak RSS  in a fresh child each: grow to ~48 MiB of blocks of
 *                   random sizes, free two thirds at random, grow again with
 *                   other sizes, free all: the child's peak RSS (VmHWM) over
 *                   glibc's.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

typedef struct heap_ctx {
    hostmem_malloc *h;
    size_t lo, hi; /* sizes: [lo, hi], lo == hi for a fixed size */
    size_t *sizes; /* per operation, filled at setup */
    uint64_t seed;
} heap_ctx;

/* One timed sample is PAIRS alloc+free pairs: a pair takes about one tick of
 * this machine's timer (10 ns), too coarse to compare two of them. */
#define PAIRS 16

static int heap_setup(bench_batch *b)
{
    heap_ctx *c = b->ctx;
    for (size_t i = 0; i < b->n * PAIRS; i++)
        c->sizes[i] = c->lo == c->hi ? c->lo : c->lo + (size_t)(bench_rand(&c->seed) % (c->hi - c->lo + 1));
    return 0;
}

static int heap_pair(bench_batch *b, size_t i)
{
    heap_ctx *c = b->ctx;
    const size_t *sizes = c->sizes + i * PAIRS;
    for (size_t k = 0; k < PAIRS; k++) {
        void *p;
        HRESULT hr = hostmem_malloc_alloc(c->h, sizes[k], eTaskCritical, &p);
        if (FAILED(hr))
            return bench_check_hr(hr, "hostmem_malloc_alloc");
        bench_escape(p);
        if (FAILED(hr = hostmem_malloc_free(c->h, p)))
            return bench_check_hr(hr, "hostmem_malloc_free");
    }
    return 0;
}

static int glibc_pair(bench_batch *b, size_t i)
{
    heap_ctx *c = b->ctx;
    const size_t *sizes = c->sizes + i * PAIRS;
    for (size_t k = 0; k < PAIRS; k++) {
        void *p = malloc(sizes[k]);
        if (!p)
            return bench_fail("malloc(%zu) failed", sizes[k]);
        bench_escape(p);
        free(p);
    }
    return 0;
}

static const bench_impl heap_impl = {"hostmem_malloc", heap_setup, NULL, heap_pair, NULL};
static const bench_impl glibc_impl = {"glibc malloc+free", heap_setup, NULL, glibc_pair, NULL};

/* ---- threads ---------------------------------------------------------------- */

typedef struct thr {
    hostmem_malloc *h; /* NULL: glibc */
    size_t pairs;
    uint64_t seed;
    pthread_barrier_t *go;
    uint64_t ns;
    int rc;
} thr;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void *thr_pairs(void *arg)
{
    thr *t = arg;
    enum { KEEP = 32 };
    void *kept[KEEP] = {0};
    pthread_barrier_wait(t->go);
    uint64_t t0 = now_ns();
    for (size_t i = 0; i < t->pairs; i++) {
        size_t size = 16 + (size_t)(bench_rand(&t->seed) % 4081);
        size_t k = i % KEEP;
        void *p;
        if (t->h) {
            if (FAILED(hostmem_malloc_alloc(t->h, size, eTaskCritical, &p))) {
                t->rc = -1;
                break;
            }
            if (kept[k])
                hostmem_malloc_free(t->h, kept[k]);
        } else {
            if (!(p = malloc(size))) {
                t->rc = -1;
                break;
            }
            free(kept[k]);
        }
        kept[k] = p;
    }
    t->ns = now_ns() - t0;
    for (size_t k = 0; k < KEEP; k++) {
        if (t->h)
            hostmem_malloc_free(t->h, kept[k]);
        else
            free(kept[k]);
    }
    return NULL;
}

/* Mean ns per pair over `threads` threads, each doing `pairs` pairs. */
static double run_threads(hostmem_malloc *h, unsigned threads, size_t pairs, uint64_t seed)
{
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, threads);
    thr t[2];
    pthread_t id[2];
    for (unsigned i = 0; i < threads; i++) {
        t[i] = (thr){.h = h, .pairs = pairs, .seed = seed + i * 7919, .go = &go};
        pthread_create(&id[i], NULL, thr_pairs, &t[i]);
    }
    uint64_t worst = 0;
    for (unsigned i = 0; i < threads; i++) {
        pthread_join(id[i], NULL);
        if (t[i].rc)
            bench_fail("two-thread heap run failed");
        if (t[i].ns > worst)
            worst = t[i].ns;
    }
    pthread_barrier_destroy(&go);
    return (double)worst / (double)pairs;
}

/* ---- producer / consumer ---------------------------------------------------- */

#define RING 1024
typedef struct pc {
    hostmem_malloc *h;
    size_t blocks;
    _Atomic(void *) slot[RING];
    int rc;
} pc;

static void *pc_produce(void *arg)
{
    pc *q = arg;
    uint64_t s = 99;
    for (size_t i = 0; i < q->blocks; i++) {
        size_t size = 16 + (size_t)(bench_rand(&s) % 4081);
        void *p;
        if (q->h) {
            if (FAILED(hostmem_malloc_alloc(q->h, size, eTaskCritical, &p))) {
                q->rc = -1;
                p = NULL;
            }
        } else {
            p = malloc(size);
        }
        if (!p)
            p = (void *)1; /* keeps the consumer counting */
        while (atomic_load_explicit(&q->slot[i % RING], memory_order_acquire))
            ;
        atomic_store_explicit(&q->slot[i % RING], p, memory_order_release);
    }
    return NULL;
}

static void *pc_consume(void *arg)
{
    pc *q = arg;
    for (size_t i = 0; i < q->blocks; i++) {
        void *p;
        while (!(p = atomic_load_explicit(&q->slot[i % RING], memory_order_acquire)))
            ;
        atomic_store_explicit(&q->slot[i % RING], NULL, memory_order_release);
        if (p == (void *)1)
            continue;
        if (q->h)
            hostmem_malloc_free(q->h, p);
        else
            free(p);
    }
    return NULL;
}

static double run_pc(hostmem_malloc *h, size_t blocks)
{
    pc *q = calloc(1, sizeof *q);
    if (!q)
        return 0;
    q->h = h;
    q->blocks = blocks;
    pthread_t a, b;
    uint64_t t0 = now_ns();
    pthread_create(&b, NULL, pc_consume, q);
    pthread_create(&a, NULL, pc_produce, q);
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    double ns = (double)(now_ns() - t0) / (double)blocks;
    if (q->rc)
        bench_fail("producer/consumer: hostmem_malloc_alloc failed");
    free(q);
    return ns;
}

/* ---- fragmenting workload, peak RSS ----------------------------------------------- */

static long vm_hwm_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kib = -1;
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "VmHWM:", 6) == 0)
            kib = strtol(line + 6, NULL, 10);
    if (f)
        fclose(f);
    return kib;
}

static long vm_rss_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kib = -1;
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0)
            kib = strtol(line + 6, NULL, 10);
    if (f)
        fclose(f);
    return kib;
}

static void frag_workload(hostmem_malloc *h, size_t target, uint64_t seed)
{
    size_t cap = target / 64;
    void **p = calloc(cap, sizeof *p);
    size_t *sz = calloc(cap, sizeof *sz);
    if (!p || !sz)
        _exit(3);
    size_t n = 0, bytes = 0;
    for (int phase = 0; phase < 3; phase++) {
        /* Grow: phase 0 small, phase 1 medium, phase 2 mixed. */
        while (bytes < target && n < cap) {
            uint64_t r = bench_rand(&seed);
            size_t s = phase == 0 ? 16 + r % 240 : phase == 1 ? 256 + r % 3840 : 16 + r % 8000;
            void *q;
            if (h) {
                if (FAILED(hostmem_malloc_alloc(h, s, eTaskCritical, &q)))
                    _exit(4);
            } else if (!(q = malloc(s))) {
                _exit(4);
            }
            memset(q, 0x33, s);
            p[n] = q;
            sz[n++] = s;
            bytes += s;
        }
        /* Free two thirds at random: holes everywhere. */
        for (size_t i = 0; i < n;) {
            if (bench_rand(&seed) % 3) {
                if (h)
                    hostmem_malloc_free(h, p[i]);
                else
                    free(p[i]);
                bytes -= sz[i];
                p[i] = p[--n];
                sz[i] = sz[n];
            } else {
                i++;
            }
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (h)
            hostmem_malloc_free(h, p[i]);
        else
            free(p[i]);
    }
    free(p);
    free(sz);
}

/* Peak RSS growth (KiB) of a child running the workload; -1 on failure. */
static long frag_child(bool hostmem, size_t target, long *end_kib)
{
    int fds[2];
    if (pipe(fds))
        return -1;
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        hostmem_manager *m = NULL;
        hostmem_malloc *h = NULL;
        if (hostmem && (hostmem_create(NULL, &m) || hostmem_create_malloc(m, MALLOC_THREADSAFE, &h)))
            _exit(2);
        /* Reset the peak to now (Linux >= 4.0): only the workload's growth counts. */
        FILE *f = fopen("/proc/self/clear_refs", "w");
        if (f) {
            fputs("5", f);
            fclose(f);
        }
        long base = vm_hwm_kib();
        frag_workload(h, target, 12345);
        long out[2] = {vm_hwm_kib() - base, vm_rss_kib() - base};
        if (write(fds[1], out, sizeof out) != (ssize_t)sizeof out)
            _exit(5);
        _exit(0);
    }
    close(fds[1]);
    long out[2] = {-1, -1};
    ssize_t got = read(fds[0], out, sizeof out);
    close(fds[0]);
    int status;
    waitpid(pid, &status, 0);
    if (got != (ssize_t)sizeof out || !WIFEXITED(status) || WEXITSTATUS(status))
        return -1;
    *end_kib = out[1];
    return out[0];
}

/* ---- the family ---------------------------------------------------------------------- */

int bench_family_heap(bench_env *env)
{
    hostmem_manager *m;
    hostmem_malloc *h;
    if (bench_check_hr(hostmem_create(NULL, &m), "hostmem_create") ||
        bench_check_hr(hostmem_create_malloc(m, MALLOC_THREADSAFE, &h), "hostmem_create_malloc"))
        return -1;
    size_t batch = bench_batch_size(env, 4000);
    heap_ctx c = {.h = h, .seed = env->opt->seed, .sizes = calloc(batch * PAIRS, sizeof(size_t))};
    if (!c.sizes)
        return bench_fail("out of memory");
    static const size_t fixed[] = {16, 64, 256, 1024, 4096};
    int rc = 0;
    for (size_t k = 0; k <= sizeof fixed / sizeof *fixed && rc == 0; k++) {
        bool mixed = k == sizeof fixed / sizeof *fixed;
        c.lo = mixed ? 16 : fixed[k];
        c.hi = mixed ? 4096 : fixed[k];
        bench_case bc = {.operation = "16x malloc+free",
                         .variant = mixed ? "random 16B-4K" : "fixed size",
                         .size = mixed ? 0 : c.lo,
                         .batch = batch,
                         .hostmem = &heap_impl,
                         .floors = {&glibc_impl, NULL},
                         .ctx = &c,
                         .target = {BENCH_TARGET_RATIO_P50, 1.5}};
        rc = bench_run_case(env, &bc);
    }
    free(c.sizes);

    /* Scaling: per-pair time at 2 threads / at 1 thread, each allocator. */
    size_t pairs = env->opt->quick ? 2000 : 400000;
    double best[2][2] = {{1e18, 1e18}, {1e18, 1e18}}; /* [hostmem?][threads-1] */
    unsigned reps = env->opt->quick ? 1 : 5;
    for (unsigned r = 0; r < reps && rc == 0; r++)
        for (unsigned th = 1; th <= 2; th++)
            for (int side = 0; side < 2; side++) {
                double ns = run_threads(side ? h : NULL, th, pairs, env->opt->seed + r);
                if (ns < best[side][th - 1])
                    best[side][th - 1] = ns;
            }
    double scale_h = best[1][1] / best[1][0], scale_g = best[0][1] / best[0][0];
    bench_metric mt = {.value = scale_h / scale_g, .has_target = true, .target_max = 1.25};
    snprintf(mt.name, sizeof mt.name, "heap 2-thread scaling vs glibc");
    snprintf(mt.detail, sizeof mt.detail, "hostmem %.1f->%.1f ns/pair, glibc %.1f->%.1f (1->2 threads)",
             best[1][0], best[1][1], best[0][0], best[0][1]);
    snprintf(mt.unit, sizeof mt.unit, "x");
    bench_metric_add(&mt);

    /* Producer / consumer. */
    size_t blocks = env->opt->quick ? 2000 : 400000;
    double pc_h = 1e18, pc_g = 1e18;
    for (unsigned r = 0; r < reps && rc == 0; r++) {
        double g = run_pc(NULL, blocks), x = run_pc(h, blocks);
        pc_g = g < pc_g ? g : pc_g;
        pc_h = x < pc_h ? x : pc_h;
    }
    bench_metric pm = {.value = pc_h / pc_g};
    snprintf(pm.name, sizeof pm.name, "heap producer/consumer vs glibc");
    snprintf(pm.detail, sizeof pm.detail, "hostmem %.1f ns/block, glibc %.1f ns/block (free on another thread)",
             pc_h, pc_g);
    snprintf(pm.unit, sizeof pm.unit, "x");
    bench_metric_add(&pm);

    hostmem_malloc_destroy(h);
    hostmem_destroy(m);

    /* Fragmenting workload: peak RSS, each allocator in a fresh child. */
    size_t target = env->opt->quick ? 2 * BENCH_MIB : 48 * BENCH_MIB;
    long end_g = 0, end_h = 0;
    long peak_g = frag_child(false, target, &end_g), peak_h = frag_child(true, target, &end_h);
    if (peak_g <= 0 || peak_h <= 0)
        return bench_fail("fragmenting workload child failed (%ld, %ld KiB)", peak_g, peak_h);
    bench_metric fm = {.value = (double)peak_h / (double)peak_g};
    snprintf(fm.name, sizeof fm.name, "heap fragmenting peak RSS vs glibc");
    snprintf(fm.detail, sizeof fm.detail, "hostmem %ld KiB, glibc %ld KiB (end: %ld, %ld)", peak_h, peak_g,
             end_h, end_g);
    snprintf(fm.unit, sizeof fm.unit, "x");
    bench_metric_add(&fm);
    return rc;
}
