/*
 * scripted_host: a host that performs a known sequence of hostmem calls and
 * writes down what it did (expect.json), so the end-to-end tests can check
 * what hostmem-analyze reads from the trace against it.
 *
 *   scripted_host run EXPECT.json      the whole sequence, exits leaking
 *   scripted_host midrun EXPECT.json   reserves first, then waits as below
 *                                      (a session starts in between), then
 *                                      works on and exits
 *   scripted_host churn N              N reserve/commit/decommit/release
 *                                      rounds (a big trace for speed runs)
 *   scripted_host crash SIGNAL [heap]  leaves a region to hostmem_destroy (a
 *                                      leak), holds two more in a second
 *                                      manager and dies of SIGNAL (a number);
 *                                      with "heap", also a block left to
 *                                      hostmem_malloc_destroy (a leak) and two
 *                                      blocks held in a live heap
 *   scripted_host exit STATUS          one clean reserve/release, destroys
 *                                      its manager and exits with STATUS
 *   scripted_host lose N               on one CPU: N reserves of 64 KiB, then
 *                                      their N releases, then destroy (a test
 *                                      cuts a packet of releases out)
 *   scripted_host hold                 16 MiB + 128 KiB reserved, 1 MiB
 *                                      committed under an 8 MiB limit, one
 *                                      task-level commit denied; prints
 *                                      "held" and keeps it all until the
 *                                      next line on stdin (a live session)
 *   scripted_host live N               N regions of 64 KiB left live at exit
 *                                      (the analysis' memory for N live
 *                                      regions)
 *   scripted_host ahead                a worker thread named "hm-clock-ahead"
 *                                      on CPU 1 reserves 128 KiB and commits
 *                                      64 KiB;
 *                                      then the main thread, on CPU 0,
 *                                      commits 64 KiB more, releases the
 *                                      region, reserves the same address
 *                                      again and commits 32 KiB, left live.
 *                                      Under the clock of ahead_clock.c the
 *                                      worker's events are stamped 50 ms
 *                                      ahead: in time order they come last,
 *                                      in seq order first (as they happened)
 *   scripted_host threads EXPECT.json  4 threads on one manager, 32 rounds:
 *                                      each reserves and commits 64 regions
 *                                      of 64 KiB, all wait for each other,
 *                                      then each releases its own; destroys
 *                                      the manager and writes the library's
 *                                      peaks (reached at the wait, when no
 *                                      call is in flight: exact)
 *   scripted_host nullmgr              a reserve with a NULL manager and a
 *                                      hostmem_create refused (E_POINTER,
 *                                      E_INVALIDARG: both trace manager 0),
 *                                      beside one clean reserve/release on a
 *                                      manager it destroys
 *
 * Every mode prints "ready" and waits for a line on stdin before the part
 * that is to be recorded.
 *
 * Every size is a multiple of the page and of 64 KiB, so the host knows the
 * rounded sizes the trace reports.  Leaks come from two functions of their
 * own, so the call sites are known.
 */
#define _GNU_SOURCE /* pthread_setaffinity_np, pthread_setname_np */
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <hostmem/hostmem.h>

#define KiB ((SIZE_T)1024)
#define MiB (1024 * KiB)

enum { OP_RESERVE, OP_COMMIT, OP_DECOMMIT, OP_RELEASE, OP_PROTECT, OP_RESET, OP_COUNT };
static const char *const op_names[OP_COUNT] = {"reserve", "commit", "decommit",
                                               "release", "protect", "reset"};

/* What the host did, as the analysis should report it. */
static struct {
    unsigned long count[OP_COUNT], failed[OP_COUNT];
    unsigned long long bytes[OP_COUNT];
    unsigned long oom, invalidarg, invalid_address, invalidop;
    unsigned long fail_task, fail_appdomain, fail_process;
    unsigned long granted, from_reserve, denied;
} x;

static hostmem_manager *mgr;
static int wait_for_go(void);
static int wait_for_go_as(const char *word);

