/*
 * heap_ops.c: the heap (H1-H3) against a simple model, shared by
 * heap_random.c and the fuzz target.
 *
 * The model is a list of live blocks (address, size asked, usable size, fill
 * seed).  The bytes decode into allocations of every size (0, small, at the
 * class edges, large, impossible), at the three levels, debug allocations,
 * frees in any order, refused frees (interior, misaligned, never handed out,
 * second frees, the stack, the host's own region, the system heap), writes,
 * trims, and a host that commits and releases memory of its own beside the
 * heap (which drives the manager to Low and back under a limit).  After each
 * call: the HRESULT, *out; after every step: the heap's counters exactly (live
 * blocks and usable bytes from the model, committed and reserved bytes equal
 * to the manager's minus the host's); every few steps and at the end: every
 * block's contents and no two blocks overlapping.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hostmem/hostmem.h>

#include "ops.h"

#define MAX_LIVE 256
#define MAX_FREED 64
#define HOST_REGION ((size_t)1 << 20)

typedef struct block {
    unsigned char *p;
    size_t size, usable;
    uint8_t seed;
} block;

typedef struct hrun {
    const uint8_t *data;
    size_t size, at;
    const hm_run_opts *opts;
    hm_run_stats *stats;
    hostmem_manager *m;
    hostmem_malloc *h;
    size_t limit;
    block live[MAX_LIVE];
    size_t n;
    void *freed[MAX_FREED]; /* freed and not handed out since */
    size_t nfreed;
    char *host;             /* the host's own region: reserved, its first pages committed */
    size_t host_committed;
    int failed;
} hrun;

static uint8_t byte(hrun *r) { return r->at < r->size ? r->data[r->at++] : 0; }
static uint32_t u16(hrun *r) { return (uint32_t)byte(r) | (uint32_t)byte(r) << 8; }

static void bad(hrun *r, const char *fmt, ...)
{
    if (r->failed++)
        return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "heap model: step %zu: ", r->stats ? r->stats->steps : 0);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* The documented classes (docs/heap.md): 16-byte steps to 128, then four per
 * doubling to 16 KiB; above, the size itself. */
static size_t usable_of(size_t size)
{
    if (size > 16384)
        return size;
    if (size <= 128)
        return size ? (size + 15) & ~(size_t)15 : 16;
    size_t g = 128;
    while (g * 2 < size)
        g *= 2;
    size_t step = g / 4;
    return (size + step - 1) / step * step;
}

/* Contents: a window of one long pattern, chosen by the block's seed, so a
 * block is written and checked with memcpy / memcmp (fast under sanitizers). */
#define PATTERN_BYTES (16385 + 49152 + 256)
static unsigned char pattern[PATTERN_BYTES];

static void pattern_init(void)
{
    if (pattern[1])
        return;
    for (size_t k = 0; k < PATTERN_BYTES; k++)
        pattern[k] = (unsigned char)(k * 131 + (k >> 8) + 1);
}

static void fill(block *b)
{
    memcpy(b->p, pattern + b->seed, b->usable);
}

static void check_contents(hrun *r)
{
    for (size_t i = 0; i < r->n && !r->failed; i++) {
        block *b = &r->live[i];
        if (memcmp(b->p, pattern + b->seed, b->usable) != 0) {
            size_t k = 0;
            while (b->p[k] == pattern[b->seed + k])
                k++;
            bad(r, "block %p (%zu bytes) byte %zu changed", (void *)b->p, b->size, k);
        }
    }
}

static int by_address(const void *a, const void *b)
{
    const block *x = a, *y = b;
    return x->p < y->p ? -1 : x->p > y->p;
}

static void check_overlap(hrun *r)
{
    block sorted[MAX_LIVE];
    memcpy(sorted, r->live, r->n * sizeof *sorted);
    qsort(sorted, r->n, sizeof *sorted, by_address);
    for (size_t i = 1; i < r->n; i++)
        if (sorted[i - 1].p + sorted[i - 1].usable > sorted[i].p)
            bad(r, "blocks %p (+%zu) and %p overlap", (void *)sorted[i - 1].p, sorted[i - 1].usable,
                (void *)sorted[i].p);
}

static void check_stats(hrun *r)
{
    hostmem_malloc_stats hs;
    hostmem_stats ms;
    if (hostmem_malloc_get_stats(r->h, &hs) || hostmem_get_stats(r->m, &ms)) {
        bad(r, "stats refused");
        return;
    }
    size_t bytes = 0, large = 0;
    for (size_t i = 0; i < r->n; i++) {
        bytes += r->live[i].usable;
        large += r->live[i].size > 16384;
    }
    if (hs.live_blocks != r->n || hs.live_bytes != bytes || hs.large_blocks != large)
        bad(r, "heap counts %zu blocks / %zu bytes / %zu large, model %zu / %zu / %zu",
            (size_t)hs.live_blocks, (size_t)hs.live_bytes, (size_t)hs.large_blocks, r->n, bytes, large);
    size_t host_reserved = r->host ? HOST_REGION : 0;
    if (hs.committed_bytes != ms.committed_bytes - r->host_committed ||
        hs.reserved_bytes != ms.reserved_bytes - host_reserved)
        bad(r, "heap says %zu committed / %zu reserved, the manager %zu / %zu (host %zu / %zu)",
            (size_t)hs.committed_bytes, (size_t)hs.reserved_bytes, (size_t)ms.committed_bytes,
            (size_t)ms.reserved_bytes, r->host_committed, host_reserved);
}

