/* H1-H3: the manager's heap (IHostMalloc) through the public header:
 * arguments, alignment, bad frees, executable heaps, memory drawn from the
 * manager under its commit limit and levels, Low, destroy. */
#include "util.h"

#include <pthread.h>
#include <stdatomic.h>

TestSuite(h1_h2_heap_api, .fini = hm_leak_check);
TestSuite(h3_heap_memory, .fini = hm_leak_check, .timeout = 60);

static hostmem_malloc *mkheap(hostmem_manager *m, DWORD type)
{
    hostmem_malloc *h = NULL;
    HR_OK(hostmem_create_malloc(m, type, &h));
    cr_assert_not_null(h);
    return h;
}

static void *halloc(hostmem_malloc *h, size_t size, EMemoryCriticalLevel level)
{
    void *p = (void *)0x1;
    HR_OK(hostmem_malloc_alloc(h, size, level, &p));
    cr_assert_not_null(p);
    return p;
}

static hostmem_malloc_stats hst(hostmem_malloc *h)
{
    hostmem_malloc_stats s;
    memset(&s, 0xa5, sizeof s);
    HR_OK(hostmem_malloc_get_stats(h, &s));
    return s;
}

/* ---- H1 / H2 ----------------------------------------------------------------------- */

Test(h1_h2_heap_api, null_and_bad_arguments)
{
    hostmem_manager *m = mk(NULL);
    hostmem_malloc *h = (hostmem_malloc *)0x1;
    HR_EQ(hostmem_create_malloc(NULL, MALLOC_THREADSAFE, &h), E_POINTER);
    cr_assert_null(h);
    HR_EQ(hostmem_create_malloc(m, MALLOC_THREADSAFE, NULL), E_POINTER);
    hostmem_stats before = st(m);
    HR_EQ(hostmem_create_malloc(m, 0x4, &h), E_INVALIDARG);
    cr_assert_null(h);
    hostmem_stats after = st(m);
    stats_eq(&before, &after);
    h = mkheap(m, MALLOC_THREADSAFE);
    void *p = (void *)0x1;
    HR_EQ(hostmem_malloc_alloc(NULL, 16, eTaskCritical, &p), E_POINTER);
    cr_assert_null(p);
    HR_EQ(hostmem_malloc_alloc(h, 16, eTaskCritical, NULL), E_POINTER);
    p = (void *)0x1;
    HR_EQ(hostmem_malloc_alloc(h, 16, (EMemoryCriticalLevel)3, &p), E_INVALIDARG);
    cr_assert_null(p);
    p = (void *)0x1;
    HR_EQ(hostmem_malloc_debug_alloc(NULL, 16, eTaskCritical, __FILE__, __LINE__, &p), E_POINTER);
    cr_assert_null(p);
    HR_EQ(hostmem_malloc_free(NULL, NULL), E_POINTER);
    HR_OK(hostmem_malloc_free(h, NULL));
    hostmem_malloc_destroy(NULL);
    hostmem_malloc_destroy(h);
    hostmem_destroy(m);
}

Test(h1_h2_heap_api, aligned_distinct_writable_blocks_of_every_size)
{
    hostmem_manager *m = mk(NULL);
    hostmem_malloc *h = mkheap(m, MALLOC_THREADSAFE);
    enum { N = 400 };
    unsigned char *b[N];
    size_t size[N];
    for (int i = 0; i < N; i++) {
        size[i] = i < 300 ? (size_t)i * 7 : (size_t)(i - 299) * 1500; /* up to 150 KB: large ones too */
        b[i] = halloc(h, size[i], eTaskCritical);
        cr_assert_eq((uintptr_t)b[i] % 16, 0, "block of %zu bytes at %p", size[i], (void *)b[i]);
        memset(b[i], i & 0xff, size[i]);
    }
    for (int i = 0; i < N; i++) {
        for (size_t k = 0; k < size[i]; k++)
            cr_assert_eq(b[i][k], (unsigned char)(i & 0xff), "block %d byte %zu overwritten", i, k);
        for (int j = 0; j < i; j++)
            cr_assert(b[i] + (size[i] ? size[i] : 1) <= b[j] || b[j] + (size[j] ? size[j] : 1) <= b[i],
                      "blocks %d and %d overlap", i, j);
    }
    hostmem_malloc_stats s = hst(h);
    cr_assert_eq(s.live_blocks, N);
    cr_assert_eq(s.large_blocks, 90); /* 16.5 KB and up */
    for (int i = 0; i < N; i++)
        HR_OK(hostmem_malloc_free(h, b[i]));
    s = hst(h);
    cr_assert_eq(s.live_blocks, 0);
    cr_assert_eq(s.live_bytes, 0);
    cr_assert_eq(s.large_blocks, 0);
    hostmem_malloc_destroy(h);
    hostmem_destroy(m);
}

