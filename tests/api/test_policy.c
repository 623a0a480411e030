/* P1-P6: critical-level ceilings, notifications, waits, memory load,
 * address-space accounting; shutdown of a waiting call. */
#include "util.h"

#include <pthread.h>
#include <stdatomic.h>
#include <sys/syscall.h>

TestSuite(p1_ceilings, .fini = hm_leak_check);
TestSuite(p2_low_before_denial, .fini = hm_leak_check, .timeout = 60);
TestSuite(p3_address_space, .fini = hm_leak_check);
TestSuite(p4_notifications, .fini = hm_leak_check, .timeout = 60);
TestSuite(p5_memory_load, .fini = hm_leak_check);
TestSuite(p6_external, .fini = hm_leak_check);

static hostmem_manager *mk_cfg(size_t commit_limit, size_t as_limit, DWORD wait_ms)
{
    hostmem_config c;
    hostmem_config_init(&c);
    c.commit_limit = commit_limit;
    c.address_space_limit = as_limit;
    c.process_critical_wait_ms = wait_ms;
    return mk(&c);
}

static void *commit_at(hostmem_manager *m, void *addr, size_t size, EMemoryCriticalLevel level, HRESULT want)
{
    void *p = (void *)0x1;
    HRESULT hr = hostmem_virtual_alloc(m, addr, size, MEM_COMMIT, PAGE_READWRITE, level, &p);
    cr_assert_eq(hr, want, "commit %zu bytes at level %d: %s, want %s", size, (int)level,
                 hostmem_hresult_name(hr), hostmem_hresult_name(want));
    if (FAILED(hr))
        cr_assert_null(p);
    return p;
}

static void *reserve_at(hostmem_manager *m, size_t size, EMemoryCriticalLevel level, HRESULT want)
{
    void *p = (void *)0x1;
    HRESULT hr = hostmem_virtual_alloc(m, NULL, size, MEM_RESERVE, PAGE_READWRITE, level, &p);
    cr_assert_eq(hr, want, "reserve %zu bytes at level %d: %s, want %s", size, (int)level,
                 hostmem_hresult_name(hr), hostmem_hresult_name(want));
    if (FAILED(hr))
        cr_assert_null(p);
    return p;
}

/* ---- P1 ------------------------------------------------------------------------- */
Test(p1_ceilings, each_level_up_to_its_ceiling)
{
    size_t P = pg(), L = 100 * P;
    hostmem_manager *m = mk_cfg(L, 0, 0);
    char *r = reserve(m, NULL, 128 * P);
    commit_at(m, r, 90 * P, eTaskCritical, S_OK);
    commit_at(m, r + 90 * P, P, eTaskCritical, E_OUTOFMEMORY);
    cr_assert_eq(st(m).committed_bytes, 90 * P);
    commit_at(m, r + 90 * P, 7 * P, eAppDomainCritical, S_OK);
    commit_at(m, r + 97 * P, P, eAppDomainCritical, E_OUTOFMEMORY);
    commit_at(m, r + 97 * P, P, eTaskCritical, E_OUTOFMEMORY);
    cr_assert_eq(st(m).committed_bytes, 97 * P);
    commit_at(m, r + 97 * P, 3 * P, eProcessCritical, S_OK);
    commit_at(m, r + 100 * P, P, eProcessCritical, E_OUTOFMEMORY);
    cr_assert_eq(q(m, r + 100 * P).State, MEM_RESERVE);
    hostmem_stats s = st(m);
    cr_assert_eq(s.committed_bytes, L);
    cr_assert_eq(s.peak_committed_bytes, L);
    hostmem_destroy(m);
}

Test(p1_ceilings, one_request_over_the_ceiling_is_denied_whole)
{
    size_t P = pg(), L = 100 * P;
    hostmem_manager *m = mk_cfg(L, 0, 0);
    char *r = reserve(m, NULL, 128 * P);
    commit_at(m, r, 91 * P, eTaskCritical, E_OUTOFMEMORY);
    cr_assert_eq(q(m, r).State, MEM_RESERVE, "a denied commit committed pages");
    cr_assert_eq(st(m).committed_bytes, 0);
    cr_assert_eq(st(m).peak_committed_bytes, 0);
    commit_at(m, r, 101 * P, eProcessCritical, E_OUTOFMEMORY);
    cr_assert_eq(st(m).committed_bytes, 0);
    hostmem_destroy(m);
}

