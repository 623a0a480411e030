/* region_map.c against a list of intervals, on random insert/remove sequences
 * over small and very large ranges. */
#include <criterion/criterion.h>
#include <stdlib.h>

#include "internal.h"

#define G HOSTMEM_GRANULE
#define MAX_LIVE 64

typedef struct interval {
    uintptr_t lo, hi, value;
} interval;

static uintptr_t model_lookup(const interval *iv, size_t n, uintptr_t addr)
{
    for (size_t i = 0; i < n; i++)
        if (addr >= iv[i].lo && addr < iv[i].hi)
            return iv[i].value;
    return 0;
}

static bool overlaps(const interval *iv, size_t n, uintptr_t lo, uintptr_t hi)
{
    for (size_t i = 0; i < n; i++)
        if (lo < iv[i].hi && iv[i].lo < hi)
            return true;
    return false;
}

/* First / last granule of [lo, hi) inside some interval (granule-aligned lo, hi). */
static bool model_find(const interval *iv, size_t n, uintptr_t lo, uintptr_t hi, bool forward, uintptr_t *out)
{
    bool found = false;
    for (size_t i = 0; i < n; i++) {
        uintptr_t a = iv[i].lo > lo ? iv[i].lo : lo, b = iv[i].hi < hi ? iv[i].hi : hi;
        if (a >= b)
            continue;
        uintptr_t cand = forward ? a : b - G;
        if (!found || (forward ? cand < *out : cand > *out))
            *out = cand;
        found = true;
    }
    return found;
}

static uint64_t rnd64(void) { return ((uint64_t)rand() << 33) ^ ((uint64_t)rand() << 10) ^ (uint64_t)rand(); }

static void probe(const hostmem__map *map, const interval *iv, size_t n, uintptr_t addr, unsigned seed, int step)
{
    if (addr >= ((uintptr_t)1 << HOSTMEM_VA_BITS))
        return;
    cr_assert_eq(hostmem__map_lookup(map, addr), model_lookup(iv, n, addr),
                 "seed %u step %d: lookup(%#lx)", seed, step, (unsigned long)addr);
}

Test(region_map, random_sequences_match_the_interval_list)
{
    for (unsigned seed = 1; seed <= 10; seed++) {
        srand(seed);
        hostmem__map map;
        hostmem__map_init(&map);
        interval iv[MAX_LIVE];
        size_t n = 0;
        for (int step = 0; step < 3000; step++) {
            if (n && (n == MAX_LIVE || rand() % 3 == 0)) {
                size_t k = (size_t)rand() % n;
                hostmem__map_set(&map, iv[k].lo, iv[k].hi, 0);
                iv[k] = iv[--n];
            } else {
                /* Sizes from one granule to 2^40 bytes, anywhere in 2^47, some
                 * clustered so that they share nodes. */
                int kind = rand() % 4;
                uint64_t granules = kind == 0 ? 1 + rnd64() % 4
                                    : kind == 1 ? 1 + rnd64() % 600
                                    : kind == 2 ? 1 + rnd64() % 70000
                                                : 1 + rnd64() % ((uint64_t)1 << 24);
                uint64_t window = rand() % 2 ? ((uint64_t)1 << 31) : ((uint64_t)1 << 20);
                uint64_t g0 = rnd64() % window;
                if (g0 + granules > ((uint64_t)1 << 31))
                    continue;
                uintptr_t lo = (uintptr_t)g0 * G, hi = (uintptr_t)(g0 + granules) * G;
                if (overlaps(iv, n, lo, hi))
                    continue;
                cr_assert_eq(hostmem__map_prepare(&map, lo, hi), 0);
                uintptr_t value = ((uintptr_t)(step + 1) << 3) | (rand() % 2 ? HOSTMEM_MAP_TAG_REGION : HOSTMEM_MAP_TAG_ARENA);
                hostmem__map_set(&map, lo, hi, value);
                iv[n++] = (interval){lo, hi, value};
            }
            /* Boundaries of every live interval, and random addresses. */
            for (size_t i = 0; i < n; i++) {
                probe(&map, iv, n, iv[i].lo, seed, step);
                probe(&map, iv, n, iv[i].lo - 1, seed, step);
                probe(&map, iv, n, iv[i].hi - 1, seed, step);
                probe(&map, iv, n, iv[i].hi, seed, step);
                probe(&map, iv, n, iv[i].lo + (iv[i].hi - iv[i].lo) / 2, seed, step);
            }
            for (int k = 0; k < 8; k++)
                probe(&map, iv, n, (uintptr_t)(rnd64() % ((uint64_t)1 << 47)), seed, step);
            for (int k = 0; k < 4; k++) {
                uintptr_t lo = (uintptr_t)(rnd64() % ((uint64_t)1 << 31)) * G;
                uintptr_t hi = lo + (uintptr_t)(1 + rnd64() % ((uint64_t)1 << (k * 8 + 4))) * G;
                if (hi > ((uintptr_t)1 << 47))
                    hi = (uintptr_t)1 << 47;
                if (k == 3 && n) { /* around a live interval */
                    lo = iv[0].lo - G * (rnd64() % 3);
                    hi = iv[0].hi + G * (rnd64() % 3);
                }
                for (int dir = 0; dir < 2; dir++) {
                    uintptr_t got = 0, want = 0;
                    bool f = hostmem__map_find(&map, lo, hi, dir, &got);
                    bool w = model_find(iv, n, lo, hi, dir, &want);
                    cr_assert_eq(f, w, "seed %u step %d: find(%#lx, %#lx, %d) found", seed, step,
                                 (unsigned long)lo, (unsigned long)hi, dir);
                    if (f)
                        cr_assert_eq(got, want, "seed %u step %d: find(%#lx, %#lx, %d)", seed, step,
                                     (unsigned long)lo, (unsigned long)hi, dir);
                }
            }
        }
        hostmem__map_fini(&map);
    }
}