static void forget_freed(hrun *r, void *p)
{
    for (size_t i = 0; i < r->nfreed; i++)
        if (r->freed[i] == p)
            r->freed[i] = r->freed[--r->nfreed];
}

static void expect(hrun *r, HRESULT got, HRESULT want, const char *what)
{
    r->stats->calls++;
    if (FAILED(got))
        r->stats->failures++;
    if (got != want)
        bad(r, "%s: %s, want %s", what, hostmem_hresult_name(got), hostmem_hresult_name(want));
}

/* A refused allocation is right only when a limit leaves no room for what it
 * may need: a span and a segment header, a cache chunk, or the block's region. */
static bool refusal_allowed(hrun *r, size_t size, EMemoryCriticalLevel level)
{
    if (size > ((size_t)1 << 47))
        return true;
    if (!r->limit)
        return false;
    hostmem_stats ms;
    hostmem_get_stats(r->m, &ms);
    size_t pct = level == eTaskCritical ? 90 : level == eAppDomainCritical ? 97 : 100;
    size_t ceiling = r->limit / 100 * pct + r->limit % 100 * pct / 100;
    size_t need = size > 16384 ? ((size + 64 + 4095) & ~(size_t)4095) : 68 * 1024;
    return ms.committed_bytes + need > ceiling;
}

static void op_alloc(hrun *r, size_t size, EMemoryCriticalLevel level, bool debug)
{
    void *p = (void *)0x1;
    HRESULT hr = debug ? hostmem_malloc_debug_alloc(r->h, size, level, "model.c", (int)size, &p)
                       : hostmem_malloc_alloc(r->h, size, level, &p);
    r->stats->calls++;
    if (r->opts->verbose)
        fprintf(stderr, "alloc(%zu, level %d) = %s %p\n", size, (int)level, hostmem_hresult_name(hr), p);
    if (FAILED(hr)) {
        r->stats->failures++;
        if (hr != E_OUTOFMEMORY || p != NULL || !refusal_allowed(r, size, level))
            bad(r, "alloc(%zu, level %d): %s, *out %p", size, (int)level, hostmem_hresult_name(hr), p);
        return;
    }
    if (!p || ((uintptr_t)p & 15)) {
        bad(r, "alloc(%zu) gave %p", size, p);
        return;
    }
    forget_freed(r, p);
    if (r->n == MAX_LIVE) {
        expect(r, hostmem_malloc_free(r->h, p), S_OK, "free of a block just made");
        return;
    }
    block *b = &r->live[r->n++];
    *b = (block){.p = p, .size = size, .usable = usable_of(size), .seed = (uint8_t)(size * 7 + r->n)};
    fill(b);
}

static void op_free(hrun *r, size_t i)
{
    block b = r->live[i];
    r->live[i] = r->live[--r->n];
    HRESULT hr = hostmem_malloc_free(r->h, b.p);
    if (r->opts->verbose)
        fprintf(stderr, "free(%p) = %s\n", (void *)b.p, hostmem_hresult_name(hr));
    expect(r, hr, S_OK, "free of a live block");
    if (r->nfreed < MAX_FREED)
        r->freed[r->nfreed++] = b.p;
}

static void op_bad_free(hrun *r, uint8_t kind, uint32_t pick)
{
    static int a_global;
    int on_stack = 0;
    void *p = NULL;
    char what[64];
    switch (kind % 6) {
    case 0: /* a second free */
        if (!r->nfreed)
            return;
        p = r->freed[pick % r->nfreed];
        snprintf(what, sizeof what, "second free of %p", p);
        break;
    case 1: /* inside a block */
        if (!r->n)
            return;
        {
            block *b = &r->live[pick % r->n];
            if (b->usable < 32)
                return;
            p = b->p + 16 * (1 + (pick >> 8) % (b->usable / 16 - 1));
            snprintf(what, sizeof what, "interior %p of %p", p, (void *)b->p);
        }
        break;
    case 2: /* misaligned */
        if (!r->n)
            return;
        p = r->live[pick % r->n].p + 1 + (pick >> 8) % 15;
        snprintf(what, sizeof what, "misaligned %p", p);
        break;
    case 3:
        p = (pick & 1) ? (void *)&on_stack : (void *)&a_global;
        snprintf(what, sizeof what, "stack or global %p", p);
        break;
    case 4: /* the host's region, committed or not */
        if (!r->host)
            return;
        p = r->host + (size_t)(pick % 256) * 4096;
        snprintf(what, sizeof what, "host region %p", p);
        break;
    default: /* the system heap */
        {
            void *sys = malloc(48);
            expect(r, hostmem_malloc_free(r->h, sys), E_INVALIDARG, "free of a malloc block");
            free(sys);
        }
        return;
    }
    expect(r, hostmem_malloc_free(r->h, p), E_INVALIDARG, what);
}

