/*
 * bench.h: the harness of hostmem-bench.
 *
 * Every figure hostmem-bench prints is a pair measured in the same run: the
 * hostmem call (public API) and the floor, the raw syscall sequence doing the
 * same kernel work.  A case alternates batches of the two (ABBA order, so a
 * linear drift of the machine hits both sides equally), after one untimed
 * warm-up batch of each.  Every operation is timed on its own (per-operation
 * samples, not batch averages), so p99 and max mean something; the timer's
 * own cost, measured the same way around an empty operation, is subtracted.
 *
 * Families (one file each) describe cases; the harness runs them and keeps
 * the rows; main.c prints them as a table or JSON.
 */
#ifndef HOSTMEM_BENCH_H
#define HOSTMEM_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <hostmem/hostmem.h>

#define BENCH_KIB ((size_t)1024)
#define BENCH_MIB ((size_t)1024 * 1024)
#define BENCH_GIB ((size_t)1024 * 1024 * 1024)

/* ---- options -------------------------------------------------------------- */
typedef struct bench_options {
    bool quick;               /* tiny iteration counts: a smoke run, figures meaningless */
    bool json;
    bool wide;                /* table shows p90 / p99.9 / max too */
    bool subtract_timer;      /* subtract the timer's own cost (default on) */
    bool use_tsc;             /* rdtsc calibrated against CLOCK_MONOTONIC (default on x86-64) */
    unsigned reps;            /* timed batches per side */
    unsigned families;        /* BENCH_FAMILY_* bits to run */
    size_t max_regions;       /* largest live-region count of the scaling family */
    const char *tracing_mode; /* label copied into every row */
    uint64_t seed;
    uint64_t burst;           /* --burst=N: only emit N events and exit */
    const char *burst_op;     /* "query" or "protect" */
} bench_options;

enum {
    BENCH_FAMILY_REGION = 1u << 0,   /* reserve, release, reserve+release */
    BENCH_FAMILY_PAGES = 1u << 1,    /* commit, decommit, protect, reset */
    BENCH_FAMILY_QUERY = 1u << 2,    /* query against the kernel's answer */
    BENCH_FAMILY_SCALING = 1u << 3,  /* query and commit at 10 .. 100k live regions */
    BENCH_FAMILY_THREADS = 1u << 4,  /* one and two threads on different regions */
    BENCH_FAMILY_METADATA = 1u << 5, /* bookkeeping bytes */
    BENCH_FAMILY_TRACE = 1u << 6,    /* a bare lttng-ust event, the yardstick of T6 */
    BENCH_FAMILY_HEAP = 1u << 7,     /* hostmem_malloc beside glibc malloc */
    BENCH_FAMILY_WATCH = 1u << 8,    /* write watch: get+reset, the host's writes */
    BENCH_FAMILY_STACKS = 1u << 9,   /* a reserve's call stack of depth 16 (T7) */
    BENCH_FAMILY_ALL = (1u << 10) - 1,
};

/* What every case sees. */
typedef struct bench_env {
    const bench_options *opt;
    hostmem_manager *m; /* shared by the families that need no fresh manager */
    size_t page;
} bench_env;

/* ---- timer ---------------------------------------------------------------- */
void bench_timer_init(const bench_options *opt);
double bench_ns_per_tick(void);
double bench_timer_overhead_ns(void);
const char *bench_timer_name(void);

static inline uint64_t bench_ticks(void);

/* The optimisation barrier: the compiler may neither move memory accesses
 * across it nor drop the computation of `p`. */
static inline void bench_barrier(void) { __asm__ __volatile__("" ::: "memory"); }
static inline void bench_escape(const void *p) { __asm__ __volatile__("" : : "g"(p) : "memory"); }

extern int bench_tsc_enabled;
uint64_t bench_clock_ticks(void);

static inline uint64_t bench_ticks(void)
{
#if defined(__x86_64__) || defined(__i386__)
    if (bench_tsc_enabled) {
        uint32_t lo, hi;
        /* lfence on both sides: the read neither starts before earlier
         * instructions finish nor lets later ones start before it. */
        __asm__ __volatile__("lfence\n\trdtsc\n\tlfence" : "=a"(lo), "=d"(hi) : : "memory");
        return ((uint64_t)hi << 32) | lo;
    }
#endif
    return bench_clock_ticks();
}

/* ---- samples and statistics ----------------------------------------------- */
typedef struct bench_samples {
    uint64_t *v; /* ticks, timer cost already subtracted */
    size_t n, cap;
} bench_samples;

typedef struct bench_stats {
    size_t n;
    double p50, p90, p99, p999, max, mean; /* ns */
} bench_stats;

