/*
 * inject_random.c: random multi-threaded call sequences under the external
 * fault injector (libhostmem-inject.so, preloaded).  Every answer is checked
 * against the reference model (tests/model/model.h) and the kernel's own view
 * (/proc/self/maps).
 *
 * Threads share one manager; each owns its regions and a model of them, so
 * each can check its own exactly while the others run.  The injector fails a
 * share of libhostmem's kernel calls at random (mmap, munmap, mprotect,
 * madvise part-way, the PROCMAP_QUERY ioctl, open, read of /proc files).  A
 * call that met no injected fault must answer what the model says.  A call
 * that met one may succeed (the library worked around it, and the answer must
 * then be one the model allows) or fail with a documented HRESULT having
 * changed nothing (the region's query walk, its pages in /proc/self/maps and
 * its contents are as the model says; a failed MEM_RESET may only mark its
 * pages reset), or fail with E_FAIL, after which every call answers
 * HOST_E_CLRNOTAVAILABLE (P7).  A query never reports MEM_FREE for
 * mapped memory (S9).  At the end of each round the totals must add up, and
 * once the manager is destroyed none of its regions is still mapped.
 *
 * HOSTMEM_INJECT_SECONDS (3), HOSTMEM_INJECT_THREADS (4), HOSTMEM_INJECT_RATE
 * (faults per million calls, 10000), HOSTMEM_INJECT_SEED; it prints which libc
 * calls of the library the injector reached.
 */
#define _GNU_SOURCE 1
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <hostmem/hostmem.h>

#include "inject.h"
#include "model.h"

#define MAX_REGIONS 10
#define MAPS_CAP (1 << 20)

static const hminj_api *J;
static size_t P;
static hostmem_manager *M;
static atomic_int broken;   /* a thread saw E_FAIL or HOST_E_CLRNOTAVAILABLE */
static atomic_int efails;   /* calls that returned E_FAIL this round */
static atomic_long at_tried, at_done; /* reservations at an address */
static atomic_int problems; /* checks that failed */
static atomic_long deadline_ns;
static int some_static = 7;

