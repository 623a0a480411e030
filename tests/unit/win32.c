/*
 * W1 and W2 through the OS seam: a kernel without write watch (the
 * capability faked away), write-watch and guard primitives that fail, and
 * hostmem_handle_fault() fed made-up fault reports.
 */
#define _GNU_SOURCE 1
#include "../api/util.h"

#include "internal.h"

#include <pthread.h>

static struct {
    int fail_watch, fail_scan, fail_reset, fail_protect; /* errno for a coming call, 0: pass */
    int skip_scan, skip_reset;  /* calls that pass before fail_scan / fail_reset applies */
    bool protect_half;          /* a failing protect applies to the first half of its range */
    int watch_calls;
} W;

static int w_watch(void *addr, size_t size)
{
    W.watch_calls++;
    int e = W.fail_watch;
    W.fail_watch = 0;
    return e ? e : hostmem__os_linux.watch(addr, size);
}
static int w_reset(void *addr, size_t size)
{
    if (W.skip_reset > 0) {
        W.skip_reset--;
        return hostmem__os_linux.watch_reset(addr, size);
    }
    int e = W.fail_reset;
    W.fail_reset = 0;
    return e ? e : hostmem__os_linux.watch_reset(addr, size);
}
static int w_scan(void *addr, size_t size, bool reset, size_t max_pages, hostmem__os_range *out, size_t len,
                  size_t *out_n, uintptr_t *out_next)
{
    if (W.skip_scan > 0) {
        W.skip_scan--;
        return hostmem__os_linux.watch_scan(addr, size, reset, max_pages, out, len, out_n, out_next);
    }
    int e = W.fail_scan;
    W.fail_scan = 0;
    return e ? e : hostmem__os_linux.watch_scan(addr, size, reset, max_pages, out, len, out_n, out_next);
}
static int w_protect(void *addr, size_t size, unsigned access)
{
    int e = W.fail_protect;
    W.fail_protect = 0;
    if (e && W.protect_half) /* as the kernel may: part of the range, then the error */
        (void)hostmem__os_linux.protect(addr, size / 2 & ~(pg() - 1), access);
    return e ? e : hostmem__os_linux.protect(addr, size, access);
}

static hostmem__os w_os;

static void w_init(void)
{
    memset(&W, 0, sizeof W);
    w_os = hostmem__os_linux;
    w_os.watch = w_watch;
    w_os.watch_reset = w_reset;
    w_os.watch_scan = w_scan;
    w_os.protect = w_protect;
    hostmem__os_set(&w_os);
}

static void w_fini(void)
{
    hostmem__os_set(NULL);
    hostmem__os_caps_set(NULL);
    hm_leak_check();
}

TestSuite(w1_caps, .init = w_init, .fini = w_fini, .timeout = 30);
TestSuite(w2_fault, .init = w_init, .fini = w_fini, .timeout = 30);

Test(w1_caps, without_the_kernels_support_not_implemented)
{
    hostmem__os_caps fake = *hostmem__os_caps_get();
    cr_assert(fake.write_watch, "this kernel (6.7+) should have write watch");
    fake.write_watch = false;
    hostmem__os_caps_set(&fake);
    hostmem_manager *m = mk(NULL);
    hostmem_stats before = st(m);
    HR_EQ(alloc_fail(m, NULL, GRAN, MEM_RESERVE | MEM_WRITE_WATCH, PAGE_READWRITE, eTaskCritical), E_NOTIMPL);
    HR_EQ(alloc_fail(m, NULL, GRAN, MEM_RESERVE | MEM_COMMIT | MEM_WRITE_WATCH, PAGE_READWRITE, eTaskCritical),
          E_NOTIMPL);
    /* still validated first: without MEM_RESERVE it is an invalid type */
    HR_EQ(alloc_fail(m, NULL, GRAN, MEM_WRITE_WATCH, PAGE_READWRITE, eTaskCritical), E_INVALIDARG);
    hostmem_stats after = st(m);
    stats_eq(&before, &after);
    cr_assert_eq(after.watched_bytes, 0);
    cr_assert_eq(W.watch_calls, 0);
    /* plain regions are unaffected */
    char *p = alloc_ok(m, NULL, GRAN, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE);
    p[0] = 1;
    hostmem__os_caps_set(NULL);
    char *w = alloc_ok(m, NULL, GRAN, MEM_RESERVE | MEM_COMMIT | MEM_WRITE_WATCH, PAGE_READWRITE);
    cr_assert_eq(W.watch_calls, 1);
    cr_assert_eq(st(m).watched_bytes, GRAN);
    (void)w;
    hostmem_destroy(m);
}