Test(region_map, a_terabyte_costs_a_few_nodes)
{
    hostmem__map map;
    hostmem__map_init(&map);
    uintptr_t lo = (uintptr_t)0x12345 * G, hi = lo + ((uintptr_t)1 << 40);
    cr_assert_eq(hostmem__map_prepare(&map, lo, hi), 0);
    hostmem__map_set(&map, lo, hi, 0x1000 | HOSTMEM_MAP_TAG_REGION);
    cr_assert_leq(map.node_count, 6, "%zu nodes", map.node_count);
    cr_assert_eq(hostmem__map_lookup(&map, lo), 0x1000 | HOSTMEM_MAP_TAG_REGION);
    cr_assert_eq(hostmem__map_lookup(&map, hi - 1), 0x1000 | HOSTMEM_MAP_TAG_REGION);
    cr_assert_eq(hostmem__map_lookup(&map, hi), 0);
    cr_assert_eq(hostmem__map_lookup(&map, lo - 1), 0);
    hostmem__map_fini(&map);
}

/* Summaries (types.h): a leaf pairs each entry with one; a region inside one
 * leaf finds its words, and every store of an entry clears the summary first,
 * so none outlives the entry it was written for. */
Test(region_map, summaries_live_in_leaves_and_go_with_their_entries)
{
    hostmem__map map;
    hostmem__map_init(&map);
    uintptr_t leaf = (uintptr_t)0x4321 << 8; /* a leaf's first granule */
    uintptr_t lo = (leaf + 10) * G, hi = lo + 3 * G, region = 0x2000 | HOSTMEM_MAP_TAG_REGION;
    uintptr_t arena = 0x3000 | HOSTMEM_MAP_TAG_ARENA, e = 1;
    cr_assert_eq(hostmem__map_prepare(&map, lo, hi), 0);
    hostmem__map_set(&map, lo, hi, region);
    _Atomic uint64_t *s = hostmem__map_summaries(&map, lo, hi);
    cr_assert_not_null(s);
    cr_assert_eq(hostmem__map_summary(&map, lo + G, &e), 0, "no summary until one is written");
    cr_assert_eq(e, region);
    for (int i = 0; i < 3; i++)
        atomic_store(&s[2 * i], (uint64_t)0x77 + i);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(hostmem__map_summary(&map, lo + i * G + 123, &e), (uint64_t)0x77 + i);
        cr_assert_eq(hostmem__map_lookup(&map, lo + i * G), region, "the entry is unchanged");
    }
    cr_assert_eq(hostmem__map_summary(&map, hi, &e), 0);
    cr_assert_eq(e, 0);
    /* Replaced (a region going back to its arena) and cleared: no summary left. */
    hostmem__map_set(&map, lo, lo + G, arena);
    cr_assert_eq(hostmem__map_summary(&map, lo, &e), 0);
    cr_assert_eq(e, arena);
    hostmem__map_clear(&map, lo, hi, region);
    for (int i = 1; i < 3; i++) {
        cr_assert_eq(hostmem__map_summary(&map, lo + i * G, &e), 0);
        cr_assert_eq(e, 0);
    }
    /* Across two leaves, or one whole-span entry above the leaves: none. */
    cr_assert_null(hostmem__map_summaries(&map, (leaf + 250) * G, (leaf + 260) * G));
    uintptr_t span_lo = (leaf + 512) * G, span_hi = span_lo + 256 * G;
    cr_assert_eq(hostmem__map_prepare(&map, span_lo, span_hi), 0);
    hostmem__map_set(&map, span_lo, span_hi, region);
    cr_assert_null(hostmem__map_summaries(&map, span_lo, span_hi));
    cr_assert_eq(hostmem__map_summary(&map, span_lo + 5 * G, &e), 0);
    cr_assert_eq(e, region);
    hostmem__map_fini(&map);
}
