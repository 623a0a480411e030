/*
 * ops.c: decoder and checker shared by random_ops.c and the fuzz target.
 *
 * Address space the driver controls: a "window" of 32 MiB held with
 * inaccessible shared mappings of a memfd (placeholders, which never merge
 * with the library's anonymous mappings), with a small read-write anonymous
 * mapping (the "foreign" mapping) in its middle.  A reservation at a window
 * address first has the placeholder pages under its region unmapped (so the
 * contract says it must succeed), and gets them back afterwards unless the
 * region took them; a reservation over the foreign mapping must fail.
 * Addresses outside the window are probed with MAP_FIXED_NOREPLACE.
 */

#include "ops.h"

#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <hostmem/hostmem.h>

#include "model.h"

#define WINDOW_SIZE ((size_t)32 << 20)
#define FOREIGN_PAGES 4
#define MAX_REGIONS 24
#define KEEP_PAGES 4096          /* larger regions are checked, then released at once */
#define HUGE_PAGES ((size_t)1 << 20) /* larger ones are not modelled page by page */
#define LOG_LINES 48
#define MAX_NOTES 8

/* ---- reported deviations to tolerate while looking for others --------------- */

/* HOSTMEM_MODEL_TOLERATE=peak,reset_out,low_address,foreign_run relaxes the check of a
 * deviation already reported, so that a run can look past it.  Unset (the
 * default, and in CTest) every check is strict. */
enum { TOL_PEAK = 1, TOL_RESET_OUT = 2, TOL_LOW_ADDRESS = 4, TOL_FOREIGN_RUN = 8 };
static unsigned tolerate;

static void tolerate_init(void)
{
    const char *v = getenv("HOSTMEM_MODEL_TOLERATE");
    tolerate = 0;
    if (!v)
        return;
    if (strstr(v, "peak")) /* a failed call raises peak_*_bytes */
        tolerate |= TOL_PEAK;
    if (strstr(v, "reset_out")) /* MEM_RESET / MEM_RESET_UNDO return NULL in *out_mem */
        tolerate |= TOL_RESET_OUT;
    if (strstr(v, "low_address")) /* no reservation at an address below 64 KiB */
        tolerate |= TOL_LOW_ADDRESS;
    if (strstr(v, "foreign_run")) /* a foreign mapping's run may reach into a region */
        tolerate |= TOL_FOREIGN_RUN;
}

/* ---- the process-wide environment ----------------------------------------- */

enum { WS_HOLDER = 0, WS_OTHER = 1, WS_PUNCHED = 2 };

static struct {
    bool ready;
    size_t P, G;
    int memfd;
    uintptr_t wb;      /* window base (64 KiB-aligned) */
    size_t wpages;
    uint8_t *ws;       /* per window page: WS_* */
    size_t punched_lo, punched_hi; /* window pages [lo, hi) hold every WS_PUNCHED one */
    uintptr_t fb;      /* foreign read-write mapping */
    size_t fsize;
} env;

static void die(const char *what)
{
    fprintf(stderr, "hostmem model driver: %s: %s\n", what, strerror(errno));
    abort();
}

/* Map a placeholder over [a, a + len) of the window; false if anything is there.
 * The file offset follows the address, so neighbouring placeholders merge into
 * one mapping (the window stays a handful of mappings however it is cut). */
static bool hold(uintptr_t a, size_t len)
{
    void *p = mmap((void *)a, len, PROT_NONE, MAP_SHARED | MAP_FIXED_NOREPLACE, env.memfd,
                   (off_t)(a - env.wb));
    if (p == MAP_FAILED)
        return false;
    if (p != (void *)a) { /* an old kernel took the address as a hint */
        munmap(p, len);
        return false;
    }
    return true;
}

static void env_init(void)
{
    if (env.ready)
        return;
    env.P = (size_t)sysconf(_SC_PAGESIZE);
    env.G = 65536;
    env.memfd = memfd_create("hostmem-test-placeholder", MFD_CLOEXEC);
    if (env.memfd < 0)
        die("memfd_create");
    void *p = mmap(NULL, WINDOW_SIZE + env.G, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED)
        die("mmap window");
    uintptr_t lo = (uintptr_t)p, wb = (lo + env.G - 1) & ~(uintptr_t)(env.G - 1);
    munmap(p, WINDOW_SIZE + env.G);
    env.wb = wb;
    if (!hold(wb, WINDOW_SIZE))
        die("mmap window");
    env.wpages = WINDOW_SIZE / env.P;
    env.ws = calloc(env.wpages, 1);
    env.fb = wb + WINDOW_SIZE / 2;
    env.fsize = FOREIGN_PAGES * env.P;
    if (munmap((void *)env.fb, env.fsize))
        die("munmap");
    if (mmap((void *)env.fb, env.fsize, PROT_READ | PROT_WRITE,
             MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0) != (void *)env.fb)
        die("mmap foreign");
    memset((void *)env.fb, 0x5a, env.fsize);
    for (size_t k = 0; k < FOREIGN_PAGES; k++)
        env.ws[(env.fb - wb) / env.P + k] = WS_OTHER;
    tolerate_init();
    env.ready = true;
}

static bool in_window(uintptr_t a)
{
    return a >= env.wb && a < env.wb + WINDOW_SIZE;
}

static bool in_foreign(uintptr_t a)
{
    return a >= env.fb && a < env.fb + env.fsize;
}

/* ---- one run ---------------------------------------------------------------- */

typedef struct note {
    int state;
    HRESULT hr;
    DWORD load;
    SIZE_T avail;
} note;

typedef struct run {
    const uint8_t *p;
    size_t n, i;
    const hm_run_opts *opts;
    hm_run_stats stats;
    hm_model model;
    hostmem_config cfg;
    hostmem_manager *m;
    bool callback;
    int told;                 /* the last state told to the callback */
    note notes[MAX_NOTES];
    int nnotes;
    uintptr_t released[8];
    unsigned nreleased;
    uintptr_t ext_start[HM_MAX_EXTERNAL];
    uint64_t tag, rng;
    char log[LOG_LINES][256];
    size_t nlog;
    bool failed;
    bool shut;
} run;

static run *current; /* for the probe and the callback */

static uint64_t take(run *r, int bytes)
{
    uint64_t v = 0;
    for (int k = 0; k < bytes; k++)
        v = v << 8 | (r->i < r->n ? r->p[r->i++] : 0);
    return v;
}

static uint64_t mix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void logf_(run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void logf_(run *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->log[r->nlog % LOG_LINES], sizeof r->log[0], fmt, ap);
    va_end(ap);
    if (r->opts->verbose)
        fprintf(stderr, "%s\n", r->log[r->nlog % LOG_LINES]);
    r->nlog++;
}