/* Pages are tracked as they are committed: a reservation asks the kernel
 * for nothing, and a reserve-and-commit whose pages cannot be tracked is
 * undone whole. */
Test(w1_caps, watch_refused_the_reservation_is_undone)
{
    hostmem_manager *m = mk(NULL);
    hostmem_stats before = st(m);
    W.fail_watch = ENOMEM;
    HR_EQ(alloc_fail(m, NULL, GRAN, MEM_RESERVE | MEM_COMMIT | MEM_WRITE_WATCH, PAGE_READWRITE, eTaskCritical),
          E_OUTOFMEMORY);
    hostmem_stats after = st(m);
    stats_eq(&before, &after);
    W.fail_watch = ENOMEM;
    char *b = alloc_ok(m, NULL, 4 * MiB, MEM_RESERVE | MEM_WRITE_WATCH, PAGE_READWRITE);
    cr_assert_eq(W.watch_calls, 1, "a reservation registers nothing");
    W.fail_watch = 0;
    HR_OK(hostmem_virtual_free(m, b, 0, MEM_RELEASE));
    hostmem_destroy(m);
}

/* A commit's new pages are marked unwritten after the kernel took the
 * commit: a refusal there undoes the commit, and the pages stay reserved. */
Test(w1_caps, commit_whose_pages_cannot_be_marked_changes_nothing)
{
    size_t P = pg();
    hostmem_manager *m = mk(NULL);
    hostmem_stats before = st(m);
    W.fail_reset = ENOMEM;
    HR_EQ(alloc_fail(m, NULL, GRAN, MEM_RESERVE | MEM_COMMIT | MEM_WRITE_WATCH, PAGE_READWRITE, eTaskCritical),
          E_OUTOFMEMORY);
    hostmem_stats after = st(m);
    stats_eq(&before, &after);
    char *b = alloc_ok(m, NULL, 16 * P, MEM_RESERVE | MEM_WRITE_WATCH, PAGE_READWRITE);
    before = st(m);
    snap s0, s1;
    snap_take(m, b, 16 * P, &s0);
    W.fail_reset = ENOMEM;
    HR_EQ(alloc_fail(m, b + 4 * P, 4 * P, MEM_COMMIT, PAGE_READWRITE, eTaskCritical), E_OUTOFMEMORY);
    snap_take(m, b, 16 * P, &s1);
    snap_eq(&s0, &s1);
    after = st(m);
    stats_eq(&before, &after);
    void *out = NULL, *res[16];
    HR_OK(hostmem_virtual_alloc(m, b + 4 * P, 4 * P, MEM_COMMIT, PAGE_READWRITE, eTaskCritical, &out));
    cr_assert_eq(((volatile char *)b)[5 * P], 0);
    b[6 * P] = 1;
    ULONG_PTR count = 16;
    DWORD gran = 0;
    HR_OK(hostmem_get_write_watch(m, 0, b, 16 * P, res, &count, &gran));
    cr_assert_eq(count, 1);
    cr_assert_eq(res[0], b + 6 * P);
    hostmem_destroy(m);
}

/* A get with reset that fails part-way gives back as written the pages it
 * had reset already (the caller never saw them), and a reset_write_watch
 * that fails part-way loses no write either. */
