/*
 * bench_threads.c: one and two threads, each on its own region.
 *
 * If the library held a lock of its own across a syscall, two threads working
 * on different regions would queue behind each other's syscalls and the
 * hostmem/floor ratio at two threads would rise above the one-thread ratio.
 * The kernel serialises the same syscalls on its mmap lock anyway, so the
 * floor (the same syscalls from the same number of threads) already contains
 * that; what the ratio shows is the library's own serialisation.
 *
 * Each thread cycles commit then decommit of a 64 KiB region (both timed),
 * then flips the protection of a second, committed region; threads start
 * each batch together on a barrier.  Batches alternate hostmem and floor.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "bench.h"
#include "floor.h"

#define REGION (64 * BENCH_KIB)
#define MAX_THREADS 2

enum { OP_COMMIT, OP_DECOMMIT, OP_PROTECT, OP_COUNT };
static const char *const op_names[OP_COUNT] = {"commit", "decommit", "protect"};

typedef struct worker {
    bench_env *env;
    bool hostmem;
    size_t cycles;
    pthread_barrier_t *start;
    char *cycle_region;   /* committed and decommitted */
    char *protect_region; /* committed, touched, flipped */
    bench_samples *samples[OP_COUNT]; /* NULL: warm-up */
    int rc;
} worker;

static int do_op(worker *w, int op, size_t i)
{
    hostmem_manager *m = w->env->m;
    void *out;
    DWORD old;
    if (w->hostmem) {
        switch (op) {
        case OP_COMMIT:
            return bench_check_hr(hostmem_virtual_alloc(m, w->cycle_region, REGION, MEM_COMMIT,
                                                        PAGE_READWRITE, eTaskCritical, &out),
                                  "hostmem_virtual_alloc(MEM_COMMIT)");
        case OP_DECOMMIT:
            return bench_check_hr(hostmem_virtual_free(m, w->cycle_region, REGION, MEM_DECOMMIT),
                                  "hostmem_virtual_free(MEM_DECOMMIT)");
        default:
            return bench_check_hr(hostmem_virtual_protect(m, w->protect_region, REGION,
                                                          i % 2 ? PAGE_READWRITE : PAGE_READONLY,
                                                          &old),
                                  "hostmem_virtual_protect");
        }
    }
    switch (op) {
    case OP_COMMIT:
        return bench_check_errno(floor_commit(w->cycle_region, REGION), "mprotect(RW)");
    case OP_DECOMMIT:
        return bench_check_errno(floor_decommit_remap(w->cycle_region, REGION),
                                 "mmap(MAP_FIXED, PROT_NONE)");
    default:
        return bench_check_errno(floor_protect(w->protect_region, REGION,
                                               i % 2 ? PROT_READ | PROT_WRITE : PROT_READ),
                                 "mprotect");
    }
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    pthread_barrier_wait(w->start);
    for (size_t i = 0; i < w->cycles && w->rc == 0; i++) {
        for (int op = 0; op < OP_COUNT && w->rc == 0; op++) {
            bench_barrier();
            uint64_t t0 = bench_ticks();
            w->rc = do_op(w, op, i);
            uint64_t t1 = bench_ticks();
            bench_barrier();
            if (w->samples[op])
                bench_samples_add(w->samples[op], t1 - t0);
        }
    }
    return NULL;
}

/* Regions of both sides for `threads` workers; made once, used by every batch. */
typedef struct regions {
    void *hm[MAX_THREADS][2];
    void *fl[MAX_THREADS][2];
} regions;

static int make_regions(bench_env *env, unsigned threads, regions *r)
{
    for (unsigned t = 0; t < threads; t++) {
        if (bench_check_hr(hostmem_virtual_alloc(env->m, NULL, REGION, MEM_RESERVE, PAGE_READWRITE,
                                                 eTaskCritical, &r->hm[t][0]),
                           "hostmem_virtual_alloc(reserve)") ||
            bench_check_hr(hostmem_virtual_alloc(env->m, NULL, REGION, MEM_RESERVE | MEM_COMMIT,
                                                 PAGE_READWRITE, eTaskCritical, &r->hm[t][1]),
                           "hostmem_virtual_alloc(reserve+commit)"))
            return -1;
        bench_touch(r->hm[t][1], REGION, env->page);
        if (bench_check_errno(floor_reserve(REGION, &r->fl[t][0]), "mmap(PROT_NONE)") ||
            bench_check_errno(floor_reserve(REGION, &r->fl[t][1]), "mmap(PROT_NONE)") ||
            bench_check_errno(floor_commit(r->fl[t][1], REGION), "mprotect(RW)"))
            return -1;
        bench_touch(r->fl[t][1], REGION, env->page);
    }
    return 0;
}

