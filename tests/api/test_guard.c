/*
 * W2: guard pages are one-shot (the cases Wine's conformance suite checks for
 * PAGE_GUARD: the first access is a guard violation and clears the guard, the
 * next one follows the plain protection), reported through
 * hostmem_handle_fault() from the host's own handler or through the handler
 * config.guard_handler installs; S11: the cache modifiers belong to the
 * pages since their commit (Wine's test_VirtualAlloc).  Public header only.
 */
#include "util.h"

#include <sched.h>

#include <pthread.h>
#include <stdatomic.h>

static void g_fini(void) { hm_leak_check(); }
TestSuite(w2_guard, .fini = g_fini, .timeout = 60);
TestSuite(w2_guard_handler, .fini = g_fini, .timeout = 60);
TestSuite(s11_modifiers, .fini = g_fini, .timeout = 30);

/* ---- a host that owns SIGSEGV and asks hostmem what a fault was --------------- */
static sigjmp_buf g_jmp;
static _Thread_local volatile sig_atomic_t g_guards, g_access, g_not_ours;

static void g_host_handler(int sig, siginfo_t *info, void *ctx)
{
    (void)sig;
    (void)ctx;
    switch (hostmem_handle_fault(info)) {
    case HOSTMEM_FAULT_GUARD:
        g_guards++;
        return; /* retry */
    case HOSTMEM_FAULT_ACCESS:
        g_access++;
        break;
    default:
        g_not_ours++;
        break;
    }
    siglongjmp(g_jmp, 1);
}

static void g_install(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = g_host_handler;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, NULL);
    sigaction(SIGBUS, &sa, NULL);
    g_guards = g_access = g_not_ours = 0;
}

/* Access once through the host's handler: 0 done, 1 refused (access violation). */
static int g_touch(volatile char *p, int write)
{
    if (sigsetjmp(g_jmp, 1))
        return 1;
    if (write)
        *p = 0x5a;
    else
        (void)*p;
    return 0;
}

Test(w2_guard, one_shot_on_read_write_pages)
{
    size_t P = pg();
    hostmem_manager *m = mk(NULL);
    g_install();
    char *base = alloc_ok(m, NULL, P, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE | PAGE_GUARD);
    MEMORY_BASIC_INFORMATION mbi = q(m, base);
    MBI_IS(mbi, base, base, PAGE_READWRITE | PAGE_GUARD, P, MEM_COMMIT, PAGE_READWRITE | PAGE_GUARD);
    cr_assert_eq(st(m).guard_pages, 1);
    cr_assert_eq(g_touch(base, 0), 0);
    cr_assert_eq(g_guards, 1, "the first read is a guard violation");
    mbi = q(m, base);
    MBI_IS(mbi, base, base, PAGE_READWRITE | PAGE_GUARD, P, MEM_COMMIT, PAGE_READWRITE);
    cr_assert_eq(st(m).guard_pages, 0);
    cr_assert_eq(g_touch(base, 0), 0);
    cr_assert_eq(g_touch(base, 1), 0);
    cr_assert_eq(g_guards, 1, "only the first");
    cr_assert_eq(base[0], 0x5a);

    /* protect sets it again; old protect and query show it */
    DWORD old = 0;
    HR_OK(hostmem_virtual_protect(m, base, P, PAGE_READWRITE | PAGE_GUARD, &old));
    cr_assert_eq(old, PAGE_READWRITE);
    HR_OK(hostmem_virtual_protect(m, base, P, PAGE_READWRITE | PAGE_GUARD, &old));
    cr_assert_eq(old, PAGE_READWRITE | PAGE_GUARD);
    /* the first access is a write: it is stored after the guard goes */
    cr_assert_eq(g_touch(base + 7, 1), 0);
    cr_assert_eq(g_guards, 2);
    cr_assert_eq(base[7], 0x5a);
    cr_assert_eq(g_access, 0);
    cr_assert_eq(g_not_ours, 0);
    hostmem_destroy(m);
}

