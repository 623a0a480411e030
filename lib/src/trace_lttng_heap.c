/*
 * trace_lttng_heap.c: the heap's events (H4): malloc_alloc, the
 * malloc_debug that carries a debug allocation's file and line, malloc_free,
 * and the heap's life and regions.  Part of the LTTng facade (trace_lttng.h).
 */
#include "trace_lttng.h"

/* ---- the heap (H4) ------------------------------------------------------------ */

/* The tracepoints' own state words (what lttng_ust_tracepoint_enabled reads). */
const int *const hostmem__trace_malloc_alloc_on = &lttng_ust_tracepoint_hostmem___malloc_alloc.state;
const int *const hostmem__trace_malloc_free_on = &lttng_ust_tracepoint_hostmem___malloc_free.state;

void hostmem__trace_malloc_alloc(const struct hostmem_malloc *h, uintptr_t address, uint64_t size,
                                 int32_t level, uintptr_t caller, const char *file, int line)
{
    if (!HOSTMEM_TRACE_ON(malloc_alloc) || hostmem__trace_depth != 0)
        return;
    hostmem__trace_depth++;
    uint64_t seq = hostmem__trace_seq_next();
    if (hostmem__stack_on()) /* T7: its stack first (trace_lttng_stack.c) */
        hostmem__trace_stack_malloc(h, seq, caller);
    /* debug_alloc: its file and line first, under the allocation's seq. */
    if ((file != NULL || line != 0) && HOSTMEM_TRACE_ON(malloc_debug))
        lttng_ust_do_tracepoint(hostmem, malloc_debug, seq, file ? file : "", (int32_t)line);
    lttng_ust_do_tracepoint(hostmem, malloc_alloc, seq, hostmem__trace_id(h), (uint64_t)address,
                            size, level, (uint64_t)caller);
    hostmem__trace_depth--;
}

void hostmem__trace_malloc_free(const struct hostmem_malloc *h, uintptr_t address, uint64_t size,
                                uintptr_t caller)
{
    if (!HOSTMEM_TRACE_ON(malloc_free))
        return;
    HOSTMEM_TRACE_EMIT(lttng_ust_do_tracepoint(hostmem, malloc_free, hostmem__trace_seq_next(), hostmem__trace_id(h),
                                       (uint64_t)address, size, (uint64_t)caller));
}

void hostmem__trace_malloc_heap(const struct hostmem_manager *m, const struct hostmem_malloc *h,
                                bool created, uint32_t type, uint64_t live_blocks,
                                uint64_t live_bytes)
{
    if (created ? !HOSTMEM_TRACE_ON(malloc_create) : !HOSTMEM_TRACE_ON(malloc_destroy))
        return;
    if (created)
        HOSTMEM_TRACE_EMIT(lttng_ust_do_tracepoint(hostmem, malloc_create, hostmem__trace_seq_next(), hostmem__trace_id(m),
                                           hostmem__trace_id(h), type));
    else
        HOSTMEM_TRACE_EMIT(lttng_ust_do_tracepoint(hostmem, malloc_destroy, hostmem__trace_seq_next(), hostmem__trace_id(m),
                                           hostmem__trace_id(h), live_blocks, live_bytes));
}

void hostmem__trace_malloc_region(const struct hostmem_manager *m, const struct hostmem_malloc *h,
                                  uintptr_t base, uint64_t size, bool live)
{
    if (!HOSTMEM_TRACE_ON(malloc_region))
        return;
    HOSTMEM_TRACE_EMIT(lttng_ust_do_tracepoint(hostmem, malloc_region, hostmem__trace_seq_next(), hostmem__trace_id(m),
                                       hostmem__trace_id(h), (uint64_t)base, size, (uint8_t)live));
}
