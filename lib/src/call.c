/*
 * call.c: one public call in flight (A3).  Every entry point has one shape,
 * begin, worker, finish:
 *
 *     hostmem__call c;
 *     hostmem__call_start(&c, m, op, caller, address, size, level);
 *     return hostmem__call_finish(&c, family_verb(&c, m, ...));
 *
 * so every exit goes through hostmem__call_finish, which emits the trace
 * events and delivers notifications once no internal lock is held.  The
 * worker passes the shared entry checks (hostmem__call_enter) and its own,
 * which return a failure before any state is touched; it takes its locks with
 * the configured timeout (hostmem__call_lock), and once it holds one it has a
 * single way out (goto out / goto undo), never an early return.  A failure
 * records its reason (and errno) in the record on the way out; an OS refusal
 * to restore state makes the manager unavailable (P7).  A reserve-and-commit
 * is two calls in one: its worker holds the reserve's record and records the
 * commit from there (hostmem__call_commit_half); the entry point's finish
 * emits both, the reserve's with the call's outcome.  The
 * docs.shape test keeps the entry points to this shape.
 *
 * Locks: the state lock guards the map's structure, the pools, the arenas and
 * the policy, and is never held across a syscall.  A region's own lock
 * serialises the operations on that region, syscalls included, so calls on
 * different regions run in parallel.  Order: region lock, then state lock.
 * Query takes neither: it reads the map with atomic loads and the region
 * under its seqlock (region.c).
 */
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

#define RELAXED memory_order_relaxed

/* The record of op on c->m, from its start (notices aside). */
static inline void call_record(hostmem__call *c, enum hostmem__op op, uintptr_t caller, uintptr_t address,
                               uint64_t size, int32_t level)
{
    /* Field by field: this runs on every call, query included. */
    c->op = op;
    c->ev = (hostmem__trace_op_event){.manager = (uintptr_t)c->m, .address = address, .size = size,
                                      .caller = caller, .level = level};
    c->traced = hostmem__trace_begin(op, &c->ev);
    c->reason = HOSTMEM_REASON_none;
    c->os_errno = 0;
    c->maker = NULL;
}

void hostmem__call_start(hostmem__call *c, hostmem_manager *m, enum hostmem__op op, uintptr_t caller,
                         uintptr_t address, uint64_t size, int32_t level)
{
    c->m = m;
    call_record(c, op, caller, address, size, level);
    for (unsigned i = 0; i < 3; i++)
        c->notice[i].state = 0;
    c->holding = false;
}

void hostmem__call_commit_half(hostmem__call *c, uintptr_t caller, uintptr_t address, uint64_t size,
                               int32_t level)
{
    /* The reserve's record waits for the call's outcome (hostmem__call_finish);
     * what was decided before the reserve took effect goes out now, the rest
     * with the events, in seq order.  Its notices stay with the call. */
    hostmem__trace_flush_before(c->traced ? c->ev.seq : 0);
    c->holding = c->traced;
    c->held = c->ev;
    call_record(c, HOSTMEM_OP_commit, caller, address, size, level);
}

hostmem__notice *hostmem__call_notice(hostmem__call *c)
{
    for (unsigned i = 0; i < 3; i++)
        if (!c->notice[i].state)
            return &c->notice[i];
    return &c->notice[2]; /* the newest state wins */
}

/* The one exit: events, then notifications (no internal lock is held here). */
HRESULT hostmem__call_finish(hostmem__call *c, HRESULT hr)
{
    hostmem_manager *m = c->m;
    c->ev.hr = hr;
    if (c->holding) {
        /* The reserve half of a reserve-and-commit: its region stands only
         * if the commit did; otherwise it was given back and the reserve
         * failed with the call.  Its event comes first (its seq is lower). */
        c->held.hr = SUCCEEDED(hr) ? S_OK : hr;
        hostmem__trace_flush_before(c->held.seq);
        hostmem__trace_region_op(m, HOSTMEM_OP_reserve, &c->held, false);
    }
    /* Decisions and state changes made under the state lock before the call
     * took effect, its event, then those made after: in seq order. */
    hostmem__trace_flush_before(c->traced ? c->ev.seq : 0);
    if (c->traced)
        hostmem__trace_region_op(m, c->op, &c->ev, true);
    hostmem__trace_flush();
    if (FAILED(hr))
        hostmem__trace_failure(m, c->op, hr, c->reason, c->os_errno, c->ev.address, c->ev.size,
                               c->ev.level);
    for (unsigned i = 0; i < 3; i++)
        if (c->notice[i].state)
            hostmem__notice_deliver(m, &c->notice[i]);
    return hr;
}

/* Entry checks shared by every call on a manager. */
HRESULT hostmem__call_enter(hostmem__call *c)
{
    hostmem_manager *m = c->m;
    if (atomic_load_explicit(&m->unavailable, RELAXED))
        return hostmem__call_fail(c, HOST_E_CLRNOTAVAILABLE, HOSTMEM_REASON_unavailable);
    if (atomic_load_explicit(&m->shutdown, RELAXED))
        return hostmem__call_fail(c, HOST_E_CLRNOTAVAILABLE, HOSTMEM_REASON_shutdown);
    hostmem__trace_poll_statedump(m);
    return S_OK;
}

/* P7: the OS refused to restore state; nothing can be trusted any more. */
HRESULT hostmem__call_unrecoverable(hostmem__call *c, int err)
{
    atomic_store(&c->m->unavailable, 1);
    c->os_errno = err;
    c->reason = HOSTMEM_REASON_rollback_failed;
    return E_FAIL;
}

/* ---- locks ----------------------------------------------------------------- */

HRESULT hostmem__call_lock(hostmem__call *c, pthread_mutex_t *mu)
{
    DWORD ms = c->m->policy.config.lock_timeout_ms;
    int err;
    if (!ms) {
        err = pthread_mutex_lock(mu);
    } else {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += ms / 1000;
        ts.tv_nsec += (long)(ms % 1000) * 1000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        err = pthread_mutex_timedlock(mu, &ts);
    }
    if (err == ETIMEDOUT)
        return hostmem__call_fail(c, HOST_E_TIMEOUT, HOSTMEM_REASON_timeout);
    if (err) { /* a broken mutex: E_FAIL, and unavailable from now on (P7) */
        atomic_store(&c->m->unavailable, 1);
        return hostmem__call_fail(c, E_FAIL, HOSTMEM_REASON_unavailable);
    }
    if (atomic_load_explicit(&c->m->shutdown, RELAXED)) {
        pthread_mutex_unlock(mu);
        return hostmem__call_fail(c, HOST_E_ABANDONED, HOSTMEM_REASON_abandoned);
    }
    return S_OK;
}

/* S3 for a range at a given address: 0 or the failing HRESULT. */
HRESULT hostmem__call_check_range(hostmem__call *c, uintptr_t addr, size_t size)
{
    uintptr_t end = c->m->user_end;
    if (!size)
        return hostmem__call_fail(c, E_INVALIDARG, HOSTMEM_REASON_zero_size);
    if (addr + size < addr || addr + size - 1 + c->m->page_size < addr + size - 1)
        return hostmem__call_fail(c, E_INVALIDARG, HOSTMEM_REASON_range_wraps);
    if (addr >= end || addr + size > end)
        return hostmem__call_fail(c, E_INVALIDARG, HOSTMEM_REASON_beyond_user_space);
    return S_OK;
}