Test(w2_guard, plain_protection_after_the_hit)
{
    size_t P = pg();
    hostmem_manager *m = mk(NULL);
    g_install();
    char *base = alloc_ok(m, NULL, 2 * P, MEM_RESERVE | MEM_COMMIT, PAGE_READONLY | PAGE_GUARD);
    cr_assert_eq(g_touch(base + P, 1), 1, "a write to a read-only guard page");
    cr_assert_eq(g_guards, 1);
    cr_assert_eq(g_access, 1, "then an access violation");
    cr_assert_eq(q(m, base + P).Protect, PAGE_READONLY);
    cr_assert_eq(q(m, base).Protect, PAGE_READONLY | PAGE_GUARD, "the other page keeps its guard");
    cr_assert_eq(g_touch(base + P, 0), 0);
    cr_assert_eq(g_touch(base + P, 1), 1);
    cr_assert_eq(g_access, 2);
    cr_assert_eq(g_guards, 1);
    /* reserved and decommitted pages are access violations, foreign ones not ours */
    char *r = reserve(m, NULL, 4 * P);
    cr_assert_eq(g_touch(r, 0), 1);
    cr_assert_eq(g_access, 3);
    commit(m, r, P, PAGE_READWRITE | PAGE_GUARD);
    HR_OK(hostmem_virtual_free(m, r, P, MEM_DECOMMIT));
    cr_assert_eq(st(m).guard_pages, 1);
    cr_assert_eq(g_touch(r, 1), 1);
    cr_assert_eq(g_access, 4);
    char *f = foreign_map(P, PROT_NONE);
    cr_assert_eq(g_touch(f, 0), 1);
    cr_assert_eq(g_not_ours, 1);
    munmap(f, P);
    hostmem_destroy(m);
}

/* One-shot page by page however many hits come with no call on the region
 * in between: every other page of 512 hit, the others keep their guard. */
Test(w2_guard, many_hits_one_page_each)
{
    size_t P = pg(), n = 512;
    hostmem_manager *m = mk(NULL);
    g_install();
    char *base = alloc_ok(m, NULL, n * P, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE | PAGE_GUARD);
    for (size_t i = 0; i < n; i += 2)
        cr_assert_eq(g_touch(base + i * P, 0), 0);
    cr_assert_eq((size_t)g_guards, n / 2);
    cr_assert_eq(st(m).guard_pages, n / 2);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(q(m, base + i * P).Protect, PAGE_READWRITE | (i % 2 ? PAGE_GUARD : 0), "page %zu", i);
    for (size_t i = 1; i < n; i += 2)
        cr_assert_eq(g_touch(base + i * P, 1), 0);
    cr_assert_eq((size_t)g_guards, n, "each page's first access, once");
    cr_assert_eq(st(m).guard_pages, 0);
    hostmem_destroy(m);
}

/* After a hit and a call that changes the page, another thread's fault there
 * is judged by the new protection: not a late report of that hit. */
static char *g_late_page;
static void *g_late_writer(void *arg)
{
    (void)arg;
    g_install();
    int refused = g_touch(g_late_page, 1);
    return (void *)(uintptr_t)(refused && g_guards == 0 && g_access == 1);
}

Test(w2_guard, a_later_fault_after_a_call_is_not_the_hit)
{
    size_t P = pg();
    hostmem_manager *m = mk(NULL);
    g_install();
    char *base = alloc_ok(m, NULL, P, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE | PAGE_GUARD);
    cr_assert_eq(g_touch(base, 0), 0);
    cr_assert_eq(g_guards, 1);
    DWORD old = 0;
    HR_OK(hostmem_virtual_protect(m, base, P, PAGE_READONLY, &old));
    cr_assert_eq(old, PAGE_READWRITE);
    g_late_page = base;
    pthread_t t;
    void *ok = NULL;
    cr_assert_eq(pthread_create(&t, NULL, g_late_writer, NULL), 0);
    pthread_join(t, &ok);
    cr_assert(ok, "the other thread's write: one access violation, no guard report");
    hostmem_destroy(m);
}

/* The results a call writes may lie in a guard page of the very region it
 * works on: the guard hit is handled as any other (the handler takes the
 * region's lock, so the call writes them with the lock free). */
