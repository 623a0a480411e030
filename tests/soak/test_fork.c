/*
 * test_fork.c: hostmem across fork().
 *
 * What a host can count on (this text is also the README's section on fork):
 *
 *   fork() copies the address space, and with it every manager and every
 *   region.  The child starts with the parent's bookkeeping (regions, page
 *   states, protections, totals, limits, callback) and its own copy of the
 *   memory: committed pages are copy-on-write, so each process sees only its
 *   own writes; reserved and decommitted pages stay inaccessible.  From then on
 *   the two managers are independent: a call in one process never affects the
 *   other, and each may reserve, commit, decommit, protect, reset, query and
 *   release, on inherited regions and new ones alike.  The child should end
 *   with hostmem_destroy() or _exit(); the parent's regions are its own.
 *
 *   fork() from one thread while other threads are inside hostmem calls does
 *   not deadlock the child, and the child inherits no operation half done:
 *   hostmem's pthread_atfork handlers wait for the operation in flight on
 *   each region (they take every region lock, then the state lock) and hold
 *   them across the fork; in the child every lock starts unlocked (only the
 *   forking thread exists there).  So each inherited region is exactly as
 *   its last finished operation left it, the kernel agrees with the books,
 *   and the stats and the commit budget count the child's regions only.  A
 *   reserve-and-commit another thread had not finished never happened in
 *   the child (its region is given back); a process-critical commit that was
 *   waiting for memory in another thread is simply gone.
 *
 *   Tracing: a child records LTTng events only when liblttng-ust-fork.so is
 *   preloaded (see tracepoints/README.md).
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>

#include "soak_util.h"

static MEMORY_BASIC_INFORMATION query(hostmem_manager *m, const void *a)
{
    MEMORY_BASIC_INFORMATION mbi;
    SIZE_T w = 0;
    memset(&mbi, 0xa5, sizeof mbi);
    CK_OK(hostmem_virtual_query(m, a, &mbi, sizeof mbi, &w));
    return mbi;
}

static void *alloc_ck(hostmem_manager *m, void *addr, size_t size, DWORD type, DWORD prot)
{
    void *p = NULL;
    CK_OK(hostmem_virtual_alloc(m, addr, size, type, prot, eTaskCritical, &p));
    CK(p != NULL, "NULL from a successful alloc");
    return p;
}

/* ---- the child gets a copy and can use it ------------------------------------------ */

typedef struct inherit_ctx {
    hostmem_manager *m;
    char *heap;     /* 4 MiB reserved, first 1 MiB committed READWRITE with a pattern */
    char *ro;       /* 64 KiB committed READONLY */
    hostmem_stats before;
} inherit_ctx;

