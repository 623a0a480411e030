/*
 * bench_watch.c: write watch (W1).
 *
 *   get+reset     hostmem_get_write_watch(WRITE_WATCH_FLAG_RESET) over a
 *                 committed 1 GiB write-watch region with 1 % of its pages
 *                 written since the last call (every 100th page, written
 *                 untimed before each call).  Floor: the kernel work alone,
 *                 one PAGEMAP_SCAN ioctl (PM_SCAN_WP_MATCHING) over a 1 GiB
 *                 mapping registered with a userfaultfd in asynchronous
 *                 write-protect mode, the same pages written.
 *   write         the host's cost of writing one byte to each of 64 pages.
 *                 "written before": the pages were already written since the
 *                 last reset (a GC's steady state): watched region against an
 *                 unwatched one, both committed and populated -- the same.
 *                 "first after reset": the first write to each page since a
 *                 reset; the kernel resolves the write-protection itself (no
 *                 signal reaches the process), against the same write to an
 *                 unwatched populated page: the ratio is that in-kernel cost.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/userfaultfd.h>

#include "bench.h"

/* PAGEMAP_SCAN (Linux 6.7, include/uapi/linux/fs.h): older headers lack it. */
struct bw_page_region {
    uint64_t start, end, categories;
};
struct bw_pm_scan_arg {
    uint64_t size, flags, start, end, walk_end, vec, vec_len, max_pages;
    uint64_t category_inverted, category_mask, category_anyof_mask, return_mask;
};
#define BW_PAGEMAP_SCAN _IOWR('f', 16, struct bw_pm_scan_arg)

#define REGION_1G BENCH_GIB
#define STRIDE 100 /* 1 % of the pages */
#define WRITE_PAGES 64

static void *bw_results[REGION_1G / 4096 / STRIDE + 64];

static hostmem_manager *mgr(bench_batch *b) { return b->env->m; }

static void bw_write_every(char *base, size_t size, size_t page, size_t stride)
{
    for (size_t off = 0; off < size; off += stride * page)
        ((volatile char *)base)[off] ^= 1;
}

/* ---- get+reset over 1 GiB ------------------------------------------------------- */
static int hm_1g_setup(bench_batch *b)
{
    void *p = NULL;
    if (bench_check_hr(hostmem_virtual_alloc(mgr(b), NULL, REGION_1G, MEM_RESERVE | MEM_COMMIT | MEM_WRITE_WATCH,
                                             PAGE_READWRITE, eTaskCritical, &p),
                       "hostmem_virtual_alloc(MEM_WRITE_WATCH)"))
        return -1;
    b->addr[0] = p;
    return 0;
}
static int hm_1g_prep(bench_batch *b, size_t i)
{
    (void)i;
    bw_write_every(b->addr[0], REGION_1G, b->env->page, STRIDE);
    return 0;
}
static int hm_1g_op(bench_batch *b, size_t i)
{
    (void)i;
    ULONG_PTR count = sizeof bw_results / sizeof bw_results[0];
    DWORD gran;
    HRESULT hr = hostmem_get_write_watch(mgr(b), WRITE_WATCH_FLAG_RESET, b->addr[0], REGION_1G, bw_results,
                                         &count, &gran);
    if (FAILED(hr))
        return bench_check_hr(hr, "hostmem_get_write_watch");
    if (count != (REGION_1G / b->env->page + STRIDE - 1) / STRIDE)
        return bench_fail("get_write_watch returned %zu pages", (size_t)count);
    bench_escape(bw_results);
    return 0;
}
static int hm_release0(bench_batch *b)
{
    int rc = bench_check_hr(hostmem_virtual_free(mgr(b), b->addr[0], 0, MEM_RELEASE), "release");
    b->addr[0] = NULL;
    return rc;
}

/* The floor: a userfaultfd and the pagemap, once per process. */
static int bw_uffd = -1, bw_pagemap = -1;

static int bw_floor_open(void)
{
    if (bw_pagemap >= 0)
        return 0;
    bw_uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | 1 /* UFFD_USER_MODE_ONLY */);
    if (bw_uffd < 0)
        return bench_fail("userfaultfd: %s", strerror(errno));
    struct uffdio_api api = {.api = UFFD_API, .features = (1u << 15) | (1u << 13)}; /* WP_ASYNC, WP_UNPOPULATED */
    if (ioctl(bw_uffd, UFFDIO_API, &api))
        return bench_fail("UFFDIO_API: %s", strerror(errno));
    bw_pagemap = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
    return bw_pagemap < 0 ? bench_fail("/proc/self/pagemap: %s", strerror(errno)) : 0;
}

static int fl_watch(void *p, size_t size)
{
    struct uffdio_register reg = {.range = {(uintptr_t)p, size}, .mode = UFFDIO_REGISTER_MODE_WP};
    struct uffdio_writeprotect wp = {.range = {(uintptr_t)p, size}, .mode = UFFDIO_WRITEPROTECT_MODE_WP};
    if (ioctl(bw_uffd, UFFDIO_REGISTER, &reg) || ioctl(bw_uffd, UFFDIO_WRITEPROTECT, &wp))
        return bench_fail("userfaultfd register: %s", strerror(errno));
    return 0;
}

