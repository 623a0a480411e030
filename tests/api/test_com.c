/*
 * C1: a host written in the hosting interface's style -- every call through
 * lpVtbl, its own ICLRMemoryNotificationCallback object -- runs the demo
 * host's workload (a garbage-collected heap under a commit limit) through
 * <hostmem/mscoree.h>; plus IUnknown's rules: IIDs, QueryInterface,
 * reference counts, who holds whom.
 */
#define COBJMACROS /* the SDK's C macros, as hosts written in C use them */
#include <criterion/criterion.h>
#include <hostmem/mscoree.h>

#include <stdatomic.h>
#include <string.h>

#define MiB ((SIZE_T)1 << 20)

static void com_fini(void) {}
TestSuite(c1_com, .fini = com_fini, .timeout = 60);

/* ---- the host's notification callback: a COM object of its own ------------------ */
typedef struct host_callback {
    ICLRMemoryNotificationCallback iface;
    atomic_uint refs;
    unsigned notices, lows;
    EMemoryAvailable last;
} host_callback;

static HRESULT STDMETHODCALLTYPE cb_qi(ICLRMemoryNotificationCallback *This, REFIID riid, void **ppv)
{
    if (IsEqualIID(riid, &IID_IUnknown) || IsEqualIID(riid, &IID_ICLRMemoryNotificationCallback)) {
        ICLRMemoryNotificationCallback_AddRef(This);
        *ppv = This;
        return S_OK;
    }
    *ppv = NULL;
    return E_NOINTERFACE;
}
static ULONG STDMETHODCALLTYPE cb_add_ref(ICLRMemoryNotificationCallback *This)
{
    return atomic_fetch_add(&((host_callback *)This)->refs, 1) + 1;
}
static ULONG STDMETHODCALLTYPE cb_release(ICLRMemoryNotificationCallback *This)
{
    return atomic_fetch_sub(&((host_callback *)This)->refs, 1) - 1; /* static storage: nothing to free */
}
static HRESULT STDMETHODCALLTYPE cb_notify(ICLRMemoryNotificationCallback *This, EMemoryAvailable state)
{
    host_callback *h = (host_callback *)This;
    h->notices++;
    h->lows += state == eMemoryAvailableLow;
    h->last = state;
    return S_OK;
}
static const ICLRMemoryNotificationCallbackVtbl cb_vtbl = {cb_qi, cb_add_ref, cb_release, cb_notify};

Test(c1_com, iids_and_vtable_order)
{
    const IID mm = {0x7BC698D1, 0xF9E3, 0x4460, {0x9C, 0xDE, 0xD0, 0x42, 0x48, 0xE9, 0xFA, 0x25}};
    const IID hm = {0x1831991C, 0xCC53, 0x4A31, {0xB2, 0x18, 0x04, 0xE9, 0x10, 0x44, 0x64, 0x79}};
    cr_assert_eq(memcmp(&IID_IHostMemoryManager, &mm, sizeof mm), 0);
    cr_assert_eq(memcmp(&IID_IHostMalloc, &hm, sizeof hm), 0);
    cr_assert_eq(IID_IUnknown.Data4[0], 0xC0);
    cr_assert_eq(IID_IUnknown.Data4[7], 0x46);
    cr_assert_eq(IID_ICLRMemoryNotificationCallback.Data1, 0x47EB8E57u);
    cr_assert_eq(E_NOINTERFACE, (HRESULT)0x80004002);
    /* mscoree.h order: IUnknown, then CreateMalloc ... ReleasedVirtualAddressSpace */
    cr_assert_eq(offsetof(IHostMemoryManagerVtbl, CreateMalloc), 3 * sizeof(void *));
    cr_assert_eq(offsetof(IHostMemoryManagerVtbl, VirtualAlloc), 4 * sizeof(void *));
    cr_assert_eq(offsetof(IHostMemoryManagerVtbl, GetMemoryLoad), 8 * sizeof(void *));
    cr_assert_eq(offsetof(IHostMemoryManagerVtbl, ReleasedVirtualAddressSpace), 12 * sizeof(void *));
    cr_assert_eq(sizeof(IHostMemoryManagerVtbl), 13 * sizeof(void *));
    cr_assert_eq(offsetof(IHostMallocVtbl, Alloc), 3 * sizeof(void *));
    cr_assert_eq(offsetof(IHostMallocVtbl, Free), 5 * sizeof(void *));
    cr_assert_eq(offsetof(ICLRMemoryNotificationCallbackVtbl, OnMemoryNotification), 3 * sizeof(void *));
}

