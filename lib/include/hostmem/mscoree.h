/*
 * <hostmem/mscoree.h>: hostmem as the memory interfaces of the .NET hosting
 * API, in C, the way the Windows SDK's mscoree.h declares them for C (C1).
 *
 * IHostMemoryManager, IHostMalloc and ICLRMemoryNotificationCallback are
 * structs whose first member, lpVtbl, points at a table of methods in the
 * order of mscoree.h: IUnknown's QueryInterface, AddRef, Release, then the
 * interface's own.  A host written against the hosting interface -- calling
 * manager->lpVtbl->VirtualAlloc(manager, ...) or, with COBJMACROS defined,
 * IHostMemoryManager_VirtualAlloc(manager, ...) -- compiles against this
 * header with only its includes changed.  The COM basics such a host uses
 * come with it where no Windows header has defined them: GUID, IID, REFIID,
 * IUnknown (and its COBJMACROS), IsEqualGUID and IsEqualIID (pointers, as
 * in C).
 *
 * In C++ the interfaces are the SDK's classes instead, unless CINTERFACE is
 * defined (as with the SDK): IUnknown and the three interfaces are abstract
 * classes of pure virtual STDMETHODCALLTYPE methods, so a C++ host calls
 * manager->VirtualAlloc(...) and implements its callback as a class; REFIID
 * is `const IID &`, and IsEqualGUID / IsEqualIID take references (or
 * pointers).  Both forms name the same objects: a class's virtual table
 * lists the methods in the order of the C form's lpVtbl.
 *
 * hostmem_com_create() makes a manager with one reference.  AddRef and
 * Release return the new count; the last Release destroys the manager (and
 * releases the notification callback it holds).  QueryInterface answers
 * IID_IUnknown and the object's own IID, E_NOINTERFACE (and NULL) for any
 * other.  Every method returns what the hostmem_* call of the same name
 * returns (<hostmem/hostmem.h> lists the HRESULTs).
 *
 * CreateMalloc makes an IHostMalloc over hostmem_create_malloc(); the heap
 * holds a reference to its manager, so the manager outlives its heaps, and
 * the heap's last Release destroys it (hostmem_malloc_destroy).
 * RegisterMemoryNotificationCallback keeps a reference to the callback and
 * calls its OnMemoryNotification as hostmem_register_memory_notification_
 * callback says (the current state at once, then every change); registering
 * another one releases the previous one.
 */
#ifndef HOSTMEM_MSCOREE_H
#define HOSTMEM_MSCOREE_H

