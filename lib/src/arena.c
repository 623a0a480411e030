/*
 * arena.c: address space the manager already holds, for small regions.
 *
 * Reserving 64 KiB costs an mmap and its release a munmap, over 2 us for the
 * pair.  Instead the manager maps arenas of 512 granules (inaccessible, not
 * charged) and carves regions of up to 1 MiB out of them with no syscall.
 * A released region's pages are decommitted (so they read zero and are no
 * longer charged) before its granules return to the arena.  Free arena
 * granules belong to nobody as far as the contract goes: query reports them
 * MEM_FREE and a reservation at such an address is carved from the arena.
 *
 * Everything here runs under the manager's state lock, except the mmap of a
 * new arena, for which the lock is dropped.
 */
#include <errno.h>
#include <sched.h>

#include "internal.h"

#define ARENA_BYTES ((size_t)HOSTMEM_ARENA_GRANULES * HOSTMEM_GRANULE)

static bool granule_used(const hostmem__arena *a, uint32_t g)
{
    return (atomic_load_explicit(&a->used[g / 64], memory_order_relaxed) >> (g % 64)) & 1;
}

void hostmem__arena_mark(hostmem__arena *a, uintptr_t lo, uintptr_t hi, bool used)
{
    uint32_t g0 = (uint32_t)((lo - a->base) >> HOSTMEM_GRANULE_SHIFT);
    uint32_t g1 = (uint32_t)((hi - a->base) >> HOSTMEM_GRANULE_SHIFT);
    for (uint32_t g = g0; g < g1; g++) {
        uint64_t bit = (uint64_t)1 << (g % 64);
        if (used)
            atomic_fetch_or_explicit(&a->used[g / 64], bit, memory_order_relaxed);
        else
            atomic_fetch_and_explicit(&a->used[g / 64], ~bit, memory_order_relaxed);
    }
    if (used) {
        a->free_granules -= g1 - g0;
        if (a->hint >= g0 && a->hint < g1)
            a->hint = g1;
    } else {
        a->free_granules += g1 - g0;
        if (g0 < a->hint)
            a->hint = g0;
    }
}

/* First fit from the hint: the lowest free granule is usually the answer. */
static bool arena_find(const hostmem__arena *a, uint32_t granules, uint32_t *out)
{
    uint32_t run = 0;
    for (uint32_t g = a->hint; g < HOSTMEM_ARENA_GRANULES; g++) {
        if (!run && g % 64 == 0 &&
            atomic_load_explicit(&a->used[g / 64], memory_order_relaxed) == UINT64_MAX) {
            g += 63; /* a full word */
            continue;
        }
        run = granule_used(a, g) ? 0 : run + 1;
        if (run == granules) {
            *out = g + 1 - granules;
            return true;
        }
    }
    return false;
}

/* No room for the slack of an over-reservation (RLIMIT_AS, a crowded address
 * space): a mapping of exactly `size` may still fit.  The kernel places it
 * where it likes; if that is not aligned, try aligned places around it,
 * nearest first, never over anything mapped (os->reserve at an address
 * refuses an overlap).  The kernel may have put it in a hole just its size
 * between two mappings, where neither aligned neighbour fits: so the search
 * goes on outwards a slot (the size, aligned) at a time, up to EXACT_REACH
 * slots either side, then doubling the distance; each try is one syscall that
 * fails at once on an occupied range.  ENOMEM when none works. */
#define EXACT_REACH 64 /* slots tried one by one either side */
#define EXACT_FAR 34   /* then 2 x 64 .. 2^34 x 64 slots away, doubling */

