/*
 * hosted_malloc: a host whose own malloc sits on hostmem (A5).
 *
 * malloc, free, calloc, realloc and the aligned variants of this executable
 * replace the C library's, so everything in the process allocates here: the
 * C library, the loader's thread-local storage (__tls_get_addr), lttng-ust
 * and hostmem itself.  Each thread's first malloc reserves and commits a
 * 64 KiB block through hostmem and bump-allocates from it; a full block is
 * followed by another one.  A malloc made while this thread is inside a
 * hostmem call is served the same way (a real allocator's OS layer would
 * call hostmem again too), and is counted.  free never gives memory back.
 *
 * Built with HOSTED_MIMALLOC, the allocator is Debian's mimalloc instead, fed
 * with 64 MiB arenas reserved and committed through hostmem whenever it runs
 * out (the way a runtime hands mimalloc memory it manages).
 *
 *   hosted_malloc run [THREADS]    threads allocate, format and sort, and use
 *                                  hostmem directly, then exit
 *   hosted_malloc wait [THREADS]   prints {"ready": true} and waits for a line
 *                                  on stdin before starting the threads (the
 *                                  checker starts a session meanwhile)
 *
 * In wait mode the session's statedump must run on one of the new threads,
 * as its first event, so that the tracer allocates while dumping: the main
 * thread holds a block large enough to make no hostmem call after the go, and
 * threads the host did not start (lttng-ust's) take their memory from the
 * bootstrap area instead of hostmem.
 *
 * The last line printed is one JSON object: the counts the checker compares
 * with the trace.  Exit status 0 when every check passed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hostmem/hostmem.h>
#ifdef HOSTED_MIMALLOC
#include <mimalloc.h>
#endif

#define HOST_BLOCK ((size_t)64 << 10)
#define HOST_HEADER ((size_t)16) /* the block's size, just before it */

static hostmem_manager *_Atomic host_manager;
static atomic_int host_creating;

/* Counts for the checker (outer: made while no hostmem call of this thread
 * was in progress, so traced; nested: made from inside one). */
static atomic_ulong host_outer_reserve, host_outer_commit, host_outer_decommit, host_outer_release;
static atomic_ulong host_nested_calls, host_heap_in_hostmem, host_boot_bytes;

static __thread int t_in_hostmem;
static __thread int t_host_thread;  /* main and the workload threads */
#ifndef HOSTED_MIMALLOC
static __thread char *t_cur, *t_end;
static atomic_int host_others_boot; /* wait mode: other threads' memory from host_boot */
#endif

/* Before the manager exists (and while it is being created) memory comes from
 * here; hostmem_create of a fixed library asks for none. */
static _Alignas(64) char host_boot[(size_t)8 << 20];
static atomic_size_t host_boot_used;

static void host_die(const char *what)
{
    /* No stdio: it would allocate. */
    static const char prefix[] = "hosted_malloc: ";
    (void)!write(2, prefix, sizeof prefix - 1);
    (void)!write(2, what, strlen(what));
    (void)!write(2, "\n", 1);
    _exit(3);
}

static uintptr_t host_round(uintptr_t a, size_t to) { return (a + to - 1) & ~(uintptr_t)(to - 1); }

static void host_count(DWORD type, atomic_ulong *decommit_or_release)
{
    if (t_in_hostmem) {
        atomic_fetch_add(&host_nested_calls, 1);
        return;
    }
    if (decommit_or_release) {
        atomic_fetch_add(decommit_or_release, 1);
        return;
    }
    if (type & MEM_RESERVE)
        atomic_fetch_add(&host_outer_reserve, 1);
    if (type & MEM_COMMIT)
        atomic_fetch_add(&host_outer_commit, 1);
}

static HRESULT host_alloc_call(hostmem_manager *m, void *at, size_t size, DWORD type, void **out)
{
    host_count(type, NULL);
    t_in_hostmem++;
    HRESULT hr = hostmem_virtual_alloc(m, at, size, type, PAGE_READWRITE, eTaskCritical, out);
    t_in_hostmem--;
    return hr;
}

static HRESULT host_free_call(hostmem_manager *m, void *at, size_t size, DWORD type)
{
    host_count(0, type == MEM_RELEASE ? &host_outer_release : &host_outer_decommit);
    t_in_hostmem++;
    HRESULT hr = hostmem_virtual_free(m, at, size, type);
    t_in_hostmem--;
    return hr;
}

