/*
 * bench_trace.c: what one traced operation costs beside the bare lttng-ust
 * event (bench_trace_tp.h), every side timed the way hostmem operations are.
 *
 *   bare_event      an event with one integer field; its floor is an empty
 *                   operation, so in a run without a session both sides are
 *                   the harness's own noise, and with a session recording
 *                   hostmem_bench:* the hostmem side is what the cheapest
 *                   event costs: T6's yardstick;
 *   reserve, release  one 64 KiB region operation in the steady state (the
 *                   other half of the pair runs untimed before it), carved
 *                   from address space the manager holds: no syscall, so the
 *                   time tracing adds is the event's;
 *   region_pair     a reserve and its release timed as one: two region events;
 *   malloc_alloc, malloc_free  one 64-byte heap operation, the other half
 *                   untimed before it.
 *
 * Each operation case times, batch by batch in the same process (ABBA), the
 * operation and these floors:
 *
 *   empty           the empty operation (the row the tables judge);
 *   untraced        the same calls (the untimed half too), made while this
 *                   thread counts as inside the tracer, which the library
 *                   never traces (A5 of docs/api.md): what the calls cost
 *                   with no session, give or take one thread-local load and
 *                   branch (a heap call still calls its event's function,
 *                   which returns at once);
 *   bare event      the bare event in a loop of its own: T6's yardstick,
 *                   timed between the same batches;
 *   untraced + 2 bare events (region_pair only)  the untraced pair with a
 *                   bare event after each call: the bare event among the
 *                   manager's work, where the region events are.
 *
 * With a session recording hostmem:* and hostmem_bench:*, (operation -
 * untraced) / events is what one event costs, and run-tracing.sh divides it
 * by the bare event's cost (T6: at most 1.5).  Across processes the calls'
 * own cost moves by as much as an event costs on a shared machine, so the
 * difference between a run with a session and one without
 * (run-tracing.sh's modes table) says less than these in-process figures.
 * The untraced floor needs the library's thread-local depth, which only the
 * static library lets a program reach: hostmem-bench links it.
 */
#include "bench.h"

#ifdef HOSTMEM_BENCH_WITH_LTTNG
#define LTTNG_UST_TRACEPOINT_CREATE_PROBES
#define LTTNG_UST_TRACEPOINT_DEFINE
#include "bench_trace_tp.h"

/* The library's "this thread is inside the tracer" depth (trace_lttng.h). */
extern __thread unsigned hostmem__trace_depth;

/* Run `op` untraced: as a call the tracer made would be. */
#define BENCH_UNTRACED(op)                                                                      \
    static int op##_untraced(bench_batch *b, size_t i)                                          \
    {                                                                                           \
        hostmem__trace_depth++;                                                                 \
        int rc = op(b, i);                                                                      \
        hostmem__trace_depth--;                                                                 \
        return rc;                                                                              \
    }

static int empty_op(bench_batch *b, size_t i)
{
    (void)b;
    bench_escape((const void *)i);
    return 0;
}

static const bench_impl empty_impl = {"empty", NULL, NULL, empty_op, NULL};

static int bare_op(bench_batch *b, size_t i)
{
    (void)b;
    lttng_ust_tracepoint(hostmem_bench, bare, (uint64_t)i);
    return 0;
}

static const bench_impl bare_impl = {"lttng-ust event", NULL, NULL, bare_op, NULL};
/* The same, as a floor of the operation cases. */
static const bench_impl bare_floor_impl = {"bare event", NULL, NULL, bare_op, NULL};

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

BENCH_UNTRACED(region_reserve)
BENCH_UNTRACED(region_release)
BENCH_UNTRACED(region_release_prev)

static const bench_impl reserve_impl = {"hostmem", NULL, region_release_prev, region_reserve,
                                        region_release_all};
static const bench_impl reserve_untraced_impl = {"hostmem untraced", NULL,
                                                 region_release_prev_untraced,
                                                 region_reserve_untraced, region_release_all};

/* ---- a reserve and its release, timed as one operation: two region events ------ */
static int region_pair(bench_batch *b, size_t i)
{
    return region_reserve(b, i) || region_release(b, i) ? -1 : 0;
}

