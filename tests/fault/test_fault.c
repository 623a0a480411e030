/*
 * Fault injection through the OS seam (lib/src/os.h).  For every public
 * operation: run it once counting the calls of each primitive, then fail each
 * of those calls in turn with each errno the kernel documents for it, and check
 * the HRESULT and that nothing changed (a query walk of every region, the
 * statistics and the process's own mappings).  Then fail the call and the
 * restoring call after it: E_FAIL, and HOST_E_CLRNOTAVAILABLE from then on
 * (P7).  Also: lock timeouts and shutdown while waiting for a lock,
 * and arena placement the kernel makes rare.
 */
#define _GNU_SOURCE 1
#include "../api/util.h"

#include "internal.h"

#include <fcntl.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <sys/syscall.h>

/* ---- the fault-injecting OS ------------------------------------------------------ */
enum { P_RESERVE, P_RELEASE, P_PROTECT, P_DECOMMIT, P_RESET, P_ADVISE, P_QUERY, P_COUNT };
static const char *prim_name[P_COUNT] = {"reserve", "release", "protect", "decommit", "reset", "advise_huge", "query"};

static struct {
    int count[P_COUNT];
    int fail_prim, fail_nth, fail_err; /* fail the nth call of fail_prim (fail_nth 0: never) */
    int fail_after;                    /* then fail the fail_after-th call after it with ENOMEM */
    int after_prim;                    /* the primitive of that second fault */
    int injected, calls_after;
    int align_null;                    /* place reserve(NULL) 16 MiB-aligned */
    int block_prim;                    /* -1, or block the next call of this primitive */
    sem_t entered, release;
} F;

static void fault_reset(void)
{
    memset(F.count, 0, sizeof F.count);
    F.fail_prim = -1;
    F.fail_nth = 0;
    F.fail_err = 0;
    F.fail_after = 0;
    F.after_prim = -1;
    F.injected = 0;
    F.calls_after = 0;
    F.align_null = 0;
    F.block_prim = -1;
}

static int inject(int p)
{
    F.count[p]++;
    if (F.block_prim == p) {
        F.block_prim = -1;
        sem_post(&F.entered);
        sem_wait(&F.release);
    }
    if (F.injected) {
        F.calls_after++;
        if (F.fail_after && F.calls_after == F.fail_after) {
            F.injected++;
            F.after_prim = p;
            return ENOMEM;
        }
        return 0;
    }
    if (p == F.fail_prim && F.count[p] == F.fail_nth) {
        F.injected = 1;
        return F.fail_err;
    }
    return 0;
}

static int f_reserve(void *addr, size_t size, void **out)
{
    int e = inject(P_RESERVE);
    if (e)
        return e;
    if (!addr && F.align_null) {
        size_t a = 16 * MiB;
        void *p = mmap(NULL, size + a, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (p == MAP_FAILED)
            return ENOMEM;
        munmap(p, size + a);
        addr = (void *)up((uintptr_t)p, a);
    }
    return hostmem__os_linux.reserve(addr, size, out);
}
static int f_release(void *addr, size_t size)
{
    int e = inject(P_RELEASE);
    return e ? e : hostmem__os_linux.release(addr, size);
}
static int f_protect(void *addr, size_t size, unsigned access)
{
    int e = inject(P_PROTECT);
    return e ? e : hostmem__os_linux.protect(addr, size, access);
}
static int f_decommit(void *addr, size_t size)
{
    int e = inject(P_DECOMMIT);
    return e ? e : hostmem__os_linux.decommit(addr, size);
}
static int f_reset(void *addr, size_t size)
{
    int e = inject(P_RESET);
    return e ? e : hostmem__os_linux.reset(addr, size);
}
static int f_advise(void *addr, size_t size)
{
    int e = inject(P_ADVISE);
    return e ? e : hostmem__os_linux.advise_huge(addr, size);
}
static int f_query(uintptr_t addr, hostmem__os_mapping *out)
{
    int e = inject(P_QUERY);
    return e ? e : hostmem__os_linux.query(addr, out);
}

static const hostmem__os fault_os = {
    .reserve = f_reserve, .release = f_release, .protect = f_protect, .decommit = f_decommit,
    .reset = f_reset, .advise_huge = f_advise, .query = f_query,
};

static void fault_init(void)
{
    fault_reset();
    sem_init(&F.entered, 0, 0);
    sem_init(&F.release, 0, 0);
    hostmem__os_set(&fault_os);
}

static void fault_fini(void)
{
    hostmem__os_set(NULL);
    hm_leak_check();
}

TestSuite(fault, .init = fault_init, .fini = fault_fini, .timeout = 120);
TestSuite(rollback, .init = fault_init, .fini = fault_fini, .timeout = 120);
TestSuite(locks, .init = fault_init, .fini = fault_fini, .timeout = 30);
TestSuite(placement, .init = fault_init, .fini = fault_fini, .timeout = 60);

/* ---- what "nothing changed" means --------------------------------------------------- */
/* The process's mappings, without the lines that move on their own ([heap], [stack]).
 * Read with read(2) into static storage: no allocation between two snapshots. */
#define MAPS_MAX (1 << 20)
static char maps_a[MAPS_MAX], maps_b[MAPS_MAX];

/* AddressSanitizer's allocator maps its own heap in [0x600000000000,
 * 0x640000000000) and grows it whenever it likes: not the manager's doing. */
static bool sanitizer_heap(const char *line)
{
#if defined(__SANITIZE_ADDRESS__)
    unsigned long start = strtoul(line, NULL, 16);
    return start >= 0x600000000000ul && start < 0x640000000000ul;
#else
    (void)line;
    return false;
#endif
}

static size_t maps_read(char *buf)
{
    static char raw[MAPS_MAX];
    int fd = open("/proc/self/maps", O_RDONLY);
    size_t n = 0;
    ssize_t k;
    while (fd >= 0 && n < MAPS_MAX - 1 && (k = read(fd, raw + n, MAPS_MAX - 1 - n)) > 0)
        n += (size_t)k;
    if (fd >= 0)
        close(fd);
    raw[n] = 0;
    size_t out = 0;
    for (char *line = raw; *line;) {
        char *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) + 1 : strlen(line);
        if (!memmem(line, len, "[heap]", 6) && !memmem(line, len, "[stack]", 7) && !sanitizer_heap(line)) {
            memcpy(buf + out, line, len);
            out += len;
        }
        line += len;
    }
    buf[out] = 0;
    return out;
}

