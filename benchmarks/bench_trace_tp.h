/*
 * bench_trace_tp.h: the yardstick of T6, a bare lttng-ust event
 * with one integer field (provider `hostmem_bench`).  hostmem-bench fires it
 * beside hostmem's own events, in the same session and the same run, so
 * run-tracing.sh can say what a hostmem event costs in units of the
 * cheapest event lttng-ust can record.
 */
#undef LTTNG_UST_TRACEPOINT_PROVIDER
#define LTTNG_UST_TRACEPOINT_PROVIDER hostmem_bench

#undef LTTNG_UST_TRACEPOINT_INCLUDE
#define LTTNG_UST_TRACEPOINT_INCLUDE "bench_trace_tp.h"

#if !defined(HOSTMEM_BENCH_TRACE_TP_H) || defined(LTTNG_UST_TRACEPOINT_HEADER_MULTI_READ)
#define HOSTMEM_BENCH_TRACE_TP_H

#include <stdint.h>

#include <lttng/tracepoint.h>

LTTNG_UST_TRACEPOINT_EVENT(hostmem_bench, bare,
    LTTNG_UST_TP_ARGS(uint64_t, value),
    LTTNG_UST_TP_FIELDS(lttng_ust_field_integer(uint64_t, value, value)))

#endif

#include <lttng/tracepoint-event.h>
