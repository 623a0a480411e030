/*
 * race: what a query may answer while another thread changes the region it
 * looks at (S9: never a state the address did not have at some
 * instant during the call).  A plain program, so that it also runs under
 * ThreadSanitizer (Criterion cannot).
 *
 *   hostmem-race SCENARIO
 *
 * Each scenario runs a writer thread for a bounded number of cycles
 * (HOSTMEM_RACE_CYCLES multiplies them, default 1; a fifth of them under
 * ThreadSanitizer, half under AddressSanitizer) while the main thread
 * queries the addresses the writer works on, and checks every answer
 * against the short list of states the address goes through:
 *
 *   reserve         reserve(X, 2 MiB) at a fixed address (a mapping of its
 *                   own), commit 2 pages READONLY, decommit, release;
 *   reserve-arena   the same with 64 KiB carved from an arena;
 *   reserve-commit  reserve-and-commit at NULL (2 MiB and 64 KiB), release:
 *                   a query never sees such a region reserved but not
 *                   committed (the call is one step);
 *   pages           commit / protect / decommit of pages of one region;
 *   whole           commit / protect / decommit of a whole 1 MiB region (its
 *                   16 granules change state together): two queries in a row
 *                   at different granules never see the second older than
 *                   the first;
 *   shutdown        threads reserving, committing and querying while the
 *                   manager shuts down: every call returns a documented code
 *                   and the books still add up afterwards.
 *
 * Exit status 0 when every answer was allowed.
 */
#define _GNU_SOURCE 1
#include <hostmem/hostmem.h>

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define KiB ((size_t)1 << 10)
#define MiB ((size_t)1 << 20)

static hostmem_manager *m;
static size_t P;
static unsigned scale = 1;

/* Cycles at scale 1: a few seconds in a plain build, each scenario, and still
 * thousands of racing answers under a sanitizer. */
#if defined(__SANITIZE_THREAD__)
#define CYCLES(n) ((n) / 5 * scale)
#elif defined(__SANITIZE_ADDRESS__)
#define CYCLES(n) ((n) / 2 * scale)
#else
#define CYCLES(n) ((n) * scale)
#endif
static atomic_int done;
static atomic_int bad;
static unsigned long seen[4]; /* free, reserved, committed, other */

#define FAIL(...)                                                                             \
    do {                                                                                      \
        if (atomic_fetch_add(&bad, 1) < 10) {                                                 \
            fprintf(stderr, __VA_ARGS__);                                                     \
            fputc('\n', stderr);                                                              \
        }                                                                                     \
    } while (0)

#define MUST(expr)                                                                            \
    do {                                                                                      \
        HRESULT hr_ = (expr);                                                                 \
        if (FAILED(hr_)) {                                                                    \
            fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #expr, hostmem_hresult_name(hr_)); \
            exit(1);                                                                          \
        }                                                                                     \
    } while (0)

static void describe(const char *what, const void *addr, const MEMORY_BASIC_INFORMATION *mbi)
{
    FAIL("%s: query %p: State 0x%x Protect 0x%x AllocationBase %p AllocationProtect 0x%x Type 0x%x "
         "RegionSize %zu",
         what, addr, (unsigned)mbi->State, (unsigned)mbi->Protect, mbi->AllocationBase,
         (unsigned)mbi->AllocationProtect, (unsigned)mbi->Type, (size_t)mbi->RegionSize);
}

static MEMORY_BASIC_INFORMATION ask(const void *addr)
{
    MEMORY_BASIC_INFORMATION mbi;
    SIZE_T w = 0;
    memset(&mbi, 0xa5, sizeof mbi);
    HRESULT hr = hostmem_virtual_query(m, addr, &mbi, sizeof mbi, &w);
    if (hr != S_OK) {
        FAIL("query %p: %s", addr, hostmem_hresult_name(hr));
        memset(&mbi, 0, sizeof mbi);
    }
    return mbi;
}

/* Free space, or our region at `base` reserved with `alloc_protect`, its page
 * reserved or committed with one of `committed` (0-terminated). */