/* The first line of a that b lacks, for the message. */
static const char *maps_first_diff(const char *a, const char *b, char *line, size_t cap)
{
    for (const char *l = a; *l;) {
        const char *nl = strchr(l, '\n');
        size_t len = nl ? (size_t)(nl - l) + 1 : strlen(l);
        snprintf(line, cap, "%.*s", (int)(len > 0 ? len - 1 : 0), l);
        if (!strstr(b, line))
            return line;
        l += len;
    }
    return "(none)";
}

typedef struct region_ref {
    char *base;
    size_t size;
} region_ref;

typedef struct state {
    int nregions;
    snap walk[4];
    hostmem_stats stats;
} state;

typedef struct ctx {
    hostmem_manager *m;
    region_ref r[4];
    int nr;
    char *hole;    /* free address space for reserves at an address */
    char *foreign; /* a host mapping */
    void *out;
    hostmem_manager *extra[8]; /* managers whose arenas were in the way (setup_edge) */
    int nextra;
} ctx;

static int state_take(ctx *c, state *s)
{
    memset(s, 0, sizeof *s);
    s->nregions = c->nr;
    for (int i = 0; i < c->nr; i++) {
        uintptr_t a = (uintptr_t)c->r[i].base, end = a + c->r[i].size;
        while (a < end && s->walk[i].n < SNAP_MAX) {
            MEMORY_BASIC_INFORMATION mbi;
            SIZE_T w;
            memset(&mbi, 0, sizeof mbi); /* padding compares equal */
            HRESULT hr = hostmem_virtual_query(c->m, (void *)a, &mbi, sizeof mbi, &w);
            if (FAILED(hr) || !mbi.RegionSize)
                return 0;
            s->walk[i].v[s->walk[i].n++] = mbi;
            a = (uintptr_t)mbi.BaseAddress + mbi.RegionSize;
        }
    }
    return SUCCEEDED(hostmem_get_stats(c->m, &s->stats));
}

static int mbi_same(const MEMORY_BASIC_INFORMATION *a, const MEMORY_BASIC_INFORMATION *b)
{
    return a->BaseAddress == b->BaseAddress && a->AllocationBase == b->AllocationBase &&
           a->AllocationProtect == b->AllocationProtect && a->RegionSize == b->RegionSize &&
           a->State == b->State && a->Protect == b->Protect && a->Type == b->Type;
}

static int walk_same(const snap *a, const snap *b)
{
    if (a->n != b->n)
        return 0;
    for (size_t i = 0; i < a->n; i++)
        if (!mbi_same(&a->v[i], &b->v[i]))
            return 0;
    return 1;
}

static int stats_same(const hostmem_stats *a, const hostmem_stats *b)
{
    return a->reserved_bytes == b->reserved_bytes && a->committed_bytes == b->committed_bytes &&
           a->peak_committed_bytes == b->peak_committed_bytes && a->region_count == b->region_count &&
           a->external_bytes == b->external_bytes && a->peak_reserved_bytes == b->peak_reserved_bytes;
}

/* The only change from maps_a to maps_b: the arena just above `hole` lost
 * granules at its start.  A reservation across the arena's edge that is undone
 * after the kernel granted it (its commit refused) gives the granules it took
 * back to the kernel, not to the arena (docs/reliability.md): query still
 * calls them MEM_FREE and they can still be reserved. */
