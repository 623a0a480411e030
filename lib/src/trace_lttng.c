/*
 * trace_lttng.c: the tracing facade (trace.h) over the LTTng-UST provider
 * `hostmem` (tracepoints/hostmem_tp.h, the T rules of docs/tracing.md).
 *
 * The tracepoints are defined here with dynamic linkage: libhostmem needs
 * neither liblttng-ust nor the probes at link time.  At load, a constructor
 * loads the probes module libhostmem-lttng.so (which pulls in liblttng-ust);
 * when that fails -- lttng-ust not installed -- every tracepoint stays
 * disabled and the host runs untraced.  HOSTMEM_LTTNG=0 loads nothing;
 * HOSTMEM_LTTNG_PROVIDER overrides the search: a path to load instead, or
 * "none" to load nothing.
 *
 * Cost: with no session each facade call is one load and one branch on the
 * tracepoint's state (lttng_ust_tracepoint_enabled); a sequence number, the
 * clock and the event body are only touched for enabled events.
 *
 * Re-entry (A5).  Emitting an event may call the host's malloc:
 * lttng-ust's thread-local storage is allocated on a thread's first event
 * (__tls_get_addr -> malloc), and a host's malloc may sit on hostmem.  So an
 * event is emitted only with no internal lock held (events the policy decides
 * under the state lock wait in a per-thread queue until the call flushes it),
 * and a hostmem call made while this thread is emitting -- from inside the
 * tracer -- is not traced at all: it completes, and emits nothing, which is
 * what keeps it from recursing.
 */
#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

#define LTTNG_UST_TRACEPOINT_DEFINE
#define LTTNG_UST_TRACEPOINT_PROBE_DYNAMIC_LINKAGE
/* Only this file fires the tracepoints: keep their symbols inside libhostmem
 * so a host that also links the static library gets two separate sets. */
#define LTTNG_UST_TRACEPOINT_HIDDEN_DEFINITION
#include "hostmem_tp.h"

#define TP_ON(name) lttng_ust_tracepoint_enabled(hostmem, name)

/* >0 while this thread is inside the tracer.  initial-exec: reading it never
 * allocates (a dynamic TLS access could call malloc itself). */
static __thread unsigned trace_depth __attribute__((tls_model("initial-exec")));

/* Emit `stmt` unless this thread is already emitting (then the call that got
 * here came from inside the tracer and stays untraced). */
#define TRACE_EMIT(stmt)                                                           \
    do {                                                                           \
        if (trace_depth == 0) {                                                    \
            trace_depth++;                                                         \
            stmt;                                                                  \
            trace_depth--;                                                         \
        }                                                                          \
    } while (0)

/* ---- loading the probes ------------------------------------------------- */

static bool trace_try_load(const char *path)
{
    /* RTLD_NODELETE: the probes must outlive any tracepoint that may still
     * call them while the process exits. */
    return dlopen(path, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE) != NULL;
}

/* Try `dir`/`rel`/HOSTMEM_LTTNG_MODULE. */
static bool trace_try_dir(const char *dir, size_t dir_len, const char *rel)
{
    char path[PATH_MAX];
    int n = snprintf(path, sizeof path, "%.*s%s/%s", (int)dir_len, dir, rel, HOSTMEM_LTTNG_MODULE);
    return n > 0 && (size_t)n < sizeof path && trace_try_load(path);
}

static void trace_dump_atfork_prepare(void);
static void trace_dump_atfork_release(void);

