/*
 * trace_lttng_stack.c: the hostmem:stack event (T7, docs/tracing.md).  Part
 * of the LTTng facade (trace_lttng.h).
 *
 * The facade (trace_lttng.c, trace_lttng_heap.c) calls these while it emits
 * a reserve, a plain commit or a heap allocation, inside its re-entry guard
 * and with the seq it just took for that event: the stack event goes out on
 * the same thread immediately before the event it belongs to, and carries
 * that event's seq (it takes none of its own).  The capture is in stack.c.
 */
#include "trace_lttng.h"
#include "heap.h"

static void trace_stack_emit(const hostmem_config *cfg, uint64_t seq, uintptr_t caller)
{
    if (!lttng_ust_tracepoint_enabled(hostmem, stack))
        return;
    uint64_t frames[HOSTMEM_STACK_DEPTH_MAX];
    unsigned n = hostmem__stack_capture(cfg, caller, frames);
    if (n != 0)
        lttng_ust_do_tracepoint(hostmem, stack, seq, frames, n);
}

void hostmem__trace_stack_op(const struct hostmem_manager *m, enum hostmem__op op,
                             uint32_t alloc_type, uint64_t seq, uintptr_t caller)
{
    /* The commit half of a reserve-and-commit has the reserve's stack. */
    if (m == NULL || m->policy.config.stack_depth == 0 ||
        !(op == HOSTMEM_OP_reserve || (op == HOSTMEM_OP_commit && !(alloc_type & MEM_RESERVE))))
        return;
    trace_stack_emit(&m->policy.config, seq, caller);
}

void hostmem__trace_stack_malloc(const struct hostmem_malloc *h, uint64_t seq, uintptr_t caller)
{
    if (h != NULL && h->m != NULL && h->m->policy.config.stack_depth != 0)
        trace_stack_emit(&h->m->policy.config, seq, caller);
}