Test(h1_h2_heap_api, size_zero_gives_unique_freeable_blocks)
{
    hostmem_manager *m = mk(NULL);
    hostmem_malloc *h = mkheap(m, MALLOC_THREADSAFE);
    void *a = halloc(h, 0, eTaskCritical), *b = halloc(h, 0, eTaskCritical);
    cr_assert_neq(a, b);
    HR_OK(hostmem_malloc_free(h, a));
    HR_OK(hostmem_malloc_free(h, b));
    hostmem_malloc_destroy(h);
    hostmem_destroy(m);
}

Test(h1_h2_heap_api, impossible_sizes_are_out_of_memory)
{
    hostmem_manager *m = mk(NULL);
    hostmem_malloc *h = mkheap(m, MALLOC_THREADSAFE);
    hostmem_stats before = st(m);
    size_t sizes[] = {SIZE_MAX, SIZE_MAX - 15, SIZE_MAX / 2, (size_t)1 << 62};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        void *p = (void *)0x1;
        HR_EQ(hostmem_malloc_alloc(h, sizes[i], eProcessCritical, &p), E_OUTOFMEMORY);
        cr_assert_null(p);
    }
    hostmem_stats after = st(m);
    cr_assert_eq(after.committed_bytes, before.committed_bytes);
    cr_assert_eq(after.region_count, before.region_count);
    hostmem_malloc_destroy(h);
    hostmem_destroy(m);
}

static HRESULT free_hr(hostmem_malloc *h, void *p) { return hostmem_malloc_free(h, p); }

Test(h1_h2_heap_api, foreign_misaligned_interior_and_double_frees_are_refused)
{
    hostmem_manager *m = mk(NULL);
    hostmem_malloc *h = mkheap(m, MALLOC_THREADSAFE), *other = mkheap(m, MALLOC_THREADSAFE);
    char *small = halloc(h, 64, eTaskCritical), *big = halloc(h, 100000, eTaskCritical);
    char *theirs = halloc(other, 64, eTaskCritical);
    int on_stack;
    void *sys = malloc(64);
    char *host_committed = alloc_ok(m, NULL, GRAN, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE);
    char *host_reserved = reserve(m, NULL, GRAN); /* reading it would fault */
    hostmem_malloc_stats before = hst(h);
    HR_EQ(free_hr(h, &on_stack), E_INVALIDARG);
    HR_EQ(free_hr(h, sys), E_INVALIDARG);
    HR_EQ(free_hr(h, theirs), E_INVALIDARG);
    HR_EQ(free_hr(h, host_committed), E_INVALIDARG);
    HR_EQ(free_hr(h, host_reserved), E_INVALIDARG);
    HR_EQ(free_hr(h, host_reserved + 4096), E_INVALIDARG);
    HR_EQ(free_hr(h, small + 1), E_INVALIDARG);
    HR_EQ(free_hr(h, small + 8), E_INVALIDARG);
    HR_EQ(free_hr(h, small + 16), E_INVALIDARG);
    HR_EQ(free_hr(h, small + 64 * 3), E_INVALIDARG); /* a block never handed out */
    HR_EQ(free_hr(h, big + 16), E_INVALIDARG);
    HR_EQ(free_hr(h, big - 64), E_INVALIDARG);       /* the large block's header */
    HR_EQ(free_hr(h, (void *)((uintptr_t)small & ~(uintptr_t)0xffff)), E_INVALIDARG); /* segment header */
    hostmem_malloc_stats mid = hst(h);
    cr_assert_eq(mid.live_blocks, before.live_blocks);
    cr_assert_eq(mid.live_bytes, before.live_bytes);
    HR_OK(free_hr(h, small));
    HR_EQ(free_hr(h, small), E_INVALIDARG);
    HR_OK(free_hr(h, big));
    HR_EQ(free_hr(h, big), E_INVALIDARG);
    cr_assert_eq(hst(h).live_blocks, 0);
    /* The refused second free left one copy of the block in the heap: two
     * allocations of its class get two different blocks. */
    void *x = halloc(h, 64, eTaskCritical), *y = halloc(h, 64, eTaskCritical);
    cr_assert_neq(x, y);
    HR_OK(free_hr(h, x));
    HR_OK(free_hr(h, y));
    HR_OK(free_hr(other, theirs));
    free(sys);
    hostmem_malloc_destroy(other);
    hostmem_malloc_destroy(h);
    hostmem_destroy(m);
}

