/*
 * util.h: helpers shared by the API suites (and the fault suite).  Only the
 * public header of hostmem; the rest is POSIX, used to look at the process
 * the way the kernel sees it (foreign mappings, /proc/self/maps, faults).
 */
#ifndef HOSTMEM_TEST_UTIL_H
#define HOSTMEM_TEST_UTIL_H

#include <criterion/criterion.h>
#include <hostmem/hostmem.h>

#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#define HM_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HM_ASAN 1
#endif
#endif
#ifdef HM_ASAN
#include <sanitizer/lsan_interface.h>
#endif

#define GRAN ((size_t)65536)
#define KiB ((size_t)1 << 10)
#define MiB ((size_t)1 << 20)
#define GiB ((size_t)1 << 30)
#define USER_END ((uintptr_t)1 << 47)

#define HM_UNUSED __attribute__((unused))

static HM_UNUSED size_t pg(void)
{
    return (size_t)sysconf(_SC_PAGESIZE);
}

static HM_UNUSED uintptr_t up(uintptr_t x, size_t a)
{
    return (x + a - 1) & ~(uintptr_t)(a - 1);
}

/* "Large" reservations: 16 GiB; the 1 TiB cases scale down with HOSTMEM_TEST_SMALL_VA=1
 * (valgrind refuses 64 GiB and more, TSan about 1 TiB). */
static HM_UNUSED size_t huge_size(void)
{
    const char *e = getenv("HOSTMEM_TEST_SMALL_VA");
    return (e && e[0] == '1') ? 16 * GiB : ((size_t)1 << 40);
}

/* HRESULT equality with symbolic names in the message. */
#define HR_EQ(expr, want)                                                                       \
    do {                                                                                        \
        HRESULT hr_got_ = (expr);                                                               \
        HRESULT hr_want_ = (want);                                                              \
        cr_assert_eq(hr_got_, hr_want_, "%s\n  got  %s (0x%08" PRIx32 ")\n  want %s (0x%08" PRIx32 ")", \
                     #expr, hostmem_hresult_name(hr_got_), (uint32_t)hr_got_,                   \
                     hostmem_hresult_name(hr_want_), (uint32_t)hr_want_);                       \
    } while (0)

#define HR_OK(expr) HR_EQ(expr, S_OK)

/* ---- managers ------------------------------------------------------------ */
static HM_UNUSED hostmem_manager *mk(const hostmem_config *c)
{
    hostmem_manager *m = NULL;
    HR_OK(hostmem_create(c, &m));
    cr_assert_not_null(m);
    return m;
}

static HM_UNUSED hostmem_manager *mk_limit(size_t commit_limit)
{
    hostmem_config c;
    hostmem_config_init(&c);
    c.commit_limit = commit_limit;
    return mk(&c);
}

static HM_UNUSED void *alloc_ok(hostmem_manager *m, void *addr, size_t size, DWORD type, DWORD prot)
{
    void *p = (void *)0x1;
    HR_OK(hostmem_virtual_alloc(m, addr, size, type, prot, eTaskCritical, &p));
    cr_assert_not_null(p);
    return p;
}

static HM_UNUSED void *reserve(hostmem_manager *m, void *addr, size_t size)
{
    return alloc_ok(m, addr, size, MEM_RESERVE, PAGE_READWRITE);
}

static HM_UNUSED void *commit(hostmem_manager *m, void *addr, size_t size, DWORD prot)
{
    return alloc_ok(m, addr, size, MEM_COMMIT, prot);
}

/* Expect a virtual_alloc failure; *out_mem must come back NULL (A4). */
static HM_UNUSED HRESULT alloc_fail(hostmem_manager *m, void *addr, size_t size, DWORD type, DWORD prot,
                                    EMemoryCriticalLevel level)
{
    void *p = (void *)0x1;
    HRESULT hr = hostmem_virtual_alloc(m, addr, size, type, prot, level, &p);
    cr_assert(FAILED(hr), "virtual_alloc(%p, %zu, 0x%x, 0x%x, %d) succeeded at %p", addr, size,
              (unsigned)type, (unsigned)prot, (int)level, p);
    cr_assert_null(p, "*out_mem not NULL after %s", hostmem_hresult_name(hr));
    return hr;
}

