/*
 * hostmem_tp.h: the LTTng-UST provider `hostmem` (T1-T5, docs/tracing.md).
 *
 * This header is read twice over: by hostmem_tp.c, which creates the probes
 * (LTTNG_UST_TRACEPOINT_CREATE_PROBES) and becomes libhostmem-lttng.so, and
 * by lib/src/trace_lttng.c, which defines the tracepoints inside libhostmem
 * with dynamic linkage, so libhostmem never needs liblttng-ust: it loads the
 * provider at run time when it is installed (see trace_lttng.c).
 *
 * Enumerations come from the X-macro lists of codes.h, the same lists that
 * build the name tables of the library, so labels and codes cannot drift.
 *
 * Every event carries `seq` (per process, +1 for every hostmem event
 * emitted, from 1) and `manager` (the manager's address).  Field widths are
 * fixed: addresses and sizes are 64-bit, flags 32-bit hex, `hr` is a signed
 * 32-bit enum (an HRESULT is an int32_t), `level` a signed 32-bit enum
 * (-1 = none).
 */
#undef LTTNG_UST_TRACEPOINT_PROVIDER
#define LTTNG_UST_TRACEPOINT_PROVIDER hostmem

#undef LTTNG_UST_TRACEPOINT_INCLUDE
#define LTTNG_UST_TRACEPOINT_INCLUDE "hostmem_tp.h"

#if !defined(HOSTMEM_TP_H) || defined(LTTNG_UST_TRACEPOINT_HEADER_MULTI_READ)
#define HOSTMEM_TP_H

#include <stdint.h>

#include <lttng/tracepoint.h>

/* The one list of codes, and the region operations' record, shared with
 * the library (relative: the provider module and libhostmem are built from
 * the same tree). */
#include "../lib/src/codes.h"
#include "../lib/src/trace.h"

#ifndef HOSTMEM_TP_TYPES
#define HOSTMEM_TP_TYPES
/*
 * A region operation has more values than a tracepoint takes arguments
 * (10), so they travel as one struct, struct hostmem_tp_op_v2 of
 * lib/src/trace.h (the library's call record holds one); each event class
 * records only the members its operation needs (docs/tracing.md, "Layout
 * v2").
 */

/*
 * The region events' writers (hostmem_tp.c).  lttng-ust's generated probe
 * writes an event one field at a time, one call into the ring buffer per
 * field (about 65 instructions each: a reserve's 10 fields cost more than
 * the rest of the event).  On architectures where lttng-ust packs the ring
 * buffer (no field padding), the provider also has, per region event
 * class, a writer that lays the same fields out in the same order and
 * writes them with one call: the same bytes, under the same metadata.
 * libhostmem calls `write` in place of a registered probe whose function
 * is `probe` (the generated one); `write` hands filters and notifiers back
 * to `probe`.  Where the fast path does not apply, `write` is `probe`.
 */
enum hostmem_tp_op_class {
    HOSTMEM_TP_OP_RESERVE,
    HOSTMEM_TP_OP_COMMIT,
    HOSTMEM_TP_OP_RANGE, /* decommit, reset, reset_undo */
    HOSTMEM_TP_OP_RELEASE,
    HOSTMEM_TP_OP_PROTECT,
    HOSTMEM_TP_OP_QUERY,
    HOSTMEM_TP_OP_CLASSES
};
typedef void (*hostmem_tp_op_fn)(void *tp_data, const struct hostmem_tp_op_v2 *ev);
struct hostmem_tp_op_writer {
    hostmem_tp_op_fn probe; /* the generated probe, as registered with the tracepoint */
    hostmem_tp_op_fn write; /* what to call instead */
};
struct hostmem_tp_op_writers_v2 {
    struct hostmem_tp_op_writer op[HOSTMEM_TP_OP_CLASSES];
};
/* The symbol libhostmem looks up in the provider module. */
#define HOSTMEM_TP_OP_WRITERS "hostmem_tp_op_writers_v2"

