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
#include <stdlib.h>

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
    if (err)
        return err;
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
    hostmem__arena *a = calloc(1, sizeof *a);
    if (!a)
        return ENOMEM;
    uintptr_t base;
    pthread_mutex_unlock(&m->state_lock);
    int err = hostmem__reserve_aligned(ARENA_BYTES, HOSTMEM_GRANULE, &base, lost);
    pthread_mutex_lock(&m->state_lock);
    if (!err && (err = hostmem__map_prepare(&m->map, base, base + ARENA_BYTES)))
        hostmem__os_get()->release((void *)base, ARENA_BYTES);
    if (err) {
        free(a);
        return err;
    }
    a->base = base;
    a->free_granules = HOSTMEM_ARENA_GRANULES;
    hostmem__map_set(&m->map, base, base + ARENA_BYTES, (uintptr_t)a | HOSTMEM_MAP_TAG_ARENA);
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

void hostmem__arena_destroy_all(struct hostmem_manager *m)
{
    hostmem__arena *a = m->arenas;
    while (a) {
        hostmem__arena *next = a->next;
        hostmem__os_get()->release((void *)a->base, ARENA_BYTES);
        free(a);
        a = next;
    }
    m->arenas = NULL;
}
