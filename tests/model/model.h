/*
 * model.h: a reference model of the S rules (region operations) and P1/P3
 * (critical-level ceilings of a commit limit and an address-space limit),
 * written from the contract alone and independent of the library.
 *
 * It is slow on purpose: a region is a plain array with one entry per page,
 * every question is answered by walking it.  Callers keep sizes small.
 *
 * For each call the model answers what the contract allows (hm_expect: the set
 * of acceptable HRESULTs and, for success, the out values), without changing
 * anything; once the library has answered, the caller applies a success with
 * the *_apply function.  Where the contract leaves a choice (which of two
 * applicable errors wins, failing conservatively, a size the OS may refuse),
 * the set holds every allowed answer.
 *
 * The model cannot know what else is mapped in the process: for a reservation
 * at a given address it asks the caller's probe, and for a NULL address it
 * takes the base the library chose.
 */
#ifndef HOSTMEM_TEST_MODEL_H
#define HOSTMEM_TEST_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <hostmem/hostmem.h>

/* The HRESULTs a call can return, as bits of hm_expect.accept. */
enum hm_code {
    HM_S_OK,
    HM_E_POINTER,
    HM_E_INVALIDARG,
    HM_E_ACCESSDENIED,
    HM_E_NOTIMPL,
    HM_E_OUTOFMEMORY,
    HM_E_INVALID_ADDRESS,
    HM_E_BAD_LENGTH,
    HM_E_INVALIDOPERATION,
    HM_E_CLRNOTAVAILABLE,
    HM_CODE_COUNT
};
#define HM_BIT(c) (1u << (c))
HRESULT hm_code_hr(enum hm_code c);
/* The code of an HRESULT, HM_CODE_COUNT for one outside the list. */
enum hm_code hm_hr_code(HRESULT hr);
/* "S_OK|E_INVALIDARG" into buf. */
const char *hm_accept_str(unsigned accept, char *buf, size_t len);

/* What the probe says about [lo, hi) (a reservation at a given address). */
enum hm_probe {
    HM_PROBE_FREE,       /* nothing mapped: the reservation must succeed         */
    HM_PROBE_FOREIGN,    /* a mapping the caller knows is not the library's       */
    HM_PROBE_UNKNOWN,    /* something mapped that may be the library's own space  */
    HM_PROBE_UNMAPPABLE, /* the kernel refuses mappings there (low addresses)     */
};
typedef enum hm_probe (*hm_probe_fn)(void *ctx, uintptr_t lo, uintptr_t hi);

typedef struct hm_page {
    DWORD protect;     /* 0: reserved; else committed with this PAGE_* value */
    bool reset;        /* committed data disposable since MEM_RESET (zero or intact) */
    bool dirty;        /* contents to be verified by the harness */
    uint64_t tag;      /* contents: 0 = zero, else the pattern the harness wrote */
} hm_page;

typedef struct hm_region {
    uintptr_t base;
    size_t npages;
    DWORD alloc_protect;
    hm_page *pages;
} hm_region;

typedef struct hm_external {
    uintptr_t start;
    size_t size;
} hm_external;

#define HM_MAX_EXTERNAL 16

typedef struct hm_model {
    size_t page;        /* P */
    size_t granule;     /* G */
    size_t huge;        /* huge page size for MEM_LARGE_PAGES */
    uintptr_t user_end; /* first address past user space */
    size_t big;         /* sizes above this may be refused by the OS (E_OUTOFMEMORY) */
    hostmem_config config;
    hm_region *regions;
    size_t nregions, cap;
    size_t committed, reserved, peak_committed, peak_reserved, external;
    hm_external ext[HM_MAX_EXTERNAL];
    size_t next;
    hm_probe_fn probe;
    void *probe_ctx;
} hm_model;

typedef struct hm_expect {
    unsigned accept;     /* HM_BIT(code) of every acceptable answer */
    uintptr_t out;       /* alloc: out_mem on success (0: the library chooses) */
    DWORD old_protect;   /* protect: *old_protect on success */
    bool p2_possible;    /* a commit may be denied at appdomain/process level (P2: Low first) */
    bool p2_required;    /* ... and denial is the only failure the call can have */
} hm_expect;

/* What an alloc does when it succeeds. */
enum hm_alloc_kind { HM_ALLOC_NONE, HM_ALLOC_RESERVE, HM_ALLOC_COMMIT, HM_ALLOC_RESET, HM_ALLOC_RESET_UNDO };
typedef struct hm_alloc_plan {
    enum hm_alloc_kind kind;
    bool commit;        /* reserve: commit every page as well */
    bool large;         /* MEM_LARGE_PAGES */
    bool fixed;         /* reserve at a given address (base), else where the library chooses */
    uintptr_t base;     /* reserve: the region base when fixed; others: first page */
    size_t npages;
    DWORD protect;
} hm_alloc_plan;

void hm_model_init(hm_model *m, size_t page, const hostmem_config *config, hm_probe_fn probe,
                   void *probe_ctx);
void hm_model_fini(hm_model *m);

/* Index of the region whose pages hold addr, or -1. */
long hm_model_find(const hm_model *m, uintptr_t addr);
/* Does [lo, hi) touch a page of any region? */
bool hm_model_overlaps(const hm_model *m, uintptr_t lo, uintptr_t hi);

/* S2 (+ deny_write_execute): bits of the argument errors of a protection. */
unsigned hm_protect_errors(const hm_model *m, DWORD protect);
/* Is the memory behind a committed page of this protection readable / writable? */
bool hm_protect_readable(DWORD protect);
bool hm_protect_writable(DWORD protect);

void hm_model_alloc(hm_model *m, uintptr_t addr, size_t size, DWORD type, DWORD protect,
                    EMemoryCriticalLevel level, hm_expect *e, hm_alloc_plan *plan);
/* Apply a successful alloc; `out` is what the library returned.  Returns false
 * (with a reason in why) when `out` is not acceptable for a NULL-address reservation. */
bool hm_model_alloc_apply(hm_model *m, const hm_alloc_plan *plan, uintptr_t out, const char **why);

void hm_model_free(hm_model *m, uintptr_t addr, size_t size, DWORD free_type, hm_expect *e);
void hm_model_free_apply(hm_model *m, uintptr_t addr, size_t size, DWORD free_type);

void hm_model_protect(hm_model *m, uintptr_t addr, size_t size, DWORD protect, hm_expect *e);
void hm_model_protect_apply(hm_model *m, uintptr_t addr, size_t size, DWORD protect);

/* Query of an address inside a region: the expected description.  false: outside. */
bool hm_model_query(const hm_model *m, uintptr_t addr, MEMORY_BASIC_INFORMATION *out);

/* P6 / external address space. */
void hm_model_needs(const hm_model *m, uintptr_t start, size_t size, hm_expect *e);
void hm_model_acquired(const hm_model *m, uintptr_t start, size_t size, hm_expect *e);
void hm_model_acquired_apply(hm_model *m, uintptr_t start, size_t size);
void hm_model_released(const hm_model *m, uintptr_t start, hm_expect *e);
void hm_model_released_apply(hm_model *m, uintptr_t start);

/* P4: the memory state for the current charge (0 without a commit limit). */
int hm_model_state(const hm_model *m);

#endif
