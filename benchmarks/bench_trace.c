/*
 * bench_trace.c: what one traced operation costs beside the bare lttng-ust
 * event (bench_trace_tp.h), every side timed the way hostmem operations are.
 *
 *   bare_event      an event with one integer field; its "floor" is an empty
 *                   operation, so in a run without a session both sides are
 *                   the harness's own noise, and with a session recording
 *                   hostmem_bench:* the hostmem side is what the cheapest
 *                   event costs: T6's yardstick;
 *   reserve, release  one 64 KiB region operation in the steady state (the
 *                   other half of the pair runs untimed before it), carved
 *                   from address space the manager holds: no syscall, so the
 *                   time tracing adds is the event's;
 *   malloc_alloc, malloc_free  one 64-byte heap operation, the other half
 *                   untimed before it;
 *   region_pair     a reserve and its release timed as one, and the same with
 *                   a bare event after each call: in the run with a session,
 *                   the difference is what two bare events cost among the
 *                   manager's work (the yardstick side by side, where the
 *                   region events are), beside the pair's own two events.
 *
 * Each operation case's floor is the same empty operation: run-tracing.sh
 * takes what a session adds to the hostmem side (enabled - none) and divides
 * it by what it adds to the bare event (T6: at most 1.5).
 */
#include "bench.h"

#ifdef HOSTMEM_BENCH_WITH_LTTNG
#define LTTNG_UST_TRACEPOINT_CREATE_PROBES
#define LTTNG_UST_TRACEPOINT_DEFINE
#include "bench_trace_tp.h"

static int empty_op(bench_batch *b, size_t i)
{
    (void)b;
    bench_escape((const void *)i);
    return 0;
}

static const bench_impl empty_impl = {"empty", NULL, NULL, empty_op, NULL};

/* ---- region operations, one timed at a time ----------------------------------- */
static int region_reserve(bench_batch *b, size_t i)
{
    void *p = NULL;
    if (bench_check_hr(hostmem_virtual_alloc(b->env->m, NULL, b->size, MEM_RESERVE, PAGE_READWRITE,
                                             eTaskCritical, &p),
                       "hostmem_virtual_alloc(reserve)"))
        return -1;
    b->addr[i] = p;
    return 0;
}

static int region_release(bench_batch *b, size_t i)
{
    void *p = b->addr[i];
    b->addr[i] = NULL;
    return bench_check_hr(hostmem_virtual_free(b->env->m, p, 0, MEM_RELEASE),
                          "hostmem_virtual_free(MEM_RELEASE)");
}

/* Before reserve i: release what reserve i-1 made (one region live at a time). */
static int region_release_prev(bench_batch *b, size_t i)
{
    return i == 0 || !b->addr[i - 1] ? 0 : region_release(b, i - 1);
}

static int region_release_all(bench_batch *b)
{
    int rc = 0;
    for (size_t i = 0; i < b->n; i++)
        if (b->addr[i] && region_release(b, i))
            rc = -1;
    return rc;
}

static const bench_impl reserve_impl = {"hostmem", NULL, region_release_prev, region_reserve,
                                        region_release_all};

/* ---- the bare event where a region event is: T6 side by side -------------------- */
/* A reserve and its release, timed as one operation: two region events. */
static int region_pair(bench_batch *b, size_t i)
{
    return region_reserve(b, i) || region_release(b, i) ? -1 : 0;
}

/* The same, with a bare event after each call: what the bare event costs
 * among the manager's work rather than in a loop of its own (pair_bare -
 * pair, in the same run). */
static int region_pair_bare(bench_batch *b, size_t i)
{
    if (region_reserve(b, i))
        return -1;
    lttng_ust_tracepoint(hostmem_bench, bare, (uint64_t)i);
    if (region_release(b, i))
        return -1;
    lttng_ust_tracepoint(hostmem_bench, bare, (uint64_t)i);
    return 0;
}

static const bench_impl pair_impl = {"hostmem", NULL, NULL, region_pair, region_release_all};
static const bench_impl pair_bare_impl = {"hostmem", NULL, NULL, region_pair_bare, region_release_all};
static const bench_impl release_impl = {"hostmem", NULL, region_reserve, region_release,
                                        region_release_all};