static void die(const char *what, HRESULT hr)
{
    fprintf(stderr, "scripted_host: %s failed: %s (0x%08x)\n", what, hostmem_hresult_name(hr),
            (unsigned)hr);
    exit(1);
}

static void failed(int op, HRESULT hr, int level)
{
    x.failed[op]++;
    if (hr == E_OUTOFMEMORY)
        x.oom++;
    else if (hr == E_INVALIDARG)
        x.invalidarg++;
    else if (hr == HOSTMEM_E_INVALID_ADDRESS)
        x.invalid_address++;
    else if (hr == HOST_E_INVALIDOPERATION)
        x.invalidop++;
    if (level == eTaskCritical)
        x.fail_task++;
    else if (level == eAppDomainCritical)
        x.fail_appdomain++;
    else if (level == eProcessCritical)
        x.fail_process++;
}

/* Each helper makes one call and books it as the trace should show it. */
static void *reserve(SIZE_T size)
{
    void *p = NULL;
    HRESULT hr = hostmem_virtual_alloc(mgr, NULL, size, MEM_RESERVE, PAGE_READWRITE,
                                       eTaskCritical, &p);
    x.count[OP_RESERVE]++;
    if (FAILED(hr))
        die("reserve", hr);
    x.bytes[OP_RESERVE] += size;
    return p;
}

/* Commits fresh pages (never recommits): each commit adds its whole size to
 * the charge, so the critical decision it gets is known. */
static HRESULT commit(void *at, SIZE_T size, EMemoryCriticalLevel level, SIZE_T limit)
{
    hostmem_stats st;
    void *p = NULL;
    hostmem_get_stats(mgr, &st);
    HRESULT hr = hostmem_virtual_alloc(mgr, at, size, MEM_COMMIT, PAGE_READWRITE, level, &p);
    x.count[OP_COMMIT]++;
    SIZE_T after = st.committed_bytes + size;
    SIZE_T task = limit / 100 * 90;
    if (SUCCEEDED(hr)) {
        x.bytes[OP_COMMIT] += size;
        if (after <= task)
            x.granted++;
        else
            x.from_reserve++;
    } else {
        failed(OP_COMMIT, hr, (int)level);
        /* Above eTaskCritical the manager signals Low and checks again (P2);
         * the request still has one decision. */
        x.denied++;
    }
    return hr;
}

static void decommit(void *at, SIZE_T size)
{
    HRESULT hr = hostmem_virtual_free(mgr, at, size, MEM_DECOMMIT);
    x.count[OP_DECOMMIT]++;
    if (FAILED(hr))
        die("decommit", hr);
    x.bytes[OP_DECOMMIT] += size;
}

static void release(void *at, SIZE_T size)
{
    HRESULT hr = hostmem_virtual_free(mgr, at, 0, MEM_RELEASE);
    x.count[OP_RELEASE]++;
    if (FAILED(hr)) {
        fprintf(stderr, "scripted_host: release of %p (%zu bytes)\n", at, size);
        die("release", hr);
    }
    x.bytes[OP_RELEASE] += size;
}

static void protect(void *at, SIZE_T size, DWORD prot)
{
    DWORD old = 0;
    HRESULT hr = hostmem_virtual_protect(mgr, at, size, prot, &old);
    x.count[OP_PROTECT]++;
    if (FAILED(hr))
        die("protect", hr);
    x.bytes[OP_PROTECT] += size;
}

static void reset(void *at, SIZE_T size)
{
    void *p = NULL;
    HRESULT hr = hostmem_virtual_alloc(mgr, at, size, MEM_RESET, PAGE_READWRITE, eTaskCritical, &p);
    x.count[OP_RESET]++;
    if (FAILED(hr))
        die("reset", hr);
    x.bytes[OP_RESET] += size;
}

/* The two leaking call sites: kept out of line so each is its own caller. */
__attribute__((noinline)) static void *leak_site_a(void)
{
    void *p = NULL;
    HRESULT hr = hostmem_virtual_alloc(mgr, NULL, 128 * KiB, MEM_RESERVE, PAGE_READWRITE,
                                       eTaskCritical, &p);
    x.count[OP_RESERVE]++;
    if (FAILED(hr))
        die("reserve", hr);
    x.bytes[OP_RESERVE] += 128 * KiB;
    __asm__ volatile("" ::: "memory"); /* no tail call: the caller stays here */
    return p;
}