typedef struct thr {
    int id;
    uint64_t rng;
    hm_model model;
    char *maps;
    uint64_t tag;
    uintptr_t released[8]; /* bases of regions this thread released lately */
    unsigned nreleased;
    long calls, faulted, worked_around, failed_clean;
    char log[16][192];
    unsigned nlog;
} thr;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t rnd(thr *t)
{
    uint64_t z = (t->rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void note(thr *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(thr *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->log[t->nlog++ % 16], sizeof t->log[0], fmt, ap);
    va_end(ap);
}

static void problem(thr *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void problem(thr *t, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (atomic_fetch_add(&problems, 1) < 5) {
        flockfile(stderr);
        fprintf(stderr, "inject_random: thread %d: %s\n  last calls of this thread:\n", t->id, buf);
        unsigned n = t->nlog < 16 ? t->nlog : 16;
        for (unsigned i = t->nlog - n; i < t->nlog; i++)
            fprintf(stderr, "    %s\n", t->log[i % 16]);
        funlockfile(stderr);
    }
}

static enum hm_probe probe_unknown(void *ctx, uintptr_t lo, uintptr_t hi)
{
    (void)ctx, (void)lo, (void)hi;
    return HM_PROBE_UNKNOWN;
}

/* ---- checks ------------------------------------------------------------------ */

/* Read /proc/self/maps into t->maps (retrying a read the kernel interrupts). */
static bool maps_read(thr *t)
{
    int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    size_t n = 0;
    for (;;) {
        ssize_t k = read(fd, t->maps + n, MAPS_CAP - 1 - n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        n += (size_t)k;
    }
    close(fd);
    t->maps[n] = 0;
    return n > 0;
}

static const char *perms_of(DWORD protect)
{
    switch (protect & 0xff) {
    case PAGE_READONLY: return "r--";
    case PAGE_READWRITE: return "rw-";
    case PAGE_EXECUTE: return "--x";
    case PAGE_EXECUTE_READ: return "r-x";
    default: return "---";
    }
}

/* The kernel's view of every page of region g agrees with the model. */
static void check_kernel(thr *t, const hm_region *g)
{
    uintptr_t lo = g->base, hi = g->base + g->npages * P, covered = lo;
    for (char *line = t->maps; *line;) {
        char *nl = strchr(line, '\n');
        unsigned long s, e;
        char perms[5] = {0};
        if (sscanf(line, "%lx-%lx %4c", &s, &e, perms) == 3 && e > lo && s < hi) {
            if (s > covered) {
                problem(t, "pages %#lx-%#lx of region %#lx are not mapped", (unsigned long)covered, s,
                        (unsigned long)lo);
                return;
            }
            for (uintptr_t a = s > lo ? s : lo; a < e && a < hi; a += P) {
                const hm_page *pg = &g->pages[(a - lo) / P];
                const char *want = pg->protect ? perms_of(pg->protect) : "---";
                if (strncmp(perms, want, 3) != 0) {
                    problem(t, "page %#lx: the kernel says %.3s, the model %s (protect 0x%x)", (unsigned long)a,
                            perms, want, (unsigned)pg->protect);
                    return;
                }
            }
            covered = e;
        }
        line = nl ? nl + 1 : line + strlen(line);
    }
    if (covered < hi)
        problem(t, "pages %#lx-%#lx of region %#lx are not mapped", (unsigned long)covered, (unsigned long)hi,
                (unsigned long)lo);
}

static uint64_t pattern(uint64_t tag, size_t word) { return tag * 0x9e3779b97f4a7c15ull + word; }

static void check_contents(thr *t, const hm_region *g, size_t k)
{
    const hm_page *pg = &g->pages[k];
    if (!pg->protect || !hm_protect_readable(pg->protect))
        return;
    const uint64_t *w = (const uint64_t *)(g->base + k * P);
    size_t last = P / 8 - 1;
    bool zero = w[0] == 0 && w[last] == 0;
    bool match = pg->tag && w[0] == pattern(pg->tag, 0) && w[last] == pattern(pg->tag, last);
    bool ok = pg->tag ? (match || (pg->reset && zero)) : zero;
    if (!ok)
        problem(t, "page %#lx (protect 0x%x%s): contents 0x%016" PRIx64 ", expected %s",
                (unsigned long)(g->base + k * P), (unsigned)pg->protect, pg->reset ? ", reset" : "", w[0],
                pg->tag ? "the pattern written" : "zero");
}

/* One region: query walk, kernel view, contents. */
static void check_region(thr *t, const hm_region *g, bool kernel)
{
    uintptr_t end = g->base + g->npages * P;
    for (uintptr_t a = g->base; a < end;) {
        MEMORY_BASIC_INFORMATION want, got;
        SIZE_T w;
        hm_model_query(&t->model, a, &want);
        HRESULT hr = hostmem_virtual_query(M, (void *)a, &got, sizeof got, &w);
        if (hr == HOST_E_CLRNOTAVAILABLE) {
            atomic_store(&broken, 1);
            return;
        }
        if (hr != S_OK) {
            problem(t, "query(%#lx) inside a region: %s", (unsigned long)a, hostmem_hresult_name(hr));
            return;
        }
        if (got.BaseAddress != want.BaseAddress || got.AllocationBase != want.AllocationBase ||
            got.RegionSize != want.RegionSize || got.State != want.State || got.Protect != want.Protect ||
            got.AllocationProtect != want.AllocationProtect || got.Type != want.Type) {
            problem(t, "query(%#lx): base %p alloc %p size %#zx state %#x prot %#x; model: %p %p %#zx %#x %#x",
                    (unsigned long)a, got.BaseAddress, got.AllocationBase, (size_t)got.RegionSize,
                    (unsigned)got.State, (unsigned)got.Protect, want.BaseAddress, want.AllocationBase,
                    (size_t)want.RegionSize, (unsigned)want.State, (unsigned)want.Protect);
            return;
        }
        a += want.RegionSize;
    }
    if (kernel && maps_read(t))
        check_kernel(t, g);
    for (size_t k = 0; k < g->npages; k++)
        check_contents(t, g, k);
}

static void check_all(thr *t)
{
    bool have_maps = maps_read(t);
    for (size_t i = 0; i < t->model.nregions && !atomic_load(&broken); i++) {
        check_region(t, &t->model.regions[i], false);
        if (have_maps)
            check_kernel(t, &t->model.regions[i]);
    }
}

/* ---- one call, judged ------------------------------------------------------------- */

/* The verdict on a call: did it meet a fault, and is its answer allowed? 
 * Returns true when the model should apply a success. */
static bool judge(thr *t, const char *what, HRESULT hr, unsigned accept, long faults_before, const hm_region *g)
{
    t->calls++;
    bool faulted = J->injected_here() != faults_before;
    enum hm_code code = hm_hr_code(hr);
    bool allowed = code < HM_CODE_COUNT && (accept & HM_BIT(code));
    note(t, "%s -> %s%s", what, hostmem_hresult_name(hr), faulted ? " (fault injected)" : "");
    if (hr == HOST_E_CLRNOTAVAILABLE) {
        /* Another thread's call met E_FAIL (it may not have returned yet);
         * the round checks that one did. */
        atomic_store(&broken, 1);
        return false;
    }
    if (!faulted) {
        if (!allowed)
            problem(t, "%s: %s, not what the model allows", what, hostmem_hresult_name(hr));
        return allowed && hr == S_OK;
    }
    t->faulted++;
    if (hr == E_FAIL) {
        /* Unrecoverable only when the restoring call failed too: one injected
         * fault (nothing done, or half a range done) can always be undone. */
        if (J->injected_here() - faults_before < 2)
            problem(t, "%s: E_FAIL after a single injected fault (P7: only when the state cannot be restored)",
                    what);
        atomic_fetch_add(&efails, 1);
        atomic_store(&broken, 1);
        return false;
    }
    if (hr == S_OK) {
        if (!allowed)
            problem(t, "%s: S_OK after a fault, which the model does not allow", what);
        else
            t->worked_around++;
        return allowed;
    }
    if (allowed && !(accept & HM_BIT(HM_S_OK)))
        return false; /* failed as it would have anyway */
    if (hr != E_OUTOFMEMORY && hr != E_INVALIDARG && hr != E_ACCESSDENIED) {
        problem(t, "%s: %s after an injected fault (not a documented answer)", what, hostmem_hresult_name(hr));
        return false;
    }
    t->failed_clean++;
    if (g)
        check_region(t, g, true); /* nothing changed */
    return false;
}

static hm_region *pick(thr *t)
{
    return t->model.nregions ? &t->model.regions[rnd(t) % t->model.nregions] : NULL;
}

static const DWORD protects[] = {PAGE_NOACCESS, PAGE_READONLY, PAGE_READWRITE, PAGE_READWRITE, PAGE_EXECUTE_READ,
                                 PAGE_EXECUTE};

static void range_in(thr *t, const hm_region *g, uintptr_t *addr, size_t *size)
{
    size_t first = rnd(t) % g->npages, count = 1 + rnd(t) % (g->npages - first);
    if (count > 64 && rnd(t) % 2)
        count = 1 + rnd(t) % 64;
    *addr = g->base + first * P;
    *size = count * P;
}

static void op_release(thr *t, hm_region *g)
{
    hm_expect e;
    char what[96];
    uintptr_t base = g->base;
    hm_model_free(&t->model, base, 0, MEM_RELEASE, &e);
    snprintf(what, sizeof what, "release(%#lx)", (unsigned long)base);
    long f = J->injected_here();
    HRESULT hr = hostmem_virtual_free(M, (void *)base, 0, MEM_RELEASE);
    if (judge(t, what, hr, e.accept, f, g)) {
        hm_model_free_apply(&t->model, base, 0, MEM_RELEASE);
        t->released[t->nreleased++ % 8] = base;
    }
}

/* A reservation at an address near space this thread gave back: free arena
 * granules, unmapped space, both (across an arena's edge), or space someone
 * took meanwhile (S4: never over a mapping, never refused where query says
 * MEM_FREE all along, which the model cannot know: it accepts both). */
static void op_reserve_at(thr *t)
{
    if (!t->nreleased || t->model.nregions >= MAX_REGIONS)
        return;
    const size_t G = 65536;
    uintptr_t base = t->released[rnd(t) % (t->nreleased < 8 ? t->nreleased : 8)];
    uintptr_t addr = base - (rnd(t) % 3 == 0 ? G : 0) + (rnd(t) % 2) * P;
    size_t size = (1 + rnd(t) % 3) * G - (rnd(t) % 2) * 3 * P;
    DWORD type = rnd(t) % 3 ? MEM_RESERVE : MEM_RESERVE | MEM_COMMIT;
    DWORD prot = protects[rnd(t) % 6];
    hm_expect e;
    hm_alloc_plan plan;
    hm_model_alloc(&t->model, addr, size, type, prot, eTaskCritical, &e, &plan);
    void *out = (void *)1;
    long f = J->injected_here();
    HRESULT hr = hostmem_virtual_alloc(M, (void *)addr, size, type, prot, eTaskCritical, &out);
    char what[128];
    snprintf(what, sizeof what, "alloc(%#lx, %#zx, %#x, %#x) = %p", (unsigned long)addr, size, (unsigned)type,
             (unsigned)prot, out);
    if (FAILED(hr) && out) {
        problem(t, "%s failed but left *out_mem set (A4)", what);
        return;
    }
    const char *why;
    atomic_fetch_add(&at_tried, 1);
    if (judge(t, what, hr, e.accept, f, NULL)) {
        atomic_fetch_add(&at_done, 1);
        if ((uintptr_t)out != e.out)
            problem(t, "%s: the contract requires %#lx (S4)", what, (unsigned long)e.out);
        else if (!hm_model_alloc_apply(&t->model, &plan, (uintptr_t)out, &why))
            problem(t, "%s: %s", what, why);
    }
}

static void op_reserve(thr *t)
{
    if (t->model.nregions >= MAX_REGIONS) {
        op_release(t, pick(t));
        return;
    }
    size_t size = rnd(t) % 4 ? (1 + rnd(t) % 16) * P : (64 + rnd(t) % 700) * P;
    DWORD type = rnd(t) % 3 ? MEM_RESERVE : MEM_RESERVE | MEM_COMMIT;
    DWORD prot = protects[rnd(t) % 6];
    hm_expect e;
    hm_alloc_plan plan;
    hm_model_alloc(&t->model, 0, size, type, prot, eTaskCritical, &e, &plan);
    void *out = (void *)1;
    long f = J->injected_here();
    HRESULT hr = hostmem_virtual_alloc(M, NULL, size, type, prot, eTaskCritical, &out);
    char what[128];
    snprintf(what, sizeof what, "alloc(NULL, %#zx, %#x, %#x) = %p", size, (unsigned)type, (unsigned)prot, out);
    if (FAILED(hr) && out) {
        problem(t, "%s failed but left *out_mem set (A4)", what);
        return;
    }
    const char *why;
    if (judge(t, what, hr, e.accept, f, NULL) && !hm_model_alloc_apply(&t->model, &plan, (uintptr_t)out, &why))
        problem(t, "%s: %s", what, why);
}

static void op_alloc_in(thr *t, DWORD type)
{
    hm_region *g = pick(t);
    if (!g)
        return;
    uintptr_t addr;
    size_t size;
    range_in(t, g, &addr, &size);
    DWORD prot = protects[rnd(t) % 6];
    hm_expect e;
    hm_alloc_plan plan;
    hm_model_alloc(&t->model, addr, size, type, prot, eTaskCritical, &e, &plan);
    void *out = (void *)1;
    long f = J->injected_here();
    HRESULT hr = hostmem_virtual_alloc(M, (void *)addr, size, type, prot, eTaskCritical, &out);
    char what[128];
    snprintf(what, sizeof what, "alloc(%#lx, %#zx, %#x, %#x)", (unsigned long)addr, size, (unsigned)type,
             (unsigned)prot);
    const char *why;
    bool faulted_reset = type == MEM_RESET && FAILED(hr) && J->injected_here() != f;
    if (judge(t, what, hr, e.accept, f, faulted_reset ? NULL : g)) {
        if (!hm_model_alloc_apply(&t->model, &plan, (uintptr_t)out, &why))
            problem(t, "%s: %s", what, why);
    } else if (faulted_reset && hr != E_FAIL && plan.kind == HM_ALLOC_RESET) {
        /* A failed reset may have advised part of the range: its pages are
         * recorded as reset (S10); otherwise nothing changed. */
        hm_model_alloc_apply(&t->model, &plan, addr & ~(uintptr_t)(P - 1), &why);
        check_region(t, g, true);
    }
}

static void op_decommit(thr *t)
{
    hm_region *g = pick(t);
    if (!g)
        return;
    uintptr_t addr;
    size_t size;
    range_in(t, g, &addr, &size);
    hm_expect e;
    hm_model_free(&t->model, addr, size, MEM_DECOMMIT, &e);
    long f = J->injected_here();
    HRESULT hr = hostmem_virtual_free(M, (void *)addr, size, MEM_DECOMMIT);
    char what[96];
    snprintf(what, sizeof what, "decommit(%#lx, %#zx)", (unsigned long)addr, size);
    if (judge(t, what, hr, e.accept, f, g))
        hm_model_free_apply(&t->model, addr, size, MEM_DECOMMIT);
}

static void op_protect(thr *t)
{
    hm_region *g = pick(t);
    if (!g)
        return;
    uintptr_t addr;
    size_t size;
    range_in(t, g, &addr, &size);
    DWORD prot = protects[rnd(t) % 6], old = 0;
    hm_expect e;
    hm_model_protect(&t->model, addr, size, prot, &e);
    long f = J->injected_here();
    HRESULT hr = hostmem_virtual_protect(M, (void *)addr, size, prot, &old);
    char what[96];
    snprintf(what, sizeof what, "protect(%#lx, %#zx, %#x)", (unsigned long)addr, size, (unsigned)prot);
    if (judge(t, what, hr, e.accept, f, g)) {
        if (old != e.old_protect)
            problem(t, "%s: old protection %#x, model %#x", what, (unsigned)old, (unsigned)e.old_protect);
        hm_model_protect_apply(&t->model, addr, size, prot);
    }
}

static void op_write(thr *t)
{
    hm_region *g = pick(t);
    if (!g)
        return;
    size_t first = rnd(t) % g->npages;
    for (size_t k = first; k < first + 4 && k < g->npages; k++) {
        hm_page *pg = &g->pages[k];
        if (!pg->protect || !hm_protect_writable(pg->protect))
            continue;
        uint64_t tag = ((uint64_t)t->id << 48) | ++t->tag, *w = (uint64_t *)(g->base + k * P);
        for (size_t i = 0; i < P / 8; i++)
            w[i] = pattern(tag, i);
        pg->tag = tag;
        pg->reset = false;
    }
}

static void op_query(thr *t)
{
    MEMORY_BASIC_INFORMATION mbi;
    SIZE_T w;
    long f = J->injected_here();
    if (rnd(t) % 2) {
        hm_region *g = pick(t);
        if (g)
            check_region(t, g, false);
        return;
    }
    /* Mapped memory outside every region: never MEM_FREE (S9). */
    HRESULT hr = hostmem_virtual_query(M, &some_static, &mbi, sizeof mbi, &w);
    bool faulted = J->injected_here() != f;
    note(t, "query(&some_static) -> %s%s", hostmem_hresult_name(hr), faulted ? " (fault injected)" : "");
    t->calls++;
    if (hr == S_OK && (mbi.State != MEM_COMMIT || mbi.Type != MEM_IMAGE))
        problem(t, "query of a static variable: state %#x type %#x%s", (unsigned)mbi.State, (unsigned)mbi.Type,
                faulted ? " (after an injected fault)" : "");
    else if (hr == HOST_E_CLRNOTAVAILABLE)
        atomic_store(&broken, 1);
    else if (hr != S_OK && !(faulted && hr == E_OUTOFMEMORY))
        problem(t, "query of a static variable: %s%s", hostmem_hresult_name(hr), faulted ? " after a fault" : "");
    if (faulted)
        t->faulted++;
}

static void *thread_main(void *arg)
{
    thr *t = arg;
    unsigned step = 0;
    while ((uint64_t)now_ns() < (uint64_t)atomic_load(&deadline_ns) && !atomic_load(&broken) &&
           atomic_load(&problems) == 0) {
        unsigned r = (unsigned)(rnd(t) % 100);
        if (r < 14)
            op_reserve(t);
        else if (r < 18)
            op_reserve_at(t);
        else if (r < 33)
            op_alloc_in(t, MEM_COMMIT);
        else if (r < 43)
            op_decommit(t);
        else if (r < 53)
            op_protect(t);
        else if (r < 58)
            op_alloc_in(t, MEM_RESET);
        else if (r < 62)
            op_alloc_in(t, MEM_RESET_UNDO);
        else if (r < 70) {
            hm_region *g = pick(t);
            if (g)
                op_release(t, g);
        } else if (r < 85)
            op_write(t);
        else
            op_query(t);
        if (++step % 64 == 0 && !atomic_load(&broken))
            check_all(t);
    }
    if (!atomic_load(&broken))
        check_all(t);
    return NULL;
}

static long env_num(const char *name, long dflt)
{
    const char *v = getenv(name);
    return v && *v ? strtol(v, NULL, 0) : dflt;
}

int main(void)
{
    J = hminj_get();
    if (!J) {
        fprintf(stderr, "inject_random: libhostmem-inject.so is not preloaded (LD_PRELOAD)\n");
        return 1;
    }
    P = (size_t)sysconf(_SC_PAGESIZE);
    long seconds = env_num("HOSTMEM_INJECT_SECONDS", 3), nthreads = env_num("HOSTMEM_INJECT_THREADS", 4);
    unsigned rate = (unsigned)env_num("HOSTMEM_INJECT_RATE", 10000);
    unsigned long long seed = (unsigned long long)env_num("HOSTMEM_INJECT_SEED", 20261201);
    if (nthreads < 1 || nthreads > 64)
        nthreads = 4;
    J->seed(seed);
    static const int mm_errs[] = {ENOMEM, EAGAIN}, prot_errs[] = {ENOMEM, EACCES, EAGAIN},
                     adv_errs[] = {ENOMEM, EAGAIN, EINVAL}, ioctl_errs[] = {ENOMEM, EINVAL, EINTR, EAGAIN},
                     open_errs[] = {EMFILE, ENFILE, ENOMEM}, read_errs[] = {ENOMEM, EAGAIN, EIO, EINTR},
                     unmap_errs[] = {ENOMEM};
    long rounds = 0, broken_rounds = 0, calls = 0, faulted = 0, around = 0, clean = 0;
    uint64_t end = now_ns() + (uint64_t)seconds * 1000000000u;
    thr *ts = calloc((size_t)nthreads, sizeof *ts);
    pthread_t *tids = calloc((size_t)nthreads, sizeof *tids);
    for (int i = 0; i < nthreads; i++)
        ts[i].maps = malloc(MAPS_CAP);
    while (now_ns() < end && atomic_load(&problems) == 0) {
        rounds++;
        if (FAILED(hostmem_create(NULL, &M))) {
            fprintf(stderr, "inject_random: hostmem_create failed\n");
            return 1;
        }
        atomic_store(&broken, 0);
        atomic_store(&efails, 0);
        J->fail_rate(HMINJ_MMAP, rate, mm_errs, 2, HMINJ_FAIL);
        J->fail_rate(HMINJ_MUNMAP, rate, unmap_errs, 1, HMINJ_FAIL); /* all or nothing in the kernel */
        J->fail_rate(HMINJ_MPROTECT, rate, prot_errs, 3, HMINJ_PARTIAL);
        J->fail_rate(HMINJ_MADVISE, rate, adv_errs, 3, HMINJ_PARTIAL);
        J->fail_rate(HMINJ_IOCTL, rate, ioctl_errs, 4, HMINJ_FAIL);
        J->fail_rate(HMINJ_OPEN, rate, open_errs, 3, HMINJ_FAIL);
        J->fail_rate(HMINJ_READ, rate, read_errs, 4, HMINJ_FAIL);
        uint64_t round_end = now_ns() + 500000000u;
        atomic_store(&deadline_ns, (long)(round_end < end ? round_end : end));
        hostmem_config cfg;
        hostmem_config_init(&cfg);
        for (int i = 0; i < nthreads; i++) {
            hm_model_init(&ts[i].model, P, &cfg, probe_unknown, NULL);
            ts[i].id = i;
            ts[i].nreleased = 0;
            ts[i].rng = seed * 1000003u + (unsigned long long)rounds * 7919u + (unsigned long long)i;
            pthread_create(&tids[i], NULL, thread_main, &ts[i]);
        }
        for (int i = 0; i < nthreads; i++)
            pthread_join(tids[i], NULL);
        J->clear();
        thr *t0 = &ts[0];
        if (atomic_load(&broken)) {
            broken_rounds++;
            if (atomic_load(&efails) == 0)
                problem(t0, "HOST_E_CLRNOTAVAILABLE, but no call returned E_FAIL (P7)");
            MEMORY_BASIC_INFORMATION mbi;
            SIZE_T w;
            void *o = (void *)1;
            if (hostmem_virtual_query(M, &some_static, &mbi, sizeof mbi, &w) != HOST_E_CLRNOTAVAILABLE ||
                hostmem_virtual_alloc(M, NULL, P, MEM_RESERVE, PAGE_READWRITE, eTaskCritical, &o) !=
                    HOST_E_CLRNOTAVAILABLE || o)
                problem(t0, "after E_FAIL the manager still answers (P7)");
        } else if (atomic_load(&problems) == 0) {
            hostmem_stats s;
            size_t reserved = 0, committed = 0, regions = 0;
            for (int i = 0; i < nthreads; i++) {
                reserved += ts[i].model.reserved;
                committed += ts[i].model.committed;
                regions += ts[i].model.nregions;
            }
            if (FAILED(hostmem_get_stats(M, &s)) || s.reserved_bytes != reserved || s.committed_bytes != committed ||
                s.region_count != regions)
                problem(t0, "stats: reserved %zu committed %zu regions %zu; the models: %zu %zu %zu",
                        (size_t)s.reserved_bytes, (size_t)s.committed_bytes, (size_t)s.region_count, reserved,
                        committed, regions);
        }
        hostmem_destroy(M);
        /* Nothing of the manager is left mapped. */
        if (maps_read(t0))
            for (int i = 0; i < nthreads; i++)
                for (size_t k = 0; k < ts[i].model.nregions; k++) {
                    const hm_region *g = &ts[i].model.regions[k];
                    for (char *line = t0->maps; *line;) {
                        unsigned long s, e;
                        char *nl = strchr(line, '\n');
                        if (sscanf(line, "%lx-%lx", &s, &e) == 2 && s < g->base + g->npages * P && e > g->base)
                            problem(t0, "region %#lx is still mapped after destroy", (unsigned long)g->base);
                        line = nl ? nl + 1 : line + strlen(line);
                    }
                }
        for (int i = 0; i < nthreads; i++) {
            calls += ts[i].calls;
            faulted += ts[i].faulted;
            around += ts[i].worked_around;
            clean += ts[i].failed_clean;
            ts[i].calls = ts[i].faulted = ts[i].worked_around = ts[i].failed_clean = 0;
            hm_model_fini(&ts[i].model);
        }
    }
    printf("inject_random: %ld rounds (%ld ended by E_FAIL), %ld threads, %ld checked calls, %ld met a fault "
           "(%ld worked around, %ld failed changing nothing), seed %llu\n",
           rounds, broken_rounds, nthreads, calls, faulted, around, clean, seed);
    printf("reservations at an address near released space: %ld made of %ld\n", atomic_load(&at_done),
           atomic_load(&at_tried));
    printf("libc calls of libhostmem the injector reached (calls / faults injected):");
    for (int c = 0; c < HMINJ_CALL_COUNT; c++)
        printf(" %s %ld/%ld", J->name((enum hminj_call)c), J->reached((enum hminj_call)c),
               J->injected((enum hminj_call)c));
    printf("\n");
    for (int i = 0; i < nthreads; i++)
        free(ts[i].maps);
    free(ts);
    free(tids);
    return atomic_load(&problems) ? 1 : 0;
}
