/*
 * bench_metadata.c: what the bookkeeping costs in bytes (hostmem_stats
 * metadata_bytes), per 64 KiB region and for one 1 TiB reservation with
 * 1,000 committed runs.  S12: a region's metadata never grows with
 * its size, only with the number of distinct runs of page state in it.
 */
#include <stdio.h>

#include "bench.h"

static void metric(const char *name, const char *detail, double value, const char *unit,
                   bool has_target, double target, bool strict)
{
    bench_metric mt = {.value = value, .has_target = has_target, .target_max = target,
                       .strict = strict};
    snprintf(mt.name, sizeof mt.name, "%s", name);
    snprintf(mt.detail, sizeof mt.detail, "%s", detail);
    snprintf(mt.unit, sizeof mt.unit, "%s", unit);
    bench_metric_add(&mt);
}

static int per_region(bench_env *env)
{
    enum { N = 1000 };
    static void *r[N];
    hostmem_manager *m;
    hostmem_stats s0, s1;
    if (bench_check_hr(hostmem_create(NULL, &m), "hostmem_create"))
        return -1;
    int rc = bench_check_hr(hostmem_get_stats(m, &s0), "hostmem_get_stats");
    for (size_t i = 0; i < N && rc == 0; i++)
        rc = bench_check_hr(hostmem_virtual_alloc(m, NULL, 64 * BENCH_KIB, MEM_RESERVE,
                                                  PAGE_READWRITE, eTaskCritical, &r[i]),
                            "hostmem_virtual_alloc(reserve)");
    if (rc == 0 && (rc = bench_check_hr(hostmem_get_stats(m, &s1), "hostmem_get_stats")) == 0) {
        metric("metadata bytes per region", "1000 live 64K regions",
               (double)(s1.metadata_bytes - s0.metadata_bytes) / N, "B", false, 0, false);
        metric("metadata of an empty manager", "after hostmem_create", (double)s0.metadata_bytes,
               "B", false, 0, false);
    }
    hostmem_destroy(m);
    return rc;
}

static int one_tib(bench_env *env)
{
    const size_t size = (size_t)1 << 40, runs = 1000;
    hostmem_manager *m;
    hostmem_stats s0, s1, s2;
    void *base = NULL;
    if (bench_check_hr(hostmem_create(NULL, &m), "hostmem_create"))
        return -1;
    int rc = bench_check_hr(hostmem_get_stats(m, &s0), "hostmem_get_stats");
    HRESULT hr = hostmem_virtual_alloc(m, NULL, size, MEM_RESERVE, PAGE_READWRITE, eTaskCritical,
                                       &base);
    if (rc == 0 && hr == E_OUTOFMEMORY) {
        /* Sanitizers, valgrind and RLIMIT_AS refuse this much address space:
         * an environment limit, not a library failure. */
        fprintf(stderr, "hostmem-bench: cannot reserve 1 TiB here (E_OUTOFMEMORY): skipped\n");
        hostmem_destroy(m);
        return 0;
    }
    if (rc == 0)
        rc = bench_check_hr(hr, "hostmem_virtual_alloc(reserve 1 TiB)");
    if (rc == 0)
        rc = bench_check_hr(hostmem_get_stats(m, &s1), "hostmem_get_stats");
    /* One committed page every 1 TiB / 1000 (page-aligned): 1,000 committed
     * runs separated by reserved ones, 2,001 runs in all. */
    size_t stride = size / runs / env->page * env->page;
    for (size_t i = 0; i < runs && rc == 0; i++) {
        void *out;
        rc = bench_check_hr(hostmem_virtual_alloc(m, (char *)base + i * stride + stride / 2,
                                                  env->page, MEM_COMMIT, PAGE_READWRITE,
                                                  eTaskCritical, &out),
                            "hostmem_virtual_alloc(MEM_COMMIT)");
    }
    if (rc == 0)
        rc = bench_check_hr(hostmem_get_stats(m, &s2), "hostmem_get_stats");
    if (rc == 0) {
        metric("metadata of a 1T reservation", "no commits (beyond an empty manager)",
               (double)(s1.metadata_bytes - s0.metadata_bytes), "B", false, 0, false);
        metric("metadata of a 1T reservation", "1,000 committed runs (beyond an empty manager)",
               (double)(s2.metadata_bytes - s0.metadata_bytes), "B", true, 65536, true);
        metric("metadata of the whole manager", "1T reservation, 1,000 committed runs",
               (double)s2.metadata_bytes, "B", false, 0, false);
    }
    hostmem_destroy(m);
    return rc;
}

int bench_family_metadata(bench_env *env)
{
    int rc = per_region(env);
    rc |= one_tib(env);
    return rc ? -1 : 0;
}
