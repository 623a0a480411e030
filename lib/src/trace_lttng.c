/*
 * trace_lttng.c: the tracing facade (trace.h) over the LTTng-UST provider
 * `hostmem` (tracepoints/hostmem_tp.h, the T rules of docs/tracing.md):
 * loading the probes, the sequence number and the clock, the region
 * operations and the events of T2-T4 and W3.  The statedump and the
 * managers' life are in trace_lttng_dump.c, the heap's events in
 * trace_lttng_heap.c; what they share is trace_lttng.h.
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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LTTNG_UST_TRACEPOINT_DEFINE
#include "trace_lttng.h"

__thread unsigned hostmem__trace_depth __attribute__((tls_model("initial-exec")));
_Atomic uint64_t hostmem__trace_seq;

/* ---- loading the probes ------------------------------------------------- */

/* The provider's one-write writers of the region events (hostmem_tp.h);
 * all NULL (trace_no_writers) for a provider without them: every probe is
 * then called as registered. */
static const struct hostmem_tp_op_writers_v2 trace_no_writers;
static const struct hostmem_tp_op_writers_v2 *trace_writers = &trace_no_writers;

static void trace_find_writers(void *scope)
{
    const struct hostmem_tp_op_writers_v2 *w = dlsym(scope, HOSTMEM_TP_OP_WRITERS);
    trace_writers = w != NULL ? w : &trace_no_writers;
}

