/*
 * internal.h: the map of the code.  Every cross-file declaration, grouped by
 * the file that defines it, bottom-up along the allocation path:
 *
 *   hostmem.h (contract) -> the entry points, one file per operation family:
 *   alloc.c (reserve, commit, reset), free.c (decommit, release), protect.c
 *   (rules and hostmem_virtual_protect), query.c (lock-free), hosting.c
 *   (memory load, callback, address space, stats), lifecycle.c (create,
 *   destroy, fork); each entry point is begin, worker, finish (call.c:
 *   hostmem__call_start, one worker that checks, locks and works with one
 *   way out of its locks, return hostmem__call_finish) and finds, locks and
 *   edits regions through region.c -> policy.c
 *   (charge, ceilings, memory state) -> arena.c (address space held for small
 *   regions) -> region_map.c (address -> region) -> page_runs.c (page state as runs) -> protect.c (PAGE_* rules) ->
 *   os.h / os_linux*.c (the kernel: os_linux.h names the four files) ;
 *   hresult.c (code tables) ; trace.h (events).
 *   Beside the path: watch.c (write watch), guard.c (guard pages, faults),
 *   com.c (the COM-style binding of <hostmem/mscoree.h>), stack.c (the
 *   host's call stack, T7) and trace_lttng_stack.c (its hostmem:stack event),
 *   assert.c (the internal assertions of debug builds: hostmem__assert below).
 *
 * The manager's heap (IHostMalloc) sits on top, through the public entry
 * points: heap.h (its words, structures and cross-file declarations), heap.c
 * (allocation and free, the fast paths) -> heap_cache.c (per-thread caches,
 * thread exit, turns to Low) -> heap_page.c (segments, spans, bins);
 * heap_life.c (create, stats, trim, destroy).
 *
 * Rule numbers in comments (A3, S4, P7, T1...) are those of docs/ (docs/README.md
 * says which page defines each).
 */
#ifndef HOSTMEM_INTERNAL_H
#define HOSTMEM_INTERNAL_H

#include "codes.h"
#include "os.h"
#include "trace.h"
#include "types.h"

#define HOSTMEM_HIDDEN __attribute__((visibility("hidden")))

/* ---- assert.c: internal assertions ---------------------------------------- */
/* hostmem__assert(cond): the debug tier of checks (lock held, runs canonical,
 * charge = committed pages), compiled in with the HOSTMEM_ASSERT option (the
 * dev and asan presets) and to nothing otherwise, so `cond` must have no
 * effect.  API checks (bad arguments) are never assertions: they return an
 * HRESULT in every build. */
