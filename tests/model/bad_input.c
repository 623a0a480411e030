/*
 * bad_input.c: the catalogue of invalid input the public API can receive.
 *
 * One row per case: the call, its arguments (addresses relative to regions
 * made before the call), and the HRESULT the contract requires.  For every
 * row the test proves the call changed nothing: the statistics, a query walk
 * of the pre-made regions, the description of a foreign mapping, the data in
 * the committed pages and the other manager are identical before and after,
 * and a failed virtual_alloc leaves *out_mem NULL (A4).
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>

#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <hostmem/hostmem.h>

enum call {
    ALLOC, FREE, PROTECT, QUERY, LOAD, REGISTER, NEEDS, ACQUIRED, RELEASED, STATS, CREATE,
    SHUTDOWN_NULL, DESTROY_NULL,
};

/* Where an address points. */
enum anchor {
    A_NULL,    /* 0 */
    A_R0,      /* region 0: 15 pages reserved, the first 4 committed read-write */
    A_R0_END,  /* just past region 0 (the unusable rest of its granule) */
    A_R1,      /* region 1: 2 pages reserved and committed read-only */
    A_FOREIGN, /* a read-write mapping the test made with mmap */
    A_OTHER,   /* a region of another manager */
    A_HIGH,    /* 2^47, the end of user space */
    A_TOP,     /* the last page of the address space */
    A_EXT,     /* a start given to acquired_virtual_address_space */
    A_LOW,     /* 0x1000: rounds down to 0 */
};

/* Which pointer argument is NULL. */
enum nullarg { N_NONE, N_MGR, N_OUT, N_BUF, N_WRITTEN, N_LOAD, N_AVAIL, N_CALLBACK };

#define SZ_PAGES(n) ((size_t)(n) * 4096)
#define SZ_WRAP ((size_t)-1)          /* SIZE_MAX */
#define SZ_TO_WRAP ((size_t)-2)       /* marker: 0 - address (ends exactly at 2^64) */

typedef struct row {
    char name[96]; /* inline: the worker is a new process image (boxfort), pointers would not survive */
    enum call call;
    enum anchor at;
    size_t off;     /* bytes added to the anchor */
    size_t size;    /* size argument (SZ_TO_WRAP: computed) */
    DWORD type;     /* allocation or free type; query: buffer length */
    DWORD protect;
    int level;
    enum nullarg null;
    bool deny_wx;   /* manager made with deny_write_execute */
    HRESULT expect;
} row;

#define RW PAGE_READWRITE
#define R_ MEM_RESERVE
#define C_ MEM_COMMIT
#define MBI sizeof(MEMORY_BASIC_INFORMATION)