static void fail(run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(run *r, const char *fmt, ...)
{
    if (r->failed)
        return;
    r->failed = true;
    fprintf(stderr, "\n=== hostmem differs from the model (step %zu) ===\nlast calls:\n",
            r->stats.steps);
    size_t from = r->nlog > LOG_LINES ? r->nlog - LOG_LINES : 0;
    for (size_t k = from; k < r->nlog; k++)
        fprintf(stderr, "  %s\n", r->log[k % LOG_LINES]);
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "difference: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
}

static const char *hrname(HRESULT hr)
{
    return hostmem_hresult_name(hr);
}

/* Is hr acceptable?  Reports otherwise. */
static bool expect_hr(run *r, const char *call, HRESULT hr, unsigned accept)
{
    enum hm_code c = hm_hr_code(hr);
    r->stats.calls++;
    if (FAILED(hr))
        r->stats.failures++;
    if (c < HM_CODE_COUNT && (accept & HM_BIT(c)))
        return true;
    char buf[256];
    fail(r, "%s returned 0x%08x %s, the contract requires %s", call, (unsigned)hr, hrname(hr),
         hm_accept_str(accept, buf, sizeof buf));
    return false;
}

/* ---- the probe: what is at [lo, hi) besides the model's regions? ----------- */

static enum hm_probe probe_outside(uintptr_t lo, uintptr_t hi)
{
    if (lo >= hi)
        return HM_PROBE_FREE;
    void *p = mmap((void *)lo, hi - lo, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE |
                   MAP_FIXED_NOREPLACE, -1, 0);
    if (p == MAP_FAILED)
        return errno == EEXIST ? HM_PROBE_UNKNOWN : HM_PROBE_UNMAPPABLE;
    munmap(p, hi - lo);
    return p == (void *)lo ? HM_PROBE_FREE : HM_PROBE_UNKNOWN;
}

static enum hm_probe probe(void *ctx, uintptr_t lo, uintptr_t hi)
{
    run *r = ctx;
    const size_t P = env.P;
    uintptr_t wlo = lo > env.wb ? lo : env.wb, whi = hi < env.wb + WINDOW_SIZE ? hi : env.wb + WINDOW_SIZE;
    enum hm_probe res = HM_PROBE_FREE;
    (void)r;
    if (wlo < whi) {
        for (uintptr_t a = wlo; a < whi; a += P) {
            if (in_foreign(a))
                return HM_PROBE_FOREIGN;
            if (env.ws[(a - env.wb) / P] != WS_HOLDER)
                res = HM_PROBE_UNKNOWN;
        }
        if (res == HM_PROBE_FREE) {
            if (munmap((void *)wlo, whi - wlo))
                die("munmap placeholder");
            size_t k0 = (wlo - env.wb) / P, k1 = (whi - env.wb) / P;
            memset(env.ws + k0, WS_PUNCHED, k1 - k0);
            if (env.punched_lo >= env.punched_hi) {
                env.punched_lo = k0;
                env.punched_hi = k1;
            } else {
                env.punched_lo = k0 < env.punched_lo ? k0 : env.punched_lo;
                env.punched_hi = k1 > env.punched_hi ? k1 : env.punched_hi;
            }
        }
    }
    enum hm_probe below = probe_outside(lo, wlo < whi ? wlo : hi);
    enum hm_probe above = wlo < whi ? probe_outside(whi, hi) : HM_PROBE_FREE;
    if (below == HM_PROBE_UNMAPPABLE || above == HM_PROBE_UNMAPPABLE)
        return HM_PROBE_UNMAPPABLE;
    if (below == HM_PROBE_UNKNOWN || above == HM_PROBE_UNKNOWN)
        return HM_PROBE_UNKNOWN;
    return res;
}

/* Give placeholders back to window pages of [lo, hi) that are neither ours nor a region's. */
static void refill(run *r, uintptr_t lo, uintptr_t hi)
{
    const size_t P = env.P;
    if (lo < env.wb)
        lo = env.wb;
    if (hi > env.wb + WINDOW_SIZE)
        hi = env.wb + WINDOW_SIZE;
    for (uintptr_t a = lo; a < hi; a += P) {
        uint8_t *w = &env.ws[(a - env.wb) / P];
        if (*w == WS_HOLDER || in_foreign(a))
            continue;
        if (hm_model_find(&r->model, a) >= 0) {
            *w = WS_OTHER;
            continue;
        }
        *w = hold(a, P) ? WS_HOLDER : WS_OTHER;
    }
}

static void refill_punched(run *r)
{
    const size_t P = env.P;
    /* Only the span probes punched since the last refill (8,192 window
     * pages to look at otherwise, after every allocation). */
    size_t lo = env.punched_lo, hi = env.punched_hi;
    env.punched_lo = env.punched_hi = 0;
    for (size_t k = lo; k < hi; k++) {
        if (env.ws[k] != WS_PUNCHED)
            continue;
        uintptr_t a = env.wb + k * P;
        if (hm_model_find(&r->model, a) >= 0)
            env.ws[k] = WS_OTHER;
        else
            env.ws[k] = hold(a, P) ? WS_HOLDER : WS_OTHER;
    }
}

/* ---- faults: prove access rights (only with opts->catch_faults) ------------ */

static sigjmp_buf fault_jmp;
static volatile sig_atomic_t fault_armed;

static void on_fault(int sig)
{
    if (fault_armed)
        siglongjmp(fault_jmp, 1);
    signal(sig, SIG_DFL);
    raise(sig);
}

/* 1 if reading (write: reading then writing back the same word) faults. */
static int faults(volatile uint64_t *p, bool write)
{
    struct sigaction sa, old_segv, old_bus;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_fault;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, &old_segv);
    sigaction(SIGBUS, &sa, &old_bus);
    int faulted = 0;
    if (sigsetjmp(fault_jmp, 1) == 0) {
        fault_armed = 1;
        uint64_t v = *p;
        if (write)
            *p = v;
        fault_armed = 0;
    } else {
        fault_armed = 0;
        faulted = 1;
    }
    sigaction(SIGSEGV, &old_segv, NULL);
    sigaction(SIGBUS, &old_bus, NULL);
    return faulted;
}

/* ---- notifications (P4, P2) -------------------------------------------------- */

static void on_notification(void *context, EMemoryAvailable state)
{
    run *r = context;
    if (r != current) {
        fprintf(stderr, "hostmem model driver: callback with a wrong context %p\n", context);
        abort();
    }
    if (r->nnotes < MAX_NOTES) {
        note *n = &r->notes[r->nnotes];
        n->state = (int)state;
        /* P4: the callback runs with no lock held: it may call back in. */
        n->hr = hostmem_get_memory_load(r->m, &n->load, &n->avail);
    }
    r->nnotes++;
}

static const char *state_name(int s)
{
    switch (s) {
    case eMemoryAvailableLow: return "Low";
    case eMemoryAvailableNeutral: return "Neutral";
    case eMemoryAvailableHigh: return "High";
    default: return "none";
    }
}