Test(w2_guard, out_parameters_in_a_guard_page_of_the_same_region, .timeout = 20)
{
    size_t P = pg();
    hostmem_manager *m = mk(NULL);
    g_install();
    for (int watch = 0; watch < 2; watch++) {
        char *b = alloc_ok(m, NULL, 16 * P, MEM_RESERVE | (watch ? MEM_WRITE_WATCH : 0), PAGE_READWRITE);
        void *o = NULL;
        HR_OK(hostmem_virtual_alloc(m, b, 8 * P, MEM_COMMIT, PAGE_READWRITE, eTaskCritical, &o));
        HR_OK(hostmem_virtual_alloc(m, b + 8 * P, P, MEM_COMMIT, PAGE_READWRITE | PAGE_GUARD, eTaskCritical, &o));
        int guards = g_guards;
        if (!watch) {
            DWORD *old = (DWORD *)(b + 8 * P);
            HR_OK(hostmem_virtual_protect(m, b, P, PAGE_READONLY, old));
            cr_assert_eq(*old, PAGE_READWRITE);
        } else {
            b[2 * P] = 1;
            void **res = (void **)(b + 8 * P);
            ULONG_PTR n = 4;
            DWORD gran = 0;
            HR_OK(hostmem_get_write_watch(m, 0, b, 8 * P, res, &n, &gran));
            cr_assert_eq(n, 1);
            cr_assert_eq(res[0], b + 2 * P);
        }
        cr_assert_eq(g_guards, guards + 1, "one guard hit");
        MEMORY_BASIC_INFORMATION mbi = q(m, b + 8 * P);
        cr_assert_eq(mbi.Protect, PAGE_READWRITE, "the guard is spent");
        HR_OK(hostmem_virtual_free(m, b, 0, MEM_RELEASE));
    }
    signal(SIGSEGV, SIG_DFL);
    signal(SIGBUS, SIG_DFL);
    hostmem_destroy(m);
}

Test(w2_guard, guard_pages_count_and_survive_nothing)
{
    size_t P = pg();
    hostmem_manager *m = mk(NULL);
    g_install();
    char *r = reserve(m, NULL, 16 * P);
    commit(m, r, 8 * P, PAGE_READWRITE);
    DWORD old;
    HR_OK(hostmem_virtual_protect(m, r + 2 * P, 3 * P, PAGE_EXECUTE_READ | PAGE_GUARD, &old));
    cr_assert_eq(st(m).guard_pages, 3);
    snap s;
    snap_take(m, r, 16 * P, &s);
    cr_assert_eq(s.n, 4);
    cr_assert_eq(g_touch(r + 3 * P, 0), 0);
    cr_assert_eq(st(m).guard_pages, 2);
    snap_take(m, r, 16 * P, &s);
    cr_assert_eq(s.n, 6, "the hit page stands alone between two guard pages");
    cr_assert_eq(s.v[1].Protect, PAGE_EXECUTE_READ | PAGE_GUARD);
    cr_assert_eq(s.v[2].Protect, PAGE_EXECUTE_READ);
    cr_assert_eq(s.v[2].RegionSize, P);
    cr_assert_eq(s.v[3].Protect, PAGE_EXECUTE_READ | PAGE_GUARD);
    HR_OK(hostmem_virtual_protect(m, r + 2 * P, 3 * P, PAGE_READWRITE, &old));
    cr_assert_eq(old, PAGE_EXECUTE_READ | PAGE_GUARD);
    cr_assert_eq(st(m).guard_pages, 0);
    commit(m, r + 8 * P, 2 * P, PAGE_READONLY | PAGE_GUARD);
    cr_assert_eq(st(m).guard_pages, 2);
    HR_OK(hostmem_virtual_free(m, r, 0, MEM_RELEASE));
    cr_assert_eq(st(m).guard_pages, 0);
    hostmem_destroy(m);
}

/* ---- guard pages re-armed while other threads read them ------------------------ */
/* Every page is always PAGE_READWRITE or PAGE_READWRITE | PAGE_GUARD, so no
 * read of it may be an access violation: not while a protect is between the
 * kernel's change and its books, nor when another thread's hit (on this page
 * or another) cleared the guard under a read that had already faulted. */
static atomic_long g_race_access, g_race_guards;
static void g_race_handler(int sig, siginfo_t *info, void *ctx)
{
    (void)sig;
    (void)ctx;
    switch (hostmem_handle_fault(info)) {
    case HOSTMEM_FAULT_GUARD:
        atomic_fetch_add(&g_race_guards, 1);
        return;
    case HOSTMEM_FAULT_ACCESS:
        atomic_fetch_add(&g_race_access, 1); /* wrong: counted, then retried */
        sched_yield();
        return;
    default:
        abort();
    }
}