static int reserve_exact_aligned(size_t size, size_t align, uintptr_t *out, bool *lost)
{
    const hostmem__os *os = hostmem__os_get();
    void *p;
    int err = os->reserve(NULL, size, &p);
    if (err)
        return err;
    uintptr_t at = (uintptr_t)p;
    /* (sizes are below the top of user space, 2^47 or 2^56: no product wraps) */
    uintptr_t slot = (size + align - 1) & ~(uintptr_t)(align - 1), reach = (EXACT_REACH + 1) * slot;
    /* Every address tried below lies within the reach of it (S9). */
    hostmem__inflight_span(at > reach ? at - reach : 1, at + size + reach);
    if (!(at & (align - 1))) {
        *out = at;
        return 0;
    }
    if ((err = os->release(p, size))) {
        *lost = true;
        return err;
    }
    uintptr_t down = at & ~(uintptr_t)(align - 1), up = down + align;
    /* Near it, a slot at a time; then, if that is all taken (the kernel often
     * finds its hole among the segments of the loaded libraries), ever
     * further, doubling, until free space (above the libraries, below them,
     * up to the heap, there is plenty). */
    for (unsigned k = 0; k <= EXACT_REACH + EXACT_FAR; k++) {
        uintptr_t step = k <= EXACT_REACH ? k * slot : EXACT_REACH * slot << (k - EXACT_REACH);
        if (k == EXACT_REACH + 1)
            hostmem__inflight_span(1, UINTPTR_MAX); /* anywhere, now */
        uintptr_t tries[2] = {down >= step ? down - step : 0, up + step >= up ? up + step : 0};
        for (int i = 0; i < 2; i++) {
            if (!tries[i] || tries[i] + size < tries[i])
                continue;
            if (!os->reserve((void *)tries[i], size, &p)) {
                *out = (uintptr_t)p;
                return 0;
            }
        }
    }
    return ENOMEM;
}

int hostmem__reserve_aligned(size_t size, size_t align, uintptr_t *out, bool *lost)
{
    const hostmem__os *os = hostmem__os_get();
    size_t page = hostmem__os_caps_get()->page_size;
    size_t span = size + align - page;
    *lost = false;
    if (span < size)
        return ENOMEM;
    void *p;
    int err = os->reserve(NULL, span, &p);
    if (err == ENOMEM && span > size)
        return reserve_exact_aligned(size, align, out, lost);
    if (err)
        return err;
    hostmem__inflight_span((uintptr_t)p, (uintptr_t)p + span); /* trims included */
    uintptr_t start = (uintptr_t)p, end = start + span;
    uintptr_t base = (start + align - 1) & ~(uintptr_t)(align - 1);
    if (base > start && (err = os->release(p, base - start))) {
        /* Nothing trimmed yet: give the whole span back. */
        *lost = os->release(p, span) != 0;
        return err;
    }
    if (end > base + size && (err = os->release((void *)(base + size), end - base - size))) {
        /* The head is gone already: give back what is left, [base, end). */
        *lost = os->release((void *)base, end - base) != 0;
        return err;
    }
    *out = base;
    return 0;
}

int hostmem__arena_carve(struct hostmem_manager *m, uint32_t granules, uintptr_t *out_base,
                         hostmem__arena **out_arena, bool *lost)
{
    *lost = false;
    for (hostmem__arena *a = m->arenas; a; a = a->next) {
        uint32_t g;
        if (a->free_granules >= granules && arena_find(a, granules, &g)) {
            *out_base = a->base + ((uintptr_t)g << HOSTMEM_GRANULE_SHIFT);
            *out_arena = a;
            return 0;
        }
    }
    hostmem__arena *a = hostmem__meta_alloc(sizeof *a);
    if (!a)
        return ENOMEM;
    uintptr_t base;
    pthread_mutex_unlock(&m->state_lock);
    hostmem__inflight_begin(0, 0); /* until the arena is in the map (S9) */
    int err = hostmem__reserve_aligned(ARENA_BYTES, HOSTMEM_GRANULE, &base, lost);
    pthread_mutex_lock(&m->state_lock);
    if (!err && (err = hostmem__map_prepare(&m->map, base, base + ARENA_BYTES)))
        hostmem__os_get()->release((void *)base, ARENA_BYTES);
    if (err) {
        hostmem__inflight_end();
        hostmem__meta_free(a, sizeof *a);
        return err;
    }
    a->base = base;
    a->free_granules = HOSTMEM_ARENA_GRANULES;
    hostmem__map_set(&m->map, base, base + ARENA_BYTES, (uintptr_t)a | HOSTMEM_MAP_TAG_ARENA);
    hostmem__inflight_end();
    /* Newest first: it is the one with room. */
    a->next = m->arenas;
    m->arenas = a;
    m->metadata_bytes += sizeof *a;
    *out_base = base;
    *out_arena = a;
    return 0;
}

