/*
 * region_map.c: address -> region, a radix tree over granule numbers.
 *
 * 47 bits of address space in 64 KiB granules is 31 bits: a root of 128
 * entries and three levels of 256.  An entry holds a child node or a tagged
 * value (region or arena) that covers the entry's whole span, so a region
 * costs at most two partial paths plus a row of whole-span entries, however
 * large it is.  Lookups are four dependent atomic loads and take no lock;
 * writers hold the manager's state lock.  Nodes are never freed before the
 * map is, so a reader never follows a pointer into freed memory.
 *
 * A leaf (the last level, one granule per entry) pairs each entry with a
 * summary word in the same 16 bytes: nonzero, it describes the region the
 * entry names completely (region.c writes it, query.c answers from it), so
 * a query of such a region reads one cache line of the map and nothing else.
 * Every store of an entry here clears its summary first: a summary never
 * outlives the entry it was written for.
 */
#include <errno.h>
#include <string.h>

#include "internal.h"

#define LEVELS 4
static const unsigned shift_of[LEVELS] = {24, 16, 8, 0}; /* granule bits below each level */
static const unsigned fanout_of[LEVELS] = {128, 256, 256, 256};

#define LEAF (LEVELS - 1)
_Static_assert(sizeof(uintptr_t) == sizeof(uint64_t), "a summary is one map word");

static bool map_is_node(uintptr_t e) { return e && !(e & HOSTMEM_MAP_TAG_MASK); }

/* Entry i of a node of level lv: leaves interleave entries and summaries. */
static _Atomic uintptr_t *map_entry(_Atomic uintptr_t *slot, unsigned lv, uint64_t i)
{
    return lv == LEAF ? &slot[2 * i] : &slot[i];
}
static const _Atomic uintptr_t *map_entry_c(const _Atomic uintptr_t *slot, unsigned lv, uint64_t i)
{
    return lv == LEAF ? &slot[2 * i] : &slot[i];
}

/* Store an entry; in a leaf its summary goes first (see the top of the file). */
static void map_store(_Atomic uintptr_t *slot, unsigned lv, uint64_t i, uintptr_t value)
{
    _Atomic uintptr_t *e = map_entry(slot, lv, i);
    if (lv == LEAF && atomic_load_explicit(&e[1], memory_order_relaxed))
        atomic_store_explicit(&e[1], 0, memory_order_release);
    atomic_store_explicit(e, value, memory_order_release);
}

static size_t map_node_bytes(bool leaf) { return leaf ? sizeof(hostmem__map_leaf) : sizeof(hostmem__map_node); }

int hostmem__map_init(hostmem__map *map)
{
    for (unsigned i = 0; i < 128; i++)
        atomic_init(&map->root[i], 0);
    map->nodes = NULL;
    map->node_count = map->node_cap = map->leaf_count = 0;
    return 0;
}

void hostmem__map_fini(hostmem__map *map)
{
    for (size_t i = 0; i < map->node_count; i++) {
        uintptr_t n = map->nodes[i]; /* bit 0: a leaf */
        hostmem__meta_free((void *)(n & ~(uintptr_t)1), map_node_bytes(n & 1));
    }
    hostmem__meta_free(map->nodes, map->node_cap * sizeof *map->nodes);
    map->nodes = NULL;
    map->node_count = map->node_cap = map->leaf_count = 0;
}

size_t hostmem__map_bytes(const hostmem__map *map)
{
    return sizeof *map + (map->node_count - map->leaf_count) * sizeof(hostmem__map_node) +
           map->leaf_count * sizeof(hostmem__map_leaf) + map->node_cap * sizeof *map->nodes;
}

/* A node of level lv whose every entry reads `fill` (and no summary):
 * installing it changes no lookup. */
static _Atomic uintptr_t *map_node_new(hostmem__map *map, unsigned lv, uintptr_t fill)
{
    bool leaf = lv == LEAF;
    if (map->node_count == map->node_cap) {
        size_t cap = map->node_cap ? map->node_cap * 2 : 16;
        uintptr_t *nodes = hostmem__meta_alloc(cap * sizeof *nodes);
        if (!nodes)
            return NULL;
        if (map->node_count)
            memcpy(nodes, map->nodes, map->node_count * sizeof *nodes);
        hostmem__meta_free(map->nodes, map->node_cap * sizeof *nodes);
        map->nodes = nodes;
        map->node_cap = cap;
    }
    _Atomic uintptr_t *n = hostmem__meta_alloc(map_node_bytes(leaf)); /* zeroed: no summary */
    if (!n)
        return NULL;
    for (unsigned i = 0; i < 256; i++)
        atomic_init(map_entry(n, lv, i), fill);
    map->nodes[map->node_count++] = (uintptr_t)n | leaf;
    map->leaf_count += leaf;
    return n;
}

