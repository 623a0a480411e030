/*
 * bench_scaling.c: query and commit with 10, 1k and 100k live regions.
 *
 * S12: finding the region of an address is O(log n) or better, so
 * neither operation may grow faster than log n with the number of live
 * regions.  Each scale gets a fresh manager holding n reservations of 64 KiB;
 * every operation picks a random one (fixed seed), so the map is walked cold
 * as a host with many regions walks it.  The floor's regions are one mapping
 * of n * 64 KiB: for the kernel that is what n adjacent inaccessible
 * reservations are (they merge into one VMA), so both sides see the same
 * kernel address space shape.  The metadata cost per region is measured here
 * too.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "bench.h"
#include "floor.h"
#include "procmap.h"

#define REGION (64 * BENCH_KIB)

typedef struct scale_ctx {
    hostmem_manager *m;
    void **regions;    /* n hostmem regions */
    char *floor_base;  /* n * REGION bytes */
    size_t n;
    size_t *perm;      /* index scratch for distinct picks */
    uint64_t rng;
} scale_ctx;

static scale_ctx *sc(bench_batch *b) { return b->ctx; }

/* Distinct random region indices for one batch (partial Fisher-Yates). */
static void pick(scale_ctx *s, size_t *out, size_t k)
{
    for (size_t i = 0; i < k; i++) {
        size_t j = i + (size_t)(bench_rand(&s->rng) % (s->n - i));
        size_t t = s->perm[i];
        s->perm[i] = s->perm[j];
        s->perm[j] = t;
        out[i] = s->perm[i];
    }
}

/* Addresses for one batch: distinct random regions, or (same) one random
 * region for every operation. */
static int pick_addrs(bench_batch *b, bool hostmem_side, size_t offset, bool same)
{
    scale_ctx *s = sc(b);
    size_t *idx = malloc(b->n * sizeof *idx);
    if (!idx)
        return bench_fail("out of memory");
    pick(s, idx, same ? 1 : b->n);
    for (size_t i = 1; same && i < b->n; i++)
        idx[i] = idx[0];
    for (size_t i = 0; i < b->n; i++)
        b->addr[i] = hostmem_side ? (char *)s->regions[idx[i]] + offset
                                  : s->floor_base + idx[i] * REGION + offset;
    free(idx);
    return 0;
}

/* ---- query -------------------------------------------------------------------- */
static int hm_query_setup(bench_batch *b) { return pick_addrs(b, true, 4096, false); }
static int hm_query_same_setup(bench_batch *b) { return pick_addrs(b, true, 4096, true); }
static int hm_query_op(bench_batch *b, size_t i)
{
    MEMORY_BASIC_INFORMATION mbi;
    SIZE_T written;
    HRESULT hr = hostmem_virtual_query(sc(b)->m, b->addr[i], &mbi, sizeof mbi, &written);
    bench_escape(&mbi);
    return bench_check_hr(hr, "hostmem_virtual_query");
}
static int fl_query_open(bench_batch *b, bool same)
{
    if (pick_addrs(b, false, 4096, same))
        return -1;
    b->fd = procmap_open();
    return b->fd < 0 ? bench_fail("open /proc/self/maps") : 0;
}
static int fl_query_setup(bench_batch *b) { return fl_query_open(b, false); }
static int fl_query_same_setup(bench_batch *b) { return fl_query_open(b, true); }
static int fl_query_op(bench_batch *b, size_t i)
{
    struct procmap_query q;
    int rc = procmap_query(b->fd, b->addr[i], &q);
    bench_escape(&q);
    return bench_check_errno(rc, "ioctl(PROCMAP_QUERY)");
}
static int fl_query_teardown(bench_batch *b)
{
    if (b->fd >= 0)
        close(b->fd);
    return 0;
}