#define G_RACE_PAGES 4
typedef struct g_race {
    hostmem_manager *m;
    char *pages;
    atomic_int done;
} g_race;

static void *g_race_reader(void *arg)
{
    g_race *g = arg;
    unsigned s = (unsigned)(uintptr_t)&s;
    while (!atomic_load(&g->done)) {
        s = s * 1103515245u + 12345u;
        (void)*(volatile char *)(g->pages + ((s >> 8) % G_RACE_PAGES) * pg() + 64);
    }
    return NULL;
}

static void *g_race_arm(void *arg)
{
    g_race *g = arg;
    unsigned s = 7;
    DWORD old;
    for (int i = 0; i < 20000; i++) {
        s = s * 1103515245u + 12345u;
        cr_assert_eq(hostmem_virtual_protect(g->m, g->pages + ((s >> 8) % G_RACE_PAGES) * pg(), pg(),
                                             PAGE_READWRITE | PAGE_GUARD, &old),
                     S_OK);
    }
    atomic_store(&g->done, 1);
    return NULL;
}

Test(w2_guard, reads_racing_re_armed_guard_pages_are_never_access_violations)
{
    struct sigaction sa, prev_segv, prev_bus;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = g_race_handler;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, &prev_segv);
    sigaction(SIGBUS, &sa, &prev_bus);
    g_race g = {.m = mk(NULL)};
    g.pages = alloc_ok(g.m, NULL, G_RACE_PAGES * pg(), MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE);
    pthread_t t[3];
    cr_assert_eq(pthread_create(&t[0], NULL, g_race_reader, &g), 0);
    cr_assert_eq(pthread_create(&t[1], NULL, g_race_reader, &g), 0);
    cr_assert_eq(pthread_create(&t[2], NULL, g_race_arm, &g), 0);
    for (int i = 0; i < 3; i++)
        pthread_join(t[i], NULL);
    sigaction(SIGSEGV, &prev_segv, NULL);
    sigaction(SIGBUS, &prev_bus, NULL);
    cr_assert_eq(atomic_load(&g_race_access), 0, "%ld reads judged access violations (%ld guard hits)",
                 atomic_load(&g_race_access), atomic_load(&g_race_guards));
    cr_assert_gt(atomic_load(&g_race_guards), 0);
    hostmem_destroy(g.m);
}

/* ---- threads: each has its own guard page, all hit at once -------------------- */
typedef struct g_thread {
    char *page;
    int guards, refused;
    atomic_int *go;
} g_thread;

static void *g_thread_main(void *arg)
{
    g_thread *t = arg;
    while (!atomic_load(t->go))
        ;
    g_guards = g_access = 0;
    t->refused = g_touch(t->page + 64, 1);
    t->guards = g_guards;
    return NULL;
}

Test(w2_guard, concurrent_hits_in_one_region)
{
    size_t P = pg();
    enum { N = 8 };
    hostmem_manager *m = mk(NULL);
    g_install();
    char *r = alloc_ok(m, NULL, 2 * N * P, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE);
    DWORD old;
    for (int i = 0; i < N; i++)
        HR_OK(hostmem_virtual_protect(m, r + (size_t)(2 * i + 1) * P, P, PAGE_READWRITE | PAGE_GUARD, &old));
    atomic_int go = 0;
    pthread_t th[N];
    g_thread t[N];
    for (int i = 0; i < N; i++) {
        t[i] = (g_thread){.page = r + (size_t)(2 * i + 1) * P, .go = &go};
        pthread_create(&th[i], NULL, g_thread_main, &t[i]);
    }
    atomic_store(&go, 1);
    for (int i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
        cr_assert_eq(t[i].refused, 0);
        cr_assert_eq(t[i].guards, 1, "thread %d: %d guard hits", i, t[i].guards);
        cr_assert_eq((unsigned char)t[i].page[64], 0x5a);
    }
    cr_assert_eq(st(m).guard_pages, 0);
    snap s;
    snap_take(m, r, 2 * N * P, &s);
    cr_assert_eq(s.n, 1, "every guard gone, the runs merged back");
    hostmem_destroy(m);
}