static bool arena_gave_back(const char *hole)
{
    static char edited[MAPS_MAX];
    char l1[256], l2[256];
    const char *gone = maps_first_diff(maps_a, maps_b, l1, sizeof l1);
    const char *now = maps_first_diff(maps_b, maps_a, l2, sizeof l2);
    unsigned long s1, e1, s2, e2;
    if (sscanf(gone, "%lx-%lx", &s1, &e1) != 2 || sscanf(now, "%lx-%lx", &s2, &e2) != 2)
        return false;
    if (s1 != (uintptr_t)hole + GRAN || e1 != e2 || s2 <= s1 || (s2 - s1) % GRAN || s2 - s1 > 2 * GRAN)
        return false;
    const char *at = strstr(maps_a, gone);
    if (!at)
        return false;
    size_t head = (size_t)(at - maps_a);
    snprintf(edited, sizeof edited, "%.*s%s%s", (int)head, maps_a, now, at + strlen(gone));
    return strcmp(edited, maps_b) == 0;
}

/* ---- scenarios ------------------------------------------------------------------------ */
typedef struct scenario {
    const char *name;
    void (*setup)(ctx *);
    HRESULT (*op)(ctx *);
    int at_address; /* 1: EEXIST is a documented answer of its reserve; 2: a reservation
                       at NULL, which may work around a refused mapping (P7) */
} scenario;

static void add_region(ctx *c, char *base, size_t size)
{
    c->r[c->nr].base = base;
    c->r[c->nr].size = size;
    c->nr++;
}

static void setup_empty(ctx *c)
{
    memset(c, 0, sizeof *c);
    HRESULT hr = hostmem_create(NULL, &c->m);
    cr_assert_eq(hr, S_OK);
}

/* A small region (carved from an arena, page 0 committed) and a large one (own
 * mapping) whose pages are in several runs. */
static void setup_base(ctx *c)
{
    size_t P = pg();
    setup_empty(c);
    void *s = NULL, *l = NULL, *o;
    hostmem_virtual_alloc(c->m, NULL, 2 * P, MEM_RESERVE, PAGE_READWRITE, eTaskCritical, &s);
    hostmem_virtual_alloc(c->m, s, P, MEM_COMMIT, PAGE_READWRITE, eTaskCritical, &o);
    hostmem_virtual_alloc(c->m, NULL, 4 * MiB, MEM_RESERVE, PAGE_READWRITE, eTaskCritical, &l);
    cr_assert(s && l);
    char *L = l;
    hostmem_virtual_alloc(c->m, L + 16 * P, 8 * P, MEM_COMMIT, PAGE_READWRITE, eTaskCritical, &o);
    hostmem_virtual_alloc(c->m, L + 24 * P, 8 * P, MEM_COMMIT, PAGE_READONLY, eTaskCritical, &o);
    hostmem_virtual_alloc(c->m, L + 32 * P, 8 * P, MEM_COMMIT, PAGE_READWRITE | PAGE_GUARD, eTaskCritical, &o);
    hostmem_virtual_alloc(c->m, L + 40 * P, 8 * P, MEM_COMMIT, PAGE_EXECUTE_READ, eTaskCritical, &o);
    memset(L + 16 * P, 0x5a, 8 * P);
    add_region(c, s, 2 * P);
    add_region(c, L, 4 * MiB);
    cr_assert_eq(st(c->m).committed_bytes, 33 * P);
}

static void setup_hole(ctx *c)
{
    setup_base(c);
    c->hole = free_va(4 * MiB);
}

/* A fresh arena with free space below it, its first granule free again: a
 * reservation at c->hole (the granule below) of two granules crosses the
 * arena's edge (S4). */
static void setup_edge(ctx *c)
{
    hostmem_manager *extra[8];
    int nextra = 0;
    for (;;) {
        setup_empty(c);
        char *p = NULL;
        hostmem_virtual_alloc(c->m, NULL, GRAN, MEM_RESERVE, PAGE_READWRITE, eTaskCritical, (void **)&p);
        cr_assert(p);
        MEMORY_BASIC_INFORMATION mbi;
        SIZE_T w;
        cr_assert_eq(hostmem_virtual_query(c->m, p - GRAN, &mbi, sizeof mbi, &w), S_OK);
        if (mbi.State == MEM_FREE) {
            cr_assert_eq(hostmem_virtual_free(c->m, p, 0, MEM_RELEASE), S_OK);
            c->hole = p - GRAN;
            break;
        }
        cr_assert_lt(nextra, 8, "no arena with free space below it");
        extra[nextra++] = c->m; /* its arena stays in the way of the next one */
    }
    memcpy(c->extra, extra, sizeof extra);
    c->nextra = nextra;
}

static void setup_foreign(ctx *c)
{
    setup_base(c);
    c->foreign = foreign_map(2 * pg(), PROT_READ | PROT_WRITE);
}

static HRESULT alloc(ctx *c, void *addr, size_t size, DWORD type, DWORD prot)
{
    c->out = (void *)0x1;
    HRESULT hr = hostmem_virtual_alloc(c->m, addr, size, type, prot, eTaskCritical, &c->out);
    if (FAILED(hr) && c->out)
        return (HRESULT)0x7fffffff; /* *out_mem not NULL on failure (A4): never a valid answer */
    return hr;
}