__attribute__((noinline)) static void *leak_site_b(void)
{
    void *p = NULL;
    HRESULT hr = hostmem_virtual_alloc(mgr, NULL, 256 * KiB, MEM_RESERVE, PAGE_READWRITE,
                                       eTaskCritical, &p);
    x.count[OP_RESERVE]++;
    if (FAILED(hr))
        die("reserve", hr);
    x.bytes[OP_RESERVE] += 256 * KiB;
    __asm__ volatile("" ::: "memory");
    return p;
}

static void write_expect(const char *path, unsigned long leaks, unsigned long long leak_reserved,
                         unsigned long long leak_committed, unsigned long site_a,
                         unsigned long site_b)
{
    hostmem_stats st;
    HRESULT hr = hostmem_get_stats(mgr, &st);
    if (FAILED(hr))
        die("get_stats", hr);
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        exit(1);
    }
    fprintf(f, "{\n  \"ops\": {\n");
    for (int i = 0; i < OP_COUNT; i++)
        fprintf(f, "    \"%s\": {\"count\": %lu, \"failed\": %lu, \"bytes\": %llu}%s\n", op_names[i],
                x.count[i], x.failed[i], x.bytes[i], i + 1 < OP_COUNT ? "," : "");
    fprintf(f, "  },\n  \"failures\": {\"by_hresult\": {\"E_OUTOFMEMORY\": %lu, \"E_INVALIDARG\": %lu,"
               " \"HOSTMEM_E_INVALID_ADDRESS\": %lu, \"HOST_E_INVALIDOPERATION\": %lu},\n"
               "    \"by_level\": {\"task\": %lu, \"appdomain\": %lu, \"process\": %lu}},\n",
            x.oom, x.invalidarg, x.invalid_address, x.invalidop, x.fail_task, x.fail_appdomain,
            x.fail_process);
    fprintf(f, "  \"critical_decisions\": {\"granted\": %lu, \"granted_from_reserve\": %lu,"
               " \"denied\": %lu},\n", x.granted, x.from_reserve, x.denied);
    fprintf(f, "  \"peak_committed_bytes\": %zu,\n  \"peak_reserved_bytes\": %zu,\n",
            st.peak_committed_bytes, st.peak_reserved_bytes);
    fprintf(f, "  \"end_committed_bytes\": %zu,\n  \"end_reserved_bytes\": %zu,\n",
            st.committed_bytes, st.reserved_bytes);
    fprintf(f, "  \"leaks\": {\"regions\": %lu, \"reserved_bytes\": %llu, \"committed_bytes\": %llu},\n",
            leaks, leak_reserved, leak_committed);
    fprintf(f, "  \"leak_sites\": {\"leak_site_a\": %lu, \"leak_site_b\": %lu}\n}\n", site_a, site_b);
    fclose(f);
}

static hostmem_manager *create(SIZE_T limit)
{
    hostmem_config cfg;
    hostmem_config_init(&cfg);
    cfg.commit_limit = limit;
    hostmem_manager *m = NULL;
    HRESULT hr = hostmem_create(&cfg, &m);
    if (FAILED(hr))
        die("create", hr);
    return m;
}