static row rows[] = {
    /* A4: NULL manager for every function, NULL out-pointers. */
    {"alloc: NULL manager", ALLOC, A_NULL, 0, 4096, R_, RW, 0, N_MGR, false, E_POINTER},
    {"free: NULL manager", FREE, A_R0, 0, 0, MEM_RELEASE, 0, 0, N_MGR, false, E_POINTER},
    {"protect: NULL manager", PROTECT, A_R0, 0, 4096, 0, RW, 0, N_MGR, false, E_POINTER},
    {"query: NULL manager", QUERY, A_R0, 0, 0, MBI, 0, 0, N_MGR, false, E_POINTER},
    {"get_memory_load: NULL manager", LOAD, A_NULL, 0, 0, 0, 0, 0, N_MGR, false, E_POINTER},
    {"register callback: NULL manager", REGISTER, A_NULL, 0, 0, 0, 0, 0, N_MGR, false, E_POINTER},
    {"needs address space: NULL manager", NEEDS, A_HIGH, 0, 65536, 0, 0, 0, N_MGR, false, E_POINTER},
    {"acquired address space: NULL manager", ACQUIRED, A_HIGH, 0, 65536, 0, 0, 0, N_MGR, false, E_POINTER},
    {"released address space: NULL manager", RELEASED, A_EXT, 0, 0, 0, 0, 0, N_MGR, false, E_POINTER},
    {"get_stats: NULL manager", STATS, A_NULL, 0, 0, 0, 0, 0, N_MGR, false, E_POINTER},
    {"shutdown: NULL manager is a no-op", SHUTDOWN_NULL, A_NULL, 0, 0, 0, 0, 0, N_MGR, false, S_OK},
    {"destroy: NULL manager is a no-op", DESTROY_NULL, A_NULL, 0, 0, 0, 0, 0, N_MGR, false, S_OK},
    {"create: NULL out", CREATE, A_NULL, 0, 0, 0, 0, 0, N_OUT, false, E_POINTER},
    {"alloc: NULL out_mem", ALLOC, A_NULL, 0, 4096, R_, RW, 0, N_OUT, false, E_POINTER},
    {"alloc: NULL out_mem, commit", ALLOC, A_R0, 0, 4096, C_, RW, 0, N_OUT, false, E_POINTER},
    {"protect: NULL old_protect", PROTECT, A_R0, 0, 4096, 0, PAGE_READONLY, 0, N_OUT, false, E_POINTER},
    {"query: NULL buffer", QUERY, A_R0, 0, 0, MBI, 0, 0, N_BUF, false, E_POINTER},
    {"query: NULL out_written", QUERY, A_R0, 0, 0, MBI, 0, 0, N_WRITTEN, false, E_POINTER},
    {"get_memory_load: NULL memory_load", LOAD, A_NULL, 0, 0, 0, 0, 0, N_LOAD, false, E_POINTER},
    {"get_memory_load: NULL available_bytes", LOAD, A_NULL, 0, 0, 0, 0, 0, N_AVAIL, false, E_POINTER},
    {"register callback: NULL callback", REGISTER, A_NULL, 0, 0, 0, 0, 0, N_CALLBACK, false, E_POINTER},
    {"get_stats: NULL out", STATS, A_NULL, 0, 0, 0, 0, 0, N_OUT, false, E_POINTER},

    /* S1: allocation types. */
    {"alloc type 0", ALLOC, A_NULL, 0, 4096, 0, RW, 0, N_NONE, false, E_INVALIDARG},
    {"alloc type MEM_DECOMMIT", ALLOC, A_NULL, 0, 4096, MEM_DECOMMIT, RW, 0, N_NONE, false, E_INVALIDARG},
    {"alloc type MEM_RELEASE", ALLOC, A_NULL, 0, 4096, MEM_RELEASE, RW, 0, N_NONE, false, E_INVALIDARG},
    {"alloc type MEM_FREE", ALLOC, A_NULL, 0, 4096, MEM_FREE, RW, 0, N_NONE, false, E_INVALIDARG},
    {"alloc type MEM_PRIVATE", ALLOC, A_NULL, 0, 4096, MEM_PRIVATE, RW, 0, N_NONE, false, E_INVALIDARG},
    {"alloc type MEM_MAPPED", ALLOC, A_NULL, 0, 4096, MEM_MAPPED, RW, 0, N_NONE, false, E_INVALIDARG},
    {"alloc type MEM_TOP_DOWN alone", ALLOC, A_NULL, 0, 4096, MEM_TOP_DOWN, RW, 0, N_NONE, false, E_INVALIDARG},
    {"alloc type MEM_LARGE_PAGES alone", ALLOC, A_NULL, 0, 2 << 20, MEM_LARGE_PAGES, RW, 0, N_NONE, false, E_INVALIDARG},
    {"alloc type MEM_WRITE_WATCH alone", ALLOC, A_NULL, 0, 4096, MEM_WRITE_WATCH, RW, 0, N_NONE, false, E_INVALIDARG},
    {"alloc type RESERVE|DECOMMIT", ALLOC, A_NULL, 0, 4096, R_ | MEM_DECOMMIT, RW, 0, N_NONE, false, E_INVALIDARG},
    {"alloc type RESERVE|COMMIT|RELEASE", ALLOC, A_NULL, 0, 4096, R_ | C_ | MEM_RELEASE, RW, 0, N_NONE, false, E_INVALIDARG},
    {"alloc type RESERVE|0x1", ALLOC, A_NULL, 0, 4096, R_ | 0x1, RW, 0, N_NONE, false, E_INVALIDARG},
    {"alloc type RESERVE|0x40000000", ALLOC, A_NULL, 0, 4096, R_ | 0x40000000, RW, 0, N_NONE, false, E_INVALIDARG},
    {"alloc type RESERVE|0x80000000", ALLOC, A_NULL, 0, 4096, R_ | 0x80000000u, RW, 0, N_NONE, false, E_INVALIDARG},
    {"alloc type 0xffffffff", ALLOC, A_NULL, 0, 4096, 0xffffffffu, RW, 0, N_NONE, false, E_INVALIDARG},
    {"alloc LARGE_PAGES|RESERVE (no commit)", ALLOC, A_NULL, 0, 2 << 20, MEM_LARGE_PAGES | R_, RW, 0, N_NONE, false, E_INVALIDARG},
    {"alloc LARGE_PAGES|COMMIT (no reserve)", ALLOC, A_NULL, 0, 2 << 20, MEM_LARGE_PAGES | C_, RW, 0, N_NONE, false, E_INVALIDARG},
    {"alloc LARGE_PAGES, size not a huge-page multiple", ALLOC, A_NULL, 0, 4096, MEM_LARGE_PAGES | R_ | C_, RW, 0, N_NONE, false, E_INVALIDARG},
    /* r0 is only granule-aligned: an address 4 KiB past a granule can never be
     * huge-page aligned, whereas a granule boundary is one time in 32. */
    {"alloc LARGE_PAGES, address not huge-page aligned", ALLOC, A_R0_END, 65536 * 4 + 8192, 2 << 20, MEM_LARGE_PAGES | R_ | C_, RW, 0, N_NONE, false, E_INVALIDARG},
    {"alloc WRITE_WATCH|COMMIT (no reserve)", ALLOC, A_NULL, 0, 4096, MEM_WRITE_WATCH | C_, RW, 0, N_NONE, false, E_INVALIDARG},
    {"alloc WRITE_WATCH|COMMIT in a region", ALLOC, A_R0, 0, 4096, MEM_WRITE_WATCH | C_, RW, 0, N_NONE, false, E_INVALIDARG},
    {"alloc WRITE_WATCH|RESERVE, bad protection", ALLOC, A_NULL, 0, 4096, MEM_WRITE_WATCH | R_, 0, 0, N_NONE, false, E_INVALIDARG},
    {"alloc RESET|COMMIT", ALLOC, A_R0, 0, 4096, MEM_RESET | C_, RW, 0, N_NONE, false, E_INVALIDARG},
    {"alloc RESET|RESERVE", ALLOC, A_R0, 0, 4096, MEM_RESET | R_, RW, 0, N_NONE, false, E_INVALIDARG},
    {"alloc RESET|TOP_DOWN", ALLOC, A_R0, 0, 4096, MEM_RESET | MEM_TOP_DOWN, RW, 0, N_NONE, false, E_INVALIDARG},
    {"alloc RESET|RESET_UNDO", ALLOC, A_R0, 0, 4096, MEM_RESET | MEM_RESET_UNDO, RW, 0, N_NONE, false, E_INVALIDARG},
    {"alloc RESET_UNDO|COMMIT", ALLOC, A_R0, 0, 4096, MEM_RESET_UNDO | C_, RW, 0, N_NONE, false, E_INVALIDARG},
    {"alloc RESET|LARGE_PAGES", ALLOC, A_R0, 0, 4096, MEM_RESET | MEM_LARGE_PAGES, RW, 0, N_NONE, false, E_INVALIDARG},

    /* S2: protections (reserve at NULL, commit in region 0, virtual_protect on a committed page). */
    {"alloc protect 0", ALLOC, A_NULL, 0, 4096, R_, 0, 0, N_NONE, false, E_INVALIDARG},
    {"alloc protect WRITECOPY", ALLOC, A_NULL, 0, 4096, R_, PAGE_WRITECOPY, 0, N_NONE, false, E_INVALIDARG},
    {"alloc protect EXECUTE_WRITECOPY", ALLOC, A_NULL, 0, 4096, R_, PAGE_EXECUTE_WRITECOPY, 0, N_NONE, false, E_INVALIDARG},
    {"alloc protect READONLY|READWRITE", ALLOC, A_NULL, 0, 4096, R_, PAGE_READONLY | RW, 0, N_NONE, false, E_INVALIDARG},
    {"alloc protect EXECUTE|EXECUTE_READ", ALLOC, A_NULL, 0, 4096, R_, PAGE_EXECUTE | PAGE_EXECUTE_READ, 0, N_NONE, false, E_INVALIDARG},
    {"alloc protect NOACCESS|GUARD", ALLOC, A_NULL, 0, 4096, R_, PAGE_NOACCESS | PAGE_GUARD, 0, N_NONE, false, E_INVALIDARG},
    {"alloc protect NOACCESS|NOCACHE", ALLOC, A_NULL, 0, 4096, R_, PAGE_NOACCESS | PAGE_NOCACHE, 0, N_NONE, false, E_INVALIDARG},
    {"alloc protect NOACCESS|WRITECOMBINE", ALLOC, A_NULL, 0, 4096, R_, PAGE_NOACCESS | PAGE_WRITECOMBINE, 0, N_NONE, false, E_INVALIDARG},
    {"alloc protect GUARD alone", ALLOC, A_NULL, 0, 4096, R_, PAGE_GUARD, 0, N_NONE, false, E_INVALIDARG},
    {"alloc protect READWRITE|GUARD|NOCACHE", ALLOC, A_NULL, 0, 4096, R_, RW | PAGE_GUARD | PAGE_NOCACHE, 0, N_NONE, false, E_INVALIDARG},
    {"alloc protect READWRITE|NOCACHE|WRITECOMBINE", ALLOC, A_NULL, 0, 4096, R_, RW | PAGE_NOCACHE | PAGE_WRITECOMBINE, 0, N_NONE, false, E_INVALIDARG},
    {"alloc protect READWRITE|0x800", ALLOC, A_NULL, 0, 4096, R_, RW | 0x800, 0, N_NONE, false, E_INVALIDARG},
    {"alloc protect READWRITE|0x80000000", ALLOC, A_NULL, 0, 4096, R_, RW | 0x80000000u, 0, N_NONE, false, E_INVALIDARG},
    {"alloc protect EXECUTE_READWRITE under deny_write_execute", ALLOC, A_NULL, 0, 4096, R_, PAGE_EXECUTE_READWRITE, 0, N_NONE, true, E_ACCESSDENIED},
    {"alloc protect EXECUTE_READWRITE|GUARD under deny_write_execute", ALLOC, A_NULL, 0, 4096, R_ | C_, PAGE_EXECUTE_READWRITE | PAGE_GUARD, 0, N_NONE, true, E_ACCESSDENIED},
    {"commit protect 0", ALLOC, A_R0, 0, 4096, C_, 0, 0, N_NONE, false, E_INVALIDARG},
    {"commit protect WRITECOPY", ALLOC, A_R0, 0, 4096, C_, PAGE_WRITECOPY, 0, N_NONE, false, E_INVALIDARG},
    {"commit protect EXECUTE_READWRITE under deny_write_execute", ALLOC, A_R0, 0, 4096, C_, PAGE_EXECUTE_READWRITE, 0, N_NONE, true, E_ACCESSDENIED},
    {"reset protect 0 (validated though ignored)", ALLOC, A_R0, 0, 4096, MEM_RESET, 0, 0, N_NONE, false, E_INVALIDARG},
    {"reset protect WRITECOPY", ALLOC, A_R0, 0, 4096, MEM_RESET, PAGE_WRITECOPY, 0, N_NONE, false, E_INVALIDARG},
    {"protect to 0", PROTECT, A_R0, 0, 4096, 0, 0, 0, N_NONE, false, E_INVALIDARG},
    {"protect to WRITECOPY", PROTECT, A_R0, 0, 4096, 0, PAGE_WRITECOPY, 0, N_NONE, false, E_INVALIDARG},
    {"protect to EXECUTE_WRITECOPY", PROTECT, A_R0, 0, 4096, 0, PAGE_EXECUTE_WRITECOPY, 0, N_NONE, false, E_INVALIDARG},
    {"protect to READONLY|READWRITE", PROTECT, A_R0, 0, 4096, 0, PAGE_READONLY | RW, 0, N_NONE, false, E_INVALIDARG},
    {"protect to NOACCESS|GUARD", PROTECT, A_R0, 0, 4096, 0, PAGE_NOACCESS | PAGE_GUARD, 0, N_NONE, false, E_INVALIDARG},
    {"protect to READWRITE|GUARD|WRITECOMBINE", PROTECT, A_R0, 0, 4096, 0, RW | PAGE_GUARD | PAGE_WRITECOMBINE, 0, N_NONE, false, E_INVALIDARG},
    {"protect to READWRITE|0x1000", PROTECT, A_R0, 0, 4096, 0, RW | 0x1000, 0, N_NONE, false, E_INVALIDARG},
    {"protect to EXECUTE_READWRITE under deny_write_execute", PROTECT, A_R0, 0, 4096, 0, PAGE_EXECUTE_READWRITE, 0, N_NONE, true, E_ACCESSDENIED},

    /* S3: sizes and ranges. */
    {"reserve size 0", ALLOC, A_NULL, 0, 0, R_, RW, 0, N_NONE, false, E_INVALIDARG},
    {"reserve+commit size 0", ALLOC, A_NULL, 0, 0, R_ | C_, RW, 0, N_NONE, false, E_INVALIDARG},
    {"commit size 0", ALLOC, A_R0, 0, 0, C_, RW, 0, N_NONE, false, E_INVALIDARG},
    {"reset size 0", ALLOC, A_R0, 0, 0, MEM_RESET, RW, 0, N_NONE, false, E_INVALIDARG},
    {"reserve past the end of user space", ALLOC, A_HIGH, (size_t)-65536, 2 * 65536, R_, RW, 0, N_NONE, false, E_INVALIDARG},
    {"reserve at the end of user space", ALLOC, A_HIGH, 0, 65536, R_, RW, 0, N_NONE, false, E_INVALIDARG},
    {"reserve at the top page", ALLOC, A_TOP, 0, 4096, R_, RW, 0, N_NONE, false, E_INVALIDARG},
    {"reserve with a size that wraps", ALLOC, A_R0_END, 65536 * 8, SZ_WRAP, R_, RW, 0, N_NONE, false, E_INVALIDARG},
    {"reserve ending exactly at 2^64", ALLOC, A_R0_END, 65536 * 8, SZ_TO_WRAP, R_, RW, 0, N_NONE, false, E_INVALIDARG},
    {"commit with a size that wraps", ALLOC, A_R0, 0, SZ_WRAP, C_, RW, 0, N_NONE, false, E_INVALIDARG},
    {"commit beyond user space", ALLOC, A_R0, 0, (size_t)1 << 47, C_, RW, 0, N_NONE, false, E_INVALIDARG},
    {"reserve 2^62 bytes at NULL: cannot be reserved", ALLOC, A_NULL, 0, (size_t)1 << 62, R_, RW, 0, N_NONE, false, E_OUTOFMEMORY},
    {"reserve 2^47 bytes at NULL: cannot be reserved", ALLOC, A_NULL, 0, (size_t)1 << 47, R_, RW, 0, N_NONE, false, E_OUTOFMEMORY},
    {"reserve+commit 2^62 bytes at NULL", ALLOC, A_NULL, 0, (size_t)1 << 62, R_ | C_, RW, 0, N_NONE, false, E_OUTOFMEMORY},
    {"protect size 0", PROTECT, A_R0, 0, 0, 0, PAGE_READONLY, 0, N_NONE, false, E_INVALIDARG},
    {"protect with a size that wraps", PROTECT, A_R0, 0, SZ_WRAP, 0, PAGE_READONLY, 0, N_NONE, false, E_INVALIDARG},
    {"decommit with a size that wraps", FREE, A_R0, 0, SZ_WRAP, MEM_DECOMMIT, 0, 0, N_NONE, false, E_INVALIDARG},

    /* S4, S5, S10: addresses for alloc. */
    {"reserve over region 0", ALLOC, A_R0, 0, 4096, R_, RW, 0, N_NONE, false, HOSTMEM_E_INVALID_ADDRESS},
    {"reserve inside region 0", ALLOC, A_R0, 5 * 4096, 4096, R_, RW, 0, N_NONE, false, HOSTMEM_E_INVALID_ADDRESS},
    {"reserve+commit over region 1", ALLOC, A_R1, 0, 4096, R_ | C_, RW, 0, N_NONE, false, HOSTMEM_E_INVALID_ADDRESS},
    {"reserve over a foreign mapping", ALLOC, A_FOREIGN, 0, 4096, R_, RW, 0, N_NONE, false, HOSTMEM_E_INVALID_ADDRESS},
    {"reserve+commit over a foreign mapping", ALLOC, A_FOREIGN, 4096, 4096, R_ | C_, RW, 0, N_NONE, false, HOSTMEM_E_INVALID_ADDRESS},
    {"reserve over another manager's region", ALLOC, A_OTHER, 0, 4096, R_, RW, 0, N_NONE, false, HOSTMEM_E_INVALID_ADDRESS},
    {"commit in a foreign mapping", ALLOC, A_FOREIGN, 0, 4096, C_, RW, 0, N_NONE, false, HOSTMEM_E_INVALID_ADDRESS},
    {"commit in another manager's region", ALLOC, A_OTHER, 0, 4096, C_, RW, 0, N_NONE, false, HOSTMEM_E_INVALID_ADDRESS},
    {"commit across region 0's end", ALLOC, A_R0, 0, 16 * 4096, C_, RW, 0, N_NONE, false, HOSTMEM_E_INVALID_ADDRESS},
    {"commit just past region 0", ALLOC, A_R0_END, 0, 4096, C_, RW, 0, N_NONE, false, HOSTMEM_E_INVALID_ADDRESS},
    {"commit in free space", ALLOC, A_HIGH, (size_t)-(16 * 65536), 4096, C_, RW, 0, N_NONE, false, HOSTMEM_E_INVALID_ADDRESS},
    {"reset in a foreign mapping", ALLOC, A_FOREIGN, 0, 4096, MEM_RESET, RW, 0, N_NONE, false, HOSTMEM_E_INVALID_ADDRESS},
    {"reset across region 0's end", ALLOC, A_R0, 14 * 4096, 2 * 4096, MEM_RESET, RW, 0, N_NONE, false, HOSTMEM_E_INVALID_ADDRESS},
    {"reset undo in a foreign mapping", ALLOC, A_FOREIGN, 0, 4096, MEM_RESET_UNDO, RW, 0, N_NONE, false, HOSTMEM_E_INVALID_ADDRESS},
    {"reset at NULL", ALLOC, A_NULL, 0, 4096, MEM_RESET, RW, 0, N_NONE, false, HOSTMEM_E_INVALID_ADDRESS},

    /* S6, S7: virtual_free. */
    {"free type 0", FREE, A_R0, 0, 0, 0, 0, 0, N_NONE, false, E_INVALIDARG},
    {"free type MEM_FREE", FREE, A_R0, 0, 0, MEM_FREE, 0, 0, N_NONE, false, E_INVALIDARG},
    {"free type DECOMMIT|RELEASE", FREE, A_R0, 0, 0, MEM_DECOMMIT | MEM_RELEASE, 0, 0, N_NONE, false, E_INVALIDARG},
    {"free type RELEASE|0x1", FREE, A_R0, 0, 0, MEM_RELEASE | 0x1, 0, 0, N_NONE, false, E_INVALIDARG},
    {"free type MEM_COMMIT", FREE, A_R0, 0, 0, MEM_COMMIT, 0, 0, N_NONE, false, E_INVALIDARG},
    {"release with a size", FREE, A_R0, 0, 4096, MEM_RELEASE, 0, 0, N_NONE, false, E_INVALIDARG},
    {"release with the region's size", FREE, A_R0, 0, 15 * 4096, MEM_RELEASE, 0, 0, N_NONE, false, E_INVALIDARG},
    {"release inside region 0", FREE, A_R0, 4096, 0, MEM_RELEASE, 0, 0, N_NONE, false, HOSTMEM_E_INVALID_ADDRESS},
    {"release at an odd address in region 0's 2nd page", FREE, A_R0, 4096 + 1, 0, MEM_RELEASE, 0, 0, N_NONE, false, HOSTMEM_E_INVALID_ADDRESS},
    {"release a foreign mapping", FREE, A_FOREIGN, 0, 0, MEM_RELEASE, 0, 0, N_NONE, false, HOST_E_INVALIDOPERATION},
    {"release another manager's region", FREE, A_OTHER, 0, 0, MEM_RELEASE, 0, 0, N_NONE, false, HOST_E_INVALIDOPERATION},
    {"release NULL", FREE, A_NULL, 0, 0, MEM_RELEASE, 0, 0, N_NONE, false, HOST_E_INVALIDOPERATION},
    {"release just past region 0", FREE, A_R0_END, 0, 0, MEM_RELEASE, 0, 0, N_NONE, false, HOST_E_INVALIDOPERATION},
    {"decommit a foreign mapping", FREE, A_FOREIGN, 0, 4096, MEM_DECOMMIT, 0, 0, N_NONE, false, HOST_E_INVALIDOPERATION},
    {"decommit another manager's region", FREE, A_OTHER, 0, 4096, MEM_DECOMMIT, 0, 0, N_NONE, false, HOST_E_INVALIDOPERATION},
    {"decommit NULL", FREE, A_NULL, 0, 4096, MEM_DECOMMIT, 0, 0, N_NONE, false, HOST_E_INVALIDOPERATION},
    {"decommit size 0 away from the base page", FREE, A_R0, 5 * 4096, 0, MEM_DECOMMIT, 0, 0, N_NONE, false, HOSTMEM_E_INVALID_ADDRESS},
    {"decommit past region 0's end", FREE, A_R0, 0, 16 * 4096, MEM_DECOMMIT, 0, 0, N_NONE, false, E_INVALIDARG},
    {"decommit past region 1's end", FREE, A_R1, 4096, 2 * 4096, MEM_DECOMMIT, 0, 0, N_NONE, false, E_INVALIDARG},

    /* S8: virtual_protect addresses. */
    {"protect a reserved page", PROTECT, A_R0, 5 * 4096, 4096, 0, PAGE_READONLY, 0, N_NONE, false, HOSTMEM_E_INVALID_ADDRESS},
    {"protect committed then reserved pages", PROTECT, A_R0, 0, 5 * 4096, 0, PAGE_READONLY, 0, N_NONE, false, HOSTMEM_E_INVALID_ADDRESS},
    {"protect across region 1's end", PROTECT, A_R1, 0, 3 * 4096, 0, RW, 0, N_NONE, false, HOSTMEM_E_INVALID_ADDRESS},
    {"protect a foreign mapping", PROTECT, A_FOREIGN, 0, 4096, 0, PAGE_READONLY, 0, N_NONE, false, HOSTMEM_E_INVALID_ADDRESS},
    {"protect another manager's region", PROTECT, A_OTHER, 0, 4096, 0, PAGE_READONLY, 0, N_NONE, false, HOSTMEM_E_INVALID_ADDRESS},
    {"protect NULL", PROTECT, A_NULL, 0, 4096, 0, PAGE_READONLY, 0, N_NONE, false, HOSTMEM_E_INVALID_ADDRESS},
    {"protect just past region 0", PROTECT, A_R0_END, 0, 4096, 0, PAGE_READONLY, 0, N_NONE, false, HOSTMEM_E_INVALID_ADDRESS},

    /* S9: virtual_query. */
    {"query length 0", QUERY, A_R0, 0, 0, 0, 0, 0, N_NONE, false, HOSTMEM_E_BAD_LENGTH},
    {"query length 1", QUERY, A_R0, 0, 0, 1, 0, 0, N_NONE, false, HOSTMEM_E_BAD_LENGTH},
    {"query length sizeof - 1", QUERY, A_R0, 0, 0, MBI - 1, 0, 0, N_NONE, false, HOSTMEM_E_BAD_LENGTH},
    {"query at 2^47", QUERY, A_HIGH, 0, 0, MBI, 0, 0, N_NONE, false, E_INVALIDARG},
    {"query at the top page", QUERY, A_TOP, 0, 0, MBI, 0, 0, N_NONE, false, E_INVALIDARG},
    {"query at the vsyscall page", QUERY, A_NULL, 0xffffffffff600000ull, 0, MBI, 0, 0, N_NONE, false, E_INVALIDARG},

    /* P6: external address space. */
    {"released address space never acquired", RELEASED, A_HIGH, (size_t)-(64 * 65536), 0, 0, 0, 0, N_NONE, false, HOST_E_INVALIDOPERATION},
    {"released address space at NULL", RELEASED, A_NULL, 0, 0, 0, 0, 0, N_NONE, false, HOST_E_INVALIDOPERATION},
    {"acquired a start already acquired", ACQUIRED, A_EXT, 0, 65536, 0, 0, 0, N_NONE, false, HOST_E_INVALIDOPERATION},

    /* Levels outside EMemoryCriticalLevel (silent in the contract: an invalid argument). */
    {"alloc level 3", ALLOC, A_NULL, 0, 4096, R_, RW, 3, N_NONE, false, E_INVALIDARG},
    {"alloc level -1", ALLOC, A_NULL, 0, 4096, R_ | C_, RW, -1, N_NONE, false, E_INVALIDARG},
    {"commit level 7", ALLOC, A_R0, 4 * 4096, 4096, C_, RW, 7, N_NONE, false, E_INVALIDARG},
};