static HRESULT op_reserve_small(ctx *c) { return alloc(c, NULL, 2 * pg(), MEM_RESERVE, PAGE_READWRITE); }
static HRESULT op_reserve_large(ctx *c) { return alloc(c, NULL, 4 * MiB + pg(), MEM_RESERVE, PAGE_READWRITE); }
static HRESULT op_reserve_at(ctx *c) { return alloc(c, c->hole + 0x123, 2 * MiB, MEM_RESERVE, PAGE_READWRITE); }
static HRESULT op_reserve_small_at(ctx *c) { return alloc(c, c->hole, pg(), MEM_RESERVE, PAGE_READWRITE); }
static HRESULT op_reserve_across_edge(ctx *c)
{
    return alloc(c, c->hole, 2 * GRAN + 3 * pg(), MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE);
}
static HRESULT op_commit(ctx *c)
{
    return alloc(c, c->r[1].base + 8 * pg(), 48 * pg(), MEM_COMMIT, PAGE_READWRITE);
}
static HRESULT op_commit_small(ctx *c) { return alloc(c, c->r[0].base, 2 * pg(), MEM_COMMIT, PAGE_READONLY); }
static HRESULT op_reserve_commit_small(ctx *c) { return alloc(c, NULL, 3 * pg(), MEM_COMMIT, PAGE_READWRITE); }
static HRESULT op_reserve_commit_large(ctx *c)
{
    return alloc(c, NULL, 2 * MiB + pg(), MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE);
}
static HRESULT op_reserve_commit_at(ctx *c)
{
    return alloc(c, c->hole, MiB + pg(), MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE);
}
static HRESULT op_large_pages(ctx *c)
{
    return alloc(c, NULL, 2 * MiB, MEM_RESERVE | MEM_COMMIT | MEM_LARGE_PAGES, PAGE_READWRITE);
}
static HRESULT op_protect(ctx *c)
{
    DWORD old;
    return hostmem_virtual_protect(c->m, c->r[1].base + 16 * pg(), 32 * pg(), PAGE_READONLY, &old);
}
static HRESULT op_decommit(ctx *c) { return hostmem_virtual_free(c->m, c->r[1].base + 8 * pg(), 48 * pg(), MEM_DECOMMIT); }
static HRESULT op_decommit_small(ctx *c) { return hostmem_virtual_free(c->m, c->r[0].base, 0, MEM_DECOMMIT); }
static HRESULT op_release_large(ctx *c) { return hostmem_virtual_free(c->m, c->r[1].base, 0, MEM_RELEASE); }
static HRESULT op_release_small(ctx *c) { return hostmem_virtual_free(c->m, c->r[0].base, 0, MEM_RELEASE); }
static HRESULT op_reset(ctx *c) { return alloc(c, c->r[1].base + 8 * pg(), 40 * pg(), MEM_RESET, PAGE_READWRITE); }
static HRESULT op_query_outside(ctx *c)
{
    MEMORY_BASIC_INFORMATION mbi;
    SIZE_T w;
    return hostmem_virtual_query(c->m, c->foreign, &mbi, sizeof mbi, &w);
}

/* The errnos the kernel documents for the system call behind each primitive. */
static int errnos_of(int prim, int at_address, int *out)
{
    int n = 0;
    switch (prim) {
    case P_RESERVE: /* mmap(2) */
        out[n++] = ENOMEM, out[n++] = EAGAIN, out[n++] = EPERM, out[n++] = EINVAL;
        if (at_address)
            out[n++] = EEXIST;
        break;
    case P_RELEASE: /* munmap(2) */
        out[n++] = ENOMEM, out[n++] = EINVAL;
        break;
    case P_PROTECT: /* mprotect(2) */
        out[n++] = ENOMEM, out[n++] = EACCES, out[n++] = EINVAL;
        break;
    case P_DECOMMIT: /* mmap(2) MAP_FIXED over our own range */
        out[n++] = ENOMEM, out[n++] = EAGAIN, out[n++] = EPERM, out[n++] = EINVAL;
        break;
    case P_RESET: /* madvise(2) */
        out[n++] = ENOMEM, out[n++] = EAGAIN, out[n++] = EPERM, out[n++] = EINVAL;
        break;
    case P_ADVISE: /* madvise(2) */
        out[n++] = ENOMEM, out[n++] = EINVAL;
        break;
    case P_QUERY: /* ioctl(2) PROCMAP_QUERY / open(2) + read(2) of /proc/self/maps */
        out[n++] = ENOMEM, out[n++] = EACCES, out[n++] = EPERM, out[n++] = EINVAL;
        break;
    }
    return n;
}

/* The documented HRESULT for a primitive failing with err (hostmem.h error table). */
static HRESULT expected_hr(int prim, int err, int at_address)
{
    if (prim == P_ADVISE)
        return S_OK; /* a hint: its failure is not an error */
    switch (err) {
    case ENOMEM:
    case EAGAIN:
        return E_OUTOFMEMORY; /* "the OS refused memory or address space" */
    case EEXIST:
        return HOSTMEM_E_INVALID_ADDRESS; /* "overlaps an existing mapping (reserve)" */
    case EACCES:
    case EPERM:
        return E_ACCESSDENIED;
    default:
        return E_INVALIDARG;
    }
}

