/*
 * policy.c: commit charge, critical-level ceilings, memory state and the
 * notification callback (P1-P6).  Everything here runs with the
 * manager's state lock held and makes no syscall; notices are handed back to
 * the caller, which delivers them once every internal lock is dropped, so the
 * callback may call back into the manager.
 */
#include <errno.h>
#include <time.h>

#include "internal.h"

uint64_t hostmem__now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void hostmem__policy_init(hostmem__policy *p, const hostmem_config *config)
{
    *p = (hostmem__policy){.config = *config};
    atomic_init(&p->delivered, 0);
    atomic_init(&p->peak_committed, 0);
    atomic_init(&p->peak_reserved, 0);
    atomic_init(&p->reserved_now, 0);
}

/* limit * percent / 100 without overflow, for any size_t limit. */
static size_t policy_percent_of(size_t limit, DWORD percent)
{
    return (size_t)((unsigned __int128)limit * percent / 100);
}

static size_t policy_ceiling(const hostmem_config *c, size_t limit, EMemoryCriticalLevel level)
{
    switch (level) {
    case eTaskCritical:
        return policy_percent_of(limit, c->task_percent);
    case eAppDomainCritical:
        return policy_percent_of(limit, c->appdomain_percent);
    default:
        return limit;
    }
}

static int policy_state_for(const hostmem_config *c, size_t used, size_t limit)
{
    unsigned __int128 scaled = (unsigned __int128)used * 100;
    if (scaled >= (unsigned __int128)limit * c->low_memory_percent)
        return eMemoryAvailableLow;
    if (scaled < (unsigned __int128)limit * c->high_memory_percent)
        return eMemoryAvailableHigh;
    return eMemoryAvailableNeutral;
}

int hostmem__policy_state(const hostmem__policy *p)
{
    if (p->config.commit_limit)
        return policy_state_for(&p->config, p->committed, p->config.commit_limit);
    uint64_t total, avail;
    if (hostmem__os_meminfo(&total, &avail) || !total)
        return eMemoryAvailableNeutral;
    return policy_state_for(&p->config, (size_t)(total - avail), (size_t)total);
}

/* Publish the totals for readers that take no lock (the trace). */
static void policy_publish(hostmem__policy *p)
{
    atomic_store_explicit(&p->reserved_now, p->reserved, memory_order_relaxed);
}

static void policy_make_notice(hostmem__policy *p, int state, bool forced, hostmem__notice *notice)
{
    if (!p->callback)
        return;
    notice->fn = p->callback;
    notice->context = p->callback_context;
    notice->state = state;
    notice->forced = forced;
    notice->generation = ++p->generation;
}

/* After the charge moved: trace a state change and tell the callback. */
static void policy_state_update(struct hostmem_manager *m, hostmem__notice *notice)
{
    hostmem__policy *p = &m->policy;
    if (!p->config.commit_limit)
        return;
    int now = policy_state_for(&p->config, p->committed, p->config.commit_limit);
    if (now == p->state)
        return;
    hostmem__trace_memory_state(m, p->state, now, p->committed, p->config.commit_limit);
    p->state = now;
    if (now == eMemoryAvailableLow) /* heaps give back free pages at their next call (H3) */
        atomic_fetch_add_explicit(&p->low_count, 1, memory_order_relaxed);
    policy_make_notice(p, now, false, notice);
}

enum hostmem__decision hostmem__policy_charge(struct hostmem_manager *m,
                                              EMemoryCriticalLevel level, size_t bytes,
                                              uint64_t waited_ns)
{
    hostmem__assert(hostmem__lock_held(&m->state_lock));
    hostmem__policy *p = &m->policy;
    size_t limit = p->config.commit_limit;
    enum hostmem__decision d = HOSTMEM_DECISION_granted;
    if (limit) {
        size_t cap = policy_ceiling(&p->config, limit, level);
        size_t task = policy_ceiling(&p->config, limit, eTaskCritical);
        bool fits = bytes <= cap && p->committed <= cap - bytes;
        if (!fits)
            d = HOSTMEM_DECISION_denied;
        else if (p->committed + bytes > task)
            d = HOSTMEM_DECISION_granted_from_reserve;
        if (d != HOSTMEM_DECISION_denied)
            hostmem__trace_decision(m, HOSTMEM_RESOURCE_commit, level, bytes, p->committed, cap, limit,
                                    d, waited_ns);
    }
    if (d != HOSTMEM_DECISION_denied) {
        /* In flight: peaks and the memory state move only once the OS said
         * yes (hostmem__policy_settle), so a refused call changes nothing. */
        p->committed += bytes;
        policy_publish(p);
    }
    return d;
}

void hostmem__policy_denied(struct hostmem_manager *m, EMemoryCriticalLevel level, size_t bytes,
                            uint64_t waited_ns)
{
    hostmem__assert(hostmem__lock_held(&m->state_lock));
    hostmem__policy *p = &m->policy;
    size_t limit = p->config.commit_limit;
    if (limit)
        hostmem__trace_decision(m, HOSTMEM_RESOURCE_commit, level, bytes, p->committed,
                                policy_ceiling(&p->config, limit, level), limit,
                                HOSTMEM_DECISION_denied, waited_ns);
}

void hostmem__policy_charge_unlimited(struct hostmem_manager *m, size_t bytes)
{
    hostmem__assert(!m->policy.config.commit_limit);
    atomic_fetch_add_explicit(&m->policy.committed, bytes, memory_order_relaxed);
}