Test(p1_ceilings, byte_exact_integer_ceilings)
{
    size_t P = pg(), L = 10 * P;
    /* task: 10P * 90 / 100 = 9P exactly; appdomain: 10P * 97 / 100 < 10P. */
    hostmem_manager *m = mk_cfg(L, 0, 0);
    char *r = reserve(m, NULL, 16 * P);
    commit_at(m, r, 9 * P, eTaskCritical, S_OK);
    commit_at(m, r + 9 * P, P, eTaskCritical, E_OUTOFMEMORY);
    commit_at(m, r + 9 * P, P, eAppDomainCritical, E_OUTOFMEMORY);
    commit_at(m, r + 9 * P, P, eProcessCritical, S_OK);
    hostmem_destroy(m);

    /* A commit limit that is not a page multiple: L - 1 byte leaves the last page out. */
    hostmem_config c;
    hostmem_config_init(&c);
    c.commit_limit = 4 * P - 1;
    c.task_percent = 50;   /* 2P - 1 bytes: one page */
    c.appdomain_percent = 75; /* 3P - 1 bytes (integer division): two pages */
    m = mk(&c);
    r = reserve(m, NULL, 8 * P);
    commit_at(m, r, P, eTaskCritical, S_OK);
    commit_at(m, r + P, P, eTaskCritical, E_OUTOFMEMORY);
    commit_at(m, r + P, P, eAppDomainCritical, S_OK);
    commit_at(m, r + 2 * P, P, eAppDomainCritical, E_OUTOFMEMORY);
    commit_at(m, r + 2 * P, P, eProcessCritical, S_OK);
    commit_at(m, r + 3 * P, P, eProcessCritical, E_OUTOFMEMORY);
    cr_assert_eq(st(m).committed_bytes, 3 * P);
    hostmem_destroy(m);
}

Test(p1_ceilings, recommit_adds_no_charge)
{
    size_t P = pg(), L = 10 * P;
    hostmem_manager *m = mk_cfg(L, 0, 0);
    char *r = commit_at(m, NULL, L, eProcessCritical, S_OK);
    commit_at(m, r + P, 5 * P, eTaskCritical, S_OK);
    cr_assert_eq(st(m).committed_bytes, L);
    hostmem_destroy(m);
}

Test(p1_ceilings, reserve_and_commit_counts_the_same)
{
    size_t P = pg(), L = 10 * P;
    hostmem_manager *m = mk_cfg(L, 0, 0);
    commit_at(m, NULL, 10 * P, eTaskCritical, E_OUTOFMEMORY);
    void *p = (void *)0x1;
    HR_EQ(hostmem_virtual_alloc(m, NULL, 10 * P, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE, eAppDomainCritical, &p),
          E_OUTOFMEMORY);
    cr_assert_null(p);
    hostmem_stats s = st(m);
    cr_assert_eq(s.region_count, 0, "a denied reserve-and-commit left its reservation");
    cr_assert_eq(s.reserved_bytes, 0);
    cr_assert_eq(s.committed_bytes, 0);
    commit_at(m, NULL, 10 * P, eProcessCritical, S_OK);
    hostmem_destroy(m);
}

Test(p1_ceilings, decommit_and_release_give_charge_back)
{
    size_t P = pg(), L = 10 * P;
    hostmem_manager *m = mk_cfg(L, 0, 0);
    char *a = commit_at(m, NULL, 4 * P, eTaskCritical, S_OK);
    char *b = commit_at(m, NULL, 5 * P, eTaskCritical, S_OK);
    commit_at(m, NULL, P, eTaskCritical, E_OUTOFMEMORY);
    HR_OK(hostmem_virtual_free(m, a, 2 * P, MEM_DECOMMIT));
    commit_at(m, a, 2 * P, eTaskCritical, S_OK);
    HR_OK(hostmem_virtual_free(m, b, 0, MEM_RELEASE));
    commit_at(m, NULL, 5 * P, eTaskCritical, S_OK);
    cr_assert_eq(st(m).committed_bytes, 9 * P);
    hostmem_destroy(m);
}