#define NROWS (sizeof rows / sizeof rows[0])

/* ---- the world before the call ------------------------------------------------ */

typedef struct world {
    hostmem_manager *m, *other;
    uintptr_t r0, r1, foreign, other_region, ext;
} world;

#define MAX_RUNS 32
typedef struct snapshot {
    hostmem_stats st, other_st;
    MEMORY_BASIC_INFORMATION runs[MAX_RUNS];
    int nruns;
    MEMORY_BASIC_INFORMATION foreign;
    uint64_t data[4][8];
} snapshot;

static uint64_t word_of(int page, int i)
{
    return 0x6a09e667f3bcc908ull * (uint64_t)(page + 1) + (uint64_t)i;
}

static void world_make(world *w, bool deny_wx)
{
    hostmem_config c;
    void *p;
    hostmem_config_init(&c);
    c.deny_write_execute = deny_wx;
    cr_assert_eq(hostmem_create(&c, &w->m), S_OK);
    cr_assert_eq(hostmem_create(NULL, &w->other), S_OK);
    cr_assert_eq(hostmem_virtual_alloc(w->m, NULL, 15 * 4096, MEM_RESERVE, RW, eTaskCritical, &p), S_OK);
    w->r0 = (uintptr_t)p;
    cr_assert_eq(hostmem_virtual_alloc(w->m, p, 4 * 4096, MEM_COMMIT, RW, eTaskCritical, &p), S_OK);
    for (int pg = 0; pg < 4; pg++)
        for (int i = 0; i < 512; i++)
            ((uint64_t *)(w->r0 + pg * 4096))[i] = word_of(pg, i);
    cr_assert_eq(hostmem_virtual_alloc(w->m, NULL, 2 * 4096, MEM_RESERVE | MEM_COMMIT, PAGE_READONLY,
                                       eTaskCritical, &p), S_OK);
    w->r1 = (uintptr_t)p;
    cr_assert_eq(hostmem_virtual_alloc(w->other, NULL, 4096, MEM_RESERVE, RW, eTaskCritical, &p), S_OK);
    w->other_region = (uintptr_t)p;
    p = mmap(NULL, 4 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(p, MAP_FAILED);
    w->foreign = (uintptr_t)p;
    w->ext = ((uintptr_t)1 << 47) - 128 * 65536;
    cr_assert_eq(hostmem_acquired_virtual_address_space(w->m, (void *)w->ext, 65536), S_OK);
}

static void snap(const world *w, snapshot *s)
{
    SIZE_T n;
    memset(s, 0, sizeof *s);
    cr_assert_eq(hostmem_get_stats(w->m, &s->st), S_OK);
    cr_assert_eq(hostmem_get_stats(w->other, &s->other_st), S_OK);
    const uintptr_t bases[2] = {w->r0, w->r1};
    const size_t sizes[2] = {15 * 4096, 2 * 4096};
    for (int k = 0; k < 2; k++) {
        for (uintptr_t a = bases[k]; a < bases[k] + sizes[k] && s->nruns < MAX_RUNS;) {
            MEMORY_BASIC_INFORMATION *b = &s->runs[s->nruns++];
            cr_assert_eq(hostmem_virtual_query(w->m, (void *)a, b, sizeof *b, &n), S_OK);
            cr_assert(b->RegionSize > 0);
            a += b->RegionSize;
        }
    }
    MEMORY_BASIC_INFORMATION b;
    cr_assert_eq(hostmem_virtual_query(w->other, (void *)w->other_region, &b, sizeof b, &n), S_OK);
    s->runs[s->nruns++] = b;
    cr_assert_eq(hostmem_virtual_query(w->m, (void *)w->foreign, &s->foreign, sizeof s->foreign, &n), S_OK);
    for (int pg = 0; pg < 4; pg++)
        for (int i = 0; i < 8; i++)
            s->data[pg][i] = ((const uint64_t *)(w->r0 + pg * 4096))[i * 64];
}

static void same(const char *name, const snapshot *a, const snapshot *b)
{
    const hostmem_stats *x = &a->st, *y = &b->st;
    cr_expect_eq(x->reserved_bytes, y->reserved_bytes, "%s: reserved_bytes changed", name);
    cr_expect_eq(x->committed_bytes, y->committed_bytes, "%s: committed_bytes changed", name);
    cr_expect_eq(x->peak_committed_bytes, y->peak_committed_bytes, "%s: peak_committed_bytes changed", name);
    cr_expect_eq(x->peak_reserved_bytes, y->peak_reserved_bytes, "%s: peak_reserved_bytes changed", name);
    cr_expect_eq(x->region_count, y->region_count, "%s: region_count changed", name);
    cr_expect_eq(x->external_bytes, y->external_bytes, "%s: external_bytes changed", name);
    cr_expect_eq(a->other_st.reserved_bytes, b->other_st.reserved_bytes, "%s: the other manager changed", name);
    cr_expect_eq(a->other_st.region_count, b->other_st.region_count, "%s: the other manager changed", name);
    cr_expect_eq(a->nruns, b->nruns, "%s: the query walk changed", name);
    for (int k = 0; k < a->nruns && k < b->nruns; k++)
        cr_expect(memcmp(&a->runs[k], &b->runs[k], sizeof a->runs[k]) == 0,
                  "%s: query run %d changed: base %p size %zx state %x protect %x -> base %p size %zx "
                  "state %x protect %x", name, k, a->runs[k].BaseAddress, (size_t)a->runs[k].RegionSize,
                  (unsigned)a->runs[k].State, (unsigned)a->runs[k].Protect, b->runs[k].BaseAddress,
                  (size_t)b->runs[k].RegionSize, (unsigned)b->runs[k].State, (unsigned)b->runs[k].Protect);
    cr_expect(memcmp(&a->foreign, &b->foreign, sizeof a->foreign) == 0, "%s: the foreign mapping's description changed", name);
    cr_expect(memcmp(a->data, b->data, sizeof a->data) == 0, "%s: committed data changed", name);
}

static void on_note(void *ctx, EMemoryAvailable s)
{
    (void)ctx;
    (void)s;
}

static uintptr_t anchor_addr(const world *w, enum anchor a)
{
    switch (a) {
    case A_NULL: return 0;
    case A_R0: return w->r0;
    case A_R0_END: return w->r0 + 15 * 4096;
    case A_R1: return w->r1;
    case A_FOREIGN: return w->foreign;
    case A_OTHER: return w->other_region;
    case A_HIGH: return (uintptr_t)1 << 47;
    case A_TOP: return UINTPTR_MAX & ~(uintptr_t)4095;
    case A_EXT: return w->ext;
    case A_LOW: return 0x1000;
    }
    return 0;
}

static HRESULT call_row(const world *w, const row *r, void **out_mem)
{
    hostmem_manager *m = r->null == N_MGR ? NULL : w->m;
    uintptr_t addr = anchor_addr(w, r->at) + r->off;
    size_t size = r->size == SZ_TO_WRAP ? (size_t)0 - addr : r->size;
    unsigned char buf[256];
    SIZE_T written;
    DWORD old, load;
    SIZE_T avail;
    hostmem_stats st;
    hostmem_manager *created = (hostmem_manager *)(uintptr_t)0x1;
    switch (r->call) {
    case ALLOC:
        return hostmem_virtual_alloc(m, (void *)addr, size, r->type, r->protect,
                                     (EMemoryCriticalLevel)r->level, r->null == N_OUT ? NULL : out_mem);
    case FREE:
        return hostmem_virtual_free(m, (void *)addr, size, r->type);
    case PROTECT:
        return hostmem_virtual_protect(m, (void *)addr, size, r->protect, r->null == N_OUT ? NULL : &old);
    case QUERY: {
        memset(buf, 0xcc, sizeof buf);
        HRESULT hr = hostmem_virtual_query(m, (void *)addr, r->null == N_BUF ? NULL : buf, r->type,
                                           r->null == N_WRITTEN ? NULL : &written);
        if (FAILED(hr))
            for (size_t k = 0; k < sizeof buf; k++)
                cr_expect_eq(buf[k], 0xcc, "a failed query wrote byte %zu of the buffer", k);
        return hr;
    }
    case LOAD:
        return hostmem_get_memory_load(m, r->null == N_LOAD ? NULL : &load, r->null == N_AVAIL ? NULL : &avail);
    case REGISTER:
        return hostmem_register_memory_notification_callback(m, r->null == N_CALLBACK ? NULL : on_note, NULL);
    case NEEDS:
        return hostmem_needs_virtual_address_space(m, (void *)addr, size);
    case ACQUIRED:
        return hostmem_acquired_virtual_address_space(m, (void *)addr, size);
    case RELEASED:
        return hostmem_released_virtual_address_space(m, (void *)addr);
    case STATS:
        return hostmem_get_stats(m, r->null == N_OUT ? NULL : &st);
    case CREATE: {
        HRESULT hr = hostmem_create(NULL, NULL);
        (void)created;
        return hr;
    }
    case SHUTDOWN_NULL:
        hostmem_shutdown(NULL);
        return S_OK;
    case DESTROY_NULL:
        hostmem_destroy(NULL);
        return S_OK;
    }
    return E_FAIL;
}

ParameterizedTestParameters(bad_input, catalogue)
{
    return cr_make_param_array(row, rows, NROWS);
}

ParameterizedTest(row *r, bad_input, catalogue, .timeout = 60)
{
    world w;
    snapshot before, after;
    world_make(&w, r->deny_wx);
    snap(&w, &before);
    void *out = (void *)(uintptr_t)0xdeadbeef;
    HRESULT hr = call_row(&w, r, &out);
    cr_expect_eq(hr, r->expect, "%s: got 0x%08x %s, expected 0x%08x %s", r->name, (unsigned)hr,
                 hostmem_hresult_name(hr), (unsigned)r->expect, hostmem_hresult_name(r->expect));
    if (r->call == ALLOC && r->null != N_OUT && FAILED(hr))
        cr_expect_null(out, "%s: a failed alloc left *out_mem = %p (A4)", r->name, out);
    snap(&w, &after);
    same(r->name, &before, &after);
    hostmem_destroy(w.m);
    hostmem_destroy(w.other);
    munmap((void *)w.foreign, 4 * 4096);
}

/* The catalogue's size, printed so the report can quote it. */
Test(bad_input, count)
{
    cr_log_info("bad-input catalogue: %zu rows", NROWS);
    cr_assert(NROWS > 100);
}

/* hostmem_hresult_name never returns NULL; unknown codes are "UNKNOWN" (A2). */
Test(bad_input, hresult_name_unknown)
{
    cr_expect_str_eq(hostmem_hresult_name((HRESULT)0x12345678), "UNKNOWN");
    cr_expect_str_eq(hostmem_hresult_name((HRESULT)0x80070056), "UNKNOWN");
    cr_expect_str_eq(hostmem_hresult_name(E_OUTOFMEMORY), "E_OUTOFMEMORY");
    cr_expect_str_eq(hostmem_hresult_name(HOSTMEM_E_INVALID_ADDRESS), "HOSTMEM_E_INVALID_ADDRESS");
}
