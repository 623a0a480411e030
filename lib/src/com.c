/*
 * com.c: the COM-style binding of <hostmem/mscoree.h> (C1).  Each object is
 * its interface struct (lpVtbl first, so the host's pointer is the object's)
 * followed by a reference count and what it wraps; every method forwards to
 * the hostmem_* call of the same name.
 */
#include <string.h>

#include <hostmem/mscoree.h>

#include "internal.h"

const IID IID_IUnknown = {0x00000000, 0x0000, 0x0000, {0xC0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x46}};
const IID IID_IHostMemoryManager = {0x7BC698D1, 0xF9E3, 0x4460, {0x9C, 0xDE, 0xD0, 0x42, 0x48, 0xE9, 0xFA, 0x25}};
const IID IID_IHostMalloc = {0x1831991C, 0xCC53, 0x4A31, {0xB2, 0x18, 0x04, 0xE9, 0x10, 0x44, 0x64, 0x79}};
const IID IID_ICLRMemoryNotificationCallback = {0x47EB8E57, 0x0846, 0x4546,
                                                {0xAF, 0x76, 0x6F, 0x42, 0xFC, 0xFC, 0x26, 0x49}};

static bool com_iid_is(REFIID a, const IID *b) { return memcmp(a, b, sizeof *b) == 0; }

/* ---- IHostMemoryManager ------------------------------------------------------ */

typedef struct com_manager {
    IHostMemoryManager iface;
    _Atomic ULONG refs;
    hostmem_manager *m;
    ICLRMemoryNotificationCallback *_Atomic callback; /* held: one reference */
} com_manager;

static com_manager *com_mgr(IHostMemoryManager *This) { return (com_manager *)This; }

static ULONG STDMETHODCALLTYPE mgr_add_ref(IHostMemoryManager *This)
{
    return atomic_fetch_add(&com_mgr(This)->refs, 1) + 1;
}

static ULONG STDMETHODCALLTYPE mgr_release(IHostMemoryManager *This)
{
    com_manager *c = com_mgr(This);
    ULONG left = atomic_fetch_sub(&c->refs, 1) - 1;
    if (left == 0) {
        hostmem_destroy(c->m); /* no notification after this */
        ICLRMemoryNotificationCallback *cb = atomic_exchange(&c->callback, NULL);
        if (cb)
            cb->lpVtbl->Release(cb);
        hostmem__meta_free(c, sizeof *c);
    }
    return left;
}

static HRESULT STDMETHODCALLTYPE mgr_query_interface(IHostMemoryManager *This, REFIID riid, void **ppv)
{
    if (!ppv)
        return E_POINTER;
    if (riid && (com_iid_is(riid, &IID_IUnknown) || com_iid_is(riid, &IID_IHostMemoryManager))) {
        mgr_add_ref(This);
        *ppv = This;
        return S_OK;
    }
    *ppv = NULL;
    return E_NOINTERFACE;
}

static HRESULT create_malloc(com_manager *owner, DWORD type, IHostMalloc **out);

static HRESULT STDMETHODCALLTYPE mgr_create_malloc(IHostMemoryManager *This, DWORD type, IHostMalloc **out)
{
    return create_malloc(com_mgr(This), type, out);
}

static HRESULT STDMETHODCALLTYPE mgr_virtual_alloc(IHostMemoryManager *This, void *address, SIZE_T size,
                                                   DWORD type, DWORD protect, EMemoryCriticalLevel level,
                                                   void **out)
{
    return hostmem_virtual_alloc(com_mgr(This)->m, address, size, type, protect, level, out);
}

static HRESULT STDMETHODCALLTYPE mgr_virtual_free(IHostMemoryManager *This, LPVOID address, SIZE_T size,
                                                  DWORD type)
{
    return hostmem_virtual_free(com_mgr(This)->m, address, size, type);
}

static HRESULT STDMETHODCALLTYPE mgr_virtual_query(IHostMemoryManager *This, void *address, void *buffer,
                                                   SIZE_T length, SIZE_T *result)
{
    return hostmem_virtual_query(com_mgr(This)->m, address, buffer, length, result);
}

static HRESULT STDMETHODCALLTYPE mgr_virtual_protect(IHostMemoryManager *This, void *address, SIZE_T size,
                                                     DWORD protect, DWORD *old)
{
    return hostmem_virtual_protect(com_mgr(This)->m, address, size, protect, old);
}

static HRESULT STDMETHODCALLTYPE mgr_get_memory_load(IHostMemoryManager *This, DWORD *load, SIZE_T *available)
{
    return hostmem_get_memory_load(com_mgr(This)->m, load, available);
}

static void mgr_notify(void *context, EMemoryAvailable state)
{
    ICLRMemoryNotificationCallback *cb = context;
    cb->lpVtbl->OnMemoryNotification(cb, state);
}

static HRESULT STDMETHODCALLTYPE mgr_register_callback(IHostMemoryManager *This,
                                                       ICLRMemoryNotificationCallback *cb)
{
    com_manager *c = com_mgr(This);
    if (!cb)
        return hostmem_register_memory_notification_callback(c->m, NULL, NULL); /* E_POINTER */
    cb->lpVtbl->AddRef(cb);
    HRESULT hr = hostmem_register_memory_notification_callback(c->m, mgr_notify, cb);
    if (FAILED(hr)) {
        cb->lpVtbl->Release(cb);
        return hr;
    }
    ICLRMemoryNotificationCallback *old = atomic_exchange(&c->callback, cb);
    if (old)
        old->lpVtbl->Release(old);
    return S_OK;
}

