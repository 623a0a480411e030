/*
 * engine.h: the analysis engine's C side, loaded by hostmem_analysis/engine.py
 * through ctypes (every structure here is mirrored there: change both).
 *
 * The engine decodes the CTF stream files of LTTng-UST traces itself (the
 * layout is read from each trace's metadata by engine.py, which hands it over
 * as tables: no field offset is compiled in), merges the streams in time
 * order as babeltrace2's muxer does, and replays the hot events into the same
 * model model.py keeps (per-region state, totals and peaks, latency
 * histograms, per-operation counts, call sites, the totals over time, the
 * live set).  Rare events (failures, decisions, statedump...) are handed back
 * to Python in order, in batches.
 *
 * Threads: a pool decodes the streams (each stream file in chunks of records,
 * two chunks per stream, so a stream is decoded while the replay consumes
 * its previous chunk); one thread, the caller's, merges and replays.
 *
 * Memory: two chunks per stream, the model (grows with live regions, heap
 * blocks, call sites, processes), bounded samples of the totals.  Stream
 * files are mapped read-only and each packet is dropped from the mapping
 * once decoded.
 *
 * Names: hme_ (hostmem engine) for everything exported; file-local statics
 * carry their file's prefix.
 */
#ifndef HOSTMEM_ENGINE_H
#define HOSTMEM_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#define HME_EXPORT __attribute__((visibility("default")))

/* Payload values kept per event (field index < HME_NV). */
#define HME_NV 16
/* Fields of one struct the decoder walks (longer structs are refused). */
#define HME_MAX_FIELDS 48

/* ---- the layout, from the metadata (engine.py) --------------------------- */

enum hme_fkind {
    HME_F_UINT = 0,       /* little-endian, byte aligned, 8/16/32/64 bits */
    HME_F_SINT = 1,
    HME_F_STRING = 2,     /* NUL-terminated */
    HME_F_TEXT_ARRAY = 3, /* int8 elements with an encoding: a string up to its first NUL */
    HME_F_TEXT_SEQ = 4,
    HME_F_BYTE_ARRAY = 5, /* int8 elements without encoding: bytes */
    HME_F_BYTE_SEQ = 6,
    HME_F_WORD_SEQ = 7,   /* uint64 elements (hostmem:stack frames): count * 8 raw bytes */
};

struct hme_field {
    int32_t kind;  /* enum hme_fkind */
    int32_t bits;  /* integers: size in bits; arrays: element count */
    int32_t align; /* bytes (1, 2, 4, 8) */
    int32_t ref;   /* sequences: index of the length field in the same struct */
};

/* What the replay does with an event class. */
enum hme_kind {
    HME_K_SKIP = 0,     /* decoded (to step over it), nothing else */
    HME_K_FWD,          /* hostmem event whose handler is Python's (failure, ...) */
    HME_K_FWD_OTHER,    /* another provider's event (statedump): Python's, not counted */
    HME_K_RESERVE,
    HME_K_COMMIT,
    HME_K_DECOMMIT,
    HME_K_RELEASE,
    HME_K_PROTECT,
    HME_K_RESET,
    HME_K_RESET_UNDO,
    HME_K_QUERY,
    HME_K_TOTALS,
    HME_K_MEMSTATE,     /* replayed here and handed to Python (state changes) */
    HME_K_CREATE,
    HME_K_DESTROY,
    HME_K_REGION_STATE,
    HME_K_STACK,        /* hostmem:stack: the frames of the op with the same seq (stacks.c) */
    HME_K_MALLOC_ALLOC,
    HME_K_MALLOC_FREE,
    HME_K_MALLOC_CREATE,
    HME_K_MALLOC_DESTROY,
    HME_K_MALLOC_REGION,
    HME_K_MALLOC_DEBUG, /* layout v3: file and line of the malloc_alloc with its seq */
    HME_K_COUNT
};

/* Roles: which payload field holds what (-1: the event has none). */
enum hme_role {
    HME_R_SEQ = 0,
    HME_R_MANAGER,
    HME_R_ADDRESS,
    HME_R_SIZE,
    HME_R_BASE,
    HME_R_REGION_SIZE,
    HME_R_HR,
    HME_R_START_NS,
    HME_R_COMMITTED,
    HME_R_RESERVED,
    HME_R_CALLER,
    HME_R_ALLOC_TYPE,
    HME_R_HEAP,
    HME_R_LIVE,
    HME_R_FILE,
    HME_R_LINE,
    HME_R_COMMIT_LIMIT,
    HME_R_AS_LIMIT,
    HME_R_PAGE_SIZE,
    HME_R_OLD_STATE,
    HME_R_STATE,
    HME_R_PROCNAME,   /* lttng_ust_statedump:procname's payload */
    HME_R_REGIONS,    /* manager_destroy: regions it found live */
    HME_R_FRAMES,     /* hostmem:stack's frames (a word sequence) */
    HME_R_COUNT
};