static HM_UNUSED MEMORY_BASIC_INFORMATION q(hostmem_manager *m, const void *addr)
{
    MEMORY_BASIC_INFORMATION mbi;
    SIZE_T written = 0;
    memset(&mbi, 0xa5, sizeof mbi);
    HR_OK(hostmem_virtual_query(m, addr, &mbi, sizeof mbi, &written));
    cr_assert_eq(written, sizeof mbi);
    return mbi;
}

static HM_UNUSED hostmem_stats st(hostmem_manager *m)
{
    hostmem_stats s;
    memset(&s, 0xa5, sizeof s);
    HR_OK(hostmem_get_stats(m, &s));
    return s;
}

/* Check one query answer inside a region. */
#define MBI_IS(mbi, base_, abase, aprot, size_, state_, prot_)                                       \
    do {                                                                                             \
        cr_assert_eq((mbi).BaseAddress, (void *)(base_), "BaseAddress %p, want %p", (mbi).BaseAddress, \
                     (void *)(base_));                                                               \
        cr_assert_eq((mbi).AllocationBase, (void *)(abase), "AllocationBase %p, want %p",            \
                     (mbi).AllocationBase, (void *)(abase));                                         \
        cr_assert_eq((mbi).AllocationProtect, (DWORD)(aprot), "AllocationProtect 0x%x, want 0x%x",   \
                     (unsigned)(mbi).AllocationProtect, (unsigned)(aprot));                          \
        cr_assert_eq((mbi).RegionSize, (SIZE_T)(size_), "RegionSize 0x%zx, want 0x%zx",              \
                     (size_t)(mbi).RegionSize, (size_t)(size_));                                     \
        cr_assert_eq((mbi).State, (DWORD)(state_), "State 0x%x, want 0x%x", (unsigned)(mbi).State,   \
                     (unsigned)(state_));                                                            \
        cr_assert_eq((mbi).Protect, (DWORD)(prot_), "Protect 0x%x, want 0x%x",                       \
                     (unsigned)(mbi).Protect, (unsigned)(prot_));                                    \
        cr_assert_eq((mbi).Type, (DWORD)MEM_PRIVATE, "Type 0x%x, want MEM_PRIVATE",                  \
                     (unsigned)(mbi).Type);                                                          \
    } while (0)

/* ---- snapshots of a region (query walk) ------------------------------------ */
#define SNAP_MAX 64
typedef struct snap {
    size_t n;
    MEMORY_BASIC_INFORMATION v[SNAP_MAX];
} snap;

static HM_UNUSED void snap_take(hostmem_manager *m, void *base, size_t size, snap *out)
{
    memset(out, 0, sizeof *out);
    uintptr_t a = (uintptr_t)base, end = (uintptr_t)base + size;
    while (a < end) {
        cr_assert_lt(out->n, SNAP_MAX);
        MEMORY_BASIC_INFORMATION mbi = q(m, (void *)a);
        cr_assert_gt(mbi.RegionSize, 0);
        out->v[out->n++] = mbi;
        a = (uintptr_t)mbi.BaseAddress + mbi.RegionSize;
    }
}

static HM_UNUSED void snap_eq(const snap *a, const snap *b)
{
    cr_assert_eq(a->n, b->n, "query walk: %zu runs before, %zu after", a->n, b->n);
    for (size_t i = 0; i < a->n; i++)
        cr_assert(a->v[i].BaseAddress == b->v[i].BaseAddress && a->v[i].AllocationBase == b->v[i].AllocationBase &&
                      a->v[i].AllocationProtect == b->v[i].AllocationProtect &&
                      a->v[i].RegionSize == b->v[i].RegionSize && a->v[i].State == b->v[i].State &&
                      a->v[i].Protect == b->v[i].Protect && a->v[i].Type == b->v[i].Type,
                  "run %zu differs: base %p size 0x%zx state 0x%x prot 0x%x -> base %p size 0x%zx "
                  "state 0x%x prot 0x%x",
                  i, a->v[i].BaseAddress, (size_t)a->v[i].RegionSize, (unsigned)a->v[i].State,
                  (unsigned)a->v[i].Protect, b->v[i].BaseAddress, (size_t)b->v[i].RegionSize,
                  (unsigned)b->v[i].State, (unsigned)b->v[i].Protect);
}