static bool trace_try_load(const char *path)
{
    /* RTLD_NODELETE: the probes must outlive any tracepoint that may still
     * call them while the process exits. */
    void *module = dlopen(path, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
    if (module == NULL)
        return false;
    trace_find_writers(module);
    return true;
}

/* Try `dir`/`rel`/HOSTMEM_LTTNG_MODULE. */
static bool trace_try_dir(const char *dir, size_t dir_len, const char *rel)
{
    char path[PATH_MAX];
    int n = snprintf(path, sizeof path, "%.*s%s/%s", (int)dir_len, dir, rel, HOSTMEM_LTTNG_MODULE);
    return n > 0 && (size_t)n < sizeof path && trace_try_load(path);
}

__attribute__((constructor)) static void trace_load_provider(void)
{
    /* A fork while another thread holds the statedump lock would leave the
     * child's copy locked forever: hold it across fork(). */
    (void)pthread_atfork(hostmem__trace_dump_atfork_prepare, hostmem__trace_dump_atfork_release,
                         hostmem__trace_dump_atfork_release);

    const char *off = getenv("HOSTMEM_LTTNG");
    if (off != NULL && strcmp(off, "0") == 0)
        return; /* told not to trace */
    const char *env = getenv("HOSTMEM_LTTNG_PROVIDER");
    if (env != NULL && (strcmp(env, "none") == 0 || strcmp(env, "0") == 0))
        return;
    /* Already in the global scope (LD_PRELOAD, or linked into the host):
     * loading a second copy would record every event twice. */
    if (dlsym(RTLD_DEFAULT, "lttng_ust_tracepoint_provider_hostmem") != NULL) {
        trace_find_writers(RTLD_DEFAULT);
        return;
    }
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

/* ---- the clock of start_ns ------------------------------------------------------
 *
 * A region event carries the call's start in CLOCK_MONOTONIC ns, lttng-ust's
 * own clock, so the reader takes the duration as the event's timestamp minus
 * start_ns.  clock_gettime costs 22-32 ns here and rdtsc about 12, for every
 * traced call: on x86-64 with an invariant TSC (CPUID says so) the start is
 * the TSC read at entry, turned into ns through a (tsc, ns) pair this thread
 * read less than TRACE_CLOCK_WINDOW_NS ago and the rate between the pair the
 * library read when it was loaded and the latest one.  A call that finds its
 * thread's pair too old (or none yet) reads the clock itself and makes a
 * new pair.  Error: half the pair's own read window (a pair read across a
 * preemption is not kept) plus the rate's error over the window -- NTP moves
 * CLOCK_MONOTONIC's rate by at most 500 ppm, 10 ns over 20 us -- so a start
 * can be a few ns late, and the reader clamps a negative duration to 0.
 * Until the library is 1 ms old, and without an invariant TSC, the start is
 * clock_gettime's.
 */
#define TRACE_CLOCK_WINDOW_NS 20000u   /* a pair serves this long */
#define TRACE_CLOCK_CALIBRATE_NS 1000000u /* the rate needs this much history */
#define TRACE_CLOCK_PAIR_MAX_NS 100u   /* a pair read over more is not kept */
/* Before the rate is known: a bound in ticks (about 2 us even at 2.5 GHz; a
 * clock read takes a few hundred), far below the milliseconds a thread loses
 * when it is preempted between the reads. */
#define TRACE_CLOCK_PAIR_MAX_TICKS 5000u
#define TRACE_CLOCK_FIRST_TRIES 1000

uint64_t hostmem__trace_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

#if defined(__x86_64__)
#include <cpuid.h>
#include <x86intrin.h>

/* This thread's pair; window 0: none (take the slow path). */
typedef struct trace_clock_pair {
    uint64_t tsc, ns;
    uint64_t window; /* TRACE_CLOCK_WINDOW_NS in ticks */
    uint64_t rate;   /* ns per tick, 32.32 fixed point */
} trace_clock_pair;
static __thread trace_clock_pair trace_clock_tls __attribute__((tls_model("initial-exec")));

static bool trace_clock_invariant;   /* set once, by the constructor */
static uint64_t trace_clock_first_tsc, trace_clock_first_ns;

/* A pair: the clock between two TSC reads, the TSC at their middle; the
 * ticks the reads took, as the pair's width. */
static uint64_t trace_clock_read_pair(uint64_t *tsc, uint64_t *ns)
{
    uint64_t t0 = __rdtsc();
    *ns = hostmem__trace_now_ns();
    uint64_t t1 = __rdtsc();
    *tsc = t0 + (t1 - t0) / 2;
    return t1 - t0;
}

__attribute__((constructor)) static void trace_clock_init(void)
{
    unsigned a, b, c, d;
    /* CPUID 0x80000007, EDX bit 8: the TSC runs at a constant rate in every
     * C-, P- and T-state (the kernel's nonstop_tsc). */
    if (__get_cpuid(0x80000007u, &a, &b, &c, &d) == 0 || !(d & (1u << 8)))
        return;
    /* The first pair anchors the rate of every later one: a pair read across
     * a preemption would put every stamp off by a share of it, so only a
     * tight one is kept (none in a thousand tries: the system clock). */
    for (int i = 0; i < TRACE_CLOCK_FIRST_TRIES && !trace_clock_invariant; i++)
        trace_clock_invariant =
            trace_clock_read_pair(&trace_clock_first_tsc, &trace_clock_first_ns) <= TRACE_CLOCK_PAIR_MAX_TICKS;
}

static __attribute__((noinline)) uint64_t trace_clock_slow(void)
{
    if (!trace_clock_invariant)
        return hostmem__trace_now_ns();
    uint64_t tsc, ns;
    uint64_t width = trace_clock_read_pair(&tsc, &ns);
    uint64_t dns = ns - trace_clock_first_ns, dtsc = tsc - trace_clock_first_tsc;
    if (dns < TRACE_CLOCK_CALIBRATE_NS || dtsc == 0 || (int64_t)dtsc < 0)
        return ns; /* too young to know the rate (or a TSC that went back) */
    /* ns per tick over everything since load: the longer, the finer. */
    uint64_t rate = (uint64_t)(((unsigned __int128)dns << 32) / dtsc);
    if (rate == 0 || width > ((uint64_t)TRACE_CLOCK_PAIR_MAX_NS << 32) / rate)
        return ns; /* the reads were interrupted: this reading is right, the pair is not kept */
    trace_clock_tls = (trace_clock_pair){.tsc = tsc, .ns = ns, .rate = rate,
                                         .window = ((uint64_t)TRACE_CLOCK_WINDOW_NS << 32) / rate};
    return ns;
}

/* CLOCK_MONOTONIC ns, now (see above). */
static inline uint64_t trace_clock_ns(void)
{
    const trace_clock_pair *p = &trace_clock_tls;
    uint64_t d = __rdtsc() - p->tsc;
    if (__builtin_expect(d < p->window, 1))
        return p->ns + ((d * p->rate) >> 32);
    return trace_clock_slow();
}
#else
static inline uint64_t trace_clock_ns(void) { return hostmem__trace_now_ns(); }
#endif

uint64_t hostmem__trace_clock_ns(void) { return trace_clock_ns(); }

/* ---- region operations (T1) ---------------------------------------------- */

/* Per region operation (reserve .. query, the first entries of the op
 * list): its tracepoint and its event's class.  Tables rather than
 * switches: one path for every operation, no jump to predict. */
_Static_assert(HOSTMEM_OP_reserve == 0 && HOSTMEM_OP_query == 7, "region ops first in HOSTMEM_OP_LIST");
#define TRACE_REGION_OPS (HOSTMEM_OP_query + 1)
static struct lttng_ust_tracepoint *const trace_region_tp[TRACE_REGION_OPS] = {
    [HOSTMEM_OP_reserve] = &lttng_ust_tracepoint_hostmem___reserve,
    [HOSTMEM_OP_commit] = &lttng_ust_tracepoint_hostmem___commit,
    [HOSTMEM_OP_decommit] = &lttng_ust_tracepoint_hostmem___decommit,
    [HOSTMEM_OP_release] = &lttng_ust_tracepoint_hostmem___release,
    [HOSTMEM_OP_protect] = &lttng_ust_tracepoint_hostmem___protect,
    [HOSTMEM_OP_reset] = &lttng_ust_tracepoint_hostmem___reset,
    [HOSTMEM_OP_reset_undo] = &lttng_ust_tracepoint_hostmem___reset_undo,
    [HOSTMEM_OP_query] = &lttng_ust_tracepoint_hostmem___query,
};
static const uint8_t trace_region_class[TRACE_REGION_OPS] = {
    [HOSTMEM_OP_reserve] = HOSTMEM_TP_OP_RESERVE,
    [HOSTMEM_OP_commit] = HOSTMEM_TP_OP_COMMIT,
    [HOSTMEM_OP_decommit] = HOSTMEM_TP_OP_RANGE,
    [HOSTMEM_OP_release] = HOSTMEM_TP_OP_RELEASE,
    [HOSTMEM_OP_protect] = HOSTMEM_TP_OP_PROTECT,
    [HOSTMEM_OP_reset] = HOSTMEM_TP_OP_RANGE,
    [HOSTMEM_OP_reset_undo] = HOSTMEM_TP_OP_RANGE,
    [HOSTMEM_OP_query] = HOSTMEM_TP_OP_QUERY,
};

static inline bool trace_region_enabled(enum hostmem__op op)
{
    /* lttng_ust_tracepoint_enabled, through the table */
    return (unsigned)op < TRACE_REGION_OPS && caa_unlikely(CMM_LOAD_SHARED(trace_region_tp[op]->state));
}

bool hostmem__trace_begin(enum hostmem__op op, hostmem__trace_op_event *ev)
{
    if (hostmem__trace_depth != 0)
        return false; /* a call from inside the tracer: untraced (A5) */
    /* A reserve-and-commit emits both events from one call: either one
     * enabled needs the start time. */
    bool on = trace_region_enabled(op);
    if (op == HOSTMEM_OP_reserve)
        on = on || HOSTMEM_TRACE_ON(commit);
    else if (op == HOSTMEM_OP_commit)
        on = on || HOSTMEM_TRACE_ON(reserve);
    if (on)
        ev->start_ns = trace_clock_ns();
    return on;
}

/* Region events of this thread since its last totals event. */
static __thread uint32_t trace_totals_countdown __attribute__((tls_model("initial-exec")));

static void trace_totals(const struct hostmem_manager *m)
{
    if (trace_totals_countdown-- != 0)
        return;
    trace_totals_countdown = HOSTMEM_TRACE_TOTALS_EVERY - 1;
    /* The books only when an event carries them: a racy but harmless read. */
    if (HOSTMEM_TRACE_ON(totals))
        lttng_ust_do_tracepoint(hostmem, totals, hostmem__trace_seq_next(), hostmem__trace_id(m),
                                atomic_load_explicit(&m->policy.reserved_now, memory_order_relaxed),
                                atomic_load_explicit(&m->policy.committed, memory_order_relaxed));
}

/*
 * Fire a region event: what lttng_ust_do_tracepoint does (under the
 * tracepoint's RCU read lock, call every probe registered with it, one per
 * session channel recording the event), except that a probe that is the
 * provider's generated one for the event's class is replaced by the
 * provider's one-write writer (hostmem_tp.h).  Without writers (a provider
 * that has none) `w` is all NULL and every probe is called as it is.
 */
static void trace_fire_op(enum hostmem__op op, const struct hostmem_tp_op_v2 *e)
{
    struct lttng_ust_tracepoint *tp = trace_region_tp[op];
    const struct hostmem_tp_op_writer *w = &trace_writers->op[trace_region_class[op]];
    if (!LTTNG_UST_TP_RCU_LINK_TEST())
        return;
    lttng_ust_tp_rcu_read_lock();
    struct lttng_ust_tracepoint_probe *p = lttng_ust_tp_rcu_dereference(tp->probes);
    if (p != NULL) {
        do {
            hostmem_tp_op_fn f = (hostmem_tp_op_fn)p->func;
            (f == w->probe ? w->write : f)(p->data, e);
        } while ((++p)->func != NULL);
    }
    lttng_ust_tp_rcu_read_unlock();
}

/* Decisions and state changes are made under the state lock: they wait here
 * (per thread) until hostmem__trace_flush, which the manager calls with no
 * lock held.  A call makes at most a few between flushes; the queue is small
 * because it lives in static TLS. */
#define TRACE_QUEUE 16
typedef struct trace_pending {
    const struct hostmem_manager *m;
    uint64_t seq; /* taken when made, under the state lock: the order they were made in */
    uint64_t a, b, c, d, waited_ns; /* request, current, ceiling, limit | committed, limit */
    int32_t level_or_old, new_state;
    uint8_t is_decision, resource, decision;
} trace_pending;
static __thread trace_pending trace_queue[TRACE_QUEUE] __attribute__((tls_model("initial-exec")));
static __thread unsigned trace_queued __attribute__((tls_model("initial-exec")));

static void trace_emit_queued(uint64_t seq);

void hostmem__trace_order(hostmem__trace_op_event *ev, enum hostmem__op op)
{
    if (ev->seq == 0 && trace_region_enabled(op) && hostmem__trace_depth == 0)
        ev->seq = hostmem__trace_seq_next();
}

void hostmem__trace_region_op(const struct hostmem_manager *m, enum hostmem__op op,
                              hostmem__trace_op_event *ev, bool last)
{
    if (!trace_region_enabled(op) || hostmem__trace_depth != 0)
        return;
    /* Layout v2 (hostmem_tp.h): the event's timestamp is the end of the
     * call, so only its start travels (0 when the session began during the
     * call).  The record is the event: nothing is copied on the way. */
    if (ev->seq == 0)
        ev->seq = hostmem__trace_seq_next();
    hostmem__trace_depth++;
    if (hostmem__stack_on()) /* T7: its stack first (trace_lttng_stack.c) */
        hostmem__trace_stack_op(m, op, ev->alloc_type, ev->seq, (uintptr_t)ev->caller);
    if (__builtin_expect(op == HOSTMEM_OP_commit && ((ev->alloc_type & MEM_RESERVE) || ev->address == 0), 0)) {
        /* The commit half of a reserve-and-commit (MEM_RESERVE | MEM_COMMIT,
         * or MEM_COMMIT at no address, which reserves too: a plain commit
         * always names its pages) commits the whole new region: its range
         * travels instead of the arguments, which the reserve event just
         * before already carries (and the call's failure event, if any,
         * still needs). */
        struct hostmem_tp_op_v2 whole = *ev;
        whole.address = ev->base;
        whole.size = ev->region_size;
        trace_fire_op(op, &whole);
    } else {
        trace_fire_op(op, ev);
    }
    /* What the call decided after it took effect, then (seq order); a
     * reserve's whose commit follows: after the commit's event. */
    if (last && trace_queued != 0)
        trace_emit_queued(0);
    /* Still inside the guard: totals are part of this call's tracing. */
    if (last && op != HOSTMEM_OP_query && m != NULL)
        trace_totals(m);
    hostmem__trace_depth--;
}

/* ---- the other events (T2-T4) ---------------------------------------------- */

void hostmem__trace_failure(const struct hostmem_manager *m, enum hostmem__op op, int32_t hr,
                            enum hostmem__reason reason, int os_errno, uintptr_t address,
                            uint64_t size, int32_t level)
{
    if (!HOSTMEM_TRACE_ON(failure))
        return;
    HOSTMEM_TRACE_EMIT(lttng_ust_do_tracepoint(hostmem, failure, hostmem__trace_seq_next(), hostmem__trace_id(m),
                                       (uint8_t)op, hr, (uint8_t)reason, (int32_t)os_errno,
                                       (uint64_t)address, size, level));
}

static trace_pending *trace_enqueue(void)
{
    if (hostmem__trace_depth != 0)
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
    if (!HOSTMEM_TRACE_ON(critical_decision))
        return;
    trace_pending *p = trace_enqueue();
    if (p == NULL)
        return;
    *p = (trace_pending){.m = m, .seq = hostmem__trace_seq_next(), .a = request_bytes,
                         .b = current_bytes, .c = level_ceiling, .d = limit,
                         .waited_ns = waited_ns, .level_or_old = level, .is_decision = 1,
                         .resource = (uint8_t)resource, .decision = (uint8_t)decision};
}

void hostmem__trace_memory_state(const struct hostmem_manager *m, int old_state, int new_state,
                                 uint64_t committed_bytes, uint64_t limit)
{
    if (!HOSTMEM_TRACE_ON(memory_state))
        return;
    trace_pending *p = trace_enqueue();
    if (p == NULL)
        return;
    *p = (trace_pending){.m = m, .seq = hostmem__trace_seq_next(), .a = committed_bytes,
                         .b = limit, .level_or_old = old_state, .new_state = new_state};
}

void hostmem__trace_flush(void) { hostmem__trace_flush_before(0); }

void hostmem__trace_flush_before(uint64_t seq)
{
    if (trace_queued == 0 || hostmem__trace_depth != 0)
        return;
    hostmem__trace_depth++;
    trace_emit_queued(seq);
    hostmem__trace_depth--;
}

/* Emit the queued events made before `seq` (0: all), inside the guard. */
static void trace_emit_queued(uint64_t seq)
{
    unsigned kept = 0;
    for (unsigned i = 0; i < trace_queued; i++) {
        const trace_pending *p = &trace_queue[i];
        if (seq != 0 && p->seq >= seq) {
            trace_queue[kept++] = *p; /* made after the call took effect: after its event */
            continue;
        }
        if (p->is_decision)
            lttng_ust_do_tracepoint(hostmem, critical_decision, p->seq,
                                    hostmem__trace_id(p->m), p->resource, p->level_or_old, p->a,
                                    p->b, p->c, p->d, p->decision, p->waited_ns);
        else
            lttng_ust_do_tracepoint(hostmem, memory_state, p->seq,
                                    hostmem__trace_id(p->m), p->level_or_old, p->new_state, p->a,
                                    p->b);
    }
    trace_queued = kept;
}

void hostmem__trace_address_space(const struct hostmem_manager *m, enum hostmem__as_action action,
                                  uintptr_t start, uint64_t size, int32_t hr,
                                  uint64_t external_bytes)
{
    if (!HOSTMEM_TRACE_ON(address_space))
        return;
    HOSTMEM_TRACE_EMIT(lttng_ust_do_tracepoint(hostmem, address_space, hostmem__trace_seq_next(),
                                       hostmem__trace_id(m), (uint8_t)action, (uint64_t)start, size,
                                       hr, external_bytes));
}

/* ---- write watch and guard pages (W3) ---------------------------------------- */

void hostmem__trace_write_watch(const struct hostmem_manager *m, uintptr_t base, uint64_t size,
                                uint64_t pages, bool reset, bool read, int32_t hr,
                                uint64_t duration_ns)
{
    if (!HOSTMEM_TRACE_ON(write_watch))
        return;
    HOSTMEM_TRACE_EMIT(lttng_ust_do_tracepoint(hostmem, write_watch, hostmem__trace_seq_next(), hostmem__trace_id(m),
                                       (uint64_t)base, size, pages, (uint8_t)reset, (uint8_t)read,
                                       hr, duration_ns));
}

void hostmem__trace_guard_hit(const struct hostmem_manager *m, uintptr_t address, uintptr_t page)
{
    /* Runs in the fault handler: lttng-ust's event path takes no lock (per-CPU
     * ring buffers), but a thread's first event allocates its thread-local
     * storage.  A fault taken while this thread was inside the tracer is not
     * traced (A5): the tracer is not reentered. */
    if (!HOSTMEM_TRACE_ON(guard_hit))
        return;
    HOSTMEM_TRACE_EMIT(lttng_ust_do_tracepoint(hostmem, guard_hit, hostmem__trace_seq_next(), hostmem__trace_id(m),
                                       (uint64_t)address, (uint64_t)page));
}