/* ---- config.guard_handler: a host whose stack grows down through a guard page ---- */
typedef struct stack_host {
    hostmem_manager *m;
    char *base;   /* the reservation */
    char *guard;  /* the current guard page */
    _Atomic(void *) hit; /* set by on_guard (async-signal context) */
    int hits;
} stack_host;

static void stack_on_guard(void *context, void *address)
{
    stack_host *h = context;
    atomic_store(&h->hit, address);
}

/* Touch the stack down to `depth` pages below its top, moving the guard page
 * down after every hit (outside the signal handler), as a runtime's stack
 * probe does. */
static void stack_grow(stack_host *h, size_t P, size_t top_pages, size_t depth)
{
    char *top = h->base + top_pages * P;
    for (size_t d = 1; d <= depth; d++) {
        volatile char *frame = top - d * P + 128;
        *frame = (char)d;
        void *hit = atomic_exchange(&h->hit, NULL);
        if (hit) {
            cr_assert_eq((char *)hit, (char *)frame, "on_guard got %p, want %p", hit, (void *)frame);
            cr_assert_eq((char *)frame - 128, h->guard);
            h->hits++;
            h->guard -= P;
            commit(h->m, h->guard, P, PAGE_READWRITE | PAGE_GUARD);
        }
    }
}

Test(w2_guard_handler, stack_growth_host)
{
    size_t P = pg(), pages = 256, committed = 4;
    hostmem_config cfg;
    hostmem_config_init(&cfg);
    stack_host h = {0};
    cfg.guard_handler = true;
    cfg.on_guard = stack_on_guard;
    cfg.guard_context = &h;
    h.m = mk(&cfg);
    h.base = reserve(h.m, NULL, pages * P);
    commit(h.m, h.base + (pages - committed) * P, committed * P, PAGE_READWRITE);
    h.guard = h.base + (pages - committed - 1) * P;
    commit(h.m, h.guard, P, PAGE_READWRITE | PAGE_GUARD);
    stack_grow(&h, P, pages, 100);
    cr_assert_eq((size_t)h.hits, 100 - committed, "one hit per page grown");
    cr_assert_eq(st(h.m).guard_pages, 1);
    MEMORY_BASIC_INFORMATION mbi = q(h.m, h.guard);
    MBI_IS(mbi, h.guard, h.base, PAGE_READWRITE, P, MEM_COMMIT, PAGE_READWRITE | PAGE_GUARD);
    mbi = q(h.m, h.guard + P);
    MBI_IS(mbi, h.guard + P, h.base, PAGE_READWRITE, 100 * P, MEM_COMMIT, PAGE_READWRITE);
    cr_assert_eq(st(h.m).committed_bytes, 101 * P);
    for (size_t d = 1; d <= 100; d++)
        cr_assert_eq(h.base[(pages - d) * P + 128], (char)d);
    hostmem_destroy(h.m);
}

static sigjmp_buf chain_jmp;
static volatile sig_atomic_t chained;
static void chain_target(int sig, siginfo_t *info, void *ctx)
{
    (void)sig;
    (void)ctx;
    chained = info->si_addr != NULL;
    siglongjmp(chain_jmp, 1);
}

Test(w2_guard_handler, other_faults_go_to_the_previous_handler)
{
    size_t P = pg();
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = chain_target;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, NULL);
    hostmem_config cfg;
    hostmem_config_init(&cfg);
    cfg.guard_handler = true;
    hostmem_manager *m = mk(&cfg);
    char *r = reserve(m, NULL, 4 * P);
    commit(m, r + P, P, PAGE_READONLY | PAGE_GUARD);
    chained = 0;
    if (!sigsetjmp(chain_jmp, 1))
        (void)*(volatile char *)r; /* reserved: an access violation */
    cr_assert_eq(chained, 1);
    chained = 0;
    volatile char c = r[P + 1]; /* guard: handled, no chaining, no on_guard set */
    (void)c;
    cr_assert_eq(chained, 0);
    cr_assert_eq(q(m, r + P).Protect, PAGE_READONLY);
    if (!sigsetjmp(chain_jmp, 1))
        r[P] = 1; /* read-only now: the previous handler */
    cr_assert_eq(chained, 1);
    hostmem_destroy(m);
}