hostmem__arena *hostmem__arena_free_at(struct hostmem_manager *m, uintptr_t lo, uintptr_t hi)
{
    uintptr_t e = hostmem__map_lookup(&m->map, lo);
    if ((e & HOSTMEM_MAP_TAG_MASK) != HOSTMEM_MAP_TAG_ARENA)
        return NULL;
    hostmem__arena *a = (hostmem__arena *)(e & ~HOSTMEM_MAP_TAG_MASK);
    if (hi > a->base + ARENA_BYTES)
        return NULL;
    for (uintptr_t g = (lo - a->base) >> HOSTMEM_GRANULE_SHIFT; g < (hi - a->base) >> HOSTMEM_GRANULE_SHIFT; g++)
        if (granule_used(a, (uint32_t)g))
            return NULL;
    return a;
}

uintptr_t hostmem__arena_next_used(const hostmem__arena *a, uintptr_t addr)
{
    uint32_t g = (uint32_t)((addr - a->base) >> HOSTMEM_GRANULE_SHIFT);
    for (g++; g < HOSTMEM_ARENA_GRANULES; g++)
        if (granule_used(a, g))
            break;
    return a->base + ((uintptr_t)g << HOSTMEM_GRANULE_SHIFT);
}

static bool granule_gone(const hostmem__arena *a, uint32_t g)
{
    return (atomic_load_explicit(&a->gone[g / 64], memory_order_relaxed) >> (g % 64)) & 1;
}

void hostmem__release_retry(void *addr, size_t size, hostmem__unreturned *lost)
{
    const hostmem__os *os = hostmem__os_get();
    for (unsigned tries = 0; tries < 4; tries++) {
        if (!os->release(addr, size))
            return;
        sched_yield();
    }
    lost->mappings++;
    lost->bytes += size;
}

/* The arena's address space still its own: every run of granules not gone. */
static void arena_release(const hostmem__arena *a, hostmem__unreturned *lost)
{
    uint32_t g = 0;
    while (g < HOSTMEM_ARENA_GRANULES) {
        while (g < HOSTMEM_ARENA_GRANULES && granule_gone(a, g))
            g++;
        uint32_t start = g;
        while (g < HOSTMEM_ARENA_GRANULES && !granule_gone(a, g))
            g++;
        if (g > start)
            hostmem__release_retry((void *)(a->base + ((uintptr_t)start << HOSTMEM_GRANULE_SHIFT)),
                                   (size_t)(g - start) << HOSTMEM_GRANULE_SHIFT, lost);
    }
}

void hostmem__arena_destroy_all(struct hostmem_manager *m, hostmem__unreturned *lost)
{
    hostmem__arena *a = m->arenas;
    while (a) {
        hostmem__arena *next = a->next;
        arena_release(a, lost);
        hostmem__meta_free(a, sizeof *a);
        a = next;
    }
    m->arenas = NULL;
}

/* ---- reservations across an arena's edge (S4) ------------------------------ */

/* The arena whose granule holds addr, or NULL (map entry of a region, or none). */
static hostmem__arena *arena_at(struct hostmem_manager *m, uintptr_t addr, uintptr_t *out_entry)
{
    uintptr_t e = hostmem__map_lookup(&m->map, addr);
    *out_entry = e;
    if ((e & HOSTMEM_MAP_TAG_MASK) != HOSTMEM_MAP_TAG_ARENA)
        return NULL;
    return (hostmem__arena *)(e & ~HOSTMEM_MAP_TAG_MASK);
}

static void gone_mark(hostmem__arena *a, uint32_t g, bool gone)
{
    uint64_t bit = (uint64_t)1 << (g % 64);
    if (gone)
        atomic_fetch_or_explicit(&a->gone[g / 64], bit, memory_order_relaxed);
    else
        atomic_fetch_and_explicit(&a->gone[g / 64], ~bit, memory_order_relaxed);
}

