/*
 * trace_workload.c: a host that drives hostmem through its public API in a
 * known order, for test_trace.py to check the events a real LTTng session
 * recorded.  It prints one JSON object per line on stdout: what it did and
 * what each call returned, so the checker can compare field by field.
 *
 *   trace_workload basic | limits | halves | wait | statedump | threads | heap | books
 *
 * statedump: after building its regions it prints {"ready": true} and waits
 * for a line on stdin (the checker starts its session meanwhile), then makes
 * one call so the manager notices the session.
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <link.h>
#include <pthread.h>
#include <time.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <hostmem/hostmem.h>

static size_t page;

#define CHECK(expr)                                                                  \
    do {                                                                             \
        if (!(expr)) {                                                               \
            fprintf(stderr, "%s:%d: %s failed\n", __FILE__, __LINE__, #expr);         \
            exit(2);                                                                 \
        }                                                                            \
    } while (0)

/* The manager whose books (hostmem_get_stats) each call line carries, or NULL. */
static hostmem_manager *books_of;

/* One JSON line per call: the checker pairs it with the call's events. */
static void emit(const char *op, const void *address, size_t size, HRESULT hr, const void *result)
{
    printf("{\"call\": \"%s\", \"address\": %" PRIuPTR ", \"size\": %zu, \"hr\": \"%s\", "
           "\"result\": %" PRIuPTR,
           op, (uintptr_t)address, size, hostmem_hresult_name(hr), (uintptr_t)result);
    if (books_of != NULL) {
        hostmem_stats st;
        CHECK(hostmem_get_stats(books_of, &st) == S_OK);
        printf(", \"reserved\": %zu, \"committed\": %zu", st.reserved_bytes, st.committed_bytes);
    }
    printf("}\n");
}

/* The main program's executable segment: where `caller` must point. */
static int text_range(struct dl_phdr_info *info, size_t size, void *data)
{
    uintptr_t *range = data;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type == PT_LOAD && (ph->p_flags & PF_X)) {
            range[0] = info->dlpi_addr + ph->p_vaddr;
            range[1] = range[0] + ph->p_memsz;
        }
    }
    return 1; /* the first object is the main program */
}

static void emit_header(const char *scenario, hostmem_manager *m)
{
    uintptr_t text[2] = {0, 0};
    dl_iterate_phdr(text_range, text);
    printf("{\"scenario\": \"%s\", \"manager\": %" PRIuPTR ", \"page\": %zu, \"pid\": %d, "
           "\"text_lo\": %" PRIuPTR ", \"text_hi\": %" PRIuPTR "}\n",
           scenario, (uintptr_t)m, page, (int)getpid(), text[0], text[1]);
}

/* A manager with a commit limit of `limit` bytes and P2's process-critical
 * wait of `wait_ms`, announced as `scenario`. */
static hostmem_manager *limited(const char *scenario, size_t limit, DWORD wait_ms)
{
    hostmem_config cfg;
    hostmem_config_init(&cfg);
    cfg.commit_limit = limit;
    cfg.process_critical_wait_ms = wait_ms;
    hostmem_manager *m;
    CHECK(hostmem_create(&cfg, &m) == S_OK);
    emit_header(scenario, m);
    return m;
}