static int child_inherit(void *arg)
{
    inherit_ctx *c = arg;
    hostmem_manager *m = c->m;
    size_t P = pg();
    /* The parent's bookkeeping and data, as they were at fork. */
    hostmem_stats s = stats_of(m);
    CK(stats_same(&s, &c->before), "child stats " STATS_FMT ", parent had " STATS_FMT, STATS_ARGS(s),
       STATS_ARGS(c->before));
    MEMORY_BASIC_INFORMATION mbi = query(m, c->heap);
    CK(mbi.State == MEM_COMMIT && mbi.Protect == PAGE_READWRITE && mbi.RegionSize == MiB, "heap head");
    mbi = query(m, c->heap + MiB);
    CK(mbi.State == MEM_RESERVE && mbi.RegionSize == 3 * MiB, "heap tail");
    for (size_t i = 0; i < MiB; i += 512)
        CK((unsigned char)c->heap[i] == (unsigned char)(i / 512), "inherited byte %zu", i);
    CK(faults(c->heap + MiB, 0), "inherited reserved page is accessible");
    CK(faults(c->ro, 1), "inherited READONLY page is writable");

    /* Its own writes, commits, protects, decommits and releases. */
    memset(c->heap, 0xee, MiB);
    CK(alloc_ck(m, c->heap + MiB, 2 * MiB, MEM_COMMIT, PAGE_READWRITE) == c->heap + MiB, "commit");
    CK(all_zero(c->heap + MiB, 2 * MiB), "child commit not zero");
    memset(c->heap + MiB, 0xdd, 2 * MiB);
    DWORD old = 0;
    CK_OK(hostmem_virtual_protect(m, c->ro, 64 * KiB, PAGE_READWRITE, &old));
    CK(old == PAGE_READONLY, "old protect 0x%x", (unsigned)old);
    memset(c->ro, 0x11, 64 * KiB);
    CK_OK(hostmem_virtual_free(m, c->heap, 4 * P, MEM_DECOMMIT));
    CK(faults(c->heap, 0), "decommitted page accessible in the child");
    char *fresh = alloc_ck(m, NULL, 128 * KiB, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE);
    CK(all_zero(fresh, 128 * KiB), "fresh region not zero");
    memset(fresh, 0x22, 128 * KiB);
    s = stats_of(m);
    CK(s.committed_bytes == c->before.committed_bytes + 2 * MiB - 4 * P + 128 * KiB, "child committed_bytes %zu",
       (size_t)s.committed_bytes);
    CK(s.region_count == c->before.region_count + 1, "child region_count %zu", (size_t)s.region_count);
    CK_OK(hostmem_virtual_free(m, fresh, 0, MEM_RELEASE));
    CK_OK(hostmem_virtual_free(m, c->heap, 0, MEM_RELEASE));
    CK_OK(hostmem_virtual_free(m, c->ro, 0, MEM_RELEASE));
    s = stats_of(m);
    CK(s.region_count == 0 && s.committed_bytes == 0 && s.reserved_bytes == 0, STATS_FMT, STATS_ARGS(s));
    hostmem_destroy(m);
    return 0;
}

Test(fork, child_gets_a_copy_and_can_use_it)
{
    hostmem_manager *m = NULL;
    cr_assert_eq(hostmem_create(NULL, &m), S_OK);
    inherit_ctx c = {.m = m};
    void *p = NULL;
    cr_assert_eq(hostmem_virtual_alloc(m, NULL, 4 * MiB, MEM_RESERVE, PAGE_READWRITE, eTaskCritical, &p), S_OK);
    c.heap = p;
    cr_assert_eq(hostmem_virtual_alloc(m, c.heap, MiB, MEM_COMMIT, PAGE_READWRITE, eTaskCritical, &p), S_OK);
    for (size_t i = 0; i < MiB; i++)
        c.heap[i] = (char)(i / 512);
    cr_assert_eq(hostmem_virtual_alloc(m, NULL, 64 * KiB, MEM_RESERVE | MEM_COMMIT, PAGE_READONLY, eTaskCritical, &p),
                 S_OK);
    c.ro = p;
    c.before = stats_of(m);

    char why[256];
    cr_assert_eq(child_run(child_inherit, &c, 120, why, sizeof why), 0, "child: %s", why);

    /* The parent saw none of it. */
    hostmem_stats s = stats_of(m);
    cr_assert(stats_same(&s, &c.before), "parent stats moved: " STATS_FMT, STATS_ARGS(s));
    for (size_t i = 0; i < MiB; i++)
        cr_assert_eq(c.heap[i], (char)(i / 512), "parent byte %zu changed by the child", i);
    MEMORY_BASIC_INFORMATION mbi;
    SIZE_T w;
    cr_assert_eq(hostmem_virtual_query(m, c.heap + MiB, &mbi, sizeof mbi, &w), S_OK);
    cr_assert_eq(mbi.State, MEM_RESERVE, "the child's commit shows in the parent");
    cr_assert_eq(hostmem_virtual_query(m, c.ro, &mbi, sizeof mbi, &w), S_OK);
    cr_assert_eq(mbi.Protect, PAGE_READONLY, "the child's protect shows in the parent");
    cr_assert_eq(faults(c.heap + MiB, 0), 1, "the child's commit made the parent's page accessible");
    cr_assert(all_zero(c.ro, 64 * KiB), "the child's writes show in the parent");
    hostmem_destroy(m);
}