static void drop_regions(bench_env *env, unsigned threads, regions *r)
{
    for (unsigned t = 0; t < threads; t++) {
        for (int k = 0; k < 2; k++) {
            if (r->hm[t][k])
                bench_check_hr(hostmem_virtual_free(env->m, r->hm[t][k], 0, MEM_RELEASE),
                               "hostmem_virtual_free(MEM_RELEASE)");
            if (r->fl[t][k])
                floor_release(r->fl[t][k], REGION);
        }
    }
}

/* One batch of one side with `threads` threads; samples merged into out[op]. */
static int run_batch(bench_env *env, unsigned threads, bool hostmem, const regions *r,
                     size_t cycles, bench_samples out[OP_COUNT])
{
    pthread_barrier_t start;
    pthread_t tid[MAX_THREADS];
    worker w[MAX_THREADS];
    bench_samples s[MAX_THREADS][OP_COUNT];
    int rc = 0;

    pthread_barrier_init(&start, NULL, threads);
    for (unsigned t = 0; t < threads; t++) {
        w[t] = (worker){.env = env, .hostmem = hostmem, .cycles = cycles, .start = &start,
                        .cycle_region = hostmem ? r->hm[t][0] : r->fl[t][0],
                        .protect_region = hostmem ? r->hm[t][1] : r->fl[t][1]};
        for (int op = 0; op < OP_COUNT; op++) {
            if (out) {
                bench_samples_init(&s[t][op], cycles);
                w[t].samples[op] = &s[t][op];
            }
        }
    }
    for (unsigned t = 0; t < threads; t++)
        if (pthread_create(&tid[t], NULL, worker_main, &w[t]) != 0) {
            fprintf(stderr, "hostmem-bench: pthread_create failed\n");
            exit(2);
        }
    for (unsigned t = 0; t < threads; t++) {
        pthread_join(tid[t], NULL);
        rc |= w[t].rc;
        for (int op = 0; op < OP_COUNT && out; op++) {
            /* Ticks already had the timer cost subtracted: copy them as they are. */
            for (size_t i = 0; i < s[t][op].n && out[op].n < out[op].cap; i++)
                out[op].v[out[op].n++] = s[t][op].v[i];
            bench_samples_free(&s[t][op]);
        }
    }
    pthread_barrier_destroy(&start);
    return rc;
}

static int run_threads(bench_env *env, unsigned threads)
{
    size_t cycles = bench_batch_size(env, 256);
    unsigned reps = env->opt->reps;
    regions r = {0};
    bench_samples s[2][OP_COUNT];
    int rc = make_regions(env, threads, &r);
    for (int side = 0; side < 2; side++)
        for (int op = 0; op < OP_COUNT; op++)
            bench_samples_init(&s[side][op], (size_t)reps * cycles * threads);

    if (rc == 0)
        rc |= run_batch(env, threads, true, &r, cycles, NULL) |
              run_batch(env, threads, false, &r, cycles, NULL);
    for (unsigned rep = 0; rep < reps && rc == 0; rep++) {
        bool hostmem_first = rep % 2 == 0;
        rc |= run_batch(env, threads, hostmem_first, &r, cycles, s[hostmem_first ? 0 : 1]);
        if (rc == 0)
            rc |= run_batch(env, threads, !hostmem_first, &r, cycles, s[hostmem_first ? 1 : 0]);
    }
    if (rc == 0) {
        for (int op = 0; op < OP_COUNT; op++) {
            bench_row row = {.size = REGION, .threads = threads, .primary = true};
            snprintf(row.operation, sizeof row.operation, "%s", op_names[op]);
            snprintf(row.variant, sizeof row.variant, "own region per thread");
            snprintf(row.floor, sizeof row.floor, "%s",
                     op == OP_COMMIT     ? "mprotect(RW)"
                     : op == OP_DECOMMIT ? "mmap(MAP_FIXED,PROT_NONE)"
                                         : "mprotect");
            row.hostmem = bench_summarise(&s[0][op]);
            row.floor_stats = bench_summarise(&s[1][op]);
            if (threads > 1)
                row.target = (bench_target){BENCH_TARGET_RATIO_P50, 1.10};
            bench_row_add(&row);
        }
    } else {
        bench_fail("threads=%u stopped", threads);
    }
    for (int side = 0; side < 2; side++)
        for (int op = 0; op < OP_COUNT; op++)
            bench_samples_free(&s[side][op]);
    drop_regions(env, threads, &r);
    return rc ? -1 : 0;
}

int bench_family_threads(bench_env *env)
{
    int rc = run_threads(env, 1);
    rc |= run_threads(env, MAX_THREADS);
    return rc ? -1 : 0;
}
