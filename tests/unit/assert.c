/* The internal assertions (HOSTMEM_ASSERT builds) fire on a broken invariant:
 * each test breaks one through the internals and expects the abort. */
#include <criterion/criterion.h>
#include <signal.h>

#include "internal.h"

#if HOSTMEM_ASSERT_ON

#define NPAGES 300

/* A run array that no longer starts at page 0: the next update notices. */
Test(assert, runs_not_canonical, .signal = SIGABRT)
{
    hostmem__runs runs = {0};
    cr_assert_eq(hostmem__runs_init(&runs, 0), 0);
    cr_assert_eq(hostmem__runs_grow(&runs, 2), 0);
    hostmem__runs_apply(&runs, NPAGES, 10, 10, HOSTMEM_PAGES_COMMIT, PAGE_READWRITE);
    cr_assert(hostmem__runs_canonical(&runs, NPAGES));
    hostmem__run_block *b = atomic_load(&runs.block);
    atomic_store(&b->v[0], HOSTMEM_RUN(5, 0)); /* the corruption */
    cr_assert_not(hostmem__runs_canonical(&runs, NPAGES));
    cr_assert_eq(hostmem__runs_grow(&runs, 2), 0);
    hostmem__runs_apply(&runs, NPAGES, 250, 10, HOSTMEM_PAGES_COMMIT, PAGE_READWRITE);
}

/* Two neighbours in one state. */
Test(assert, runs_neighbours_equal, .signal = SIGABRT)
{
    hostmem__runs runs = {0};
    cr_assert_eq(hostmem__runs_init(&runs, 0), 0);
    cr_assert_eq(hostmem__runs_grow(&runs, 2), 0);
    hostmem__runs_apply(&runs, NPAGES, 10, 10, HOSTMEM_PAGES_COMMIT, PAGE_READWRITE);
    hostmem__run_block *b = atomic_load(&runs.block);
    atomic_store(&b->v[1], HOSTMEM_RUN(10, 0));
    cr_assert_eq(hostmem__runs_grow(&runs, 2), 0);
    hostmem__runs_apply(&runs, NPAGES, 250, 10, HOSTMEM_PAGES_COMMIT, PAGE_READWRITE);
}

/* A policy call that needs the state lock, made without it. */
Test(assert, state_lock_not_held, .signal = SIGABRT)
{
    hostmem_manager *m;
    cr_assert_eq(hostmem_create(NULL, &m), S_OK);
    hostmem__policy_unreserve(m, 0);
}

/* A region whose committed page count disagrees with its runs: the next
 * decommit notices. */
Test(assert, charge_not_runs, .signal = SIGABRT)
{
    hostmem_manager *m;
    cr_assert_eq(hostmem_create(NULL, &m), S_OK);
    void *p, *q;
    cr_assert_eq(hostmem_virtual_alloc(m, NULL, 1 << 20, MEM_RESERVE, PAGE_READWRITE, eTaskCritical, &p), S_OK);
    cr_assert_eq(hostmem_virtual_alloc(m, p, 1 << 16, MEM_COMMIT, PAGE_READWRITE, eTaskCritical, &q), S_OK);
    hostmem__region *r =
        (hostmem__region *)(hostmem__map_lookup(&m->map, (uintptr_t)p) & ~HOSTMEM_MAP_TAG_MASK);
    cr_assert(hostmem__region_charge_ok(m, r));
    atomic_fetch_add(&r->committed_pages, 1); /* the corruption */
    hostmem_virtual_free(m, p, 4096, MEM_DECOMMIT);
}

/* The manager's charge no longer the sum of its regions': destroy notices. */
Test(assert, total_not_regions, .signal = SIGABRT)
{
    hostmem_manager *m;
    cr_assert_eq(hostmem_create(NULL, &m), S_OK);
    void *p;
    cr_assert_eq(hostmem_virtual_alloc(m, NULL, 1 << 16, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE, eTaskCritical,
                                       &p), S_OK);
    pthread_mutex_lock(&m->state_lock);
    m->policy.committed += 4096; /* the corruption */
    pthread_mutex_unlock(&m->state_lock);
    hostmem_destroy(m);
}

/* The same calls on sound books do not abort. */
Test(assert, sound_books_pass)
{
    hostmem_manager *m;
    cr_assert_eq(hostmem_create(NULL, &m), S_OK);
    void *p, *q;
    cr_assert_eq(hostmem_virtual_alloc(m, NULL, 1 << 20, MEM_RESERVE, PAGE_READWRITE, eTaskCritical, &p), S_OK);
    cr_assert_eq(hostmem_virtual_alloc(m, p, 1 << 16, MEM_COMMIT, PAGE_READWRITE, eTaskCritical, &q), S_OK);
    cr_assert_eq(hostmem_virtual_free(m, p, 4096, MEM_DECOMMIT), S_OK);
    pthread_mutex_lock(&m->state_lock);
    hostmem__policy_unreserve(m, 0);
    pthread_mutex_unlock(&m->state_lock);
    hostmem_destroy(m);
}

#else

Test(assert, built_without_assertions)
{
    cr_skip_test("HOSTMEM_ASSERT is off in this build");
}

#endif