/* ---- commit ------------------------------------------------------------------- */
static int hm_commit_setup(bench_batch *b) { return pick_addrs(b, true, 0, false); }
static int hm_commit_op(bench_batch *b, size_t i)
{
    void *out;
    return bench_check_hr(hostmem_virtual_alloc(sc(b)->m, b->addr[i], REGION, MEM_COMMIT,
                                                PAGE_READWRITE, eTaskCritical, &out),
                          "hostmem_virtual_alloc(MEM_COMMIT)");
}
static int hm_commit_teardown(bench_batch *b)
{
    int rc = 0;
    /* Decommitting pages that are only reserved succeeds (S6), so
     * this is right even after a batch that stopped early. */
    for (size_t i = 0; i < b->n; i++)
        rc |= bench_check_hr(hostmem_virtual_free(sc(b)->m, b->addr[i], REGION, MEM_DECOMMIT),
                             "hostmem_virtual_free(MEM_DECOMMIT)");
    return rc;
}
static int fl_commit_setup(bench_batch *b) { return pick_addrs(b, false, 0, false); }
static int fl_commit_op(bench_batch *b, size_t i)
{
    return bench_check_errno(floor_commit(b->addr[i], REGION), "mprotect(RW)");
}
static int fl_commit_teardown(bench_batch *b)
{
    int rc = 0;
    for (size_t i = 0; i < b->n; i++)
        rc |= bench_check_errno(floor_decommit_remap(b->addr[i], REGION),
                                "mmap(MAP_FIXED, PROT_NONE)");
    return rc;
}

static const bench_impl hm_query = {"hostmem", hm_query_setup, NULL, hm_query_op, NULL};
static const bench_impl fl_query = {"ioctl(PROCMAP_QUERY)", fl_query_setup, NULL, fl_query_op,
                                    fl_query_teardown};
static const bench_impl hm_query_same = {"hostmem", hm_query_same_setup, NULL, hm_query_op, NULL};
static const bench_impl fl_query_same = {"ioctl(PROCMAP_QUERY)", fl_query_same_setup, NULL,
                                         fl_query_op, fl_query_teardown};
static const bench_impl hm_commit = {"hostmem", hm_commit_setup, NULL, hm_commit_op,
                                     hm_commit_teardown};
static const bench_impl fl_commit = {"mprotect(RW)", fl_commit_setup, NULL, fl_commit_op,
                                     fl_commit_teardown};

static const bench_row *last_row(const char *op, const char *variant)
{
    for (size_t i = bench_row_count(); i-- > 0;) {
        const bench_row *r = bench_row_get(i);
        if (r->primary && r->regions && strcmp(r->operation, op) == 0 &&
            strcmp(r->variant, variant) == 0)
            return r;
    }
    return NULL;
}