Test(w2_guard_handler, default_action_when_nobody_handled_before, .signal = SIGSEGV)
{
    size_t P = pg();
    hostmem_config cfg;
    hostmem_config_init(&cfg);
    cfg.guard_handler = true;
    hostmem_manager *m = mk(&cfg);
    char *r = alloc_ok(m, NULL, 2 * P, MEM_RESERVE | MEM_COMMIT, PAGE_READONLY | PAGE_GUARD);
    (void)*(volatile char *)r; /* the guard: survives */
    *(volatile char *)r = 1;   /* read-only: the process ends with SIGSEGV */
}

/* ---- S11: cache modifiers belong to the allocation ------------------------------ */
Test(s11_modifiers, kept_by_protect_and_reported)
{
    size_t P = pg();
    const DWORD mods[] = {PAGE_NOCACHE, PAGE_WRITECOMBINE};
    hostmem_manager *m = mk(NULL);
    for (int i = 0; i < 2; i++) {
        DWORD mod = mods[i], old = 0;
        char *a = alloc_ok(m, NULL, 2 * P, MEM_COMMIT, PAGE_READWRITE | mod);
        MEMORY_BASIC_INFORMATION mbi = q(m, a);
        MBI_IS(mbi, a, a, PAGE_READWRITE | mod, 2 * P, MEM_COMMIT, PAGE_READWRITE | mod);
        HR_OK(hostmem_virtual_protect(m, a, P, PAGE_READWRITE, &old));
        cr_assert_eq(old, PAGE_READWRITE | mod);
        mbi = q(m, a);
        MBI_IS(mbi, a, a, PAGE_READWRITE | mod, 2 * P, MEM_COMMIT, PAGE_READWRITE | mod);
        HR_OK(hostmem_virtual_protect(m, a, P, PAGE_READONLY, &old));
        cr_assert_eq(old, PAGE_READWRITE | mod);
        mbi = q(m, a);
        MBI_IS(mbi, a, a, PAGE_READWRITE | mod, P, MEM_COMMIT, PAGE_READONLY | mod);
        cr_assert(!faults_read(a));
        cr_assert(faults_write(a, 1));
        HR_OK(hostmem_virtual_free(m, a, 0, MEM_RELEASE));

        /* committed without one: protect ignores the one it is given */
        a = alloc_ok(m, NULL, 2 * P, MEM_COMMIT, PAGE_READWRITE);
        HR_OK(hostmem_virtual_protect(m, a, P, PAGE_READONLY | mod, &old));
        cr_assert_eq(old, PAGE_READWRITE);
        mbi = q(m, a);
        MBI_IS(mbi, a, a, PAGE_READWRITE, P, MEM_COMMIT, PAGE_READONLY);
        HR_OK(hostmem_virtual_free(m, a, 0, MEM_RELEASE));
    }
    /* still validated as S2: NOACCESS with a modifier, two modifiers */
    char *a = alloc_ok(m, NULL, P, MEM_COMMIT, PAGE_READWRITE | PAGE_NOCACHE);
    DWORD old = 0xdead;
    HR_EQ(hostmem_virtual_protect(m, a, P, PAGE_NOACCESS | PAGE_NOCACHE, &old), E_INVALIDARG);
    HR_EQ(hostmem_virtual_protect(m, a, P, PAGE_READWRITE | PAGE_NOCACHE | PAGE_WRITECOMBINE, &old),
          E_INVALIDARG);
    cr_assert_eq(q(m, a).Protect, PAGE_READWRITE | PAGE_NOCACHE);
    /* the commit that sets a page's protection sets its modifier */
    char *r = reserve(m, NULL, 4 * P);
    commit(m, r, 2 * P, PAGE_READWRITE | PAGE_WRITECOMBINE);
    commit(m, r + P, 2 * P, PAGE_READONLY);
    cr_assert_eq(q(m, r).Protect, PAGE_READWRITE | PAGE_WRITECOMBINE);
    cr_assert_eq(q(m, r + P).Protect, PAGE_READONLY);
    cr_assert_eq(q(m, r + P).RegionSize, 2 * P);
    hostmem_destroy(m);
}