void bench_samples_init(bench_samples *s, size_t cap);
void bench_samples_free(bench_samples *s);
/* Record one operation that took `ticks` (raw, timer cost included). */
void bench_samples_add(bench_samples *s, uint64_t ticks);
bench_stats bench_summarise(bench_samples *s); /* sorts s */

/* ---- targets and rows ----------------------------------------------------- */
typedef enum bench_target_kind {
    BENCH_TARGET_NONE,
    BENCH_TARGET_RATIO_P50, /* hostmem p50 / floor p50 <= value */
    BENCH_TARGET_ABS_P50,   /* hostmem p50 <= value ns */
} bench_target_kind;

typedef struct bench_target {
    bench_target_kind kind;
    double value;
} bench_target;

typedef struct bench_row {
    char operation[32];
    char variant[48];
    size_t size;      /* bytes per operation, 0 when it does not apply */
    unsigned threads;
    size_t regions;   /* live regions (scaling family), 0 otherwise */
    char floor[64];   /* what the floor does */
    bool primary;     /* this floor is the one the ratio is judged against */
    bench_stats hostmem, floor_stats;
    bench_target target;
} bench_row;

void bench_row_add(const bench_row *row);
size_t bench_row_count(void);
const bench_row *bench_row_get(size_t i);
/* -1 no target, 0 missed, 1 met */
int bench_row_verdict(const bench_row *row);
double bench_ratio(double hostmem, double floor);

/* Single figures (metadata bytes, growth factors). */
typedef struct bench_metric {
    char name[64];
    char detail[96];
    double value;
    char unit[16];
    bool has_target;
    double target_max; /* met when value <= target_max (strictly < when strict) */
    bool strict;
} bench_metric;

void bench_metric_add(const bench_metric *metric);
size_t bench_metric_count(void);
const bench_metric *bench_metric_get(size_t i);
int bench_metric_verdict(const bench_metric *metric);

/* ---- cases ---------------------------------------------------------------- */
/* The state one batch works on. */
typedef struct bench_batch {
    bench_env *env;
    size_t size;   /* the operation's size */
    size_t n;      /* operations in this batch */
    void **addr;   /* n entries for setup to fill (regions, mappings) */
    void *ctx;     /* the case's own data */
    int fd;        /* for floors that need one (/proc/self/maps) */
} bench_batch;

/* One side of a case.  Every callback returns 0, or -1 after printing why
 * (bench_fail); a failure stops the case and makes the run exit non-zero. */
typedef struct bench_impl {
    const char *label;
    int (*setup)(bench_batch *b);           /* untimed, before the batch */
    int (*prep)(bench_batch *b, size_t i);  /* untimed, before operation i (may be NULL) */
    int (*op)(bench_batch *b, size_t i);    /* the timed operation */
    int (*teardown)(bench_batch *b);        /* untimed, after the batch (may be NULL) */
} bench_impl;

#define BENCH_FLOORS_MAX 4
typedef struct bench_case {
    const char *operation;
    const char *variant;
    size_t size;
    size_t regions;              /* for the row only */
    size_t batch;                /* operations per batch */
    const bench_impl *hostmem;
    /* floors[0]: the ratio's floor; the others, optional (the first NULL
     * ends them), are timed alongside as reference floors. */
    const bench_impl *floors[BENCH_FLOORS_MAX];
    void *ctx;
    bench_target target;         /* judged against floors[0] */
} bench_case;

/* Warm up, run opt->reps batches per side interleaved, add the rows. */
int bench_run_case(bench_env *env, const bench_case *c);
/* Batch size scaled for --quick. */
size_t bench_batch_size(const bench_env *env, size_t normal);

/* ---- failures ------------------------------------------------------------- */
/* Print a failure (printf format); returns -1.  Any failure makes exit status 1. */
int bench_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int bench_check_hr(HRESULT hr, const char *what);
int bench_check_errno(int rc, const char *what);
int bench_failed(void);

/* ---- helpers shared by the families --------------------------------------- */
void bench_touch(void *p, size_t size, size_t page);
uint64_t bench_rand(uint64_t *state);
const char *bench_size_name(size_t size, char *buf, size_t len);

/* ---- families ------------------------------------------------------------- */
int bench_family_region(bench_env *env);
int bench_family_pages(bench_env *env);
int bench_family_query(bench_env *env);
int bench_family_scaling(bench_env *env);
int bench_family_threads(bench_env *env);
int bench_family_metadata(bench_env *env);
int bench_family_trace(bench_env *env);
int bench_family_heap(bench_env *env);
int bench_family_watch(bench_env *env);
int bench_family_stacks(bench_env *env);
/* --burst=N: N operations that each emit one hostmem event, then a summary. */
int bench_burst(bench_env *env);

#endif