static hostmem_manager *host_get_manager(void)
{
    hostmem_manager *m = atomic_load(&host_manager);
    if (m)
        return m;
    int expected = 0;
    if (!atomic_compare_exchange_strong(&host_creating, &expected, 1))
        return NULL; /* another thread (or this one, re-entered) is creating it */
    /* Limits of both kinds: the policy then decides (and traces) every
     * reservation and commit under its lock. */
    hostmem_config cfg;
    hostmem_config_init(&cfg);
    cfg.commit_limit = (size_t)16 << 30; /* mimalloc's arenas are committed whole */
    cfg.address_space_limit = (size_t)64 << 30;
    t_in_hostmem++;
    HRESULT hr = hostmem_create(&cfg, &m);
    t_in_hostmem--;
    if (hr != S_OK)
        host_die("hostmem_create failed");
    atomic_store(&host_manager, m);
    return m;
}

static void *host_boot_alloc(size_t n, size_t align)
{
    size_t used = atomic_load(&host_boot_used), at, end;
    do {
        at = host_round((uintptr_t)host_boot + used + HOST_HEADER, align) - (uintptr_t)host_boot;
        end = at + n;
        if (end > sizeof host_boot || end < at)
            host_die("bootstrap memory exhausted");
    } while (!atomic_compare_exchange_weak(&host_boot_used, &used, end));
    atomic_fetch_add(&host_boot_bytes, n);
    ((size_t *)(host_boot + at))[-1] = n;
    return host_boot + at;
}

#ifndef HOSTED_MIMALLOC

static void *host_alloc(size_t n, size_t align)
{
    if (align < 16)
        align = 16;
    if (!t_host_thread && atomic_load(&host_others_boot))
        return host_boot_alloc(n, align);
    if (t_in_hostmem)
        atomic_fetch_add(&host_heap_in_hostmem, 1);
    for (;;) {
        if (t_cur) {
            uintptr_t p = host_round((uintptr_t)t_cur + HOST_HEADER, align);
            if (p <= (uintptr_t)t_end && n <= (uintptr_t)t_end - p) {
                t_cur = (char *)(p + n);
                ((size_t *)p)[-1] = n;
                return (void *)p;
            }
        }
        if (n > ((size_t)1 << 40))
            return NULL;
        size_t size = host_round(n + align + HOST_HEADER, HOST_BLOCK);
        hostmem_manager *m = host_get_manager();
        if (!m)
            return host_boot_alloc(n, align);
        void *b = NULL;
        if (host_alloc_call(m, NULL, size, MEM_RESERVE | MEM_COMMIT, &b) != S_OK)
            return NULL;
        /* A malloc nested inside that call may have installed a block of its
         * own meanwhile: it stays in use, this one follows it. */
        t_cur = b;
        t_end = (char *)b + size;
    }
}

static size_t host_size_of(const void *p) { return ((const size_t *)p)[-1]; }

void *malloc(size_t n) { return host_alloc(n, 16); }
void free(void *p) { (void)p; }
void *calloc(size_t a, size_t b)
{
    size_t n;
    if (__builtin_mul_overflow(a, b, &n))
        return NULL;
    void *p = host_alloc(n, 16);
    if (p)
        memset(p, 0, n);
    return p;
}
void *realloc(void *p, size_t n)
{
    void *q = host_alloc(n, 16);
    if (p && q) {
        size_t old = host_size_of(p);
        memcpy(q, p, old < n ? old : n);
    }
    return q;
}
void *memalign(size_t align, size_t n) { return host_alloc(n, align); }
void *aligned_alloc(size_t align, size_t n) { return host_alloc(n, align); }
int posix_memalign(void **out, size_t align, size_t n)
{
    void *p = host_alloc(n, align);
    if (!p)
        return ENOMEM;
    *out = p;
    return 0;
}
void *valloc(size_t n) { return host_alloc(n, 4096); }
void *pvalloc(size_t n) { return host_alloc(host_round(n, 4096), 4096); }
size_t malloc_usable_size(void *p) { return p ? host_size_of(p) : 0; }

#else /* HOSTED_MIMALLOC */