Test(w1_caps, reset_failing_part_way_loses_no_write)
{
    size_t P = pg();
    hostmem_manager *m = mk(NULL);
    char *b = alloc_ok(m, NULL, 16 * P, MEM_RESERVE | MEM_COMMIT | MEM_WRITE_WATCH, PAGE_READWRITE);
    DWORD old = 0;
    HR_OK(hostmem_virtual_protect(m, b + 8 * P, 8 * P, PAGE_EXECUTE_READWRITE, &old)); /* two runs */
    b[0] = 1;
    b[9 * P] = 1;
    void *res[16];
    ULONG_PTR count = 16;
    DWORD gran = 0;
    W.skip_scan = 1; /* the first run's scan (and its reset) works, the second fails */
    W.fail_scan = ENOMEM;
    HR_EQ(hostmem_get_write_watch(m, WRITE_WATCH_FLAG_RESET, b, 16 * P, res, &count, &gran), E_OUTOFMEMORY);
    cr_assert_eq(count, 16, "a failed call leaves *count");
    HR_OK(hostmem_get_write_watch(m, 0, b, 16 * P, res, &count, &gran));
    cr_assert_eq(count, 2, "written pages after the failed reset: %lu", (unsigned long)count);
    cr_assert(res[0] == b && res[1] == b + 9 * P);
    /* and the pages put back read as written until a reset that works */
    b[3 * P] = 1;
    count = 16;
    HR_OK(hostmem_get_write_watch(m, WRITE_WATCH_FLAG_RESET, b, 16 * P, res, &count, &gran));
    cr_assert_eq(count, 3);
    cr_assert(res[0] == b && res[1] == b + 3 * P && res[2] == b + 9 * P);
    count = 16;
    HR_OK(hostmem_get_write_watch(m, 0, b, 16 * P, res, &count, &gran));
    cr_assert_eq(count, 0);

    b[P] = 1;
    b[12 * P] = 1;
    W.skip_reset = 1;
    W.fail_reset = ENOMEM;
    HR_EQ(hostmem_reset_write_watch(m, b, 16 * P), E_OUTOFMEMORY);
    count = 16;
    HR_OK(hostmem_get_write_watch(m, 0, b, 16 * P, res, &count, &gran));
    cr_assert_eq(count, 2, "written pages after the failed reset_write_watch: %lu", (unsigned long)count);
    cr_assert(res[0] == b + P && res[1] == b + 12 * P);
    HR_OK(hostmem_reset_write_watch(m, b, 16 * P));
    count = 16;
    HR_OK(hostmem_get_write_watch(m, 0, b, 16 * P, res, &count, &gran));
    cr_assert_eq(count, 0);
    hostmem_destroy(m);
}

/* Whether any mapping overlapping [p, p + size) that has no access carries
 * the kernel's commit charge (VmFlags "ac" in /proc/self/smaps). */
static bool inaccessible_charged(const void *p, size_t size)
{
    FILE *f = fopen("/proc/self/smaps", "r");
    cr_assert(f);
    char line[512], perms[8] = "";
    unsigned long lo = 0, hi = 0;
    bool in = false, charged = false;
    while (fgets(line, sizeof line, f)) {
        unsigned long a, z;
        if (sscanf(line, "%lx-%lx %7s", &a, &z, perms) == 3) {
            lo = a;
            hi = z;
            in = lo < (uintptr_t)p + size && hi > (uintptr_t)p && strncmp(perms, "---", 3) == 0;
        } else if (in && strncmp(line, "VmFlags:", 8) == 0 && strstr(line, " ac")) {
            charged = true;
        }
    }
    fclose(f);
    return charged;
}

/* A commit refused after the kernel applied part of it puts the pages back
 * as reserved pages are: without the kernel's commit charge (S6), plain and
 * write-watch regions alike. */
Test(w1_caps, refused_commit_leaves_no_commit_charge)
{
    size_t P = pg();
    hostmem_manager *m = mk(NULL);
    for (int watch = 0; watch < 2; watch++) {
        size_t size = 32 * MiB;
        char *b = alloc_ok(m, NULL, size, MEM_RESERVE | (watch ? MEM_WRITE_WATCH : 0), PAGE_READWRITE);
        void *out = NULL;
        HR_OK(hostmem_virtual_alloc(m, b, P, MEM_COMMIT, PAGE_READWRITE, eTaskCritical, &out));
        b[0] = 1;
        cr_assert(!inaccessible_charged(b + P, size - P), "charged before");
        W.protect_half = true;
        W.fail_protect = ENOMEM;
        HR_EQ(alloc_fail(m, b + P, size - P, MEM_COMMIT, PAGE_READWRITE, eTaskCritical), E_OUTOFMEMORY);
        W.protect_half = false;
        cr_assert(!inaccessible_charged(b + P, size - P), "reserved pages left charged (write watch %d)", watch);
        MEMORY_BASIC_INFORMATION mbi = q(m, b + P);
        cr_assert_eq(mbi.State, MEM_RESERVE);
        cr_assert_eq(b[0], 1, "the committed page kept its contents");
        HR_OK(hostmem_virtual_free(m, b, 0, MEM_RELEASE));
    }
    hostmem_destroy(m);
}