Test(p1_ceilings, no_limit_no_denial)
{
    hostmem_manager *m = mk(NULL);
    char *p = commit_at(m, NULL, 64 * MiB, eTaskCritical, S_OK);
    commit_at(m, NULL, 64 * MiB, eAppDomainCritical, S_OK);
    commit_at(m, NULL, 64 * MiB, eProcessCritical, S_OK);
    p[64 * MiB - 1] = 1;
    cr_assert_eq(st(m).committed_bytes, 192 * MiB);
    hostmem_destroy(m);
}

/* ---- notifications: a recorder ---------------------------------------------------- */
typedef struct rec {
    pthread_mutex_t lock; /* notifications of two threads may overlap */
    hostmem_manager *m;
    int n;
    EMemoryAvailable states[64];
    pthread_t thread[64];
    size_t committed_seen[64]; /* get_stats from inside the callback */
    /* P2: free memory when told Low while armed */
    int arm_free;
    char *free_at;
    size_t free_size;
    /* waits: the Low before a wait was seen */
    atomic_int low_seen;
} rec;

static void rec_cb(void *ctx, EMemoryAvailable s)
{
    rec *r = ctx;
    pthread_mutex_lock(&r->lock);
    if (r->n < 64) {
        r->states[r->n] = s;
        r->thread[r->n] = pthread_self();
        hostmem_stats sts;
        /* Delivered outside the manager's locks: calling back in must not deadlock. */
        r->committed_seen[r->n] = hostmem_get_stats(r->m, &sts) == S_OK ? sts.committed_bytes : (size_t)-1;
        r->n++;
    }
    if (s == eMemoryAvailableLow)
        atomic_fetch_add(&r->low_seen, 1);
    if (s == eMemoryAvailableLow && r->arm_free) {
        r->arm_free = 0;
        HRESULT hr = hostmem_virtual_free(r->m, r->free_at, r->free_size, MEM_DECOMMIT);
        cr_assert_eq(hr, S_OK, "decommit from the callback: %s", hostmem_hresult_name(hr));
    }
    pthread_mutex_unlock(&r->lock);
}

static void rec_register(rec *r, hostmem_manager *m)
{
    memset(r, 0, sizeof *r);
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_settype(&a, PTHREAD_MUTEX_RECURSIVE); /* the callback may re-enter itself */
    pthread_mutex_init(&r->lock, &a);
    pthread_mutexattr_destroy(&a);
    r->m = m;
    HR_OK(hostmem_register_memory_notification_callback(m, rec_cb, r));
}

static void rec_expect(const rec *r, int n, const EMemoryAvailable *want)
{
    static const char *names[] = {"?", "Low", "Neutral", "High"};
    char got[256] = "", exp[256] = "";
    for (int i = 0; i < r->n && i < 64; i++)
        snprintf(got + strlen(got), sizeof got - strlen(got), "%s ", names[r->states[i] & 3]);
    for (int i = 0; i < n; i++)
        snprintf(exp + strlen(exp), sizeof exp - strlen(exp), "%s ", names[want[i] & 3]);
    cr_assert_eq(r->n, n, "notifications: got [%s], want [%s]", got, exp);
    for (int i = 0; i < n; i++)
        cr_assert_eq(r->states[i], want[i], "notifications: got [%s], want [%s]", got, exp);
}

#define LOW eMemoryAvailableLow
#define NEUTRAL eMemoryAvailableNeutral
#define HIGH eMemoryAvailableHigh

/* ---- P2 ------------------------------------------------------------------------- */
Test(p2_low_before_denial, appdomain_and_process_hear_low_task_does_not)
{
    size_t P = pg(), L = 10 * P;
    hostmem_manager *m = mk_cfg(L, 0, 0);
    rec r;
    rec_register(&r, m);
    char *a = reserve(m, NULL, 16 * P);
    commit_at(m, a, 9 * P, eTaskCritical, S_OK); /* 90 %: Low */
    rec_expect(&r, 2, (EMemoryAvailable[]){HIGH, LOW});
    commit_at(m, a + 9 * P, P, eTaskCritical, E_OUTOFMEMORY);
    rec_expect(&r, 2, (EMemoryAvailable[]){HIGH, LOW});
    /* Low again although Low was the last state reported. */
    commit_at(m, a + 9 * P, P, eAppDomainCritical, E_OUTOFMEMORY);
    rec_expect(&r, 3, (EMemoryAvailable[]){HIGH, LOW, LOW});
    commit_at(m, a + 9 * P, P, eProcessCritical, S_OK);
    rec_expect(&r, 3, (EMemoryAvailable[]){HIGH, LOW, LOW});
    commit_at(m, a + 10 * P, P, eProcessCritical, E_OUTOFMEMORY);
    rec_expect(&r, 4, (EMemoryAvailable[]){HIGH, LOW, LOW, LOW});
    hostmem_destroy(m);
}