#ifdef HOSTMEM_ASSERT
#define HOSTMEM_ASSERT_ON 1
#define hostmem__assert(cond)                                                                     \
    (__builtin_expect(!!(cond), 1) ? (void)0 : hostmem__assert_fail(#cond, __FILE__, __LINE__))
#else
#define HOSTMEM_ASSERT_ON 0
#define hostmem__assert(cond) ((void)sizeof(!(cond)))
#endif
/* Print the failed condition and abort. */
__attribute__((noreturn, cold)) void hostmem__assert_fail(const char *what, const char *file, int line);
/* This thread holds mu (always true in a child made by fork(), whose
 * handlers run with locks the parent's thread took). */
bool hostmem__lock_held(pthread_mutex_t *mu);
/* Set while the fork() child handler runs (lifecycle.c). */
extern bool hostmem__in_fork_child;

/* ---- meta.c --------------------------------------------------------------- */
/* The manager's own memory, from the OS (never the process heap, A5):
 * `size` zeroed bytes, 16-byte aligned, or NULL.  Any lock may be held. */
void *hostmem__meta_alloc(size_t size);
/* Give back a block of hostmem__meta_alloc(size); NULL is a no-op. */
void hostmem__meta_free(void *p, size_t size);

/* ---- hresult.c ------------------------------------------------------------ */
/* The HRESULT for an errno an OS primitive returned. */
HRESULT hostmem__hr_from_errno(int err);

/* ---- protect.c ------------------------------------------------------------ */
/* S2: S_OK, E_INVALIDARG or E_ACCESSDENIED (with the reason). */
HRESULT hostmem__protect_check(DWORD protect, bool deny_write_execute, enum hostmem__reason *why);
/* The access a valid PAGE_* value grants (GUARD: none). */
unsigned hostmem__protect_access(DWORD protect);
/* The PAGE_* value describing a foreign mapping's access. */
DWORD hostmem__protect_from_access(unsigned access, bool private_file);

/* ---- page_runs.c ---------------------------------------------------------- */
/* One run covering the region in `state`.  0 or ENOMEM. */
int hostmem__runs_init(hostmem__runs *runs, uint32_t state);
void hostmem__runs_free(hostmem__runs *runs);
/* Make room for `extra` more runs; the only step of an update that can fail. */
int hostmem__runs_grow(hostmem__runs *runs, uint32_t extra);
/* Apply `op` to pages [first, first + count) of a region of `npages` pages.
 * Needs room for 2 more runs (hostmem__runs_grow).  Keeps runs canonical
 * (no two neighbours share a state). */
void hostmem__runs_apply(hostmem__runs *runs, size_t npages, size_t first, size_t count,
                         enum hostmem__page_op op, uint32_t state);
/* Index of the run holding `page`. */
uint32_t hostmem__runs_find(const hostmem__runs *runs, size_t page);
/* Run i: first page, page count, state. */
void hostmem__runs_get(const hostmem__runs *runs, size_t npages, uint32_t i, size_t *out_first,
                       size_t *out_count, uint32_t *out_state);
uint32_t hostmem__runs_count(const hostmem__runs *runs);
/* The state of page `pos` < `end`, and in *out_hi where its run ends, at most
 * `end`.  A walk over the runs [first, end) meets:
 *     for (size_t pos = first, hi; pos < end; pos = hi)
 *         st = hostmem__runs_at(runs, npages, pos, end, &hi);
 * (each step finds its place again: the walk may edit the runs as it goes). */
uint32_t hostmem__runs_at(const hostmem__runs *runs, size_t npages, size_t pos, size_t end, size_t *out_hi);
/* One run only: true, and its state in *state (writers: region lock held). */
static inline bool hostmem__runs_single(const hostmem__runs *runs, uint32_t *state)
{
    if (atomic_load_explicit(&((hostmem__runs *)runs)->n, memory_order_relaxed) != 1)
        return false;
    hostmem__run_block *b = atomic_load_explicit(&((hostmem__runs *)runs)->block, memory_order_relaxed);
    *state = HOSTMEM_RUN_STATE(atomic_load_explicit(&b->v[0], memory_order_relaxed));
    return true;
}
/* Runs that fit without growing the array (writers: region lock held). */
uint32_t hostmem__runs_room(const hostmem__runs *runs);
/* Pages of [first, first + count) whose (state & mask) == value. */
size_t hostmem__runs_pages(const hostmem__runs *runs, size_t npages, size_t first, size_t count,
                           uint32_t mask, uint32_t value);
/* Bytes held by a region's run arrays. */
size_t hostmem__runs_bytes(const hostmem__runs *runs);
/* The runs describe a region of `npages` pages canonically: the first starts
 * at page 0, firsts strictly increase below npages, no two neighbours share a
 * state, and they fit their array.  For assertions (a writer's view). */
bool hostmem__runs_canonical(const hostmem__runs *runs, size_t npages);
/* The same, for neighbours among runs [from, to) only (and the ends). */
bool hostmem__runs_canonical_near(const hostmem__runs *runs, size_t npages, uint32_t from, uint32_t to);

/* ---- region_map.c --------------------------------------------------------- */
int hostmem__map_init(hostmem__map *map);
void hostmem__map_fini(hostmem__map *map);
/* Allocate the nodes hostmem__map_set(lo, hi) will need.  0 or ENOMEM; on
 * failure the map reads exactly as before. lo, hi granule-aligned. */
int hostmem__map_prepare(hostmem__map *map, uintptr_t lo, uintptr_t hi);
/* Point every granule of [lo, hi) at `value` (tagged pointer or 0).  Cannot fail
 * after hostmem__map_prepare(lo, hi).  Writers hold the state lock. */
void hostmem__map_set(hostmem__map *map, uintptr_t lo, uintptr_t hi, uintptr_t value);
/* The tagged entry for the granule of addr (0: nothing of ours).  Lock-free. */
uintptr_t hostmem__map_lookup(const hostmem__map *map, uintptr_t addr);
/* The summary of addr's granule (0: none; see types.h), lock-free, from one
 * cache line of the map.  When there is none, the tagged entry in *entry. */
uint64_t hostmem__map_summary(const hostmem__map *map, uintptr_t addr, uintptr_t *entry);
/* The summary word of granule lo when [lo, hi) lies inside one leaf (its
 * other granules' follow, 2 words apart), else NULL.  State lock held. */
_Atomic uint64_t *hostmem__map_summaries(hostmem__map *map, uintptr_t lo, uintptr_t hi);
size_t hostmem__map_bytes(const hostmem__map *map);
/* Clear the granules of [lo, hi) that still hold `value` (others keep theirs).
 * Never allocates.  Writers hold the state lock. */
void hostmem__map_clear(hostmem__map *map, uintptr_t lo, uintptr_t hi, uintptr_t value);
/* The first (forward) or last granule of [lo, hi) with an entry of ours, in
 * *out (granule-aligned).  False when there is none.  Lock-free. */
bool hostmem__map_find(const hostmem__map *map, uintptr_t lo, uintptr_t hi, bool forward,
                       uintptr_t *out);

/* ---- inflight.c (mappings made but not yet in the map; S9) ------ */
/* Open this thread's slot before a mmap that makes a mapping of the manager:
 * [lo, hi) is what it may touch, 0, 0 when the kernel picks the address. */
void hostmem__inflight_begin(uintptr_t lo, uintptr_t hi);
/* The span is now known (a mmap at NULL returned).  No-op without a slot. */
void hostmem__inflight_span(uintptr_t lo, uintptr_t hi);
/* Close this thread's slot, once the mapping is in the map (or gone again). */
void hostmem__inflight_end(void);
/* Wait (bounded) for every open slot whose span may meet [lo, hi); true if
 * there was one, and the caller must ask the kernel again.  Lock-free. */
bool hostmem__inflight_wait(uintptr_t lo, uintptr_t hi);
void hostmem__inflight_reset_in_child(void);
/* A mapping of the manager entered or left the map (after the map changed,
 * state lock held); the generation a query compares before and after it asks
 * the kernel. */
void hostmem__inflight_moved(void);
uint64_t hostmem__inflight_generation(void);

/* ---- arena.c -------------------------------------------------------------- */
/* Regions of at most this many bytes are carved from arenas. */
#define HOSTMEM_ARENA_MAX_REGION ((size_t)1 << 20)
/* Map `size` bytes aligned to `align` (over-reserve and trim).  0, or an
 * errno; *lost when the trimming failed and the leftover could not be
 * unmapped either (the manager must become unavailable, P7). */
int hostmem__reserve_aligned(size_t size, size_t align, uintptr_t *out, bool *lost);
/* Carve `granules` granules for a region (state lock held; may map a new arena,
 * which drops and retakes the lock).  0, or an errno (and *lost as above). */
int hostmem__arena_carve(struct hostmem_manager *m, uint32_t granules, uintptr_t *out_base,
                         hostmem__arena **out_arena, bool *lost);
/* The arena whose free granules cover [lo, hi) exactly, else NULL (state lock held). */
hostmem__arena *hostmem__arena_free_at(struct hostmem_manager *m, uintptr_t lo, uintptr_t hi);
void hostmem__arena_mark(hostmem__arena *a, uintptr_t lo, uintptr_t hi, bool used);
/* First address >= addr inside arena `a` that belongs to a region, or the arena end. */
uintptr_t hostmem__arena_next_used(const hostmem__arena *a, uintptr_t addr);
/* What destroy could not give back to the kernel (reported in manager_destroy). */
typedef struct hostmem__unreturned {
    uint64_t mappings, bytes;
} hostmem__unreturned;
/* Unmap [addr, addr + size) at destroy, trying again when the kernel refuses
 * (munmap fails with ENOMEM when it must split a mapping at the map-count
 * limit, which another thread may relieve).  Counts a failure in *lost. */
void hostmem__release_retry(void *addr, size_t size, hostmem__unreturned *lost);
void hostmem__arena_destroy_all(struct hostmem_manager *m, hostmem__unreturned *lost);
/* A reservation at [lo, hi) (granule-aligned) that is not inside one arena's
 * free granules (S4: what query calls free is reservable, across an arena's
 * edge too).  State lock held.  ENOENT: it touches no arena (an ordinary
 * mapping of its own); EEXIST: it touches a granule of a region; 0: every
 * arena granule it touches is free, and they are now taken (marked used and
 * gone) for a region of its own. */
int hostmem__arena_claim(struct hostmem_manager *m, uintptr_t lo, uintptr_t hi);
/* Where free space that ends at `end` really ends (S9: RegionSize runs to the
 * next mapping): across free arena granules and the unmapped space beside
 * arenas, up to a region, a foreign mapping or the end of user space.
 * Lock-free; asks the kernel about space that is not ours. */
uintptr_t hostmem__arena_free_extend(struct hostmem_manager *m, uintptr_t end);
/* Undo hostmem__arena_claim(lo, hi) (state lock held). */
void hostmem__arena_unclaim(struct hostmem_manager *m, uintptr_t lo, uintptr_t hi);
/* After a claim: map the parts of [lo, end) outside the arenas (no lock held;
 * end page-aligned), or with `unmap`, unmap them again.  0, or an errno (on
 * failure what was mapped is unmapped again; *lost if that failed too). */
int hostmem__arena_map_around(struct hostmem_manager *m, uintptr_t lo, uintptr_t end, bool unmap,
                              bool *lost);

/* ---- policy.c ------------------------------------------------------------- */
/* A notification to deliver once every internal lock is dropped. */
typedef struct hostmem__notice {
    void (*fn)(void *, EMemoryAvailable);
    void *context;
    int state;       /* EMemoryAvailable, 0 = nothing to deliver */
    uint64_t generation;
    bool forced;     /* the Low of P2: delivered even if Low was the last state told */
} hostmem__notice;

void hostmem__policy_init(hostmem__policy *p, const hostmem_config *config);
/* Decide a commit of `bytes` at `level` (P1) and, when granted, charge
 * it (in flight until settled).  State lock held.  A grant under a limit
 * emits its critical_decision event here; a denial only once the call gives
 * up (hostmem__policy_denied): P2 may look again, and a request has one
 * decision. */
enum hostmem__decision hostmem__policy_charge(struct hostmem_manager *m,
                                              EMemoryCriticalLevel level, size_t bytes,
                                              uint64_t waited_ns);
/* The commit of `bytes` at `level` is denied for good, after `waited_ns`
 * of waiting: its critical_decision event.  State lock held. */
void hostmem__policy_denied(struct hostmem_manager *m, EMemoryCriticalLevel level, size_t bytes,
                            uint64_t waited_ns);
/* After the OS granted a charge or a reservation: raise the peaks and follow
 * the memory state (P4).  `locked`: the caller holds the state lock. */
void hostmem__policy_settle(struct hostmem_manager *m, bool locked, hostmem__notice *notice);
/* Without a commit limit (hostmem__policy_unlimited) P1 decides nothing and
 * there is no memory state to follow and no waiter (P2 waits only under a
 * limit): a commit is charged, and a decommit uncharged, with one atomic
 * add and no state lock. */
static inline bool hostmem__policy_unlimited(const hostmem__policy *p) { return !p->config.commit_limit; }
void hostmem__policy_charge_unlimited(struct hostmem_manager *m, size_t bytes);
void hostmem__policy_uncharge_unlimited(struct hostmem_manager *m, size_t bytes);
/* Give back `bytes` of charge (state lock held); wakes eProcessCritical waiters. */
void hostmem__policy_uncharge(struct hostmem_manager *m, size_t bytes, hostmem__notice *notice);
/* The Low notice P2 sends before a denial (state lock held). */
void hostmem__policy_low_notice(struct hostmem_manager *m, hostmem__notice *notice);
/* Wait (state lock held) until charge is given back or `deadline_ns` passes.
 * HOST_E_ABANDONED when the manager shuts down meanwhile, else S_OK. */
HRESULT hostmem__policy_wait(struct hostmem_manager *m, uint64_t deadline_ns);
/* Admit `bytes` more address space at `level` (P3) and count them as
 * reserved, state lock held.  S_OK or E_OUTOFMEMORY. */
HRESULT hostmem__policy_reserve(struct hostmem_manager *m, EMemoryCriticalLevel level,
                                size_t bytes);
void hostmem__policy_unreserve(struct hostmem_manager *m, size_t bytes);
/* Current EMemoryAvailable (P4); without a limit, from the system's load. */
int hostmem__policy_state(const hostmem__policy *p);
/* The notice for the state at registration (state lock held). */
void hostmem__policy_register(struct hostmem_manager *m, void (*fn)(void *, EMemoryAvailable),
                              void *context, hostmem__notice *notice);
/* Deliver a notice (no internal lock held). */
void hostmem__notice_deliver(struct hostmem_manager *m, hostmem__notice *notice);
uint64_t hostmem__now_ns(void);

/* ---- call.c: one public call in flight (A3) ------------------------------- */
/* Every entry point is three statements: the record, hostmem__call_start,
 * and return hostmem__call_finish(&c, worker(&c, ...)).  The worker runs
 * hostmem__call_enter (on a manager) and its checks, then the work. */
typedef struct hostmem__call {
    hostmem_manager *m;
    enum hostmem__op op;
    bool traced;
    hostmem__trace_op_event ev; /* the region event, filled as the call goes */
    hostmem__notice notice[3];
    enum hostmem__reason reason;
    int os_errno;
    hostmem__region *maker; /* the region this reserve-and-commit is making */
    /* A reserve-and-commit's reserve event, held until the commit's outcome
     * is known (alloc.c): it carries the call's failure if the commit fails
     * and the new region is given back. */
    bool holding;
    hostmem__trace_op_event held;
} hostmem__call;

void hostmem__call_start(hostmem__call *c, hostmem_manager *m, enum hostmem__op op, uintptr_t caller,
                         uintptr_t address, uint64_t size, int32_t level);
/* A reserve-and-commit's commit half: the reserve's record (c->ev) is held,
 * and c records the commit from here on. */
void hostmem__call_commit_half(hostmem__call *c, uintptr_t caller, uintptr_t address, uint64_t size,
                               int32_t level);
/* A free notice slot of the call (the newest state wins when all are used). */
hostmem__notice *hostmem__call_notice(hostmem__call *c);
/* The one exit: events, then notifications (no internal lock is held here). */
HRESULT hostmem__call_finish(hostmem__call *c, HRESULT hr);
/* Entry checks shared by every call on a manager (unavailable, shut down). */
HRESULT hostmem__call_enter(hostmem__call *c);
/* P7: the OS refused to restore state; E_FAIL, unavailable from now on. */
HRESULT hostmem__call_unrecoverable(hostmem__call *c, int err);
/* Lock mu within the configured timeout: S_OK, HOST_E_TIMEOUT,
 * HOST_E_ABANDONED (shut down meanwhile) or E_FAIL (P7). */
HRESULT hostmem__call_lock(hostmem__call *c, pthread_mutex_t *mu);
/* S3 for a range at a given address: S_OK or the failing HRESULT. */
HRESULT hostmem__call_check_range(hostmem__call *c, uintptr_t addr, size_t size);

/* Where the call takes effect (under the lock that orders it): its event's seq. */
static inline void hostmem__call_order(hostmem__call *c)
{
    if (c->traced)
        hostmem__trace_order(&c->ev, c->op);
}

/* Record why the call fails and return hr. */
static inline HRESULT hostmem__call_fail(hostmem__call *c, HRESULT hr, enum hostmem__reason reason)
{
    c->reason = reason;
    return hr;
}

/* Record an OS failure and return its HRESULT. */
static inline HRESULT hostmem__call_fail_os(hostmem__call *c, int err, enum hostmem__reason reason)
{
    c->os_errno = err;
    c->reason = reason;
    return hostmem__hr_from_errno(err);
}

static inline size_t hostmem__page_down(const hostmem_manager *m, uintptr_t a)
{
    return a & ~(m->page_size - 1);
}
static inline uintptr_t hostmem__round_up(uintptr_t a, size_t to)
{
    return (a + to - 1) & ~(uintptr_t)(to - 1);
}

/* ---- region.c: region life and the region seqlock -------------------------- */
/* Set while this thread is inside a region's seqlock write section, so a
 * query from a signal handler that interrupted it does not wait for itself. */
extern __thread int hostmem__region_writing __attribute__((tls_model("initial-exec")));
/* The heap (heap.h) a reserve on this thread is made for, or NULL: the new
 * region carries it from birth, so a region whose maker never finished (its
 * thread does not exist in a forked child) is still known to be the heap's. */
extern __thread const void *hostmem__region_owner_next __attribute__((tls_model("initial-exec")));
/* The host's return address for a call hostmem makes on the host's behalf
 * (the heap's own regions, made inside a hostmem_malloc_* call): the next
 * public call on this thread reports it as its caller -- the stack of T7
 * starts there too -- and clears it, so a nested call of the host's own (a
 * notification callback's) reports its own.  hostmem__caller(own): the
 * caller to report, `own` being the entry point's return address. */
extern __thread uintptr_t hostmem__caller_next __attribute__((tls_model("initial-exec")));
static inline uintptr_t hostmem__caller(uintptr_t own)
{
    uintptr_t c = hostmem__caller_next;
    if (__builtin_expect(c == 0, 1))
        return own;
    hostmem__caller_next = 0;
    return c;
}
/* fork() (lifecycle.c) takes every heap lock before the managers' locks
 * (heap_cache.c); the heap never holds one across a call into a manager. */
void hostmem__heap_fork_prepare(void);
void hostmem__heap_fork_parent(void);
void hostmem__heap_fork_child(void);

/* ThreadSanitizer does not model fences (and warns about them); every field a
 * reader touches is atomic, so under it a compiler barrier is enough. */
#ifdef __SANITIZE_THREAD__
#define HOSTMEM_SEQ_FENCE(order) atomic_signal_fence(order)
#else
#define HOSTMEM_SEQ_FENCE(order) atomic_thread_fence(order)
#endif

/* A region's summaries in the map (types.h): hide them all before a change
 * (several granules are not stored at once, and a reader must never see the
 * new state at one and the old at another), publish them again after, from
 * the region's fields and runs.  A region no longer live has left the map,
 * whose stores cleared its summaries: it forgets where they were. */
void hostmem__region_summary_hide(hostmem__region *r);
void hostmem__region_summary_publish(hostmem__region *r);

/* Around every change of a region's fields or runs (its seqlock; region lock
 * held).  The region lock makes this the only writer of `seq`, so it is a
 * plain load and store: no locked instruction. */
static inline void hostmem__region_write_begin(hostmem__region *r)
{
    hostmem__assert(hostmem__lock_held(&r->lock));
    hostmem__region_writing = 1;
    atomic_store_explicit(&r->seq, atomic_load_explicit(&r->seq, memory_order_relaxed) + 1,
                          memory_order_relaxed);
    HOSTMEM_SEQ_FENCE(memory_order_release);
    if (r->summaries > 1 && r->summary_value)
        hostmem__region_summary_hide(r);
}
static inline void hostmem__region_write_end(hostmem__region *r)
{
    if (r->summary)
        hostmem__region_summary_publish(r);
    atomic_store_explicit(&r->seq, atomic_load_explicit(&r->seq, memory_order_relaxed) + 1,
                          memory_order_release);
    hostmem__region_writing = 0;
}

static inline uintptr_t hostmem__region_end(const hostmem__region *r)
{
    return atomic_load_explicit(&r->base, memory_order_relaxed) +
           atomic_load_explicit(&r->size, memory_order_relaxed);
}
static inline size_t hostmem__region_pages(const hostmem_manager *m, const hostmem__region *r)
{
    return atomic_load_explicit(&r->size, memory_order_relaxed) >> m->page_shift;
}
static inline void *hostmem__region_page_addr(const hostmem_manager *m, const hostmem__region *r,
                                              size_t page)
{
    return (void *)(atomic_load_explicit(&r->base, memory_order_relaxed) + (page << m->page_shift));
}

/* Find the region holding addr and lock it.  NULL with *hr = S_OK: addr is in
 * no region of this manager.  NULL with a failed *hr: the lock failed. */
hostmem__region *hostmem__region_lock(hostmem__call *c, uintptr_t addr, HRESULT *hr);
/* As hostmem__region_lock, outside a call (watch.c, guard.c): *why says why
 * the lock failed. */
hostmem__region *hostmem__region_acquire(struct hostmem_manager *m, uintptr_t addr, HRESULT *hr,
                                         enum hostmem__reason *why);
/* The region holding every page touching [addr, addr + size), locked, and
 * the range's first page index and page count in it.  NULL with a failed *hr
 * (not_in_region, crosses_region, or the lock's failure): no lock held. */
hostmem__region *hostmem__region_lock_range(hostmem__call *c, uintptr_t addr, size_t size, size_t *first,
                                            size_t *count, HRESULT *hr);
/* Put the kernel's view of pages [first, first + count) back to what the runs
 * say (they still describe the state before the failed call).  0 or errno. */
int hostmem__region_restore_access(hostmem_manager *m, hostmem__region *r, size_t first, size_t count);
/* Put r into the map over granules [lo, hi) (after hostmem__map_prepare;
 * state lock and r's lock held) and publish its summaries. */
void hostmem__region_enter_map(hostmem_manager *m, hostmem__region *r, uintptr_t lo, uintptr_t hi);
/* A region struct from the pool, or a new one (state lock held); NULL: no memory. */
hostmem__region *hostmem__region_new(hostmem_manager *m);
/* Back to the pool (state lock held; r is dead and unlocked). */
void hostmem__region_recycle(hostmem_manager *m, hostmem__region *r);
/* What a region of its own unmaps at release: its pages, and the rest of its
 * last granule when that granule came from an arena. */
size_t hostmem__region_unmap_bytes(const hostmem__region *r);
/* The region's committed page count is the sum of its committed runs
 * (region lock held).  For assertions: regions of more than
 * HOSTMEM_ASSERT_RUNS runs pass unchecked (the sum is linear in the runs, and
 * a checkerboard of 30,000 would make every commit quadratic). */
#define HOSTMEM_ASSERT_RUNS 256u
bool hostmem__region_charge_ok(const hostmem_manager *m, const hostmem__region *r);
/* The manager's charge is the sum of its live regions' committed pages (no
 * call in flight: destroy).  For assertions. */
bool hostmem__region_total_ok(const hostmem_manager *m);
/* Every live region of m, for the region_state statedump.  fn runs with no
 * internal lock held (it emits events, A5). */
void hostmem__region_foreach(struct hostmem_manager *m,
                             void (*fn)(void *ctx, const hostmem__region_info *info), void *ctx);

/* ---- alloc.c: hostmem_virtual_alloc (S4, S5, P1, P2) ----------------------- */
/* Entry point only: reserve, commit, reset and reserve-and-commit are file-local. */

/* ---- free.c: hostmem_virtual_free (S6, S7) --------------------------------- */
/* Give a region's address space back (region lock held, r still live).  On
 * failure nothing changed.  Also undoes a failed reserve-and-commit. */
HRESULT hostmem__free_region(hostmem__call *c, hostmem__region *r);

/* ---- query.c, hosting.c, lifecycle.c: entry points only -------------------- */
/* query.c: hostmem_virtual_query (S9), lock-free.  hosting.c: memory load,
 * notification callback, address-space calls, stats (P4-P6).  lifecycle.c:
 * config, create, shutdown, destroy (A3) and the fork handlers. */

/* ---- watch.c: write watch (W1) ----------------------------------- */
/* Before pages [first, first + count) of a write-watch region are decommitted
 * (region lock held): mark the pages the kernel saw written in the runs, since
 * the new mapping forgets them.  0 or errno (nothing else changed but marks). */
int hostmem__watch_latch(struct hostmem_manager *m, hostmem__region *r, size_t first, size_t count);
/* Protect the pages of [first, first + count) of a write-watch region whose
 * committed state is `committed` (region lock held): afterwards none of them
 * reads as written.  The kernel keeps a mark per protected page, page tables
 * included, so only committed pages are ever protected: a reservation costs
 * nothing per page until its pages are committed.  0 or errno. */
int hostmem__watch_protect(struct hostmem_manager *m, hostmem__region *r, size_t first, size_t count,
                           bool committed);
/* Bytes of live write-watch regions and committed PAGE_GUARD pages (state lock held). */
void hostmem__win32_stats(struct hostmem_manager *m, SIZE_T *watched_bytes, SIZE_T *guard_pages);

/* ---- guard.c: guard pages and faults (W2) ------------------------ */
/* Room in r's page runs (r's lock held) for `extra` entries of the calling
 * operation, plus two for every guard page r holds or the call may add
 * (`adding`), so that the fault handler can clear each guard page alone
 * without allocating.  Every operation that edits r's runs takes its room
 * here.  0 or ENOMEM. */
int hostmem__region_runs_room(struct hostmem_manager *m, hostmem__region *r, uint64_t extra, size_t adding);
/* A call changed r's pages [lo, lo + bytes) (commit, decommit, protect): a
 * fault there from now on is judged by the new state, not as a late report
 * of a guard hit. */
static inline void hostmem__guard_forget(hostmem__region *r, const void *lo, size_t bytes)
{
    if (!atomic_load_explicit(&r->guard_epoch, memory_order_relaxed))
        return; /* never hit: nothing to forget (every commit passes here) */
    for (unsigned i = 0; i < HOSTMEM_GUARD_RECENT; i++) {
        uintptr_t page = atomic_load_explicit(&r->guard_recent[i], memory_order_relaxed);
        if (page - (uintptr_t)lo < bytes)
            atomic_store_explicit(&r->guard_recent[i], 0, memory_order_relaxed);
    }
}
/* Make m's regions visible to hostmem_handle_fault() / take them away
 * (unregister returns once no fault handler can still read m). */
void hostmem__fault_register(struct hostmem_manager *m);
void hostmem__fault_unregister(struct hostmem_manager *m);
/* Install the process-wide chaining SIGSEGV handler (config.guard_handler),
 * once.  0 or errno. */
int hostmem__guard_install(void);

/* ---- stack.c: the host's call stack (T7) ---------------------------------- */
/* Nonzero once any manager records stacks: the facade tests this first, so
 * with stacks off an event pays one load and one branch. */
extern int hostmem__stack_any;
static inline bool hostmem__stack_on(void)
{
    return __builtin_expect(__atomic_load_n(&hostmem__stack_any, __ATOMIC_RELAXED), 0);
}
/* HOSTMEM_STACKS / HOSTMEM_STACKS_UNWIND, when set, into *cfg (at create). */
void hostmem__stack_configure(hostmem_config *cfg);
bool hostmem__stack_config_valid(const hostmem_config *cfg);
/* A manager with cfg starts: load the unwinder if it needs one. */
void hostmem__stack_enable(const hostmem_config *cfg);
/* Up to cfg->stack_depth return addresses into out (room for
 * HOSTMEM_STACK_DEPTH_MAX), innermost first, from `caller` (the public
 * entry's return address) outwards; `caller` alone when the walk cannot reach
 * it.  0 when stacks are off. */
unsigned hostmem__stack_capture(const hostmem_config *cfg, uintptr_t caller, uint64_t *out);

/* ---- trace_lttng_stack.c: the hostmem:stack event (LTTng builds) ---------- */
/* Called by the facade inside its re-entry guard, with the seq of the event
 * it is about to emit: a reserve, a plain commit, a heap allocation. */
void hostmem__trace_stack_op(const struct hostmem_manager *m, enum hostmem__op op,
                             uint32_t alloc_type, uint64_t seq, uintptr_t caller);
struct hostmem_malloc;
void hostmem__trace_stack_malloc(const struct hostmem_malloc *h, uint64_t seq, uintptr_t caller);

#endif