static void basic(void)
{
    hostmem_manager *m;
    CHECK(hostmem_create(NULL, &m) == S_OK);
    emit_header("basic", m);

    void *p = NULL, *r = NULL, *q = NULL;
    HRESULT hr = hostmem_virtual_alloc(m, NULL, 100000, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE,
                                       eTaskCritical, &p);
    CHECK(hr == S_OK);
    emit("reserve_commit", NULL, 100000, hr, p);

    hr = hostmem_virtual_alloc(m, NULL, 1 << 20, MEM_RESERVE, PAGE_NOACCESS, eAppDomainCritical, &r);
    CHECK(hr == S_OK);
    emit("reserve", NULL, 1 << 20, hr, r);

    char *c = (char *)r + page;
    hr = hostmem_virtual_alloc(m, c, 2 * page + 1, MEM_COMMIT, PAGE_READWRITE, eProcessCritical, &q);
    CHECK(hr == S_OK && q == c);
    emit("commit", c, 2 * page + 1, hr, q);

    DWORD old = 0;
    hr = hostmem_virtual_protect(m, c, page, PAGE_READONLY, &old);
    CHECK(hr == S_OK && old == PAGE_READWRITE);
    emit("protect", c, page, hr, (void *)(uintptr_t)old);

    MEMORY_BASIC_INFORMATION mbi;
    SIZE_T written = 0;
    hr = hostmem_virtual_query(m, c + 5, &mbi, sizeof mbi, &written);
    CHECK(hr == S_OK && mbi.RegionSize == page);
    emit("query", c + 5, sizeof mbi, hr, mbi.BaseAddress);

    hr = hostmem_virtual_alloc(m, c + page, page, MEM_RESET, PAGE_NOACCESS, eTaskCritical, &q);
    CHECK(hr == S_OK);
    emit("reset", c + page, page, hr, q);

    hr = hostmem_virtual_alloc(m, c + page, page, MEM_RESET_UNDO, PAGE_NOACCESS, eTaskCritical, &q);
    emit("reset_undo", c + page, page, hr, q); /* S_OK or E_OUTOFMEMORY (S10) */

    hr = hostmem_virtual_free(m, c + page, page, MEM_DECOMMIT);
    CHECK(hr == S_OK);
    emit("decommit", c + page, page, hr, NULL);

    /* Two failures: a release with a size, a protect over reserved pages. */
    hr = hostmem_virtual_free(m, r, 5, MEM_RELEASE);
    CHECK(hr == E_INVALIDARG);
    emit("release", r, 5, hr, NULL);
    hr = hostmem_virtual_protect(m, (char *)r + 8 * page, page, PAGE_READWRITE, &old);
    CHECK(hr == HOSTMEM_E_INVALID_ADDRESS);
    emit("protect", (char *)r + 8 * page, page, hr, NULL);

    hr = hostmem_virtual_free(m, p, 0, MEM_RELEASE);
    CHECK(hr == S_OK);
    emit("release", p, 0, hr, NULL);

    /* r stays live: manager_destroy reports it. */
    hostmem_destroy(m);
    emit("destroy", NULL, 0, S_OK, NULL);
}

static int notified[4];
static void on_state(void *context, EMemoryAvailable state)
{
    (void)context;
    if (state >= 1 && state <= 3)
        notified[state]++;
}

static void limits(void)
{
    /* task 90 pages, appdomain 97, process 100 */
    hostmem_manager *m = limited("limits", 100 * page, 0);
    CHECK(hostmem_register_memory_notification_callback(m, on_state, NULL) == S_OK);

    void *r = NULL, *q = NULL;
    CHECK(hostmem_virtual_alloc(m, NULL, 128 * page, MEM_RESERVE, PAGE_NOACCESS, eTaskCritical,
                                &r) == S_OK);
    emit("reserve", NULL, 128 * page, S_OK, r);
    char *b = r;
    static const struct { size_t at, pages; EMemoryCriticalLevel level; } steps[] = {
        {0, 80, eTaskCritical},       /* 80: granted */
        {80, 15, eTaskCritical},      /* 95 > 90: denied */
        {80, 15, eAppDomainCritical}, /* 95 <= 97: granted from reserve */
        {95, 4, eProcessCritical},    /* 99 <= 100: granted from reserve */
        {99, 2, eProcessCritical},    /* 101 > 100: denied, after telling Low */
    };
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        char *at = b + steps[i].at * page;
        HRESULT hr = hostmem_virtual_alloc(m, at, steps[i].pages * page, MEM_COMMIT,
                                           PAGE_READWRITE, steps[i].level, &q);
        emit("commit", at, steps[i].pages * page, hr, q);
    }

    /* External address space. */
    void *ext = (void *)(uintptr_t)0x100000000000ull;
    HRESULT hr = hostmem_needs_virtual_address_space(m, ext, 1 << 20);
    emit("needs", ext, 1 << 20, hr, NULL);
    hr = hostmem_acquired_virtual_address_space(m, ext, 1 << 20);
    emit("acquired", ext, 1 << 20, hr, NULL);
    hr = hostmem_released_virtual_address_space(m, ext);
    emit("released", ext, 0, hr, NULL);
    hr = hostmem_released_virtual_address_space(m, ext);
    emit("released", ext, 0, hr, NULL);

    CHECK(hostmem_virtual_free(m, r, 0, MEM_RELEASE) == S_OK);
    emit("release", r, 0, S_OK, NULL);
    hostmem_destroy(m);
    emit("destroy", NULL, 0, S_OK, NULL);
}