/* A live region, for the region_state statedump. */
struct hostmem_tp_region_v1 {
    uint64_t seq;
    uint64_t manager;
    uint64_t base;
    uint64_t region_size;
    uint64_t committed_bytes;
    uint32_t protect;
    uint64_t caller;
};
#endif

/* ---- enumerations ------------------------------------------------------ */
#define HOSTMEM_TP_HR_VALUE(name, value) lttng_ust_field_enum_value(#name, (int32_t)(value))

LTTNG_UST_TRACEPOINT_ENUM(hostmem, hresult,
    LTTNG_UST_TP_ENUM_VALUES(HOSTMEM_HRESULT_LIST(HOSTMEM_TP_HR_VALUE)))

LTTNG_UST_TRACEPOINT_ENUM(hostmem, level,
    LTTNG_UST_TP_ENUM_VALUES(
        lttng_ust_field_enum_value("none", -1)
        lttng_ust_field_enum_value("task", 0)
        lttng_ust_field_enum_value("appdomain", 1)
        lttng_ust_field_enum_value("process", 2)))

LTTNG_UST_TRACEPOINT_ENUM(hostmem, memory_state,
    LTTNG_UST_TP_ENUM_VALUES(
        lttng_ust_field_enum_value("none", 0)
        lttng_ust_field_enum_value("low", 1)
        lttng_ust_field_enum_value("neutral", 2)
        lttng_ust_field_enum_value("high", 3)))

/* The code lists are 0-based sequences: label i is list entry i. */
#define HOSTMEM_TP_OP(n) lttng_ust_field_enum_value(#n, (uint8_t)HOSTMEM_OP_##n)
#define HOSTMEM_TP_REASON(n) lttng_ust_field_enum_value(#n, (uint8_t)HOSTMEM_REASON_##n)
#define HOSTMEM_TP_DECISION(n) lttng_ust_field_enum_value(#n, (uint8_t)HOSTMEM_DECISION_##n)
#define HOSTMEM_TP_RESOURCE(n) lttng_ust_field_enum_value(#n, (uint8_t)HOSTMEM_RESOURCE_##n)
#define HOSTMEM_TP_AS(n) lttng_ust_field_enum_value(#n, (uint8_t)HOSTMEM_AS_##n)

LTTNG_UST_TRACEPOINT_ENUM(hostmem, op,
    LTTNG_UST_TP_ENUM_VALUES(HOSTMEM_OP_LIST(HOSTMEM_TP_OP)))
LTTNG_UST_TRACEPOINT_ENUM(hostmem, reason,
    LTTNG_UST_TP_ENUM_VALUES(HOSTMEM_REASON_LIST(HOSTMEM_TP_REASON)))
LTTNG_UST_TRACEPOINT_ENUM(hostmem, decision,
    LTTNG_UST_TP_ENUM_VALUES(HOSTMEM_DECISION_LIST(HOSTMEM_TP_DECISION)))
LTTNG_UST_TRACEPOINT_ENUM(hostmem, resource,
    LTTNG_UST_TP_ENUM_VALUES(HOSTMEM_RESOURCE_LIST(HOSTMEM_TP_RESOURCE)))
LTTNG_UST_TRACEPOINT_ENUM(hostmem, action,
    LTTNG_UST_TP_ENUM_VALUES(HOSTMEM_AS_ACTION_LIST(HOSTMEM_TP_AS)))

/* ---- region operations (T1, layout v2) ----------------------------------
 *
 * A change to the fields below changes the records of hostmem_tp.c with
 * them: the provider keeps its generated probe for a class whose record
 * size differs, and the trace test `writers` compares both outputs.
 *
 * Every field an operation's event carries costs while a session records
 * (T6): 6-7 ns through the generated probe, a few bytes of copying through
 * the provider's writers (hostmem_tp.c).  Each class keeps only what the
 * analysis cannot derive:
 * the arguments as given, the result where it is not a function of them,
 * and the call's start (the event's own timestamp is its end).  Totals come
 * from hostmem:totals and from replay; free types from the event name;
 * region sizes from the arguments and the page size (docs/tracing.md).
 */
