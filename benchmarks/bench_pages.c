/*
 * bench_pages.c: page-range operations inside a reservation.
 *
 *   commit    [S, 2S) of a 3S reservation: in the middle (the kernel splits
 *             the mapping in three) and next to a committed [0, S) (the
 *             kernel extends the neighbour).  Floor: mprotect(RW).
 *   decommit  [S, 2S) of a committed 3S region, touched or not.  Floors: the
 *             correct one, mmap(MAP_FIXED, PROT_NONE) over the range (what
 *             hostmem does, and the ratio's floor); and madvise(DONTNEED) +
 *             mprotect(NONE), cheaper but it keeps the commit charge of
 *             written pages, so it is shown for reference only.
 *   protect   a committed, touched region of S flipped RW <-> RO.  Floor: mprotect.
 *   reset     a committed region of S, every page written before each call.
 *             Floor: madvise(MADV_FREE).
 */
#include <stdio.h>
#include <sys/mman.h>

#include "bench.h"
#include "floor.h"

typedef struct pages_ctx {
    bool adjacent; /* commit: [0, S) committed beforehand */
    bool touched;  /* decommit: [S, 2S) written beforehand */
} pages_ctx;

static hostmem_manager *mgr(bench_batch *b) { return b->env->m; }
static const pages_ctx *ctx(bench_batch *b) { return b->ctx; }
static char *at(bench_batch *b, size_t i, size_t k) { return (char *)b->addr[i] + k * b->size; }

/* ---- shared teardown --------------------------------------------------------- */
static int hm_release_all(bench_batch *b)
{
    int rc = 0;
    for (size_t i = 0; i < b->n; i++) {
        if (!b->addr[i])
            continue;
        rc |= bench_check_hr(hostmem_virtual_free(mgr(b), b->addr[i], 0, MEM_RELEASE),
                             "hostmem_virtual_free(MEM_RELEASE)");
        b->addr[i] = NULL;
    }
    return rc;
}

/* The floors' regions are 3S long except protect/reset's (S): the case keeps
 * the length in addr's neighbour, so teardown unmaps what setup mapped. */
static int fl_unmap_all(bench_batch *b, size_t len)
{
    int rc = 0;
    for (size_t i = 0; i < b->n; i++) {
        if (!b->addr[i])
            continue;
        rc |= bench_check_errno(floor_release(b->addr[i], len), "munmap");
        b->addr[i] = NULL;
    }
    return rc;
}
static int fl_unmap3(bench_batch *b) { return fl_unmap_all(b, 3 * b->size); }
static int fl_unmap1(bench_batch *b) { return fl_unmap_all(b, b->size); }

static int hm_reserve(bench_batch *b, size_t i, size_t len, DWORD type)
{
    void *p = NULL;
    if (bench_check_hr(hostmem_virtual_alloc(mgr(b), NULL, len, type, PAGE_READWRITE,
                                             eTaskCritical, &p),
                       "hostmem_virtual_alloc(reserve)"))
        return -1;
    b->addr[i] = p;
    return 0;
}

static int hm_commit_at(bench_batch *b, void *p, size_t len)
{
    void *out = NULL;
    return bench_check_hr(hostmem_virtual_alloc(mgr(b), p, len, MEM_COMMIT, PAGE_READWRITE,
                                                eTaskCritical, &out),
                          "hostmem_virtual_alloc(MEM_COMMIT)");
}

/* ---- commit -------------------------------------------------------------- */
static int hm_commit_setup(bench_batch *b)
{
    for (size_t i = 0; i < b->n; i++) {
        if (hm_reserve(b, i, 3 * b->size, MEM_RESERVE))
            return -1;
        if (ctx(b)->adjacent && hm_commit_at(b, at(b, i, 0), b->size))
            return -1;
    }
    return 0;
}
static int hm_commit_op(bench_batch *b, size_t i) { return hm_commit_at(b, at(b, i, 1), b->size); }