static int run(const char *expect)
{
    const SIZE_T limit = 16 * MiB; /* task ceiling 14.4 MiB, appdomain 15.52 MiB */
    mgr = create(limit);
    void *regions[8];
    /* Eight 1 MiB regions, each fully committed at task level: 8 MiB. */
    for (int i = 0; i < 8; i++) {
        regions[i] = reserve(1 * MiB);
        if (FAILED(commit(regions[i], 1 * MiB, eTaskCritical, limit)))
            die("commit", E_FAIL);
    }
    /* Protect, reset and decommit parts of them. */
    protect(regions[0], 64 * KiB, PAGE_READONLY);
    protect(regions[1], 128 * KiB, PAGE_NOACCESS);
    reset(regions[2], 256 * KiB);
    decommit(regions[3], 512 * KiB);  /* 7.5 MiB committed */
    /* A big region: 6 MiB more at task level reaches 13.5 MiB (granted). */
    void *big = reserve(10 * MiB);
    if (FAILED(commit(big, 6 * MiB, eTaskCritical, limit)))
        die("commit", E_FAIL);
    /* 1 MiB more at task level would pass the task ceiling: denied. */
    char *bigc = (char *)big;
    if (SUCCEEDED(commit(bigc + 6 * MiB, 1 * MiB, eTaskCritical, limit)))
        die("commit over the task ceiling succeeded", S_OK);
    /* The same at appdomain level: 14.5 MiB, granted from the reserve. */
    if (FAILED(commit(bigc + 6 * MiB, 1 * MiB, eAppDomainCritical, limit)))
        die("commit", E_FAIL);
    /* 2 MiB more at appdomain level passes 15.52 MiB: denied. */
    if (SUCCEEDED(commit(bigc + 7 * MiB, 2 * MiB, eAppDomainCritical, limit)))
        die("commit over the appdomain ceiling succeeded", S_OK);
    /* Bad calls, one of each kind. */
    HRESULT hr = hostmem_virtual_free(mgr, regions[4], 4096, MEM_RELEASE); /* size must be 0 */
    x.count[OP_RELEASE]++;
    if (hr != E_INVALIDARG)
        die("release with a size", hr);
    failed(OP_RELEASE, hr, -1);
    hr = hostmem_virtual_free(mgr, (char *)regions[4] + 64 * KiB, 0, MEM_RELEASE); /* not a base */
    x.count[OP_RELEASE]++;
    if (hr != HOSTMEM_E_INVALID_ADDRESS)
        die("release inside a region", hr);
    failed(OP_RELEASE, hr, -1);
    static char not_ours[1];
    hr = hostmem_virtual_free(mgr, not_ours, 4096, MEM_DECOMMIT);
    x.count[OP_DECOMMIT]++;
    if (hr != HOST_E_INVALIDOPERATION)
        die("decommit outside every region", hr);
    failed(OP_DECOMMIT, hr, -1);
    DWORD old;
    hr = hostmem_virtual_protect(mgr, regions[4], 4096, PAGE_READWRITE | PAGE_READONLY, &old);
    x.count[OP_PROTECT]++;
    if (hr != E_INVALIDARG)
        die("protect with two protections", hr);
    failed(OP_PROTECT, hr, -1);
    /* Give everything back but two of the 1 MiB regions. */
    release(big, 10 * MiB);
    for (int i = 0; i < 6; i++)
        release(regions[i], 1 * MiB);
    unsigned long leaks = 2;
    unsigned long long leak_reserved = 2 * MiB, leak_committed = 2 * MiB;
    /* Leaks with known call sites: 3 x 128 KiB (64 KiB committed each) and
     * 2 x 256 KiB, plus one from site a that is released again. */
    for (int i = 0; i < 3; i++) {
        void *p = leak_site_a();
        if (FAILED(commit(p, 64 * KiB, eTaskCritical, limit)))
            die("commit", E_FAIL);
    }
    for (int i = 0; i < 2; i++)
        leak_site_b();
    release(leak_site_a(), 128 * KiB);
    leaks += 5;
    leak_reserved += 3 * 128 * KiB + 2 * 256 * KiB;
    leak_committed += 3 * 64 * KiB;
    write_expect(expect, leaks, leak_reserved, leak_committed, 3, 2);
    return 0; /* exits without hostmem_destroy: what is left leaked */
}

