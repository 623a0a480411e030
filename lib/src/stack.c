/*
 * stack.c: the host's call stack at a traced call (T7).
 *
 * A capture runs inside the tracer (trace_lttng_stack.c), a few hostmem frames
 * below the public entry point.  It walks outwards and keeps the return
 * addresses from the entry's own return address (`caller`, the innermost
 * frame of the host) on: every frame inside hostmem is skipped by that one
 * comparison, whether hostmem is a shared library or linked into the host.
 * When the walk never meets `caller` (a host frame the walk cannot cross),
 * the stack is `caller` alone: one frame, never a wrong one of ours.
 *
 * Two walks:
 *  - unwind (the default): libunwind's unw_backtrace reads the binaries'
 *    unwind tables (.eh_frame), so it crosses frames built without frame
 *    pointers.  libunwind is loaded at run time (dlopen), the first time a
 *    manager asks for it: hosts that never record stacks never load it.
 *  - frame pointers: follows the saved-%rbp chain (libhostmem is built with
 *    -fno-omit-frame-pointer, so its own frames keep the chain).  It never
 *    faults: every frame it reads lies between the capture's own frame and
 *    the top of this thread's stack (all mapped), each one above the last,
 *    8-byte aligned.  A host frame without a frame pointer ends the walk
 *    early, or (if %rbp happens to hold a stack address) adds wrong frames:
 *    the documented reason to use the unwinder for such hosts.
 *
 * Both run with no internal lock held and inside the tracer's re-entry
 * guard: what they allocate (libunwind's first use, pthread_getattr_np on
 * the main thread) may call the host's malloc, which may be ours, and is
 * then not traced (A5).
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* hostmem frames between a capture and the host: call_finish, the trace
 * facade, the emitter, the capture (and a margin for what a refactoring adds). */
#define STACK_OURS 16u

int hostmem__stack_any;

/* ---- the unwinder ----------------------------------------------------------- */

typedef int (*stack_unw_backtrace_fn)(void **buffer, int size);
static stack_unw_backtrace_fn stack_unw_backtrace;
static pthread_once_t stack_unw_once = PTHREAD_ONCE_INIT;