/* ---- fork while other threads are inside hostmem ------------------------------------ */

#define FORKS 200
#define HAMMERS 2

typedef struct hammer {
    hostmem_manager *m;
    atomic_int *stop;
    unsigned seed;
    _Atomic unsigned long ops;
    HRESULT bad; /* first unexpected HRESULT, S_OK if none */
} hammer;

static unsigned rnd(unsigned *s)
{
    *s = *s * 1103515245u + 12345u;
    return *s >> 8;
}

/* Reserve, commit, decommit, protect, release, over and over: small regions
 * (arena-carved), large ones (own mappings) and reserve-and-commit. */
static void *hammer_main(void *arg)
{
    hammer *h = arg;
    size_t P = pg();
    while (!atomic_load(h->stop)) {
        unsigned r = rnd(&h->seed);
        size_t size = (r & 1) ? (size_t)(1 + r % 16) * 64 * KiB : (size_t)(2 + r % 4) * MiB;
        void *p = NULL;
        HRESULT hr = hostmem_virtual_alloc(h->m, NULL, size, (r & 2) ? MEM_RESERVE | MEM_COMMIT : MEM_RESERVE,
                                           PAGE_READWRITE, eTaskCritical, &p);
        if (FAILED(hr)) {
            h->bad = hr;
            break;
        }
        if (!(r & 2))
            hr = hostmem_virtual_alloc(h->m, p, size / 2, MEM_COMMIT, PAGE_READWRITE, eTaskCritical, &p);
        if (SUCCEEDED(hr)) {
            ((volatile char *)p)[0] = 1;
            DWORD old;
            hr = hostmem_virtual_protect(h->m, p, P, PAGE_READONLY, &old);
        }
        if (SUCCEEDED(hr))
            hr = hostmem_virtual_free(h->m, p, size / 4, MEM_DECOMMIT);
        HRESULT hr2 = hostmem_virtual_free(h->m, p, 0, MEM_RELEASE);
        if (FAILED(hr) || FAILED(hr2)) {
            h->bad = FAILED(hr) ? hr : hr2;
            break;
        }
        h->ops++;
    }
    return NULL;
}

typedef struct fork_ctx {
    hostmem_manager *m;
    char *quiet; /* a region no hammer touches: 1 MiB reserved, 64 KiB committed */
} fork_ctx;

/* In the child: a few calls on the inherited manager, then out. */
static int child_after_fork(fork_ctx *c)
{
    hostmem_manager *m = c->m;
    CK(c->quiet[0] == 0x42, "quiet region data");
    void *p = alloc_ck(m, c->quiet + 64 * KiB, 64 * KiB, MEM_COMMIT, PAGE_READWRITE);
    CK(all_zero(p, 64 * KiB), "child commit not zero");
    memset(p, 1, 64 * KiB);
    CK_OK(hostmem_virtual_free(m, p, 64 * KiB, MEM_DECOMMIT));
    char *n = alloc_ck(m, NULL, 256 * KiB, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE);
    n[0] = 1;
    MEMORY_BASIC_INFORMATION mbi = query(m, n);
    CK(mbi.State == MEM_COMMIT && mbi.AllocationBase == n, "new region query");
    CK_OK(hostmem_virtual_free(m, n, 0, MEM_RELEASE));
    hostmem_stats s;
    CK_OK(hostmem_get_stats(m, &s));
    return 0;
}

