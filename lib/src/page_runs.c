/*
 * page_runs.c: the state of a region's pages as runs.  A region keeps a sorted
 * array of (first page, state) with no two neighbours in the same state, so a
 * 1 TiB reservation with one committed block holds three entries.
 *
 * Writers hold the region's lock and the region's seqlock around
 * hostmem__runs_apply(); lock-free readers (query) load the array with atomic
 * loads and validate with the seqlock, so every access is an atomic one and a
 * reader that raced a writer reads stale but in-bounds memory.
 */
#include <errno.h>

#include "internal.h"

#define RELAXED memory_order_relaxed

static size_t runs_block_bytes(uint32_t cap) { return sizeof(hostmem__run_block) + (size_t)cap * sizeof(hostmem__run); }

static hostmem__run_block *runs_block_new(uint32_t cap)
{
    hostmem__run_block *b = hostmem__meta_alloc(runs_block_bytes(cap));
    if (b) {
        b->retired = NULL;
        b->cap = cap;
    }
    return b;
}

static hostmem__run runs_load(const hostmem__run_block *b, uint32_t i)
{
    return atomic_load_explicit(&b->v[i], RELAXED);
}

static void runs_store(hostmem__run_block *b, uint32_t i, hostmem__run r)
{
    atomic_store_explicit(&b->v[i], r, RELAXED);
}

int hostmem__runs_init(hostmem__runs *runs, uint32_t state)
{
    hostmem__run_block *b = atomic_load_explicit(&runs->block, RELAXED);
    if (!b) { /* a recycled region keeps its array */
        b = runs_block_new(4);
        if (!b)
            return ENOMEM;
    }
    runs_store(b, 0, HOSTMEM_RUN(0, state));
    atomic_store_explicit(&runs->n, 1, RELAXED);
    atomic_store_explicit(&runs->block, b, memory_order_release);
    return 0;
}

void hostmem__runs_free(hostmem__runs *runs)
{
    hostmem__run_block *b = atomic_load_explicit(&runs->block, RELAXED);
    while (b) {
        hostmem__run_block *older = b->retired;
        hostmem__meta_free(b, runs_block_bytes(b->cap));
        b = older;
    }
    atomic_store_explicit(&runs->block, NULL, RELAXED);
    atomic_store_explicit(&runs->n, 0, RELAXED);
}

int hostmem__runs_grow(hostmem__runs *runs, uint32_t extra)
{
    hostmem__run_block *b = atomic_load_explicit(&runs->block, RELAXED);
    uint32_t n = atomic_load_explicit(&runs->n, RELAXED);
    if ((uint64_t)n + extra <= b->cap)
        return 0;
    uint64_t cap = (uint64_t)b->cap * 2;
    if (cap < (uint64_t)n + extra)
        cap = (uint64_t)n + extra;
    if (cap > UINT32_MAX)
        return ENOMEM;
    hostmem__run_block *nb = runs_block_new((uint32_t)cap);
    if (!nb)
        return ENOMEM;
    for (uint32_t i = 0; i < n; i++)
        runs_store(nb, i, runs_load(b, i));
    nb->retired = b; /* kept: a reader may still hold `b` */
    atomic_store_explicit(&runs->block, nb, memory_order_release);
    return 0;
}

uint32_t hostmem__runs_room(const hostmem__runs *runs)
{
    hostmem__run_block *b = atomic_load_explicit(&((hostmem__runs *)runs)->block, RELAXED);
    uint32_t n = atomic_load_explicit(&((hostmem__runs *)runs)->n, RELAXED);
    return b->cap - n;
}

uint32_t hostmem__runs_at(const hostmem__runs *runs, size_t npages, size_t pos, size_t end, size_t *out_hi)
{
    size_t rf, rc;
    uint32_t st;
    hostmem__runs_get(runs, npages, hostmem__runs_find(runs, pos), &rf, &rc, &st);
    size_t hi = rf + rc < end ? rf + rc : end;
    *out_hi = hi > pos ? hi : end; /* a walk always moves on */
    return st;
}

uint32_t hostmem__runs_count(const hostmem__runs *runs)
{
    return atomic_load_explicit(&((hostmem__runs *)runs)->n, RELAXED);
}

/* Index of the last run whose first page is <= page.  Safe against a racing
 * writer: indices stay inside the block that was loaded. */