static const char *errno_name(int e)
{
    switch (e) {
    case ENOMEM: return "ENOMEM";
    case EAGAIN: return "EAGAIN";
    case EEXIST: return "EEXIST";
    case EACCES: return "EACCES";
    case EPERM: return "EPERM";
    case EINVAL: return "EINVAL";
    default: return "?";
    }
}

static void teardown(ctx *c)
{
    hostmem__os_set(NULL);
    hostmem_destroy(c->m);
    for (int i = 0; i < c->nextra; i++)
        hostmem_destroy(c->extra[i]);
    if (c->foreign)
        munmap(c->foreign, 2 * pg());
    fault_reset();
    hostmem__os_set(&fault_os);
}

static int problems, skipped;
static void check_recovered(ctx *c, const state *before, const char *what);
#define PROBLEM(...)                                                                             \
    do {                                                                                         \
        problems++;                                                                              \
        cr_log_error(__VA_ARGS__);                                                               \
    } while (0)

/* One run: set up, snapshot, fail (prim, nth) with err (and, with fail_after, the
 * fail_after-th call after it), check. */
static void run_one(const scenario *sc, int prim, int nth, int err, int fail_after, int *out_calls_after)
{
    ctx c;
    state before, after;
    sc->setup(&c);
    if (!state_take(&c, &before))
        cr_assert_fail("%s: query walk failed before the call", sc->name);
    maps_read(maps_a);
    fault_reset();
    F.fail_prim = prim;
    F.fail_nth = nth;
    F.fail_err = err;
    F.fail_after = fail_after;
    HRESULT hr = sc->op(&c);
    int calls_after = F.calls_after, injected = F.injected;
    F.fail_prim = -1;
    maps_read(maps_b);
    if (out_calls_after)
        *out_calls_after = calls_after;
    char what[160];
    snprintf(what, sizeof what, "%s: %s call %d fails with %s%s", sc->name, prim_name[prim], nth, errno_name(err),
             fail_after ? ", and the restoring call after it" : "");

    /* The number of calls can depend on where the kernel puts a mapping (an
     * over-reservation needs no trimming when it happens to be aligned): a run
     * that never reached the chosen call, or its restoring call, tests nothing. */
    if (!injected || (fail_after && injected < 2)) {
        skipped++;
        teardown(&c);
        return;
    }
    /* P7: a reservation at NULL works around a mapping the kernel refused (a
     * region of its own when the arena cannot be had, a mapping of its exact
     * size when the slack of an over-reservation cannot): then it succeeds and
     * leaves nothing of the refused attempt behind. */
    bool recoverable = sc->at_address == 2 && (prim == P_RESERVE || prim == P_RELEASE);
    if (recoverable && hr == S_OK) {
        check_recovered(&c, &before, what);
        teardown(&c);
        return;
    }
    /* Pages that go back to reserved are restored by a new mapping (S6),
     * and by mprotect when that is refused: with a fallback left, the call
     * fails as with the first fault alone and must leave everything as it
     * was. */
    bool restored = fail_after && F.after_prim == P_DECOMMIT && hr != E_FAIL;
    if (fail_after && !restored && !(recoverable && hr != E_FAIL)) {
        /* P7: E_FAIL, then HOST_E_CLRNOTAVAILABLE for every call. */
        if (hr != E_FAIL) {
            PROBLEM("%s (restoring call %d): %s, want E_FAIL", what, fail_after, hostmem_hresult_name(hr));
        } else {
            MEMORY_BASIC_INFORMATION mbi;
            SIZE_T w;
            hostmem_stats s;
            void *o = (void *)1;
            HRESULT q1 = hostmem_virtual_query(c.m, c.r[0].base, &mbi, sizeof mbi, &w);
            HRESULT q2 = hostmem_get_stats(c.m, &s);
            HRESULT q3 = hostmem_virtual_alloc(c.m, NULL, pg(), MEM_RESERVE, PAGE_READWRITE, eTaskCritical, &o);
            HRESULT q4 = hostmem_virtual_free(c.m, c.r[0].base, 0, MEM_RELEASE);
            if (q1 != HOST_E_CLRNOTAVAILABLE || q2 != HOST_E_CLRNOTAVAILABLE || q3 != HOST_E_CLRNOTAVAILABLE ||
                q4 != HOST_E_CLRNOTAVAILABLE || o != NULL)
                PROBLEM("%s: after E_FAIL: query %s, stats %s, reserve %s, release %s (want HOST_E_CLRNOTAVAILABLE)",
                        what, hostmem_hresult_name(q1), hostmem_hresult_name(q2), hostmem_hresult_name(q3),
                        hostmem_hresult_name(q4));
        }
        teardown(&c);
        return;
    }

    HRESULT want = expected_hr(prim, err, sc->at_address);
    if (fail_after && !restored && hr == E_OUTOFMEMORY)
        want = hr; /* the work-around was refused too (the second fault is ENOMEM) */
    if (hr != want)
        PROBLEM("%s: %s (0x%08x), want %s", what, hostmem_hresult_name(hr), (unsigned)hr, hostmem_hresult_name(want));
    if (want == S_OK) {
        teardown(&c);
        return;
    }
    if (!state_take(&c, &after)) {
        PROBLEM("%s: the manager no longer answers queries", what);
        teardown(&c);
        return;
    }
    for (int i = 0; i < c.nr; i++) {
        if (!walk_same(&before.walk[i], &after.walk[i]))
            PROBLEM("%s: region %d (%p) changed: %zu runs before, %zu after; first run %p+0x%zx state 0x%x "
                    "prot 0x%x -> %p+0x%zx state 0x%x prot 0x%x",
                    what, i, (void *)c.r[i].base, before.walk[i].n, after.walk[i].n, before.walk[i].v[0].BaseAddress,
                    (size_t)before.walk[i].v[0].RegionSize, (unsigned)before.walk[i].v[0].State,
                    (unsigned)before.walk[i].v[0].Protect, after.walk[i].v[0].BaseAddress,
                    (size_t)after.walk[i].v[0].RegionSize, (unsigned)after.walk[i].v[0].State,
                    (unsigned)after.walk[i].v[0].Protect);
    }
    if (!stats_same(&before.stats, &after.stats))
        PROBLEM("%s: stats changed: reserved %zu->%zu committed %zu->%zu peak %zu->%zu regions %zu->%zu "
                "peak_reserved %zu->%zu",
                what, (size_t)before.stats.reserved_bytes, (size_t)after.stats.reserved_bytes,
                (size_t)before.stats.committed_bytes, (size_t)after.stats.committed_bytes,
                (size_t)before.stats.peak_committed_bytes, (size_t)after.stats.peak_committed_bytes,
                (size_t)before.stats.region_count, (size_t)after.stats.region_count,
                (size_t)before.stats.peak_reserved_bytes, (size_t)after.stats.peak_reserved_bytes);
    if (strcmp(maps_a, maps_b) != 0 && !(sc->setup == setup_edge && arena_gave_back(c.hole))) {
        char l1[256], l2[256];
        PROBLEM("%s: the process's mappings changed: gone '%s', new '%s'", what,
                maps_first_diff(maps_a, maps_b, l1, sizeof l1), maps_first_diff(maps_b, maps_a, l2, sizeof l2));
    }
    /* Still usable: the same call without a fault succeeds. */
    HRESULT again = sc->op(&c);
    if (again != S_OK)
        PROBLEM("%s: the same call afterwards: %s", what, hostmem_hresult_name(again));
    teardown(&c);
}