/* Check the notifications of one call.  `before`/`after`: model state around it. */
static void check_notes(run *r, const char *call, int before, int after, bool p2_possible,
                        bool low_required)
{
    if (!r->callback) {
        if (r->nnotes)
            fail(r, "%s: %d notification(s) with no callback registered", call, r->nnotes);
        return;
    }
    int told = r->told;
    bool change = before != after, change_told = false, low_seen = false;
    if (r->nnotes > 4) {
        fail(r, "%s: %d notifications for one call", call, r->nnotes);
        return;
    }
    for (int k = 0; k < r->nnotes; k++) {
        const note *n = &r->notes[k];
        if (n->state == eMemoryAvailableLow && p2_possible) {
            low_seen = true; /* P2 */
        } else if (n->state == after) {
            if (!(change && !change_told) && told == after) {
                fail(r, "%s: the callback was told %s again, with no change", call, state_name(after));
                return;
            }
            change_told = true;
        } else {
            fail(r, "%s: the callback was told %s; state before %s, after %s%s", call,
                 state_name(n->state), state_name(before), state_name(after),
                 p2_possible ? " (a P2 Low was possible)" : "");
            return;
        }
        size_t L = r->cfg.commit_limit, c = r->model.committed;
        if (n->hr != S_OK || n->load != (DWORD)((unsigned __int128)c * 100 / L) || n->avail != L - c) {
            fail(r, "%s: get_memory_load from the callback: %s load %u avail %zu, expected S_OK %u %zu "
                 "(P5, committed %zu of %zu)", call, hrname(n->hr), (unsigned)n->load, (size_t)n->avail,
                 (unsigned)((unsigned __int128)c * 100 / L), L - c, c, L);
            return;
        }
        told = n->state;
    }
    if (change && !change_told && told != after) {
        fail(r, "%s: memory state changed %s -> %s and the callback did not hear it (P4)", call,
             state_name(before), state_name(after));
        return;
    }
    if (low_required && !low_seen) {
        fail(r, "%s: denied at appdomain/process level without telling the callback Low first (P2)", call);
        return;
    }
    r->told = told;
}

/* ---- state checks ------------------------------------------------------------ */

static const char *mbi_str(const MEMORY_BASIC_INFORMATION *b, char *buf, size_t len)
{
    snprintf(buf, len, "{Base %p AllocBase %p AllocProt 0x%x Size 0x%zx State 0x%x Prot 0x%x Type 0x%x}",
             b->BaseAddress, b->AllocationBase, (unsigned)b->AllocationProtect, (size_t)b->RegionSize,
             (unsigned)b->State, (unsigned)b->Protect, (unsigned)b->Type);
    return buf;
}

/* A query of an address outside the model's regions: it must not be described
 * as one of ours (S9). */
static void check_outside(run *r, uintptr_t addr, const MEMORY_BASIC_INFORMATION *b)
{
    const size_t P = env.P;
    uintptr_t page = addr & ~(uintptr_t)(P - 1), base = (uintptr_t)b->BaseAddress;
    uintptr_t ab = (uintptr_t)b->AllocationBase;
    size_t size = b->RegionSize;
    char buf[200];
    const char *bad = NULL;
    if (base != page)
        bad = "BaseAddress is not the page of the address";
    else if (!size || size % P || size > r->model.user_end - page)
        bad = "RegionSize is not a page multiple inside user space";
    else if (!(tolerate & TOL_FOREIGN_RUN) && hm_model_overlaps(&r->model, page, page + size))
        bad = "the run outside our regions runs into a region";
    else if (b->State == MEM_FREE) {
        if (ab || b->AllocationProtect || b->Type || b->Protect != PAGE_NOACCESS)
            bad = "MEM_FREE needs AllocationBase NULL, AllocationProtect 0, Type 0, Protect PAGE_NOACCESS";
    } else if (b->State == MEM_COMMIT) {
        if (b->Type != MEM_PRIVATE && b->Type != MEM_MAPPED && b->Type != MEM_IMAGE)
            bad = "a foreign mapping's Type must be MEM_PRIVATE, MEM_MAPPED or MEM_IMAGE";
        else if (!ab || ab > page)
            bad = "a foreign mapping's AllocationBase must be the start of the mapping";
        else
            for (size_t k = 0; k < r->model.nregions; k++)
                if (ab == r->model.regions[k].base)
                    bad = "an address outside the region is described with the region as AllocationBase";
    } else {
        bad = "State must be MEM_FREE or MEM_COMMIT outside our regions";
    }
    if (!bad && in_foreign(page)) {
        if (b->State != MEM_COMMIT || b->Type != MEM_PRIVATE || ab != env.fb ||
            size != env.fb + env.fsize - page || b->Protect != PAGE_READWRITE)
            bad = "the driver's anonymous read-write mapping is not described as the OS sees it";
    } else if (!bad && in_window(page) && env.ws[(page - env.wb) / P] == WS_HOLDER) {
        if (b->State != MEM_COMMIT || b->Type != MEM_MAPPED || b->Protect != PAGE_NOACCESS)
            bad = "a PROT_NONE shared file mapping must be MEM_COMMIT, MEM_MAPPED, PAGE_NOACCESS";
    }
    if (bad)
        fail(r, "query(%#lx) outside our regions gave %s: %s (S9)", (unsigned long)addr,
             mbi_str(b, buf, sizeof buf), bad);
}

static bool query_lib(run *r, uintptr_t addr, MEMORY_BASIC_INFORMATION *b)
{
    SIZE_T written = 0;
    HRESULT hr = hostmem_virtual_query(r->m, (const void *)addr, b, sizeof *b, &written);
    r->stats.calls++;
    if (hr != S_OK || written != sizeof *b) {
        fail(r, "query(%#lx) returned %s, written %zu; expected S_OK, %zu (S9)", (unsigned long)addr,
             hrname(hr), (size_t)written, sizeof *b);
        return false;
    }
    return true;
}

static void compare_mbi(run *r, uintptr_t addr, const MEMORY_BASIC_INFORMATION *got,
                        const MEMORY_BASIC_INFORMATION *want)
{
    if (memcmp(got, want, sizeof *got) != 0 &&
        (got->BaseAddress != want->BaseAddress || got->AllocationBase != want->AllocationBase ||
         got->AllocationProtect != want->AllocationProtect || got->RegionSize != want->RegionSize ||
         got->State != want->State || got->Protect != want->Protect || got->Type != want->Type)) {
        char a[200], b[200];
        fail(r, "query(%#lx) gave %s, the model says %s (S9)", (unsigned long)addr,
             mbi_str(got, a, sizeof a), mbi_str(want, b, sizeof b));
    }
}

static void check_stats(run *r)
{
    hostmem_stats s;
    memset(&s, 0xa5, sizeof s);
    HRESULT hr = hostmem_get_stats(r->m, &s);
    const hm_model *m = &r->model;
    r->stats.calls++;
    if (hr != S_OK) {
        fail(r, "get_stats returned %s", hrname(hr));
        return;
    }
    if (s.reserved_bytes != m->reserved || s.committed_bytes != m->committed ||
        s.region_count != m->nregions ||
        (!(tolerate & TOL_PEAK) && (s.peak_committed_bytes != m->peak_committed ||
                                    s.peak_reserved_bytes != m->peak_reserved)) ||
        s.external_bytes != m->external ||
        s.page_size != env.P || s.granularity != env.G)
        fail(r, "stats: reserved %zu committed %zu regions %zu peak_committed %zu peak_reserved %zu "
             "external %zu page %zu granularity %zu; the model says %zu %zu %zu %zu %zu %zu %zu %zu",
             (size_t)s.reserved_bytes, (size_t)s.committed_bytes, (size_t)s.region_count,
             (size_t)s.peak_committed_bytes, (size_t)s.peak_reserved_bytes, (size_t)s.external_bytes,
             (size_t)s.page_size, (size_t)s.granularity, m->reserved, m->committed, m->nregions,
             m->peak_committed, m->peak_reserved, m->external, env.P, env.G);
}

