/*
 * hostmem: the Win32 VirtualAlloc family with the contract of the .NET
 * hosting interface IHostMemoryManager, on Linux.
 *
 * Every call is thread-safe, returns an HRESULT and never crashes the host
 * on bad input: a failed call changes nothing.  The error codes and the
 * condition behind each are listed at the end of this file.
 *
 * The rules cited here by number (A1, S4, P7...) are defined in the
 * documentation: docs/ in the source tree, installed under share/doc/hostmem
 * (docs/README.md maps every rule to its page; docs/api.md covers this file).
 */
#ifndef HOSTMEM_HOSTMEM_H
#define HOSTMEM_HOSTMEM_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#if defined(HOSTMEM_STATIC_DEFINE) || !defined(__GNUC__)
#define HOSTMEM_API
#else
#define HOSTMEM_API __attribute__((visibility("default")))
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Win32 types (coexist with the Windows SDK / MinGW headers) ------- */
#ifndef _HRESULT_DEFINED
#define _HRESULT_DEFINED
typedef int32_t HRESULT;
#endif
#ifndef _DWORD_DEFINED
#define _DWORD_DEFINED
typedef uint32_t DWORD;
#endif
#if !defined(_BASETSD_H_) && !defined(_BASETSD_H) && !defined(_SIZE_T_DEFINED_WIN32) && !defined(HOSTMEM_SIZE_T_DEFINED)
#define HOSTMEM_SIZE_T_DEFINED
typedef size_t SIZE_T;
#endif

#if !defined(_BASETSD_H_) && !defined(_BASETSD_H) && !defined(HOSTMEM_ULONG_PTR_DEFINED)
#define HOSTMEM_ULONG_PTR_DEFINED
typedef uintptr_t ULONG_PTR;
#endif

#ifndef SUCCEEDED
#define SUCCEEDED(hr) (((HRESULT)(hr)) >= 0)
#endif
#ifndef FAILED
#define FAILED(hr) (((HRESULT)(hr)) < 0)
#endif
#ifndef HRESULT_FROM_WIN32
#define HRESULT_FROM_WIN32(x) \
    ((HRESULT)(x) <= 0 ? ((HRESULT)(x)) : ((HRESULT)(((x) & 0x0000FFFF) | (7 << 16) | 0x80000000)))
#endif

/* ---- allocation and free types (docs/api.md A1) ----------------------- */
#ifndef MEM_COMMIT
#define MEM_COMMIT 0x00001000
#endif
#ifndef MEM_RESERVE
#define MEM_RESERVE 0x00002000
#endif
#ifndef MEM_DECOMMIT
#define MEM_DECOMMIT 0x00004000
#endif
#ifndef MEM_RELEASE
#define MEM_RELEASE 0x00008000
#endif
#ifndef MEM_FREE
#define MEM_FREE 0x00010000
#endif
#ifndef MEM_PRIVATE
#define MEM_PRIVATE 0x00020000
#endif
#ifndef MEM_MAPPED
#define MEM_MAPPED 0x00040000
#endif
#ifndef MEM_RESET
#define MEM_RESET 0x00080000
#endif
#ifndef MEM_TOP_DOWN
#define MEM_TOP_DOWN 0x00100000
#endif
#ifndef MEM_WRITE_WATCH
#define MEM_WRITE_WATCH 0x00200000
#endif
#ifndef MEM_RESET_UNDO
#define MEM_RESET_UNDO 0x01000000
#endif
#ifndef MEM_IMAGE
#define MEM_IMAGE 0x01000000
#endif
#ifndef MEM_LARGE_PAGES
#define MEM_LARGE_PAGES 0x20000000
#endif