/* Debian's mimalloc is the allocator; its heap memory comes only from arenas
 * hostmem reserved and committed (mi_manage_os_memory_ex), added whenever
 * mimalloc runs out -- from inside whatever malloc found it out, on any
 * thread, possibly from inside the tracer.  mimalloc must not decommit the
 * arenas behind hostmem's back: allow_decommit off (committed arenas are never
 * decommitted whole anyway). */
#define HOST_ARENA ((size_t)64 << 20)
#define HOST_MAX_ARENAS 48
static atomic_int host_state;     /* 0: nothing, 1: starting, 2: ready */
static atomic_int host_arenas;
static atomic_ulong host_arena_calls;

static bool host_in_boot(const void *p)
{
    return (const char *)p >= host_boot && (const char *)p < host_boot + sizeof host_boot;
}

static bool host_add_arena(void)
{
    hostmem_manager *m = atomic_load(&host_manager);
    if (!m || atomic_fetch_add(&host_arenas, 1) >= HOST_MAX_ARENAS)
        return false;
    atomic_fetch_add(&host_arena_calls, 1);
    void *r = NULL, *c = NULL;
    if (host_alloc_call(m, NULL, 2 * HOST_ARENA, MEM_RESERVE, &r) != S_OK)
        return false;
    void *aligned = (void *)host_round((uintptr_t)r, HOST_ARENA);
    if (host_alloc_call(m, aligned, HOST_ARENA, MEM_COMMIT, &c) != S_OK)
        return false;
    mi_arena_id_t id;
    return mi_manage_os_memory_ex(aligned, HOST_ARENA, true, false, true, -1, false, &id);
}

static bool host_ready(void)
{
    int st = atomic_load(&host_state);
    if (st == 2)
        return true;
    int expected = 0;
    if (st != 0 || !atomic_compare_exchange_strong(&host_state, &expected, 1))
        return false; /* starting on some thread: the bootstrap area serves */
    mi_option_set(mi_option_limit_os_alloc, 1);
    mi_option_set(mi_option_allow_decommit, 0);
    if (!host_get_manager() || !host_add_arena())
        host_die("cannot give mimalloc its first arena");
    atomic_store(&host_state, 2);
    return true;
}

static void *host_alloc(size_t n, size_t align)
{
    if (!host_ready())
        return host_boot_alloc(n, align < 16 ? 16 : align);
    if (t_in_hostmem)
        atomic_fetch_add(&host_heap_in_hostmem, 1);
    for (;;) {
        void *p = align > 16 ? mi_malloc_aligned(n, align) : mi_malloc(n);
        if (p || !host_add_arena())
            return p;
    }
}

static size_t host_size_of(const void *p)
{
    return host_in_boot(p) ? ((const size_t *)p)[-1] : mi_usable_size(p);
}

void *malloc(size_t n) { return host_alloc(n, 16); }
void free(void *p)
{
    if (p && !host_in_boot(p))
        mi_free(p);
}
void *calloc(size_t a, size_t b)
{
    size_t n;
    if (__builtin_mul_overflow(a, b, &n))
        return NULL;
    void *p = host_alloc(n, 16);
    if (p)
        memset(p, 0, n);
    return p;
}
void *realloc(void *p, size_t n)
{
    void *q = host_alloc(n, 16);
    if (p && q) {
        size_t old = host_size_of(p);
        memcpy(q, p, old < n ? old : n);
        free(p);
    }
    return q;
}
void *memalign(size_t align, size_t n) { return host_alloc(n, align); }
void *aligned_alloc(size_t align, size_t n) { return host_alloc(n, align); }
int posix_memalign(void **out, size_t align, size_t n)
{
    void *p = host_alloc(n, align);
    if (!p)
        return ENOMEM;
    *out = p;
    return 0;
}
void *valloc(size_t n) { return host_alloc(n, 4096); }
void *pvalloc(size_t n) { return host_alloc(host_round(n, 4096), 4096); }
size_t malloc_usable_size(void *p) { return p ? host_size_of(p) : 0; }

#endif /* HOSTED_MIMALLOC */

/* ---- the workload ------------------------------------------------------- */

#define ROUNDS 400