#define HOSTMEM_TP_OP_HEAD                                                 \
    lttng_ust_field_integer(uint64_t, seq, ev->seq)                        \
    lttng_ust_field_integer_hex(uint64_t, manager, ev->manager)            \
    lttng_ust_field_integer(uint64_t, start_ns, ev->start_ns)              \
    lttng_ust_field_enum(hostmem, hresult, int32_t, hr, ev->hr)            \
    lttng_ust_field_integer_hex(uint64_t, address, ev->address)            \
    lttng_ust_field_integer_hex(uint64_t, caller, ev->caller)

/* reserve: where it landed, how, and at which level. */
LTTNG_UST_TRACEPOINT_EVENT_CLASS(hostmem, op_reserve,
    LTTNG_UST_TP_ARGS(const struct hostmem_tp_op_v2 *, ev),
    LTTNG_UST_TP_FIELDS(
        HOSTMEM_TP_OP_HEAD
        lttng_ust_field_integer(uint64_t, size, ev->size)
        lttng_ust_field_integer_hex(uint64_t, base, ev->base)
        lttng_ust_field_integer_hex(uint32_t, alloc_type, ev->alloc_type)
        lttng_ust_field_integer_hex(uint32_t, protect, ev->protect)
        lttng_ust_field_enum(hostmem, level, int32_t, level, ev->level)))

/* commit: the range is the page-rounded argument range (for the commit half
 * of a reserve-and-commit: the new region, see trace_lttng.c). */
LTTNG_UST_TRACEPOINT_EVENT_CLASS(hostmem, op_commit,
    LTTNG_UST_TP_ARGS(const struct hostmem_tp_op_v2 *, ev),
    LTTNG_UST_TP_FIELDS(
        HOSTMEM_TP_OP_HEAD
        lttng_ust_field_integer(uint64_t, size, ev->size)
        lttng_ust_field_integer_hex(uint32_t, alloc_type, ev->alloc_type)
        lttng_ust_field_integer_hex(uint32_t, protect, ev->protect)
        lttng_ust_field_enum(hostmem, level, int32_t, level, ev->level)))

/* decommit, reset, reset_undo: a range; the type is the event's name (the
 * level: reset's and reset_undo's as given, none for a decommit). */
LTTNG_UST_TRACEPOINT_EVENT_CLASS(hostmem, op_range,
    LTTNG_UST_TP_ARGS(const struct hostmem_tp_op_v2 *, ev),
    LTTNG_UST_TP_FIELDS(
        HOSTMEM_TP_OP_HEAD
        lttng_ust_field_integer(uint64_t, size, ev->size)
        lttng_ust_field_enum(hostmem, level, int32_t, level, ev->level)))

/* release: the base; the size it frees is the region's (replay). */
LTTNG_UST_TRACEPOINT_EVENT_CLASS(hostmem, op_release,
    LTTNG_UST_TP_ARGS(const struct hostmem_tp_op_v2 *, ev),
    LTTNG_UST_TP_FIELDS(
        HOSTMEM_TP_OP_HEAD))

LTTNG_UST_TRACEPOINT_EVENT_CLASS(hostmem, op_protect,
    LTTNG_UST_TP_ARGS(const struct hostmem_tp_op_v2 *, ev),
    LTTNG_UST_TP_FIELDS(
        HOSTMEM_TP_OP_HEAD
        lttng_ust_field_integer(uint64_t, size, ev->size)
        lttng_ust_field_integer_hex(uint32_t, protect, ev->protect)
        lttng_ust_field_integer_hex(uint32_t, old_protect, ev->old_protect)))