/* P2's wait: a process-critical commit over the limit waits until another
 * thread decommits, then is granted: one request, one decision. */
static void *wait_freer(void *arg)
{
    void **a = arg;
    struct timespec ts = {0, 100 * 1000000};
    nanosleep(&ts, NULL);
    CHECK(hostmem_virtual_free(a[0], a[1], 4 * page, MEM_DECOMMIT) == S_OK);
    return NULL;
}

static void waited(void)
{
    hostmem_manager *m = limited("wait", 10 * page, 10000);
    void *r = NULL, *q = NULL;
    CHECK(hostmem_virtual_alloc(m, NULL, 16 * page, MEM_RESERVE, PAGE_NOACCESS, eTaskCritical, &r) == S_OK);
    char *b = r;
    CHECK(hostmem_virtual_alloc(m, b, 8 * page, MEM_COMMIT, PAGE_READWRITE, eTaskCritical, &q) == S_OK);
    emit("commit", b, 8 * page, S_OK, q);
    void *arg[2] = {m, b};
    pthread_t t;
    CHECK(pthread_create(&t, NULL, wait_freer, arg) == 0);
    HRESULT hr = hostmem_virtual_alloc(m, b + 8 * page, 4 * page, MEM_COMMIT, PAGE_READWRITE,
                                       eProcessCritical, &q);
    emit("commit", b + 8 * page, 4 * page, hr, q);
    CHECK(hr == S_OK);
    pthread_join(t, NULL);
    CHECK(hostmem_virtual_free(m, r, 0, MEM_RELEASE) == S_OK);
    hostmem_destroy(m);
    emit("destroy", NULL, 0, S_OK, NULL);
}

/* The two halves of one call: MEM_COMMIT at no address reserves too, and a
 * reserve-and-commit the commit limit refuses leaves nothing behind. */
static void halves(void)
{
    hostmem_manager *m = limited("halves", 10 * page, 0);
    void *p = NULL, *q = (void *)1;
    HRESULT hr = hostmem_virtual_alloc(m, NULL, 2 * page, MEM_COMMIT, PAGE_READWRITE, eTaskCritical, &p);
    CHECK(hr == S_OK);
    emit("implicit", NULL, 2 * page, hr, p);
    hr = hostmem_virtual_alloc(m, NULL, 20 * page, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE,
                               eTaskCritical, &q);
    CHECK(hr == E_OUTOFMEMORY && q == NULL);
    emit("refused", NULL, 20 * page, hr, q);
    hostmem_stats st;
    CHECK(hostmem_get_stats(m, &st) == S_OK);
    CHECK(st.region_count == 1 && st.committed_bytes == 2 * page);
    CHECK(hostmem_virtual_free(m, p, 0, MEM_RELEASE) == S_OK);
    emit("release", p, 0, S_OK, NULL);
    hostmem_destroy(m);
    emit("destroy", NULL, 0, S_OK, NULL);
}

/* Every region operation, each call line with the manager's books after it
 * (the rows of hostmem-analyze export): ranges off the page boundaries, a
 * whole-region decommit, a release at an address inside the base page, and
 * refused calls, a reserve-and-commit among them. */