/* ---- page protections ------------------------------------------------- */
#ifndef PAGE_NOACCESS
#define PAGE_NOACCESS 0x01
#endif
#ifndef PAGE_READONLY
#define PAGE_READONLY 0x02
#endif
#ifndef PAGE_READWRITE
#define PAGE_READWRITE 0x04
#endif
#ifndef PAGE_WRITECOPY
#define PAGE_WRITECOPY 0x08
#endif
#ifndef PAGE_EXECUTE
#define PAGE_EXECUTE 0x10
#endif
#ifndef PAGE_EXECUTE_READ
#define PAGE_EXECUTE_READ 0x20
#endif
#ifndef PAGE_EXECUTE_READWRITE
#define PAGE_EXECUTE_READWRITE 0x40
#endif
#ifndef PAGE_EXECUTE_WRITECOPY
#define PAGE_EXECUTE_WRITECOPY 0x80
#endif
#ifndef PAGE_GUARD
#define PAGE_GUARD 0x100
#endif
#ifndef PAGE_NOCACHE
#define PAGE_NOCACHE 0x200
#endif
#ifndef PAGE_WRITECOMBINE
#define PAGE_WRITECOMBINE 0x400
#endif

/* ---- HRESULTs (docs/api.md A2) ---------------------------------------- */
#ifndef S_OK
#define S_OK ((HRESULT)0)
#endif
#ifndef E_NOTIMPL
#define E_NOTIMPL ((HRESULT)0x80004001)
#endif
#ifndef E_POINTER
#define E_POINTER ((HRESULT)0x80004003)
#endif
#ifndef E_FAIL
#define E_FAIL ((HRESULT)0x80004005)
#endif
#ifndef E_ACCESSDENIED
#define E_ACCESSDENIED ((HRESULT)0x80070005)
#endif
#ifndef E_OUTOFMEMORY
#define E_OUTOFMEMORY ((HRESULT)0x8007000E)
#endif
#ifndef E_INVALIDARG
#define E_INVALIDARG ((HRESULT)0x80070057)
#endif
#ifndef HOST_E_INVALIDOPERATION
#define HOST_E_INVALIDOPERATION ((HRESULT)0x80131022)
#endif
#ifndef HOST_E_CLRNOTAVAILABLE
#define HOST_E_CLRNOTAVAILABLE ((HRESULT)0x80131023)
#endif
#ifndef HOST_E_TIMEOUT
#define HOST_E_TIMEOUT ((HRESULT)0x80131024)
#endif
#ifndef HOST_E_NOT_OWNER
#define HOST_E_NOT_OWNER ((HRESULT)0x80131025)
#endif
#ifndef HOST_E_ABANDONED
#define HOST_E_ABANDONED ((HRESULT)0x80131026)
#endif
#ifndef E_NOINTERFACE
#define E_NOINTERFACE ((HRESULT)0x80004002)
#endif
/* ERROR_INVALID_ADDRESS (487) and ERROR_BAD_LENGTH (24) as HRESULTs. */
#define HOSTMEM_E_INVALID_ADDRESS ((HRESULT)0x800701E7)
#define HOSTMEM_E_BAD_LENGTH ((HRESULT)0x80070018)

/* ---- hosting enums ---------------------------------------------------- */
#ifndef HOSTMEM_NO_HOSTING_ENUMS
typedef enum {
    eTaskCritical = 0,
    eAppDomainCritical = 1,
    eProcessCritical = 2
} EMemoryCriticalLevel;

typedef enum {
    eMemoryAvailableLow = 1,
    eMemoryAvailableNeutral = 2,
    eMemoryAvailableHigh = 3
} EMemoryAvailable;
#endif

#if !defined(_WINNT_) && !defined(_WINNT_H) && !defined(HOSTMEM_MBI_DEFINED)
#define HOSTMEM_MBI_DEFINED
typedef struct _MEMORY_BASIC_INFORMATION {
    void *BaseAddress;
    void *AllocationBase;
    DWORD AllocationProtect;
    SIZE_T RegionSize;
    DWORD State;
    DWORD Protect;
    DWORD Type;
} MEMORY_BASIC_INFORMATION, *PMEMORY_BASIC_INFORMATION;
#endif