static uint64_t pattern(uint64_t tag, size_t word)
{
    return tag * 0x9e3779b97f4a7c15ull + word;
}

/* Contents of one page (S5, S6, S10): zero when never written since commit, the
 * pattern written, or for a reset page either of those or zero. */
static void check_page(run *r, const hm_region *g, size_t k)
{
    hm_page *pg = &g->pages[k];
    if (!pg->protect) {
        pg->dirty = false;
        return;
    }
    if (!hm_protect_readable(pg->protect))
        return; /* verified once readable again */
    const uint64_t *w = (const uint64_t *)(g->base + k * env.P);
    size_t words = env.P / 8, bad = words;
    bool zero = true, match = pg->tag != 0;
    for (size_t i = 0; i < words; i++) {
        if (w[i] != 0)
            zero = false;
        if (match && w[i] != pattern(pg->tag, i))
            match = false;
        if (!zero && !match && bad == words)
            bad = i;
    }
    bool ok = pg->tag == 0 ? zero : (match || (pg->reset && zero));
    if (!ok)
        fail(r, "page %#lx (region %#lx, protect 0x%x%s): contents differ at word %zu: 0x%016llx, "
             "expected %s", (unsigned long)(g->base + k * env.P), (unsigned long)g->base,
             (unsigned)pg->protect, pg->reset ? ", reset" : "", bad,
             (unsigned long long)w[bad < words ? bad : 0],
             pg->tag ? (pg->reset ? "the pattern written or zero" : "the pattern written") : "zero");
    pg->dirty = false;
}

static void check_all(run *r)
{
    const size_t P = env.P;
    if (r->failed || r->shut)
        return;
    check_stats(r);
    for (size_t i = 0; i < r->model.nregions && !r->failed; i++) {
        const hm_region *g = &r->model.regions[i];
        uintptr_t end = g->base + g->npages * P;
        for (uintptr_t a = g->base; a < end && !r->failed;) {
            MEMORY_BASIC_INFORMATION want, got;
            hm_model_query(&r->model, a, &want);
            if (!query_lib(r, a, &got))
                return;
            compare_mbi(r, a, &got, &want);
            a += want.RegionSize;
        }
        if (g->npages <= KEEP_PAGES) {
            for (size_t k = 0; k < g->npages && !r->failed; k++)
                if (g->pages[k].dirty)
                    check_page(r, g, k);
        } else { /* a big region lives for one step: its ends and a sample */
            check_page(r, g, 0);
            check_page(r, g, g->npages - 1);
            for (int s = 0; s < 8 && !r->failed; s++)
                check_page(r, g, mix(&r->rng) % g->npages);
        }
        if (g->npages && !r->failed)
            check_page(r, g, mix(&r->rng) % g->npages);
    }
}

/* ---- argument decoding -------------------------------------------------------- */

static uintptr_t pick_region_addr(run *r)
{
    const size_t P = env.P, G = env.G;
    const hm_region *g = &r->model.regions[take(r, 1) % r->model.nregions];
    uintptr_t base = g->base, end = base + g->npages * P;
    size_t k = (size_t)take(r, 1);
    switch (take(r, 1) % 12) {
    case 0: return base;
    case 1: return base + (k % g->npages) * P;
    case 2: return base + (k % g->npages) * P + 1 + take(r, 2) % (P - 1);
    case 3: return end - 1;
    case 4: return end;
    case 5: return end + (k % 16) * P;
    case 6: return base + ((g->npages * P + G - 1) & ~(G - 1));
    case 7: return base - P;
    case 8: return base - G;
    case 9: return base + (g->npages / 2) * P;
    case 10: return base + take(r, 2);
    default: return end - P;
    }
}

static uintptr_t get_addr_any(run *r);
static uintptr_t get_addr(run *r)
{
    uintptr_t a = get_addr_any(r);
    if ((tolerate & TOL_LOW_ADDRESS) && a && a < env.G)
        a = env.G;
    return a;
}

static uintptr_t get_addr_any(run *r)
{
    const size_t P = env.P, G = env.G;
    static const uintptr_t high[] = {
        ((uintptr_t)1 << 47) - 4096, ((uintptr_t)1 << 47) - 65536, ((uintptr_t)1 << 47) - 1,
        (uintptr_t)1 << 47, ((uintptr_t)1 << 47) + 4096, (uintptr_t)1 << 62,
        UINTPTR_MAX & ~(uintptr_t)4095, UINTPTR_MAX, (uintptr_t)0xffffffffff600000ull,
    };
    static const uintptr_t low[] = {1, 4096, 65535, 65536, 131072, 0x400000};
    unsigned sel = (unsigned)take(r, 1) % 16;
    if (sel >= 1 && sel <= 6 && r->model.nregions)
        return pick_region_addr(r);
    switch (sel) {
    case 0: return 0;
    case 9: return env.fb + take(r, 2) % (env.fsize + P);
    case 10: return high[take(r, 1) % (sizeof high / sizeof high[0])];
    case 11: return low[take(r, 1) % (sizeof low / sizeof low[0])];
    case 12:
        if (r->nreleased)
            return r->released[take(r, 1) % (r->nreleased < 8 ? r->nreleased : 8)] +
                   (take(r, 1) % 4) * P;
        return env.wb;
    case 13: return (uintptr_t)take(r, 8);
    case 14:
    case 15: return env.wb + (take(r, 2) % 256) * P;
    default: {
        uintptr_t a = env.wb + (take(r, 2) % (WINDOW_SIZE / G)) * G;
        unsigned v = (unsigned)take(r, 1);
        if (v & 1)
            a += (v >> 1) % 16 * P;
        if (v & 0x80)
            a += 1 + v % 511;
        return a;
    }
    }
}

static size_t get_size(run *r, uintptr_t addr)
{
    const size_t P = env.P, G = env.G;
    static const size_t big[] = {(size_t)1 << 20, (size_t)2 << 20, (size_t)4 << 20, (size_t)16 << 20,
                                 ((size_t)32 << 20) + 4096, (size_t)300 << 20, (size_t)1 << 30};
    unsigned sel = (unsigned)take(r, 1) % 20;
    switch (sel) {
    case 0: return 0;
    case 1: return 1;
    case 2: return P - 1;
    case 3: return P;
    case 4: return P + 1;
    case 5: case 6: case 7: return (1 + take(r, 1) % 16) * P;
    case 8: return (1 + take(r, 1) % 16) * P + take(r, 1);
    case 9: return G - 1 + take(r, 1) % 3;
    case 10: return (1 + take(r, 1) % 8) * G;
    case 11: {
        long i = hm_model_find(&r->model, addr);
        if (i < 0)
            return 2 * P;
        const hm_region *g = &r->model.regions[i];
        size_t rest = g->base + g->npages * P - addr;
        switch (take(r, 1) % 4) {
        case 0: return rest;
        case 1: return rest - 1 ? rest - 1 : 1;
        case 2: return rest + 1;
        default: return rest + P;
        }
    }
    case 12: return (size_t)take(r, 3);
    case 13: {
        unsigned k = (unsigned)take(r, 1);
        return big[k % (k & 0xc0 ? 5 : 7)]; /* 300 MiB and 1 GiB rarely */
    }
    case 14: {
        uintptr_t end = (uintptr_t)1 << 47;
        switch (take(r, 1) % 10) {
        case 0: return (size_t)1 << 40;
        case 1: return (size_t)1 << 47;
        case 2: return ((size_t)1 << 47) + P;
        case 3: return (size_t)1 << 62;
        case 4: return SIZE_MAX;
        case 5: return SIZE_MAX - P + 2;
        case 6: return SIZE_MAX - G;
        case 7: return (size_t)0 - addr;
        case 8: return addr < end ? end - addr : P;
        default: return addr < end ? end - addr + 1 : 1;
        }
    }
    default: return (1 + take(r, 1) % 4) * P;
    }
}