uint32_t hostmem__runs_find(const hostmem__runs *runs, size_t page)
{
    hostmem__run_block *b = atomic_load_explicit(&((hostmem__runs *)runs)->block, memory_order_acquire);
    uint32_t n = atomic_load_explicit(&((hostmem__runs *)runs)->n, RELAXED);
    if (n > b->cap)
        n = b->cap;
    uint32_t lo = 0, hi = n; /* answer in [lo, hi) */
    while (hi - lo > 1) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (HOSTMEM_RUN_FIRST(runs_load(b, mid)) <= page)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

void hostmem__runs_get(const hostmem__runs *runs, size_t npages, uint32_t i, size_t *out_first,
                       size_t *out_count, uint32_t *out_state)
{
    hostmem__run_block *b = atomic_load_explicit(&((hostmem__runs *)runs)->block, memory_order_acquire);
    uint32_t n = atomic_load_explicit(&((hostmem__runs *)runs)->n, RELAXED);
    if (n > b->cap)
        n = b->cap;
    if (i >= n) { /* only a racing reader gets here; its seqlock check fails */
        *out_first = npages;
        *out_count = 0;
        *out_state = 0;
        return;
    }
    hostmem__run r = runs_load(b, i);
    size_t first = HOSTMEM_RUN_FIRST(r);
    size_t end = i + 1 < n ? HOSTMEM_RUN_FIRST(runs_load(b, i + 1)) : npages;
    *out_first = first;
    *out_count = end > first ? end - first : 0;
    *out_state = HOSTMEM_RUN_STATE(r);
}

size_t hostmem__runs_pages(const hostmem__runs *runs, size_t npages, size_t first, size_t count,
                           uint32_t mask, uint32_t value)
{
    /* One pass over the runs the range meets, straight from the array loaded
     * once (the commit and decommit paths ask this on every call). */
    hostmem__run_block *b = atomic_load_explicit(&((hostmem__runs *)runs)->block, memory_order_acquire);
    uint32_t n = atomic_load_explicit(&((hostmem__runs *)runs)->n, RELAXED);
    if (n > b->cap)
        n = b->cap; /* only a racing reader; its seqlock check fails */
    size_t end = first + count, pages = 0;
    uint32_t i = hostmem__runs_find(runs, first);
    hostmem__run r = i < n ? runs_load(b, i) : 0;
    for (; i < n; i++) {
        size_t rf = HOSTMEM_RUN_FIRST(r);
        if (rf >= end)
            break;
        hostmem__run next = i + 1 < n ? runs_load(b, i + 1) : 0;
        size_t re = i + 1 < n ? HOSTMEM_RUN_FIRST(next) : npages;
        if ((HOSTMEM_RUN_STATE(r) & mask) == value) {
            size_t lo = rf > first ? rf : first, hi = re < end ? re : end;
            if (hi > lo)
                pages += hi - lo;
        }
        r = next;
    }
    return pages;
}

size_t hostmem__runs_bytes(const hostmem__runs *runs)
{
    size_t bytes = 0;
    for (hostmem__run_block *b = atomic_load_explicit(&((hostmem__runs *)runs)->block, RELAXED); b;
         b = b->retired)
        bytes += sizeof *b + (size_t)b->cap * sizeof(hostmem__run);
    return bytes;
}

static uint32_t runs_transform(uint32_t old, enum hostmem__page_op op, uint32_t state)
{
    switch (op) {
    case HOSTMEM_PAGES_COMMIT: /* committed pages keep their data, so their reset mark */
        return HOSTMEM_STATE_COMMITTED | (state & HOSTMEM_STATE_PROTECT_MASK) |
               ((old & HOSTMEM_STATE_COMMITTED) ? (old & HOSTMEM_STATE_RESET) : 0) |
               (old & HOSTMEM_STATE_WRITTEN);
    case HOSTMEM_PAGES_DECOMMIT: /* a written page stays written until a reset (W1) */
        return old & HOSTMEM_STATE_WRITTEN;
    case HOSTMEM_PAGES_MARK_WRITTEN:
        return old | HOSTMEM_STATE_WRITTEN;
    case HOSTMEM_PAGES_CLEAR_WRITTEN:
        return old & ~HOSTMEM_STATE_WRITTEN;
    case HOSTMEM_PAGES_UNGUARD:
        return (old & HOSTMEM_STATE_COMMITTED) ? (old & ~(uint32_t)PAGE_GUARD) : old;
    case HOSTMEM_PAGES_PROTECT:
        /* S11: the cache modifier belongs to the pages since their commit;
         * protect neither removes it nor adds one. */
        return (old & HOSTMEM_STATE_COMMITTED)
                   ? ((old & ~HOSTMEM_STATE_PROTECT_MASK) |
                      (state & HOSTMEM_STATE_PROTECT_MASK & ~HOSTMEM_STATE_CACHE_MASK) |
                      (old & HOSTMEM_STATE_CACHE_MASK))
                   : old;
    case HOSTMEM_PAGES_RESET:
        return (old & HOSTMEM_STATE_COMMITTED) ? (old | HOSTMEM_STATE_RESET) : old;
    case HOSTMEM_PAGES_SET:
    default:
        return state;
    }
}

/* Insert a run boundary at `page` inside run i (first(i) < page); returns i + 1. */
static uint32_t runs_split(hostmem__runs *runs, hostmem__run_block *b, uint32_t i, size_t page)
{
    uint32_t n = atomic_load_explicit(&runs->n, RELAXED);
    /* The caller made room (hostmem__runs_grow): never write past the block. */
    hostmem__assert(n < b->cap);
    for (uint32_t k = n; k > i + 1; k--)
        runs_store(b, k, runs_load(b, k - 1));
    runs_store(b, i + 1, HOSTMEM_RUN(page, HOSTMEM_RUN_STATE(runs_load(b, i))));
    atomic_store_explicit(&runs->n, n + 1, RELAXED);
    return i + 1;
}

void hostmem__runs_apply(hostmem__runs *runs, size_t npages, size_t first, size_t count,
                         enum hostmem__page_op op, uint32_t state)
{
    hostmem__run_block *b = atomic_load_explicit(&runs->block, RELAXED);
    size_t end = first + count;
    if (!count)
        return;
    uint32_t i0 = hostmem__runs_find(runs, first);
    if (HOSTMEM_RUN_FIRST(runs_load(b, i0)) < first)
        i0 = runs_split(runs, b, i0, first);
    uint32_t k; /* first run at or past `end` */
    if (end < npages) {
        /* The run holding `end`, walking on from i0: the runs in between are
         * transformed below anyway, so this costs no more than that loop. */
        uint32_t j = i0, n0 = atomic_load_explicit(&runs->n, RELAXED);
        while (j + 1 < n0 && HOSTMEM_RUN_FIRST(runs_load(b, j + 1)) <= end)
            j++;
        k = HOSTMEM_RUN_FIRST(runs_load(b, j)) < end ? runs_split(runs, b, j, end) : j;
    } else {
        k = atomic_load_explicit(&runs->n, RELAXED);
    }
    for (uint32_t i = i0; i < k; i++) {
        hostmem__run r = runs_load(b, i);
        runs_store(b, i, HOSTMEM_RUN(HOSTMEM_RUN_FIRST(r), runs_transform(HOSTMEM_RUN_STATE(r), op, state)));
    }
    /* Canonical again: drop every run in [max(i0,1), k] equal to its predecessor. */
    uint32_t n = atomic_load_explicit(&runs->n, RELAXED);
    uint32_t lo = i0 ? i0 : 1, hi = k < n ? k + 1 : n, out = lo;
    for (uint32_t i = lo; i < hi; i++) {
        hostmem__run r = runs_load(b, i);
        if (HOSTMEM_RUN_STATE(r) != HOSTMEM_RUN_STATE(runs_load(b, out - 1)))
            runs_store(b, out++, r);
    }
    if (out != hi) {
        for (uint32_t i = hi; i < n; i++)
            runs_store(b, out++, runs_load(b, i));
        atomic_store_explicit(&runs->n, out, RELAXED);
    }
    /* The runs before i0 and after the compacted window only moved as a
     * block: checking the window keeps a checkerboard of 30,000 runs linear. */
    hostmem__assert(hostmem__runs_canonical_near(runs, npages, i0 > 2 ? i0 - 2 : 0, out + 2));
}

bool hostmem__runs_canonical(const hostmem__runs *runs, size_t npages)
{
    return hostmem__runs_canonical_near(runs, npages, 0, UINT32_MAX);
}

bool hostmem__runs_canonical_near(const hostmem__runs *runs, size_t npages, uint32_t from, uint32_t to)
{
    const hostmem__run_block *b = atomic_load_explicit(&((hostmem__runs *)runs)->block, RELAXED);
    uint32_t n = atomic_load_explicit(&((hostmem__runs *)runs)->n, RELAXED);
    if (!b || n == 0 || n > b->cap || HOSTMEM_RUN_FIRST(runs_load(b, 0)) != 0 ||
        HOSTMEM_RUN_FIRST(runs_load(b, n - 1)) >= npages)
        return false;
    if (to > n)
        to = n;
    for (uint32_t i = from ? from : 1; i < to; i++) {
        hostmem__run prev = runs_load(b, i - 1), r = runs_load(b, i);
        if (HOSTMEM_RUN_FIRST(r) <= HOSTMEM_RUN_FIRST(prev) || HOSTMEM_RUN_FIRST(r) >= npages ||
            HOSTMEM_RUN_STATE(r) == HOSTMEM_RUN_STATE(prev))
            return false;
    }
    return true;
}