static void op_host(hrun *r, uint8_t how, uint32_t pages)
{
    void *got;
    if (!r->host) {
        expect(r, hostmem_virtual_alloc(r->m, NULL, HOST_REGION, MEM_RESERVE, PAGE_READWRITE, eTaskCritical, &got),
               S_OK, "host reserve");
        r->host = got;
        return;
    }
    if (how & 1) {
        size_t want = (size_t)(pages % 256 + 1) * 4096;
        HRESULT hr = hostmem_virtual_alloc(r->m, r->host, want, MEM_COMMIT, PAGE_READWRITE, eProcessCritical, &got);
        r->stats->calls++;
        if (SUCCEEDED(hr)) {
            if (want > r->host_committed)
                r->host_committed = want;
        } else {
            r->stats->failures++;
            if (hr != E_OUTOFMEMORY || !r->limit)
                bad(r, "host commit: %s", hostmem_hresult_name(hr));
        }
    } else {
        expect(r, hostmem_virtual_free(r->m, r->host, HOST_REGION, MEM_DECOMMIT), S_OK, "host decommit");
        r->host_committed = 0;
    }
}

static EMemoryCriticalLevel level_of(uint8_t b) { return (EMemoryCriticalLevel)(b % 3); }

int hm_heap_run(const uint8_t *data, size_t size, const hm_run_opts *opts, hm_run_stats *stats)
{
    hm_run_stats local = {0};
    pattern_init();
    hrun *r = calloc(1, sizeof *r);
    if (!r)
        return 1;
    *r = (hrun){.data = data, .size = size, .opts = opts, .stats = stats ? stats : &local};
    *r->stats = (hm_run_stats){0};
    uint8_t cfg = byte(r);
    hostmem_config c;
    hostmem_config_init(&c);
    static const size_t limits[4] = {0, 3u << 20, 8u << 20, 24u << 20};
    r->limit = c.commit_limit = limits[cfg & 3];
    if (hostmem_create(&c, &r->m) || hostmem_create_malloc(r->m, (cfg & 4) ? 0 : MALLOC_THREADSAFE, &r->h)) {
        fprintf(stderr, "heap model: cannot create the manager or the heap\n");
        hostmem_destroy(r->m);
        free(r);
        return 1;
    }
    while (r->at < r->size && !r->failed && (!opts->max_steps || r->stats->steps < opts->max_steps)) {
        uint8_t op = byte(r), a = byte(r);
        uint32_t v = u16(r);
        r->stats->steps++;
        switch (op % 16) {
        case 0: case 1: case 2: case 3:
            op_alloc(r, v % 1025, level_of(a), false); /* the busy small classes */
            break;
        case 4:
            op_alloc(r, v % 16385, level_of(a), a & 8);
            break;
        case 5: /* the class edges */
            op_alloc(r, usable_of(v % 16385) + (a & 1), level_of(a), false);
            break;
        case 6:
            op_alloc(r, 16385 + (size_t)v % 49152, level_of(a), a & 8);
            break;
        case 7:
            if (a == 0xff)
                op_alloc(r, SIZE_MAX - v, level_of(v), false);
            else
                op_alloc(r, 0, level_of(a), true);
            break;
        case 8: case 9: case 10: case 11:
            if (r->n)
                op_free(r, v % r->n);
            break;
        case 12:
            op_bad_free(r, a, v);
            break;
        case 13:
            if (r->n) { /* the host writes a block anew */
                block *b = &r->live[v % r->n];
                b->seed = a;
                fill(b);
            }
            break;
        case 14:
            op_host(r, a, v);
            break;
        default:
            expect(r, hostmem_malloc_trim(r->h), S_OK, "trim");
            break;
        }
        if (!r->failed)
            check_stats(r);
        if (!r->failed && r->stats->steps % 64 == 0) {
            check_contents(r);
            check_overlap(r);
        }
    }
    if (!r->failed) {
        check_contents(r);
        check_overlap(r);
    }
    while (r->n && !r->failed)
        op_free(r, r->n - 1);
    if (!r->failed)
        check_stats(r);
    hostmem_stats before;
    hostmem_get_stats(r->m, &before);
    hostmem_malloc_destroy(r->h);
    hostmem_stats after;
    hostmem_get_stats(r->m, &after);
    if (!r->failed && (after.committed_bytes != r->host_committed || after.region_count != (r->host ? 1u : 0u)))
        bad(r, "after destroy the manager holds %zu committed bytes in %zu regions (host: %zu)",
            (size_t)after.committed_bytes, (size_t)after.region_count, r->host_committed);
    hostmem_destroy(r->m);
    int failed = r->failed;
    free(r);
    return failed ? 1 : 0;
}