__attribute__((constructor)) static void trace_load_provider(void)
{
    /* A fork while another thread holds the statedump lock would leave the
     * child's copy locked forever: hold it across fork(). */
    (void)pthread_atfork(trace_dump_atfork_prepare, trace_dump_atfork_release,
                         trace_dump_atfork_release);

    const char *off = getenv("HOSTMEM_LTTNG");
    if (off != NULL && strcmp(off, "0") == 0)
        return; /* told not to trace */
    const char *env = getenv("HOSTMEM_LTTNG_PROVIDER");
    if (env != NULL && (strcmp(env, "none") == 0 || strcmp(env, "0") == 0))
        return;
    /* Already in the global scope (LD_PRELOAD, or linked into the host):
     * loading a second copy would record every event twice. */
    if (dlsym(RTLD_DEFAULT, "lttng_ust_tracepoint_provider_hostmem") != NULL)
        return;
    if (env != NULL && env[0] != '\0') {
        if (!trace_try_load(env))
            fprintf(stderr, "hostmem: cannot load HOSTMEM_LTTNG_PROVIDER=%s: %s\n", env, dlerror());
        return;
    }
    /* Next to the object holding this code (libhostmem.so, or the host that
     * linked the static library), then in ../lib from there (bin/ and lib/
     * side by side, build tree or install), then where it was installed,
     * then the loader's search path. */
    char self[PATH_MAX];
    const char *where = NULL;
    Dl_info info;
    if (dladdr((void *)&trace_load_provider, &info) != 0 && info.dli_fname != NULL &&
        strchr(info.dli_fname, '/') != NULL) {
        where = info.dli_fname;
    } else {
        ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
        if (n > 0) {
            self[n] = '\0';
            where = self;
        }
    }
    if (where != NULL) {
        size_t dir_len = (size_t)(strrchr(where, '/') - where);
        if (trace_try_dir(where, dir_len, "") || trace_try_dir(where, dir_len, "/../lib"))
            return;
    }
    if (trace_try_dir(HOSTMEM_LTTNG_INSTALL_DIR, strlen(HOSTMEM_LTTNG_INSTALL_DIR), ""))
        return;
    (void)trace_try_load(HOSTMEM_LTTNG_MODULE);
}

/* ---- sequence and clock ---------------------------------------------------- */

/* seq: +1 for every event this process emits, from 1, so a reader can order
 * the events of one process across CPUs and see what a buffer dropped. */
static _Atomic uint64_t trace_seq;

static inline uint64_t trace_next_seq(void)
{
    return atomic_fetch_add_explicit(&trace_seq, 1, memory_order_relaxed) + 1;
}

static inline uint64_t trace_manager_id(const struct hostmem_manager *m)
{
    return (uint64_t)(uintptr_t)m;
}

uint64_t hostmem__trace_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- region operations (T1) ---------------------------------------------- */

static inline bool trace_region_enabled(enum hostmem__op op)
{
    switch (op) {
    case HOSTMEM_OP_reserve: return TP_ON(reserve);
    case HOSTMEM_OP_commit: return TP_ON(commit);
    case HOSTMEM_OP_decommit: return TP_ON(decommit);
    case HOSTMEM_OP_release: return TP_ON(release);
    case HOSTMEM_OP_protect: return TP_ON(protect);
    case HOSTMEM_OP_reset: return TP_ON(reset);
    case HOSTMEM_OP_reset_undo: return TP_ON(reset_undo);
    case HOSTMEM_OP_query: return TP_ON(query);
    default: return false;
    }
}

bool hostmem__trace_begin(enum hostmem__op op, hostmem__trace_call *call, uintptr_t caller)
{
    call->caller = caller;
    call->t0 = 0;
    if (trace_depth != 0)
        return false; /* a call from inside the tracer: untraced (A5) */
    /* A reserve-and-commit emits both events from one call: either one
     * enabled needs the start time. */
    bool on = trace_region_enabled(op);
    if (op == HOSTMEM_OP_reserve)
        on = on || TP_ON(commit);
    else if (op == HOSTMEM_OP_commit)
        on = on || TP_ON(reserve);
    if (on)
        call->t0 = hostmem__trace_now_ns();
    return on;
}

/* Region events of this thread since its last totals event. */
static __thread uint32_t trace_totals_countdown __attribute__((tls_model("initial-exec")));

static void trace_totals(const struct hostmem_manager *m, const hostmem__trace_op_event *ev)
{
    if (trace_totals_countdown-- != 0)
        return;
    trace_totals_countdown = HOSTMEM_TRACE_TOTALS_EVERY - 1;
    if (TP_ON(totals))
        lttng_ust_do_tracepoint(hostmem, totals, trace_next_seq(), trace_manager_id(m),
                                ev->reserved_bytes, ev->committed_bytes);
}