Test(fork, no_deadlock_while_threads_are_in_hostmem, .timeout = 600)
{
    hostmem_manager *m = NULL;
    cr_assert_eq(hostmem_create(NULL, &m), S_OK);
    fork_ctx c = {.m = m};
    void *p = NULL;
    cr_assert_eq(hostmem_virtual_alloc(m, NULL, MiB, MEM_RESERVE, PAGE_READWRITE, eTaskCritical, &p), S_OK);
    c.quiet = p;
    cr_assert_eq(hostmem_virtual_alloc(m, c.quiet, 64 * KiB, MEM_COMMIT, PAGE_READWRITE, eTaskCritical, &p), S_OK);
    memset(c.quiet, 0x42, 64 * KiB);

    atomic_int stop = 0;
    hammer h[HAMMERS];
    pthread_t t[HAMMERS];
    for (int i = 0; i < HAMMERS; i++) {
        h[i] = (hammer){.m = m, .stop = &stop, .seed = 1234u + (unsigned)i, .bad = S_OK};
        cr_assert_eq(pthread_create(&t[i], NULL, hammer_main, &h[i]), 0);
    }
    int hung = 0, failed = 0;
    char why[256], first_why[256] = "";
    for (int k = 0; k < FORKS; k++) {
        /* Let the hammers get going between forks (progress, not time). */
        unsigned long target = h[0].ops + h[1].ops + 4;
        uint64_t give_up = now_ns() + 60 * 1000000000ull; /* a hang detector */
        while (h[0].ops + h[1].ops < target && h[0].bad == S_OK && h[1].bad == S_OK)
            if (sched_yield(), now_ns() > give_up)
                cr_assert_fail("the hammer threads made no progress for 60 s (hung inside hostmem?) after %d forks", k);
        fflush(stdout);
        fflush(stderr);
        pid_t pid = fork();
        cr_assert_geq(pid, 0, "fork: %s", strerror(errno));
        if (pid == 0) {
            alarm(90); /* ends a hung child even if this worker is gone */
            _exit(child_after_fork(&c));
        }
        int timed_out, status = child_wait(pid, 60, &timed_out);
        if (timed_out)
            hung++;
        else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
            failed++;
        if ((timed_out || !WIFEXITED(status) || WEXITSTATUS(status)) && !first_why[0])
            snprintf(first_why, sizeof first_why, "fork %d: %s", k, status_text(status, timed_out, why, sizeof why));
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < HAMMERS; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < HAMMERS; i++)
        cr_assert_eq(h[i].bad, S_OK, "hammer %d: %s", i, hostmem_hresult_name(h[i].bad));
    cr_assert_eq(hung, 0, "%d of %d children hung (first: %s)", hung, FORKS, first_why);
    cr_assert_eq(failed, 0, "%d of %d children failed (first: %s)", failed, FORKS, first_why);
    cr_assert_gt(h[0].ops + h[1].ops, (unsigned long)FORKS, "the hammers barely ran");
    cr_assert_eq(c.quiet[0], 0x42);
    cr_assert_eq(hostmem_virtual_free(m, c.quiet, 0, MEM_RELEASE), S_OK);
    hostmem_stats s = stats_of(m);
    cr_assert(s.region_count == 0 && s.committed_bytes == 0 && s.reserved_bytes == 0, STATS_FMT, STATS_ARGS(s));
    hostmem_destroy(m);
}

/* ---- fork during each operation: the child's books describe its own regions ---------- */

/* One thread runs every operation in turn on two regions at addresses known in
 * advance (a mapping of its own at X, an arena-carved reserve-and-commit at
 * B), while the main thread forks.  Each child walks both addresses with
 * query and checks that the stats count exactly what it finds, that a
 * reserve-and-commit is never seen half done, and that the kernel agrees with
 * the books page by page. */

#define OP_FORKS 150

typedef struct op_hammer {
    hostmem_manager *m;
    char *_Atomic x; /* 2 MiB, a mapping of its own; chosen by the hammer thread */
    char *b;         /* 64 KiB inside an arena */
    atomic_int stop;
    _Atomic unsigned long ops;
    HRESULT bad;
} op_hammer;