/* Per event class. */
struct hme_class_desc {
    int32_t trace;        /* index from hme_add_trace */
    int32_t stream_class; /* its stream_id in the metadata */
    int32_t id;           /* its event id */
    int32_t kind;         /* enum hme_kind */
    int32_t name_id;      /* events_by_name key (engine.py's table) */
    int32_t nfields;
    int32_t keep_strings; /* copy string values for Python or the replay */
    int32_t ordered;      /* replayed in its process's seq order (not a companion event) */
    int32_t hr_ok_known;  /* 1: hr_ok is the value labelled S_OK */
    int64_t hr_ok;
    int32_t roles[HME_R_COUNT];
    struct hme_field fields[HME_MAX_FIELDS];
};

/* Packet header, packet context, event context roles. */
enum hme_prole {
    HME_P_MAGIC = 0,
    HME_P_STREAM_ID,
    HME_P_TS_BEGIN,
    HME_P_TS_END,
    HME_P_CONTENT_SIZE,
    HME_P_PACKET_SIZE,
    HME_P_SEQ_NUM,
    HME_P_DISCARDED,
    HME_P_VPID,       /* event context */
    HME_P_PROCNAME,   /* event context */
    HME_P_COUNT
};

struct hme_struct_desc {
    int32_t nfields;
    int32_t roles[HME_P_COUNT];
    struct hme_field fields[HME_MAX_FIELDS];
};

enum hme_header { HME_H_COMPACT = 0, HME_H_LARGE = 1 };

struct hme_stream_class_desc {
    int32_t trace;
    int32_t id;
    int32_t header;     /* enum hme_header */
    int32_t has_context;
    struct hme_struct_desc packet_context;
    struct hme_struct_desc event_context;
};

struct hme_trace_desc {
    int64_t clock_offset_ns; /* ns from origin of clock value 0 (freq 1 GHz) */
    int32_t host;            /* host id (engine.py's table) */
    int32_t has_env_pid;
    int64_t env_pid;
    const char *env_procname; /* NULL: none */
    struct hme_struct_desc packet_header;
};

/* ---- results -------------------------------------------------------------- */

/* A rare event for Python (every hostmem event, for export): its class,
 * time, process, payload values and the procname its stream gives it
 * (strings and bytes: offset << 32 | length into the batch's blob; procname
 * UINT64_MAX: none).  Export's region operations also carry what the replay
 * derived of them (HME_FACT_*, HME_UNKNOWN where it does not know). */
enum hme_fact {
    HME_FACT_BASE = 0,    /* the pages the call acted on */
    HME_FACT_REGION_SIZE,
    HME_FACT_RESERVED,    /* the manager's books after it */
    HME_FACT_COMMITTED,
    HME_FACT_COUNT
};
#define HME_UNKNOWN INT64_MIN

struct hme_fwd {
    int64_t ts;
    uint64_t clock;
    int32_t cls;
    int32_t proc;
    uint64_t v[HME_NV];
    uint64_t procname;
    int64_t facts[HME_FACT_COUNT];
};

struct hme_batch {
    struct hme_fwd *recs;
    int64_t n;
    const char *blob;
    int64_t blob_n;
};

typedef struct hme_engine hme_engine;

HME_EXPORT hme_engine *hme_new(int threads, int64_t temporary_ns, int keep_all_samples);
HME_EXPORT void hme_free(hme_engine *e);
HME_EXPORT int hme_add_trace(hme_engine *e, const struct hme_trace_desc *t);
HME_EXPORT int hme_add_stream_class(hme_engine *e, const struct hme_stream_class_desc *sc);
HME_EXPORT int hme_add_class(hme_engine *e, const struct hme_class_desc *c);
/* A stream file of `trace`, read up to `length` bytes (its sound prefix). */
HME_EXPORT int hme_add_stream(hme_engine *e, int trace, const char *path, int64_t length);
/* Export: every hostmem event goes to Python once replayed, a region
 * operation with its facts (call before hme_run). */
HME_EXPORT void hme_forward_all(hme_engine *e);
/* Decode and replay.  Returns 1 with `out` holding rare events (valid until
 * the next call), 0 at the end, -1 on an error (hme_error says what). */
HME_EXPORT int hme_run(hme_engine *e, struct hme_batch *out);
HME_EXPORT const char *hme_error(hme_engine *e);
HME_EXPORT int64_t hme_events_decoded(hme_engine *e);
/* CPU time (ns) of the threads after the end: out[0] the replay (the caller's
 * thread inside hme_run), out[1] the decoders together, out[2] the busiest decoder. */