static int cmp_int(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

static void *host_thread(void *arg)
{
    t_host_thread = 1;
    unsigned seed = (unsigned)(uintptr_t)arg * 2654435761u + 1;
    hostmem_manager *m = atomic_load(&host_manager);
    for (int i = 0; i < ROUNDS; i++) {
        seed = seed * 1103515245u + 12345u;
        size_t n = 16 + (seed >> 8) % 2048;
        char *s = malloc(n);
        if (!s)
            host_die("malloc failed");
        snprintf(s, n, "round %d of thread %p: %zu bytes", i, arg, n);
        s = realloc(s, n * 2);
        int *v = calloc(64, sizeof *v);
        if (!s || !v)
            host_die("realloc or calloc failed");
        for (int k = 0; k < 64; k++)
            v[k] = (int)((seed >> (k % 16)) & 0xffff);
        qsort(v, 64, sizeof *v, cmp_int);
        free(v);
        free(s);
        if (i % 50 == 0) {
            /* The application's own use of hostmem, as a GC heap would. */
            void *r = NULL, *c = NULL;
            if (host_alloc_call(m, NULL, (size_t)1 << 20, MEM_RESERVE, &r) != S_OK ||
                host_alloc_call(m, r, 4 * 4096, MEM_COMMIT, &c) != S_OK)
                host_die("reserve or commit failed");
            memset(c, 1, 4 * 4096);
            if (host_free_call(m, c, 4 * 4096, MEM_DECOMMIT) != S_OK ||
                host_free_call(m, r, 0, MEM_RELEASE) != S_OK)
                host_die("decommit or release failed");
        }
        if (i % 100 == 0) {
            FILE *f = fopen("/proc/self/stat", "r"); /* stdio buffers come from malloc */
            char line[256];
            if (!f || !fgets(line, sizeof line, f))
                host_die("cannot read /proc/self/stat");
            fclose(f);
        }
    }
    return NULL;
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "run";
    int threads = argc > 2 ? atoi(argv[2]) : 4;
    if (threads < 1 || threads > 64 || (strcmp(mode, "run") && strcmp(mode, "wait")))
        host_die("usage: hosted_malloc run|wait [THREADS]");
    t_host_thread = 1;
    free(malloc(1)); /* the manager exists from here on */
#ifndef HOSTED_MIMALLOC
    if (!strcmp(mode, "wait")) {
        atomic_store(&host_others_boot, 1);
        /* A block of 4 MiB for main: no hostmem call of its own after the go. */
        void *big = malloc((size_t)4 << 20);
        t_cur = big;
        t_end = (char *)big + ((size_t)4 << 20);
    }
#endif
    hostmem_manager *m = host_get_manager();
    if (!m)
        host_die("no manager");
    printf("{\"pid\": %d, \"manager\": %" PRIuPTR "}\n", (int)getpid(), (uintptr_t)m);
    if (!strcmp(mode, "wait")) {
        printf("{\"ready\": true}\n");
        fflush(stdout);
        char line[16];
        if (!fgets(line, sizeof line, stdin))
            host_die("no go line on stdin");
    }
    pthread_t t[64];
    for (int i = 0; i < threads; i++)
        if (pthread_create(&t[i], NULL, host_thread, (void *)(uintptr_t)(i + 1)))
            host_die("pthread_create failed");
    for (int i = 0; i < threads; i++)
        pthread_join(t[i], NULL);
    hostmem_stats st;
    if (hostmem_get_stats(m, &st) != S_OK)
        host_die("get_stats failed");
    printf("{\"threads\": %d, \"rounds\": %d, \"outer_reserve\": %lu, \"outer_commit\": %lu, "
           "\"outer_decommit\": %lu, \"outer_release\": %lu, \"nested_calls\": %lu, "
           "\"heap_in_hostmem\": %lu, \"boot_bytes\": %lu, \"regions\": %zu, \"mimalloc\": %d}\n",
           threads, ROUNDS, atomic_load(&host_outer_reserve), atomic_load(&host_outer_commit),
           atomic_load(&host_outer_decommit), atomic_load(&host_outer_release),
           atomic_load(&host_nested_calls), atomic_load(&host_heap_in_hostmem),
           atomic_load(&host_boot_bytes), (size_t)st.region_count,
#ifdef HOSTED_MIMALLOC
           1
#else
           0
#endif
    );
    fflush(stdout);
    return 0;
}