static void books(void)
{
    hostmem_manager *m = limited("books", 64 * page, 0);
    books_of = m;
    void *p = NULL, *r = NULL, *q = NULL;
    HRESULT hr = hostmem_virtual_alloc(m, NULL, 100000, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE,
                                       eTaskCritical, &p);
    CHECK(hr == S_OK);
    emit("reserve_commit", NULL, 100000, hr, p);
    hr = hostmem_virtual_alloc(m, NULL, 1 << 20, MEM_RESERVE, PAGE_NOACCESS, eTaskCritical, &r);
    CHECK(hr == S_OK);
    emit("reserve", NULL, 1 << 20, hr, r);

    char *c = (char *)r + page + 100; /* pages 1-3 of r */
    hr = hostmem_virtual_alloc(m, c, 2 * page, MEM_COMMIT, PAGE_READWRITE, eTaskCritical, &q);
    CHECK(hr == S_OK);
    emit("commit", c, 2 * page, hr, q);
    DWORD old = 0;
    hr = hostmem_virtual_protect(m, c + page, 10, PAGE_READONLY, &old); /* page 2 */
    CHECK(hr == S_OK);
    emit("protect", c + page, 10, hr, NULL);
    MEMORY_BASIC_INFORMATION mbi;
    SIZE_T written = 0;
    hr = hostmem_virtual_query(m, c, &mbi, sizeof mbi, &written);
    CHECK(hr == S_OK);
    emit("query", c, sizeof mbi, hr, mbi.BaseAddress);
    hr = hostmem_virtual_alloc(m, c, page, MEM_RESET, PAGE_NOACCESS, eTaskCritical, &q); /* 1-2 */
    CHECK(hr == S_OK);
    emit("reset", c, page, hr, q);
    hr = hostmem_virtual_alloc(m, c, page, MEM_RESET_UNDO, PAGE_NOACCESS, eTaskCritical, &q);
    emit("reset_undo", c, page, hr, q); /* S_OK or E_OUTOFMEMORY (S10) */
    hr = hostmem_virtual_free(m, c + page, page, MEM_DECOMMIT); /* pages 2-3 */
    CHECK(hr == S_OK);
    emit("decommit", c + page, page, hr, NULL);
    hr = hostmem_virtual_free(m, r, 0, MEM_DECOMMIT); /* the whole region */
    CHECK(hr == S_OK);
    emit("decommit", r, 0, hr, NULL);

    /* Refused: a commit past the region's end, a release with a size, a
     * reserve-and-commit over the commit limit (its region is given back). */
    char *end = (char *)r + (1 << 20) - page;
    hr = hostmem_virtual_alloc(m, end, 2 * page, MEM_COMMIT, PAGE_READWRITE, eTaskCritical, &q);
    CHECK(FAILED(hr));
    emit("commit", end, 2 * page, hr, q);
    hr = hostmem_virtual_free(m, r, 5, MEM_RELEASE);
    CHECK(hr == E_INVALIDARG);
    emit("release", r, 5, hr, NULL);
    hr = hostmem_virtual_alloc(m, NULL, 100 * page, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE,
                               eTaskCritical, &q);
    CHECK(hr == E_OUTOFMEMORY);
    emit("reserve_commit", NULL, 100 * page, hr, q);

    hr = hostmem_virtual_free(m, p, 0, MEM_RELEASE);
    CHECK(hr == S_OK);
    emit("release", p, 0, hr, NULL);
    hr = hostmem_virtual_free(m, (char *)r + 100, 0, MEM_RELEASE); /* rounds down to r */
    CHECK(hr == S_OK);
    emit("release", (char *)r + 100, 0, hr, NULL);
    books_of = NULL;
    hostmem_destroy(m);
    emit("destroy", NULL, 0, S_OK, NULL);
}

static void statedump(void)
{
    hostmem_manager *m;
    CHECK(hostmem_create(NULL, &m) == S_OK);
    emit_header("statedump", m);
    void *a = NULL, *b = NULL, *q = NULL;
    CHECK(hostmem_virtual_alloc(m, NULL, 3 * page, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE,
                                eTaskCritical, &a) == S_OK);
    emit("reserve_commit", NULL, 3 * page, S_OK, a);
    CHECK(hostmem_virtual_alloc(m, NULL, 64 * page, MEM_RESERVE, PAGE_EXECUTE_READ, eTaskCritical,
                                &b) == S_OK);
    emit("reserve", NULL, 64 * page, S_OK, b);
    CHECK(hostmem_virtual_alloc(m, (char *)b + 4 * page, 2 * page, MEM_COMMIT, PAGE_READONLY,
                                eTaskCritical, &q) == S_OK);
    emit("commit", (char *)b + 4 * page, 2 * page, S_OK, q);

    printf("{\"ready\": true}\n");
    fflush(stdout);
    char line[16];
    CHECK(fgets(line, sizeof line, stdin) != NULL);

    hostmem_stats st;
    CHECK(hostmem_get_stats(m, &st) == S_OK);
    MEMORY_BASIC_INFORMATION mbi;
    SIZE_T written;
    HRESULT hr = hostmem_virtual_query(m, a, &mbi, sizeof mbi, &written);
    emit("query", a, sizeof mbi, hr, mbi.BaseAddress);
    hostmem_destroy(m);
    emit("destroy", NULL, 0, S_OK, NULL);
}