static HM_UNUSED void stats_eq(const hostmem_stats *a, const hostmem_stats *b)
{
    cr_assert_eq(a->reserved_bytes, b->reserved_bytes, "reserved_bytes %zu -> %zu", (size_t)a->reserved_bytes,
                 (size_t)b->reserved_bytes);
    cr_assert_eq(a->committed_bytes, b->committed_bytes, "committed_bytes %zu -> %zu",
                 (size_t)a->committed_bytes, (size_t)b->committed_bytes);
    cr_assert_eq(a->peak_committed_bytes, b->peak_committed_bytes, "peak_committed_bytes %zu -> %zu",
                 (size_t)a->peak_committed_bytes, (size_t)b->peak_committed_bytes);
    cr_assert_eq(a->region_count, b->region_count, "region_count %zu -> %zu", (size_t)a->region_count,
                 (size_t)b->region_count);
    cr_assert_eq(a->external_bytes, b->external_bytes);
    cr_assert_eq(a->peak_reserved_bytes, b->peak_reserved_bytes, "peak_reserved_bytes %zu -> %zu",
                 (size_t)a->peak_reserved_bytes, (size_t)b->peak_reserved_bytes);
}

/* ---- address space the test controls ------------------------------------- */
/* A 64 KiB-aligned range of `size` bytes that is free right now. */
static HM_UNUSED void *free_va(size_t size)
{
    size_t span = size + 2 * GRAN;
    void *p = mmap(NULL, span, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    cr_assert_neq(p, MAP_FAILED);
    uintptr_t a = up((uintptr_t)p + GRAN, GRAN);
    munmap(p, span);
    return (void *)a;
}

/* A private anonymous mapping of `size` bytes with unmapped pages on both sides,
 * so that the kernel cannot merge it with a neighbour. */
static HM_UNUSED void *foreign_map(size_t size, int prot)
{
    size_t p = pg();
    char *a = mmap(NULL, size + 2 * p, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(a, MAP_FAILED);
    munmap(a, p);
    munmap(a + p + size, p);
    cr_assert_eq(mprotect(a + p, size, prot), 0);
    return a + p;
}

/* ---- faults without dying -------------------------------------------------- */
static sigjmp_buf hm_probe_jmp;
static volatile sig_atomic_t hm_probe_sig;

static HM_UNUSED void hm_probe_handler(int sig)
{
    hm_probe_sig = sig;
    siglongjmp(hm_probe_jmp, 1);
}

/* 1 when reading (write == 0) or writing `value` at addr faults. */
static HM_UNUSED int probe(volatile unsigned char *addr, int write, unsigned char value)
{
    struct sigaction sa, old_segv, old_bus;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = hm_probe_handler;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, &old_segv);
    sigaction(SIGBUS, &sa, &old_bus);
    hm_probe_sig = 0;
    int faulted = 0;
    if (sigsetjmp(hm_probe_jmp, 1) == 0) {
        if (write)
            *addr = value;
        else
            (void)*addr;
    } else {
        faulted = 1;
    }
    sigaction(SIGSEGV, &old_segv, NULL);
    sigaction(SIGBUS, &old_bus, NULL);
    return faulted;
}

static HM_UNUSED int faults_read(void *addr)
{
    return probe((volatile unsigned char *)addr, 0, 0);
}

static HM_UNUSED int faults_write(void *addr, unsigned char value)
{
    return probe((volatile unsigned char *)addr, 1, value);
}

static HM_UNUSED int all_bytes(const void *p, size_t n, unsigned char v)
{
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++)
        if (c[i] != v)
            return 0;
    return 1;
}

/* LSan does not fail a Criterion run by itself: check at the end of every test. */
static HM_UNUSED void hm_leak_check(void)
{
#ifdef HM_ASAN
    if (__lsan_do_recoverable_leak_check())
        abort();
#endif
}

#endif