/* ---- configuration and statistics ------------------------------------- */
typedef struct hostmem_config {
    SIZE_T commit_limit;            /* bytes; 0 = no limit of our own (default 0)          */
    SIZE_T address_space_limit;     /* reserved + external bytes; 0 = none (default 0)     */
    DWORD task_percent;             /* eTaskCritical ceiling, % of a limit (default 90)     */
    DWORD appdomain_percent;        /* eAppDomainCritical ceiling (default 97)              */
    DWORD low_memory_percent;       /* state Low at or above this % of commit_limit (90)    */
    DWORD high_memory_percent;      /* state High below this % of commit_limit (60)         */
    DWORD process_critical_wait_ms; /* eProcessCritical waits this long for frees (0)       */
    DWORD lock_timeout_ms;          /* HOST_E_TIMEOUT after this wait; 0 = forever (0)      */
    bool deny_write_execute;        /* PAGE_EXECUTE_READWRITE -> E_ACCESSDENIED (false)     */
    /* Guard pages (W2).  With guard_handler set (default false), hostmem_create
     * installs a process-wide SIGSEGV handler (once; it stays) that clears the guard of a
     * page the host touched, calls on_guard(guard_context, address) if set -- in the
     * signal handler: async-signal-safe code only -- and retries the access; every other
     * fault goes to the handler that was installed before.  Without it, a host that owns
     * SIGSEGV calls hostmem_handle_fault() from its own handler. */
    bool guard_handler;
    void (*on_guard)(void *guard_context, void *address);
    void *guard_context;
    /* Call stacks (T7, docs/tracing.md).  With stack_depth N > 0 (at most 64,
     * default 0 = off), each reserve, commit and heap allocation event is
     * preceded by a hostmem:stack event with up to N return addresses of the
     * host, innermost first; stack_walk says how they are found:
     * HOSTMEM_STACK_WALK_UNWIND (default: the binaries' unwind tables, through
     * libunwind) or HOSTMEM_STACK_WALK_FRAME_POINTERS (faster; only for hosts
     * built with frame pointers).  The environment overrides both fields when
     * set: HOSTMEM_STACKS=N and HOSTMEM_STACKS_UNWIND=unwind|fp.
     * New fields are added at the end of this struct: fill it with
     * hostmem_config_init, never by hand. */
    DWORD stack_depth;
    DWORD stack_walk;
} hostmem_config;

#define HOSTMEM_STACK_DEPTH_MAX 64u
#define HOSTMEM_STACK_WALK_UNWIND 0u
#define HOSTMEM_STACK_WALK_FRAME_POINTERS 1u

typedef struct hostmem_stats {
    SIZE_T reserved_bytes;       /* sum of region sizes, page-rounded, as query reports them */
    SIZE_T committed_bytes;      /* commit charge: committed pages * page size               */
    SIZE_T peak_committed_bytes; /* highest committed_bytes since create                     */
    SIZE_T region_count;         /* live reservations                                        */
    SIZE_T external_bytes;       /* address space reported by acquired_virtual_address_space */
    SIZE_T peak_reserved_bytes;  /* highest reserved_bytes since create                      */
    SIZE_T page_size;            /* the OS page size P                                       */
    SIZE_T granularity;          /* allocation granularity G (65536)                         */
    SIZE_T metadata_bytes;       /* bytes of bookkeeping the manager holds                   */
    SIZE_T watched_bytes;        /* bytes of live write-watch regions (MEM_WRITE_WATCH)      */
    SIZE_T guard_pages;          /* committed pages carrying PAGE_GUARD now                  */
} hostmem_stats;

typedef struct hostmem_manager hostmem_manager;
typedef void (*hostmem_notification_fn)(void *context, EMemoryAvailable state);

/* ---- the manager (docs/api.md A3) ------------------------------------- */
HOSTMEM_API void hostmem_config_init(hostmem_config *config);
HOSTMEM_API HRESULT hostmem_create(const hostmem_config *config, hostmem_manager **out);
HOSTMEM_API void hostmem_shutdown(hostmem_manager *m);
HOSTMEM_API void hostmem_destroy(hostmem_manager *m);