static void check_answer(const char *what, const void *addr, const MEMORY_BASIC_INFORMATION *mbi, const void *base,
                         DWORD alloc_protect, bool reserved_ok, const DWORD *committed)
{
    if (mbi->State == MEM_FREE) {
        if (mbi->AllocationBase || mbi->AllocationProtect || mbi->Type || mbi->Protect != PAGE_NOACCESS)
            describe(what, addr, mbi);
        seen[0]++;
        return;
    }
    if (mbi->AllocationBase != base || mbi->AllocationProtect != alloc_protect || mbi->Type != MEM_PRIVATE) {
        describe(what, addr, mbi);
        seen[3]++;
        return;
    }
    if (mbi->State == MEM_RESERVE) {
        if (!reserved_ok || mbi->Protect)
            describe(what, addr, mbi);
        seen[1]++;
        return;
    }
    for (const DWORD *c = committed; *c; c++)
        if (mbi->State == MEM_COMMIT && mbi->Protect == *c) {
            seen[2]++;
            return;
        }
    describe(what, addr, mbi);
    seen[3]++;
}

static void report(const char *name)
{
    printf("%s: %lu answers free, %lu reserved, %lu committed, %lu other; %d bad\n", name, seen[0], seen[1],
           seen[2], seen[3], atomic_load(&bad));
}

/* ---- reserve / commit / decommit / release at a fixed address ------------------------- */

/* Where the kernel puts a reservation of `size` once this thread runs (its
 * stack and malloc arena exist by now): free, and it stays free. */
static char *free_address(size_t size)
{
    free(malloc(64));
    void *p = NULL;
    MUST(hostmem_virtual_alloc(m, NULL, size, MEM_RESERVE, PAGE_READWRITE, eTaskCritical, &p));
    MUST(hostmem_virtual_free(m, p, 0, MEM_RELEASE));
    return p;
}

typedef struct cycle_arg {
    char *_Atomic x; /* NULL: the writer picks it */
    size_t size;
    unsigned cycles;
} cycle_arg;

static void *cycle_writer(void *p)
{
    cycle_arg *a = p;
    if (!a->x)
        atomic_store(&a->x, free_address(a->size));
    for (unsigned i = 0; i < a->cycles; i++) {
        void *r = NULL, *c = NULL;
        MUST(hostmem_virtual_alloc(m, a->x, a->size, MEM_RESERVE, PAGE_READWRITE, eTaskCritical, &r));
        MUST(hostmem_virtual_alloc(m, a->x, 2 * P, MEM_COMMIT, PAGE_READONLY, eTaskCritical, &c));
        MUST(hostmem_virtual_free(m, a->x, 2 * P, MEM_DECOMMIT));
        MUST(hostmem_virtual_free(m, a->x, 0, MEM_RELEASE));
    }
    atomic_store(&done, 1);
    return NULL;
}

static int run_cycles(const char *name, char *x, size_t size, unsigned cycles)
{
    cycle_arg a = {.x = x, .size = size, .cycles = CYCLES(cycles)};
    pthread_t t;
    atomic_store(&done, 0);
    pthread_create(&t, NULL, cycle_writer, &a);
    while (!(x = atomic_load(&a.x)))
        sched_yield();
    static const DWORD ro[] = {PAGE_READONLY, 0};
    while (!atomic_load(&done)) {
        MEMORY_BASIC_INFORMATION mbi = ask(x);
        check_answer(name, x, &mbi, x, PAGE_READWRITE, true, ro);
        mbi = ask(x + 4 * P); /* a page that is never committed */
        check_answer(name, x + 4 * P, &mbi, x, PAGE_READWRITE, true, ro + 1);
    }
    pthread_join(t, NULL);
    report(name);
    return 0;
}

static int scenario_reserve(void)
{
    return run_cycles("reserve", NULL, 2 * MiB, 10000);
}

static int scenario_reserve_arena(void)
{
    /* An address inside an arena: reserve at NULL once, remember, release. */
    void *p = NULL;
    MUST(hostmem_virtual_alloc(m, NULL, 64 * KiB, MEM_RESERVE, PAGE_READWRITE, eTaskCritical, &p));
    MUST(hostmem_virtual_free(m, p, 0, MEM_RELEASE));
    return run_cycles("reserve-arena", p, 64 * KiB, 20000);
}