static int fl_commit_setup(bench_batch *b)
{
    for (size_t i = 0; i < b->n; i++) {
        if (bench_check_errno(floor_reserve(3 * b->size, &b->addr[i]), "mmap(PROT_NONE)"))
            return -1;
        if (ctx(b)->adjacent &&
            bench_check_errno(floor_commit(at(b, i, 0), b->size), "mprotect(RW)"))
            return -1;
    }
    return 0;
}
static int fl_commit_op(bench_batch *b, size_t i)
{
    return bench_check_errno(floor_commit(at(b, i, 1), b->size), "mprotect(RW)");
}

/* ---- decommit ------------------------------------------------------------ */
static int hm_decommit_setup(bench_batch *b)
{
    for (size_t i = 0; i < b->n; i++) {
        if (hm_reserve(b, i, 3 * b->size, MEM_RESERVE | MEM_COMMIT))
            return -1;
        if (ctx(b)->touched)
            bench_touch(at(b, i, 1), b->size, b->env->page);
    }
    return 0;
}
static int hm_decommit_op(bench_batch *b, size_t i)
{
    return bench_check_hr(hostmem_virtual_free(mgr(b), at(b, i, 1), b->size, MEM_DECOMMIT),
                          "hostmem_virtual_free(MEM_DECOMMIT)");
}

static int fl_decommit_setup(bench_batch *b)
{
    for (size_t i = 0; i < b->n; i++) {
        if (bench_check_errno(floor_reserve(3 * b->size, &b->addr[i]), "mmap(PROT_NONE)"))
            return -1;
        if (bench_check_errno(floor_commit(b->addr[i], 3 * b->size), "mprotect(RW)"))
            return -1;
        if (ctx(b)->touched)
            bench_touch(at(b, i, 1), b->size, b->env->page);
    }
    return 0;
}
static int fl_decommit_remap_op(bench_batch *b, size_t i)
{
    return bench_check_errno(floor_decommit_remap(at(b, i, 1), b->size),
                             "mmap(MAP_FIXED, PROT_NONE)");
}
static int fl_decommit_madvise_op(bench_batch *b, size_t i)
{
    return bench_check_errno(floor_decommit_madvise(at(b, i, 1), b->size),
                             "madvise(DONTNEED)+mprotect(NONE)");
}

/* ---- protect ----------------------------------------------------------------- */
static int hm_one_committed(bench_batch *b)
{
    if (hm_reserve(b, 0, b->size, MEM_RESERVE | MEM_COMMIT))
        return -1;
    bench_touch(b->addr[0], b->size, b->env->page);
    return 0;
}
static int hm_protect_op(bench_batch *b, size_t i)
{
    DWORD old;
    return bench_check_hr(hostmem_virtual_protect(mgr(b), b->addr[0], b->size,
                                                  i % 2 ? PAGE_READWRITE : PAGE_READONLY, &old),
                          "hostmem_virtual_protect");
}

static int fl_one_committed(bench_batch *b)
{
    if (bench_check_errno(floor_reserve(b->size, &b->addr[0]), "mmap(PROT_NONE)") ||
        bench_check_errno(floor_commit(b->addr[0], b->size), "mprotect(RW)"))
        return -1;
    bench_touch(b->addr[0], b->size, b->env->page);
    return 0;
}
static int fl_protect_op(bench_batch *b, size_t i)
{
    return bench_check_errno(
        floor_protect(b->addr[0], b->size, i % 2 ? PROT_READ | PROT_WRITE : PROT_READ),
        "mprotect");
}

/* ---- reset ------------------------------------------------------------------- */
static int touch0(bench_batch *b, size_t i)
{
    bench_touch(b->addr[0], b->size, b->env->page);
    return 0;
}
static int hm_reset_op(bench_batch *b, size_t i)
{
    void *out = NULL;
    return bench_check_hr(hostmem_virtual_alloc(mgr(b), b->addr[0], b->size, MEM_RESET,
                                                PAGE_READWRITE, eTaskCritical, &out),
                          "hostmem_virtual_alloc(MEM_RESET)");
}
static int fl_reset_op(bench_batch *b, size_t i)
{
    return bench_check_errno(floor_reset(b->addr[0], b->size), "madvise(MADV_FREE)");
}