/* A block freed on one thread and freed again on another: exactly one free wins. */
typedef struct race {
    hostmem_malloc *h;
    void *p;
    atomic_int go;
    HRESULT hr;
} race;

static void *race_free(void *arg)
{
    race *r = arg;
    while (!atomic_load(&r->go))
        ;
    r->hr = hostmem_malloc_free(r->h, r->p);
    return NULL;
}

Test(h1_h2_heap_api, concurrent_double_free_has_one_winner)
{
    hostmem_manager *m = mk(NULL);
    hostmem_malloc *h = mkheap(m, MALLOC_THREADSAFE);
    for (int round = 0; round < 60; round++) {
        race a = {.h = h}, b = {.h = h};
        a.p = b.p = halloc(h, 32 + (round % 3) * 40000, eTaskCritical);
        pthread_t t;
        pthread_create(&t, NULL, race_free, &a);
        atomic_store(&a.go, 1);
        b.go = 1;
        race_free(&b);
        pthread_join(t, NULL);
        cr_assert((a.hr == S_OK) != (b.hr == S_OK), "round %d: %s and %s", round,
                  hostmem_hresult_name(a.hr), hostmem_hresult_name(b.hr));
        cr_assert(a.hr == E_INVALIDARG || b.hr == E_INVALIDARG);
    }
    cr_assert_eq(hst(h).live_blocks, 0);
    hostmem_malloc_destroy(h);
    hostmem_destroy(m);
}

Test(h1_h2_heap_api, executable_heap_runs_code_and_is_denied_under_w_xor_x)
{
    hostmem_manager *m = mk(NULL);
    hostmem_malloc *h = mkheap(m, MALLOC_THREADSAFE | MALLOC_EXECUTABLE);
    unsigned char *code = halloc(h, 16, eTaskCritical);
    cr_assert_eq(q(m, code).Protect, PAGE_EXECUTE_READWRITE);
#if defined(__x86_64__)
    static const unsigned char ret42[] = {0xb8, 0x2a, 0x00, 0x00, 0x00, 0xc3}; /* mov eax, 42; ret */
    memcpy(code, ret42, sizeof ret42);
    int (*fn)(void) = (int (*)(void))(void *)code;
    cr_assert_eq(fn(), 42);
#endif
    unsigned char *big = halloc(h, 70000, eTaskCritical);
    cr_assert_eq(q(m, big).Protect, PAGE_EXECUTE_READWRITE);
    hostmem_malloc *rw = mkheap(m, MALLOC_THREADSAFE);
    cr_assert_eq(q(m, halloc(rw, 16, eTaskCritical)).Protect, PAGE_READWRITE);
    hostmem_malloc_destroy(rw);
    hostmem_malloc_destroy(h);
    hostmem_destroy(m);

    hostmem_config c;
    hostmem_config_init(&c);
    c.deny_write_execute = true;
    m = mk(&c);
    hostmem_stats before = st(m);
    hostmem_malloc *x = (hostmem_malloc *)0x1;
    HR_EQ(hostmem_create_malloc(m, MALLOC_EXECUTABLE | MALLOC_THREADSAFE, &x), E_ACCESSDENIED);
    cr_assert_null(x);
    hostmem_stats after = st(m);
    stats_eq(&before, &after);
    hostmem_destroy(m);
}

/* Without MALLOC_THREADSAFE: threads in turn. */
typedef struct turn {
    hostmem_malloc *h;
    void **blocks;
    int first, n;
} turn;

static void *turn_run(void *arg)
{
    turn *t = arg;
    for (int i = 0; i < t->n; i++)
        if (i % 2 == 0)
            t->blocks[t->first + i] = halloc(t->h, (size_t)i * 13, eTaskCritical);
        else
            HR_OK(hostmem_malloc_free(t->h, t->blocks[t->first + i - 1]));
    return NULL;
}

