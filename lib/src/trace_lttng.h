/*
 * trace_lttng.h: what the files of the LTTng facade share (trace_lttng.c,
 * trace_lttng_dump.c, trace_lttng_heap.c, and any other trace_lttng_*.c):
 * the tracepoints, the re-entry guard, the sequence number and the clock of
 * start_ns.  Nothing outside those files includes it; the rest of the
 * library sees only trace.h.
 *
 * trace_lttng.c defines the tracepoints (LTTNG_UST_TRACEPOINT_DEFINE before
 * including this header); the others only declare them.  Every file fires
 * them from inside libhostmem, so their symbols stay hidden (a host that
 * also links the static library gets a separate set).
 */
#ifndef HOSTMEM_TRACE_LTTNG_H
#define HOSTMEM_TRACE_LTTNG_H

#include <stdatomic.h>
#include <stdint.h>

#include "internal.h"

#define LTTNG_UST_TRACEPOINT_PROBE_DYNAMIC_LINKAGE
#define LTTNG_UST_TRACEPOINT_HIDDEN_DEFINITION
#include "hostmem_tp.h"

#define HOSTMEM_TRACE_ON(name) lttng_ust_tracepoint_enabled(hostmem, name)

/* >0 while this thread is inside the tracer (A5).  initial-exec: reading it
 * never allocates (a dynamic TLS access could call malloc itself). */
extern __thread unsigned hostmem__trace_depth __attribute__((tls_model("initial-exec")));

/* Emit `stmt` unless this thread is already emitting (then the call that got
 * here came from inside the tracer and stays untraced). */
#define HOSTMEM_TRACE_EMIT(stmt)                                                   \
    do {                                                                           \
        if (hostmem__trace_depth == 0) {                                           \
            hostmem__trace_depth++;                                                \
            stmt;                                                                  \
            hostmem__trace_depth--;                                                \
        }                                                                          \
    } while (0)

/* seq: +1 for every event this process emits, from 1, so a reader can order
 * the events of one process across CPUs and see what a buffer dropped.  A
 * region operation takes its seq where it took effect (hostmem__trace_order),
 * decisions and state changes when made; every seq taken is emitted.
 * Companion events (malloc_debug, stack) carry the seq of the event they
 * belong to and take none of their own. */
extern _Atomic uint64_t hostmem__trace_seq;

static inline uint64_t hostmem__trace_seq_next(void)
{
    return atomic_fetch_add_explicit(&hostmem__trace_seq, 1, memory_order_relaxed) + 1;
}

static inline uint64_t hostmem__trace_id(const void *p) { return (uint64_t)(uintptr_t)p; }

/* The statedump's bookkeeping of managers (trace_lttng_dump.c). */
void hostmem__trace_dump_atfork_prepare(void);
void hostmem__trace_dump_atfork_release(void);

#endif