/* query (debug level): what it answered. */
LTTNG_UST_TRACEPOINT_EVENT_CLASS(hostmem, op_query,
    LTTNG_UST_TP_ARGS(const struct hostmem_tp_op_v2 *, ev),
    LTTNG_UST_TP_FIELDS(
        HOSTMEM_TP_OP_HEAD
        lttng_ust_field_integer_hex(uint64_t, base, ev->base)
        lttng_ust_field_integer(uint64_t, region_size, ev->region_size)
        lttng_ust_field_integer_hex(uint32_t, state, ev->alloc_type)
        lttng_ust_field_integer_hex(uint32_t, protect, ev->protect)))

#define HOSTMEM_TP_REGION_OP(cls, n, lvl)                                  \
    LTTNG_UST_TRACEPOINT_EVENT_INSTANCE(hostmem, cls, hostmem, n,          \
        LTTNG_UST_TP_ARGS(const struct hostmem_tp_op_v2 *, ev))           \
    LTTNG_UST_TRACEPOINT_LOGLEVEL(hostmem, n, LTTNG_UST_TRACEPOINT_LOGLEVEL_##lvl)
HOSTMEM_TP_REGION_OP(op_reserve, reserve, INFO)
HOSTMEM_TP_REGION_OP(op_commit, commit, INFO)
HOSTMEM_TP_REGION_OP(op_range, decommit, INFO)
HOSTMEM_TP_REGION_OP(op_release, release, INFO)
HOSTMEM_TP_REGION_OP(op_protect, protect, INFO)
HOSTMEM_TP_REGION_OP(op_range, reset, INFO)
HOSTMEM_TP_REGION_OP(op_range, reset_undo, INFO)
HOSTMEM_TP_REGION_OP(op_query, query, DEBUG)

/* ---- totals: the manager's books, every HOSTMEM_TRACE_TOTALS_EVERY region
 * events of a thread (and never more often), so a reader that missed events
 * or joined late resynchronises its replay. */
LTTNG_UST_TRACEPOINT_EVENT(hostmem, totals,
    LTTNG_UST_TP_ARGS(uint64_t, seq, uint64_t, manager, uint64_t, reserved_bytes,
                      uint64_t, committed_bytes),
    LTTNG_UST_TP_FIELDS(
        lttng_ust_field_integer(uint64_t, seq, seq)
        lttng_ust_field_integer_hex(uint64_t, manager, manager)
        lttng_ust_field_integer(uint64_t, reserved_bytes, reserved_bytes)
        lttng_ust_field_integer(uint64_t, committed_bytes, committed_bytes)))
LTTNG_UST_TRACEPOINT_LOGLEVEL(hostmem, totals, LTTNG_UST_TRACEPOINT_LOGLEVEL_INFO)

/* ---- failure (T2): after the operation's own event ---------------------- */
LTTNG_UST_TRACEPOINT_EVENT(hostmem, failure,
    LTTNG_UST_TP_ARGS(uint64_t, seq, uint64_t, manager, uint8_t, op, int32_t, hr,
                      uint8_t, reason, int32_t, os_errno, uint64_t, address, uint64_t, size,
                      int32_t, level),
    LTTNG_UST_TP_FIELDS(
        lttng_ust_field_integer(uint64_t, seq, seq)
        lttng_ust_field_integer_hex(uint64_t, manager, manager)
        lttng_ust_field_enum(hostmem, op, uint8_t, op, op)
        lttng_ust_field_enum(hostmem, hresult, int32_t, hr, hr)
        lttng_ust_field_enum(hostmem, reason, uint8_t, reason, reason)
        lttng_ust_field_integer(int32_t, os_errno, os_errno)
        lttng_ust_field_integer_hex(uint64_t, address, address)
        lttng_ust_field_integer(uint64_t, size, size)
        lttng_ust_field_enum(hostmem, level, int32_t, level, level)))
LTTNG_UST_TRACEPOINT_LOGLEVEL(hostmem, failure, LTTNG_UST_TRACEPOINT_LOGLEVEL_ERR)

/* ---- critical-level decision (T3) -------------------------------------- */
LTTNG_UST_TRACEPOINT_EVENT(hostmem, critical_decision,
    LTTNG_UST_TP_ARGS(uint64_t, seq, uint64_t, manager, uint8_t, resource, int32_t, level,
                      uint64_t, request_bytes, uint64_t, committed_bytes,
                      uint64_t, level_ceiling, uint64_t, limit, uint8_t, decision,
                      uint64_t, waited_ns),
    LTTNG_UST_TP_FIELDS(
        lttng_ust_field_integer(uint64_t, seq, seq)
        lttng_ust_field_integer_hex(uint64_t, manager, manager)
        lttng_ust_field_enum(hostmem, resource, uint8_t, resource, resource)
        lttng_ust_field_enum(hostmem, level, int32_t, level, level)
        lttng_ust_field_integer(uint64_t, request_bytes, request_bytes)
        lttng_ust_field_integer(uint64_t, committed_bytes, committed_bytes)
        lttng_ust_field_integer(uint64_t, level_ceiling, level_ceiling)
        lttng_ust_field_integer(uint64_t, limit, limit)
        lttng_ust_field_enum(hostmem, decision, uint8_t, decision, decision)
        lttng_ust_field_integer(uint64_t, waited_ns, waited_ns)))
LTTNG_UST_TRACEPOINT_LOGLEVEL(hostmem, critical_decision, LTTNG_UST_TRACEPOINT_LOGLEVEL_WARNING)

/* ---- memory state (T4) -------------------------------------------------- */
LTTNG_UST_TRACEPOINT_EVENT(hostmem, memory_state,
    LTTNG_UST_TP_ARGS(uint64_t, seq, uint64_t, manager, int32_t, old_state, int32_t, state,
                      uint64_t, committed_bytes, uint64_t, limit),
    LTTNG_UST_TP_FIELDS(
        lttng_ust_field_integer(uint64_t, seq, seq)
        lttng_ust_field_integer_hex(uint64_t, manager, manager)
        lttng_ust_field_enum(hostmem, memory_state, int32_t, old_state, old_state)
        lttng_ust_field_enum(hostmem, memory_state, int32_t, state, state)
        lttng_ust_field_integer(uint64_t, committed_bytes, committed_bytes)
        lttng_ust_field_integer(uint64_t, limit, limit)))
LTTNG_UST_TRACEPOINT_LOGLEVEL(hostmem, memory_state, LTTNG_UST_TRACEPOINT_LOGLEVEL_WARNING)

/* ---- external address space (T4) ---------------------------------------- */
LTTNG_UST_TRACEPOINT_EVENT(hostmem, address_space,
    LTTNG_UST_TP_ARGS(uint64_t, seq, uint64_t, manager, uint8_t, action, uint64_t, start,
                      uint64_t, size, int32_t, hr, uint64_t, external_bytes),
    LTTNG_UST_TP_FIELDS(
        lttng_ust_field_integer(uint64_t, seq, seq)
        lttng_ust_field_integer_hex(uint64_t, manager, manager)
        lttng_ust_field_enum(hostmem, action, uint8_t, action, action)
        lttng_ust_field_integer_hex(uint64_t, start, start)
        lttng_ust_field_integer(uint64_t, size, size)
        lttng_ust_field_enum(hostmem, hresult, int32_t, hr, hr)
        lttng_ust_field_integer(uint64_t, external_bytes, external_bytes)))
LTTNG_UST_TRACEPOINT_LOGLEVEL(hostmem, address_space, LTTNG_UST_TRACEPOINT_LOGLEVEL_INFO)

/* ---- manager life (T4) --------------------------------------------------- */
LTTNG_UST_TRACEPOINT_EVENT(hostmem, manager_create,
    LTTNG_UST_TP_ARGS(uint64_t, seq, uint64_t, manager, uint64_t, commit_limit,
                      uint64_t, address_space_limit, uint64_t, page_size),
    LTTNG_UST_TP_FIELDS(
        lttng_ust_field_integer(uint64_t, seq, seq)
        lttng_ust_field_integer_hex(uint64_t, manager, manager)
        lttng_ust_field_integer(uint64_t, commit_limit, commit_limit)
        lttng_ust_field_integer(uint64_t, address_space_limit, address_space_limit)
        lttng_ust_field_integer(uint64_t, page_size, page_size)))
LTTNG_UST_TRACEPOINT_LOGLEVEL(hostmem, manager_create, LTTNG_UST_TRACEPOINT_LOGLEVEL_INFO)

LTTNG_UST_TRACEPOINT_EVENT(hostmem, manager_destroy,
    LTTNG_UST_TP_ARGS(uint64_t, seq, uint64_t, manager, uint64_t, regions,
                      uint64_t, reserved_bytes, uint64_t, committed_bytes,
                      uint64_t, unreturned_mappings, uint64_t, unreturned_bytes),
    LTTNG_UST_TP_FIELDS(
        lttng_ust_field_integer(uint64_t, seq, seq)
        lttng_ust_field_integer_hex(uint64_t, manager, manager)
        lttng_ust_field_integer(uint64_t, regions, regions)
        lttng_ust_field_integer(uint64_t, reserved_bytes, reserved_bytes)
        lttng_ust_field_integer(uint64_t, committed_bytes, committed_bytes)
        lttng_ust_field_integer(uint64_t, unreturned_mappings, unreturned_mappings)
        lttng_ust_field_integer(uint64_t, unreturned_bytes, unreturned_bytes)))
LTTNG_UST_TRACEPOINT_LOGLEVEL(hostmem, manager_destroy, LTTNG_UST_TRACEPOINT_LOGLEVEL_INFO)

/* ---- write watch and guard pages (W3) ------------------------------------ */
/* One per get_write_watch (read = 1) and reset_write_watch (read = 0) that
 * reached the region: `pages` returned, `reset` whether pages were reset. */
LTTNG_UST_TRACEPOINT_EVENT(hostmem, write_watch,
    LTTNG_UST_TP_ARGS(uint64_t, seq, uint64_t, manager, uint64_t, base, uint64_t, size,
                      uint64_t, pages, uint8_t, reset, uint8_t, read, int32_t, hr,
                      uint64_t, duration_ns),
    LTTNG_UST_TP_FIELDS(
        lttng_ust_field_integer(uint64_t, seq, seq)
        lttng_ust_field_integer_hex(uint64_t, manager, manager)
        lttng_ust_field_integer_hex(uint64_t, base, base)
        lttng_ust_field_integer(uint64_t, size, size)
        lttng_ust_field_integer(uint64_t, pages, pages)
        lttng_ust_field_integer(uint8_t, reset, reset)
        lttng_ust_field_integer(uint8_t, read, read)
        lttng_ust_field_enum(hostmem, hresult, int32_t, hr, hr)
        lttng_ust_field_integer(uint64_t, duration_ns, duration_ns)))
LTTNG_UST_TRACEPOINT_LOGLEVEL(hostmem, write_watch, LTTNG_UST_TRACEPOINT_LOGLEVEL_INFO)

/* A guard page's first access: the guard was cleared (emitted from the fault
 * handler).  `address` is the faulting address, `base` its page. */
LTTNG_UST_TRACEPOINT_EVENT(hostmem, guard_hit,
    LTTNG_UST_TP_ARGS(uint64_t, seq, uint64_t, manager, uint64_t, address, uint64_t, base),
    LTTNG_UST_TP_FIELDS(
        lttng_ust_field_integer(uint64_t, seq, seq)
        lttng_ust_field_integer_hex(uint64_t, manager, manager)
        lttng_ust_field_integer_hex(uint64_t, address, address)
        lttng_ust_field_integer_hex(uint64_t, base, base)))
LTTNG_UST_TRACEPOINT_LOGLEVEL(hostmem, guard_hit, LTTNG_UST_TRACEPOINT_LOGLEVEL_INFO)

/* ---- statedump: one event per live region ------------------------------- */
LTTNG_UST_TRACEPOINT_EVENT(hostmem, region_state,
    LTTNG_UST_TP_ARGS(const struct hostmem_tp_region_v1 *, r),
    LTTNG_UST_TP_FIELDS(
        lttng_ust_field_integer(uint64_t, seq, r->seq)
        lttng_ust_field_integer_hex(uint64_t, manager, r->manager)
        lttng_ust_field_integer_hex(uint64_t, base, r->base)
        lttng_ust_field_integer(uint64_t, region_size, r->region_size)
        lttng_ust_field_integer(uint64_t, committed_bytes, r->committed_bytes)
        lttng_ust_field_integer_hex(uint32_t, protect, r->protect)
        lttng_ust_field_integer_hex(uint64_t, caller, r->caller)))
LTTNG_UST_TRACEPOINT_LOGLEVEL(hostmem, region_state, LTTNG_UST_TRACEPOINT_LOGLEVEL_INFO)

/* ---- the heap (H4) ---------------------------------------------------------
 * malloc_alloc / malloc_free: one per call that succeeded (a refused call
 * emits failure).  Level DEBUG_SYSTEM: `--loglevel TRACE_INFO` leaves the heap
 * (and query) out; `--loglevel TRACE_DEBUG_SYSTEM` keeps the heap, not query.
 * `size` is what was asked for on alloc and the block's usable size on free.
 * Layout v3: a debug allocation's file and line travel in malloc_debug, just
 * before its malloc_alloc, so a plain allocation pays for no string field. */
LTTNG_UST_TRACEPOINT_EVENT(hostmem, malloc_alloc,
    LTTNG_UST_TP_ARGS(uint64_t, seq, uint64_t, heap, uint64_t, address, uint64_t, size,
                      int32_t, level, uint64_t, caller),
    LTTNG_UST_TP_FIELDS(
        lttng_ust_field_integer(uint64_t, seq, seq)
        lttng_ust_field_integer_hex(uint64_t, heap, heap)
        lttng_ust_field_integer_hex(uint64_t, address, address)
        lttng_ust_field_integer(uint64_t, size, size)
        lttng_ust_field_enum(hostmem, level, int32_t, level, level)
        lttng_ust_field_integer_hex(uint64_t, caller, caller)))
LTTNG_UST_TRACEPOINT_LOGLEVEL(hostmem, malloc_alloc, LTTNG_UST_TRACEPOINT_LOGLEVEL_DEBUG_SYSTEM)

/* debug_alloc's file and line.  `seq` is the seq of the malloc_alloc that
 * follows (this event takes none of its own): a reader attaches file:line
 * to the malloc_alloc of the same process with the same seq. */
LTTNG_UST_TRACEPOINT_EVENT(hostmem, malloc_debug,
    LTTNG_UST_TP_ARGS(uint64_t, seq, const char *, file, int32_t, line),
    LTTNG_UST_TP_FIELDS(
        lttng_ust_field_integer(uint64_t, seq, seq)
        lttng_ust_field_string(file, file)
        lttng_ust_field_integer(int32_t, line, line)))
LTTNG_UST_TRACEPOINT_LOGLEVEL(hostmem, malloc_debug, LTTNG_UST_TRACEPOINT_LOGLEVEL_DEBUG_SYSTEM)

LTTNG_UST_TRACEPOINT_EVENT(hostmem, malloc_free,
    LTTNG_UST_TP_ARGS(uint64_t, seq, uint64_t, heap, uint64_t, address, uint64_t, size,
                      uint64_t, caller),
    LTTNG_UST_TP_FIELDS(
        lttng_ust_field_integer(uint64_t, seq, seq)
        lttng_ust_field_integer_hex(uint64_t, heap, heap)
        lttng_ust_field_integer_hex(uint64_t, address, address)
        lttng_ust_field_integer(uint64_t, size, size)
        lttng_ust_field_integer_hex(uint64_t, caller, caller)))
LTTNG_UST_TRACEPOINT_LOGLEVEL(hostmem, malloc_free, LTTNG_UST_TRACEPOINT_LOGLEVEL_DEBUG_SYSTEM)

/* A heap's life: which manager it draws on; at destroy, what was still live. */
LTTNG_UST_TRACEPOINT_EVENT(hostmem, malloc_create,
    LTTNG_UST_TP_ARGS(uint64_t, seq, uint64_t, manager, uint64_t, heap, uint32_t, type),
    LTTNG_UST_TP_FIELDS(
        lttng_ust_field_integer(uint64_t, seq, seq)
        lttng_ust_field_integer_hex(uint64_t, manager, manager)
        lttng_ust_field_integer_hex(uint64_t, heap, heap)
        lttng_ust_field_integer_hex(uint32_t, type, type)))
LTTNG_UST_TRACEPOINT_LOGLEVEL(hostmem, malloc_create, LTTNG_UST_TRACEPOINT_LOGLEVEL_INFO)

LTTNG_UST_TRACEPOINT_EVENT(hostmem, malloc_destroy,
    LTTNG_UST_TP_ARGS(uint64_t, seq, uint64_t, manager, uint64_t, heap, uint64_t, live_blocks,
                      uint64_t, live_bytes),
    LTTNG_UST_TP_FIELDS(
        lttng_ust_field_integer(uint64_t, seq, seq)
        lttng_ust_field_integer_hex(uint64_t, manager, manager)
        lttng_ust_field_integer_hex(uint64_t, heap, heap)
        lttng_ust_field_integer(uint64_t, live_blocks, live_blocks)
        lttng_ust_field_integer(uint64_t, live_bytes, live_bytes)))
LTTNG_UST_TRACEPOINT_LOGLEVEL(hostmem, malloc_destroy, LTTNG_UST_TRACEPOINT_LOGLEVEL_INFO)

/* A region the heap took from its manager (live 1) or gave back (live 0):
 * the analysis counts the commits inside these as the heap's. */
LTTNG_UST_TRACEPOINT_EVENT(hostmem, malloc_region,
    LTTNG_UST_TP_ARGS(uint64_t, seq, uint64_t, manager, uint64_t, heap, uint64_t, base,
                      uint64_t, size, uint8_t, live),
    LTTNG_UST_TP_FIELDS(
        lttng_ust_field_integer(uint64_t, seq, seq)
        lttng_ust_field_integer_hex(uint64_t, manager, manager)
        lttng_ust_field_integer_hex(uint64_t, heap, heap)
        lttng_ust_field_integer_hex(uint64_t, base, base)
        lttng_ust_field_integer(uint64_t, size, size)
        lttng_ust_field_integer(uint8_t, live, live)))
LTTNG_UST_TRACEPOINT_LOGLEVEL(hostmem, malloc_region, LTTNG_UST_TRACEPOINT_LOGLEVEL_INFO)

/* ---- call stacks (T7) ------------------------------------------------------
 * With stacks on (HOSTMEM_STACKS=N or config.stack_depth), emitted by the
 * same thread immediately before the reserve, plain commit or malloc_alloc
 * event it belongs to, with that event's seq (a stack event takes no seq of
 * its own).  frames: up to 64 return addresses of the host, innermost first;
 * frames[0] is the event's caller. */
LTTNG_UST_TRACEPOINT_EVENT(hostmem, stack,
    LTTNG_UST_TP_ARGS(uint64_t, seq, const uint64_t *, frames, unsigned, count),
    LTTNG_UST_TP_FIELDS(
        lttng_ust_field_integer(uint64_t, seq, seq)
        lttng_ust_field_sequence_hex(uint64_t, frames, frames, uint8_t, count)))
LTTNG_UST_TRACEPOINT_LOGLEVEL(hostmem, stack, LTTNG_UST_TRACEPOINT_LOGLEVEL_DEBUG_SYSTEM)

#endif /* HOSTMEM_TP_H */

#include <lttng/tracepoint-event.h>