static int midrun(const char *expect)
{
    mgr = create(0);
    void *r[4];
    for (int i = 0; i < 4; i++) {
        r[i] = reserve(512 * KiB);
        void *p = NULL;
        if (FAILED(hostmem_virtual_alloc(mgr, r[i], 128 * KiB, MEM_COMMIT, PAGE_READWRITE,
                                         eTaskCritical, &p)))
            die("commit", E_FAIL);
    }
    if (!wait_for_go())
        return 1;
    /* The session now records: these calls see the statedump first. */
    memset(&x, 0, sizeof x);
    release(r[0], 512 * KiB);
    void *late = reserve(1 * MiB);
    (void)late;
    /* Left: r[1..3] (seen by region_state, 128 KiB committed each) and late. */
    write_expect(expect, 4, 3 * 512 * KiB + 1 * MiB, 3 * 128 * KiB, 0, 0);
    return 0;
}

static int churn(long rounds)
{
    mgr = create(0);
    for (long i = 0; i < rounds; i++) {
        void *p = reserve(64 * KiB);
        void *q = NULL;
        if (FAILED(hostmem_virtual_alloc(mgr, p, 64 * KiB, MEM_COMMIT, PAGE_READWRITE,
                                         eTaskCritical, &q)))
            die("commit", E_FAIL);
        decommit(p, 64 * KiB);
        release(p, 64 * KiB);
    }
    hostmem_destroy(mgr);
    return 0;
}

/* What the crash test checks: the leak is leak_site_a's 128 KiB (freed by
 * destroy); live at the crash are 1 MiB (256 KiB committed) from crash()
 * and leak_site_b's 256 KiB (64 KiB committed). */
static hostmem_malloc *heap_with_blocks(const SIZE_T *sizes, int n)
{
    hostmem_malloc *h = NULL;
    void *p = NULL;
    if (FAILED(hostmem_create_malloc(mgr, MALLOC_THREADSAFE, &h)))
        die("create_malloc", E_FAIL);
    for (int i = 0; i < n; i++)
        if (FAILED(hostmem_malloc_alloc(h, sizes[i], eTaskCritical, &p)))
            die("malloc_alloc", E_FAIL);
    return h;
}

static int crash(int sig, int with_heap)
{
    static const SIZE_T one[] = {500}, two[] = {1000, 3000};
    mgr = create(0);
    (void)leak_site_a();
    if (with_heap)
        hostmem_malloc_destroy(heap_with_blocks(one, 1)); /* its block: a leak */
    hostmem_destroy(mgr);
    mgr = create(0);
    if (with_heap)
        (void)heap_with_blocks(two, 2); /* held at the crash */
    void *a = reserve(1 * MiB);
    void *b = leak_site_b();
    if (FAILED(commit(a, 256 * KiB, eTaskCritical, 0)) ||
        FAILED(commit(b, 64 * KiB, eTaskCritical, 0)))
        die("commit", E_FAIL);
    struct rlimit no_core = {0, 0};
    setrlimit(RLIMIT_CORE, &no_core);
    signal(sig, SIG_DFL);
    raise(sig);
    return 1; /* a signal that does not kill: the test sees status 1 */
}

/* Run the calling thread on `cpu` alone; 0, or the error (said on stderr). */
static int pin(int cpu)
{
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    int err = pthread_setaffinity_np(pthread_self(), sizeof one, &one);
    if (err != 0)
        fprintf(stderr, "scripted_host: cannot run on CPU %d: %s\n", cpu, strerror(err));
    return err;
}

static int lose(long n)
{
    /* One CPU, one stream: the packets follow each other in time. */
    if (pin(0) != 0)
        return 1;
    mgr = create(0);
    void **r = calloc((size_t)n, sizeof *r);
    if (r == NULL)
        return 1;
    for (long i = 0; i < n; i++)
        r[i] = reserve(64 * KiB);
    for (long i = 0; i < n; i++)
        release(r[i], 64 * KiB);
    free(r);
    hostmem_destroy(mgr);
    return 0;
}

static int exit_with(int status)
{
    mgr = create(0);
    release(reserve(64 * KiB), 64 * KiB);
    hostmem_destroy(mgr);
    return status;
}