Test(w1_caps, scan_refused)
{
    size_t P = pg();
    hostmem_manager *m = mk(NULL);
    char *b = alloc_ok(m, NULL, 16 * P, MEM_RESERVE | MEM_COMMIT | MEM_WRITE_WATCH, PAGE_READWRITE);
    b[P] = 1;
    void *res[16];
    ULONG_PTR count = 16;
    DWORD gran = 0;
    W.fail_scan = ENOMEM;
    HR_EQ(hostmem_get_write_watch(m, WRITE_WATCH_FLAG_RESET, b, 16 * P, res, &count, &gran), E_OUTOFMEMORY);
    cr_assert_eq(count, 16);
    /* a decommit that cannot read what was written changes nothing */
    snap s0, s1;
    snap_take(m, b, 16 * P, &s0);
    W.fail_scan = ENOMEM;
    HR_EQ(hostmem_virtual_free(m, b, 16 * P, MEM_DECOMMIT), E_OUTOFMEMORY);
    snap_take(m, b, 16 * P, &s1);
    snap_eq(&s0, &s1);
    cr_assert_eq(b[P], 1);
    W.fail_reset = ENOMEM;
    HR_EQ(hostmem_reset_write_watch(m, b, 16 * P), E_OUTOFMEMORY);
    HR_OK(hostmem_get_write_watch(m, 0, b, 16 * P, res, &count, &gran));
    cr_assert_eq(count, 1);
    cr_assert_eq(res[0], b + P);
    hostmem_destroy(m);
}

/* A decommit needs no tracking of its pages (they are reserved again); the
 * commit that brings them back asks for it, and one refused changes
 * nothing: what was written before the decommit still reads as written. */
Test(w1_caps, recommit_whose_pages_cannot_be_tracked_changes_nothing)
{
    size_t P = pg();
    hostmem_manager *m = mk(NULL);
    char *b = alloc_ok(m, NULL, 16 * P, MEM_RESERVE | MEM_COMMIT | MEM_WRITE_WATCH, PAGE_READWRITE);
    b[P] = 1;
    int calls = W.watch_calls;
    HR_OK(hostmem_virtual_free(m, b, 4 * P, MEM_DECOMMIT));
    cr_assert_eq(W.watch_calls, calls, "a decommit registers nothing");
    hostmem_stats before = st(m);
    snap s0, s1;
    snap_take(m, b, 16 * P, &s0);
    W.fail_watch = ENOMEM;
    HR_EQ(alloc_fail(m, b, 4 * P, MEM_COMMIT, PAGE_READWRITE, eTaskCritical), E_OUTOFMEMORY);
    snap_take(m, b, 16 * P, &s1);
    snap_eq(&s0, &s1);
    hostmem_stats after = st(m);
    stats_eq(&before, &after);
    void *out = NULL, *res[16];
    HR_OK(hostmem_virtual_alloc(m, b, 4 * P, MEM_COMMIT, PAGE_READWRITE, eTaskCritical, &out));
    cr_assert_eq(((volatile char *)b)[2 * P], 0);
    ULONG_PTR count = 16;
    DWORD gran = 0;
    HR_OK(hostmem_get_write_watch(m, 0, b, 16 * P, res, &count, &gran));
    cr_assert_eq(count, 1);
    cr_assert_eq(res[0], b + P);
    hostmem_destroy(m);
}

/* ---- hostmem_handle_fault() with made-up reports ------------------------------------ */
static hostmem_fault fault_at(void *addr, int sig)
{
    siginfo_t si;
    memset(&si, 0, sizeof si);
    si.si_signo = sig;
    si.si_code = SEGV_ACCERR;
    si.si_addr = addr;
    return hostmem_handle_fault(&si);
}

/* Two reports from one thread: the answers, first * 4 + second. */
static void *fault_twice_from_thread(void *addr)
{
    hostmem_fault a = fault_at(addr, SIGSEGV), b = fault_at(addr, SIGSEGV);
    return (void *)(uintptr_t)(a * 4 + b);
}