static int fl_1g_setup(bench_batch *b)
{
    if (bw_floor_open())
        return -1;
    void *p = mmap(NULL, REGION_1G, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return bench_fail("mmap 1 GiB: %s", strerror(errno));
    b->addr[0] = p;
    return fl_watch(p, REGION_1G);
}
static int fl_1g_op(bench_batch *b, size_t i)
{
    (void)i;
    static struct bw_page_region vec[REGION_1G / 4096 / STRIDE + 64];
    struct bw_pm_scan_arg a = {
        .size = sizeof a, .flags = 1 | 2, /* PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC */
        .start = (uintptr_t)b->addr[0], .end = (uintptr_t)b->addr[0] + REGION_1G,
        .vec = (uintptr_t)vec, .vec_len = sizeof vec / sizeof vec[0],
        .category_mask = 2, .return_mask = 2, /* PAGE_IS_WRITTEN */
    };
    long n = ioctl(bw_pagemap, BW_PAGEMAP_SCAN, &a);
    if (n < 0)
        return bench_fail("PAGEMAP_SCAN: %s", strerror(errno));
    bench_escape(vec);
    return 0;
}
static int fl_unmap0(bench_batch *b)
{
    munmap(b->addr[0], REGION_1G);
    b->addr[0] = NULL;
    return 0;
}

/* ---- the host's writes -------------------------------------------------------------- */
typedef struct write_ctx {
    bool first_after_reset;
} write_ctx;

static int hm_w_setup(bench_batch *b)
{
    void *p = NULL;
    if (bench_check_hr(hostmem_virtual_alloc(mgr(b), NULL, WRITE_PAGES * b->env->page,
                                             MEM_RESERVE | MEM_COMMIT | MEM_WRITE_WATCH, PAGE_READWRITE,
                                             eTaskCritical, &p),
                       "hostmem_virtual_alloc(MEM_WRITE_WATCH)"))
        return -1;
    b->addr[0] = p;
    memset(p, 1, WRITE_PAGES * b->env->page); /* populated */
    return 0;
}
static int hm_w_prep(bench_batch *b, size_t i)
{
    (void)i;
    const write_ctx *c = b->ctx;
    if (c->first_after_reset)
        return bench_check_hr(hostmem_reset_write_watch(mgr(b), b->addr[0], WRITE_PAGES * b->env->page),
                              "hostmem_reset_write_watch");
    return 0;
}
static int w_op(bench_batch *b, size_t i)
{
    char *p = b->addr[0];
    for (size_t k = 0; k < WRITE_PAGES; k++)
        ((volatile char *)p)[k * b->env->page + (i & 63)] = (char)i;
    return 0;
}
static int fl_w_setup(bench_batch *b)
{
    void *p = mmap(NULL, WRITE_PAGES * b->env->page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return bench_fail("mmap: %s", strerror(errno));
    memset(p, 1, WRITE_PAGES * b->env->page);
    b->addr[0] = p;
    return 0;
}
static int fl_w_teardown(bench_batch *b)
{
    munmap(b->addr[0], WRITE_PAGES * b->env->page);
    b->addr[0] = NULL;
    return 0;
}

static const bench_impl hm_1g = {"hostmem", hm_1g_setup, hm_1g_prep, hm_1g_op, hm_release0};
static const bench_impl fl_1g = {"PAGEMAP_SCAN(WP_MATCHING)", fl_1g_setup, hm_1g_prep, fl_1g_op, fl_unmap0};
static const bench_impl hm_w = {"hostmem (watched)", hm_w_setup, hm_w_prep, w_op, hm_release0};
static const bench_impl fl_w = {"unwatched page", fl_w_setup, NULL, w_op, fl_w_teardown};

int bench_family_watch(bench_env *env)
{
    void *probe = NULL;
    HRESULT hr = hostmem_virtual_alloc(env->m, NULL, env->page, MEM_RESERVE | MEM_WRITE_WATCH, PAGE_READWRITE,
                                       eTaskCritical, &probe);
    if (hr == E_NOTIMPL) {
        fprintf(stderr, "hostmem-bench: watch: this kernel has no write watch (E_NOTIMPL), skipped\n");
        return 0;
    }
    if (bench_check_hr(hr, "hostmem_virtual_alloc(MEM_WRITE_WATCH)") ||
        bench_check_hr(hostmem_virtual_free(env->m, probe, 0, MEM_RELEASE), "release"))
        return -1;
    static write_ctx steady = {false}, first = {true};
    int rc = 0;
    bench_case c = {.operation = "write watch", .variant = "get+reset, 1% written", .size = REGION_1G,
                    .batch = bench_batch_size(env, 16), .hostmem = &hm_1g, .floors = {&fl_1g},
                    .target = {BENCH_TARGET_RATIO_P50, 1.25}};
    rc |= bench_run_case(env, &c);
    c = (bench_case){.operation = "host write", .variant = "64 pages, written before", .size = WRITE_PAGES * env->page,
                     .batch = bench_batch_size(env, 256), .hostmem = &hm_w, .floors = {&fl_w}, .ctx = &steady,
                     .target = {BENCH_TARGET_RATIO_P50, 1.25}};
    rc |= bench_run_case(env, &c);
    c.variant = "64 pages, first after reset";
    c.ctx = &first;
    c.target = (bench_target){BENCH_TARGET_NONE, 0};
    rc |= bench_run_case(env, &c);
    return rc ? -1 : 0;
}