void hostmem__trace_region_op(const struct hostmem_manager *m, const hostmem__trace_call *call,
                              const hostmem__trace_op_event *ev)
{
    if (!trace_region_enabled(ev->op) || trace_depth != 0)
        return;
    /* Layout v2 (hostmem_tp.h): the event's timestamp is the end of the
     * call, so only its start travels; a session that started during the
     * call has none (0). */
    struct hostmem_tp_op_v2 e = {
        .seq = trace_next_seq(),
        .manager = trace_manager_id(m),
        .start_ns = call != NULL ? call->t0 : 0,
        .address = (uint64_t)ev->address,
        .size = ev->size,
        .base = (uint64_t)ev->base,
        .region_size = ev->region_size,
        .caller = call != NULL ? (uint64_t)call->caller : 0,
        .alloc_type = ev->alloc_type,
        .protect = ev->protect,
        .old_protect = ev->old_protect,
        .level = ev->level,
        .hr = ev->hr,
    };
    trace_depth++;
    switch (ev->op) {
    case HOSTMEM_OP_reserve: lttng_ust_do_tracepoint(hostmem, reserve, &e); break;
    case HOSTMEM_OP_commit:
        /* The commit half of a reserve-and-commit commits the whole new
         * region: its range travels instead of the arguments, which the
         * reserve event just before already carries. */
        if (ev->alloc_type & MEM_RESERVE) {
            e.address = (uint64_t)ev->base;
            e.size = ev->region_size;
        }
        lttng_ust_do_tracepoint(hostmem, commit, &e);
        break;
    case HOSTMEM_OP_decommit: lttng_ust_do_tracepoint(hostmem, decommit, &e); break;
    case HOSTMEM_OP_release: lttng_ust_do_tracepoint(hostmem, release, &e); break;
    case HOSTMEM_OP_protect: lttng_ust_do_tracepoint(hostmem, protect, &e); break;
    case HOSTMEM_OP_reset: lttng_ust_do_tracepoint(hostmem, reset, &e); break;
    case HOSTMEM_OP_reset_undo: lttng_ust_do_tracepoint(hostmem, reset_undo, &e); break;
    case HOSTMEM_OP_query: lttng_ust_do_tracepoint(hostmem, query, &e); break;
    default: break;
    }
    /* Still inside the guard: totals are part of this call's tracing. */
    if (ev->op != HOSTMEM_OP_query && m != NULL)
        trace_totals(m, ev);
    trace_depth--;
}

/* ---- the other events (T2-T4) ---------------------------------------------- */

void hostmem__trace_failure(const struct hostmem_manager *m, enum hostmem__op op, int32_t hr,
                            enum hostmem__reason reason, int os_errno, uintptr_t address,
                            uint64_t size, int32_t level)
{
    if (!TP_ON(failure))
        return;
    TRACE_EMIT(lttng_ust_do_tracepoint(hostmem, failure, trace_next_seq(), trace_manager_id(m),
                                       (uint8_t)op, hr, (uint8_t)reason, (int32_t)os_errno,
                                       (uint64_t)address, size, level));
}

/* Decisions and state changes are made under the state lock: they wait here
 * (per thread) until hostmem__trace_flush, which the manager calls with no
 * lock held.  A call makes at most a few between flushes; the queue is small
 * because it lives in static TLS. */
#define TRACE_QUEUE 8
typedef struct trace_pending {
    const struct hostmem_manager *m;
    uint64_t a, b, c, d, waited_ns; /* request, current, ceiling, limit | committed, limit */
    int32_t level_or_old, new_state;
    uint8_t is_decision, resource, decision;
} trace_pending;
static __thread trace_pending trace_queue[TRACE_QUEUE] __attribute__((tls_model("initial-exec")));
static __thread unsigned trace_queued __attribute__((tls_model("initial-exec")));

static trace_pending *trace_enqueue(void)
{
    if (trace_depth != 0)
        return NULL; /* a call from inside the tracer: untraced */
    if (trace_queued == TRACE_QUEUE)
        return NULL; /* cannot happen with a flush at every exit and loop; never block */
    return &trace_queue[trace_queued++];
}

void hostmem__trace_decision(const struct hostmem_manager *m, enum hostmem__resource resource,
                             int32_t level, uint64_t request_bytes, uint64_t current_bytes,
                             uint64_t level_ceiling, uint64_t limit,
                             enum hostmem__decision decision, uint64_t waited_ns)
{
    if (!TP_ON(critical_decision))
        return;
    trace_pending *p = trace_enqueue();
    if (p == NULL)
        return;
    *p = (trace_pending){.m = m, .a = request_bytes, .b = current_bytes, .c = level_ceiling,
                         .d = limit, .waited_ns = waited_ns, .level_or_old = level,
                         .is_decision = 1, .resource = (uint8_t)resource,
                         .decision = (uint8_t)decision};
}