static void stack_unw_load(void)
{
    /* RTLD_LOCAL: libunwind also defines backtrace() and _Unwind_Backtrace,
     * which must not take the place of glibc's and libgcc's for the host.
     * RTLD_NODELETE: a capture on another thread may still be inside it. */
    void *h = dlopen("libunwind.so.8", RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
    if (h != NULL)
        stack_unw_backtrace = (stack_unw_backtrace_fn)dlsym(h, "unw_backtrace");
    if (stack_unw_backtrace == NULL)
        fprintf(stderr, "hostmem: stacks by unwinding need libunwind.so.8 (%s); "
                        "walking frame pointers instead\n", h != NULL ? "no unw_backtrace" : dlerror());
}

/* ---- configuration ------------------------------------------------------------ */

/* HOSTMEM_STACKS=N and HOSTMEM_STACKS_UNWIND=unwind|fp, when set, override the
 * config.  A value that cannot be read says so once and is ignored. */
void hostmem__stack_configure(hostmem_config *cfg)
{
    const char *depth = getenv("HOSTMEM_STACKS");
    if (depth != NULL && depth[0] != '\0') {
        char *end;
        unsigned long n = strtoul(depth, &end, 10);
        if (*end != '\0' || depth[0] == '-' || n > HOSTMEM_STACK_DEPTH_MAX)
            fprintf(stderr, "hostmem: HOSTMEM_STACKS=%s ignored: a number from 0 to %u\n", depth,
                    HOSTMEM_STACK_DEPTH_MAX);
        else
            cfg->stack_depth = (DWORD)n;
    }
    const char *walk = getenv("HOSTMEM_STACKS_UNWIND");
    if (walk != NULL && walk[0] != '\0') {
        if (strcmp(walk, "unwind") == 0)
            cfg->stack_walk = HOSTMEM_STACK_WALK_UNWIND;
        else if (strcmp(walk, "fp") == 0)
            cfg->stack_walk = HOSTMEM_STACK_WALK_FRAME_POINTERS;
        else
            fprintf(stderr, "hostmem: HOSTMEM_STACKS_UNWIND=%s ignored: \"unwind\" or \"fp\"\n", walk);
    }
}

bool hostmem__stack_config_valid(const hostmem_config *cfg)
{
    return cfg->stack_depth <= HOSTMEM_STACK_DEPTH_MAX &&
           (cfg->stack_walk == HOSTMEM_STACK_WALK_UNWIND ||
            cfg->stack_walk == HOSTMEM_STACK_WALK_FRAME_POINTERS);
}

void hostmem__stack_enable(const hostmem_config *cfg)
{
    if (cfg->stack_depth == 0)
        return;
    if (cfg->stack_walk == HOSTMEM_STACK_WALK_UNWIND)
        pthread_once(&stack_unw_once, stack_unw_load);
    __atomic_store_n(&hostmem__stack_any, 1, __ATOMIC_RELAXED);
}

/* ---- frame pointers ---------------------------------------------------------- */

/* This thread's stack, [lo, hi): found once per thread. */
static __thread uintptr_t stack_lo __attribute__((tls_model("initial-exec")));
static __thread uintptr_t stack_hi __attribute__((tls_model("initial-exec")));

static bool stack_bounds(uintptr_t *lo, uintptr_t *hi)
{
    if (stack_hi == 0) {
        pthread_attr_t a;
        void *addr;
        size_t size;
        stack_hi = 1; /* tried: a failure is not retried on every event */
        if (pthread_getattr_np(pthread_self(), &a) == 0) {
            if (pthread_attr_getstack(&a, &addr, &size) == 0) {
                stack_lo = (uintptr_t)addr;
                stack_hi = (uintptr_t)addr + size;
            }
            pthread_attr_destroy(&a);
        }
    }
    *lo = stack_lo;
    *hi = stack_hi;
    return stack_hi > 1;
}

static __attribute__((noinline)) unsigned stack_walk_fp(uintptr_t caller, uint64_t *out,
                                                        unsigned max)
{
    uintptr_t lo, hi;
    uintptr_t fp = (uintptr_t)__builtin_frame_address(0);
    /* Off this thread's stack (a signal handler's alternate stack): the range
     * up to the top is not known to be mapped. */
    if (!stack_bounds(&lo, &hi) || fp < lo || fp >= hi)
        return 0;
    unsigned n = 0;
    bool host = false;
    for (unsigned i = 0; i < HOSTMEM_STACK_DEPTH_MAX + STACK_OURS && n < max; i++) {
        if ((fp & 7u) != 0 || fp > hi - 2 * sizeof(uintptr_t))
            break;
        const uintptr_t *frame = (const uintptr_t *)fp;
        uintptr_t next = frame[0], ret = frame[1];
        if (ret == 0)
            break;
        if (!host && ret == caller)
            host = true;
        if (host)
            out[n++] = ret;
        else if (i >= STACK_OURS)
            break;
        if (next <= fp) /* the chain must climb: this also ends a loop */
            break;
        fp = next;
    }
    return n;
}

/* ---- the capture --------------------------------------------------------------- */

static __attribute__((noinline)) unsigned stack_walk_unwind(uintptr_t caller, uint64_t *out,
                                                            unsigned max)
{
    void *ips[HOSTMEM_STACK_DEPTH_MAX + STACK_OURS];
    int got = stack_unw_backtrace(ips, (int)(max + STACK_OURS));
    unsigned n = 0;
    int i = 0;
    while (i < got && (uintptr_t)ips[i] != caller)
        i++;
    for (; i < got && n < max; i++)
        out[n++] = (uint64_t)(uintptr_t)ips[i];
    return n;
}

unsigned hostmem__stack_capture(const hostmem_config *cfg, uintptr_t caller, uint64_t *out)
{
    unsigned max = cfg->stack_depth;
    if (max == 0 || caller == 0)
        return 0;
    if (max > HOSTMEM_STACK_DEPTH_MAX)
        max = HOSTMEM_STACK_DEPTH_MAX;
    unsigned n = (cfg->stack_walk == HOSTMEM_STACK_WALK_UNWIND && stack_unw_backtrace != NULL)
                     ? stack_walk_unwind(caller, out, max)
                     : stack_walk_fp(caller, out, max);
    if (n == 0) {
        out[0] = (uint64_t)caller;
        n = 1;
    }
    return n;
}
