/*
 * stress: hostmem under concurrency, as a plain program (Criterion cannot run
 * under TSan).  Eight threads for HOSTMEM_STRESS_SECONDS (default 3):
 *
 *   4 owners   reserve, commit, write patterns, verify, protect, decommit,
 *              query and release regions of their own, against a page model;
 *   2 sharers  commit / decommit / protect / query disjoint slices of the same
 *              shared regions (one region lock, one run array, many writers);
 *   1 churner  reserves, commits and releases small regions as fast as it can,
 *              publishing each base so that the querier races the release;
 *   1 querier  queries random addresses of every published region.
 *
 * At the end every live region is walked with query and compared with the
 * model, and the statistics are checked to the byte.  A second phase queries
 * from a signal handler (SIGUSR1 sent with pthread_kill) that interrupts a
 * thread committing and decommitting in a tight loop: it must never deadlock.
 * Exit status 0 when everything held.
 */
#define _GNU_SOURCE 1
#include <hostmem/hostmem.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define OWNERS 4
#define SHARERS 2
#define SHARED_REGIONS 4
#define SHARED_PAGES 256
#define SLICE 8 /* sharer t owns pages whose (page / SLICE) % SHARERS == t */
#define MAX_LIVE 4
#define MAX_PAGES 512
#define PUBLISHED 64

static hostmem_manager *m;
static size_t P;
static atomic_int stop;
static atomic_int failures;
static double seconds = 3.0;