/* The entries [*first, *last] of a node (level `lv`, first granule `g0`) that
 * overlap granules [lo, hi). */
static void map_entries_of(unsigned lv, uint64_t g0, uint64_t lo, uint64_t hi, uint64_t *first,
                       uint64_t *last)
{
    *first = lo > g0 ? (lo - g0) >> shift_of[lv] : 0;
    *last = (hi - 1 - g0) >> shift_of[lv];
    if (*last >= fanout_of[lv])
        *last = fanout_of[lv] - 1;
}

/* Make nodes where a set of [lo, hi) will cover part of an entry's span. */
static int map_prepare_node(hostmem__map *map, _Atomic uintptr_t *slot, unsigned lv, uint64_t g0,
                   uint64_t lo, uint64_t hi)
{
    uint64_t span = (uint64_t)1 << shift_of[lv], first, last;
    map_entries_of(lv, g0, lo, hi, &first, &last);
    for (uint64_t i = first; i <= last; i++) {
        uint64_t s = g0 + i * span, e = s + span;
        if (s >= lo && e <= hi)
            continue; /* whole span: map_fill() stores a value, no node needed */
        uintptr_t cur = atomic_load_explicit(map_entry(slot, lv, i), memory_order_relaxed);
        _Atomic uintptr_t *child = (_Atomic uintptr_t *)cur;
        if (!map_is_node(cur)) {
            child = map_node_new(map, lv + 1, cur);
            if (!child)
                return ENOMEM;
            map_store(slot, lv, i, (uintptr_t)child); /* lv < LEAF: no summary there */
        }
        int err = map_prepare_node(map, child, lv + 1, s, lo > s ? lo : s, hi < e ? hi : e);
        if (err)
            return err;
    }
    return 0;
}

static void map_fill(_Atomic uintptr_t *slot, unsigned lv, uint64_t g0, uint64_t lo, uint64_t hi,
                     uintptr_t value)
{
    uint64_t span = (uint64_t)1 << shift_of[lv], first, last;
    map_entries_of(lv, g0, lo, hi, &first, &last);
    for (uint64_t i = first; i <= last; i++) {
        uint64_t s = g0 + i * span, e = s + span;
        uintptr_t cur = atomic_load_explicit(map_entry(slot, lv, i), memory_order_relaxed);
        if (map_is_node(cur)) /* keep the node (no orphans to reclaim): fill it */
            map_fill((_Atomic uintptr_t *)cur, lv + 1, s, lo > s ? lo : s, hi < e ? hi : e, value);
        else /* whole span (map_prepare_node() made nodes for every partial one) */
            map_store(slot, lv, i, value);
    }
}

static void map_empty(_Atomic uintptr_t *slot, unsigned lv, uint64_t g0, uint64_t lo, uint64_t hi,
                      uintptr_t value)
{
    uint64_t span = (uint64_t)1 << shift_of[lv], first, last;
    map_entries_of(lv, g0, lo, hi, &first, &last);
    for (uint64_t i = first; i <= last; i++) {
        uint64_t s = g0 + i * span, e = s + span;
        uintptr_t cur = atomic_load_explicit(map_entry(slot, lv, i), memory_order_relaxed);
        if (map_is_node(cur))
            map_empty((_Atomic uintptr_t *)cur, lv + 1, s, lo > s ? lo : s, hi < e ? hi : e, value);
        else if (cur == value) /* a whole-span entry of value lies inside [lo, hi) */
            map_store(slot, lv, i, 0);
    }
}

int hostmem__map_prepare(hostmem__map *map, uintptr_t lo, uintptr_t hi)
{
    return map_prepare_node(map, map->root, 0, 0, lo >> HOSTMEM_GRANULE_SHIFT, hi >> HOSTMEM_GRANULE_SHIFT);
}

void hostmem__map_set(hostmem__map *map, uintptr_t lo, uintptr_t hi, uintptr_t value)
{
    map_fill(map->root, 0, 0, lo >> HOSTMEM_GRANULE_SHIFT, hi >> HOSTMEM_GRANULE_SHIFT, value);
}

void hostmem__map_clear(hostmem__map *map, uintptr_t lo, uintptr_t hi, uintptr_t value)
{
    map_empty(map->root, 0, 0, lo >> HOSTMEM_GRANULE_SHIFT, hi >> HOSTMEM_GRANULE_SHIFT, value);
}

