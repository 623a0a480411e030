/*
 * bench_region.c: whole-region operations.  reserve (floor: mmap PROT_NONE),
 * release of untouched and of touched regions (floor: munmap), and the
 * reserve+release pair of 64 KiB, where hostmem carves the region from
 * address space it already holds and should not need the kernel at all.
 */
#include <stdio.h>

#include "bench.h"
#include "floor.h"

static hostmem_manager *mgr(bench_batch *b) { return b->env->m; }

/* ---- hostmem side ---------------------------------------------------------- */
static int hm_reserve_one(bench_batch *b, size_t i, bool commit_touch)
{
    void *p = NULL;
    DWORD type = commit_touch ? MEM_RESERVE | MEM_COMMIT : MEM_RESERVE;
    if (bench_check_hr(hostmem_virtual_alloc(mgr(b), NULL, b->size, type, PAGE_READWRITE,
                                             eTaskCritical, &p),
                       "hostmem_virtual_alloc(reserve)"))
        return -1;
    if (commit_touch)
        bench_touch(p, b->size, b->env->page);
    b->addr[i] = p;
    return 0;
}

static int hm_release_one(bench_batch *b, size_t i)
{
    void *p = b->addr[i];
    b->addr[i] = NULL;
    return bench_check_hr(hostmem_virtual_free(mgr(b), p, 0, MEM_RELEASE),
                          "hostmem_virtual_free(MEM_RELEASE)");
}

static int hm_release_all(bench_batch *b)
{
    int rc = 0;
    for (size_t i = 0; i < b->n; i++)
        if (b->addr[i] && hm_release_one(b, i))
            rc = -1;
    return rc;
}

static int hm_reserve_op(bench_batch *b, size_t i) { return hm_reserve_one(b, i, false); }

static int hm_setup_untouched(bench_batch *b)
{
    for (size_t i = 0; i < b->n; i++)
        if (hm_reserve_one(b, i, false))
            return -1;
    return 0;
}

static int hm_setup_touched(bench_batch *b)
{
    for (size_t i = 0; i < b->n; i++)
        if (hm_reserve_one(b, i, true))
            return -1;
    return 0;
}

static int hm_pair_op(bench_batch *b, size_t i)
{
    void *p = NULL;
    if (bench_check_hr(hostmem_virtual_alloc(mgr(b), NULL, b->size, MEM_RESERVE, PAGE_READWRITE,
                                             eTaskCritical, &p),
                       "hostmem_virtual_alloc(reserve)"))
        return -1;
    bench_escape(p);
    return bench_check_hr(hostmem_virtual_free(mgr(b), p, 0, MEM_RELEASE),
                          "hostmem_virtual_free(MEM_RELEASE)");
}

/* ---- floor side ------------------------------------------------------------ */
static int fl_reserve_one(bench_batch *b, size_t i, bool commit_touch)
{
    void *p;
    if (bench_check_errno(floor_reserve(b->size, &p), "mmap(PROT_NONE)"))
        return -1;
    b->addr[i] = p;
    if (commit_touch) {
        if (bench_check_errno(floor_commit(p, b->size), "mprotect(RW)"))
            return -1;
        bench_touch(p, b->size, b->env->page);
    }
    return 0;
}

static int fl_release_one(bench_batch *b, size_t i)
{
    void *p = b->addr[i];
    b->addr[i] = NULL;
    return bench_check_errno(floor_release(p, b->size), "munmap");
}

static int fl_release_all(bench_batch *b)
{
    int rc = 0;
    for (size_t i = 0; i < b->n; i++)
        if (b->addr[i] && fl_release_one(b, i))
            rc = -1;
    return rc;
}

static int fl_reserve_op(bench_batch *b, size_t i) { return fl_reserve_one(b, i, false); }

static int fl_setup_untouched(bench_batch *b)
{
    for (size_t i = 0; i < b->n; i++)
        if (fl_reserve_one(b, i, false))
            return -1;
    return 0;
}

static int fl_setup_touched(bench_batch *b)
{
    for (size_t i = 0; i < b->n; i++)
        if (fl_reserve_one(b, i, true))
            return -1;
    return 0;
}

static int fl_pair_op(bench_batch *b, size_t i)
{
    void *p;
    if (bench_check_errno(floor_reserve(b->size, &p), "mmap(PROT_NONE)"))
        return -1;
    bench_escape(p);
    return bench_check_errno(floor_release(p, b->size), "munmap");
}

/* ---- cases ----------------------------------------------------------------- */
static const bench_impl hm_reserve = {"hostmem", NULL, NULL, hm_reserve_op, hm_release_all};
static const bench_impl fl_reserve = {"mmap(PROT_NONE)", NULL, NULL, fl_reserve_op, fl_release_all};
static const bench_impl hm_release_u = {"hostmem", hm_setup_untouched, NULL, hm_release_one,
                                        hm_release_all};
static const bench_impl fl_release_u = {"munmap", fl_setup_untouched, NULL, fl_release_one,
                                        fl_release_all};
static const bench_impl hm_release_t = {"hostmem", hm_setup_touched, NULL, hm_release_one,
                                        hm_release_all};
static const bench_impl fl_release_t = {"munmap", fl_setup_touched, NULL, fl_release_one,
                                        fl_release_all};
static const bench_impl hm_pair = {"hostmem", NULL, NULL, hm_pair_op, NULL};
static const bench_impl fl_pair = {"mmap(PROT_NONE)+munmap", NULL, NULL, fl_pair_op, NULL};

int bench_family_region(bench_env *env)
{
    static const size_t sizes[] = {64 * BENCH_KIB, BENCH_MIB, 64 * BENCH_MIB};
    static const size_t batch[] = {256, 128, 16};
    static const size_t batch_touched[] = {128, 32, 4};
    int rc = 0;

    for (size_t k = 0; k < 3; k++) {
        bench_case c = {.operation = "reserve", .variant = "", .size = sizes[k],
                        .batch = bench_batch_size(env, batch[k]), .hostmem = &hm_reserve,
                        .floors = {&fl_reserve}};
        rc |= bench_run_case(env, &c);
    }
    for (size_t k = 0; k < 3; k++) {
        bench_case c = {.operation = "release", .variant = "untouched", .size = sizes[k],
                        .batch = bench_batch_size(env, batch[k]), .hostmem = &hm_release_u,
                        .floors = {&fl_release_u}};
        rc |= bench_run_case(env, &c);
    }
    for (size_t k = 0; k < 3; k++) {
        bench_case c = {.operation = "release", .variant = "touched", .size = sizes[k],
                        .batch = bench_batch_size(env, batch_touched[k]),
                        .hostmem = &hm_release_t, .floors = {&fl_release_t}};
        rc |= bench_run_case(env, &c);
    }
    bench_case pair = {.operation = "reserve+release", .variant = "pair", .size = 64 * BENCH_KIB,
                       .batch = bench_batch_size(env, 512), .hostmem = &hm_pair,
                       .floors = {&fl_pair}, .target = {BENCH_TARGET_RATIO_P50, 0.25}};
    rc |= bench_run_case(env, &pair);
    return rc ? -1 : 0;
}