static void *op_hammer_main(void *arg)
{
    op_hammer *h = arg;
    size_t P = pg();
    free(malloc(64)); /* this thread's malloc arena exists before X is chosen */
    void *p = NULL;
    HRESULT hr = hostmem_virtual_alloc(h->m, NULL, 2 * MiB, MEM_RESERVE, PAGE_READWRITE, eTaskCritical, &p);
    if (SUCCEEDED(hr))
        hr = hostmem_virtual_free(h->m, p, 0, MEM_RELEASE);
    if (FAILED(hr)) {
        h->bad = hr;
        atomic_store(&h->x, (char *)1);
        return NULL;
    }
    char *x = p;
    atomic_store(&h->x, x);
    for (unsigned i = 0; !atomic_load(&h->stop); i++) {
        DWORD old;
        void *q;
#define STEP(e)                 \
    if (FAILED(hr = (e))) {     \
        h->bad = hr;            \
        return NULL;            \
    }
        STEP(hostmem_virtual_alloc(h->m, x, 2 * MiB, MEM_RESERVE, PAGE_READWRITE, eTaskCritical, &q));
        STEP(hostmem_virtual_alloc(h->m, x, 256 * KiB, MEM_COMMIT, PAGE_READWRITE, eTaskCritical, &q));
        STEP(hostmem_virtual_alloc(h->m, h->b, 64 * KiB, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE, eTaskCritical, &q));
        STEP(hostmem_virtual_protect(h->m, x + 64 * KiB, 64 * KiB, PAGE_READONLY, &old));
        STEP(hostmem_virtual_free(h->m, x + (i % 4) * 64 * KiB, 64 * KiB, MEM_DECOMMIT));
        STEP(hostmem_virtual_free(h->m, h->b, 0, MEM_RELEASE));
        STEP(hostmem_virtual_alloc(h->m, x + MiB, 8 * P, MEM_COMMIT, PAGE_READONLY, eTaskCritical, &q));
        STEP(hostmem_virtual_free(h->m, x, 0, MEM_RELEASE));
#undef STEP
        h->ops++;
    }
    return NULL;
}

/* Walk the region at base (if any) with query; check each run against the
 * kernel.  Adds its size and committed bytes to the totals. */
static void child_walk(hostmem_manager *m, char *base, size_t size, bool all_committed, size_t *reserved,
                       size_t *committed, size_t *regions)
{
    MEMORY_BASIC_INFORMATION mbi = query(m, base);
    if (mbi.State == MEM_FREE)
        return;
    CK(mbi.AllocationBase == base, "%p: allocation base %p", (void *)base, mbi.AllocationBase);
    *reserved += size;
    (*regions)++;
    for (char *a = base; a < base + size; a += mbi.RegionSize) {
        mbi = query(m, a);
        CK(mbi.AllocationBase == base && mbi.RegionSize && a + mbi.RegionSize <= base + size,
           "%p: allocation base %p size %zu", (void *)a, mbi.AllocationBase, (size_t)mbi.RegionSize);
        CK(!all_committed || mbi.State == MEM_COMMIT, "%p: a reserve-and-commit seen reserved", (void *)a);
        if (mbi.State == MEM_COMMIT)
            *committed += mbi.RegionSize;
        /* The kernel agrees with the books: reserved pages are inaccessible,
         * committed ones have the protection query reports. */
        uintptr_t s, e;
        char perms[5];
        CK(maps_find((uintptr_t)a, &s, &e, perms) == 0, "%p: not mapped", (void *)a);
        const char *want = mbi.State == MEM_RESERVE        ? "---p"
                           : mbi.Protect == PAGE_READWRITE ? "rw-p"
                           : mbi.Protect == PAGE_READONLY  ? "r--p"
                                                           : "?";
        CK(!memcmp(perms, want, 4), "%p: the kernel says %.4s, query state 0x%x protect 0x%x", (void *)a, perms,
           (unsigned)mbi.State, (unsigned)mbi.Protect);
    }
}

typedef struct op_child {
    op_hammer *h;
    char *quiet; /* 1 MiB reserved, 128 KiB committed: nobody touches it */
} op_child;