static int run_scale(bench_env *env, size_t n, double *query_p50, double *same_p50,
                     double *commit_p50)
{
    scale_ctx s = {.n = n, .rng = env->opt->seed ^ n};
    int rc = bench_check_hr(hostmem_create(NULL, &s.m), "hostmem_create");
    if (rc)
        return -1;
    s.regions = calloc(n, sizeof *s.regions);
    s.perm = malloc(n * sizeof *s.perm);
    if (!s.regions || !s.perm) {
        rc = bench_fail("out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        s.perm[i] = i;

    hostmem_stats st0, st1;
    if ((rc = bench_check_hr(hostmem_get_stats(s.m, &st0), "hostmem_get_stats")))
        goto out;
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = bench_check_hr(hostmem_virtual_alloc(s.m, NULL, REGION, MEM_RESERVE, PAGE_READWRITE,
                                                  eTaskCritical, &s.regions[i]),
                            "hostmem_virtual_alloc(reserve)");
    if (rc || (rc = bench_check_hr(hostmem_get_stats(s.m, &st1), "hostmem_get_stats")))
        goto out;
    void *fb;
    if ((rc = bench_check_errno(floor_reserve(n * REGION, &fb), "mmap(PROT_NONE)")))
        goto out;
    s.floor_base = fb;

    bench_metric mt = {.value = (double)(st1.metadata_bytes - st0.metadata_bytes) / (double)n};
    snprintf(mt.name, sizeof mt.name, "metadata bytes per region");
    snprintf(mt.detail, sizeof mt.detail, "%zu live 64K regions (scaling run)", n);
    snprintf(mt.unit, sizeof mt.unit, "B");
    bench_metric_add(&mt);

    bench_env local = *env;
    local.m = s.m;
    size_t qbatch = bench_batch_size(env, 1024), cbatch = bench_batch_size(env, 256);
    if (qbatch > n)
        qbatch = n;
    if (cbatch > n)
        cbatch = n;
    bench_case q = {.operation = "query", .variant = "random region", .size = 0, .regions = n,
                    .batch = qbatch, .hostmem = &hm_query, .floors = {&fl_query}, .ctx = &s};
    if (n >= 100000)
        q.target = (bench_target){BENCH_TARGET_ABS_P50, 120.0};
    /* The same region every time: the lookup's own cost with n regions live,
     * its memory warm.  A random region: the same walk with the host's data
     * structures as cold as a large host finds them. */
    bench_case qs = q;
    qs.variant = "same region";
    qs.hostmem = &hm_query_same;
    qs.floors[0] = &fl_query_same;
    if (n >= 100000)
        qs.target = (bench_target){BENCH_TARGET_ABS_P50, 50.0};
    if (procmap_available()) {
        rc |= bench_run_case(&local, &q);
        const bench_row *r = last_row("query", "random region");
        *query_p50 = r ? r->hostmem.p50 : 0;
        rc |= bench_run_case(&local, &qs);
        r = last_row("query", "same region");
        *same_p50 = r ? r->hostmem.p50 : 0;
    }
    bench_case c = {.operation = "commit", .variant = "random region", .size = REGION,
                    .regions = n, .batch = cbatch, .hostmem = &hm_commit, .floors = {&fl_commit},
                    .ctx = &s, .target = {BENCH_TARGET_RATIO_P50, 1.05}};
    rc |= bench_run_case(&local, &c);
    const bench_row *r = last_row("commit", "random region");
    *commit_p50 = r ? r->hostmem.p50 : 0;

    floor_release(s.floor_base, n * REGION);
out:
    hostmem_destroy(s.m);
    free(s.regions);
    free(s.perm);
    return rc ? -1 : 0;
}

static void growth_metric(const char *what, size_t n0, double v0, size_t n1, double v1)
{
    if (v0 <= 0 || v1 <= 0)
        return;
    bench_metric mt = {.value = v1 / v0, .has_target = true};
    /* O(log n): the cost may grow at most as fast as log n does. */
    mt.target_max = log((double)n1) / log((double)n0);
    snprintf(mt.name, sizeof mt.name, "%s p50 growth", what);
    snprintf(mt.detail, sizeof mt.detail, "%zu -> %zu regions (O(log n) allows %.1fx)", n0, n1,
             mt.target_max);
    snprintf(mt.unit, sizeof mt.unit, "x");
    bench_metric_add(&mt);
}

int bench_family_scaling(bench_env *env)
{
    size_t scales[3] = {10, 1000, env->opt->max_regions};
    size_t nscales = env->opt->max_regions > 1000 ? 3 : 2;
    double qp[3] = {0}, sp[3] = {0}, cp[3] = {0};
    int rc = 0;
    for (size_t k = 0; k < nscales; k++)
        rc |= run_scale(env, scales[k], &qp[k], &sp[k], &cp[k]);
    growth_metric("query (random region)", scales[0], qp[0], scales[nscales - 1], qp[nscales - 1]);
    growth_metric("query (same region)", scales[0], sp[0], scales[nscales - 1], sp[nscales - 1]);
    growth_metric("commit", scales[0], cp[0], scales[nscales - 1], cp[nscales - 1]);
    return rc ? -1 : 0;
}