#include <hostmem/hostmem.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- COM basics (coexist with the Windows SDK / MinGW headers) ---------- */
#ifndef GUID_DEFINED
#define GUID_DEFINED
typedef struct _GUID {
    uint32_t Data1;
    uint16_t Data2;
    uint16_t Data3;
    uint8_t Data4[8];
} GUID;
#endif
#ifndef __IID_DEFINED__
#define __IID_DEFINED__
typedef GUID IID;
#endif
#if defined(__cplusplus) && !defined(CINTERFACE)
#define HOSTMEM_COM_CLASSES 1 /* the SDK's C++ form */
#endif
#ifndef REFIID
#ifdef HOSTMEM_COM_CLASSES
#define REFIID const IID &
#else
#define REFIID const IID *
#endif
#endif
#ifndef _ULONG_DEFINED
#define _ULONG_DEFINED
typedef uint32_t ULONG;
#endif
#ifndef _LPVOID_DEFINED
#define _LPVOID_DEFINED
typedef void *LPVOID;
#endif
#ifndef STDMETHODCALLTYPE
#define STDMETHODCALLTYPE
#endif
#ifndef E_NOINTERFACE
#define E_NOINTERFACE ((HRESULT)0x80004002)
#endif
/* IsEqualGUID / IsEqualIID take pointers, as the SDK's do in C. */
#ifndef IsEqualGUID
static inline int hostmem_guid_equal(const GUID *a, const GUID *b)
{
    if (a->Data1 != b->Data1 || a->Data2 != b->Data2 || a->Data3 != b->Data3)
        return 0;
    for (int i = 0; i < 8; i++)
        if (a->Data4[i] != b->Data4[i])
            return 0;
    return 1;
}
#ifdef HOSTMEM_COM_CLASSES
} /* extern "C" */
/* References, as the SDK's C++ form; pointers as well, as in C. */
inline int IsEqualGUID(const GUID &a, const GUID &b) { return hostmem_guid_equal(&a, &b); }
inline int IsEqualGUID(const GUID *a, const GUID *b) { return hostmem_guid_equal(a, b); }
extern "C" {
#else
#define IsEqualGUID(rguid1, rguid2) hostmem_guid_equal(rguid1, rguid2)
#endif
#endif
#ifndef IsEqualIID
#define IsEqualIID(riid1, riid2) IsEqualGUID(riid1, riid2)
#endif

/* IUnknown: the first three methods of every interface below. */
#ifndef __IUnknown_INTERFACE_DEFINED__
#define __IUnknown_INTERFACE_DEFINED__
#ifdef HOSTMEM_COM_CLASSES
struct IUnknown {
    virtual HRESULT STDMETHODCALLTYPE QueryInterface(REFIID riid, void **ppvObject) = 0;
    virtual ULONG STDMETHODCALLTYPE AddRef(void) = 0;
    virtual ULONG STDMETHODCALLTYPE Release(void) = 0;
};
#else
typedef struct IUnknown IUnknown;
typedef struct IUnknownVtbl {
    HRESULT(STDMETHODCALLTYPE *QueryInterface)(IUnknown *This, REFIID riid, void **ppvObject);
    ULONG(STDMETHODCALLTYPE *AddRef)(IUnknown *This);
    ULONG(STDMETHODCALLTYPE *Release)(IUnknown *This);
} IUnknownVtbl;
struct IUnknown {
    const IUnknownVtbl *lpVtbl;
};
#ifdef COBJMACROS
#define IUnknown_QueryInterface(This, riid, ppv) ((This)->lpVtbl->QueryInterface(This, riid, ppv))
#define IUnknown_AddRef(This) ((This)->lpVtbl->AddRef(This))
#define IUnknown_Release(This) ((This)->lpVtbl->Release(This))
#endif
#endif /* HOSTMEM_COM_CLASSES */
#endif

/* The real IIDs: {00000000-0000-0000-C000-000000000046},
 * {7BC698D1-F9E3-4460-9CDE-D04248E9FA25}, {1831991C-CC53-4A31-B218-04E910446479},
 * {47EB8E57-0846-4546-AF76-6F42FCFC2649}. */
HOSTMEM_API extern const IID IID_IUnknown;
HOSTMEM_API extern const IID IID_IHostMemoryManager;
HOSTMEM_API extern const IID IID_IHostMalloc;
HOSTMEM_API extern const IID IID_ICLRMemoryNotificationCallback;

typedef struct IHostMalloc IHostMalloc;
typedef struct IHostMemoryManager IHostMemoryManager;
typedef struct ICLRMemoryNotificationCallback ICLRMemoryNotificationCallback;

#ifdef HOSTMEM_COM_CLASSES
/* ---- the SDK's C++ form ----------------------------------------------------- */
/* Implemented by the host. */
struct ICLRMemoryNotificationCallback : public IUnknown {
    virtual HRESULT STDMETHODCALLTYPE OnMemoryNotification(EMemoryAvailable eMemoryAvailable) = 0;
};
struct IHostMalloc : public IUnknown {
    virtual HRESULT STDMETHODCALLTYPE Alloc(SIZE_T cbSize, EMemoryCriticalLevel eCriticalLevel, void **ppMem) = 0;
    virtual HRESULT STDMETHODCALLTYPE DebugAlloc(SIZE_T cbSize, EMemoryCriticalLevel eCriticalLevel,
                                                 char *pszFileName, int iLineNo, void **ppMem) = 0;
    virtual HRESULT STDMETHODCALLTYPE Free(void *pMem) = 0;
};
struct IHostMemoryManager : public IUnknown {
    virtual HRESULT STDMETHODCALLTYPE CreateMalloc(DWORD dwMallocType, IHostMalloc **ppMalloc) = 0;
    virtual HRESULT STDMETHODCALLTYPE VirtualAlloc(void *pAddress, SIZE_T dwSize, DWORD flAllocationType,
                                                   DWORD flProtect, EMemoryCriticalLevel eCriticalLevel,
                                                   void **ppMem) = 0;
    virtual HRESULT STDMETHODCALLTYPE VirtualFree(LPVOID lpAddress, SIZE_T dwSize, DWORD dwFreeType) = 0;
    virtual HRESULT STDMETHODCALLTYPE VirtualQuery(void *lpAddress, void *lpBuffer, SIZE_T dwLength,
                                                   SIZE_T *pResult) = 0;
    virtual HRESULT STDMETHODCALLTYPE VirtualProtect(void *lpAddress, SIZE_T dwSize, DWORD flNewProtect,
                                                     DWORD *pflOldProtect) = 0;
    virtual HRESULT STDMETHODCALLTYPE GetMemoryLoad(DWORD *pMemoryLoad, SIZE_T *pAvailableBytes) = 0;
    virtual HRESULT STDMETHODCALLTYPE RegisterMemoryNotificationCallback(
        ICLRMemoryNotificationCallback *pCallback) = 0;
    virtual HRESULT STDMETHODCALLTYPE NeedsVirtualAddressSpace(LPVOID startAddress, SIZE_T size) = 0;
    virtual HRESULT STDMETHODCALLTYPE AcquiredVirtualAddressSpace(LPVOID startAddress, SIZE_T size) = 0;
    virtual HRESULT STDMETHODCALLTYPE ReleasedVirtualAddressSpace(LPVOID startAddress) = 0;
};
#else
/* ---- ICLRMemoryNotificationCallback: implemented by the host ------------ */
typedef struct ICLRMemoryNotificationCallbackVtbl {
    HRESULT(STDMETHODCALLTYPE *QueryInterface)(ICLRMemoryNotificationCallback *This, REFIID riid,
                                               void **ppvObject);
    ULONG(STDMETHODCALLTYPE *AddRef)(ICLRMemoryNotificationCallback *This);
    ULONG(STDMETHODCALLTYPE *Release)(ICLRMemoryNotificationCallback *This);
    HRESULT(STDMETHODCALLTYPE *OnMemoryNotification)(ICLRMemoryNotificationCallback *This,
                                                     EMemoryAvailable eMemoryAvailable);
} ICLRMemoryNotificationCallbackVtbl;
struct ICLRMemoryNotificationCallback {
    const ICLRMemoryNotificationCallbackVtbl *lpVtbl;
};

/* ---- IHostMalloc ---------------------------------------------------------- */
typedef struct IHostMallocVtbl {
    HRESULT(STDMETHODCALLTYPE *QueryInterface)(IHostMalloc *This, REFIID riid, void **ppvObject);
    ULONG(STDMETHODCALLTYPE *AddRef)(IHostMalloc *This);
    ULONG(STDMETHODCALLTYPE *Release)(IHostMalloc *This);
    HRESULT(STDMETHODCALLTYPE *Alloc)(IHostMalloc *This, SIZE_T cbSize,
                                      EMemoryCriticalLevel eCriticalLevel, void **ppMem);
    HRESULT(STDMETHODCALLTYPE *DebugAlloc)(IHostMalloc *This, SIZE_T cbSize,
                                           EMemoryCriticalLevel eCriticalLevel, char *pszFileName,
                                           int iLineNo, void **ppMem);
    HRESULT(STDMETHODCALLTYPE *Free)(IHostMalloc *This, void *pMem);
} IHostMallocVtbl;
struct IHostMalloc {
    const IHostMallocVtbl *lpVtbl;
};

/* ---- IHostMemoryManager --------------------------------------------------- */
typedef struct IHostMemoryManagerVtbl {
    HRESULT(STDMETHODCALLTYPE *QueryInterface)(IHostMemoryManager *This, REFIID riid, void **ppvObject);
    ULONG(STDMETHODCALLTYPE *AddRef)(IHostMemoryManager *This);
    ULONG(STDMETHODCALLTYPE *Release)(IHostMemoryManager *This);
    HRESULT(STDMETHODCALLTYPE *CreateMalloc)(IHostMemoryManager *This, DWORD dwMallocType,
                                             IHostMalloc **ppMalloc);
    HRESULT(STDMETHODCALLTYPE *VirtualAlloc)(IHostMemoryManager *This, void *pAddress, SIZE_T dwSize,
                                             DWORD flAllocationType, DWORD flProtect,
                                             EMemoryCriticalLevel eCriticalLevel, void **ppMem);
    HRESULT(STDMETHODCALLTYPE *VirtualFree)(IHostMemoryManager *This, LPVOID lpAddress, SIZE_T dwSize,
                                            DWORD dwFreeType);
    HRESULT(STDMETHODCALLTYPE *VirtualQuery)(IHostMemoryManager *This, void *lpAddress, void *lpBuffer,
                                             SIZE_T dwLength, SIZE_T *pResult);
    HRESULT(STDMETHODCALLTYPE *VirtualProtect)(IHostMemoryManager *This, void *lpAddress, SIZE_T dwSize,
                                               DWORD flNewProtect, DWORD *pflOldProtect);
    HRESULT(STDMETHODCALLTYPE *GetMemoryLoad)(IHostMemoryManager *This, DWORD *pMemoryLoad,
                                              SIZE_T *pAvailableBytes);
    HRESULT(STDMETHODCALLTYPE *RegisterMemoryNotificationCallback)(IHostMemoryManager *This,
                                                                   ICLRMemoryNotificationCallback *pCallback);
    HRESULT(STDMETHODCALLTYPE *NeedsVirtualAddressSpace)(IHostMemoryManager *This, LPVOID startAddress,
                                                         SIZE_T size);
    HRESULT(STDMETHODCALLTYPE *AcquiredVirtualAddressSpace)(IHostMemoryManager *This,
                                                            LPVOID startAddress, SIZE_T size);
    HRESULT(STDMETHODCALLTYPE *ReleasedVirtualAddressSpace)(IHostMemoryManager *This,
                                                            LPVOID startAddress);
} IHostMemoryManagerVtbl;
struct IHostMemoryManager {
    const IHostMemoryManagerVtbl *lpVtbl;
};
#endif /* HOSTMEM_COM_CLASSES */

/* A manager behind IHostMemoryManager (config NULL: defaults), one reference.
 * E_POINTER for a NULL out; otherwise what hostmem_create returns. */
HOSTMEM_API HRESULT hostmem_com_create(const hostmem_config *config, IHostMemoryManager **out);
/* The hostmem manager behind an object hostmem_com_create made (for the
 * calls the interface lacks: stats, write watch...); NULL for NULL. */
HOSTMEM_API hostmem_manager *hostmem_com_manager(IHostMemoryManager *manager);

#if defined(COBJMACROS) && !defined(HOSTMEM_COM_CLASSES)
#define IHostMemoryManager_QueryInterface(This, riid, ppv) ((This)->lpVtbl->QueryInterface(This, riid, ppv))
#define IHostMemoryManager_AddRef(This) ((This)->lpVtbl->AddRef(This))
#define IHostMemoryManager_Release(This) ((This)->lpVtbl->Release(This))
#define IHostMemoryManager_CreateMalloc(This, t, pp) ((This)->lpVtbl->CreateMalloc(This, t, pp))
#define IHostMemoryManager_VirtualAlloc(This, a, s, t, p, l, pp) ((This)->lpVtbl->VirtualAlloc(This, a, s, t, p, l, pp))
#define IHostMemoryManager_VirtualFree(This, a, s, t) ((This)->lpVtbl->VirtualFree(This, a, s, t))
#define IHostMemoryManager_VirtualQuery(This, a, b, l, r) ((This)->lpVtbl->VirtualQuery(This, a, b, l, r))
#define IHostMemoryManager_VirtualProtect(This, a, s, p, o) ((This)->lpVtbl->VirtualProtect(This, a, s, p, o))
#define IHostMemoryManager_GetMemoryLoad(This, l, a) ((This)->lpVtbl->GetMemoryLoad(This, l, a))
#define IHostMemoryManager_RegisterMemoryNotificationCallback(This, c) \
    ((This)->lpVtbl->RegisterMemoryNotificationCallback(This, c))
#define IHostMemoryManager_NeedsVirtualAddressSpace(This, a, s) ((This)->lpVtbl->NeedsVirtualAddressSpace(This, a, s))
#define IHostMemoryManager_AcquiredVirtualAddressSpace(This, a, s) \
    ((This)->lpVtbl->AcquiredVirtualAddressSpace(This, a, s))
#define IHostMemoryManager_ReleasedVirtualAddressSpace(This, a) ((This)->lpVtbl->ReleasedVirtualAddressSpace(This, a))
#define IHostMalloc_QueryInterface(This, riid, ppv) ((This)->lpVtbl->QueryInterface(This, riid, ppv))
#define IHostMalloc_AddRef(This) ((This)->lpVtbl->AddRef(This))
#define IHostMalloc_Release(This) ((This)->lpVtbl->Release(This))
#define IHostMalloc_Alloc(This, s, l, pp) ((This)->lpVtbl->Alloc(This, s, l, pp))
#define IHostMalloc_DebugAlloc(This, s, l, f, n, pp) ((This)->lpVtbl->DebugAlloc(This, s, l, f, n, pp))
#define IHostMalloc_Free(This, p) ((This)->lpVtbl->Free(This, p))
#define ICLRMemoryNotificationCallback_QueryInterface(This, riid, ppv) ((This)->lpVtbl->QueryInterface(This, riid, ppv))
#define ICLRMemoryNotificationCallback_AddRef(This) ((This)->lpVtbl->AddRef(This))
#define ICLRMemoryNotificationCallback_Release(This) ((This)->lpVtbl->Release(This))
#define ICLRMemoryNotificationCallback_OnMemoryNotification(This, s) ((This)->lpVtbl->OnMemoryNotification(This, s))
#endif

#ifdef __cplusplus
}
#endif
#endif /* HOSTMEM_MSCOREE_H */