static int child_op_in_flight(op_child *c)
{
    hostmem_manager *m = c->h->m;
    size_t reserved = MiB, committed = 128 * KiB, regions = 1;
    child_walk(m, c->h->x, 2 * MiB, false, &reserved, &committed, &regions);
    child_walk(m, c->h->b, 64 * KiB, true, &reserved, &committed, &regions);
    hostmem_stats s = stats_of(m);
    CK(s.reserved_bytes == reserved && s.committed_bytes == committed && s.region_count == regions,
       "child stats " STATS_FMT ", its regions hold reserved %zu committed %zu regions %zu", STATS_ARGS(s), reserved,
       committed, regions);
    /* The budget is the child's own: with its regions given back, the whole
     * limit is there for a process-critical commit. */
    if (query(m, c->h->x).State != MEM_FREE)
        CK_OK(hostmem_virtual_free(m, c->h->x, 0, MEM_RELEASE));
    if (query(m, c->h->b).State != MEM_FREE)
        CK_OK(hostmem_virtual_free(m, c->h->b, 0, MEM_RELEASE));
    CK_OK(hostmem_virtual_free(m, c->quiet, 0, MEM_DECOMMIT));
    void *p = alloc_ck(m, NULL, MiB, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE);
    (void)p;
    void *q = NULL;
    CK_OK(hostmem_virtual_alloc(m, NULL, MiB, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE, eProcessCritical, &q));
    s = stats_of(m);
    CK(s.committed_bytes == 2 * MiB && s.region_count == 3, STATS_FMT, STATS_ARGS(s));
    return 0;
}

Test(fork, child_books_count_only_its_regions_whatever_op_was_in_flight, .timeout = 600)
{
    hostmem_config cfg;
    hostmem_config_init(&cfg);
    cfg.commit_limit = 2 * MiB + 64 * KiB; /* tight: a leaked charge shows as a denial too */
    cfg.task_percent = 100;
    cfg.appdomain_percent = 100;
    hostmem_manager *m = NULL;
    cr_assert_eq(hostmem_create(&cfg, &m), S_OK);
    void *p = NULL;
    cr_assert_eq(hostmem_virtual_alloc(m, NULL, MiB, MEM_RESERVE, PAGE_READWRITE, eTaskCritical, &p), S_OK);
    char *quiet = p;
    cr_assert_eq(hostmem_virtual_alloc(m, quiet, 128 * KiB, MEM_COMMIT, PAGE_READWRITE, eTaskCritical, &p), S_OK);
    cr_assert_eq(hostmem_virtual_alloc(m, NULL, 64 * KiB, MEM_RESERVE, PAGE_READWRITE, eTaskCritical, &p), S_OK);
    cr_assert_eq(hostmem_virtual_free(m, p, 0, MEM_RELEASE), S_OK);
    op_hammer h = {.m = m, .b = p, .bad = S_OK};
    op_child c = {.h = &h, .quiet = quiet};

    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, op_hammer_main, &h), 0);
    while (!atomic_load(&h.x))
        sched_yield();
    int failed = 0;
    char why[256], first_why[256] = "";
    for (int k = 0; k < OP_FORKS && h.bad == S_OK; k++) {
        unsigned long target = h.ops + 1;
        uint64_t give_up = now_ns() + 60 * 1000000000ull;
        while (h.ops < target && h.bad == S_OK)
            if (sched_yield(), now_ns() > give_up)
                cr_assert_fail("the hammer thread made no progress for 60 s after %d forks", k);
        /* Somewhere inside the sequence, not always at its start. */
        for (volatile unsigned spin = (unsigned)k * 977u % 20000u; spin; spin--)
            ;
        fflush(stdout);
        fflush(stderr);
        pid_t pid = fork();
        cr_assert_geq(pid, 0, "fork: %s", strerror(errno));
        if (pid == 0) {
            alarm(90);
            _exit(child_op_in_flight(&c));
        }
        int timed_out, status = child_wait(pid, 60, &timed_out);
        if (timed_out || !WIFEXITED(status) || WEXITSTATUS(status)) {
            if (!failed++)
                snprintf(first_why, sizeof first_why, "fork %d: %s", k, status_text(status, timed_out, why, sizeof why));
        }
    }
    atomic_store(&h.stop, 1);
    pthread_join(t, NULL);
    cr_assert_eq(h.bad, S_OK, "hammer: %s", hostmem_hresult_name(h.bad));
    cr_assert_eq(failed, 0, "%d of %d children found books that are not theirs (first: %s)", failed, OP_FORKS,
                 first_why);
    hostmem_destroy(m);
}