/* A call that succeeded despite the fault: its region is whole, and once it is
 * released again the manager and the process are as before. */
static void check_recovered(ctx *c, const state *before, const char *what)
{
    MEMORY_BASIC_INFORMATION mbi;
    SIZE_T w;
    state after;
    if (!c->out || FAILED(hostmem_virtual_query(c->m, c->out, &mbi, sizeof mbi, &w)) ||
        mbi.AllocationBase != c->out || (mbi.State != MEM_RESERVE && mbi.State != MEM_COMMIT) ||
        ((uintptr_t)c->out & (GRAN - 1))) {
        PROBLEM("%s: worked around, but the region at %p is not whole", what, c->out);
        return;
    }
    HRESULT hr = hostmem_virtual_free(c->m, c->out, 0, MEM_RELEASE);
    if (hr != S_OK) {
        PROBLEM("%s: worked around, and its region cannot be released: %s", what, hostmem_hresult_name(hr));
        return;
    }
    maps_read(maps_b);
    if (!state_take(c, &after)) {
        PROBLEM("%s: the manager no longer answers queries", what);
        return;
    }
    for (int i = 0; i < c->nr; i++)
        if (!walk_same(&before->walk[i], &after.walk[i]))
            PROBLEM("%s: worked around, and region %d changed", what, i);
    if (after.stats.reserved_bytes != before->stats.reserved_bytes ||
        after.stats.committed_bytes != before->stats.committed_bytes ||
        after.stats.region_count != before->stats.region_count)
        PROBLEM("%s: worked around, then released: reserved %zu->%zu committed %zu->%zu regions %zu->%zu", what,
                (size_t)before->stats.reserved_bytes, (size_t)after.stats.reserved_bytes,
                (size_t)before->stats.committed_bytes, (size_t)after.stats.committed_bytes,
                (size_t)before->stats.region_count, (size_t)after.stats.region_count);
    /* The first small region of a manager leaves an arena behind when the
     * work-around was the arena's own exact-size mapping; any other mapping
     * left over is a leak of the refused attempt. */
    if (strcmp(maps_a, maps_b) != 0) {
        char l1[256], l2[256];
        const char *gone = maps_first_diff(maps_a, maps_b, l1, sizeof l1);
        const char *extra = maps_first_diff(maps_b, maps_a, l2, sizeof l2);
        unsigned long lo = 0, hi = 0;
        if (strcmp(gone, "(none)") != 0 || sscanf(extra, "%lx-%lx", &lo, &hi) != 2 || hi - lo != 32 * MiB)
            PROBLEM("%s: worked around, then released: the process's mappings changed: gone '%s', new '%s'", what,
                    gone, extra);
    }
}