void hostmem__trace_memory_state(const struct hostmem_manager *m, int old_state, int new_state,
                                 uint64_t committed_bytes, uint64_t limit)
{
    if (!TP_ON(memory_state))
        return;
    trace_pending *p = trace_enqueue();
    if (p == NULL)
        return;
    *p = (trace_pending){.m = m, .a = committed_bytes, .b = limit, .level_or_old = old_state,
                         .new_state = new_state};
}

void hostmem__trace_flush(void)
{
    if (trace_queued == 0 || trace_depth != 0)
        return;
    trace_depth++;
    for (unsigned i = 0; i < trace_queued; i++) {
        const trace_pending *p = &trace_queue[i];
        if (p->is_decision)
            lttng_ust_do_tracepoint(hostmem, critical_decision, trace_next_seq(),
                                    trace_manager_id(p->m), p->resource, p->level_or_old, p->a,
                                    p->b, p->c, p->d, p->decision, p->waited_ns);
        else
            lttng_ust_do_tracepoint(hostmem, memory_state, trace_next_seq(),
                                    trace_manager_id(p->m), p->level_or_old, p->new_state, p->a,
                                    p->b);
    }
    trace_queued = 0;
    trace_depth--;
}

void hostmem__trace_address_space(const struct hostmem_manager *m, enum hostmem__as_action action,
                                  uintptr_t start, uint64_t size, int32_t hr,
                                  uint64_t external_bytes)
{
    if (!TP_ON(address_space))
        return;
    TRACE_EMIT(lttng_ust_do_tracepoint(hostmem, address_space, trace_next_seq(),
                                       trace_manager_id(m), (uint8_t)action, (uint64_t)start, size,
                                       hr, external_bytes));
}

/* ---- write watch and guard pages (W3) ---------------------------------------- */

void hostmem__trace_write_watch(const struct hostmem_manager *m, uintptr_t base, uint64_t size,
                                uint64_t pages, bool reset, bool read, int32_t hr,
                                uint64_t duration_ns)
{
    if (!TP_ON(write_watch))
        return;
    TRACE_EMIT(lttng_ust_do_tracepoint(hostmem, write_watch, trace_next_seq(), trace_manager_id(m),
                                       (uint64_t)base, size, pages, (uint8_t)reset, (uint8_t)read,
                                       hr, duration_ns));
}

void hostmem__trace_guard_hit(const struct hostmem_manager *m, uintptr_t address, uintptr_t page)
{
    /* Runs in the fault handler: lttng-ust's event path takes no lock (per-CPU
     * ring buffers), but a thread's first event allocates its thread-local
     * storage.  A fault taken while this thread was inside the tracer is not
     * traced (A5): the tracer is not reentered. */
    if (!TP_ON(guard_hit))
        return;
    TRACE_EMIT(lttng_ust_do_tracepoint(hostmem, guard_hit, trace_next_seq(), trace_manager_id(m),
                                       (uint64_t)address, (uint64_t)page));
}

/* ---- statedump: region_state ------------------------------------------------
 *
 * A session that enables hostmem:region_state should see every region that
 * was live before it started.  lttng-ust gives an application no hook for a
 * session start, so the manager polls at every public entry
 * (hostmem__trace_poll_statedump): when the set of probes attached to
 * region_state changes -- lttng-ust attaches one per session that enables the
 * event, in a new array -- a new dump generation begins, and each manager
 * dumps its regions on its next call.  A session that goes away also starts a
 * generation, so the remaining ones may see a region twice: region_state is a
 * snapshot, and readers keep the latest per (manager, base).
 *
 * The managers are known from manager_create / manager_destroy (which the
 * manager calls whether or not their events are enabled), or met at a poll.
 */
typedef struct trace_dump_entry {
    const struct hostmem_manager *m;
    uint64_t gen; /* the generation this manager last dumped for */
} trace_dump_entry;

static pthread_mutex_t trace_dump_lock = PTHREAD_MUTEX_INITIALIZER;
static trace_dump_entry *trace_dump_table; /* under trace_dump_lock */
static size_t trace_dump_count, trace_dump_cap;
static _Atomic uintptr_t trace_dump_token;  /* probes of region_state last seen */
static _Atomic uint64_t trace_dump_gen = 1;
static _Atomic size_t trace_dump_pending;   /* managers yet to dump for trace_dump_gen */