/* ---- cases ------------------------------------------------------------------- */
static const bench_impl hm_commit = {"hostmem", hm_commit_setup, NULL, hm_commit_op, hm_release_all};
static const bench_impl fl_commit = {"mprotect(RW)", fl_commit_setup, NULL, fl_commit_op, fl_unmap3};
static const bench_impl hm_decommit = {"hostmem", hm_decommit_setup, NULL, hm_decommit_op,
                                       hm_release_all};
static const bench_impl fl_decommit_remap = {"mmap(MAP_FIXED,PROT_NONE)", fl_decommit_setup, NULL,
                                             fl_decommit_remap_op, fl_unmap3};
static const bench_impl fl_decommit_madvise = {"madvise(DONTNEED)+mprotect(NONE)",
                                               fl_decommit_setup, NULL, fl_decommit_madvise_op,
                                               fl_unmap3};
static const bench_impl hm_protect = {"hostmem", hm_one_committed, NULL, hm_protect_op,
                                      hm_release_all};
static const bench_impl fl_protect = {"mprotect", fl_one_committed, NULL, fl_protect_op, fl_unmap1};
static const bench_impl hm_reset = {"hostmem", hm_one_committed, touch0, hm_reset_op, hm_release_all};
static const bench_impl fl_reset = {"madvise(MADV_FREE)", fl_one_committed, touch0, fl_reset_op,
                                    fl_unmap1};

int bench_family_pages(bench_env *env)
{
    static const size_t sizes[] = {64 * BENCH_KIB, BENCH_MIB, 64 * BENCH_MIB};
    static const size_t batch[] = {128, 64, 16};
    static const size_t batch_touched[] = {128, 32, 4};
    static const size_t batch_repeat[] = {256, 128, 32};
    static pages_ctx middle = {false, false}, adjacent = {true, false};
    static pages_ctx untouched = {false, false}, touched = {false, true};
    const bench_target ratio105 = {BENCH_TARGET_RATIO_P50, 1.05};
    int rc = 0;

    for (size_t k = 0; k < 3; k++) {
        bench_case c = {.operation = "commit", .variant = "middle", .size = sizes[k],
                        .batch = bench_batch_size(env, batch[k]), .hostmem = &hm_commit,
                        .floors = {&fl_commit}, .ctx = &middle, .target = ratio105};
        rc |= bench_run_case(env, &c);
        c.variant = "next-to-committed";
        c.ctx = &adjacent;
        rc |= bench_run_case(env, &c);
    }
    for (size_t k = 0; k < 3; k++) {
        bench_case c = {.operation = "decommit", .variant = "untouched", .size = sizes[k],
                        .batch = bench_batch_size(env, batch[k]), .hostmem = &hm_decommit,
                        .floors = {&fl_decommit_remap, &fl_decommit_madvise}, .ctx = &untouched,
                        .target = ratio105};
        rc |= bench_run_case(env, &c);
        c.variant = "touched";
        c.ctx = &touched;
        c.batch = bench_batch_size(env, batch_touched[k]);
        rc |= bench_run_case(env, &c);
    }
    for (size_t k = 0; k < 3; k++) {
        bench_case c = {.operation = "protect", .variant = "RW<->RO touched", .size = sizes[k],
                        .batch = bench_batch_size(env, batch_repeat[k]), .hostmem = &hm_protect,
                        .floors = {&fl_protect}, .target = ratio105};
        rc |= bench_run_case(env, &c);
    }
    for (size_t k = 0; k < 3; k++) {
        bench_case c = {.operation = "reset", .variant = "touched", .size = sizes[k],
                        .batch = bench_batch_size(env, batch_repeat[k] / 2), .hostmem = &hm_reset,
                        .floors = {&fl_reset}};
        rc |= bench_run_case(env, &c);
    }
    return rc ? -1 : 0;
}