HOSTMEM_API HRESULT hostmem_virtual_alloc(hostmem_manager *m, void *address, SIZE_T size,
                                          DWORD allocation_type, DWORD protect,
                                          EMemoryCriticalLevel level, void **out_mem);
HOSTMEM_API HRESULT hostmem_virtual_free(hostmem_manager *m, void *address, SIZE_T size,
                                         DWORD free_type);
HOSTMEM_API HRESULT hostmem_virtual_query(hostmem_manager *m, const void *address, void *buffer,
                                          SIZE_T length, SIZE_T *out_written);
HOSTMEM_API HRESULT hostmem_virtual_protect(hostmem_manager *m, void *address, SIZE_T size,
                                            DWORD new_protect, DWORD *old_protect);
HOSTMEM_API HRESULT hostmem_get_memory_load(hostmem_manager *m, DWORD *memory_load,
                                            SIZE_T *available_bytes);
/* One callback per manager: registering again replaces it.  It hears the current state at once. */
HOSTMEM_API HRESULT hostmem_register_memory_notification_callback(
    hostmem_manager *m, void (*on_notification)(void *context, EMemoryAvailable state),
    void *context);
HOSTMEM_API HRESULT hostmem_needs_virtual_address_space(hostmem_manager *m, void *start,
                                                        SIZE_T size);
HOSTMEM_API HRESULT hostmem_acquired_virtual_address_space(hostmem_manager *m, void *start,
                                                           SIZE_T size);
HOSTMEM_API HRESULT hostmem_released_virtual_address_space(hostmem_manager *m, void *start);
HOSTMEM_API HRESULT hostmem_get_stats(hostmem_manager *m, hostmem_stats *out);

/* ---- the manager's heap (H1-H4, IHostMalloc) ------------------ */
#ifndef MALLOC_THREADSAFE
#define MALLOC_THREADSAFE 0x1 /* any thread may call at any time (else one at a time) */
#endif
#ifndef MALLOC_EXECUTABLE
#define MALLOC_EXECUTABLE 0x2 /* blocks are PAGE_EXECUTE_READWRITE */
#endif

typedef struct hostmem_malloc hostmem_malloc;

typedef struct hostmem_malloc_stats {
    SIZE_T live_blocks;     /* allocated and not yet freed                                  */
    SIZE_T live_bytes;      /* their usable sizes: the size class, or a large block's size  */
    SIZE_T committed_bytes; /* bytes the heap has committed in its manager (all of its own) */
    SIZE_T reserved_bytes;  /* bytes of the regions it holds                                */
    SIZE_T segments;        /* 1 MiB segments of small blocks                               */
    SIZE_T large_blocks;    /* blocks above 16 KiB, each in a region of its own             */
} hostmem_malloc_stats;

/* A heap whose memory comes from m (reserved and committed through m, so its
 * limits, levels, memory state and trace see it).  docs/heap.md describes it. */
HOSTMEM_API HRESULT hostmem_create_malloc(hostmem_manager *m, DWORD malloc_type, hostmem_malloc **out);
/* A block of at least `size` bytes, 16-byte aligned; memory it needs from the
 * manager is committed at `level`.  Size 0 gives a unique block. */
HOSTMEM_API HRESULT hostmem_malloc_alloc(hostmem_malloc *h, SIZE_T size, EMemoryCriticalLevel level,
                                         void **out);
/* As hostmem_malloc_alloc; the trace records `file` and `line` (not copied, may be NULL). */
HOSTMEM_API HRESULT hostmem_malloc_debug_alloc(hostmem_malloc *h, SIZE_T size,
                                               EMemoryCriticalLevel level, const char *file,
                                               int line, void **out);