static HRESULT STDMETHODCALLTYPE mgr_needs(IHostMemoryManager *This, LPVOID start, SIZE_T size)
{
    return hostmem_needs_virtual_address_space(com_mgr(This)->m, start, size);
}

static HRESULT STDMETHODCALLTYPE mgr_acquired(IHostMemoryManager *This, LPVOID start, SIZE_T size)
{
    return hostmem_acquired_virtual_address_space(com_mgr(This)->m, start, size);
}

static HRESULT STDMETHODCALLTYPE mgr_released(IHostMemoryManager *This, LPVOID start)
{
    return hostmem_released_virtual_address_space(com_mgr(This)->m, start);
}

static const IHostMemoryManagerVtbl mgr_vtbl = {
    .QueryInterface = mgr_query_interface,
    .AddRef = mgr_add_ref,
    .Release = mgr_release,
    .CreateMalloc = mgr_create_malloc,
    .VirtualAlloc = mgr_virtual_alloc,
    .VirtualFree = mgr_virtual_free,
    .VirtualQuery = mgr_virtual_query,
    .VirtualProtect = mgr_virtual_protect,
    .GetMemoryLoad = mgr_get_memory_load,
    .RegisterMemoryNotificationCallback = mgr_register_callback,
    .NeedsVirtualAddressSpace = mgr_needs,
    .AcquiredVirtualAddressSpace = mgr_acquired,
    .ReleasedVirtualAddressSpace = mgr_released,
};

HRESULT hostmem_com_create(const hostmem_config *config, IHostMemoryManager **out)
{
    if (!out)
        return E_POINTER;
    *out = NULL;
    com_manager *c = hostmem__meta_alloc(sizeof *c);
    if (!c)
        return E_OUTOFMEMORY;
    HRESULT hr = hostmem_create(config, &c->m);
    if (FAILED(hr)) {
        hostmem__meta_free(c, sizeof *c);
        return hr;
    }
    c->iface.lpVtbl = &mgr_vtbl;
    atomic_init(&c->refs, 1);
    *out = &c->iface;
    return S_OK;
}

hostmem_manager *hostmem_com_manager(IHostMemoryManager *manager)
{
    return manager && manager->lpVtbl == &mgr_vtbl ? com_mgr(manager)->m : NULL;
}

/* ---- IHostMalloc ----------------------------------------------------------------- */

typedef struct com_malloc {
    IHostMalloc iface;
    _Atomic ULONG refs;
    hostmem_malloc *h;
    com_manager *owner; /* held: one reference */
} com_malloc;

static com_malloc *com_heap(IHostMalloc *This) { return (com_malloc *)This; }

static ULONG STDMETHODCALLTYPE heap_add_ref(IHostMalloc *This)
{
    return atomic_fetch_add(&com_heap(This)->refs, 1) + 1;
}

static ULONG STDMETHODCALLTYPE heap_release(IHostMalloc *This)
{
    com_malloc *c = com_heap(This);
    ULONG left = atomic_fetch_sub(&c->refs, 1) - 1;
    if (left == 0) {
        hostmem_malloc_destroy(c->h);
        mgr_release(&c->owner->iface);
        hostmem__meta_free(c, sizeof *c);
    }
    return left;
}

static HRESULT STDMETHODCALLTYPE heap_query_interface(IHostMalloc *This, REFIID riid, void **ppv)
{
    if (!ppv)
        return E_POINTER;
    if (riid && (com_iid_is(riid, &IID_IUnknown) || com_iid_is(riid, &IID_IHostMalloc))) {
        heap_add_ref(This);
        *ppv = This;
        return S_OK;
    }
    *ppv = NULL;
    return E_NOINTERFACE;
}

static HRESULT STDMETHODCALLTYPE heap_alloc(IHostMalloc *This, SIZE_T size, EMemoryCriticalLevel level,
                                            void **out)
{
    return hostmem_malloc_alloc(com_heap(This)->h, size, level, out);
}

static HRESULT STDMETHODCALLTYPE heap_debug_alloc(IHostMalloc *This, SIZE_T size, EMemoryCriticalLevel level,
                                                  char *file, int line, void **out)
{
    return hostmem_malloc_debug_alloc(com_heap(This)->h, size, level, file, line, out);
}

static HRESULT STDMETHODCALLTYPE heap_free(IHostMalloc *This, void *p)
{
    return hostmem_malloc_free(com_heap(This)->h, p);
}

static const IHostMallocVtbl heap_vtbl = {
    .QueryInterface = heap_query_interface,
    .AddRef = heap_add_ref,
    .Release = heap_release,
    .Alloc = heap_alloc,
    .DebugAlloc = heap_debug_alloc,
    .Free = heap_free,
};

static HRESULT create_malloc(com_manager *owner, DWORD type, IHostMalloc **out)
{
    if (!out)
        return E_POINTER;
    *out = NULL;
    com_malloc *c = hostmem__meta_alloc(sizeof *c);
    if (!c)
        return E_OUTOFMEMORY;
    HRESULT hr = hostmem_create_malloc(owner->m, type, &c->h);
    if (FAILED(hr)) {
        hostmem__meta_free(c, sizeof *c);
        return hr;
    }
    c->iface.lpVtbl = &heap_vtbl;
    atomic_init(&c->refs, 1);
    c->owner = owner;
    mgr_add_ref(&owner->iface);
    *out = &c->iface;
    return S_OK;
}