int hostmem__arena_claim(struct hostmem_manager *m, uintptr_t lo, uintptr_t hi)
{
    bool any = false;
    /* Check first, then take: on EEXIST nothing changed. */
    for (int pass = 0; pass < 2; pass++) {
        uintptr_t at = lo, g;
        while (at < hi && hostmem__map_find(&m->map, at, hi, true, &g)) {
            uintptr_t e;
            hostmem__arena *a = arena_at(m, g, &e);
            if (!a)
                return EEXIST; /* a region's granule (the rest of its last one too) */
            uintptr_t end = a->base + ARENA_BYTES < hi ? a->base + ARENA_BYTES : hi;
            uint32_t g0 = (uint32_t)((g - a->base) >> HOSTMEM_GRANULE_SHIFT);
            uint32_t g1 = (uint32_t)((end - a->base) >> HOSTMEM_GRANULE_SHIFT);
            for (uint32_t k = g0; k < g1; k++) {
                if (pass == 0 && granule_used(a, k))
                    return EEXIST;
                if (pass == 1)
                    gone_mark(a, k, true);
            }
            if (pass == 1)
                hostmem__arena_mark(a, g, end, true);
            any = true;
            at = end;
        }
        if (!any)
            return ENOENT;
    }
    return 0;
}

uintptr_t hostmem__arena_free_extend(struct hostmem_manager *m, uintptr_t end)
{
    /* Each step crosses one arena or one unmapped gap; a bound keeps a query
     * short however the arenas lie. */
    for (unsigned step = 0; step < 16 && end < m->map_end; step++) {
        uintptr_t e;
        hostmem__arena *a = arena_at(m, end, &e);
        if (a) {
            uint32_t g = (uint32_t)((end - a->base) >> HOSTMEM_GRANULE_SHIFT);
            if (granule_used(a, g))
                break;
            end = hostmem__arena_next_used(a, end);
            continue;
        }
        if (e)
            break; /* a region (or the rest of its last granule) */
        hostmem__os_mapping map;
        if (hostmem__os_get()->query(end, &map) || (map.found && map.start <= end))
            break; /* mapped by someone else, or unknown: stop here */
        uintptr_t next = map.found ? map.start : m->map_end;
        if (next <= end)
            break;
        end = next;
    }
    return end;
}

void hostmem__arena_unclaim(struct hostmem_manager *m, uintptr_t lo, uintptr_t hi)
{
    uintptr_t at = lo, g;
    while (at < hi && hostmem__map_find(&m->map, at, hi, true, &g)) {
        uintptr_t e;
        hostmem__arena *a = arena_at(m, g, &e);
        if (!a)
            return; /* cannot happen: the claim checked every entry */
        uintptr_t end = a->base + ARENA_BYTES < hi ? a->base + ARENA_BYTES : hi;
        for (uint32_t k = (uint32_t)((g - a->base) >> HOSTMEM_GRANULE_SHIFT);
             k < (uint32_t)((end - a->base) >> HOSTMEM_GRANULE_SHIFT); k++)
            gone_mark(a, k, false);
        hostmem__arena_mark(a, g, end, false);
        at = end;
    }
}

int hostmem__arena_map_around(struct hostmem_manager *m, uintptr_t lo, uintptr_t end, bool unmap,
                              bool *lost)
{
    const hostmem__os *os = hostmem__os_get();
    uintptr_t hi = (end + HOSTMEM_GRANULE - 1) & ~(uintptr_t)(HOSTMEM_GRANULE - 1);
    uintptr_t at = lo, g;
    int err = 0;
    *lost = false;
    /* The map still names the claimed arena granules (until the region takes
     * them), so the gaps between its entries are the parts outside. */
    while (at < end) {
        uintptr_t next = hostmem__map_find(&m->map, at, hi, true, &g) ? g : hi;
        uintptr_t stop = next < end ? next : end;
        if (stop > at) {
            if (unmap) {
                if (os->release((void *)at, stop - at))
                    *lost = true;
            } else {
                void *p;
                if ((err = os->reserve((void *)at, stop - at, &p)))
                    break;
            }
        }
        if (next >= end)
            break;
        uintptr_t e;
        hostmem__arena *a = arena_at(m, next, &e);
        at = a && a->base + ARENA_BYTES < hi ? a->base + ARENA_BYTES : hi;
    }
    if (err) {
        bool lost2;
        hostmem__arena_map_around(m, lo, at, true, &lost2);
        *lost = lost2;
    }
    return err;
}