static DWORD get_type(run *r)
{
    static const DWORD bits[] = {MEM_COMMIT, MEM_RESERVE, MEM_DECOMMIT, MEM_RELEASE, MEM_FREE,
                                 MEM_PRIVATE, MEM_MAPPED, MEM_RESET, MEM_TOP_DOWN, MEM_WRITE_WATCH,
                                 MEM_RESET_UNDO, MEM_LARGE_PAGES, 0x1, 0x40000000, 0x80000000};
    static const DWORD core[] = {MEM_RESERVE, MEM_COMMIT | MEM_RESERVE, MEM_COMMIT, 0};
    unsigned sel = (unsigned)take(r, 1) % 24;
    switch (sel) {
    case 0: case 1: case 2: case 3: case 4: return MEM_RESERVE;
    case 5: case 6: case 7: case 8: case 22: case 23: return MEM_COMMIT;
    case 9: case 10: case 11: case 12: return MEM_COMMIT | MEM_RESERVE;
    case 13: return MEM_RESET;
    case 14: return MEM_RESET_UNDO;
    case 15: return core[take(r, 1) % 3] | MEM_TOP_DOWN;
    case 16: return MEM_LARGE_PAGES | MEM_RESERVE | MEM_COMMIT | (take(r, 1) & 1 ? MEM_TOP_DOWN : 0);
    case 17: return MEM_WRITE_WATCH | core[take(r, 1) % 4];
    case 18: {
        unsigned v = (unsigned)take(r, 2);
        DWORD t = 0;
        for (unsigned k = 0; k < sizeof bits / sizeof bits[0]; k++)
            if (v & (1u << k))
                t |= bits[k];
        return t;
    }
    case 19: return (DWORD)take(r, 4);
    case 20: return 0;
    default: return (take(r, 1) & 1 ? MEM_RESET : MEM_RESET_UNDO) | bits[take(r, 1) % 15];
    }
}

static DWORD get_protect(run *r)
{
    static const DWORD base[] = {PAGE_READONLY, PAGE_READWRITE, PAGE_EXECUTE, PAGE_EXECUTE_READ,
                                 PAGE_EXECUTE_READWRITE, PAGE_NOACCESS};
    static const DWORD mod[] = {PAGE_GUARD, PAGE_NOCACHE, PAGE_WRITECOMBINE};
    unsigned sel = (unsigned)take(r, 1) % 16;
    switch (sel) {
    case 0: case 1: case 2: case 3: return PAGE_READWRITE;
    case 4: return PAGE_READONLY;
    case 5: return PAGE_NOACCESS;
    case 6: return PAGE_EXECUTE;
    case 7: return PAGE_EXECUTE_READ;
    case 8: return PAGE_EXECUTE_READWRITE;
    case 9: return base[take(r, 1) % 5] | mod[take(r, 1) % 3];
    case 10: return (DWORD)take(r, 2) & 0x7ff; /* every combination of the PAGE_* bits */
    case 11: {
        static const DWORD odd[] = {PAGE_WRITECOPY, PAGE_EXECUTE_WRITECOPY, 0,
                                    PAGE_READONLY | PAGE_READWRITE};
        return odd[take(r, 1) % 4];
    }
    case 12: return (DWORD)take(r, 4);
    case 13: return PAGE_READWRITE | PAGE_GUARD;
    case 14: return PAGE_NOACCESS | mod[take(r, 1) % 3];
    default: return PAGE_READWRITE | PAGE_NOCACHE | PAGE_GUARD;
    }
}

static DWORD get_free_type(run *r)
{
    static const DWORD odd[] = {0, MEM_FREE, MEM_DECOMMIT | MEM_RELEASE, MEM_RELEASE | 0x1, MEM_RESERVE,
                                MEM_DECOMMIT | MEM_COMMIT};
    switch (take(r, 1) % 8) {
    case 0: case 1: case 2: return MEM_DECOMMIT;
    case 3: case 4: case 5: return MEM_RELEASE;
    case 6: return odd[take(r, 1) % 6];
    default: return (DWORD)take(r, 4);
    }
}

/* ---- operations -------------------------------------------------------------- */

static void remember_released(run *r, uintptr_t base)
{
    r->released[r->nreleased++ % 8] = base;
}

static void do_release(run *r, uintptr_t base, size_t size_arg, DWORD type)
{
    hm_expect e;
    char call[160];
    int before = hm_model_state(&r->model);
    hm_model_free(&r->model, base, size_arg, type, &e);
    snprintf(call, sizeof call, "hostmem_virtual_free(m, %#lx, %#zx, 0x%x)", (unsigned long)base,
             size_arg, (unsigned)type);
    r->nnotes = 0;
    HRESULT hr = hostmem_virtual_free(r->m, (void *)base, size_arg, type);
    logf_(r, "%s -> %s", call, hrname(hr));
    if (!expect_hr(r, call, hr, e.accept))
        return;
    if (hr == S_OK) {
        long i = type == MEM_RELEASE ? hm_model_find(&r->model, base) : -1;
        uintptr_t lo = i >= 0 ? r->model.regions[i].base : 0;
        uintptr_t hi = i >= 0 ? lo + r->model.regions[i].npages * env.P : 0;
        hm_model_free_apply(&r->model, base, size_arg, type);
        if (i >= 0) {
            remember_released(r, lo);
            refill(r, lo, hi);
        }
    }
    check_notes(r, call, before, hm_model_state(&r->model), false, false);
}

/* A region too big to keep (or made of huge pages): check it, then release it. */
static void check_and_release(run *r, uintptr_t base)
{
    check_all(r);
    if (!r->failed)
        do_release(r, base, 0, MEM_RELEASE);
}