static void run_scenario(const scenario *sc, int rollbacks)
{
    problems = skipped = 0;
    /* Learn the calls. */
    ctx c;
    sc->setup(&c);
    fault_reset();
    HRESULT hr = sc->op(&c);
    int counts[P_COUNT];
    memcpy(counts, F.count, sizeof counts);
    teardown(&c);
    cr_assert_eq(hr, S_OK, "%s without faults: %s", sc->name, hostmem_hresult_name(hr));
    int total = 0;
    for (int p = 0; p < P_COUNT; p++)
        total += counts[p];
    cr_log_info("%s: reserve %d release %d protect %d decommit %d reset %d advise %d query %d", sc->name,
                counts[0], counts[1], counts[2], counts[3], counts[4], counts[5], counts[6]);

    for (int p = 0; p < P_COUNT; p++)
        for (int k = 1; k <= counts[p]; k++) {
            int errs[8];
            int ne = errnos_of(p, sc->at_address, errs);
            int calls_after = 0;
            for (int e = 0; e < ne; e++)
                run_one(sc, p, k, errs[e], 0, e == 0 ? &calls_after : NULL);
            if (!rollbacks || p == P_ADVISE || expected_hr(p, ENOMEM, sc->at_address) == S_OK)
                continue;
            for (int j = 1; j <= calls_after; j++)
                run_one(sc, p, k, ENOMEM, j, NULL);
        }
    if (skipped)
        cr_log_info("%s: %d runs did not reach the chosen call", sc->name, skipped);
    cr_assert_eq(problems, 0, "%s: %d problems (see the log)", sc->name, problems);
    (void)total;
}