void hostmem__policy_uncharge_unlimited(struct hostmem_manager *m, size_t bytes)
{
    hostmem__assert(!m->policy.config.commit_limit);
    atomic_fetch_sub_explicit(&m->policy.committed, bytes, memory_order_relaxed);
}

void hostmem__policy_uncharge(struct hostmem_manager *m, size_t bytes, hostmem__notice *notice)
{
    hostmem__assert(hostmem__lock_held(&m->state_lock));
    if (!bytes)
        return;
    m->policy.committed -= bytes;
    policy_publish(&m->policy);
    if (atomic_load_explicit(&m->waiters, memory_order_relaxed))
        pthread_cond_broadcast(&m->freed);
    policy_state_update(m, notice);
}

void hostmem__policy_low_notice(struct hostmem_manager *m, hostmem__notice *notice)
{
    hostmem__assert(hostmem__lock_held(&m->state_lock));
    atomic_fetch_add_explicit(&m->policy.low_count, 1, memory_order_relaxed);
    policy_make_notice(&m->policy, eMemoryAvailableLow, true, notice);
}

HRESULT hostmem__policy_wait(struct hostmem_manager *m, uint64_t deadline_ns)
{
    /* The condition variable runs on CLOCK_MONOTONIC (lifecycle.c sets it up). */
    struct timespec ts = {.tv_sec = (time_t)(deadline_ns / 1000000000u),
                          .tv_nsec = (long)(deadline_ns % 1000000000u)};
    hostmem__assert(hostmem__lock_held(&m->state_lock));
    if (atomic_load(&m->shutdown))
        return HOST_E_ABANDONED;
    atomic_fetch_add(&m->waiters, 1);
    pthread_cond_timedwait(&m->freed, &m->state_lock, &ts);
    atomic_fetch_sub(&m->waiters, 1);
    return atomic_load(&m->shutdown) ? HOST_E_ABANDONED : S_OK;
}

HRESULT hostmem__policy_reserve(struct hostmem_manager *m, EMemoryCriticalLevel level, size_t bytes)
{
    hostmem__assert(hostmem__lock_held(&m->state_lock));
    hostmem__policy *p = &m->policy;
    size_t limit = p->config.address_space_limit;
    if (limit) {
        size_t used = p->reserved + p->external;
        size_t cap = policy_ceiling(&p->config, limit, level);
        size_t task = policy_ceiling(&p->config, limit, eTaskCritical);
        enum hostmem__decision d = HOSTMEM_DECISION_granted;
        if (bytes > cap || used > cap - bytes)
            d = HOSTMEM_DECISION_denied;
        else if (used + bytes > task)
            d = HOSTMEM_DECISION_granted_from_reserve;
        hostmem__trace_decision(m, HOSTMEM_RESOURCE_address_space, level, bytes, used, cap, limit,
                                d, 0);
        if (d == HOSTMEM_DECISION_denied)
            return E_OUTOFMEMORY;
    }
    p->reserved += bytes;
    policy_publish(p);
    return S_OK;
}

static void policy_raise_to(_Atomic size_t *peak, size_t value)
{
    size_t seen = atomic_load_explicit(peak, memory_order_relaxed);
    while (seen < value &&
           !atomic_compare_exchange_weak_explicit(peak, &seen, value, memory_order_relaxed,
                                                  memory_order_relaxed))
        ;
}

void hostmem__policy_settle(struct hostmem_manager *m, bool locked, hostmem__notice *notice)
{
    hostmem__policy *p = &m->policy;
    policy_raise_to(&p->peak_committed, atomic_load_explicit(&p->committed, memory_order_relaxed));
    policy_raise_to(&p->peak_reserved, atomic_load_explicit(&p->reserved_now, memory_order_relaxed));
    if (!p->config.commit_limit)
        return; /* no limit: no memory state to follow */
    if (!locked)
        pthread_mutex_lock(&m->state_lock);
    hostmem__assert(hostmem__lock_held(&m->state_lock));
    policy_state_update(m, notice);
    if (!locked)
        pthread_mutex_unlock(&m->state_lock);
}

void hostmem__policy_unreserve(struct hostmem_manager *m, size_t bytes)
{
    hostmem__assert(hostmem__lock_held(&m->state_lock));
    m->policy.reserved -= bytes;
    policy_publish(&m->policy);
}

void hostmem__policy_register(struct hostmem_manager *m, void (*fn)(void *, EMemoryAvailable),
                              void *context, hostmem__notice *notice)
{
    hostmem__policy *p = &m->policy;
    p->callback = fn;
    p->callback_context = context;
    int now = hostmem__policy_state(p);
    if (p->config.commit_limit)
        p->state = now;
    policy_make_notice(p, now, true, notice);
}

void hostmem__notice_deliver(struct hostmem_manager *m, hostmem__notice *notice)
{
    if (!notice->state)
        return;
    /* Two threads may deliver out of order: a state change older than one
     * already told is stale and dropped.  A forced notice always goes. */
    uint64_t seen = atomic_load(&m->policy.delivered);
    while (seen < notice->generation &&
           !atomic_compare_exchange_weak(&m->policy.delivered, &seen, notice->generation))
        ;
    if (notice->forced || seen < notice->generation)
        notice->fn(notice->context, (EMemoryAvailable)notice->state);
    notice->state = 0;
}