Test(c1_com, query_interface_and_reference_counts)
{
    IHostMemoryManager *mgr = NULL;
    cr_assert_eq(hostmem_com_create(NULL, NULL), E_POINTER);
    cr_assert_eq(hostmem_com_create(NULL, &mgr), S_OK);
    void *p = (void *)0x1;
    cr_assert_eq(mgr->lpVtbl->QueryInterface(mgr, &IID_IHostMalloc, &p), E_NOINTERFACE);
    cr_assert_null(p);
    cr_assert_eq(mgr->lpVtbl->QueryInterface(mgr, &IID_ICLRMemoryNotificationCallback, &p), E_NOINTERFACE);
    cr_assert_eq(mgr->lpVtbl->QueryInterface(mgr, &IID_IHostMemoryManager, NULL), E_POINTER);
    cr_assert_eq(mgr->lpVtbl->QueryInterface(mgr, &IID_IUnknown, &p), S_OK);
    cr_assert_eq(p, mgr);
    /* through IUnknown, as a host holding only that would */
    IUnknown *unk = p;
    cr_assert_eq(IUnknown_AddRef(unk), 3);
    cr_assert_eq(IUnknown_Release(unk), 2);
    cr_assert(IsEqualIID(&IID_IUnknown, &IID_IUnknown));
    cr_assert(!IsEqualIID(&IID_IUnknown, &IID_IHostMalloc));
    cr_assert_eq(mgr->lpVtbl->QueryInterface(mgr, &IID_IHostMemoryManager, &p), S_OK);
    cr_assert_eq(p, mgr);
    cr_assert_eq(IHostMemoryManager_AddRef(mgr), 4);
    cr_assert_eq(IHostMemoryManager_Release(mgr), 3);

    IHostMalloc *heap = NULL;
    cr_assert_eq(mgr->lpVtbl->CreateMalloc(mgr, MALLOC_THREADSAFE, NULL), E_POINTER);
    cr_assert_eq(mgr->lpVtbl->CreateMalloc(mgr, MALLOC_THREADSAFE, &heap), S_OK);
    cr_assert_eq(heap->lpVtbl->QueryInterface(heap, &IID_IHostMemoryManager, &p), E_NOINTERFACE);
    cr_assert_eq(heap->lpVtbl->QueryInterface(heap, &IID_IHostMalloc, &p), S_OK);
    cr_assert_eq(p, heap);
    cr_assert_eq(heap->lpVtbl->Release(heap), 1);
    /* the heap holds its manager: three of ours + the heap's */
    cr_assert_eq(mgr->lpVtbl->Release(mgr), 3);
    cr_assert_eq(mgr->lpVtbl->Release(mgr), 2);
    cr_assert_eq(mgr->lpVtbl->Release(mgr), 1);
    /* the host let go of the manager; its heap still works */
    void *block = NULL;
    cr_assert_eq(IHostMalloc_Alloc(heap, 100, eTaskCritical, &block), S_OK);
    memset(block, 1, 100);
    cr_assert_eq(IHostMalloc_Free(heap, block), S_OK);
    cr_assert_eq(heap->lpVtbl->Release(heap), 0); /* and the manager goes with it */
}