/* A region too big to model page by page: check what can be checked, release it. */
static void huge_transient(run *r, uintptr_t base, const hm_alloc_plan *plan)
{
    size_t R = plan->npages * env.P;
    hm_model *m = &r->model;
    MEMORY_BASIC_INFORMATION b;
    if (!query_lib(r, base, &b))
        return;
    if ((uintptr_t)b.BaseAddress != base || (uintptr_t)b.AllocationBase != base ||
        b.RegionSize != R || b.State != (plan->commit ? MEM_COMMIT : MEM_RESERVE) ||
        b.Type != MEM_PRIVATE || b.AllocationProtect != plan->protect) {
        char buf[200];
        fail(r, "query of a %zu-byte region at %#lx gave %s (S9)", R, (unsigned long)base,
             mbi_str(&b, buf, sizeof buf));
        return;
    }
    m->reserved += R;
    m->nregions++;
    if (plan->commit)
        m->committed += R;
    if (m->reserved > m->peak_reserved)
        m->peak_reserved = m->reserved;
    if (m->committed > m->peak_committed)
        m->peak_committed = m->committed;
    check_stats(r);
    m->reserved -= R;
    m->nregions--;
    if (plan->commit)
        m->committed -= R;
    HRESULT hr = hostmem_virtual_free(r->m, (void *)base, 0, MEM_RELEASE);
    logf_(r, "hostmem_virtual_free(m, %#lx, 0, MEM_RELEASE) -> %s", (unsigned long)base, hrname(hr));
    expect_hr(r, "release of a huge region", hr, HM_BIT(HM_S_OK));
}

static void op_alloc(run *r)
{
    uintptr_t addr = get_addr(r);
    size_t size = get_size(r, addr);
    DWORD type = get_type(r), protect = get_protect(r);
    EMemoryCriticalLevel level = (EMemoryCriticalLevel)(take(r, 1) % 3);
    hm_expect e;
    hm_alloc_plan plan;
    char call[200];
    int before = hm_model_state(&r->model);
    hm_model_alloc(&r->model, addr, size, type, protect, level, &e, &plan);
    snprintf(call, sizeof call, "hostmem_virtual_alloc(m, %#lx, %#zx, 0x%x, 0x%x, %d, &out)",
             (unsigned long)addr, size, (unsigned)type, (unsigned)protect, (int)level);
    void *out = (void *)(uintptr_t)0x1234;
    r->nnotes = 0;
    HRESULT hr = hostmem_virtual_alloc(r->m, (void *)addr, size, type, protect, level, &out);
    logf_(r, "%s -> %s, out %p", call, hrname(hr), out);
    bool ok = expect_hr(r, call, hr, e.accept);
    if (ok && FAILED(hr) && out != NULL)
        fail(r, "%s failed with %s but left *out_mem = %p (A4)", call, hrname(hr), out);
    else if (ok && SUCCEEDED(hr)) {
        uintptr_t o = (uintptr_t)out;
        const char *why;
        if ((plan.fixed || plan.kind != HM_ALLOC_RESERVE) && o != e.out &&
            !((tolerate & TOL_RESET_OUT) && plan.kind >= HM_ALLOC_RESET && !o))
            fail(r, "%s returned %p, the contract requires %#lx (S4/S5)", call, out, (unsigned long)e.out);
        else if (plan.kind == HM_ALLOC_RESERVE && plan.npages > HUGE_PAGES) {
            huge_transient(r, o, &plan);
        } else if (!hm_model_alloc_apply(&r->model, &plan, o, &why)) {
            fail(r, "%s returned %p: %s", call, out, why);
        } else if (plan.kind == HM_ALLOC_RESERVE && !plan.fixed) {
            uintptr_t end = o + plan.npages * env.P;
            for (uintptr_t a = o; a < end; a += env.P)
                if ((in_window(a) && env.ws[(a - env.wb) / env.P] == WS_HOLDER) || in_foreign(a)) {
                    fail(r, "%s placed a region at %p over a mapping it does not own (S4)", call, out);
                    break;
                }
        }
    }
    refill_punched(r);
    check_notes(r, call, before, hm_model_state(&r->model), e.p2_possible,
                e.p2_required && hr == E_OUTOFMEMORY);
    if (!r->failed && SUCCEEDED(hr) && plan.kind == HM_ALLOC_RESERVE && plan.npages <= HUGE_PAGES &&
        (plan.npages > KEEP_PAGES || plan.large))
        check_and_release(r, (uintptr_t)out);
}

static void op_free(run *r)
{
    DWORD type = get_free_type(r);
    uintptr_t addr = get_addr(r);
    size_t size = take(r, 1) % 3 ? 0 : get_size(r, addr);
    if (type == MEM_DECOMMIT && take(r, 1) % 2)
        size = get_size(r, addr);
    do_release(r, addr, size, type);
}

static void op_protect(run *r)
{
    uintptr_t addr = get_addr(r);
    size_t size = get_size(r, addr);
    DWORD protect = get_protect(r);
    hm_expect e;
    char call[200];
    int before = hm_model_state(&r->model);
    hm_model_protect(&r->model, addr, size, protect, &e);
    snprintf(call, sizeof call, "hostmem_virtual_protect(m, %#lx, %#zx, 0x%x, &old)",
             (unsigned long)addr, size, (unsigned)protect);
    DWORD old = 0xdeadbeef;
    r->nnotes = 0;
    HRESULT hr = hostmem_virtual_protect(r->m, (void *)addr, size, protect, &old);
    logf_(r, "%s -> %s, old 0x%x", call, hrname(hr), (unsigned)old);
    if (expect_hr(r, call, hr, e.accept) && hr == S_OK) {
        if (old != e.old_protect)
            fail(r, "%s: *old_protect 0x%x, the first page had 0x%x (S8)", call, (unsigned)old,
                 (unsigned)e.old_protect);
        hm_model_protect_apply(&r->model, addr, size, protect);
    }
    check_notes(r, call, before, hm_model_state(&r->model), false, false);
}

static void op_query(run *r)
{
    static const SIZE_T lengths[] = {sizeof(MEMORY_BASIC_INFORMATION), sizeof(MEMORY_BASIC_INFORMATION),
                                     sizeof(MEMORY_BASIC_INFORMATION) - 1, 0, 64, 1000};
    uintptr_t addr = get_addr(r);
    SIZE_T length = lengths[take(r, 1) % 6];
    unsigned char buf[1024];
    SIZE_T written = 0x5eed;
    char call[160];
    unsigned accept;
    MEMORY_BASIC_INFORMATION want;
    bool inside = hm_model_query(&r->model, addr, &want);
    memset(buf, 0xaa, sizeof buf);
    if (length < sizeof(MEMORY_BASIC_INFORMATION))
        accept = HM_BIT(HM_E_BAD_LENGTH) | (addr >= r->model.user_end ? HM_BIT(HM_E_INVALIDARG) : 0);
    else
        accept = addr >= r->model.user_end ? HM_BIT(HM_E_INVALIDARG) : HM_BIT(HM_S_OK);
    snprintf(call, sizeof call, "hostmem_virtual_query(m, %#lx, buf, %zu, &written)",
             (unsigned long)addr, (size_t)length);
    r->nnotes = 0;
    HRESULT hr = hostmem_virtual_query(r->m, (const void *)addr, buf, length, &written);
    logf_(r, "%s -> %s", call, hrname(hr));
    if (!expect_hr(r, call, hr, accept))
        return;
    size_t touched = hr == S_OK ? sizeof(MEMORY_BASIC_INFORMATION) : 0;
    for (size_t k = touched; k < sizeof buf; k++)
        if (buf[k] != 0xaa) {
            fail(r, "%s wrote byte %zu of the buffer (only %zu may change)", call, k, touched);
            return;
        }
    if (hr != S_OK)
        return;
    if (written != sizeof(MEMORY_BASIC_INFORMATION)) {
        fail(r, "%s: *out_written %zu, expected %zu (S9)", call, (size_t)written,
             sizeof(MEMORY_BASIC_INFORMATION));
        return;
    }
    MEMORY_BASIC_INFORMATION got;
    memcpy(&got, buf, sizeof got);
    if (inside)
        compare_mbi(r, addr, &got, &want);
    else
        check_outside(r, addr, &got);
    check_notes(r, call, hm_model_state(&r->model), hm_model_state(&r->model), false, false);
}