static void trace_dump_atfork_prepare(void) { pthread_mutex_lock(&trace_dump_lock); }
static void trace_dump_atfork_release(void) { pthread_mutex_unlock(&trace_dump_lock); }

static trace_dump_entry *trace_dump_find(const struct hostmem_manager *m)
{
    for (size_t i = 0; i < trace_dump_count; i++)
        if (trace_dump_table[i].m == m)
            return &trace_dump_table[i];
    return NULL;
}

/* Add m with generation `gen` (lock held).  False when out of memory. */
static bool trace_dump_add(const struct hostmem_manager *m, uint64_t gen)
{
    if (trace_dump_count == trace_dump_cap) {
        size_t cap = trace_dump_cap != 0 ? trace_dump_cap * 2 : 8;
        /* Never the process heap (A5): the host's malloc may be ours. */
        trace_dump_entry *t = hostmem__meta_alloc(cap * sizeof *t);
        if (t == NULL)
            return false;
        if (trace_dump_count != 0)
            memcpy(t, trace_dump_table, trace_dump_count * sizeof *t);
        hostmem__meta_free(trace_dump_table, trace_dump_cap * sizeof *t);
        trace_dump_table = t;
        trace_dump_cap = cap;
    }
    trace_dump_table[trace_dump_count++] = (trace_dump_entry){m, gen};
    return true;
}

static uintptr_t trace_dump_probes(void)
{
    return (uintptr_t)CMM_LOAD_SHARED(lttng_ust_tracepoint_hostmem___region_state.probes);
}

static void trace_dump_one(void *ctx, const hostmem__region_info *info)
{
    hostmem__trace_region_state(ctx, info);
}

void hostmem__trace_poll_statedump(struct hostmem_manager *m)
{
    if (!TP_ON(region_state) || trace_depth != 0)
        return;
    uintptr_t token = trace_dump_probes();
    if (token == atomic_load_explicit(&trace_dump_token, memory_order_acquire) &&
        atomic_load_explicit(&trace_dump_pending, memory_order_acquire) == 0)
        return;

    bool dump = false;
    pthread_mutex_lock(&trace_dump_lock);
    uint64_t gen = atomic_load_explicit(&trace_dump_gen, memory_order_relaxed);
    if (token != atomic_load_explicit(&trace_dump_token, memory_order_relaxed)) {
        atomic_store_explicit(&trace_dump_token, token, memory_order_release);
        atomic_store_explicit(&trace_dump_gen, ++gen, memory_order_relaxed);
        atomic_store_explicit(&trace_dump_pending, trace_dump_count, memory_order_release);
    }
    trace_dump_entry *e = trace_dump_find(m);
    if (e == NULL) {
        /* Never announced: dump now, and remember it (if memory allows). */
        dump = true;
        (void)trace_dump_add(m, gen);
    } else if (e->gen != gen) {
        e->gen = gen;
        atomic_fetch_sub_explicit(&trace_dump_pending, 1, memory_order_release);
        dump = true;
    }
    pthread_mutex_unlock(&trace_dump_lock);

    if (dump)
        hostmem__region_foreach(m, trace_dump_one, m);
}

void hostmem__trace_region_state(const struct hostmem_manager *m, const hostmem__region_info *r)
{
    if (!TP_ON(region_state))
        return;
    struct hostmem_tp_region_v1 e = {
        .seq = trace_next_seq(),
        .manager = trace_manager_id(m),
        .base = (uint64_t)r->base,
        .region_size = r->size,
        .committed_bytes = r->committed_bytes,
        .protect = r->alloc_protect,
        .caller = (uint64_t)r->caller,
    };
    TRACE_EMIT(lttng_ust_do_tracepoint(hostmem, region_state, &e));
}

/* ---- manager life (T4) ------------------------------------------------------ */

