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
 *   not deadlock the child: hostmem's pthread_atfork handlers hold every
 *   manager's state lock across the fork, and in the child every region lock
 *   starts unlocked (only the forking thread exists there).  A region that
 *   another thread was changing at the moment of the fork is inherited as the
 *   bookkeeping last recorded it, which may lag what the kernel already did
 *   for that call (for instance a commit whose pages were made accessible but
 *   not yet recorded, or a release whose region already left the map): the
 *   child should leave such regions alone, or know that no other thread was
 *   changing them.  Regions no other thread was touching, and new ones, are
 *   exact.
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
