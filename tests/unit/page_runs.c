/* page_runs.c against a plain array of page states, on random operation sequences. */
#include <criterion/criterion.h>
#include <stdlib.h>

#include "internal.h"

#define NPAGES 300

static uint32_t model_apply(uint32_t old, enum hostmem__page_op op, uint32_t state)
{
    bool committed = old & HOSTMEM_STATE_COMMITTED;
    switch (op) {
    case HOSTMEM_PAGES_COMMIT:
        return HOSTMEM_STATE_COMMITTED | state | (committed ? (old & HOSTMEM_STATE_RESET) : 0);
    case HOSTMEM_PAGES_DECOMMIT:
        return 0;
    case HOSTMEM_PAGES_PROTECT:
        return committed ? (old & ~HOSTMEM_STATE_PROTECT_MASK) | state : old;
    case HOSTMEM_PAGES_RESET:
        return committed ? old | HOSTMEM_STATE_RESET : old;
    default:
        return state;
    }
}

static void check(const hostmem__runs *runs, const uint32_t *model, size_t npages)
{
    uint32_t n = hostmem__runs_count(runs);
    size_t page = 0;
    uint32_t prev = UINT32_MAX;
    for (uint32_t i = 0; i < n; i++) {
        size_t first, count;
        uint32_t st;
        hostmem__runs_get(runs, npages, i, &first, &count, &st);
        cr_assert_eq(first, page, "run %u starts at %zu, expected %zu", i, first, page);
        cr_assert_gt(count, 0, "empty run %u", i);
        cr_assert_neq(st, prev, "runs %u and %u share a state", i - 1, i);
        for (size_t p = first; p < first + count; p++)
            cr_assert_eq(model[p], st, "page %zu: model %#x, runs %#x", p, model[p], st);
        cr_assert_eq(hostmem__runs_find(runs, first), i);
        cr_assert_eq(hostmem__runs_find(runs, first + count - 1), i);
        prev = st;
        page += count;
    }
    cr_assert_eq(page, npages);
}

Test(page_runs, random_sequences_match_the_page_array)
{
    static const uint32_t protects[] = {PAGE_NOACCESS, PAGE_READONLY, PAGE_READWRITE,
                                        PAGE_EXECUTE_READ, PAGE_READWRITE | PAGE_GUARD};
    for (unsigned seed = 1; seed <= 20; seed++) {
        srand(seed);
        uint32_t model[NPAGES] = {0};
        hostmem__runs runs = {NULL, 0};
        cr_assert_eq(hostmem__runs_init(&runs, 0), 0);
        for (int step = 0; step < 2000; step++) {
            size_t first = (size_t)rand() % NPAGES;
            size_t count = 1 + (size_t)rand() % (rand() % 4 ? 8 : NPAGES - first);
            if (first + count > NPAGES)
                count = NPAGES - first;
            enum hostmem__page_op op = (enum hostmem__page_op)(rand() % 5);
            uint32_t state = protects[rand() % 5];
            if (op == HOSTMEM_PAGES_SET)
                state |= (rand() % 2) ? HOSTMEM_STATE_COMMITTED : 0;
            size_t committed_before = hostmem__runs_pages(&runs, NPAGES, first, count,
                                                          HOSTMEM_STATE_COMMITTED, HOSTMEM_STATE_COMMITTED);
            size_t expect = 0;
            for (size_t p = first; p < first + count; p++)
                expect += (model[p] & HOSTMEM_STATE_COMMITTED) != 0;
            cr_assert_eq(committed_before, expect, "seed %u step %d: committed pages", seed, step);
            cr_assert_eq(hostmem__runs_grow(&runs, 2), 0);
            hostmem__runs_apply(&runs, NPAGES, first, count, op, state);
            for (size_t p = first; p < first + count; p++)
                model[p] = model_apply(model[p], op, state);
            check(&runs, model, NPAGES);
        }
        hostmem__runs_free(&runs);
    }
}

Test(page_runs, a_huge_region_with_many_runs_stays_small)
{
    /* 1 TiB of 4 KiB pages with 1,000 committed blocks: 2,001 runs. */
    size_t npages = (size_t)1 << 28;
    hostmem__runs runs = {NULL, 0};
    cr_assert_eq(hostmem__runs_init(&runs, 0), 0);
    for (size_t i = 0; i < 1000; i++) {
        cr_assert_eq(hostmem__runs_grow(&runs, 2), 0);
        hostmem__runs_apply(&runs, npages, i * 1000 + 1, 16, HOSTMEM_PAGES_COMMIT, PAGE_READWRITE);
    }
    cr_assert_eq(hostmem__runs_count(&runs), 2001);
    cr_assert_eq(hostmem__runs_pages(&runs, npages, 0, npages, HOSTMEM_STATE_COMMITTED,
                                     HOSTMEM_STATE_COMMITTED), 16000);
    cr_assert_lt(hostmem__runs_bytes(&runs), 64 * 1024, "run arrays take %zu bytes", hostmem__runs_bytes(&runs));
    hostmem__runs_free(&runs);
}
