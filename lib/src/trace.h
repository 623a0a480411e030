/*
 * trace.h: the tracing facade.  The entry points report what happened through these
 * calls and nothing else; trace_lttng.c turns them into LTTng-UST events of
 * the provider `hostmem` (the T rules of docs/tracing.md), trace_none.c (HOSTMEM_WITH_LTTNG=OFF)
 * into nothing.
 *
 * Re-entry rule (A5): no function here may be called with an internal
 * lock held, except hostmem__trace_decision and hostmem__trace_memory_state,
 * which only queue.  A call made from inside the tracer (the host's malloc,
 * called by lttng-ust while it emits) is not traced.
 *
 * Cost rule: with no session the whole facade is one predictable branch per
 * call.  hostmem__trace_begin() says whether the operation's event is
 * enabled; only then does the manager read the clock and its caller.
 */
#ifndef HOSTMEM_TRACE_H
#define HOSTMEM_TRACE_H

#include <stdbool.h>
#include <stdint.h>

#include "codes.h"

struct hostmem_manager;

/*
 * A region operation's event (T1): the call record fills it as the call goes
 * (call.c), and the provider's writer reads it as it is, so firing the event
 * copies nothing.  It is also the provider's argument (hostmem_tp.h): the
 * layout is shared with libhostmem-lttng.so, and the name carries the layout
 * version, because lttng-ust matches a probe to a tracepoint by the text of
 * its arguments.
 */
typedef struct hostmem_tp_op_v2 {
    uint64_t seq;         /* taken where the call took effect (trace_order); 0: when written */
    uint64_t manager;     /* the manager's address */
    uint64_t start_ns;    /* CLOCK_MONOTONIC ns at entry; 0 untraced, or the session began since */
    uint64_t address;     /* as given */
    uint64_t size;        /* as given */
    uint64_t base;        /* result, rounded (query: BaseAddress) */
    uint64_t region_size; /* result, rounded (query: RegionSize) */
    uint64_t caller;      /* return address into the host */
    uint32_t alloc_type;  /* virtual_alloc's allocation type, else 0 */
    uint32_t protect;     /* requested protection (query: Protect) */
    uint32_t old_protect; /* protect: the first page's previous protection */
    int32_t level;        /* EMemoryCriticalLevel, -1 when the call has none */
    int32_t hr;
} hostmem__trace_op_event;

/* A thread emits hostmem:totals (the manager's books, read when it is
 * emitted) after its first region event and then after every this many: a
 * reader that missed events resynchronises its replay within that many
 * operations, and the cost is 1/64 of an event per call. */
#define HOSTMEM_TRACE_TOTALS_EVERY 64u

/* Whether `op`'s event is enabled; sets ev->start_ns when it is. */
bool hostmem__trace_begin(enum hostmem__op op, hostmem__trace_op_event *ev);
uint64_t hostmem__trace_now_ns(void);
/* The clock of a region event's start_ns: CLOCK_MONOTONIC ns, from the TSC
 * where it can be (trace_lttng.c says how, and how close).  0 untraced. */
uint64_t hostmem__trace_clock_ns(void);

/* op's event, from the record (its seq is taken now if the call took none).
 * `last`: the call's last region event, after which come what the call
 * decided after it took effect and the thread's totals event (a
 * reserve-and-commit's reserve is not: its commit's seq is already taken). */
void hostmem__trace_region_op(const struct hostmem_manager *m, enum hostmem__op op,
                              hostmem__trace_op_event *ev, bool last);
/* The `seq` of op's event, taken now: where the call takes effect, under the
 * lock that orders it against the calls it could conflict with, so that seq
 * order is the order in which calls changed the manager (a release before
 * the reserve that reuses its address, whichever thread emits first).  Only
 * when the event will be emitted (a seq taken is a seq emitted: a gap means
 * a lost event), and once per call. */
void hostmem__trace_order(hostmem__trace_op_event *ev, enum hostmem__op op);
void hostmem__trace_failure(const struct hostmem_manager *m, enum hostmem__op op, int32_t hr,
                            enum hostmem__reason reason, int os_errno, uintptr_t address,
                            uint64_t size, int32_t level);