#define THREADS 4
#define ROUNDS 250
static void *thread_main(void *arg)
{
    hostmem_manager *m = arg;
    for (int i = 0; i < ROUNDS; i++) {
        void *p = NULL;
        HRESULT hr = hostmem_virtual_alloc(m, NULL, page, MEM_RESERVE | MEM_COMMIT,
                                           PAGE_READWRITE, eTaskCritical, &p);
        if (hr == S_OK)
            hr = hostmem_virtual_free(m, p, 0, MEM_RELEASE);
        if (hr != S_OK) {
            fprintf(stderr, "round %d: %s\n", i, hostmem_hresult_name(hr));
            exit(2);
        }
    }
    return NULL;
}

static void threads(void)
{
    hostmem_manager *m;
    CHECK(hostmem_create(NULL, &m) == S_OK);
    emit_header("threads", m);
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        CHECK(pthread_create(&t[i], NULL, thread_main, m) == 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    printf("{\"threads\": %d, \"rounds\": %d}\n", THREADS, ROUNDS);
    hostmem_destroy(m);
    emit("destroy", NULL, 0, S_OK, NULL);
}

/* A host that forks: the child keeps using the manager it inherited.  Its
 * events reach a session only when liblttng-ust-fork.so is preloaded (lttng-ust
 * must re-register the new process with the session daemon). */
static void forked(void)
{
    hostmem_manager *m;
    CHECK(hostmem_create(NULL, &m) == S_OK);
    emit_header("fork", m);
    void *p;
    CHECK(hostmem_virtual_alloc(m, NULL, 65536, MEM_RESERVE, PAGE_READWRITE, eTaskCritical, &p) == S_OK);
    fflush(stdout);
    pid_t child = fork();
    CHECK(child >= 0);
    if (child == 0) {
        void *q;
        CHECK(hostmem_virtual_alloc(m, p, 4096, MEM_COMMIT, PAGE_READWRITE, eTaskCritical, &q) == S_OK);
        ((char *)q)[0] = 1;
        CHECK(hostmem_virtual_free(m, p, 0, MEM_RELEASE) == S_OK);
        printf("{\"child\": %d}\n", (int)getpid());
        fflush(stdout);
        _exit(0);
    }
    int status;
    CHECK(waitpid(child, &status, 0) == child && WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK(hostmem_virtual_free(m, p, 0, MEM_RELEASE) == S_OK);
    hostmem_destroy(m);
}

/* The manager's heap (H4): allocations, a debug allocation, frees,
 * refused calls, a limit reached, a destroy with blocks still live. */
static void heap(void)
{
    hostmem_manager *m = limited("heap", 4u << 20, 0);
    hostmem_malloc *h;
    HRESULT hr = hostmem_create_malloc(m, MALLOC_THREADSAFE, &h);
    CHECK(hr == S_OK);
    emit("create_malloc", NULL, MALLOC_THREADSAFE, hr, h);
    void *a, *d, *big, *x;
    CHECK((hr = hostmem_malloc_alloc(h, 100, eTaskCritical, &a)) == S_OK);
    emit("malloc_alloc", NULL, 100, hr, a);
    CHECK((hr = hostmem_malloc_debug_alloc(h, 40, eAppDomainCritical, "workload.c", 123, &d)) == S_OK);
    emit("malloc_debug_alloc", NULL, 40, hr, d);
    CHECK((hr = hostmem_malloc_alloc(h, 50000, eProcessCritical, &big)) == S_OK);
    emit("malloc_alloc", NULL, 50000, hr, big);
    CHECK((hr = hostmem_malloc_free(h, a)) == S_OK);
    emit("malloc_free", a, 0, hr, NULL);
    _Alignas(16) char on_stack[16];
    hr = hostmem_malloc_free(h, on_stack);
    CHECK(hr == E_INVALIDARG);
    emit("malloc_free", on_stack, 0, hr, NULL);
    CHECK((hr = hostmem_malloc_free(h, NULL)) == S_OK);
    emit("malloc_free", NULL, 0, hr, NULL);
    /* Task level until the ceiling refuses; then all of it back. */
    void *blocks[2048];
    size_t n = 0;
    while (n < 2048 && (hr = hostmem_malloc_alloc(h, 4000, eTaskCritical, &x)) == S_OK)
        blocks[n++] = x;
    CHECK(hr == E_OUTOFMEMORY);
    emit("malloc_alloc", NULL, 4000, hr, NULL);
    printf("{\"filled\": %zu}\n", n);
    while (n)
        CHECK(hostmem_malloc_free(h, blocks[--n]) == S_OK);
    hostmem_malloc_destroy(h); /* d and big still live: leaks */
    emit("malloc_destroy", h, 0, S_OK, NULL);
    hostmem_destroy(m);
}

/* W3: write-watch calls and a guard hit, reported through the host's own handler. */
static void on_segv(int sig, siginfo_t *info, void *ctx)
{
    (void)sig;
    (void)ctx;
    if (hostmem_handle_fault(info) != HOSTMEM_FAULT_GUARD)
        _exit(3);
}

static void win32(void)
{
    hostmem_manager *m;
    CHECK(hostmem_create(NULL, &m) == S_OK);
    emit_header("win32", m);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, NULL);
    char *w = NULL;
    HRESULT hr = hostmem_virtual_alloc(m, NULL, 16 * page, MEM_RESERVE | MEM_COMMIT | MEM_WRITE_WATCH,
                                       PAGE_READWRITE, eTaskCritical, (void **)&w);
    if (hr == E_NOTIMPL) { /* a kernel without write watch: nothing to record */
        emit("reserve_commit_watch", NULL, 16 * page, hr, NULL);
        hostmem_destroy(m);
        return;
    }
    CHECK(hr == S_OK);
    emit("reserve_commit_watch", NULL, 16 * page, hr, w);
    w[page] = w[3 * page] = w[4 * page] = 1;
    void *res[16];
    ULONG_PTR count = 16;
    DWORD gran;
    CHECK((hr = hostmem_get_write_watch(m, WRITE_WATCH_FLAG_RESET, w, 16 * page, res, &count, &gran)) == S_OK);
    emit("get_write_watch", w, 16 * page, hr, (void *)(uintptr_t)count);
    count = 16;
    CHECK((hr = hostmem_get_write_watch(m, 0, w, 16 * page, res, &count, &gran)) == S_OK);
    emit("get_write_watch", w, 16 * page, hr, (void *)(uintptr_t)count);
    CHECK((hr = hostmem_reset_write_watch(m, w, 2 * page)) == S_OK);
    emit("reset_write_watch", w, 2 * page, hr, NULL);
    count = 0;
    hr = hostmem_get_write_watch(m, 0, w, 16 * page, res, &count, &gran);
    CHECK(hr == E_INVALIDARG);
    emit("get_write_watch", w, 16 * page, hr, NULL);
    char *g = NULL;
    CHECK((hr = hostmem_virtual_alloc(m, NULL, 2 * page, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE | PAGE_GUARD,
                                      eTaskCritical, (void **)&g)) == S_OK);
    emit("reserve_commit_guard", NULL, 2 * page, hr, g);
    ((volatile char *)g)[page + 5] = 7; /* the guard hit: cleared, retried */
    CHECK(g[page + 5] == 7);
    emit("guard_hit", g + page + 5, 0, S_OK, g + page);
    hostmem_destroy(m);
}

int main(int argc, char **argv)
{
    page = (size_t)sysconf(_SC_PAGESIZE);
    setvbuf(stdout, NULL, _IOLBF, 0);
    const char *s = argc > 1 ? argv[1] : "basic";
    if (strcmp(s, "basic") == 0)
        basic();
    else if (strcmp(s, "limits") == 0)
        limits();
    else if (strcmp(s, "halves") == 0)
        halves();
    else if (strcmp(s, "wait") == 0)
        waited();
    else if (strcmp(s, "statedump") == 0)
        statedump();
    else if (strcmp(s, "threads") == 0)
        threads();
    else if (strcmp(s, "fork") == 0)
        forked();
    else if (strcmp(s, "heap") == 0)
        heap();
    else if (strcmp(s, "win32") == 0)
        win32();
    else if (strcmp(s, "books") == 0)
        books();
    else {
        fprintf(stderr, "usage: %s basic|limits|halves|wait|statedump|threads|fork|heap|win32|books\n", argv[0]);
        return 2;
    }
    return 0;
}
