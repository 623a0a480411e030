/*
 * engine_int.h: what decode.c (streams, threads, merge) and replay.c (the
 * model) share.  Not installed.
 */
#ifndef HOSTMEM_ENGINE_INT_H
#define HOSTMEM_ENGINE_INT_H

#include <pthread.h>
#include <stdint.h>

#include "engine.h"

#define HME_HIDDEN __attribute__((visibility("hidden")))

/* One decoded event. */
struct hme_rec {
    int64_t ts;           /* ns from the clock's origin */
    uint64_t clock;       /* the clock value (cycles), for start_ns */
    uint64_t v[HME_NV];   /* payload by field index; strings: offset << 32 | length in the chunk's blob */
    int64_t pid;
    const char *procname; /* NULL: none; lives as long as the chunk (or the stream) */
    int32_t cls;          /* index into hme_engine.classes */
    int32_t has_pid;
};

enum { HME_CH_EMPTY = 0, HME_CH_FILLING, HME_CH_READY };

struct hme_chunk {
    struct hme_rec *recs;
    int32_t n;
    int32_t state;
    int32_t last;  /* the stream ends after this chunk */
    int32_t error; /* decoding stopped: the stream's `err` says why */
    char *blob;
    size_t blob_n, blob_cap;
};

struct hme_sclass; /* decode.c */

struct hme_pname {
    int64_t pid;
    char name[32];
};

struct hme_stream {
    int32_t trace;
    int32_t index;
    char *path;
    const uint8_t *map;
    size_t len;
    /* decoder state (the worker that holds `busy`) */
    size_t pkt, pos, content_end, pkt_end;
    int in_packet;
    const struct hme_sclass *sc;
    uint64_t clock;
    uint64_t prev_disc, prev_seqnum;
    int have_prev_disc, have_prev_seqnum;
    int64_t disc_events, disc_packets;
    struct hme_pname **pnames; /* each apart: records point at them */
    int32_t npnames, cappnames, lastpname;
    int done_decoding;
    char err[320];
    /* chunks */
    struct hme_chunk chunk[2];
    int32_t fill;    /* next chunk the decoder fills */
    int32_t cur;     /* chunk the replay reads */
    int32_t at;      /* next record in it */
    int32_t cur_ready; /* the replay saw chunk[cur] READY */
    int32_t busy;    /* queued or being decoded */
    int32_t ended;   /* the replay consumed its last record */
};

struct hme_model; /* replay.c */

struct hme_engine {
    int threads;
    int64_t temporary_ns;
    int keep_all_samples;
    int forward_all; /* hme_forward_all */
    /* layout */
    struct hme_trace_desc *traces;
    char **trace_procnames;
    int32_t ntraces;
    struct hme_sclass *sclasses;
    int32_t nsclasses;
    struct hme_class_desc *classes;
    int32_t nclasses;
    struct hme_stream **streams;
    int32_t nstreams;
    /* threads */
    pthread_mutex_t mu;
    pthread_cond_t job_cv, ready_cv;
    int32_t *jobs;
    int32_t jobs_head, jobs_n;
    pthread_t *workers;
    int32_t nworkers;
    int started, stopping, finished;
    /* merge: a heap of streams by their next record's time */
    int32_t *heap;
    int32_t nheap;
    int64_t decoded;
    /* CPU time of the threads (ns): the replay (the caller's, inside hme_run),
     * the decoders (their sum and the busiest one's) */
    int64_t cpu_replay_ns, cpu_decode_ns, cpu_decode_max_ns;
    /* Python's rare events */
    struct hme_fwd *fwd;
    int64_t nfwd, capfwd;
    char *fblob;
    size_t fblob_n, fblob_cap;
    const char *fblob_pname; /* the last procname put in the blob (records share it) */
    uint64_t fblob_pname_at;
    char error[512];
    struct hme_model *model;
};

/* replay.c */
HME_HIDDEN struct hme_model *hme__model_new(hme_engine *e);
HME_HIDDEN void hme__model_free(struct hme_model *m);
/* One event in time order; `blob`: its chunk's strings.  0, or -1 when
 * out of memory. */
HME_HIDDEN int hme__model_event(hme_engine *e, const struct hme_rec *r, const char *blob);
HME_HIDDEN void hme__model_discarded(hme_engine *e, int trace, int64_t events, int64_t packets);
HME_HIDDEN int hme__model_finish(hme_engine *e);

/* decode.c: hand an event to Python (copies its strings), with its facts
 * (HME_FACT_COUNT of them; NULL: none). 0 or -1. */
HME_HIDDEN int hme__fwd_push(hme_engine *e, const struct hme_rec *r, const char *blob,
                             int32_t proc, const int64_t *facts);

#endif