Test(w2_fault, answers_without_a_real_fault)
{
    size_t P = pg();
    hostmem_manager *m = mk(NULL), *m2 = mk(NULL);
    char *r = reserve(m, NULL, 8 * P);
    commit(m, r, 2 * P, PAGE_READWRITE);
    commit(m, r + 2 * P, 2 * P, PAGE_READONLY | PAGE_GUARD);
    char *o = alloc_ok(m2, NULL, 2 * P, MEM_RESERVE | MEM_COMMIT, PAGE_EXECUTE_READ | PAGE_GUARD);
    cr_assert_eq(st(m).guard_pages, 2);
    cr_assert_eq(fault_at(NULL, SIGSEGV), HOSTMEM_FAULT_NOT_OURS);
    cr_assert_eq(hostmem_handle_fault(NULL), HOSTMEM_FAULT_NOT_OURS);
    cr_assert_eq(fault_at(r + 3 * P, SIGILL), HOSTMEM_FAULT_NOT_OURS);
    cr_assert_eq(fault_at(r + 6 * P, SIGSEGV), HOSTMEM_FAULT_ACCESS, "reserved page");
    cr_assert_eq(fault_at(r, SIGSEGV), HOSTMEM_FAULT_ACCESS, "read-write page");
    cr_assert_eq(fault_at(r + 3 * P + 5, SIGSEGV), HOSTMEM_FAULT_GUARD);
    cr_assert_eq(q(m, r + 3 * P).Protect, PAGE_READONLY);
    cr_assert_eq(q(m, r + 2 * P).Protect, PAGE_READONLY | PAGE_GUARD);
    cr_assert_eq(st(m).guard_pages, 1);
    cr_assert_eq(r[3 * P], 0, "readable now");
    /* other threads that faulted there before the guard went retry, once each */
    pthread_t t;
    void *ans;
    for (int k = 0; k < 2; k++) {
        pthread_create(&t, NULL, fault_twice_from_thread, r + 3 * P);
        pthread_join(t, &ans);
        cr_assert_eq((uintptr_t)ans, HOSTMEM_FAULT_GUARD * 4 + HOSTMEM_FAULT_ACCESS,
                     "a racing thread's report retries, only once (thread %d)", k);
    }
    commit(m, r + 2 * P, 2 * P, PAGE_READONLY | PAGE_GUARD);
    cr_assert_eq(fault_at(r + 3 * P + 5, SIGSEGV), HOSTMEM_FAULT_GUARD);
    cr_assert_eq(fault_at(r + 3 * P, SIGSEGV), HOSTMEM_FAULT_ACCESS, "the hitting thread's next fault is plain");
    cr_assert_eq(fault_at(o + P, SIGBUS), HOSTMEM_FAULT_GUARD, "any manager");
    cr_assert_eq(q(m2, o + P).Protect, PAGE_EXECUTE_READ);
    cr_assert_eq(st(m2).guard_pages, 1);
    /* the kernel refuses the new protection: the guard stays */
    W.fail_protect = ENOMEM;
    cr_assert_eq(fault_at(r + 2 * P, SIGSEGV), HOSTMEM_FAULT_ACCESS);
    cr_assert_eq(q(m, r + 2 * P).Protect, PAGE_READONLY | PAGE_GUARD);
    cr_assert(faults_read(r + 2 * P));
    hostmem_destroy(m2);
    cr_assert_eq(fault_at(o + P, SIGSEGV), HOSTMEM_FAULT_NOT_OURS, "destroyed manager");
    hostmem_destroy(m);
}

Test(w2_fault, many_hits_without_a_call_between)
{
    /* More hits in one region than the spare runs reserved for them. */
    size_t P = pg(), pages = 64;
    hostmem_manager *m = mk(NULL);
    char *r = alloc_ok(m, NULL, pages * P, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE | PAGE_GUARD);
    size_t hits = 0;
    for (size_t i = 1; i < pages; i += 2) {
        if (!(q(m, r + i * P).Protect & PAGE_GUARD))
            continue; /* cleared with a neighbour's hit: it would not fault */
        cr_assert_eq(fault_at(r + i * P, SIGSEGV), HOSTMEM_FAULT_GUARD);
        hits++;
    }
    cr_assert_geq(hits, 16, "only %zu hits one page at a time", hits);
    for (size_t i = 1; i < pages; i += 2) {
        cr_assert_eq(q(m, r + i * P).Protect, PAGE_READWRITE, "page %zu", i);
        r[i * P] = 1;
    }
    /* the runs stayed canonical: a query walk matches the kernel's view */
    size_t guards = st(m).guard_pages;
    cr_assert_leq(guards, pages / 2);
    for (size_t i = 0; i < pages; i += 2) {
        DWORD p = q(m, r + i * P).Protect;
        cr_assert(p == PAGE_READWRITE || p == (PAGE_READWRITE | PAGE_GUARD));
        cr_assert_eq(faults_read(r + i * P), p != PAGE_READWRITE, "page %zu", i);
    }
    hostmem_destroy(m);
}