/* ---- fork while a process-critical commit waits for memory ------------------------------ */

typedef struct waiter {
    hostmem_manager *m;
    char *region;
    atomic_int waiting;
    HRESULT hr;
} waiter;

static void *waiter_main(void *arg)
{
    waiter *w = arg;
    void *p = NULL;
    atomic_store(&w->waiting, 1);
    /* Over the limit: waits (process_critical_wait_ms) for memory that never comes. */
    w->hr = hostmem_virtual_alloc(w->m, w->region, MiB, MEM_COMMIT, PAGE_READWRITE, eProcessCritical, &p);
    return NULL;
}

static int child_after_waiter(void *arg)
{
    waiter *w = arg;
    hostmem_manager *m = w->m;
    /* Giving charge back wakes waiters: there are none in the child, and the
     * call must not wait for the parent's. */
    CK_OK(hostmem_virtual_free(m, w->region + 2 * MiB, MiB, MEM_DECOMMIT));
    void *p = NULL;
    CK_OK(hostmem_virtual_alloc(m, w->region, MiB, MEM_COMMIT, PAGE_READWRITE, eProcessCritical, &p));
    hostmem_stats s = stats_of(m);
    CK(s.committed_bytes == MiB, STATS_FMT, STATS_ARGS(s));
    hostmem_destroy(m);
    return 0;
}

Test(fork, child_of_a_fork_during_a_process_critical_wait_does_not_hang, .timeout = 120)
{
    hostmem_config cfg;
    hostmem_config_init(&cfg);
    cfg.commit_limit = MiB;
    cfg.process_critical_wait_ms = 1500;
    hostmem_manager *m = NULL;
    cr_assert_eq(hostmem_create(&cfg, &m), S_OK);
    void *p = NULL;
    cr_assert_eq(hostmem_virtual_alloc(m, NULL, 4 * MiB, MEM_RESERVE, PAGE_READWRITE, eTaskCritical, &p), S_OK);
    waiter w = {.m = m, .region = p, .hr = S_OK};
    cr_assert_eq(
        hostmem_virtual_alloc(m, w.region + 2 * MiB, MiB, MEM_COMMIT, PAGE_READWRITE, eProcessCritical, &p), S_OK);
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, waiter_main, &w), 0);
    while (!atomic_load(&w.waiting))
        sched_yield();
    usleep(300 * 1000); /* inside the wait by now */
    char why[256];
    int rc = child_run(child_after_waiter, &w, 20, why, sizeof why);
    pthread_join(t, NULL);
    cr_assert_eq(rc, 0, "child: %s", why);
    cr_assert_eq(w.hr, E_OUTOFMEMORY, "the waiter got %s", hostmem_hresult_name(w.hr));
    hostmem_destroy(m);
}

/* ---- fork while other threads are inside the heap (IHostMalloc) ------------------------ */

/* Two threads allocate and free blocks of every size class and large blocks in
 * one thread-safe heap, so its bin locks, its pool lock and its thread caches
 * are busy, while the main thread forks.  Each child allocates and frees in
 * every class and a large block: a lock held at fork by a thread that does not
 * exist in the child would hang it.  Then it destroys the heap, and the
 * manager's books must come back to what the parent had outside the heap. */

#define HEAP_FORKS 120

typedef struct heap_hammer {
    hostmem_malloc *h;
    atomic_int *stop;
    unsigned seed;
    _Atomic unsigned long ops;
    HRESULT bad;
} heap_hammer;