/* ---- the demo workload ------------------------------------------------------------ */
#define HEAP_BYTES (256 * MiB)
#define SEGMENT (2 * MiB)
#define SEGMENTS (HEAP_BYTES / SEGMENT)
#define LIMIT (48 * MiB)

Test(c1_com, demo_workload_through_the_vtable)
{
    hostmem_config cfg;
    hostmem_config_init(&cfg);
    cfg.commit_limit = LIMIT;
    IHostMemoryManager *mgr;
    cr_assert_eq(hostmem_com_create(&cfg, &mgr), S_OK);
    static host_callback cb = {.iface = {&cb_vtbl}};
    atomic_store(&cb.refs, 1);
    cr_assert_eq(mgr->lpVtbl->RegisterMemoryNotificationCallback(mgr, &cb.iface), S_OK);
    cr_assert_eq(atomic_load(&cb.refs), 2, "the manager holds the callback");
    cr_assert_eq(cb.notices, 1, "the current state at registration");
    cr_assert_eq(cb.last, eMemoryAvailableHigh);

    char *heap = NULL;
    cr_assert_eq(mgr->lpVtbl->VirtualAlloc(mgr, NULL, HEAP_BYTES, MEM_RESERVE, PAGE_READWRITE, eTaskCritical,
                                           (void **)&heap),
                 S_OK);
    bool committed[SEGMENTS] = {0};
    unsigned gcs = 0, from_reserve = 0;
    for (unsigned cycle = 0; cycle < 3 * SEGMENTS / 2; cycle++) {
        size_t i = (cycle * 7) % SEGMENTS;
        if (committed[i])
            continue;
        void *seg = NULL;
        HRESULT hr = mgr->lpVtbl->VirtualAlloc(mgr, heap + i * SEGMENT, SEGMENT, MEM_COMMIT, PAGE_READWRITE,
                                               eTaskCritical, &seg);
        if (hr == E_OUTOFMEMORY) {
            /* over the task ceiling: dig deeper once, then collect */
            hr = mgr->lpVtbl->VirtualAlloc(mgr, heap + i * SEGMENT, SEGMENT, MEM_COMMIT, PAGE_READWRITE,
                                           eAppDomainCritical, &seg);
            from_reserve += SUCCEEDED(hr);
            if (FAILED(hr)) {
                cr_assert_eq(hr, E_OUTOFMEMORY);
                gcs++;
                for (size_t k = 0; k < SEGMENTS; k += 2)
                    if (committed[k]) {
                        cr_assert_eq(mgr->lpVtbl->VirtualFree(mgr, heap + k * SEGMENT, SEGMENT, MEM_DECOMMIT), S_OK);
                        committed[k] = false;
                    }
                continue;
            }
        }
        cr_assert_eq(hr, S_OK);
        cr_assert_eq(seg, heap + i * SEGMENT);
        committed[i] = true;
        memset(seg, (int)cycle, 4096);
        /* a concurrent collector's barrier: read-only, then back */
        DWORD old = 0;
        cr_assert_eq(mgr->lpVtbl->VirtualProtect(mgr, seg, SEGMENT, PAGE_READONLY, &old), S_OK);
        cr_assert_eq(old, PAGE_READWRITE);
        MEMORY_BASIC_INFORMATION mbi;
        SIZE_T n = 0;
        cr_assert_eq(mgr->lpVtbl->VirtualQuery(mgr, seg, &mbi, sizeof mbi, &n), S_OK);
        cr_assert_eq(n, sizeof mbi);
        cr_assert(mbi.State == MEM_COMMIT && mbi.Protect == PAGE_READONLY && mbi.AllocationBase == heap);
        cr_assert_eq(mgr->lpVtbl->VirtualProtect(mgr, seg, SEGMENT, PAGE_READWRITE, &old), S_OK);
        /* a short-lived large object */
        if (cycle % 16 == 0) {
            void *big = NULL;
            hr = mgr->lpVtbl->VirtualAlloc(mgr, NULL, 4 * MiB, MEM_COMMIT, PAGE_READWRITE, eTaskCritical, &big);
            if (SUCCEEDED(hr))
                cr_assert_eq(mgr->lpVtbl->VirtualFree(mgr, big, 0, MEM_RELEASE), S_OK);
        }
    }
    cr_assert_gt(gcs, 0, "the budget ran short at least once");
    cr_assert_gt(from_reserve, 0, "app-domain work went past the task ceiling");
    cr_assert_gt(cb.lows, 0, "and the host heard Low");
    DWORD load = 0;
    SIZE_T avail = 0;
    cr_assert_eq(mgr->lpVtbl->GetMemoryLoad(mgr, &load, &avail), S_OK);
    cr_assert_leq(load, 100);
    cr_assert_leq(avail, LIMIT);

    /* address space the host maps itself */
    char ext_buf[64];
    cr_assert_eq(mgr->lpVtbl->NeedsVirtualAddressSpace(mgr, ext_buf, 8 * MiB), S_OK);
    cr_assert_eq(mgr->lpVtbl->AcquiredVirtualAddressSpace(mgr, ext_buf, 8 * MiB), S_OK);
    cr_assert_eq(mgr->lpVtbl->ReleasedVirtualAddressSpace(mgr, ext_buf), S_OK);
    cr_assert_eq(mgr->lpVtbl->ReleasedVirtualAddressSpace(mgr, ext_buf), HOST_E_INVALIDOPERATION);

    cr_assert_eq(mgr->lpVtbl->VirtualFree(mgr, heap, 0, MEM_RELEASE), S_OK);
    /* the runtime's own small objects come from its heap (once the GC heap is gone) */
    IHostMalloc *mal = NULL;
    cr_assert_eq(mgr->lpVtbl->CreateMalloc(mgr, MALLOC_THREADSAFE, &mal), S_OK);
    void *blocks[64];
    for (int i = 0; i < 64; i++) {
        cr_assert_eq(i % 2 ? mal->lpVtbl->Alloc(mal, (SIZE_T)(16 + i * 24), eTaskCritical, &blocks[i])
                           : mal->lpVtbl->DebugAlloc(mal, (SIZE_T)(16 + i * 24), eTaskCritical, (char *)__FILE__,
                                                      __LINE__, &blocks[i]),
                     S_OK);
        cr_assert_eq((uintptr_t)blocks[i] % 16, 0);
        memset(blocks[i], i, (size_t)(16 + i * 24));
    }
    for (int i = 0; i < 64; i++)
        cr_assert_eq(mal->lpVtbl->Free(mal, blocks[i]), S_OK);
    cr_assert_eq(mal->lpVtbl->Free(mal, NULL), S_OK);
    cr_assert_eq(mal->lpVtbl->Release(mal), 0);

    hostmem_stats s;
    cr_assert_eq(hostmem_get_stats(hostmem_com_manager(mgr), &s), S_OK);
    cr_assert_eq(s.committed_bytes, 0);
    cr_assert_eq(s.region_count, 0);
    /* a second callback replaces the first, which is released */
    static host_callback cb2 = {.iface = {&cb_vtbl}};
    atomic_store(&cb2.refs, 1);
    cr_assert_eq(mgr->lpVtbl->RegisterMemoryNotificationCallback(mgr, &cb2.iface), S_OK);
    cr_assert_eq(atomic_load(&cb.refs), 1);
    cr_assert_eq(mgr->lpVtbl->RegisterMemoryNotificationCallback(mgr, NULL), E_POINTER);
    cr_assert_eq(atomic_load(&cb2.refs), 2);
    cr_assert_eq(mgr->lpVtbl->Release(mgr), 0);
    cr_assert_eq(atomic_load(&cb2.refs), 1, "the last Release lets go of the callback");
    cr_assert_null(hostmem_com_manager(NULL));
}