Test(p2_low_before_denial, callback_frees_and_request_is_granted)
{
    size_t P = pg(), L = 10 * P;
    hostmem_manager *m = mk_cfg(L, 0, 0);
    rec r;
    rec_register(&r, m);
    char *a = reserve(m, NULL, 16 * P);
    commit_at(m, a, 9 * P, eTaskCritical, S_OK);
    r.arm_free = 1;
    r.free_at = a;
    r.free_size = 5 * P;
    char *c = commit_at(m, a + 9 * P, P, eAppDomainCritical, S_OK);
    cr_assert_eq(c, a + 9 * P);
    cr_assert_eq(r.arm_free, 0, "the callback was not told Low before the denial");
    cr_assert_eq(st(m).committed_bytes, 5 * P);
    cr_assert_eq(q(m, a).State, MEM_RESERVE);
    cr_assert_eq(q(m, a + 9 * P).State, MEM_COMMIT);
    hostmem_destroy(m);
}

static pid_t thread_tid(void)
{
    return (pid_t)syscall(SYS_gettid);
}

/* Whether thread `tid` of this process is asleep ('S': blocked in a wait). */
static int thread_sleeping(pid_t tid)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/self/task/%d/stat", (int)tid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *e = strrchr(buf, ')');
    return e && e[1] == ' ' && e[2] == 'S';
}

typedef struct waiter {
    hostmem_manager *m;
    char *at;
    size_t size;
    atomic_int tid;
    HRESULT hr;
    void *out;
} waiter;

static void *waiter_main(void *arg)
{
    waiter *w = arg;
    atomic_store(&w->tid, (int)thread_tid());
    w->out = (void *)0x1;
    w->hr = hostmem_virtual_alloc(w->m, w->at, w->size, MEM_COMMIT, PAGE_READWRITE, eProcessCritical, &w->out);
    return NULL;
}

/* Wait until the waiter was told Low (so it is past its first check) and sleeps. */
static void until_waiting(waiter *w, rec *r)
{
    for (;;) {
        int tid = atomic_load(&w->tid);
        if (tid && atomic_load(&r->low_seen) > 0 && thread_sleeping(tid))
            return;
        usleep(1000);
    }
}

Test(p2_low_before_denial, process_critical_waits_for_another_thread_to_free)
{
    size_t P = pg(), L = 10 * P;
    hostmem_manager *m = mk_cfg(L, 0, 60000);
    char *a = commit_at(m, NULL, L, eProcessCritical, S_OK);
    char *b = reserve(m, NULL, P);
    rec r;
    rec_register(&r, m);
    atomic_store(&r.low_seen, 0);
    waiter w = {.m = m, .at = b, .size = P};
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, waiter_main, &w), 0);
    until_waiting(&w, &r);
    HR_OK(hostmem_virtual_free(m, a, 2 * P, MEM_DECOMMIT));
    pthread_join(t, NULL);
    HR_EQ(w.hr, S_OK);
    cr_assert_eq(w.out, b);
    cr_assert_eq(st(m).committed_bytes, 9 * P);
    hostmem_destroy(m);
}

Test(p2_low_before_denial, process_critical_wait_expires)
{
    size_t P = pg(), L = 10 * P;
    hostmem_manager *m = mk_cfg(L, 0, 20);
    commit_at(m, NULL, L, eProcessCritical, S_OK);
    commit_at(m, NULL, P, eProcessCritical, E_OUTOFMEMORY);
    cr_assert_eq(st(m).region_count, 1);
    cr_assert_eq(st(m).committed_bytes, L);
    hostmem_destroy(m);
}