HME_EXPORT void hme_cpu_ns(hme_engine *e, int64_t *out);

/* Process figures after the end (hme_run returned 0): see engine.py. */
struct hme_proc_info {
    int32_t host;
    int32_t has_pid;
    int64_t pid;
    const char *procname; /* NULL: none */
    int64_t events;
    int64_t first_ts, last_ts; /* -1: none */
    int64_t seq_min, seq_max, seq_count;
    int64_t discarded_events, discarded_packets;
    int64_t managers;
    int64_t reserved, committed, peak_reserved, peak_reserved_ts, peak_committed,
        peak_committed_ts;
    int64_t untracked, lifetimes;
    int64_t heaps, allocs, frees, alloc_bytes, unknown_frees;
    int64_t heap_committed, heap_peak, heap_at_peak;
    int64_t nsamples, nleaks, nleaks_at_destroy, nheap_leaks, ntemporary, nlive_managers;
    int64_t size_hist[65];
};

struct hme_op_info {
    int64_t count, failed, bytes;
    int64_t n, max, total, nbuckets;
};

struct hme_leak_info {
    uint64_t base, size, committed, caller, manager;
    int64_t t_reserve;
    int32_t from_statedump;
    int32_t stack; /* index for hme_stack (R5), -1: none */
};

struct hme_block_info {
    uint64_t heap, address, size, caller;
    int64_t ts;
    int64_t line;
    const char *file; /* NULL: none */
};

struct hme_manager_info {
    uint64_t addr;
    int32_t has_addr, totals_known;
    int64_t reserved, committed, created, first_ts, last_ts; /* created -1: none */
    uint64_t commit_limit, address_space_limit, page_size;
};

HME_EXPORT int64_t hme_nprocs(hme_engine *e);
/* proc -1: the sum over every process ("all"). */
HME_EXPORT int hme_proc(hme_engine *e, int64_t proc, struct hme_proc_info *out);
HME_EXPORT int hme_op(hme_engine *e, int64_t proc, int op, struct hme_op_info *out,
                      int64_t *buckets);
HME_EXPORT int hme_temporary_life(hme_engine *e, int64_t proc, struct hme_op_info *out,
                                  int64_t *buckets);
HME_EXPORT int hme_samples(hme_engine *e, int64_t proc, int64_t *ts, int64_t *reserved,
                           int64_t *committed);
HME_EXPORT int hme_leaks(hme_engine *e, int64_t proc, int at_destroy, struct hme_leak_info *out);
/* R5: the process's call stacks (ids 0 .. hme_stacks - 1, as leaks name them); hme_stack fills
 * frames (room for 64) and info: frames, committed, regions, committed and regions at the peak. */
HME_EXPORT int64_t hme_stacks(hme_engine *e, int64_t proc);
HME_EXPORT int hme_stack(hme_engine *e, int64_t proc, int32_t id, uint64_t *frames, int64_t *info);
HME_EXPORT int hme_heap_leaks(hme_engine *e, int64_t proc, struct hme_block_info *out);
/* Temporary regions: caller, regions, bytes, in first-seen order. */
HME_EXPORT int hme_temporary(hme_engine *e, int64_t proc, uint64_t *caller, int64_t *n,
                             int64_t *bytes);
/* Time in each memory state (state value, ns), in first-seen order. */
HME_EXPORT int64_t hme_state_ns(hme_engine *e, int64_t proc, int64_t *state, int64_t *ns,
                                int64_t cap);
HME_EXPORT int64_t hme_commit_limits(hme_engine *e, int64_t proc, uint64_t *out, int64_t cap);
/* T8: managers whose manager_destroy counted other live regions than the
 * replay holds (events lost): manager, regions destroy found, regions seen;
 * returns how many (fills at most cap). */
/* T8: the index in hme_heap_leaks of the first block live when the trace
 * ended (the ones before were taken by malloc_destroy). */
HME_EXPORT int64_t hme_heap_leaks_at_end(hme_engine *e, int64_t proc);
HME_EXPORT int64_t hme_destroy_mismatches(hme_engine *e, int64_t proc, uint64_t *manager,
                                          int64_t *told, int64_t *seen, int64_t cap);
HME_EXPORT int hme_live_managers(hme_engine *e, int64_t proc, struct hme_manager_info *out);
/* Events per name id (HME_MAX_NAMES ids). */
#define HME_MAX_NAMES 256
HME_EXPORT int hme_events_by_name(hme_engine *e, int64_t proc, int64_t *out);
HME_EXPORT int64_t hme_model_discarded(hme_engine *e, int packets);

#endif
