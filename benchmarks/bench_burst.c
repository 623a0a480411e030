/*
 * bench_burst.c: --burst=N, the load of the event-loss measurement.
 *
 * N back-to-back operations that each emit exactly one hostmem event
 * (T1), as fast as the library allows, with nothing else between
 * them: the worst case for a session's ring buffers.  query is the cheapest
 * operation, so it gives the highest event rate; protect is a typical one.
 * The summary says how many hostmem events the run emitted in all, which is
 * what a complete trace holds (recorded + discarded).
 */
#include <stdio.h>
#include <string.h>

#include "bench.h"

int bench_burst(bench_env *env)
{
    const bench_options *o = env->opt;
    bool query = strcmp(o->burst_op, "protect") != 0;
    hostmem_manager *m;
    void *p = NULL;
    if (bench_check_hr(hostmem_create(NULL, &m), "hostmem_create"))
        return -1;
    /* manager_create, then reserve + commit (a reserve-and-commit emits both). */
    uint64_t events = 1;
    int rc = bench_check_hr(hostmem_virtual_alloc(m, NULL, 64 * BENCH_KIB, MEM_RESERVE | MEM_COMMIT,
                                                  PAGE_READWRITE, eTaskCritical, &p),
                            "hostmem_virtual_alloc(reserve+commit)");
    events += 2;
    uint64_t t0 = bench_clock_ticks();
    for (uint64_t i = 0; i < o->burst && rc == 0; i++) {
        if (query) {
            MEMORY_BASIC_INFORMATION mbi;
            SIZE_T w;
            rc = bench_check_hr(hostmem_virtual_query(m, p, &mbi, sizeof mbi, &w),
                                "hostmem_virtual_query");
        } else {
            DWORD old;
            rc = bench_check_hr(hostmem_virtual_protect(m, p, 64 * BENCH_KIB,
                                                        i % 2 ? PAGE_READWRITE : PAGE_READONLY,
                                                        &old),
                                "hostmem_virtual_protect");
        }
        events++;
    }
    uint64_t t1 = bench_clock_ticks();
    if (p) {
        rc |= bench_check_hr(hostmem_virtual_free(m, p, 0, MEM_RELEASE), "hostmem_virtual_free");
        events++;
    }
    hostmem_destroy(m);
    events++; /* manager_destroy */
    double secs = (double)(t1 - t0) / 1e9;
    if (o->json)
        printf("{\"burst\": {\"operation\": \"%s\", \"operations\": %llu, \"events_emitted\": %llu, "
               "\"seconds\": %.6f, \"events_per_second\": %.0f, \"tracing_mode\": \"%s\"}}\n",
               query ? "query" : "protect", (unsigned long long)o->burst,
               (unsigned long long)events, secs, secs > 0 ? (double)o->burst / secs : 0.0,
               o->tracing_mode);
    else
        printf("burst: %llu %s calls in %.3f s (%.0f events/s); hostmem events emitted: %llu\n",
               (unsigned long long)o->burst, query ? "query" : "protect", secs,
               secs > 0 ? (double)o->burst / secs : 0.0, (unsigned long long)events);
    return rc;
}