static int hold(void)
{
    mgr = create(8 * MiB);
    void *r = reserve(16 * MiB);
    void *small = leak_site_a();
    if (FAILED(commit(r, 1 * MiB, eTaskCritical, 8 * MiB)))
        die("commit", E_FAIL);
    if (SUCCEEDED(commit((char *)r + 1 * MiB, 8 * MiB, eTaskCritical, 8 * MiB)))
        die("commit over the limit", S_OK);
    if (!wait_for_go_as("held"))
        return 1;
    release(small, 128 * KiB);
    release(r, 16 * MiB);
    hostmem_destroy(mgr);
    return 0;
}

/* N regions of 64 KiB reserved and left live (the first page of every 16th
 * committed), then exit: what the analysis holds for a host with N live
 * regions (R3: 256 MiB at most for 100k). */
static int live(long n)
{
    mgr = create(0);
    for (long i = 0; i < n; i++) {
        void *p = reserve(64 * KiB);
        if (i % 16 == 0 && FAILED(commit(p, 4 * KiB, eTaskCritical, 0)))
            die("commit", E_FAIL);
    }
    return 0;
}


static void *ahead_worker(void *out)
{
    pthread_setname_np(pthread_self(), "hm-clock-ahead");
    if (pin(1) != 0)
        return NULL;
    void *p = reserve(128 * KiB);
    if (FAILED(commit(p, 64 * KiB, eTaskCritical, 0)))
        die("commit", E_FAIL);
    *(void **)out = p;
    return NULL;
}

static __attribute__((noinline)) int ahead(void)
{
    if (pin(0) != 0)
        return 1;
    mgr = create(0);
    void *p = NULL;
    pthread_t t;
    if (pthread_create(&t, NULL, ahead_worker, &p) != 0)
        return 1;
    pthread_join(t, NULL);
    if (p == NULL)
        return 1;
    if (FAILED(commit((char *)p + 64 * KiB, 64 * KiB, eTaskCritical, 0)))
        die("commit", E_FAIL);
    release(p, 128 * KiB);
    void *q = NULL;
    HRESULT hr = hostmem_virtual_alloc(mgr, p, 64 * KiB, MEM_RESERVE, PAGE_READWRITE,
                                       eTaskCritical, &q);
    if (FAILED(hr) || q != p)
        die("reserve at the released address", hr);
    if (FAILED(commit(q, 32 * KiB, eTaskCritical, 0)))
        die("commit", E_FAIL);
    /* The session's stop closes each stream's packet with the true clock:
     * were it to come within the 50 ms, the worker's packet would end before
     * its own events and no reader would accept the trace.  Outlive them. */
    struct timespec outlive = {.tv_sec = 0, .tv_nsec = 150 * 1000 * 1000};
    while (nanosleep(&outlive, &outlive) != 0)
        ;
    return 0;
}

/* threads: the peak is the state while every thread waits at the barrier,
 * all its regions made and none released, so no call is in flight when it is
 * reached and the library's peak is exact; before it, and after it, other
 * threads' calls are in flight whenever a thread emits hostmem:totals. */
#define THREADS 4
#define THREAD_ROUNDS 32
#define THREAD_REGIONS 64
static pthread_barrier_t threads_barrier;

static void *threads_worker(void *arg)
{
    void **r = arg;
    for (int round = 0; round < THREAD_ROUNDS; round++) {
        for (int i = 0; i < THREAD_REGIONS; i++) {
            void *p = NULL, *q = NULL;
            if (FAILED(hostmem_virtual_alloc(mgr, NULL, 64 * KiB, MEM_RESERVE, PAGE_READWRITE,
                                             eTaskCritical, &p)) ||
                FAILED(hostmem_virtual_alloc(mgr, p, 64 * KiB, MEM_COMMIT, PAGE_READWRITE,
                                             eTaskCritical, &q)))
                die("reserve and commit", E_FAIL);
            r[i] = p;
        }
        pthread_barrier_wait(&threads_barrier);
        for (int i = 0; i < THREAD_REGIONS; i++)
            if (FAILED(hostmem_virtual_free(mgr, r[i], 0, MEM_RELEASE)))
                die("release", E_FAIL);
        pthread_barrier_wait(&threads_barrier);
    }
    return NULL;
}

