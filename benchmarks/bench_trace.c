/*
 * bench_trace.c: the bare lttng-ust event (bench_trace_tp.h), timed the way
 * every hostmem operation is.  Its "floor" is an empty operation, so in a
 * run without a session both sides are the harness's own noise; with a
 * session recording hostmem_bench:* the hostmem side is what one event with
 * one integer field costs.  run-tracing.sh divides the cost tracing adds to
 * a hostmem operation by this (T6: at most 1.5).
 */
#include "bench.h"

#ifdef HOSTMEM_BENCH_WITH_LTTNG
#define LTTNG_UST_TRACEPOINT_CREATE_PROBES
#define LTTNG_UST_TRACEPOINT_DEFINE
#include "bench_trace_tp.h"

static int bare_op(bench_batch *b, size_t i)
{
    (void)b;
    lttng_ust_tracepoint(hostmem_bench, bare, (uint64_t)i);
    return 0;
}

static int empty_op(bench_batch *b, size_t i)
{
    (void)b;
    bench_escape((const void *)i);
    return 0;
}

static const bench_impl bare_impl = {"lttng-ust event", NULL, NULL, bare_op, NULL};
static const bench_impl empty_impl = {"empty", NULL, NULL, empty_op, NULL};

int bench_family_trace(bench_env *env)
{
    bench_case c = {.operation = "bare_event", .variant = "1 uint64 field", .size = 0,
                    .batch = bench_batch_size(env, 512), .hostmem = &bare_impl,
                    .floors = {&empty_impl}};
    return bench_run_case(env, &c);
}
#else
int bench_family_trace(bench_env *env)
{
    (void)env;
    return 0; /* built without LTTng: nothing to measure */
}
#endif