Test(h1_h2_heap_api, single_threaded_heap_serves_threads_in_turn)
{
    hostmem_manager *m = mk(NULL);
    hostmem_malloc *h = mkheap(m, 0);
    void *blocks[400] = {0};
    for (int k = 0; k < 4; k++) {
        turn t = {.h = h, .blocks = blocks, .first = k * 100, .n = 100};
        pthread_t th;
        pthread_create(&th, NULL, turn_run, &t);
        pthread_join(th, NULL);
    }
    cr_assert_eq(hst(h).live_blocks, 0);
    hostmem_malloc_destroy(h);
    hostmem_destroy(m);
}

/* ---- H3 --------------------------------------------------------------------------------- */

Test(h3_heap_memory, blocks_live_in_committed_regions_of_the_manager)
{
    hostmem_manager *m = mk(NULL);
    hostmem_stats empty = st(m);
    hostmem_malloc *h = mkheap(m, MALLOC_THREADSAFE);
    char *p = halloc(h, 100, eTaskCritical), *big = halloc(h, 200000, eTaskCritical);
    MEMORY_BASIC_INFORMATION a = q(m, p), b = q(m, big);
    cr_assert_eq(a.State, MEM_COMMIT);
    cr_assert_eq(a.Type, MEM_PRIVATE);
    cr_assert_eq(b.State, MEM_COMMIT);
    cr_assert_eq(b.AllocationBase, big - 64);
    hostmem_stats s = st(m);
    hostmem_malloc_stats hs = hst(h);
    cr_assert_eq(s.committed_bytes, hs.committed_bytes, "manager %zu, heap %zu", (size_t)s.committed_bytes,
                 (size_t)hs.committed_bytes);
    cr_assert_eq(s.reserved_bytes, hs.reserved_bytes);
    cr_assert_eq(s.region_count, 3); /* meta, one segment, one large block */
    HR_OK(hostmem_malloc_free(h, big));
    cr_assert_eq(st(m).region_count, 2);
    /* destroy returns every region, live blocks included */
    hostmem_malloc_destroy(h);
    s = st(m);
    cr_assert_eq(s.committed_bytes, empty.committed_bytes);
    cr_assert_eq(s.reserved_bytes, empty.reserved_bytes);
    cr_assert_eq(s.region_count, empty.region_count);
    hostmem_destroy(m);
}

Test(h3_heap_memory, commit_limit_and_levels_govern_the_heap)
{
    size_t L = 8 * MiB;
    hostmem_manager *m = mk_limit(L);
    hostmem_malloc *h = mkheap(m, MALLOC_THREADSAFE);
    size_t task = L * 90 / 100, appdomain = L * 97 / 100;
    /* Task level: until its ceiling refuses. */
    size_t n = 0;
    void *p;
    HRESULT hr;
    while ((hr = hostmem_malloc_alloc(h, 4000, eTaskCritical, &p)) == S_OK)
        n++;
    HR_EQ(hr, E_OUTOFMEMORY);
    cr_assert_null(p);
    cr_assert_gt(n, 1000);
    cr_assert_leq(st(m).committed_bytes, task);
    cr_assert_gt(st(m).committed_bytes + 64 * KiB, task, "stopped at %zu, far below the ceiling %zu",
                 (size_t)st(m).committed_bytes, task);
    /* Deeper levels get further, never past their ceilings. */
    while (hostmem_malloc_alloc(h, 4000, eAppDomainCritical, &p) == S_OK)
        n++;
    cr_assert_leq(st(m).committed_bytes, appdomain);
    cr_assert_gt(st(m).committed_bytes, task);
    while (hostmem_malloc_alloc(h, 4000, eProcessCritical, &p) == S_OK)
        n++;
    cr_assert_leq(st(m).committed_bytes, L);
    cr_assert_gt(st(m).committed_bytes, appdomain);
    /* A large block is refused by the same limit, and refused cleanly. */
    hostmem_stats before = st(m);
    HR_EQ(hostmem_malloc_alloc(h, 1 * MiB, eProcessCritical, &p), E_OUTOFMEMORY);
    cr_assert_null(p);
    hostmem_stats after = st(m);
    cr_assert_eq(after.committed_bytes, before.committed_bytes);
    cr_assert_eq(after.region_count, before.region_count);
    cr_assert_eq(hst(h).live_blocks, n);
    hostmem_malloc_destroy(h);
    cr_assert_eq(st(m).committed_bytes, 0);
    hostmem_destroy(m);
}

