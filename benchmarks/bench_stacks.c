/*
 * bench_stacks.c: what a call stack costs per event (T7).  The reserve+release
 * pair of 64 KiB (no syscall: carved from held address space), called 16
 * frames deep, on a manager that records stacks of depth 16 beside the same
 * pair on a manager that records none: with a session recording hostmem:*,
 * the difference is one hostmem:stack event (the reserve's; a release has
 * none), capture included.  Without a session both sides are equal (the
 * stack is only captured for an event that is recorded).  This file is built
 * with frame pointers so the frame-pointer walk climbs all 16 frames.
 */
#include <stdlib.h>

#include "bench.h"

#define STACKS_DEPTH 16u

typedef struct stacks_ctx {
    hostmem_manager *m;
} stacks_ctx;

static __attribute__((noinline)) int stacks_pair_at(hostmem_manager *m, size_t size, unsigned depth)
{
    if (depth > 1) {
        int rc = stacks_pair_at(m, size, depth - 1);
        bench_barrier(); /* work after the call: no tail call, a real frame */
        return rc;
    }
    void *p = NULL;
    if (bench_check_hr(hostmem_virtual_alloc(m, NULL, size, MEM_RESERVE, PAGE_READWRITE, eTaskCritical, &p),
                       "hostmem_virtual_alloc(reserve)"))
        return -1;
    bench_escape(p);
    return bench_check_hr(hostmem_virtual_free(m, p, 0, MEM_RELEASE), "hostmem_virtual_free(MEM_RELEASE)");
}

static int stacks_pair_op(bench_batch *b, size_t i)
{
    (void)i;
    return stacks_pair_at(((stacks_ctx *)b->ctx)->m, b->size, STACKS_DEPTH);
}

static const bench_impl stacks_on = {"stack 16", NULL, NULL, stacks_pair_op, NULL};

/* The floor runs on env->m, which records no stacks. */
static int stacks_floor_op(bench_batch *b, size_t i)
{
    (void)i;
    return stacks_pair_at(b->env->m, b->size, STACKS_DEPTH);
}

static const bench_impl stacks_off = {"no stack", NULL, NULL, stacks_floor_op, NULL};

int bench_family_stacks(bench_env *env)
{
    static const struct {
        const char *variant;
        DWORD walk;
    } walks[] = {{"depth 16, frame pointers", HOSTMEM_STACK_WALK_FRAME_POINTERS},
                 {"depth 16, unwind", HOSTMEM_STACK_WALK_UNWIND}};
    /* The configuration alone decides here: the environment would override it. */
    unsetenv("HOSTMEM_STACKS");
    unsetenv("HOSTMEM_STACKS_UNWIND");
    int rc = 0;
    for (size_t k = 0; k < sizeof walks / sizeof walks[0]; k++) {
        hostmem_config cfg;
        hostmem_config_init(&cfg);
        cfg.stack_depth = STACKS_DEPTH;
        cfg.stack_walk = walks[k].walk;
        stacks_ctx ctx;
        if (bench_check_hr(hostmem_create(&cfg, &ctx.m), "hostmem_create(stacks)"))
            return -1;
        bench_case c = {.operation = "stack event", .variant = walks[k].variant,
                        .size = 64 * BENCH_KIB, .batch = bench_batch_size(env, 512),
                        .hostmem = &stacks_on, .floors = {&stacks_off}, .ctx = &ctx};
        rc |= bench_run_case(env, &c);
        hostmem_destroy(ctx.m);
    }
    return rc ? -1 : 0;
}
