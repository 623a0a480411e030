/*
 * bench_query.c: virtual_query against the kernel's answer.
 *
 * Inside a region hostmem answers from its own bookkeeping; the floor is what
 * asking the kernel costs (PROCMAP_QUERY), so the ratio says how much cheaper
 * the bookkeeping is than the cheapest syscall that could replace it.
 * Outside its regions hostmem must ask the kernel, so there the ratio is the
 * price of the library's wrapping around that same ioctl.
 */
#include <stdio.h>
#include <unistd.h>

#include "bench.h"
#include "procmap.h"

typedef struct query_ctx {
    const void *addr; /* the address every query of the case asks about */
} query_ctx;

static int hm_query_op(bench_batch *b, size_t i)
{
    const query_ctx *q = b->ctx;
    MEMORY_BASIC_INFORMATION mbi;
    SIZE_T written = 0;
    HRESULT hr = hostmem_virtual_query(b->env->m, q->addr, &mbi, sizeof mbi, &written);
    bench_escape(&mbi);
    return bench_check_hr(hr, "hostmem_virtual_query");
}

static int fl_open(bench_batch *b)
{
    b->fd = procmap_open();
    return b->fd < 0 ? bench_fail("open /proc/self/maps") : 0;
}
static int fl_close(bench_batch *b)
{
    close(b->fd);
    b->fd = -1;
    return 0;
}
static int fl_query_op(bench_batch *b, size_t i)
{
    const query_ctx *q = b->ctx;
    struct procmap_query pq;
    int rc = procmap_query(b->fd, q->addr, &pq);
    bench_escape(&pq);
    return bench_check_errno(rc, "ioctl(PROCMAP_QUERY)");
}

static const bench_impl hm_query = {"hostmem", NULL, NULL, hm_query_op, NULL};
static const bench_impl fl_query = {"ioctl(PROCMAP_QUERY)", fl_open, NULL, fl_query_op, fl_close};

static int foreign_object; /* lives in the bench binary's data: not ours */

int bench_family_query(bench_env *env)
{
    if (!procmap_available()) {
        fprintf(stderr, "hostmem-bench: PROCMAP_QUERY unavailable (kernel < 6.11): query skipped\n");
        return 0;
    }
    /* A 1 MiB region with three runs: reserved, committed RW, reserved. */
    void *base = NULL, *out = NULL;
    if (bench_check_hr(hostmem_virtual_alloc(env->m, NULL, BENCH_MIB, MEM_RESERVE, PAGE_READWRITE,
                                             eTaskCritical, &base),
                       "hostmem_virtual_alloc(reserve)") ||
        bench_check_hr(hostmem_virtual_alloc(env->m, (char *)base + 256 * BENCH_KIB,
                                             256 * BENCH_KIB, MEM_COMMIT, PAGE_READWRITE,
                                             eTaskCritical, &out),
                       "hostmem_virtual_alloc(MEM_COMMIT)"))
        return -1;

    int rc = 0;
    query_ctx own = {(char *)base + 300 * BENCH_KIB};
    bench_case c = {.operation = "query", .variant = "own region", .size = 0,
                    .batch = bench_batch_size(env, 1024), .hostmem = &hm_query,
                    .floors = {&fl_query}, .ctx = &own};
    rc |= bench_run_case(env, &c);

    query_ctx foreign = {&foreign_object};
    c.variant = "foreign mapping";
    c.ctx = &foreign;
    rc |= bench_run_case(env, &c);

    rc |= bench_check_hr(hostmem_virtual_free(env->m, base, 0, MEM_RELEASE),
                         "hostmem_virtual_free(MEM_RELEASE)");
    return rc ? -1 : 0;
}