Test(p2_low_before_denial, shutdown_abandons_a_waiter)
{
    size_t P = pg(), L = 10 * P;
    hostmem_manager *m = mk_cfg(L, 0, 600000);
    commit_at(m, NULL, L, eProcessCritical, S_OK);
    rec r;
    rec_register(&r, m);
    atomic_store(&r.low_seen, 0);
    waiter w = {.m = m, .at = NULL, .size = P};
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, waiter_main, &w), 0);
    until_waiting(&w, &r);
    hostmem_shutdown(m);
    pthread_join(t, NULL);
    HR_EQ(w.hr, HOST_E_ABANDONED);
    cr_assert_null(w.out);
    void *p = (void *)0x1;
    HR_EQ(hostmem_virtual_alloc(m, NULL, P, MEM_RESERVE, PAGE_READWRITE, eTaskCritical, &p), HOST_E_CLRNOTAVAILABLE);
    hostmem_destroy(m);
}

Test(p2_low_before_denial, shutdown_abandons_a_waiter_committing_in_a_region)
{
    size_t P = pg(), L = 10 * P;
    hostmem_manager *m = mk_cfg(L, 0, 600000);
    commit_at(m, NULL, L, eProcessCritical, S_OK);
    char *b = reserve(m, NULL, P);
    rec r;
    rec_register(&r, m);
    atomic_store(&r.low_seen, 0);
    waiter w = {.m = m, .at = b, .size = P};
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, waiter_main, &w), 0);
    until_waiting(&w, &r);
    hostmem_shutdown(m);
    pthread_join(t, NULL);
    HR_EQ(w.hr, HOST_E_ABANDONED);
    cr_assert_null(w.out);
    hostmem_destroy(m);
}

/* ---- P4 ------------------------------------------------------------------------- */
Test(p4_notifications, current_state_at_registration)
{
    size_t P = pg(), L = 100 * P;
    static const struct {
        size_t pages;
        EMemoryAvailable want;
    } cases[] = {{0, HIGH}, {59, HIGH}, {60, NEUTRAL}, {89, NEUTRAL}, {90, LOW}, {100, LOW}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        hostmem_manager *m = mk_cfg(L, 0, 0);
        if (cases[i].pages)
            commit_at(m, NULL, cases[i].pages * P, eProcessCritical, S_OK);
        rec r;
        rec_register(&r, m);
        cr_assert_eq(r.n, 1, "%zu pages: %d notifications at registration", cases[i].pages, r.n);
        cr_assert_eq(r.states[0], cases[i].want, "%zu pages: state %d, want %d", cases[i].pages, r.states[0],
                     cases[i].want);
        cr_assert(pthread_equal(r.thread[0], pthread_self()));
        hostmem_destroy(m);
    }
}

Test(p4_notifications, every_change_and_only_changes)
{
    size_t P = pg(), L = 100 * P;
    hostmem_manager *m = mk_cfg(L, 0, 0);
    rec r;
    rec_register(&r, m);
    char *a = reserve(m, NULL, 128 * P);
    commit_at(m, a, 59 * P, eTaskCritical, S_OK);
    rec_expect(&r, 1, (EMemoryAvailable[]){HIGH});
    commit_at(m, a + 59 * P, P, eTaskCritical, S_OK); /* 60 %: Neutral */
    rec_expect(&r, 2, (EMemoryAvailable[]){HIGH, NEUTRAL});
    cr_assert_eq(r.committed_seen[1], 60 * P, "the callback saw %zu bytes committed", r.committed_seen[1]);
    commit_at(m, a + 60 * P, 29 * P, eTaskCritical, S_OK); /* 89 % */
    rec_expect(&r, 2, (EMemoryAvailable[]){HIGH, NEUTRAL});
    commit_at(m, a + 89 * P, P, eTaskCritical, S_OK); /* 90 %: Low */
    rec_expect(&r, 3, (EMemoryAvailable[]){HIGH, NEUTRAL, LOW});
    HR_OK(hostmem_virtual_free(m, a, 31 * P, MEM_DECOMMIT)); /* 59 %: High */
    rec_expect(&r, 4, (EMemoryAvailable[]){HIGH, NEUTRAL, LOW, HIGH});
    cr_assert_eq(r.committed_seen[3], 59 * P);
    commit_at(m, a, 31 * P, eTaskCritical, S_OK); /* 90 %: Low at once */
    rec_expect(&r, 5, (EMemoryAvailable[]){HIGH, NEUTRAL, LOW, HIGH, LOW});
    HR_OK(hostmem_virtual_free(m, a, 0, MEM_RELEASE)); /* 0 %: High */
    rec_expect(&r, 6, (EMemoryAvailable[]){HIGH, NEUTRAL, LOW, HIGH, LOW, HIGH});
    for (int i = 0; i < r.n; i++)
        cr_assert(pthread_equal(r.thread[i], pthread_self()), "notification %d on another thread", i);
    hostmem_destroy(m);
}