static void op_write(run *r)
{
    if (!r->model.nregions)
        return;
    hm_region *g = &r->model.regions[take(r, 1) % r->model.nregions];
    size_t first = take(r, 2) % g->npages, count = 1 + take(r, 1) % 8, written = 0;
    for (size_t k = first; k < first + count && k < g->npages; k++) {
        hm_page *pg = &g->pages[k];
        if (!pg->protect || !hm_protect_writable(pg->protect))
            continue;
        uint64_t tag = ++r->tag, *w = (uint64_t *)(g->base + k * env.P);
        for (size_t i = 0; i < env.P / 8; i++)
            w[i] = pattern(tag, i);
        pg->tag = tag;
        pg->reset = false;
        pg->dirty = true;
        written++;
    }
    logf_(r, "write %zu page(s) of region %#lx from page %zu", written, (unsigned long)g->base, first);
}

/* Access rights (S4, S6, S11, S2): with a fault handler, prove a page faults or not. */
static void op_access(run *r)
{
    if (!r->opts->catch_faults || !r->model.nregions)
        return;
    hm_region *g = &r->model.regions[take(r, 1) % r->model.nregions];
    size_t k = take(r, 2) % g->npages;
    hm_page *pg = &g->pages[k];
    volatile uint64_t *w = (volatile uint64_t *)(g->base + k * env.P + 8 * (take(r, 1) % 512));
    DWORD p = pg->protect, b = p & 0xff;
    if (b == PAGE_EXECUTE && !(p & PAGE_GUARD))
        return; /* execute-only may or may not be readable (protection keys) */
    bool readable = p && hm_protect_readable(p), writable = p && hm_protect_writable(p);
    int rf = faults(w, false);
    logf_(r, "read %p (protect 0x%x) -> %s", (void *)w, (unsigned)p, rf ? "fault" : "ok");
    if (rf == readable) {
        fail(r, "reading %p (page protect 0x%x, %s) %s", (void *)w, (unsigned)p,
             p ? "committed" : "reserved", rf ? "faulted" : "did not fault");
        return;
    }
    if (readable) {
        int wf = faults(w, true);
        logf_(r, "write %p (protect 0x%x) -> %s", (void *)w, (unsigned)p, wf ? "fault" : "ok");
        if (wf == writable)
            fail(r, "writing %p (page protect 0x%x) %s", (void *)w, (unsigned)p,
                 wf ? "faulted" : "did not fault");
    }
}

static void op_load(run *r)
{
    DWORD load = 12345;
    SIZE_T avail = 0;
    HRESULT hr = hostmem_get_memory_load(r->m, &load, &avail);
    size_t L = r->cfg.commit_limit, c = r->model.committed;
    logf_(r, "hostmem_get_memory_load(m, &load, &avail) -> %s, %u, %zu", hrname(hr), (unsigned)load,
          (size_t)avail);
    if (!expect_hr(r, "get_memory_load", hr, HM_BIT(HM_S_OK)))
        return;
    if (L && (load != (DWORD)((unsigned __int128)c * 100 / L) || avail != L - c))
        fail(r, "get_memory_load: load %u available %zu, expected %u %zu (P5)", (unsigned)load,
             (size_t)avail, (unsigned)((unsigned __int128)c * 100 / L), L - c);
    else if (!L && load > 100)
        fail(r, "get_memory_load: load %u > 100 (P5)", (unsigned)load);
}

static void op_register(run *r)
{
    /* Without a commit limit the state follows the system: nothing to predict.  With an
     * address-space limit, whether its denials tell Low first (P2 via P3) is not said. */
    if (!r->cfg.commit_limit || r->cfg.address_space_limit)
        return;
    r->nnotes = 0;
    HRESULT hr = hostmem_register_memory_notification_callback(r->m, on_notification, r);
    logf_(r, "hostmem_register_memory_notification_callback(m, fn, ctx) -> %s", hrname(hr));
    if (!expect_hr(r, "register_memory_notification_callback", hr, HM_BIT(HM_S_OK)))
        return;
    int s = hm_model_state(&r->model);
    if (r->nnotes != 1 || r->notes[0].state != s)
        fail(r, "registering: the callback heard %d notification(s), first %s; expected exactly the "
             "current state %s (P4)", r->nnotes, r->nnotes ? state_name(r->notes[0].state) : "-",
             state_name(s));
    r->callback = true;
    r->told = s;
}

static uintptr_t ext_addr(run *r)
{
    return env.wb + WINDOW_SIZE + (take(r, 1) % 24) * ((size_t)4 << 20);
}

static void op_external(run *r)
{
    unsigned kind = (unsigned)take(r, 1) % 3;
    uintptr_t start = ext_addr(r);
    size_t size = (1 + take(r, 1) % 64) * env.P * 16;
    hm_expect e;
    char call[160];
    HRESULT hr = E_FAIL;
    if (kind == 0) {
        hm_model_needs(&r->model, start, size, &e);
        snprintf(call, sizeof call, "hostmem_needs_virtual_address_space(m, %#lx, %#zx)",
                 (unsigned long)start, size);
        hr = hostmem_needs_virtual_address_space(r->m, (void *)start, size);
    } else if (kind == 1) {
        size_t used = 0;
        for (size_t k = 0; k < HM_MAX_EXTERNAL; k++)
            used += r->model.ext[k].size != 0;
        if (used == HM_MAX_EXTERNAL)
            kind = 2;
        hm_model_acquired(&r->model, start, size, &e);
        snprintf(call, sizeof call, "hostmem_acquired_virtual_address_space(m, %#lx, %#zx)",
                 (unsigned long)start, size);
        if (kind == 1)
            hr = hostmem_acquired_virtual_address_space(r->m, (void *)start, size);
    }
    if (kind == 2) {
        hm_model_released(&r->model, start, &e);
        snprintf(call, sizeof call, "hostmem_released_virtual_address_space(m, %#lx)",
                 (unsigned long)start);
        hr = hostmem_released_virtual_address_space(r->m, (void *)start);
    }
    logf_(r, "%s -> %s", call, hrname(hr));
    if (!expect_hr(r, call, hr, e.accept) || hr != S_OK)
        return;
    if (kind == 1)
        hm_model_acquired_apply(&r->model, start, size);
    else if (kind == 2)
        hm_model_released_apply(&r->model, start);
}