Test(h3_heap_memory, address_space_limit_governs_segments)
{
    hostmem_config c;
    hostmem_config_init(&c);
    c.address_space_limit = 4 * MiB;
    hostmem_manager *m = mk(&c);
    hostmem_malloc *h = mkheap(m, MALLOC_THREADSAFE);
    void *p;
    HRESULT hr;
    size_t n = 0;
    while ((hr = hostmem_malloc_alloc(h, 8000, eTaskCritical, &p)) == S_OK)
        n++;
    HR_EQ(hr, E_OUTOFMEMORY);
    cr_assert_leq(st(m).reserved_bytes, c.address_space_limit * 90 / 100);
    cr_assert_gt(n, 100);
    hostmem_malloc_destroy(h);
    hostmem_destroy(m);
}

typedef struct notes {
    atomic_int low, total;
} notes;

static void on_note(void *ctx, EMemoryAvailable s)
{
    notes *n = ctx;
    atomic_fetch_add(&n->total, 1);
    if (s == eMemoryAvailableLow)
        atomic_fetch_add(&n->low, 1);
}

Test(h3_heap_memory, low_decommits_free_spans_by_the_next_call_and_the_host_still_hears)
{
    size_t L = 8 * MiB;
    hostmem_manager *m = mk_limit(L);
    notes seen = {0};
    HR_OK(hostmem_register_memory_notification_callback(m, on_note, &seen));
    hostmem_malloc *h = mkheap(m, MALLOC_THREADSAFE);
    enum { N = 1000 };
    void *b[N];
    for (int i = 0; i < N; i++)
        b[i] = halloc(h, 4000, eTaskCritical); /* about 4 MiB: Neutral */
    for (int i = 0; i < N; i++)
        HR_OK(hostmem_malloc_free(h, b[i]));
    size_t kept = st(m).committed_bytes;
    cr_assert_gt(kept, 3 * MiB, "free spans stay committed while memory is plentiful");
    cr_assert_eq(atomic_load(&seen.low), 0);
    /* The host drives the manager to Low with its own commit. */
    char *r = reserve(m, NULL, 8 * MiB);
    size_t want = L * 90 / 100 - kept;
    want &= ~(pg() - 1);
    void *got;
    HR_OK(hostmem_virtual_alloc(m, r, want + pg(), MEM_COMMIT, PAGE_READWRITE, eProcessCritical, &got));
    cr_assert_geq(atomic_load(&seen.low), 1, "the host's callback heard Low");
    /* The heap's next call gives its free spans back. */
    int heard = atomic_load(&seen.total);
    void *x = halloc(h, 16, eTaskCritical);
    size_t now = st(m).committed_bytes - (want + pg());
    cr_assert_lt(now, 512 * KiB, "the heap still holds %zu bytes after Low", now);
    cr_assert_eq(hst(h).committed_bytes, now);
    /* The host's callback (not one of the heap's) heard the way back up. */
    cr_assert_gt(atomic_load(&seen.total), heard);
    HR_OK(hostmem_malloc_free(h, x));
    HR_OK(hostmem_virtual_free(m, r, 0, MEM_RELEASE));
    hostmem_malloc_destroy(h);
    hostmem_destroy(m);
}

Test(h3_heap_memory, trim_and_destroy_return_everything_after_threads_used_the_heap)
{
    hostmem_manager *m = mk(NULL);
    hostmem_stats empty = st(m);
    hostmem_malloc *h = mkheap(m, MALLOC_THREADSAFE);
    void *blocks[400];
    for (int k = 0; k < 4; k++) {
        turn t = {.h = h, .blocks = blocks, .first = k * 100, .n = 100};
        pthread_t th;
        pthread_create(&th, NULL, turn_run, &t);
        pthread_join(th, NULL);
    }
    cr_assert_eq(hst(h).live_blocks, 0);
    /* Threads that ended gave their caches back: everything is free. */
    HR_OK(hostmem_malloc_trim(h));
    hostmem_malloc_stats s = hst(h);
    cr_assert_leq(s.committed_bytes, 128 * KiB, "%zu bytes still committed", (size_t)s.committed_bytes);
    hostmem_malloc_destroy(h);
    hostmem_stats after = st(m);
    cr_assert_eq(after.region_count, empty.region_count);
    cr_assert_eq(after.committed_bytes, empty.committed_bytes);
    hostmem_destroy(m);
}