/* ---- heap operations ------------------------------------------------------------ */
static int heap_alloc(bench_batch *b, size_t i)
{
    void *p = NULL;
    if (bench_check_hr(hostmem_malloc_alloc(b->ctx, b->size, eTaskCritical, &p),
                       "hostmem_malloc_alloc"))
        return -1;
    b->addr[i] = p;
    return 0;
}

static int heap_free(bench_batch *b, size_t i)
{
    void *p = b->addr[i];
    b->addr[i] = NULL;
    return bench_check_hr(hostmem_malloc_free(b->ctx, p), "hostmem_malloc_free");
}

static int heap_free_prev(bench_batch *b, size_t i)
{
    return i == 0 || !b->addr[i - 1] ? 0 : heap_free(b, i - 1);
}

static int heap_free_all(bench_batch *b)
{
    int rc = 0;
    for (size_t i = 0; i < b->n; i++)
        if (b->addr[i] && heap_free(b, i))
            rc = -1;
    return rc;
}

static const bench_impl alloc_impl = {"hostmem", NULL, heap_free_prev, heap_alloc, heap_free_all};
static const bench_impl free_impl = {"hostmem", NULL, heap_alloc, heap_free, heap_free_all};

static int bench_trace_ops(bench_env *env)
{
    int rc = 0;
    size_t n = bench_batch_size(env, 512);
    bench_case reserve = {.operation = "reserve", .variant = "one event", .size = 64 * BENCH_KIB,
                          .batch = n, .hostmem = &reserve_impl, .floors = {&empty_impl}};
    bench_case release = {.operation = "release", .variant = "one event", .size = 64 * BENCH_KIB,
                          .batch = n, .hostmem = &release_impl, .floors = {&empty_impl}};
    rc |= bench_run_case(env, &reserve);
    rc |= bench_run_case(env, &release);
    bench_case pair = {.operation = "region_pair", .variant = "2 region events", .size = 64 * BENCH_KIB,
                       .batch = n, .hostmem = &pair_impl, .floors = {&empty_impl}};
    bench_case pair_bare = {.operation = "region_pair", .variant = "+ 2 bare events",
                            .size = 64 * BENCH_KIB, .batch = n, .hostmem = &pair_bare_impl,
                            .floors = {&empty_impl}};
    rc |= bench_run_case(env, &pair);
    rc |= bench_run_case(env, &pair_bare);

    hostmem_manager *m;
    hostmem_malloc *h;
    if (bench_check_hr(hostmem_create(NULL, &m), "hostmem_create"))
        return -1;
    if (bench_check_hr(hostmem_create_malloc(m, MALLOC_THREADSAFE, &h), "hostmem_create_malloc")) {
        hostmem_destroy(m);
        return -1;
    }
    bench_case alloc = {.operation = "malloc_alloc", .variant = "one event", .size = 64,
                        .batch = n, .hostmem = &alloc_impl, .floors = {&empty_impl}, .ctx = h};
    bench_case freec = {.operation = "malloc_free", .variant = "one event", .size = 64,
                        .batch = n, .hostmem = &free_impl, .floors = {&empty_impl}, .ctx = h};
    rc |= bench_run_case(env, &alloc);
    rc |= bench_run_case(env, &freec);
    hostmem_malloc_destroy(h);
    hostmem_destroy(m);
    return rc ? -1 : 0;
}

static int bare_op(bench_batch *b, size_t i)
{
    (void)b;
    lttng_ust_tracepoint(hostmem_bench, bare, (uint64_t)i);
    return 0;
}

static const bench_impl bare_impl = {"lttng-ust event", NULL, NULL, bare_op, NULL};

int bench_family_trace(bench_env *env)
{
    bench_case c = {.operation = "bare_event", .variant = "1 uint64 field", .size = 0,
                    .batch = bench_batch_size(env, 512), .hostmem = &bare_impl,
                    .floors = {&empty_impl}};
    int rc = bench_run_case(env, &c);
    return bench_trace_ops(env) | rc;
}
#else
int bench_family_trace(bench_env *env)
{
    (void)env;
    return 0; /* built without LTTng: no yardstick to measure against */
}
#endif