Test(p4_notifications, reserve_and_commit_and_custom_thresholds)
{
    size_t P = pg();
    hostmem_config c;
    hostmem_config_init(&c);
    c.commit_limit = 10 * P;
    c.low_memory_percent = 50;
    c.high_memory_percent = 20;
    hostmem_manager *m = mk(&c);
    rec r;
    rec_register(&r, m);
    char *a = commit_at(m, NULL, P, eTaskCritical, S_OK); /* 10 % */
    char *b = commit_at(m, NULL, P, eTaskCritical, S_OK); /* 20 %: Neutral */
    rec_expect(&r, 2, (EMemoryAvailable[]){HIGH, NEUTRAL});
    char *c3 = commit_at(m, NULL, 3 * P, eTaskCritical, S_OK); /* 50 %: Low */
    rec_expect(&r, 3, (EMemoryAvailable[]){HIGH, NEUTRAL, LOW});
    HR_OK(hostmem_virtual_free(m, c3, 0, MEM_RELEASE)); /* 20 %: Neutral */
    rec_expect(&r, 4, (EMemoryAvailable[]){HIGH, NEUTRAL, LOW, NEUTRAL});
    HR_OK(hostmem_virtual_free(m, b, 0, MEM_DECOMMIT)); /* 10 %: High */
    rec_expect(&r, 5, (EMemoryAvailable[]){HIGH, NEUTRAL, LOW, NEUTRAL, HIGH});
    (void)a;
    hostmem_destroy(m);
}

Test(p4_notifications, registering_again_replaces)
{
    size_t P = pg(), L = 10 * P;
    hostmem_manager *m = mk_cfg(L, 0, 0);
    rec r1, r2;
    rec_register(&r1, m);
    commit_at(m, NULL, 6 * P, eTaskCritical, S_OK);
    rec_expect(&r1, 2, (EMemoryAvailable[]){HIGH, NEUTRAL});
    rec_register(&r2, m);
    rec_expect(&r2, 1, (EMemoryAvailable[]){NEUTRAL});
    commit_at(m, NULL, 3 * P, eTaskCritical, S_OK);
    rec_expect(&r1, 2, (EMemoryAvailable[]){HIGH, NEUTRAL});
    rec_expect(&r2, 2, (EMemoryAvailable[]){NEUTRAL, LOW});
    hostmem_destroy(m);
}

Test(p4_notifications, without_limit_registration_still_reports)
{
    hostmem_manager *m = mk(NULL);
    rec r;
    rec_register(&r, m);
    cr_assert_eq(r.n, 1);
    cr_assert(r.states[0] >= LOW && r.states[0] <= HIGH, "state %d", r.states[0]);
    hostmem_destroy(m);
}

/* The callback may do anything with the manager, including what caused the change. */
typedef struct busy {
    hostmem_manager *m;
    int calls;
    HRESULT hr_reserve, hr_release, hr_query;
} busy;

static void busy_cb(void *ctx, EMemoryAvailable s)
{
    busy *b = ctx;
    if (b->calls++ != 1)
        return;
    void *p = NULL;
    b->hr_reserve = hostmem_virtual_alloc(b->m, NULL, pg(), MEM_RESERVE, PAGE_READWRITE, eTaskCritical, &p);
    MEMORY_BASIC_INFORMATION mbi;
    SIZE_T w;
    b->hr_query = hostmem_virtual_query(b->m, p, &mbi, sizeof mbi, &w);
    b->hr_release = hostmem_virtual_free(b->m, p, 0, MEM_RELEASE);
}