static int threads(const char *expect)
{
    static void *regions[THREADS][THREAD_REGIONS];
    pthread_t t[THREADS];
    mgr = create(0);
    pthread_barrier_init(&threads_barrier, NULL, THREADS);
    for (int i = 0; i < THREADS; i++)
        if (pthread_create(&t[i], NULL, threads_worker, regions[i]) != 0)
            return 1;
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    hostmem_stats st;
    if (FAILED(hostmem_get_stats(mgr, &st)))
        die("get_stats", E_FAIL);
    FILE *f = fopen(expect, "w");
    if (!f) {
        perror(expect);
        return 1;
    }
    fprintf(f, "{\"peak_reserved_bytes\": %zu, \"peak_committed_bytes\": %zu, "
               "\"regions\": %d}\n", st.peak_reserved_bytes, st.peak_committed_bytes,
            THREADS * THREAD_ROUNDS * THREAD_REGIONS);
    fclose(f);
    hostmem_destroy(mgr);
    return 0;
}

static int nullmgr(void)
{
    mgr = create(0);
    void *p = NULL;
    HRESULT hr = hostmem_virtual_alloc(NULL, NULL, 64 * KiB, MEM_RESERVE, PAGE_READWRITE,
                                       eTaskCritical, &p);
    if (hr != E_POINTER)
        die("reserve with a NULL manager", hr);
    hostmem_config bad;
    hostmem_config_init(&bad);
    bad.task_percent = 200;
    hostmem_manager *refused = NULL;
    hr = hostmem_create(&bad, &refused);
    if (hr != E_INVALIDARG)
        die("create with task_percent 200", hr);
    release(reserve(64 * KiB), 64 * KiB);
    hostmem_destroy(mgr);
    return 0;
}

/* The recorder tracks this process only (other programs of the machine may
 * use hostmem too): it learns the pid from "ready" and answers when the
 * session records. */
static int wait_for_go(void)
{
    return wait_for_go_as("ready");
}

static int wait_for_go_as(const char *word)
{
    char line[64];
    printf("%s\n", word);
    fflush(stdout);
    return fgets(line, sizeof line, stdin) != NULL;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "run") == 0)
        return wait_for_go() ? run(argv[2]) : 1;
    if (argc == 3 && strcmp(argv[1], "midrun") == 0)
        return midrun(argv[2]);
    if (argc == 3 && strcmp(argv[1], "churn") == 0)
        return wait_for_go() ? churn(atol(argv[2])) : 1;
    if ((argc == 3 || (argc == 4 && strcmp(argv[3], "heap") == 0)) &&
        strcmp(argv[1], "crash") == 0)
        return wait_for_go() ? crash(atoi(argv[2]), argc == 4) : 1;
    if (argc == 3 && strcmp(argv[1], "lose") == 0)
        return wait_for_go() ? lose(atol(argv[2])) : 1;
    if (argc == 3 && strcmp(argv[1], "live") == 0)
        return wait_for_go() ? live(atol(argv[2])) : 1;
    if (argc == 2 && strcmp(argv[1], "hold") == 0)
        return wait_for_go() ? hold() : 1;
    if (argc == 3 && strcmp(argv[1], "exit") == 0)
        return wait_for_go() ? exit_with(atoi(argv[2])) : 1;
    if (argc == 2 && strcmp(argv[1], "ahead") == 0)
        return wait_for_go() ? ahead() : 1;
    if (argc == 3 && strcmp(argv[1], "threads") == 0)
        return wait_for_go() ? threads(argv[2]) : 1;
    if (argc == 2 && strcmp(argv[1], "nullmgr") == 0)
        return wait_for_go() ? nullmgr() : 1;
    fprintf(stderr, "usage: scripted_host run|midrun EXPECT.json | churn ROUNDS"
                    " | crash SIGNAL [heap] | exit STATUS | lose N | hold | live N | ahead"
                    " | threads EXPECT.json | nullmgr\n");
    return 2;
}