#define SCENARIO(name_, setup_, op_, at_)                                                       \
    Test(fault, name_)                                                                          \
    {                                                                                           \
        static const scenario sc = {#name_, setup_, op_, at_};                                  \
        run_scenario(&sc, 0);                                                                   \
    }                                                                                           \
    Test(rollback, name_)                                                                       \
    {                                                                                           \
        static const scenario sc = {#name_, setup_, op_, at_};                                  \
        run_scenario(&sc, 1);                                                                   \
    }

SCENARIO(reserve_small_first, setup_empty, op_reserve_small, 2)
SCENARIO(reserve_small_from_arena, setup_base, op_reserve_small, 2)
SCENARIO(reserve_large, setup_base, op_reserve_large, 2)
SCENARIO(reserve_at_address, setup_hole, op_reserve_at, 1)
SCENARIO(reserve_small_at_address, setup_hole, op_reserve_small_at, 1)
SCENARIO(reserve_across_an_arena_edge, setup_edge, op_reserve_across_edge, 1)
SCENARIO(commit, setup_base, op_commit, 0)
SCENARIO(commit_small, setup_base, op_commit_small, 0)
SCENARIO(reserve_commit_small, setup_base, op_reserve_commit_small, 2)
SCENARIO(reserve_commit_large, setup_base, op_reserve_commit_large, 2)
SCENARIO(reserve_commit_at_address, setup_hole, op_reserve_commit_at, 1)
SCENARIO(reserve_commit_large_pages, setup_base, op_large_pages, 2)
SCENARIO(protect, setup_base, op_protect, 0)
SCENARIO(decommit, setup_base, op_decommit, 0)
SCENARIO(decommit_small, setup_base, op_decommit_small, 0)
SCENARIO(release_large, setup_base, op_release_large, 0)
SCENARIO(release_small, setup_base, op_release_small, 0)
SCENARIO(reset, setup_base, op_reset, 0)
SCENARIO(query_outside_regions, setup_foreign, op_query_outside, 0)

/* The table above agrees with the library's one errno conversion. */
Test(fault, errno_conversion_matches_the_documented_table)
{
    static const int errs[] = {ENOMEM, EAGAIN, EEXIST, EACCES, EPERM, EINVAL};
    for (size_t i = 0; i < sizeof errs / sizeof errs[0]; i++)
        cr_assert_eq(hostmem__hr_from_errno(errs[i]), expected_hr(P_RESERVE, errs[i], 1), "%s",
                     errno_name(errs[i]));
}

/* ---- locks ------------------------------------------------------------------------------ */
typedef struct blocked_call {
    hostmem_manager *m;
    char *at;
    DWORD prot;
    HRESULT hr;
    atomic_int tid;
} blocked_call;

static void *protect_main(void *arg)
{
    blocked_call *b = arg;
    atomic_store(&b->tid, (int)syscall(SYS_gettid));
    DWORD old;
    b->hr = hostmem_virtual_protect(b->m, b->at, pg(), b->prot, &old);
    return NULL;
}

static int thread_sleeping(int tid)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/self/task/%d/stat", tid);
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = 0;
    char *e = strrchr(buf, ')');
    return e && e[1] == ' ' && e[2] == 'S';
}

Test(locks, timeout_waiting_for_a_region)
{
    size_t P = pg();
    hostmem_config cfg;
    hostmem_config_init(&cfg);
    cfg.lock_timeout_ms = 50;
    hostmem_manager *m = mk(&cfg);
    char *r = commit(m, NULL, 4 * P, PAGE_READWRITE);
    char *other = commit(m, NULL, P, PAGE_READWRITE);
    blocked_call a = {.m = m, .at = r, .prot = PAGE_READONLY};
    F.block_prim = P_PROTECT; /* a's mprotect blocks while a holds r's lock */
    pthread_t ta;
    cr_assert_eq(pthread_create(&ta, NULL, protect_main, &a), 0);
    sem_wait(&F.entered);
    DWORD old;
    HR_EQ(hostmem_virtual_protect(m, r + P, P, PAGE_READONLY, &old), HOST_E_TIMEOUT);
    /* Neither a query nor another region waits for r. */
    MEMORY_BASIC_INFORMATION mbi = q(m, r + 2 * P);
    cr_assert_eq(mbi.State, MEM_COMMIT);
    HR_OK(hostmem_virtual_protect(m, other, P, PAGE_READONLY, &old));
    sem_post(&F.release);
    pthread_join(ta, NULL);
    HR_OK(a.hr);
    cr_assert_eq(q(m, r).Protect, PAGE_READONLY);
    cr_assert_eq(q(m, r + P).Protect, PAGE_READWRITE, "the timed-out call changed a page");
    hostmem_destroy(m);
}

Test(locks, shutdown_abandons_a_lock_waiter)
{
    size_t P = pg();
    hostmem_manager *m = mk(NULL);
    char *r = commit(m, NULL, 4 * P, PAGE_READWRITE);
    blocked_call a = {.m = m, .at = r, .prot = PAGE_READONLY};
    blocked_call b = {.m = m, .at = r + P, .prot = PAGE_READONLY};
    F.block_prim = P_PROTECT;
    pthread_t ta, tb;
    cr_assert_eq(pthread_create(&ta, NULL, protect_main, &a), 0);
    sem_wait(&F.entered);
    cr_assert_eq(pthread_create(&tb, NULL, protect_main, &b), 0);
    while (!atomic_load(&b.tid) || !thread_sleeping(atomic_load(&b.tid)))
        usleep(1000);
    hostmem_shutdown(m);
    sem_post(&F.release);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    HR_EQ(b.hr, HOST_E_ABANDONED);
    hostmem_destroy(m);
}

/* ---- placement: arenas on a 16 MiB boundary (the map holds them as one entry) ------------ */
Test(placement, small_regions_in_an_aligned_arena)
{
    size_t P = pg();
    F.align_null = 1;
    hostmem_manager *m = mk(NULL);
    char *a = reserve(m, NULL, 2 * P);
    char *b = reserve(m, NULL, P);
    char *c = reserve(m, NULL, GRAN);
    MEMORY_BASIC_INFORMATION mbi = q(m, a);
    MBI_IS(mbi, a, a, PAGE_READWRITE, 2 * P, MEM_RESERVE, 0);
    mbi = q(m, b);
    MBI_IS(mbi, b, b, PAGE_READWRITE, P, MEM_RESERVE, 0);
    mbi = q(m, c);
    MBI_IS(mbi, c, c, PAGE_READWRITE, GRAN, MEM_RESERVE, 0);
    cr_assert_eq(commit(m, a, P, PAGE_READWRITE), a);
    HR_OK(hostmem_virtual_free(m, b, 0, MEM_RELEASE));
    mbi = q(m, a);
    MBI_IS(mbi, a, a, PAGE_READWRITE, P, MEM_COMMIT, PAGE_READWRITE);
    mbi = q(m, c);
    MBI_IS(mbi, c, c, PAGE_READWRITE, GRAN, MEM_RESERVE, 0);
    hostmem_destroy(m);
}

Test(placement, large_region_on_a_16m_boundary)
{
    size_t P = pg();
    F.align_null = 1;
    hostmem_manager *m = mk(NULL);
    char *a = reserve(m, NULL, 64 * MiB);
    char *b = reserve(m, NULL, 2 * MiB);
    commit(m, a + 17 * MiB, P, PAGE_READWRITE);
    MEMORY_BASIC_INFORMATION mbi = q(m, a + 17 * MiB);
    MBI_IS(mbi, a + 17 * MiB, a, PAGE_READWRITE, P, MEM_COMMIT, PAGE_READWRITE);
    mbi = q(m, b + MiB);
    MBI_IS(mbi, b + MiB, b, PAGE_READWRITE, MiB, MEM_RESERVE, 0);
    HR_OK(hostmem_virtual_free(m, a, 0, MEM_RELEASE));
    mbi = q(m, b);
    MBI_IS(mbi, b, b, PAGE_READWRITE, 2 * MiB, MEM_RESERVE, 0);
    hostmem_destroy(m);
}