/* After shutdown every call answers HOST_E_CLRNOTAVAILABLE (A3). */
static void op_shutdown(run *r)
{
    hostmem_shutdown(r->m);
    logf_(r, "hostmem_shutdown(m)");
    r->shut = true;
    const unsigned N = HM_BIT(HM_E_CLRNOTAVAILABLE);
    void *out = (void *)1;
    DWORD old, load;
    SIZE_T avail, written;
    MEMORY_BASIC_INFORMATION b;
    hostmem_stats s;
    uintptr_t a = r->model.nregions ? r->model.regions[0].base : env.wb;
    expect_hr(r, "alloc after shutdown",
              hostmem_virtual_alloc(r->m, NULL, env.P, MEM_RESERVE, PAGE_READWRITE, eTaskCritical, &out), N);
    if (out)
        fail(r, "alloc after shutdown left *out_mem = %p (A4)", out);
    expect_hr(r, "commit after shutdown",
              hostmem_virtual_alloc(r->m, (void *)a, env.P, MEM_COMMIT, PAGE_READWRITE, eTaskCritical, &out), N);
    expect_hr(r, "protect after shutdown", hostmem_virtual_protect(r->m, (void *)a, env.P, PAGE_READONLY, &old), N);
    expect_hr(r, "query after shutdown", hostmem_virtual_query(r->m, (void *)a, &b, sizeof b, &written), N);
    expect_hr(r, "decommit after shutdown", hostmem_virtual_free(r->m, (void *)a, env.P, MEM_DECOMMIT), N);
    expect_hr(r, "release after shutdown", hostmem_virtual_free(r->m, (void *)a, 0, MEM_RELEASE), N);
    expect_hr(r, "get_memory_load after shutdown", hostmem_get_memory_load(r->m, &load, &avail), N);
    expect_hr(r, "needs after shutdown", hostmem_needs_virtual_address_space(r->m, (void *)a, env.P), N);
    expect_hr(r, "acquired after shutdown", hostmem_acquired_virtual_address_space(r->m, (void *)a, env.P), N);
    expect_hr(r, "released after shutdown", hostmem_released_virtual_address_space(r->m, (void *)a), N);
    expect_hr(r, "get_stats after shutdown", hostmem_get_stats(r->m, &s), N);
}

static void decode_config(run *r)
{
    hostmem_config *c = &r->cfg;
    hostmem_config_init(c);
    unsigned sel = (unsigned)take(r, 1) % 8, v = (unsigned)take(r, 1);
    c->deny_write_execute = sel == 2 || sel == 6;
    if (sel >= 3 && sel <= 6) {
        /* A multiple of 100 bytes, so that every percentage of it is a whole number of bytes. */
        c->commit_limit = (size_t)(8 + v % 248) * 4100;
        if (v & 1) {
            c->task_percent = 50;
            c->appdomain_percent = 75;
        }
        if (v & 2) {
            c->low_memory_percent = 80;
            c->high_memory_percent = 40;
        }
    }
    if (sel >= 6)
        c->address_space_limit = ((size_t)(4 + v % 60) << 20) + 100 * (v % 7);
}

static void do_step(run *r)
{
    unsigned op = (unsigned)take(r, 1) % 40;
    if (op < 14) {
        if (r->model.nregions >= MAX_REGIONS) {
            uintptr_t base = r->model.regions[take(r, 1) % r->model.nregions].base;
            do_release(r, base, 0, MEM_RELEASE);
        } else {
            op_alloc(r);
        }
    } else if (op < 20) {
        op_free(r);
    } else if (op < 24) {
        op_protect(r);
    } else if (op < 28) {
        op_query(r);
    } else if (op < 33) {
        op_write(r);
    } else if (op < 35) {
        op_access(r);
    } else if (op == 35) {
        op_load(r);
    } else if (op == 36) {
        op_register(r);
    } else if (op == 37) {
        op_external(r);
    } else if (op == 38) {
        op_external(r);
    } else {
        if (take(r, 1) == 0xff)
            op_shutdown(r);
        else
            op_query(r);
    }
}

int hm_run(const uint8_t *data, size_t size, const hm_run_opts *opts, hm_run_stats *stats)
{
    static const hm_run_opts defaults;
    run *r = calloc(1, sizeof *r);
    if (!r)
        die("calloc");
    env_init();
    r->p = data;
    r->n = size;
    r->opts = opts ? opts : &defaults;
    r->rng = 0x1234;
    current = r;
    decode_config(r);
    hm_model_init(&r->model, env.P, &r->cfg, probe, r);
    HRESULT hr = hostmem_create(&r->cfg, &r->m);
    logf_(r, "hostmem_create({commit_limit %zu, address_space_limit %zu, task %u, appdomain %u, low %u, "
          "high %u, deny_wx %d}) -> %s", (size_t)r->cfg.commit_limit, (size_t)r->cfg.address_space_limit,
          (unsigned)r->cfg.task_percent, (unsigned)r->cfg.appdomain_percent,
          (unsigned)r->cfg.low_memory_percent, (unsigned)r->cfg.high_memory_percent,
          (int)r->cfg.deny_write_execute, hrname(hr));
    if (hr != S_OK) {
        fail(r, "hostmem_create returned %s", hrname(hr));
    } else {
        if (r->cfg.commit_limit && !r->cfg.address_space_limit)
            op_register(r);
        check_all(r);
        while (!r->failed && !r->shut && r->i < r->n &&
               (!r->opts->max_steps || r->stats.steps < r->opts->max_steps)) {
            r->stats.steps++;
            do_step(r);
            check_all(r);
        }
    }
    if (r->m) {
        hostmem_destroy(r->m);
        logf_(r, "hostmem_destroy(m)");
        /* Every region is gone: its pages can be mapped again. */
        for (size_t k = 0; k < r->model.nregions && !r->failed; k++) {
            const hm_region *g = &r->model.regions[k];
            uintptr_t lo = g->base, hi = lo + g->npages * env.P;
            enum hm_probe p = HM_PROBE_FREE;
            if (!in_window(lo) && !in_window(hi - 1) && !(lo < env.wb && hi > env.wb)) {
                p = probe_outside(lo, hi);
            } else {
                for (uintptr_t a = lo; a < hi && p == HM_PROBE_FREE; a += env.P) {
                    if (!in_window(a))
                        p = probe_outside(a, a + env.P);
                    else if (hold(a, env.P))
                        env.ws[(a - env.wb) / env.P] = WS_HOLDER;
                    else
                        p = HM_PROBE_UNKNOWN;
                }
            }
            if (p != HM_PROBE_FREE)
                fail(r, "after hostmem_destroy the region [%#lx, %#lx) is still mapped (A3)",
                     (unsigned long)lo, (unsigned long)hi);
        }
        /* Give the window back its placeholders. */
        uintptr_t *bases = malloc((r->model.nregions + 1) * sizeof *bases);
        size_t *ends = malloc((r->model.nregions + 1) * sizeof *ends);
        size_t nr = r->model.nregions;
        for (size_t k = 0; k < nr; k++) {
            bases[k] = r->model.regions[k].base;
            ends[k] = bases[k] + r->model.regions[k].npages * env.P;
        }
        hm_model_fini(&r->model);
        for (size_t k = 0; k < nr; k++)
            refill(r, bases[k], ends[k]);
        free(bases);
        free(ends);
    } else {
        hm_model_fini(&r->model);
    }
    current = NULL;
    int res = r->failed;
    if (stats)
        *stats = r->stats;
    free(r);
    return res;
}
