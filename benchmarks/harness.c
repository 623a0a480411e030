/*
 * harness.c: timer, samples, percentiles, the batch runner and the rows.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"

/* ---- timer ---------------------------------------------------------------- */
int bench_tsc_enabled;
static double ns_per_tick = 1.0;
static uint64_t overhead_ticks;
static bool subtract_overhead = true;

uint64_t bench_clock_ticks(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int noop_op(bench_batch *b, size_t i) { return 0; }

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

void bench_timer_init(const bench_options *opt)
{
#if defined(__x86_64__) || defined(__i386__)
    bench_tsc_enabled = opt->use_tsc;
#else
    bench_tsc_enabled = 0;
#endif
    subtract_overhead = opt->subtract_timer;
    if (bench_tsc_enabled) {
        /* Calibrate against CLOCK_MONOTONIC over a spin long enough that the
         * two clock reads' own jitter (tens of ns) is below 1e-5 of it. */
        uint64_t spin_ns = opt->quick ? 5000000u : 50000000u;
        uint64_t c0 = bench_clock_ticks(), t0 = bench_ticks(), c1, t1;
        do {
            c1 = bench_clock_ticks();
        } while (c1 - c0 < spin_ns);
        t1 = bench_ticks();
        ns_per_tick = (double)(c1 - c0) / (double)(t1 - t0);
    } else {
        ns_per_tick = 1.0;
    }
    /* The timer's own cost: the same path as a timed operation, around an
     * indirect call that does nothing.  Its median is subtracted from every
     * sample, so a figure means the operation alone. */
    enum { N = 20001 };
    static uint64_t d[N];
    int (*volatile op)(bench_batch *, size_t) = noop_op;
    for (size_t i = 0; i < N; i++) {
        bench_barrier();
        uint64_t a = bench_ticks();
        op(NULL, i);
        uint64_t z = bench_ticks();
        bench_barrier();
        d[i] = z - a;
    }
    qsort(d, N, sizeof d[0], cmp_u64);
    overhead_ticks = d[N / 2];
}

double bench_ns_per_tick(void) { return ns_per_tick; }
double bench_timer_overhead_ns(void) { return (double)overhead_ticks * ns_per_tick; }
const char *bench_timer_name(void)
{
    return bench_tsc_enabled ? "rdtsc (lfence, calibrated against CLOCK_MONOTONIC)"
                             : "clock_gettime(CLOCK_MONOTONIC)";
}

/* ---- samples -------------------------------------------------------------- */
void bench_samples_init(bench_samples *s, size_t cap)
{
    s->v = calloc(cap ? cap : 1, sizeof *s->v);
    if (!s->v) {
        fprintf(stderr, "hostmem-bench: out of memory\n");
        exit(2);
    }
    s->n = 0;
    s->cap = cap;
}

void bench_samples_free(bench_samples *s)
{
    free(s->v);
    s->v = NULL;
    s->n = s->cap = 0;
}

void bench_samples_add(bench_samples *s, uint64_t ticks)
{
    if (s->n == s->cap)
        return;
    if (subtract_overhead)
        ticks = ticks > overhead_ticks ? ticks - overhead_ticks : 0;
    s->v[s->n++] = ticks;
}

/* Nearest-rank percentile of sorted samples. */
static double pct(const bench_samples *s, double p)
{
    size_t rank = (size_t)(p / 100.0 * (double)s->n + 0.999999);
    if (rank < 1)
        rank = 1;
    if (rank > s->n)
        rank = s->n;
    return (double)s->v[rank - 1] * ns_per_tick;
}

bench_stats bench_summarise(bench_samples *s)
{
    bench_stats st = {0};
    if (s->n == 0)
        return st;
    qsort(s->v, s->n, sizeof s->v[0], cmp_u64);
    double sum = 0;
    for (size_t i = 0; i < s->n; i++)
        sum += (double)s->v[i];
    st.n = s->n;
    st.p50 = pct(s, 50);
    st.p90 = pct(s, 90);
    st.p99 = pct(s, 99);
    st.p999 = pct(s, 99.9);
    st.max = (double)s->v[s->n - 1] * ns_per_tick;
    st.mean = sum / (double)s->n * ns_per_tick;
    return st;
}

/* ---- rows and metrics ----------------------------------------------------- */
static bench_row *rows;
static size_t nrows, caprows;
static bench_metric *metrics;
static size_t nmetrics, capmetrics;

static void *grow(void *p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return p;
    size_t c = *cap ? *cap * 2 : 32;
    void *q = realloc(p, c * elem);
    if (!q) {
        fprintf(stderr, "hostmem-bench: out of memory\n");
        exit(2);
    }
    *cap = c;
    return q;
}

void bench_row_add(const bench_row *row)
{
    rows = grow(rows, &caprows, nrows + 1, sizeof *rows);
    rows[nrows++] = *row;
}
size_t bench_row_count(void) { return nrows; }
const bench_row *bench_row_get(size_t i) { return &rows[i]; }

double bench_ratio(double hostmem, double floor)
{
    /* A floor below the timer's resolution would make the ratio noise. */
    return floor > 0 ? hostmem / floor : 0.0;
}

int bench_row_verdict(const bench_row *r)
{
    if (!r->primary || r->hostmem.n == 0 || r->floor_stats.n == 0)
        return -1;
    switch (r->target.kind) {
    case BENCH_TARGET_RATIO_P50:
        return bench_ratio(r->hostmem.p50, r->floor_stats.p50) <= r->target.value;
    case BENCH_TARGET_ABS_P50:
        return r->hostmem.p50 <= r->target.value;
    default:
        return -1;
    }
}

void bench_metric_add(const bench_metric *metric)
{
    metrics = grow(metrics, &capmetrics, nmetrics + 1, sizeof *metrics);
    metrics[nmetrics++] = *metric;
}
size_t bench_metric_count(void) { return nmetrics; }
const bench_metric *bench_metric_get(size_t i) { return &metrics[i]; }
int bench_metric_verdict(const bench_metric *mt)
{
    if (!mt->has_target)
        return -1;
    return mt->strict ? mt->value < mt->target_max : mt->value <= mt->target_max;
}

/* ---- failures ------------------------------------------------------------- */
static int failures;

int bench_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("hostmem-bench: FAILED: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    failures++;
    return -1;
}

int bench_check_hr(HRESULT hr, const char *what)
{
    if (SUCCEEDED(hr))
        return 0;
    return bench_fail("%s returned %s (0x%08x)", what, hostmem_hresult_name(hr), (unsigned)hr);
}

int bench_check_errno(int rc, const char *what)
{
    if (rc == 0)
        return 0;
    return bench_fail("%s: %s", what, strerror(rc));
}

int bench_failed(void) { return failures != 0; }

/* ---- the runner ----------------------------------------------------------- */
size_t bench_batch_size(const bench_env *env, size_t normal)
{
    if (!env->opt->quick)
        return normal;
    return normal < 4 ? normal : 4;
}

/* One batch of one side: setup, n timed operations, teardown. */
static int run_batch(bench_env *env, const bench_case *c, const bench_impl *impl,
                     bench_samples *out)
{
    bench_batch b = {.env = env, .size = c->size, .n = c->batch, .ctx = c->ctx, .fd = -1};
    b.addr = calloc(b.n, sizeof *b.addr);
    if (!b.addr)
        return bench_fail("out of memory");
    int rc = impl->setup ? impl->setup(&b) : 0;
    if (rc == 0) {
        for (size_t i = 0; i < b.n; i++) {
            if (impl->prep && (rc = impl->prep(&b, i)) != 0)
                break;
            bench_barrier();
            uint64_t t0 = bench_ticks();
            rc = impl->op(&b, i);
            uint64_t t1 = bench_ticks();
            bench_barrier();
            if (rc != 0)
                break;
            if (out)
                bench_samples_add(out, t1 - t0);
        }
    }
    if (impl->teardown) {
        int rc2 = impl->teardown(&b);
        if (rc == 0)
            rc = rc2;
    }
    free(b.addr);
    if (rc != 0)
        bench_fail("%s %s (%s) stopped", c->operation, c->variant ? c->variant : "", impl->label);
    return rc;
}

int bench_run_case(bench_env *env, const bench_case *c)
{
    const bench_impl *side[1 + BENCH_FLOORS_MAX] = {c->hostmem};
    size_t nsides = 1;
    while (nsides <= BENCH_FLOORS_MAX && c->floors[nsides - 1] != NULL) {
        side[nsides] = c->floors[nsides - 1];
        nsides++;
    }
    unsigned reps = env->opt->reps;
    bench_samples s[1 + BENCH_FLOORS_MAX];
    for (size_t k = 0; k < nsides; k++)
        bench_samples_init(&s[k], (size_t)reps * c->batch);

    int rc = 0;
    /* Warm-up: caches, page tables, the library's pools and the kernel's
     * slabs reach their steady state before anything is recorded. */
    for (size_t k = 0; k < nsides && rc == 0; k++)
        rc = run_batch(env, c, side[k], NULL);
    /* ABBA: hostmem, floor(s), then floor(s), hostmem, ... */
    for (unsigned r = 0; r < reps && rc == 0; r++) {
        for (size_t j = 0; j < nsides && rc == 0; j++) {
            size_t k = (r % 2 == 0) ? j : nsides - 1 - j;
            rc = run_batch(env, c, side[k], &s[k]);
        }
    }
    if (rc == 0) {
        bench_stats st[1 + BENCH_FLOORS_MAX];
        for (size_t k = 0; k < nsides; k++)
            st[k] = bench_summarise(&s[k]);
        for (size_t f = 0; f + 1 < nsides; f++) {
            bench_row row = {0};
            snprintf(row.operation, sizeof row.operation, "%s", c->operation);
            snprintf(row.variant, sizeof row.variant, "%s", c->variant ? c->variant : "");
            snprintf(row.floor, sizeof row.floor, "%s", side[f + 1]->label);
            row.size = c->size;
            row.threads = 1;
            row.regions = c->regions;
            row.primary = f == 0;
            row.hostmem = st[0];
            row.floor_stats = st[f + 1];
            row.target = f == 0 ? c->target : (bench_target){BENCH_TARGET_NONE, 0};
            bench_row_add(&row);
        }
    }
    for (size_t k = 0; k < nsides; k++)
        bench_samples_free(&s[k]);
    return rc;
}

/* ---- helpers -------------------------------------------------------------- */
void bench_touch(void *p, size_t size, size_t page)
{
    volatile char *c = p;
    for (size_t off = 0; off < size; off += page)
        c[off] = 1;
}

uint64_t bench_rand(uint64_t *state)
{
    /* xorshift64*: deterministic for a given --seed. */
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545F4914F6CDD1Dull;
}

const char *bench_size_name(size_t size, char *buf, size_t len)
{
    if (size == 0)
        snprintf(buf, len, "-");
    else if (size % ((size_t)1 << 40) == 0)
        snprintf(buf, len, "%zuT", size >> 40);
    else if (size % BENCH_GIB == 0)
        snprintf(buf, len, "%zuG", size / BENCH_GIB);
    else if (size % BENCH_MIB == 0)
        snprintf(buf, len, "%zuM", size / BENCH_MIB);
    else if (size % BENCH_KIB == 0)
        snprintf(buf, len, "%zuK", size / BENCH_KIB);
    else
        snprintf(buf, len, "%zu", size);
    return buf;
}