HOSTMEM_API HRESULT hostmem_malloc_free(hostmem_malloc *h, void *p);
/* Decommits and releases every region the heap holds; live blocks go with it. NULL: no-op. */
HOSTMEM_API void hostmem_malloc_destroy(hostmem_malloc *h);
/* Extensions: the heap's counters, and giving back every free page now. */
HOSTMEM_API HRESULT hostmem_malloc_get_stats(hostmem_malloc *h, hostmem_malloc_stats *out);
HOSTMEM_API HRESULT hostmem_malloc_trim(hostmem_malloc *h);

/* ---- write watch (W1) ------------------------------------------
 * A region reserved with MEM_RESERVE | MEM_WRITE_WATCH (with or without
 * MEM_COMMIT) records which of its pages were written since it was made or
 * last reset, with no fault and no signal on the host's writes (nor on the
 * kernel's, e.g. read(2) into the region).  Where the kernel lacks the means
 * (userfaultfd asynchronous write-protect and PAGEMAP_SCAN, Linux 6.7), such a
 * reservation fails with E_NOTIMPL.  As on Windows, protect does not change
 * what was written, and decommit does not forget it: a written page stays
 * reported until a reset, whatever happened to it since.
 *
 * get_write_watch stores the addresses of the written pages of [base, base +
 * size) (rounded out to pages), in address order, at most *count of them, sets
 * *count to the number stored and *granularity to the page size; with
 * WRITE_WATCH_FLAG_RESET the pages it stored are reset.  reset_write_watch
 * resets every page of the range.  E_INVALIDARG: flags other than 0 or
 * WRITE_WATCH_FLAG_RESET, size 0, *count 0, a range not inside one write-watch
 * region of this manager.  E_POINTER: NULL manager, addresses, count or
 * granularity. */
#ifndef WRITE_WATCH_FLAG_RESET
#define WRITE_WATCH_FLAG_RESET 0x01
#endif
HOSTMEM_API HRESULT hostmem_get_write_watch(hostmem_manager *m, DWORD flags, void *base, SIZE_T size,
                                            void **addresses, ULONG_PTR *count,
                                            DWORD *granularity);
HOSTMEM_API HRESULT hostmem_reset_write_watch(hostmem_manager *m, void *base, SIZE_T size);

/* ---- guard pages (W2) -------------------------------------------
 * PAGE_GUARD is one-shot, as on Windows: the first access to a guard page
 * faults; hostmem_handle_fault() then clears the guard of that page (query
 * shows the protection without PAGE_GUARD) and answers HOSTMEM_FAULT_GUARD:
 * retrying the access now succeeds or faults as the plain protection says.
 * HOSTMEM_FAULT_ACCESS: an access the protection forbids inside a region of a
 * manager (reserved or decommitted pages included).  HOSTMEM_FAULT_NOT_OURS:
 * anything else (chain to the next handler).  Call it from a SIGSEGV or SIGBUS
 * handler with the handler's siginfo: it is async-signal-safe, finds the
 * region without a lock, and serves every manager of the process.  When
 * threads touch one guard page at the same instant, one clears it and all see
 * HOSTMEM_FAULT_GUARD (the region remembers its last 8 hits for them), and a
 * fault racing a call that changes the page (a protect that re-arms a guard)
 * is judged by the page as the call leaves it.  Each guard page is cleared alone, however many
 * hits come with no call in between, for up to 65536 guard pages per region;
 * past that many, a hit clears the guard of the whole run of like guard pages
 * around the page. */
typedef enum hostmem_fault {
    HOSTMEM_FAULT_NOT_OURS = 0,
    HOSTMEM_FAULT_GUARD = 1,
    HOSTMEM_FAULT_ACCESS = 2
} hostmem_fault;
/* `info`: the handler's siginfo_t *.  Declared const void * so that this
 * header compiles in strict ISO C too (-std=c11 without POSIX feature macros,
 * where <signal.h> declares no siginfo_t); a siginfo_t * converts to it
 * implicitly, in C and in C++. */
HOSTMEM_API hostmem_fault hostmem_handle_fault(const void *info);