#define CHECK(cond, ...)                                                                       \
    do {                                                                                       \
        if (!(cond)) {                                                                         \
            if (atomic_fetch_add(&failures, 1) < 20) {                                         \
                fprintf(stderr, "%s:%d: ", __FILE__, __LINE__);                                \
                fprintf(stderr, __VA_ARGS__);                                                  \
                fputc('\n', stderr);                                                           \
            }                                                                                  \
        }                                                                                      \
    } while (0)

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t rnd(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

/* Addresses the querier looks at: bases of live (or just released) regions. */
static _Atomic uintptr_t published[PUBLISHED];

/* ---- the page model ---------------------------------------------------------------- */
typedef struct model {
    char *base;
    size_t npages;
    DWORD alloc_protect;
    DWORD *prot;      /* 0: reserved, else the PAGE_* of a committed page */
    uint32_t *pattern; /* what the first word of a committed page holds */
} model;

static const DWORD protections[] = {PAGE_READWRITE, PAGE_READWRITE, PAGE_READONLY, PAGE_NOACCESS,
                                    PAGE_EXECUTE_READ, PAGE_READWRITE | PAGE_GUARD,
                                    PAGE_READWRITE | PAGE_NOCACHE};

/* S11: a cache modifier changes no access right. */
#define CACHE_MODS ((DWORD)(PAGE_NOCACHE | PAGE_WRITECOMBINE))

static int readable(DWORD p)
{
    p &= ~CACHE_MODS;
    return p == PAGE_READWRITE || p == PAGE_READONLY || p == PAGE_EXECUTE_READ;
}

static int writable(DWORD p)
{
    p &= ~CACHE_MODS;
    return p == PAGE_READWRITE;
}

/* Walk pages [first, first + count) with query and compare with the model. */
static void model_check(const model *md, size_t first, size_t count, const char *who)
{
    size_t pgi = first;
    while (pgi < first + count) {
        MEMORY_BASIC_INFORMATION mbi;
        SIZE_T w = 0;
        HRESULT hr = hostmem_virtual_query(m, md->base + pgi * P, &mbi, sizeof mbi, &w);
        CHECK(hr == S_OK, "%s: query %p: %s", who, (void *)(md->base + pgi * P), hostmem_hresult_name(hr));
        if (hr != S_OK)
            return;
        DWORD want = md->prot[pgi];
        size_t run = 1;
        while (pgi + run < first + count && md->prot[pgi + run] == want)
            run++;
        /* A run that reaches the end of the checked pages may go on into pages
         * another thread is changing right now: only its lower bound is known. */
        int open_end = pgi + run == first + count && first + count < md->npages;
        CHECK(mbi.BaseAddress == md->base + pgi * P && mbi.AllocationBase == md->base &&
                  mbi.AllocationProtect == md->alloc_protect && mbi.Type == MEM_PRIVATE &&
                  mbi.State == (want ? MEM_COMMIT : MEM_RESERVE) && mbi.Protect == want &&
                  (open_end ? mbi.RegionSize >= run * P : mbi.RegionSize == run * P),
              "%s: page %zu of %p: got base %p state 0x%x prot 0x%x size %zu pages, want state 0x%x prot 0x%x "
              "size %zu",
              who, pgi, (void *)md->base, mbi.BaseAddress, (unsigned)mbi.State, (unsigned)mbi.Protect,
              (size_t)mbi.RegionSize / P, want ? MEM_COMMIT : MEM_RESERVE, (unsigned)want, run);
        pgi += run;
    }
}

static void model_verify_data(const model *md, size_t first, size_t count, const char *who)
{
    for (size_t i = first; i < first + count; i++)
        if (md->prot[i] && readable(md->prot[i])) {
            uint32_t v = *(volatile uint32_t *)(md->base + i * P);
            CHECK(v == md->pattern[i], "%s: page %zu of %p holds 0x%x, want 0x%x", who, i, (void *)md->base, v,
                  md->pattern[i]);
        }
}

/* One random operation on pages [lo, hi) of md (pages of other threads are left alone
 * because lo/hi stay inside this thread's slice). */
static void model_step(model *md, size_t lo, size_t hi, uint64_t *seed, uint32_t tag, const char *who)
{
    size_t first = lo + rnd(seed) % (hi - lo);
    size_t count = 1 + rnd(seed) % (hi - first);
    char *addr = md->base + first * P;
    HRESULT hr;
    switch (rnd(seed) % 5) {
    case 0:
    case 1: { /* commit, then write where writable */
        DWORD prot = protections[rnd(seed) % (sizeof protections / sizeof protections[0])];
        void *out = NULL;
        hr = hostmem_virtual_alloc(m, addr, count * P, MEM_COMMIT, prot, eTaskCritical, &out);
        CHECK(hr == S_OK && out == addr, "%s: commit %p+%zu: %s", who, (void *)addr, count, hostmem_hresult_name(hr));
        if (hr != S_OK)
            return;
        for (size_t i = first; i < first + count; i++) {
            if (!md->prot[i])
                md->pattern[i] = 0;
            md->prot[i] = prot;
            if (writable(prot)) {
                md->pattern[i] = tag ^ (uint32_t)i;
                *(volatile uint32_t *)(md->base + i * P) = md->pattern[i];
            }
        }
        break;
    }
    case 2: /* decommit */
        hr = hostmem_virtual_free(m, addr, count * P, MEM_DECOMMIT);
        CHECK(hr == S_OK, "%s: decommit %p+%zu: %s", who, (void *)addr, count, hostmem_hresult_name(hr));
        for (size_t i = first; i < first + count; i++)
            md->prot[i] = 0, md->pattern[i] = 0;
        break;
    case 3: { /* protect: all committed, or the call must change nothing */
        DWORD prot = protections[rnd(seed) % (sizeof protections / sizeof protections[0])];
        int all = 1;
        for (size_t i = first; i < first + count; i++)
            all &= md->prot[i] != 0;
        DWORD old = 0;
        hr = hostmem_virtual_protect(m, addr, count * P, prot, &old);
        if (all) {
            CHECK(hr == S_OK && old == md->prot[first], "%s: protect %p+%zu: %s old 0x%x want 0x%x", who,
                  (void *)addr, count, hostmem_hresult_name(hr), (unsigned)old, (unsigned)md->prot[first]);
            for (size_t i = first; i < first + count; i++) /* S11: the modifier stays */
                md->prot[i] = (prot & ~CACHE_MODS) | (md->prot[i] & CACHE_MODS);
        } else {
            CHECK(hr == HOSTMEM_E_INVALID_ADDRESS, "%s: protect over reserved pages: %s", who,
                  hostmem_hresult_name(hr));
        }
        break;
    }
    default:
        model_check(md, lo, hi - lo, who);
        model_verify_data(md, lo, hi - lo, who);
        break;
    }
}

static int model_new(model *md, size_t npages, DWORD alloc_protect, int commit_now)
{
    void *out = NULL;
    DWORD type = commit_now ? MEM_RESERVE | MEM_COMMIT : MEM_RESERVE;
    HRESULT hr = hostmem_virtual_alloc(m, NULL, npages * P, type, commit_now ? PAGE_READWRITE : alloc_protect,
                                       eTaskCritical, &out);
    CHECK(hr == S_OK, "reserve %zu pages: %s", npages, hostmem_hresult_name(hr));
    if (hr != S_OK)
        return 0;
    md->base = out;
    md->npages = npages;
    md->alloc_protect = commit_now ? PAGE_READWRITE : alloc_protect;
    md->prot = calloc(npages, sizeof *md->prot);
    md->pattern = calloc(npages, sizeof *md->pattern);
    if (commit_now)
        for (size_t i = 0; i < npages; i++)
            md->prot[i] = PAGE_READWRITE;
    return 1;
}

static void model_free(model *md)
{
    free(md->prot);
    free(md->pattern);
    memset(md, 0, sizeof *md);
}

static void publish(uint64_t *seed, char *base)
{
    atomic_store(&published[rnd(seed) % PUBLISHED], (uintptr_t)base);
}

/* ---- owners ------------------------------------------------------------------------ */
typedef struct owner {
    int id;
    model live[MAX_LIVE];
    int nlive;
    unsigned long ops;
} owner;

static owner owners[OWNERS];

static void *owner_main(void *arg)
{
    owner *o = arg;
    uint64_t seed = 0x9e3779b97f4a7c15ull * (uint64_t)(o->id + 1);
    char who[32];
    snprintf(who, sizeof who, "owner %d", o->id);
    while (!atomic_load(&stop)) {
        uint64_t r = rnd(&seed) % 16;
        if (o->nlive < MAX_LIVE && (o->nlive == 0 || r == 0)) {
            size_t npages = 1 + rnd(&seed) % MAX_PAGES;
            DWORD ap = protections[rnd(&seed) % (sizeof protections / sizeof protections[0])];
            if (ap == PAGE_NOACCESS)
                ap = PAGE_READWRITE;
            model *md = &o->live[o->nlive];
            if (model_new(md, npages, ap, rnd(&seed) % 4 == 0)) {
                o->nlive++;
                publish(&seed, md->base);
            }
        } else if (r == 1 && o->nlive) {
            int k = (int)(rnd(&seed) % (uint64_t)o->nlive);
            model *md = &o->live[k];
            model_check(md, 0, md->npages, who);
            model_verify_data(md, 0, md->npages, who);
            HRESULT hr = hostmem_virtual_free(m, md->base, 0, MEM_RELEASE);
            CHECK(hr == S_OK, "%s: release %p: %s", who, (void *)md->base, hostmem_hresult_name(hr));
            model_free(md);
            o->live[k] = o->live[--o->nlive];
        } else if (o->nlive) {
            model *md = &o->live[rnd(&seed) % (uint64_t)o->nlive];
            model_step(md, 0, md->npages, &seed, (uint32_t)(o->id << 24) ^ (uint32_t)o->ops, who);
        }
        o->ops++;
    }
    return NULL;
}

/* ---- sharers ------------------------------------------------------------------------- */
static model shared[SHARED_REGIONS];
static unsigned long sharer_ops[SHARERS];

static void *sharer_main(void *arg)
{
    int t = (int)(intptr_t)arg;
    uint64_t seed = 0xdeadbeefcafef00dull + (uint64_t)t * 7919;
    char who[32];
    snprintf(who, sizeof who, "sharer %d", t);
    while (!atomic_load(&stop)) {
        model *md = &shared[rnd(&seed) % SHARED_REGIONS];
        size_t slices = SHARED_PAGES / SLICE / SHARERS;
        size_t slice = (rnd(&seed) % slices) * SHARERS + (size_t)t;
        size_t lo = slice * SLICE;
        model_step(md, lo, lo + SLICE, &seed, 0x50000000u ^ (uint32_t)(t << 20) ^ (uint32_t)sharer_ops[t], who);
        sharer_ops[t]++;
    }
    return NULL;
}

/* ---- churner and querier --------------------------------------------------------------- */
static unsigned long churn_ops, query_ops;

static void *churner_main(void *arg)
{
    (void)arg;
    uint64_t seed = 12345;
    while (!atomic_load(&stop)) {
        size_t size = (1 + rnd(&seed) % 64) * P;
        if (rnd(&seed) % 8 == 0)
            size += 2 * 1024 * 1024; /* own mappings too, not only arena carving */
        void *out = NULL;
        HRESULT hr = hostmem_virtual_alloc(m, NULL, size, MEM_COMMIT, PAGE_READWRITE, eTaskCritical, &out);
        CHECK(hr == S_OK, "churn commit %zu: %s", size, hostmem_hresult_name(hr));
        if (hr != S_OK)
            continue;
        publish(&seed, out);
        ((volatile char *)out)[size - 1] = 1;
        hr = hostmem_virtual_free(m, out, 0, MEM_RELEASE);
        CHECK(hr == S_OK, "churn release: %s", hostmem_hresult_name(hr));
        churn_ops++;
    }
    return NULL;
}

static void *querier_main(void *arg)
{
    (void)arg;
    uint64_t seed = 777;
    while (!atomic_load(&stop)) {
        uintptr_t base = atomic_load(&published[rnd(&seed) % PUBLISHED]);
        if (!base)
            continue;
        uintptr_t a = base + (rnd(&seed) % (4 * 1024 * 1024));
        MEMORY_BASIC_INFORMATION mbi;
        SIZE_T w = 0;
        HRESULT hr = hostmem_virtual_query(m, (void *)a, &mbi, sizeof mbi, &w);
        CHECK(hr == S_OK && w == sizeof mbi, "query %p: %s", (void *)a, hostmem_hresult_name(hr));
        if (hr != S_OK)
            continue;
        uintptr_t b = (uintptr_t)mbi.BaseAddress;
        CHECK(b % P == 0 && b <= a && a < b + mbi.RegionSize && mbi.RegionSize % P == 0,
              "query %p: base %p size 0x%zx state 0x%x type 0x%x allocation base %p", (void *)a, mbi.BaseAddress,
              (size_t)mbi.RegionSize, (unsigned)mbi.State, (unsigned)mbi.Type, mbi.AllocationBase);
        CHECK(mbi.State == MEM_COMMIT || mbi.State == MEM_RESERVE || mbi.State == MEM_FREE, "query %p: state 0x%x",
              (void *)a, (unsigned)mbi.State);
        if (mbi.State == MEM_RESERVE)
            CHECK(mbi.Protect == 0 && mbi.Type == MEM_PRIVATE && mbi.AllocationBase &&
                      (uintptr_t)mbi.AllocationBase <= b,
                  "query %p: reserved page with prot 0x%x type 0x%x", (void *)a, (unsigned)mbi.Protect,
                  (unsigned)mbi.Type);
        if (mbi.State == MEM_FREE)
            CHECK(mbi.AllocationBase == NULL && mbi.Type == 0, "query %p: free page with allocation base %p",
                  (void *)a, mbi.AllocationBase);
        query_ops++;
    }
    return NULL;
}

static atomic_int notifications;

static void on_note(void *ctx, EMemoryAvailable s)
{
    (void)ctx;
    CHECK(s >= eMemoryAvailableLow && s <= eMemoryAvailableHigh, "notification %d", (int)s);
    atomic_fetch_add(&notifications, 1);
}

/* ---- phase 1 ------------------------------------------------------------------------------ */
static void phase_concurrency(void)
{
    for (int i = 0; i < SHARED_REGIONS; i++) {
        if (!model_new(&shared[i], SHARED_PAGES, PAGE_READWRITE, 0))
            exit(1);
        atomic_store(&published[i], (uintptr_t)shared[i].base);
    }
    pthread_t th[OWNERS + SHARERS + 2];
    int n = 0;
    for (int i = 0; i < OWNERS; i++) {
        owners[i].id = i;
        pthread_create(&th[n++], NULL, owner_main, &owners[i]);
    }
    for (int i = 0; i < SHARERS; i++)
        pthread_create(&th[n++], NULL, sharer_main, (void *)(intptr_t)i);
    pthread_create(&th[n++], NULL, churner_main, NULL);
    pthread_create(&th[n++], NULL, querier_main, NULL);
    uint64_t end = now_ns() + (uint64_t)(seconds * 1e9);
    while (now_ns() < end && atomic_load(&failures) == 0)
        usleep(10000);
    atomic_store(&stop, 1);
    for (int i = 0; i < n; i++)
        pthread_join(th[i], NULL);

    /* Every live region against the model; the statistics to the byte. */
    size_t regions = 0, reserved = 0, committed = 0;
    for (int i = 0; i < SHARED_REGIONS; i++) {
        model_check(&shared[i], 0, SHARED_PAGES, "final shared");
        model_verify_data(&shared[i], 0, SHARED_PAGES, "final shared");
    }
    for (int i = 0; i < OWNERS; i++)
        for (int k = 0; k < owners[i].nlive; k++) {
            model_check(&owners[i].live[k], 0, owners[i].live[k].npages, "final owner");
            model_verify_data(&owners[i].live[k], 0, owners[i].live[k].npages, "final owner");
        }
    model *all[SHARED_REGIONS + OWNERS * MAX_LIVE];
    int na = 0;
    for (int i = 0; i < SHARED_REGIONS; i++)
        all[na++] = &shared[i];
    for (int i = 0; i < OWNERS; i++)
        for (int k = 0; k < owners[i].nlive; k++)
            all[na++] = &owners[i].live[k];
    for (int i = 0; i < na; i++) {
        regions++;
        reserved += all[i]->npages * P;
        for (size_t p = 0; p < all[i]->npages; p++)
            committed += all[i]->prot[p] ? P : 0;
    }
    hostmem_stats s;
    HRESULT hr = hostmem_get_stats(m, &s);
    CHECK(hr == S_OK, "stats: %s", hostmem_hresult_name(hr));
    CHECK(s.region_count == regions && s.reserved_bytes == reserved && s.committed_bytes == committed,
          "stats: %zu regions %zu reserved %zu committed, model %zu %zu %zu", (size_t)s.region_count,
          (size_t)s.reserved_bytes, (size_t)s.committed_bytes, regions, reserved, committed);
    CHECK(s.peak_committed_bytes >= s.committed_bytes && s.peak_reserved_bytes >= s.reserved_bytes,
          "peaks below the current values");
    unsigned long owner_ops = 0;
    for (int i = 0; i < OWNERS; i++)
        owner_ops += owners[i].ops;
    printf("phase 1: %.1f s, owner ops %lu, sharer ops %lu, churn %lu, queries %lu, notifications %d, "
           "live regions %zu\n",
           seconds, owner_ops, sharer_ops[0] + sharer_ops[1], churn_ops, query_ops, atomic_load(&notifications),
           regions);
    for (int i = 0; i < na; i++) {
        hr = hostmem_virtual_free(m, all[i]->base, 0, MEM_RELEASE);
        CHECK(hr == S_OK, "final release: %s", hostmem_hresult_name(hr));
    }
    for (int i = 0; i < SHARED_REGIONS; i++)
        model_free(&shared[i]);
    for (int i = 0; i < OWNERS; i++)
        for (int k = 0; k < owners[i].nlive; k++)
            model_free(&owners[i].live[k]);
}

/* ---- phase 2: query from a signal handler ----------------------------------------------------- */
static char *sig_region;
static atomic_ulong handled;
static atomic_int sig_bad;
static atomic_int looping_stop;

static void on_usr1(int sig)
{
    (void)sig;
    int saved = errno;
    for (int i = 0; i < 4; i++) {
        MEMORY_BASIC_INFORMATION mbi;
        SIZE_T w;
        HRESULT hr = hostmem_virtual_query(m, sig_region + (size_t)i * P, &mbi, sizeof mbi, &w);
        if (hr != S_OK || mbi.AllocationBase != sig_region ||
            (mbi.State != MEM_COMMIT && mbi.State != MEM_RESERVE))
            atomic_fetch_add(&sig_bad, 1);
    }
    atomic_fetch_add(&handled, 1);
    errno = saved;
}

static void *looper_main(void *arg)
{
    (void)arg;
    while (!atomic_load(&looping_stop)) {
        void *out;
        for (int i = 0; i < 4; i++) {
            HRESULT hr = hostmem_virtual_alloc(m, sig_region + (size_t)i * P, P, MEM_COMMIT, PAGE_READWRITE,
                                               eTaskCritical, &out);
            CHECK(hr == S_OK, "looper commit: %s", hostmem_hresult_name(hr));
        }
        HRESULT hr = hostmem_virtual_free(m, sig_region, 4 * P, MEM_DECOMMIT);
        CHECK(hr == S_OK, "looper decommit: %s", hostmem_hresult_name(hr));
        DWORD old;
        hostmem_virtual_alloc(m, sig_region, P, MEM_COMMIT, PAGE_READONLY, eTaskCritical, &out);
        hostmem_virtual_protect(m, sig_region, P, PAGE_READWRITE, &old);
    }
    return NULL;
}

static void phase_signals(void)
{
    void *out = NULL;
    HRESULT hr = hostmem_virtual_alloc(m, NULL, 16 * P, MEM_RESERVE, PAGE_READWRITE, eTaskCritical, &out);
    CHECK(hr == S_OK, "signal region: %s", hostmem_hresult_name(hr));
    if (hr != S_OK)
        return;
    sig_region = out;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGUSR1, &sa, NULL);
    pthread_t t;
    pthread_create(&t, NULL, looper_main, NULL);
    uint64_t end = now_ns() + (uint64_t)(seconds * 1e9 / 3);
    unsigned long sent = 0;
    int deadlock = 0;
    while (now_ns() < end) {
        unsigned long before = atomic_load(&handled);
        pthread_kill(t, SIGUSR1);
        sent++;
        /* The handler must finish: 10 s without progress is a deadlock. */
        uint64_t deadline = now_ns() + 10ull * 1000000000u;
        while (atomic_load(&handled) == before) {
            if (now_ns() > deadline) {
                deadlock = 1;
                break;
            }
            sched_yield();
        }
        if (deadlock)
            break;
    }
    if (deadlock) {
        fprintf(stderr, "phase 2: a query in a signal handler did not return within 10 s (deadlock)\n");
        _exit(2);
    }
    atomic_store(&looping_stop, 1);
    pthread_join(t, NULL);
    CHECK(atomic_load(&sig_bad) == 0, "phase 2: %d bad answers from queries in the signal handler",
          atomic_load(&sig_bad));
    printf("phase 2: %lu signals, %lu handled\n", sent, (unsigned long)atomic_load(&handled));
    hostmem_virtual_free(m, sig_region, 0, MEM_RELEASE);
}

int main(void)
{
    const char *e = getenv("HOSTMEM_STRESS_SECONDS");
    if (e && atof(e) > 0)
        seconds = atof(e);
    P = (size_t)sysconf(_SC_PAGESIZE);
    hostmem_config c;
    hostmem_config_init(&c);
    c.commit_limit = (size_t)1 << 30;
    HRESULT hr = hostmem_create(&c, &m);
    if (hr != S_OK) {
        fprintf(stderr, "create: %s\n", hostmem_hresult_name(hr));
        return 1;
    }
    hostmem_register_memory_notification_callback(m, on_note, NULL);
    phase_concurrency();
    if (atomic_load(&failures) == 0)
        phase_signals();
    hostmem_stats s;
    hostmem_get_stats(m, &s);
    CHECK(s.region_count == 0 && s.committed_bytes == 0 && s.reserved_bytes == 0, "leftovers: %zu regions",
          (size_t)s.region_count);
    hostmem_destroy(m);
    int f = atomic_load(&failures);
    if (f)
        fprintf(stderr, "stress: %d failures\n", f);
    else
        printf("stress: ok\n");
    return f ? 1 : 0;
}