/* ---- reserve-and-commit at NULL ---------------------------------------------------------- */

typedef struct rc_arg {
    size_t size;
    unsigned cycles;
    /* Bases of the newest regions: the next one is usually at one of them
     * (the kernel alternates between a few holes, the arena reuses its first). */
    _Atomic uintptr_t last[4];
    bool fixed; /* at last[0] every time */
} rc_arg;

static void *rc_writer(void *p)
{
    rc_arg *a = p;
    void *at = NULL;
    if (a->fixed) {
        /* Chosen here, once this thread's stack and malloc arena exist. */
        at = free_address(a->size);
        for (int i = 0; i < 4; i++)
            atomic_store(&a->last[i], (uintptr_t)at);
    }
    for (unsigned i = 0; i < a->cycles; i++) {
        void *r = NULL;
        MUST(hostmem_virtual_alloc(m, at, a->size, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE, eTaskCritical, &r));
        atomic_store(&a->last[i % 4], (uintptr_t)r);
        MUST(hostmem_virtual_free(m, r, 0, MEM_RELEASE));
    }
    atomic_store(&done, 1);
    return NULL;
}

static int scenario_reserve_commit(void)
{
    static const DWORD rw[] = {PAGE_READWRITE, 0};
    size_t sizes[] = {2 * MiB, 64 * KiB, 2 * MiB};
    unsigned cycles[] = {5000, 20000, 5000};
    const char *names[] = {"reserve-commit 2 MiB", "reserve-commit 64 KiB", "reserve-commit 2 MiB at X"};
    for (int k = 0; k < 3; k++) {
        rc_arg a = {.size = sizes[k], .cycles = CYCLES(cycles[k]), .fixed = k == 2};
        for (int i = 0; i < 4 && !a.fixed; i++) {
            void *r = NULL;
            MUST(hostmem_virtual_alloc(m, NULL, a.size, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE, eTaskCritical, &r));
            MUST(hostmem_virtual_free(m, r, 0, MEM_RELEASE));
            atomic_store(&a.last[i], (uintptr_t)r);
        }
        atomic_store(&done, 0);
        memset(seen, 0, sizeof seen);
        pthread_t t;
        pthread_create(&t, NULL, rc_writer, &a);
        while (!atomic_load(&a.last[3]))
            sched_yield();
        for (unsigned i = 0; !atomic_load(&done); i++) {
            char *x = (char *)atomic_load(&a.last[i % 4]);
            MEMORY_BASIC_INFORMATION mbi = ask(x + P);
            if (mbi.State != MEM_FREE && mbi.AllocationBase != x)
                continue; /* another region of the writer's, elsewhere: not ours to judge */
            check_answer(names[k], x + P, &mbi, x, PAGE_READWRITE, false, rw);
        }
        pthread_join(t, NULL);
        report(names[k]);
    }
    return 0;
}

/* ---- page operations on one region -------------------------------------------------------- */

typedef struct pages_arg {
    char *base;
    unsigned cycles;
} pages_arg;

static void *pages_writer(void *p)
{
    pages_arg *a = p;
    for (unsigned i = 0; i < a->cycles; i++) {
        void *c = NULL;
        DWORD old;
        MUST(hostmem_virtual_alloc(m, a->base, 8 * P, MEM_COMMIT, PAGE_READONLY, eTaskCritical, &c));
        MUST(hostmem_virtual_protect(m, a->base + 2 * P, 4 * P, PAGE_READWRITE, &old));
        MUST(hostmem_virtual_protect(m, a->base, 8 * P, PAGE_EXECUTE_READ, &old));
        MUST(hostmem_virtual_free(m, a->base, 8 * P, MEM_DECOMMIT));
    }
    atomic_store(&done, 1);
    return NULL;
}