/* The symbolic name of an HRESULT ("E_OUTOFMEMORY"), "UNKNOWN" outside the table. */
HOSTMEM_API const char *hostmem_hresult_name(HRESULT hr);

/*
 * Error codes and their conditions
 * --------------------------------
 * S_OK                      success.
 * E_POINTER                 NULL manager, NULL out_mem / buffer / out_written / old_protect /
 *                           memory_load / available_bytes / out, NULL callback.
 * E_INVALIDARG              bad allocation or free type, bad protection (rules S1, S2,
 *                           S7), size 0 where a size is needed, a range that wraps or ends
 *                           beyond the user address space, a reservation in the first 64 KiB,
 *                           a decommit range past the region end, MEM_RELEASE with a size, a
 *                           query address above user space, a level outside 0..2; the kernel
 *                           answered EINVAL.
 * E_ACCESSDENIED            PAGE_EXECUTE_READWRITE while deny_write_execute is set; the
 *                           kernel answered EACCES or EPERM.
 * E_NOTIMPL                 MEM_WRITE_WATCH with MEM_RESERVE on a kernel without
 *                           userfaultfd asynchronous write-protect and PAGEMAP_SCAN (Linux
 *                           before 6.7, or userfaultfd disabled for the process).
 * E_OUTOFMEMORY             the OS refused memory or address space (ENOMEM, EAGAIN), the
 *                           process is out of file descriptors (EMFILE, ENFILE: query and
 *                           get_memory_load read /proc), the kernel's answer could not be
 *                           read or the kernel gave any other errno that names no bad
 *                           argument or permission (EIO...), a
 *                           critical-level ceiling denied the request, the size cannot be
 *                           reserved, MEM_RESET_UNDO found a page whose data may be gone,
 *                           needs_virtual_address_space would exceed the limit, bookkeeping
 *                           could not be allocated.
 * HOSTMEM_E_INVALID_ADDRESS the range is not inside one reservation of this manager, overlaps
 *                           an existing mapping (reserve), covers uncommitted pages (protect),
 *                           release at an address that is not a region base, decommit with
 *                           size 0 away from the region's base page.
 * HOSTMEM_E_BAD_LENGTH      query buffer shorter than MEMORY_BASIC_INFORMATION.
 * HOST_E_INVALIDOPERATION   decommit or release of an address inside no region of this
 *                           manager; releasing external address space never acquired;
 *                           acquiring a start that is already acquired.
 * HOST_E_CLRNOTAVAILABLE    the manager was shut down, or is unavailable after E_FAIL.
 * HOST_E_ABANDONED          the call was waiting (for memory or a lock) when shutdown came.
 * HOST_E_TIMEOUT            lock_timeout_ms passed while waiting for the manager.
 * E_FAIL                    the OS refused to restore state during a rollback; the manager is
 *                           unavailable from then on (every later call: HOST_E_CLRNOTAVAILABLE).
 * Heap (hostmem_create_malloc, hostmem_malloc_*):
 *   E_POINTER               NULL manager, heap or out-pointer.
 *   E_INVALIDARG            unknown malloc_type bits; a level outside 0..2; freeing a pointer
 *                           that is not 16-byte aligned, outside the heap's memory (the stack,
 *                           the system malloc, another heap, a region of the host), inside a
 *                           block, never handed out, or already freed (nothing changes).
 *   E_ACCESSDENIED          MALLOC_EXECUTABLE while deny_write_execute is set.
 *   E_OUTOFMEMORY           the manager refused the memory (limit, level, OS), or the size
 *                           cannot be met; *out is NULL.
 *   (any HRESULT of hostmem_virtual_alloc when the manager refuses for another reason)
 * HOST_E_NOT_OWNER          never returned: hostmem has no lock-ownership API, and a region of
 *                           another manager is "inside no region of this manager"
 *                           (HOST_E_INVALIDOPERATION).
 */

#ifdef __cplusplus
}
#endif
#endif /* HOSTMEM_HOSTMEM_H */