Test(p4_notifications, callback_calls_back_into_the_manager, .timeout = 60)
{
    size_t P = pg();
    hostmem_manager *m = mk_cfg(10 * P, 0, 0);
    busy b = {.m = m};
    HR_OK(hostmem_register_memory_notification_callback(m, busy_cb, &b));
    commit_at(m, NULL, 9 * P, eTaskCritical, S_OK);
    cr_assert_eq(b.calls, 2);
    HR_OK(b.hr_reserve);
    HR_OK(b.hr_query);
    HR_OK(b.hr_release);
    cr_assert_eq(st(m).region_count, 1);
    hostmem_destroy(m);
}

/* ---- P5 ------------------------------------------------------------------------- */
Test(p5_memory_load, with_limit)
{
    size_t P = pg();
    hostmem_manager *m = mk_cfg(100 * P, 0, 0);
    DWORD load = 1234;
    SIZE_T avail = 0;
    HR_OK(hostmem_get_memory_load(m, &load, &avail));
    cr_assert_eq(load, 0);
    cr_assert_eq(avail, 100 * P);
    commit_at(m, NULL, 33 * P, eTaskCritical, S_OK);
    HR_OK(hostmem_get_memory_load(m, &load, &avail));
    cr_assert_eq(load, 33);
    cr_assert_eq(avail, 67 * P);
    hostmem_destroy(m);

    m = mk_cfg(3 * P, 0, 0);
    commit_at(m, NULL, 2 * P, eProcessCritical, S_OK);
    HR_OK(hostmem_get_memory_load(m, &load, &avail));
    cr_assert_eq(load, 66, "2/3 of the limit: load %u", (unsigned)load);
    cr_assert_eq(avail, P);
    commit_at(m, NULL, P, eProcessCritical, S_OK);
    HR_OK(hostmem_get_memory_load(m, &load, &avail));
    cr_assert_eq(load, 100);
    cr_assert_eq(avail, 0);
    hostmem_destroy(m);
}

static void meminfo(size_t *total, size_t *avail)
{
    FILE *f = fopen("/proc/meminfo", "r");
    cr_assert_not_null(f);
    char line[256];
    *total = *avail = 0;
    while (fgets(line, sizeof line, f)) {
        size_t kb;
        if (sscanf(line, "MemTotal: %zu kB", &kb) == 1)
            *total = kb * 1024;
        if (sscanf(line, "MemAvailable: %zu kB", &kb) == 1)
            *avail = kb * 1024;
    }
    fclose(f);
    cr_assert(*total && *avail);
}

Test(p5_memory_load, without_limit_is_the_system)
{
    hostmem_manager *m = mk(NULL);
    size_t total, a0, a1;
    DWORD load;
    SIZE_T avail;
    meminfo(&total, &a0);
    HR_OK(hostmem_get_memory_load(m, &load, &avail));
    meminfo(&total, &a1);
    size_t lo = (a0 < a1 ? a0 : a1), hi = (a0 < a1 ? a1 : a0);
    size_t slack = 64 * MiB;
    cr_assert(avail + slack >= lo && avail <= hi + slack, "available %zu, /proc/meminfo said %zu..%zu",
              (size_t)avail, lo, hi);
    size_t want = (size_t)((total - avail) * 100.0 / total);
    cr_assert(load <= 100 && (load + 1 >= want && load <= want + 1), "load %u, want about %zu", (unsigned)load,
              want);
    hostmem_destroy(m);
}

/* ---- P3 ------------------------------------------------------------------------- */
Test(p3_address_space, each_level_up_to_its_ceiling)
{
    size_t P = pg(), AL = 100 * P;
    hostmem_manager *m = mk_cfg(0, AL, 0);
    reserve_at(m, 90 * P, eTaskCritical, S_OK);
    reserve_at(m, P, eTaskCritical, E_OUTOFMEMORY);
    reserve_at(m, 7 * P, eAppDomainCritical, S_OK);
    reserve_at(m, P, eAppDomainCritical, E_OUTOFMEMORY);
    char *last = reserve_at(m, 3 * P, eProcessCritical, S_OK);
    reserve_at(m, P, eProcessCritical, E_OUTOFMEMORY);
    hostmem_stats s = st(m);
    cr_assert_eq(s.reserved_bytes, AL);
    cr_assert_eq(s.region_count, 3);
    HR_OK(hostmem_virtual_free(m, last, 0, MEM_RELEASE));
    reserve_at(m, 3 * P, eProcessCritical, S_OK);
    hostmem_destroy(m);
}