static int scenario_pages(void)
{
    void *r = NULL;
    MUST(hostmem_virtual_alloc(m, NULL, 2 * MiB, MEM_RESERVE, PAGE_NOACCESS, eTaskCritical, &r));
    pages_arg a = {.base = r, .cycles = CYCLES(10000)};
    atomic_store(&done, 0);
    pthread_t t;
    pthread_create(&t, NULL, pages_writer, &a);
    static const DWORD any[] = {PAGE_READONLY, PAGE_READWRITE, PAGE_EXECUTE_READ, 0};
    while (!atomic_load(&done)) {
        for (size_t pg = 0; pg < 9; pg += 3) {
            MEMORY_BASIC_INFORMATION mbi = ask(a.base + pg * P);
            check_answer("pages", a.base + pg * P, &mbi, a.base, PAGE_NOACCESS, true, any);
            /* A run never reaches past the pages the writer changes together. */
            if (mbi.State == MEM_COMMIT && pg < 8 && mbi.RegionSize > (8 - pg) * P)
                describe("pages: run too long", a.base + pg * P, &mbi);
        }
    }
    pthread_join(t, NULL);
    MUST(hostmem_virtual_free(m, r, 0, MEM_RELEASE));
    report("pages");
    return 0;
}

/* ---- a whole region changing state, seen at two granules ----------------------------------- */

/* The writer's operations in order: op k (k >= 1) leaves the region in phase
 * k % 3 (0 reserved, 1 committed READWRITE, 2 committed READONLY). */
static _Atomic unsigned long whole_started, whole_finished;

static void *whole_writer(void *p)
{
    pages_arg *a = p;
    for (unsigned i = 0; i < a->cycles; i++) {
        void *c = NULL;
        DWORD old;
        atomic_fetch_add(&whole_started, 1);
        MUST(hostmem_virtual_alloc(m, a->base, MiB, MEM_COMMIT, PAGE_READWRITE, eTaskCritical, &c));
        atomic_fetch_add(&whole_finished, 1);
        atomic_fetch_add(&whole_started, 1);
        MUST(hostmem_virtual_protect(m, a->base, MiB, PAGE_READONLY, &old));
        atomic_fetch_add(&whole_finished, 1);
        atomic_fetch_add(&whole_started, 1);
        MUST(hostmem_virtual_free(m, a->base, MiB, MEM_DECOMMIT));
        atomic_fetch_add(&whole_finished, 1);
    }
    atomic_store(&done, 1);
    return NULL;
}

static int whole_phase(const MEMORY_BASIC_INFORMATION *mbi)
{
    if (mbi->State == MEM_RESERVE)
        return 0;
    return mbi->Protect == PAGE_READWRITE ? 1 : 2;
}

static int scenario_whole(void)
{
    void *r = NULL;
    MUST(hostmem_virtual_alloc(m, NULL, MiB, MEM_RESERVE, PAGE_NOACCESS, eTaskCritical, &r));
    char *base = r;
    pages_arg a = {.base = base, .cycles = CYCLES(20000)};
    atomic_store(&done, 0);
    pthread_t t;
    pthread_create(&t, NULL, whole_writer, &a);
    static const DWORD any[] = {PAGE_READWRITE, PAGE_READONLY, 0};
    unsigned long judged = 0;
    for (unsigned i = 0; !atomic_load(&done); i++) {
        size_t ga = i % 16, gb = 15 - ga; /* two granules, both orders */
        unsigned long f0 = atomic_load(&whole_finished);
        MEMORY_BASIC_INFORMATION qa = ask(base + ga * 64 * KiB), qb = ask(base + gb * 64 * KiB + P);
        unsigned long s1 = atomic_load(&whole_started);
        check_answer("whole", base + ga * 64 * KiB, &qa, base, PAGE_NOACCESS, true, any);
        check_answer("whole", base + gb * 64 * KiB + P, &qb, base, PAGE_NOACCESS, true, any);
        for (int k = 0; k < 2; k++) {
            const MEMORY_BASIC_INFORMATION *q = k ? &qb : &qa;
            uintptr_t at = k ? (uintptr_t)(base + gb * 64 * KiB + P) : (uintptr_t)(base + ga * 64 * KiB);
            if ((uintptr_t)q->BaseAddress + q->RegionSize != (uintptr_t)base + MiB)
                describe("whole: a run that is not the rest of the region", (void *)at, q);
        }
        /* At most one operation ran while both queries did: each sees the
         * state before it or after it, and the second never the older. */
        if (s1 <= f0 + 1) {
            judged++;
            int pa = whole_phase(&qa), pb = whole_phase(&qb);
            if (pa != pb && pa == (int)((f0 + 1) % 3) && pb == (int)(f0 % 3))
                describe("whole: the second query saw the region older than the first", base + gb * 64 * KiB + P, &qb);
        }
    }
    pthread_join(t, NULL);
    MUST(hostmem_virtual_free(m, r, 0, MEM_RELEASE));
    report("whole");
    printf("whole: %lu pairs judged for order\n", judged);
    return 0;
}