void hostmem__trace_manager_create(const struct hostmem_manager *m, uint64_t commit_limit,
                                   uint64_t address_space_limit, uint64_t page_size)
{
    /* A new manager has no regions: nothing to dump for the current
     * generation.  Out of memory only costs a redundant dump later. */
    pthread_mutex_lock(&trace_dump_lock);
    if (trace_dump_find(m) == NULL)
        (void)trace_dump_add(m, atomic_load_explicit(&trace_dump_gen, memory_order_relaxed));
    pthread_mutex_unlock(&trace_dump_lock);

    if (!TP_ON(manager_create))
        return;
    TRACE_EMIT(lttng_ust_do_tracepoint(hostmem, manager_create, trace_next_seq(),
                                       trace_manager_id(m), commit_limit, address_space_limit,
                                       page_size));
}

void hostmem__trace_manager_destroy(const struct hostmem_manager *m, uint64_t regions,
                                    uint64_t reserved_bytes, uint64_t committed_bytes,
                                    uint64_t unreturned_mappings, uint64_t unreturned_bytes)
{
    pthread_mutex_lock(&trace_dump_lock);
    trace_dump_entry *e = trace_dump_find(m);
    if (e != NULL) {
        if (e->gen != atomic_load_explicit(&trace_dump_gen, memory_order_relaxed))
            atomic_fetch_sub_explicit(&trace_dump_pending, 1, memory_order_release);
        *e = trace_dump_table[--trace_dump_count];
    }
    if (trace_dump_count == 0) {
        hostmem__meta_free(trace_dump_table, trace_dump_cap * sizeof *trace_dump_table);
        trace_dump_table = NULL;
        trace_dump_cap = 0;
    }
    pthread_mutex_unlock(&trace_dump_lock);

    if (!TP_ON(manager_destroy))
        return;
    TRACE_EMIT(lttng_ust_do_tracepoint(hostmem, manager_destroy, trace_next_seq(),
                                       trace_manager_id(m), regions, reserved_bytes,
                                       committed_bytes, unreturned_mappings, unreturned_bytes));
}

/* ---- the heap (H4) ------------------------------------------------------------ */

/* The tracepoints' own state words (what lttng_ust_tracepoint_enabled reads). */
const int *const hostmem__trace_malloc_alloc_on = &lttng_ust_tracepoint_hostmem___malloc_alloc.state;
const int *const hostmem__trace_malloc_free_on = &lttng_ust_tracepoint_hostmem___malloc_free.state;

void hostmem__trace_malloc_alloc(const struct hostmem_malloc *h, uintptr_t address, uint64_t size,
                                 int32_t level, uintptr_t caller, const char *file, int line)
{
    if (!TP_ON(malloc_alloc))
        return;
    TRACE_EMIT(lttng_ust_do_tracepoint(hostmem, malloc_alloc, trace_next_seq(), (uint64_t)(uintptr_t)h,
                                       (uint64_t)address, size, level, (uint64_t)caller,
                                       file ? file : "", (int32_t)line));
}

void hostmem__trace_malloc_free(const struct hostmem_malloc *h, uintptr_t address, uint64_t size,
                                uintptr_t caller)
{
    if (!TP_ON(malloc_free))
        return;
    TRACE_EMIT(lttng_ust_do_tracepoint(hostmem, malloc_free, trace_next_seq(), (uint64_t)(uintptr_t)h,
                                       (uint64_t)address, size, (uint64_t)caller));
}

void hostmem__trace_malloc_heap(const struct hostmem_manager *m, const struct hostmem_malloc *h,
                                bool created, uint32_t type, uint64_t live_blocks,
                                uint64_t live_bytes)
{
    if (created ? !TP_ON(malloc_create) : !TP_ON(malloc_destroy))
        return;
    if (created)
        TRACE_EMIT(lttng_ust_do_tracepoint(hostmem, malloc_create, trace_next_seq(), trace_manager_id(m),
                                           (uint64_t)(uintptr_t)h, type));
    else
        TRACE_EMIT(lttng_ust_do_tracepoint(hostmem, malloc_destroy, trace_next_seq(), trace_manager_id(m),
                                           (uint64_t)(uintptr_t)h, live_blocks, live_bytes));
}

void hostmem__trace_malloc_region(const struct hostmem_manager *m, const struct hostmem_malloc *h,
                                  uintptr_t base, uint64_t size, bool live)
{
    if (!TP_ON(malloc_region))
        return;
    TRACE_EMIT(lttng_ust_do_tracepoint(hostmem, malloc_region, trace_next_seq(), trace_manager_id(m),
                                       (uint64_t)(uintptr_t)h, (uint64_t)base, size, (uint8_t)live));
}