void hostmem__trace_decision(const struct hostmem_manager *m, enum hostmem__resource resource,
                             int32_t level, uint64_t request_bytes, uint64_t current_bytes,
                             uint64_t level_ceiling, uint64_t limit,
                             enum hostmem__decision decision, uint64_t waited_ns);
void hostmem__trace_memory_state(const struct hostmem_manager *m, int old_state, int new_state,
                                 uint64_t committed_bytes, uint64_t limit);
/* Decisions and state changes are decided under the state lock, where the
 * tracer must not run (it may call the host's malloc, A5): they are
 * queued per thread and emitted here, which the manager calls with no
 * internal lock held (every exit, and every turn of a loop that decides).
 * Each takes its seq when made; _before(seq) emits those made before `seq`
 * (0: all) and keeps the rest, so a thread emits in seq order. */
void hostmem__trace_flush(void);
void hostmem__trace_flush_before(uint64_t seq);
void hostmem__trace_address_space(const struct hostmem_manager *m, enum hostmem__as_action action,
                                  uintptr_t start, uint64_t size, int32_t hr,
                                  uint64_t external_bytes);
void hostmem__trace_manager_create(const struct hostmem_manager *m, uint64_t commit_limit,
                                   uint64_t address_space_limit, uint64_t page_size);
/* regions / reserved_bytes / committed_bytes: what the host left live;
 * unreturned_*: mappings the kernel refused to take back (munmap failed). */
void hostmem__trace_manager_destroy(const struct hostmem_manager *m, uint64_t regions,
                                    uint64_t reserved_bytes, uint64_t committed_bytes,
                                    uint64_t unreturned_mappings, uint64_t unreturned_bytes);
/* W3: a write-watch call that reached its region (read: get, else reset). */
void hostmem__trace_write_watch(const struct hostmem_manager *m, uintptr_t base, uint64_t size,
                                uint64_t pages, bool reset, bool read, int32_t hr,
                                uint64_t duration_ns);
/* W3: a guard cleared by its first access (async-signal context). */
void hostmem__trace_guard_hit(const struct hostmem_manager *m, uintptr_t address, uintptr_t page);

/* The heap (H4).  Each returns at once when its event is off; the
 * heap's fast paths test these first, so a disabled event costs a load and a
 * branch and no call. */
struct hostmem_malloc;
extern const int *const hostmem__trace_malloc_alloc_on;
extern const int *const hostmem__trace_malloc_free_on;
void hostmem__trace_malloc_alloc(const struct hostmem_malloc *h, uintptr_t address, uint64_t size,
                                 int32_t level, uintptr_t caller, const char *file, int line);
void hostmem__trace_malloc_free(const struct hostmem_malloc *h, uintptr_t address, uint64_t size,
                                uintptr_t caller);
/* created (live_* 0) or destroyed (what was still live). */
void hostmem__trace_malloc_heap(const struct hostmem_manager *m, const struct hostmem_malloc *h,
                                bool created, uint32_t type, uint64_t live_blocks,
                                uint64_t live_bytes);
/* A region the heap took from its manager (live) or gave back. */
void hostmem__trace_malloc_region(const struct hostmem_manager *m, const struct hostmem_malloc *h,
                                  uintptr_t base, uint64_t size, bool live);

/* Called at every public entry: when a session has just enabled
 * hostmem:region_state, emits one event per live region of `m` (through
 * hostmem__region_foreach) so a session attached mid-run sees them. */
void hostmem__trace_poll_statedump(struct hostmem_manager *m);

/* One live region, as region_state reports it. */
typedef struct hostmem__region_info {
    uintptr_t base;
    uint64_t size;
    uint64_t committed_bytes;
    uint32_t alloc_protect;
    uintptr_t caller; /* return address of the call that reserved it */
} hostmem__region_info;
void hostmem__trace_region_state(const struct hostmem_manager *m, const hostmem__region_info *r);

#endif