/* ---- shutdown while calls are in flight ----------------------------------------------------- */

static void *shutdown_worker(void *p)
{
    (void)p;
    for (unsigned i = 0;; i++) {
        void *r = NULL;
        size_t size = (i & 1) ? 64 * KiB : 2 * MiB;
        HRESULT hr = hostmem_virtual_alloc(m, NULL, size, (i & 2) ? MEM_RESERVE | MEM_COMMIT : MEM_RESERVE,
                                           PAGE_READWRITE, eTaskCritical, &r);
        if (hr == HOST_E_CLRNOTAVAILABLE || hr == HOST_E_ABANDONED)
            break;
        if (FAILED(hr)) {
            FAIL("shutdown: reserve: %s", hostmem_hresult_name(hr));
            break;
        }
        MEMORY_BASIC_INFORMATION mbi;
        SIZE_T w;
        hr = hostmem_virtual_query(m, r, &mbi, sizeof mbi, &w);
        if (hr != S_OK && hr != HOST_E_CLRNOTAVAILABLE)
            FAIL("shutdown: query: %s", hostmem_hresult_name(hr));
        hr = hostmem_virtual_free(m, r, 0, MEM_RELEASE);
        if (hr != S_OK && hr != HOST_E_CLRNOTAVAILABLE && hr != HOST_E_ABANDONED)
            FAIL("shutdown: release: %s", hostmem_hresult_name(hr));
        if (FAILED(hr))
            break;
    }
    return NULL;
}

static int scenario_shutdown(void)
{
    for (unsigned round = 0; round < 30 * scale; round++) {
        hostmem_manager *keep = m;
        MUST(hostmem_create(NULL, &m));
        pthread_t t[3];
        for (int i = 0; i < 3; i++)
            pthread_create(&t[i], NULL, shutdown_worker, NULL);
        usleep(1000 + 100 * (round % 20));
        hostmem_shutdown(m);
        for (int i = 0; i < 3; i++)
            pthread_join(t[i], NULL);
        hostmem_destroy(m);
        m = keep;
    }
    printf("shutdown: %d bad\n", atomic_load(&bad));
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s reserve|reserve-arena|reserve-commit|pages|whole|shutdown\n", argv[0]);
        return 2;
    }
    const char *s = getenv("HOSTMEM_RACE_CYCLES");
    if (s && atoi(s) > 0)
        scale = (unsigned)atoi(s);
    P = (size_t)sysconf(_SC_PAGESIZE);
    MUST(hostmem_create(NULL, &m));
    int rc;
    if (!strcmp(argv[1], "reserve"))
        rc = scenario_reserve();
    else if (!strcmp(argv[1], "reserve-arena"))
        rc = scenario_reserve_arena();
    else if (!strcmp(argv[1], "reserve-commit"))
        rc = scenario_reserve_commit();
    else if (!strcmp(argv[1], "pages"))
        rc = scenario_pages();
    else if (!strcmp(argv[1], "whole"))
        rc = scenario_whole();
    else if (!strcmp(argv[1], "shutdown"))
        rc = scenario_shutdown();
    else {
        fprintf(stderr, "%s: unknown scenario %s\n", argv[0], argv[1]);
        return 2;
    }
    hostmem_destroy(m);
    return rc || atomic_load(&bad) ? 1 : 0;
}