static void *heap_hammer_main(void *arg)
{
    heap_hammer *hh = arg;
    void *keep[64] = {0};
    while (!atomic_load(hh->stop)) {
        unsigned r = rnd(&hh->seed);
        unsigned slot = r % 64;
        if (keep[slot]) {
            HRESULT hr = hostmem_malloc_free(hh->h, keep[slot]);
            keep[slot] = NULL;
            if (FAILED(hr)) {
                hh->bad = hr;
                break;
            }
        } else {
            size_t size = (r >> 8) % 16 == 0 ? 64 * KiB + (r >> 12) % 4096 : (size_t)(r >> 6) % 8192;
            HRESULT hr = hostmem_malloc_alloc(hh->h, size, eTaskCritical, &keep[slot]);
            if (FAILED(hr)) {
                hh->bad = hr;
                break;
            }
            memset(keep[slot], 0x5a, size < 64 ? size : 64);
        }
        hh->ops++;
    }
    for (unsigned i = 0; i < 64; i++)
        if (keep[i])
            hostmem_malloc_free(hh->h, keep[i]);
    return NULL;
}

typedef struct heap_child {
    hostmem_manager *m;
    hostmem_malloc *h;
} heap_child;

static int child_heap_after_fork(void *arg)
{
    heap_child *c = arg;
    void *p[32];
    for (unsigned i = 0; i < 32; i++) {
        size_t size = i < 31 ? ((size_t)16 << (i % 10)) + i : 256 * KiB;
        CK_OK(hostmem_malloc_alloc(c->h, size, eTaskCritical, &p[i]));
        memset(p[i], (int)i, size);
    }
    for (unsigned i = 0; i < 32; i++)
        CK_OK(hostmem_malloc_free(c->h, p[i]));
    hostmem_malloc_destroy(c->h);
    hostmem_stats s = stats_of(c->m);
    CK(s.region_count == 0 && s.committed_bytes == 0, "after the heap's destroy: " STATS_FMT, STATS_ARGS(s));
    return 0;
}

Test(fork, no_deadlock_while_threads_are_in_the_heap, .timeout = 600)
{
    hostmem_manager *m = NULL;
    cr_assert_eq(hostmem_create(NULL, &m), S_OK);
    hostmem_malloc *hp = NULL;
    cr_assert_eq(hostmem_create_malloc(m, MALLOC_THREADSAFE, &hp), S_OK);
    atomic_int stop = 0;
    heap_hammer hh[HAMMERS];
    pthread_t t[HAMMERS];
    for (int i = 0; i < HAMMERS; i++) {
        hh[i] = (heap_hammer){.h = hp, .stop = &stop, .seed = 77u + (unsigned)i, .bad = S_OK};
        cr_assert_eq(pthread_create(&t[i], NULL, heap_hammer_main, &hh[i]), 0);
    }
    heap_child c = {.m = m, .h = hp};
    int failed = 0;
    char why[200], first_why[256] = "";
    for (int k = 0; k < HEAP_FORKS; k++) {
        unsigned long target = hh[0].ops + hh[1].ops + 16;
        uint64_t give_up = now_ns() + 60 * 1000000000ull;
        while (hh[0].ops + hh[1].ops < target && hh[0].bad == S_OK && hh[1].bad == S_OK)
            if (sched_yield(), now_ns() > give_up)
                cr_assert_fail("the heap threads made no progress for 60 s after %d forks", k);
        if (child_run(child_heap_after_fork, &c, 30, why, sizeof why) != 0 && !failed++)
            snprintf(first_why, sizeof first_why, "fork %d: %s", k, why);
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < HAMMERS; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < HAMMERS; i++)
        cr_assert_eq(hh[i].bad, S_OK, "heap thread %d: %s", i, hostmem_hresult_name(hh[i].bad));
    cr_assert_eq(failed, 0, "%d of %d children failed (first: %s)", failed, HEAP_FORKS, first_why);
    hostmem_malloc_destroy(hp);
    hostmem_stats s = stats_of(m);
    cr_assert(s.region_count == 0 && s.committed_bytes == 0, STATS_FMT, STATS_ARGS(s));
    hostmem_destroy(m);
}
