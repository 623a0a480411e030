/*
 * C1 in C++: a host written against the SDK's C++ form of the hosting
 * interface -- methods called on the objects, its notification callback a
 * class of its own -- runs against <hostmem/mscoree.h> unchanged: reserve,
 * commit, query, protect, decommit, release, a heap, the callback told of
 * a commit limit, QueryInterface with IID references, and reference counts
 * down to the last Release.  A plain program: exit status 0 or the first
 * failed check on stderr.
 */
#include <hostmem/mscoree.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#define CHECK(cond)                                                                   \
    do {                                                                              \
        if (!(cond)) {                                                                \
            std::fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            std::exit(1);                                                             \
        }                                                                             \
    } while (0)
#define CHECK_HR(expr, want)                                                          \
    do {                                                                              \
        HRESULT hr_ = (expr);                                                         \
        if (hr_ != (want)) {                                                          \
            std::fprintf(stderr, "%s:%d: %s: 0x%08x, want 0x%08x\n", __FILE__, __LINE__, \
                         #expr, (unsigned)hr_, (unsigned)(want));                     \
            std::exit(1);                                                             \
        }                                                                             \
    } while (0)

static const SIZE_T MiB = (SIZE_T)1 << 20;

/* The host's callback, as a C++ host writes it. */
class HostCallback : public ICLRMemoryNotificationCallback {
public:
    std::atomic<ULONG> refs{1};
    unsigned notices = 0, lows = 0;
    EMemoryAvailable last = eMemoryAvailableNeutral;

    HRESULT STDMETHODCALLTYPE QueryInterface(REFIID riid, void **ppv) override
    {
        if (IsEqualIID(riid, IID_IUnknown) || IsEqualIID(riid, IID_ICLRMemoryNotificationCallback)) {
            AddRef();
            *ppv = this;
            return S_OK;
        }
        *ppv = nullptr;
        return E_NOINTERFACE;
    }
    ULONG STDMETHODCALLTYPE AddRef() override { return ++refs; }
    ULONG STDMETHODCALLTYPE Release() override { return --refs; } /* on the stack: nothing to free */
    HRESULT STDMETHODCALLTYPE OnMemoryNotification(EMemoryAvailable state) override
    {
        notices++;
        lows += state == eMemoryAvailableLow;
        last = state;
        return S_OK;
    }
    virtual ~HostCallback() = default; /* after the interface's methods: slots unchanged */
};

int main()
{
    hostmem_config config;
    hostmem_config_init(&config);
    config.commit_limit = 8 * MiB;
    IHostMemoryManager *mm = nullptr;
    CHECK_HR(hostmem_com_create(&config, &mm), S_OK);
    CHECK(mm != nullptr);

    /* IUnknown through references. */
    void *other = nullptr;
    CHECK_HR(mm->QueryInterface(IID_IHostMemoryManager, &other), S_OK);
    CHECK(other == mm);
    CHECK(mm->Release() == 1);
    CHECK_HR(mm->QueryInterface(IID_IHostMalloc, &other), E_NOINTERFACE);
    CHECK(other == nullptr);

    /* The callback hears the state at once, then of the limit. */
    HostCallback cb;
    CHECK_HR(mm->RegisterMemoryNotificationCallback(&cb), S_OK);
    CHECK(cb.refs == 2);
    CHECK(cb.notices >= 1);

    /* Reserve, commit, query, protect, decommit, release: all through methods. */
    void *base = nullptr, *got = nullptr;
    CHECK_HR(mm->VirtualAlloc(nullptr, 16 * MiB, MEM_RESERVE, PAGE_NOACCESS, eTaskCritical, &base), S_OK);
    CHECK(base != nullptr);
    CHECK_HR(mm->VirtualAlloc(base, 4 * MiB, MEM_COMMIT, PAGE_READWRITE, eTaskCritical, &got), S_OK);
    CHECK(got == base);
    std::memset(base, 0x5a, 4 * MiB);
    MEMORY_BASIC_INFORMATION mbi;
    SIZE_T n = 0;
    CHECK_HR(mm->VirtualQuery(base, &mbi, sizeof mbi, &n), S_OK);
    CHECK(n == sizeof mbi && mbi.State == MEM_COMMIT && mbi.RegionSize == 4 * MiB);
    DWORD old = 0;
    CHECK_HR(mm->VirtualProtect(base, 4 * MiB, PAGE_READONLY, &old), S_OK);
    CHECK(old == PAGE_READWRITE);
    /* Past 90 % of the limit the host hears Low; over the limit, a refusal. */
    CHECK_HR(mm->VirtualAlloc((char *)base + 4 * MiB, 3 * MiB + MiB / 2, MEM_COMMIT, PAGE_READWRITE,
                              eProcessCritical, &got),
             S_OK);
    CHECK(cb.lows >= 1 && cb.last == eMemoryAvailableLow);
    CHECK_HR(mm->VirtualAlloc((char *)base + 8 * MiB, 8 * MiB, MEM_COMMIT, PAGE_READWRITE, eTaskCritical, &got),
             E_OUTOFMEMORY);
    DWORD load = 0;
    SIZE_T avail = 0;
    CHECK_HR(mm->GetMemoryLoad(&load, &avail), S_OK);
    CHECK(load >= 90 && load <= 100 && avail <= MiB);
    CHECK_HR(mm->VirtualFree(base, 8 * MiB, MEM_DECOMMIT), S_OK);
    CHECK_HR(mm->VirtualFree(base, 0, MEM_RELEASE), S_OK);

    /* Address space the host maps itself. */
    char ext[64];
    CHECK_HR(mm->NeedsVirtualAddressSpace(ext, 8 * MiB), S_OK);
    CHECK_HR(mm->AcquiredVirtualAddressSpace(ext, 8 * MiB), S_OK);
    CHECK_HR(mm->ReleasedVirtualAddressSpace(ext), S_OK);
    CHECK_HR(mm->ReleasedVirtualAddressSpace(ext), HOST_E_INVALIDOPERATION);
    CHECK(mm->AddRef() == 2);
    CHECK(mm->Release() == 1);

    /* The heap: the manager outlives it. */
    IHostMalloc *heap = nullptr;
    CHECK_HR(mm->CreateMalloc(MALLOC_THREADSAFE, &heap), S_OK);
    void *p = nullptr;
    CHECK_HR(heap->Alloc(1000, eTaskCritical, &p), S_OK);
    std::memset(p, 1, 1000);
    char file[] = "test_com_cpp.cpp";
    void *q = nullptr;
    CHECK_HR(heap->DebugAlloc(64, eAppDomainCritical, file, __LINE__, &q), S_OK);
    CHECK_HR(heap->Free(q), S_OK);
    CHECK_HR(heap->Free(p), S_OK);
    CHECK_HR(heap->QueryInterface(IID_IHostMalloc, &other), S_OK);
    CHECK(other == heap);
    CHECK(heap->Release() == 1);
    CHECK(mm->Release() == 1); /* the heap still holds the manager */
    CHECK(heap->Release() == 0); /* the heap, then its manager: which lets the callback go */
    CHECK(cb.refs == 1);
    std::puts("test_com_cpp: ok");
    return 0;
}