Test(p3_address_space, page_rounded_not_granules)
{
    size_t P = pg(), AL = 10 * P;
    hostmem_manager *m = mk_cfg(0, AL, 0);
    for (int i = 0; i < 9; i++)
        reserve_at(m, 1, eTaskCritical, S_OK); /* each counts one page, not 64 KiB */
    reserve_at(m, 1, eTaskCritical, E_OUTOFMEMORY);
    cr_assert_eq(st(m).reserved_bytes, 9 * P);
    hostmem_destroy(m);
}

Test(p3_address_space, reserve_and_commit_uses_its_level)
{
    size_t P = pg(), AL = 10 * P;
    hostmem_manager *m = mk_cfg(0, AL, 0);
    commit_at(m, NULL, 10 * P, eTaskCritical, E_OUTOFMEMORY);
    cr_assert_eq(st(m).region_count, 0);
    commit_at(m, NULL, 10 * P, eProcessCritical, S_OK);
    hostmem_destroy(m);
}

Test(p3_address_space, external_bytes_count)
{
    size_t P = pg(), AL = 100 * P;
    hostmem_manager *m = mk_cfg(0, AL, 0);
    HR_OK(hostmem_acquired_virtual_address_space(m, (void *)0x200000000ull, 50 * P));
    reserve_at(m, 41 * P, eTaskCritical, E_OUTOFMEMORY);
    reserve_at(m, 40 * P, eTaskCritical, S_OK);
    HR_OK(hostmem_released_virtual_address_space(m, (void *)0x200000000ull));
    reserve_at(m, 50 * P, eTaskCritical, S_OK);
    hostmem_destroy(m);
}

/* ---- P6 ------------------------------------------------------------------------- */
Test(p6_external, needs_against_the_limit)
{
    size_t P = pg(), AL = 100 * P;
    hostmem_manager *m = mk_cfg(0, AL, 0);
    void *start = (void *)0x300000000ull;
    HR_OK(hostmem_needs_virtual_address_space(m, start, AL));
    HR_EQ(hostmem_needs_virtual_address_space(m, start, AL + P), E_OUTOFMEMORY);
    reserve_at(m, 20 * P, eTaskCritical, S_OK);
    HR_OK(hostmem_acquired_virtual_address_space(m, start, 10 * P));
    HR_OK(hostmem_needs_virtual_address_space(m, (void *)0x400000000ull, 70 * P));
    HR_EQ(hostmem_needs_virtual_address_space(m, (void *)0x400000000ull, 71 * P), E_OUTOFMEMORY);
    hostmem_stats s = st(m);
    cr_assert_eq(s.external_bytes, 10 * P, "needs changed the accounting");
    cr_assert_eq(s.reserved_bytes, 20 * P);
    hostmem_destroy(m);
}

Test(p6_external, needs_without_limit)
{
    hostmem_manager *m = mk(NULL);
    HR_OK(hostmem_needs_virtual_address_space(m, (void *)0x300000000ull, (size_t)1 << 46));
    hostmem_destroy(m);
}

Test(p6_external, acquired_and_released)
{
    size_t P = pg();
    hostmem_manager *m = mk(NULL);
    void *a = (void *)0x300000000ull, *b = (void *)0x310000000ull;
    HR_OK(hostmem_acquired_virtual_address_space(m, a, 4 * P));
    HR_OK(hostmem_acquired_virtual_address_space(m, b, 8 * P));
    cr_assert_eq(st(m).external_bytes, 12 * P);
    HR_EQ(hostmem_acquired_virtual_address_space(m, a, 4 * P), HOST_E_INVALIDOPERATION);
    cr_assert_eq(st(m).external_bytes, 12 * P);
    HR_OK(hostmem_released_virtual_address_space(m, a));
    cr_assert_eq(st(m).external_bytes, 8 * P);
    HR_EQ(hostmem_released_virtual_address_space(m, a), HOST_E_INVALIDOPERATION);
    HR_EQ(hostmem_released_virtual_address_space(m, (void *)0x320000000ull), HOST_E_INVALIDOPERATION);
    cr_assert_eq(st(m).external_bytes, 8 * P);
    HR_OK(hostmem_released_virtual_address_space(m, b));
    cr_assert_eq(st(m).external_bytes, 0);
    hostmem_destroy(m);
}