uintptr_t hostmem__map_lookup(const hostmem__map *map, uintptr_t addr)
{
    /* Unrolled: this is most of a query's cost. */
    uint64_t g = addr >> HOSTMEM_GRANULE_SHIFT;
    if (g >> 31)
        return 0; /* above the mapped address space */
    uintptr_t e = atomic_load_explicit(&map->root[g >> 24], memory_order_acquire);
    if (!map_is_node(e))
        return e;
    e = atomic_load_explicit(&((const _Atomic uintptr_t *)e)[(g >> 16) & 255], memory_order_acquire);
    if (!map_is_node(e))
        return e;
    e = atomic_load_explicit(&((const _Atomic uintptr_t *)e)[(g >> 8) & 255], memory_order_acquire);
    if (!map_is_node(e))
        return e;
    return atomic_load_explicit(&((const _Atomic uintptr_t *)e)[2 * (g & 255)], memory_order_acquire);
}

uint64_t hostmem__map_summary(const hostmem__map *map, uintptr_t addr, uintptr_t *entry)
{
    uint64_t g = addr >> HOSTMEM_GRANULE_SHIFT;
    if (g >> 31) {
        *entry = 0;
        return 0;
    }
    uintptr_t e = atomic_load_explicit(&map->root[g >> 24], memory_order_acquire);
    if (map_is_node(e))
        e = atomic_load_explicit(&((const _Atomic uintptr_t *)e)[(g >> 16) & 255], memory_order_acquire);
    if (map_is_node(e))
        e = atomic_load_explicit(&((const _Atomic uintptr_t *)e)[(g >> 8) & 255], memory_order_acquire);
    if (!map_is_node(e)) {
        *entry = e;
        return 0; /* a whole-span entry above the leaves: no summary */
    }
    const _Atomic uintptr_t *pair = &((const _Atomic uintptr_t *)e)[2 * (g & 255)];
    uint64_t sum = atomic_load_explicit(&pair[1], memory_order_acquire);
    *entry = sum ? 0 : atomic_load_explicit(&pair[0], memory_order_acquire);
    return sum;
}

_Atomic uint64_t *hostmem__map_summaries(hostmem__map *map, uintptr_t lo, uintptr_t hi)
{
    uint64_t glo = lo >> HOSTMEM_GRANULE_SHIFT, ghi = hi >> HOSTMEM_GRANULE_SHIFT;
    if (ghi <= glo || ghi > ((uint64_t)1 << 31) || glo >> 8 != (ghi - 1) >> 8)
        return NULL; /* not inside one leaf */
    uintptr_t e = atomic_load_explicit(&map->root[glo >> 24], memory_order_relaxed);
    if (map_is_node(e))
        e = atomic_load_explicit(&((_Atomic uintptr_t *)e)[(glo >> 16) & 255], memory_order_relaxed);
    if (map_is_node(e))
        e = atomic_load_explicit(&((_Atomic uintptr_t *)e)[(glo >> 8) & 255], memory_order_relaxed);
    if (!map_is_node(e))
        return NULL; /* one whole-span entry above the leaves */
    return &((_Atomic uintptr_t *)e)[2 * (glo & 255) + 1];
}

/* The first (or last) non-empty granule of [lo, hi) under one node. */
static bool map_search(const _Atomic uintptr_t *slot, unsigned lv, uint64_t g0, uint64_t lo, uint64_t hi,
                   bool forward, uint64_t *out)
{
    uint64_t span = (uint64_t)1 << shift_of[lv], first, last;
    map_entries_of(lv, g0, lo, hi, &first, &last);
    for (uint64_t k = 0; k <= last - first; k++) {
        uint64_t i = forward ? first + k : last - k;
        uintptr_t e = atomic_load_explicit(map_entry_c(slot, lv, i), memory_order_acquire);
        if (!e)
            continue;
        uint64_t s = g0 + i * span, e_end = s + span;
        uint64_t clo = lo > s ? lo : s, chi = hi < e_end ? hi : e_end;
        if (!map_is_node(e)) {
            *out = forward ? clo : chi - 1;
            return true;
        }
        if (map_search((const _Atomic uintptr_t *)e, lv + 1, s, clo, chi, forward, out))
            return true;
    }
    return false;
}

bool hostmem__map_find(const hostmem__map *map, uintptr_t lo, uintptr_t hi, bool forward,
                       uintptr_t *out)
{
    uint64_t glo = lo >> HOSTMEM_GRANULE_SHIFT, ghi = (hi + HOSTMEM_GRANULE - 1) >> HOSTMEM_GRANULE_SHIFT;
    if (ghi > ((uint64_t)1 << 31))
        ghi = (uint64_t)1 << 31;
    uint64_t g;
    if (glo >= ghi || !map_search(map->root, 0, 0, glo, ghi, forward, &g))
        return false;
    *out = (uintptr_t)g << HOSTMEM_GRANULE_SHIFT;
    return true;
}