/* The untraced pair with a bare event after each call: the bare event among
 * the manager's work (the pair's own cost is the untraced floor's). */
static int region_pair_bare_untraced(bench_batch *b, size_t i)
{
    if (region_reserve_untraced(b, i))
        return -1;
    lttng_ust_tracepoint(hostmem_bench, bare, (uint64_t)i);
    if (region_release_untraced(b, i))
        return -1;
    lttng_ust_tracepoint(hostmem_bench, bare, (uint64_t)i);
    return 0;
}

BENCH_UNTRACED(region_pair)

static const bench_impl pair_impl = {"hostmem", NULL, NULL, region_pair, region_release_all};
static const bench_impl pair_untraced_impl = {"hostmem untraced", NULL, NULL, region_pair_untraced,
                                              region_release_all};
static const bench_impl pair_bare_untraced_impl = {"untraced + 2 bare events", NULL, NULL,
                                                   region_pair_bare_untraced, region_release_all};
static const bench_impl release_impl = {"hostmem", NULL, region_reserve, region_release,
                                        region_release_all};
static const bench_impl release_untraced_impl = {"hostmem untraced", NULL, region_reserve_untraced,
                                                 region_release_untraced, region_release_all};

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

BENCH_UNTRACED(heap_alloc)
BENCH_UNTRACED(heap_free)
BENCH_UNTRACED(heap_free_prev)

static const bench_impl alloc_impl = {"hostmem", NULL, heap_free_prev, heap_alloc, heap_free_all};
static const bench_impl alloc_untraced_impl = {"hostmem untraced", NULL, heap_free_prev_untraced,
                                               heap_alloc_untraced, heap_free_all};
static const bench_impl free_impl = {"hostmem", NULL, heap_alloc, heap_free, heap_free_all};
static const bench_impl free_untraced_impl = {"hostmem untraced", NULL, heap_alloc_untraced,
                                              heap_free_untraced, heap_free_all};

static int bench_trace_ops(bench_env *env)
{
    int rc = 0;
    size_t n = bench_batch_size(env, 512);
    bench_case reserve = {.operation = "reserve", .variant = "one event", .size = 64 * BENCH_KIB,
                          .batch = n, .hostmem = &reserve_impl,
                          .floors = {&empty_impl, &reserve_untraced_impl, &bare_floor_impl}};
    bench_case release = {.operation = "release", .variant = "one event", .size = 64 * BENCH_KIB,
                          .batch = n, .hostmem = &release_impl,
                          .floors = {&empty_impl, &release_untraced_impl, &bare_floor_impl}};
    rc |= bench_run_case(env, &reserve);
    rc |= bench_run_case(env, &release);
    bench_case pair = {.operation = "region_pair", .variant = "2 region events",
                       .size = 64 * BENCH_KIB,
                       .batch = n, .hostmem = &pair_impl,
                       .floors = {&empty_impl, &pair_untraced_impl, &bare_floor_impl,
                                  &pair_bare_untraced_impl}};
    rc |= bench_run_case(env, &pair);

    hostmem_manager *m;
    hostmem_malloc *h;
    if (bench_check_hr(hostmem_create(NULL, &m), "hostmem_create"))
        return -1;
    if (bench_check_hr(hostmem_create_malloc(m, MALLOC_THREADSAFE, &h), "hostmem_create_malloc")) {
        hostmem_destroy(m);
        return -1;
    }
    bench_case alloc = {.operation = "malloc_alloc", .variant = "one event", .size = 64,
                        .batch = n, .hostmem = &alloc_impl,
                        .floors = {&empty_impl, &alloc_untraced_impl, &bare_floor_impl},
                        .ctx = h};
    bench_case freec = {.operation = "malloc_free", .variant = "one event", .size = 64,
                        .batch = n, .hostmem = &free_impl,
                        .floors = {&empty_impl, &free_untraced_impl, &bare_floor_impl},
                        .ctx = h};
    rc |= bench_run_case(env, &alloc);
    rc |= bench_run_case(env, &freec);
    hostmem_malloc_destroy(h);
    hostmem_destroy(m);
    return rc ? -1 : 0;
}

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
