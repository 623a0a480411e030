/*
 * decode.c: CTF stream files of LTTng-UST traces, decoded in parallel and
 * merged in time order.
 *
 * The layout comes from the metadata, parsed by engine.py and checked there
 * (little-endian, byte-aligned integers, LTTng-UST's compact or large event
 * header, clock at 1 GHz); this file only walks what it was told.  A packet
 * is: header (magic, uuid, stream_id...), context (timestamp_begin,
 * content_size, packet_size, events_discarded, packet_seq_num...), then
 * events up to content_size: event header (id and a clock value of 27, 32
 * or 64 bits), event context (vpid, procname...), payload.
 *
 * The clock rule is CTF 1.8's: a field of N < 64 bits mapped to the clock
 * sets its low N bits, and a value lower than the current low bits means they
 * wrapped once.  Discarded events and packets are counted as babeltrace2's
 * ctf source counts them: a stream's first packet reports its
 * events_discarded when non-zero, later packets the increase; packets are
 * lost when packet_seq_num jumps by more than one (never before the first).
 *
 * Any damage the decoder meets (an event past its packet's content, an
 * unknown event id) stops the whole run with an error: engine.py then reads
 * the trace with babeltrace2, which says what it makes of it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "engine_int.h"

#ifndef DECODE_CHUNK
#define DECODE_CHUNK 4096 /* records per chunk (the TSan test builds it small) */
#endif
#define DECODE_FWD_BATCH 4096
#define DECODE_PROGRESS (1 << 20) /* events between two returns to Python */

struct hme_sclass {
    int32_t trace;
    int32_t id;
    int32_t header;
    int32_t has_context;
    struct hme_struct_desc pctx;
    struct hme_struct_desc ectx;
    int32_t *by_id; /* event id -> class index, -1 */
    int32_t nby_id;
};

/* ---- layout ----------------------------------------------------------------- */

hme_engine *hme_new(int threads, int64_t temporary_ns, int keep_all_samples)
{
    hme_engine *e = calloc(1, sizeof(*e));
    if (e == NULL)
        return NULL;
    e->threads = threads < 1 ? 1 : threads;
    e->temporary_ns = temporary_ns;
    e->keep_all_samples = keep_all_samples;
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->job_cv, NULL);
    pthread_cond_init(&e->ready_cv, NULL);
    e->model = hme__model_new(e);
    if (e->model == NULL) {
        free(e);
        return NULL;
    }
    return e;
}

void hme_forward_all(hme_engine *e)
{
    e->forward_all = 1;
}

static void *decode_grow(void *p, size_t elem, int32_t *cap, int32_t need)
{
    if (need <= *cap)
        return p;
    int32_t n = *cap ? *cap : 8;
    while (n < need)
        n *= 2;
    void *q = realloc(p, (size_t)n * elem);
    if (q != NULL)
        *cap = n;
    return q;
}

static void decode_fail(hme_engine *e, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->error, sizeof(e->error), fmt, ap);
    va_end(ap);
}

int hme_add_trace(hme_engine *e, const struct hme_trace_desc *t)
{
    struct hme_trace_desc *n = realloc(e->traces, sizeof(*n) * (size_t)(e->ntraces + 1));
    if (n == NULL)
        return -1;
    e->traces = n;
    char **p = realloc(e->trace_procnames, sizeof(*p) * (size_t)(e->ntraces + 1));
    if (p == NULL)
        return -1;
    e->trace_procnames = p;
    p[e->ntraces] = t->env_procname ? strdup(t->env_procname) : NULL;
    n[e->ntraces] = *t;
    n[e->ntraces].env_procname = p[e->ntraces];
    return e->ntraces++;
}

int hme_add_stream_class(hme_engine *e, const struct hme_stream_class_desc *d)
{
    struct hme_sclass *n = realloc(e->sclasses, sizeof(*n) * (size_t)(e->nsclasses + 1));
    if (n == NULL)
        return -1;
    e->sclasses = n;
    struct hme_sclass *sc = &n[e->nsclasses];
    memset(sc, 0, sizeof(*sc));
    sc->trace = d->trace;
    sc->id = d->id;
    sc->header = d->header;
    sc->has_context = d->has_context;
    sc->pctx = d->packet_context;
    sc->ectx = d->event_context;
    return e->nsclasses++;
}

int hme_add_class(hme_engine *e, const struct hme_class_desc *c)
{
    if (c->nfields > HME_MAX_FIELDS)
        return -1;
    struct hme_class_desc *n = realloc(e->classes, sizeof(*n) * (size_t)(e->nclasses + 1));
    if (n == NULL)
        return -1;
    e->classes = n;
    n[e->nclasses] = *c;
    return e->nclasses++;
}

int hme_add_stream(hme_engine *e, int trace, const char *path, int64_t length)
{
    struct hme_stream **n = realloc(e->streams, sizeof(*n) * (size_t)(e->nstreams + 1));
    if (n == NULL)
        return -1;
    e->streams = n;
    struct hme_stream *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return -1;
    s->trace = trace;
    s->index = e->nstreams;
    s->path = strdup(path);
    s->lastpname = -1;
    for (int i = 0; i < 2; i++) {
        s->chunk[i].recs = malloc(sizeof(struct hme_rec) * DECODE_CHUNK);
        if (s->chunk[i].recs == NULL)
            return -1;
    }
    n[e->nstreams++] = s;
    if (length > 0) {
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            decode_fail(e, "%s: %s", path, strerror(errno));
            return -1;
        }
        void *m = mmap(NULL, (size_t)length, PROT_READ, MAP_PRIVATE, fd, 0);
        close(fd);
        if (m == MAP_FAILED) {
            decode_fail(e, "%s: %s", path, strerror(errno));
            return -1;
        }
        madvise(m, (size_t)length, MADV_SEQUENTIAL);
        s->map = m;
        s->len = (size_t)length;
    }
    return s->index;
}

const char *hme_error(hme_engine *e)
{
    return e->error;
}

int64_t hme_events_decoded(hme_engine *e)
{
    return e->decoded;
}

static int64_t decode_thread_cpu_ns(void)
{
    struct timespec t;
    if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t) != 0)
        return 0;
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

void hme_cpu_ns(hme_engine *e, int64_t *out)
{
    pthread_mutex_lock(&e->mu);
    out[0] = e->cpu_replay_ns;
    out[1] = e->cpu_decode_ns;
    out[2] = e->cpu_decode_max_ns;
    pthread_mutex_unlock(&e->mu);
}

/* ---- decoding --------------------------------------------------------------- */

static inline uint64_t decode_le(const uint8_t *p, int bytes)
{
    switch (bytes) {
    case 1:
        return p[0];
    case 2:
        return (uint64_t)p[0] | (uint64_t)p[1] << 8;
    case 4: {
        uint32_t v;
        memcpy(&v, p, 4);
        return v;
    }
    default: {
        uint64_t v;
        memcpy(&v, p, 8);
        return v;
    }
    }
}

static inline size_t decode_align(size_t pkt, size_t pos, int32_t a)
{
    if (a <= 1)
        return pos;
    size_t rel = pos - pkt;
    rel = (rel + (size_t)a - 1) & ~((size_t)a - 1);
    return pkt + rel;
}

/* Append n bytes and a NUL to a growing blob (first size `first`); *out is
 * their (offset << 32 | length), as the records carry strings. */
static int blob_append(char **blob, size_t *used, size_t *cap, size_t first, const void *p, size_t n,
                       uint64_t *out)
{
    if (*used + n + 1 > *cap) {
        size_t c = *cap ? *cap * 2 : first;
        while (c < *used + n + 1)
            c *= 2;
        char *b = realloc(*blob, c);
        if (b == NULL)
            return -1;
        *blob = b;
        *cap = c;
    }
    memcpy(*blob + *used, p, n);
    (*blob)[*used + n] = 0;
    *out = (uint64_t)*used << 32 | (uint64_t)n;
    *used += n + 1;
    return 0;
}

static int decode_blob(struct hme_chunk *c, const uint8_t *p, size_t n, uint64_t *out)
{
    return blob_append(&c->blob, &c->blob_n, &c->blob_cap, 4096, p, n, out);
}

/* Walk one struct from `*pos` (never past `end`).  vals[i]: integer values
 * (all fields, for sequence lengths); strings and byte arrays go to the
 * chunk's blob when `c` is given, else their (position, length) is left in
 * spos/slen.  -1 when the struct does not fit. */
static int decode_struct(const uint8_t *base, size_t pkt, size_t *pos, size_t end,
                         const struct hme_field *f, int32_t n, uint64_t *vals,
                         struct hme_chunk *c, size_t *spos, size_t *slen)
{
    size_t p = *pos;
    for (int32_t i = 0; i < n; i++) {
        const struct hme_field *fi = &f[i];
        p = decode_align(pkt, p, fi->align);
        switch (fi->kind) {
        case HME_F_UINT:
        case HME_F_SINT: {
            int bytes = fi->bits / 8;
            if (p + (size_t)bytes > end)
                return -1;
            uint64_t v = decode_le(base + p, bytes);
            if (fi->kind == HME_F_SINT && bytes < 8 && (v >> (bytes * 8 - 1)) & 1)
                v |= ~(uint64_t)0 << (bytes * 8);
            vals[i] = v;
            p += (size_t)bytes;
            break;
        }
        case HME_F_STRING: {
            const uint8_t *s = base + p;
            const uint8_t *z = p < end ? memchr(s, 0, end - p) : NULL;
            if (z == NULL)
                return -1;
            size_t len = (size_t)(z - s);
            if (c != NULL) {
                if (decode_blob(c, s, len, &vals[i]) < 0)
                    return -1;
            } else {
                vals[i] = 0;
                if (spos) {
                    spos[i] = p;
                    slen[i] = len;
                }
            }
            p += len + 1;
            break;
        }
        default: { /* arrays and sequences of bytes */
            uint64_t count = (uint64_t)fi->bits;
            if (fi->kind == HME_F_TEXT_SEQ || fi->kind == HME_F_BYTE_SEQ ||
                fi->kind == HME_F_WORD_SEQ) {
                if (fi->ref < 0 || fi->ref >= i)
                    return -1;
                count = vals[fi->ref];
            }
            if (fi->kind == HME_F_WORD_SEQ) { /* raw little-endian words, as bytes */
                if (count > (end - p) / 8)
                    return -1;
                count *= 8;
            }
            if (count > end - p)
                return -1;
            size_t len = (size_t)count;
            if (fi->kind == HME_F_TEXT_ARRAY || fi->kind == HME_F_TEXT_SEQ) {
                const uint8_t *z = memchr(base + p, 0, len);
                if (z != NULL)
                    len = (size_t)(z - (base + p));
            }
            if (c != NULL) {
                if (decode_blob(c, base + p, len, &vals[i]) < 0)
                    return -1;
            } else {
                vals[i] = 0;
                if (spos) {
                    spos[i] = p;
                    slen[i] = len;
                }
            }
            p += (size_t)count;
            break;
        }
        }
    }
    *pos = p;
    return 0;
}

static void decode_clock(uint64_t *clock, uint64_t v, int bits)
{
    if (bits >= 64) {
        *clock = v;
        return;
    }
    uint64_t mask = ((uint64_t)1 << bits) - 1;
    if (v < (*clock & mask))
        *clock += mask + 1;
    *clock = (*clock & ~mask) | v;
}

static void decode_stream_error(struct hme_stream *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int k = snprintf(s->err, sizeof(s->err), "%s: ", s->path);
    if (k > 0 && (size_t)k < sizeof(s->err))
        vsnprintf(s->err + k, sizeof(s->err) - (size_t)k, fmt, ap);
    va_end(ap);
}

/* Open the packet at s->pos.  1: a packet; 0: the end of the file; -1: damage. */
static int decode_packet(hme_engine *e, struct hme_stream *s)
{
    const struct hme_trace_desc *t = &e->traces[s->trace];
    if (s->in_packet) {
        /* Done with the previous packet: out of the mapping (and of RSS). */
        size_t from = s->pkt & ~(size_t)4095;
        size_t to = s->pkt_end & ~(size_t)4095;
        if (to > from)
            madvise((void *)(s->map + from), to - from, MADV_DONTNEED);
        s->pos = s->pkt_end;
        s->in_packet = 0;
    }
    if (s->pos >= s->len)
        return 0;
    size_t pkt = s->pos, p = pkt;
    uint64_t hv[HME_MAX_FIELDS];
    if (decode_struct(s->map, pkt, &p, s->len, t->packet_header.fields,
                      t->packet_header.nfields, hv, NULL, NULL, NULL) < 0) {
        decode_stream_error(s, "packet header cut at byte %zu", pkt);
        return -1;
    }
    const int32_t *hr = t->packet_header.roles;
    if (hr[HME_P_MAGIC] >= 0 && hv[hr[HME_P_MAGIC]] != 0xC1FC1FC1u) {
        decode_stream_error(s, "bad packet magic at byte %zu", pkt);
        return -1;
    }
    int64_t sid = hr[HME_P_STREAM_ID] >= 0 ? (int64_t)hv[hr[HME_P_STREAM_ID]] : 0;
    const struct hme_sclass *sc = NULL;
    for (int32_t i = 0; i < e->nsclasses; i++)
        if (e->sclasses[i].trace == s->trace && e->sclasses[i].id == sid)
            sc = &e->sclasses[i];
    if (sc == NULL) {
        decode_stream_error(s, "unknown stream class %lld at byte %zu", (long long)sid, pkt);
        return -1;
    }
    uint64_t cv[HME_MAX_FIELDS];
    if (decode_struct(s->map, pkt, &p, s->len, sc->pctx.fields, sc->pctx.nfields, cv, NULL,
                      NULL, NULL) < 0) {
        decode_stream_error(s, "packet context cut at byte %zu", pkt);
        return -1;
    }
    const int32_t *cr = sc->pctx.roles;
    uint64_t psize = cr[HME_P_PACKET_SIZE] >= 0 ? cv[cr[HME_P_PACKET_SIZE]] : (uint64_t)(s->len - pkt) * 8;
    uint64_t csize = cr[HME_P_CONTENT_SIZE] >= 0 ? cv[cr[HME_P_CONTENT_SIZE]] : psize;
    if (psize == 0 || psize % 8 || csize > psize || pkt + psize / 8 > s->len ||
        pkt + csize / 8 < p) {
        decode_stream_error(s, "damaged packet at byte %zu", pkt);
        return -1;
    }
    s->sc = sc;
    s->pkt = pkt;
    s->pos = p;
    s->content_end = pkt + (size_t)(csize / 8);
    s->pkt_end = pkt + (size_t)(psize / 8);
    s->in_packet = 1;
    if (cr[HME_P_TS_BEGIN] >= 0)
        s->clock = cv[cr[HME_P_TS_BEGIN]];
    if (cr[HME_P_DISCARDED] >= 0) {
        uint64_t d = cv[cr[HME_P_DISCARDED]];
        if (!s->have_prev_disc)
            s->disc_events += (int64_t)d;
        else
            s->disc_events += (int64_t)(d - s->prev_disc);
        s->prev_disc = d;
        s->have_prev_disc = 1;
    }
    if (cr[HME_P_SEQ_NUM] >= 0) {
        uint64_t q = cv[cr[HME_P_SEQ_NUM]];
        if (s->have_prev_seqnum && q - s->prev_seqnum > 1)
            s->disc_packets += (int64_t)(q - s->prev_seqnum - 1);
        s->prev_seqnum = q;
        s->have_prev_seqnum = 1;
    }
    return 1;
}

/* The procname the reader gives a hostmem event of `pid` in this stream: the
 * first one seen (the context names the calling thread). */
static const char *decode_pname(struct hme_stream *s, int64_t pid, const uint8_t *name,
                                size_t len)
{
    if (s->lastpname >= 0 && s->pnames[s->lastpname]->pid == pid)
        return s->pnames[s->lastpname]->name;
    for (int32_t i = 0; i < s->npnames; i++)
        if (s->pnames[i]->pid == pid) {
            s->lastpname = i;
            return s->pnames[i]->name;
        }
    /* Records of chunks not yet replayed point at these names: each lives
     * on its own, so growing the table never moves one. */
    struct hme_pname **n = decode_grow(s->pnames, sizeof(*n), &s->cappnames, s->npnames + 1);
    if (n == NULL)
        return NULL;
    s->pnames = n;
    struct hme_pname *pn = malloc(sizeof(*pn));
    if (pn == NULL)
        return NULL;
    pn->pid = pid;
    if (len >= sizeof(pn->name))
        len = sizeof(pn->name) - 1;
    memcpy(pn->name, name, len);
    pn->name[len] = 0;
    n[s->npnames] = pn;
    s->lastpname = s->npnames++;
    return pn->name;
}

/* Decode the next event into `r`.  1: an event; 0: end of the stream; -1: damage. */
static int decode_event(hme_engine *e, struct hme_stream *s, struct hme_chunk *c,
                        struct hme_rec *r)
{
    while (!s->in_packet || s->pos >= s->content_end) {
        int k = decode_packet(e, s);
        if (k <= 0)
            return k;
    }
    const struct hme_sclass *sc = s->sc;
    const struct hme_trace_desc *t = &e->traces[s->trace];
    size_t pkt = s->pkt, p = s->pos, end = s->content_end;
    const uint8_t *b = s->map;
    uint64_t id;
    if (sc->header == HME_H_LARGE) {
        if (p + 6 > end)
            goto cut;
        id = decode_le(b + p, 2);
        if (id == 65535) {
            if (p + 14 > end)
                goto cut;
            id = decode_le(b + p + 2, 4);
            decode_clock(&s->clock, decode_le(b + p + 6, 8), 64);
            p += 14;
        } else {
            decode_clock(&s->clock, decode_le(b + p + 2, 4), 32);
            p += 6;
        }
    } else {
        if (p + 4 > end)
            goto cut;
        uint64_t w = decode_le(b + p, 4);
        id = w & 31;
        if (id == 31) {
            if (p + 13 > end)
                goto cut;
            id = decode_le(b + p + 1, 4);
            decode_clock(&s->clock, decode_le(b + p + 5, 8), 64);
            p += 13;
        } else {
            decode_clock(&s->clock, w >> 5, 27);
            p += 4;
        }
    }
    if (id >= (uint64_t)sc->nby_id || sc->by_id[id] < 0) {
        decode_stream_error(s, "event id %llu at byte %zu is not in the metadata",
                            (unsigned long long)id, p);
        return -1;
    }
    const struct hme_class_desc *cls = &e->classes[sc->by_id[id]];
    r->cls = sc->by_id[id];
    r->clock = s->clock;
    if (s->clock > (uint64_t)INT64_MAX ||
        __builtin_add_overflow(t->clock_offset_ns, (int64_t)s->clock, &r->ts)) {
        decode_stream_error(s, "time out of range at byte %zu", p);
        return -1;
    }
    r->procname = NULL;
    /* Process: the vpid context, else the per-process buffer's environment. */
    int vpid_i = sc->has_context ? sc->ectx.roles[HME_P_VPID] : -1;
    if (sc->has_context) {
        uint64_t xv[HME_MAX_FIELDS];
        size_t spos[HME_MAX_FIELDS], slen[HME_MAX_FIELDS];
        if (decode_struct(b, pkt, &p, end, sc->ectx.fields, sc->ectx.nfields, xv, NULL, spos,
                          slen) < 0)
            goto cut;
        if (vpid_i >= 0) {
            r->has_pid = 1;
            r->pid = (int64_t)xv[vpid_i];
            int pn = sc->ectx.roles[HME_P_PROCNAME];
            /* reader.py's rule: the first hostmem event read names the process
             * (statedump events run in lttng-ust's own thread) */
            if (cls->kind != HME_K_FWD_OTHER && cls->kind != HME_K_SKIP && pn >= 0)
                r->procname = decode_pname(s, r->pid, b + spos[pn], slen[pn]);
        }
    }
    if (vpid_i < 0) {
        r->has_pid = t->has_env_pid;
        r->pid = t->env_pid;
        r->procname = t->env_procname;
    }
    uint64_t pv[HME_MAX_FIELDS];
    if (decode_struct(b, pkt, &p, end, cls->fields, cls->nfields, pv,
                      cls->keep_strings ? c : NULL, NULL, NULL) < 0)
        goto cut;
    int32_t nv = cls->nfields < HME_NV ? cls->nfields : HME_NV;
    memcpy(r->v, pv, sizeof(uint64_t) * (size_t)nv);
    s->pos = p;
    return 1;
cut:
    decode_stream_error(s, "event cut at byte %zu (packet at byte %zu)", s->pos, pkt);
    return -1;
}

/* Fill one chunk of `s` (the caller holds `busy`). */
static void decode_fill(hme_engine *e, struct hme_stream *s, struct hme_chunk *c)
{
    c->n = 0;
    c->blob_n = 0;
    c->last = 0;
    c->error = 0;
    if (s->done_decoding) {
        c->last = 1;
        return;
    }
    while (c->n < DECODE_CHUNK) {
        int k = decode_event(e, s, c, &c->recs[c->n]);
        if (k == 1) {
            if (e->classes[c->recs[c->n].cls].kind != HME_K_SKIP)
                c->n++;
            continue;
        }
        s->done_decoding = 1;
        c->last = 1;
        c->error = k < 0;
        return;
    }
}

/* ---- threads ---------------------------------------------------------------- */

static void decode_queue(hme_engine *e, struct hme_stream *s)
{
    /* e->mu held */
    if (s->busy)
        return;
    s->busy = 1;
    e->jobs[(e->jobs_head + e->jobs_n) % e->nstreams] = s->index;
    e->jobs_n++;
    pthread_cond_signal(&e->job_cv);
}

static void *decode_worker(void *arg)
{
    hme_engine *e = arg;
    pthread_mutex_lock(&e->mu);
    for (;;) {
        while (e->jobs_n == 0 && !e->stopping)
            pthread_cond_wait(&e->job_cv, &e->mu);
        if (e->stopping)
            break;
        struct hme_stream *s = e->streams[e->jobs[e->jobs_head]];
        e->jobs_head = (e->jobs_head + 1) % e->nstreams;
        e->jobs_n--;
        for (;;) {
            struct hme_chunk *c = &s->chunk[s->fill];
            if (c->state != HME_CH_EMPTY || s->done_decoding)
                break;
            c->state = HME_CH_FILLING;
            pthread_mutex_unlock(&e->mu);
            decode_fill(e, s, c);
            pthread_mutex_lock(&e->mu);
            c->state = HME_CH_READY;
            s->fill ^= 1;
            pthread_cond_broadcast(&e->ready_cv);
        }
        s->busy = 0;
    }
    int64_t cpu = decode_thread_cpu_ns();
    e->cpu_decode_ns += cpu;
    if (cpu > e->cpu_decode_max_ns)
        e->cpu_decode_max_ns = cpu;
    pthread_mutex_unlock(&e->mu);
    return NULL;
}

static int decode_start(hme_engine *e)
{
    e->jobs = calloc((size_t)(e->nstreams ? e->nstreams : 1), sizeof(int32_t));
    e->heap = calloc((size_t)(e->nstreams ? e->nstreams : 1), sizeof(int32_t));
    if (e->jobs == NULL || e->heap == NULL)
        return -1;
    /* event id -> class, per stream class */
    for (int32_t i = 0; i < e->nsclasses; i++) {
        struct hme_sclass *sc = &e->sclasses[i];
        int32_t max = -1;
        for (int32_t k = 0; k < e->nclasses; k++)
            if (e->classes[k].trace == sc->trace && e->classes[k].stream_class == sc->id &&
                e->classes[k].id > max)
                max = e->classes[k].id;
        sc->nby_id = max + 1;
        sc->by_id = malloc(sizeof(int32_t) * (size_t)(max + 1 > 0 ? max + 1 : 1));
        if (sc->by_id == NULL)
            return -1;
        for (int32_t k = 0; k <= max; k++)
            sc->by_id[k] = -1;
        for (int32_t k = 0; k < e->nclasses; k++)
            if (e->classes[k].trace == sc->trace && e->classes[k].stream_class == sc->id &&
                e->classes[k].id >= 0)
                sc->by_id[e->classes[k].id] = k;
    }
    int n = e->threads;
    if (n > e->nstreams)
        n = e->nstreams;
    e->workers = calloc((size_t)(n ? n : 1), sizeof(pthread_t));
    if (e->workers == NULL)
        return -1;
    for (int i = 0; i < n; i++) {
        if (pthread_create(&e->workers[i], NULL, decode_worker, e) != 0)
            break;
        e->nworkers++;
    }
    if (e->nworkers == 0 && e->nstreams > 0)
        return -1;
    pthread_mutex_lock(&e->mu);
    for (int32_t i = 0; i < e->nstreams; i++)
        decode_queue(e, e->streams[i]);
    pthread_mutex_unlock(&e->mu);
    e->started = 1;
    return 0;
}

static void decode_stop(hme_engine *e)
{
    pthread_mutex_lock(&e->mu);
    e->stopping = 1;
    pthread_cond_broadcast(&e->job_cv);
    pthread_mutex_unlock(&e->mu);
    for (int i = 0; i < e->nworkers; i++)
        pthread_join(e->workers[i], NULL);
    e->nworkers = 0;
}

/* Make s->chunk[s->cur] hold a record at s->at, waiting for the decoder.
 * 1: it does; 0: the stream ended; -1: decoding failed. */
static int decode_ready(hme_engine *e, struct hme_stream *s)
{
    for (;;) {
        struct hme_chunk *c = &s->chunk[s->cur];
        if (s->cur_ready) {
            if (s->at < c->n)
                return 1;
            if (c->error) {
                snprintf(e->error, sizeof(e->error), "%s", s->err);
                return -1;
            }
            if (c->last)
                return 0;
            pthread_mutex_lock(&e->mu);
            c->state = HME_CH_EMPTY;
            s->cur ^= 1;
            s->at = 0;
            s->cur_ready = 0;
            decode_queue(e, s);
            pthread_mutex_unlock(&e->mu);
            continue;
        }
        /* The worker wrote the chunk before it set READY under the lock. */
        pthread_mutex_lock(&e->mu);
        while (s->chunk[s->cur].state != HME_CH_READY)
            pthread_cond_wait(&e->ready_cv, &e->mu);
        pthread_mutex_unlock(&e->mu);
        s->cur_ready = 1;
    }
}

/* ---- merge ------------------------------------------------------------------ */

static inline const struct hme_rec *decode_head(hme_engine *e, int32_t si)
{
    struct hme_stream *s = e->streams[si];
    return &s->chunk[s->cur].recs[s->at];
}

/* Time order; equal times by stream (file name order, as engine.py adds them). */
static inline int decode_before(hme_engine *e, int32_t a, int32_t b)
{
    int64_t ta = decode_head(e, a)->ts, tb = decode_head(e, b)->ts;
    return ta < tb || (ta == tb && a < b);
}

static void decode_sift_down(hme_engine *e, int32_t i)
{
    int32_t *h = e->heap, n = e->nheap;
    for (;;) {
        int32_t l = 2 * i + 1, m = i;
        if (l < n && decode_before(e, h[l], h[m]))
            m = l;
        if (l + 1 < n && decode_before(e, h[l + 1], h[m]))
            m = l + 1;
        if (m == i)
            return;
        int32_t t = h[i];
        h[i] = h[m];
        h[m] = t;
        i = m;
    }
}

static void decode_sift_up(hme_engine *e, int32_t i)
{
    int32_t *h = e->heap;
    while (i > 0) {
        int32_t parent = (i - 1) / 2;
        if (!decode_before(e, h[i], h[parent]))
            return;
        int32_t t = h[i];
        h[i] = h[parent];
        h[parent] = t;
        i = parent;
    }
}

int hme__fwd_push(hme_engine *e, const struct hme_rec *r, const char *blob, int32_t proc,
                  const int64_t *facts)
{
    if (e->nfwd == e->capfwd) {
        int64_t cap = e->capfwd ? e->capfwd * 2 : 1024;
        struct hme_fwd *n = realloc(e->fwd, sizeof(*n) * (size_t)cap);
        if (n == NULL)
            return -1;
        e->fwd = n;
        e->capfwd = cap;
    }
    struct hme_fwd *f = &e->fwd[e->nfwd++];
    f->procname = UINT64_MAX;
    if (r->procname != NULL) {
        /* a stream's names live as long as the run: the same pointer, the same name */
        if (r->procname != e->fblob_pname) {
            if (blob_append(&e->fblob, &e->fblob_n, &e->fblob_cap, 65536, r->procname,
                            strlen(r->procname), &e->fblob_pname_at))
                return -1;
            e->fblob_pname = r->procname;
        }
        f->procname = e->fblob_pname_at;
    }
    f->ts = r->ts;
    f->clock = r->clock;
    f->cls = r->cls;
    f->proc = proc;
    for (int i = 0; i < HME_FACT_COUNT; i++)
        f->facts[i] = facts != NULL ? facts[i] : HME_UNKNOWN;
    const struct hme_class_desc *c = &e->classes[r->cls];
    int32_t nv = c->nfields < HME_NV ? c->nfields : HME_NV;
    for (int32_t i = 0; i < nv; i++) {
        f->v[i] = r->v[i];
        int k = c->fields[i].kind;
        if (k == HME_F_UINT || k == HME_F_SINT)
            continue;
        /* re-home the string into the batch's blob */
        uint64_t off = r->v[i] >> 32, len = r->v[i] & 0xffffffffu;
        if (blob_append(&e->fblob, &e->fblob_n, &e->fblob_cap, 65536, blob + off, len, &f->v[i]))
            return -1;
    }
    return 0;
}

static int decode_run(hme_engine *e, struct hme_batch *out)
{
    e->nfwd = 0;
    e->fblob_n = 0;
    e->fblob_pname = NULL;
    out->n = 0;
    out->blob_n = 0;
    if (e->finished)
        return 0;
    if (!e->started) {
        if (decode_start(e) < 0) {
            decode_fail(e, "cannot start the decoder: out of memory");
            return -1;
        }
        for (int32_t i = 0; i < e->nstreams; i++) {
            int k = decode_ready(e, e->streams[i]);
            if (k < 0)
                return -1;
            if (k == 1) {
                e->heap[e->nheap++] = i;
                decode_sift_up(e, e->nheap - 1);
            }
        }
    }
    while (e->nheap > 0) {
        int32_t si = e->heap[0];
        struct hme_stream *s = e->streams[si];
        struct hme_chunk *c = &s->chunk[s->cur];
        /* The decoder wrote the records on another core: ask for the next
         * ones' cache lines while this one is replayed. */
        if (s->at + 2 < c->n) {
            const char *next = (const char *)&c->recs[s->at + 2];
            __builtin_prefetch(next);
            __builtin_prefetch(next + 64);
            __builtin_prefetch(next + 128);
        }
        if (hme__model_event(e, &c->recs[s->at], c->blob) < 0) {
            decode_fail(e, "out of memory");
            return -1;
        }
        e->decoded++;
        s->at++;
        int k = decode_ready(e, s);
        if (k < 0)
            return -1;
        if (k == 0) {
            s->ended = 1;
            e->heap[0] = e->heap[--e->nheap];
        }
        if (e->nheap > 0)
            decode_sift_down(e, 0);
        /* back to Python now and then: its progress bar */
        if (e->nfwd >= DECODE_FWD_BATCH || (e->decoded & (DECODE_PROGRESS - 1)) == 0)
            goto batch;
    }
    decode_stop(e);
    for (int32_t i = 0; i < e->nstreams; i++) {
        struct hme_stream *s = e->streams[i];
        if (s->disc_events || s->disc_packets)
            hme__model_discarded(e, s->trace, s->disc_events, s->disc_packets);
    }
    if (hme__model_finish(e) < 0) {
        decode_fail(e, "out of memory");
        return -1;
    }
    e->finished = 1;
batch:
    out->recs = e->fwd;
    out->n = e->nfwd;
    out->blob = e->fblob;
    out->blob_n = (int64_t)e->fblob_n;
    return e->nfwd > 0 || !e->finished ? 1 : 0;
}

void hme_free(hme_engine *e)
{
    if (e == NULL)
        return;
    if (e->started)
        decode_stop(e);
    for (int32_t i = 0; i < e->nstreams; i++) {
        struct hme_stream *s = e->streams[i];
        if (s->map)
            munmap((void *)s->map, s->len);
        for (int k = 0; k < 2; k++) {
            free(s->chunk[k].recs);
            free(s->chunk[k].blob);
        }
        for (int32_t k = 0; k < s->npnames; k++)
            free(s->pnames[k]);
        free(s->pnames);
        free(s->path);
        free(s);
    }
    for (int32_t i = 0; i < e->nsclasses; i++)
        free(e->sclasses[i].by_id);
    for (int32_t i = 0; i < e->ntraces; i++)
        free(e->trace_procnames[i]);
    free(e->trace_procnames);
    free(e->streams);
    free(e->sclasses);
    free(e->classes);
    free(e->traces);
    free(e->jobs);
    free(e->heap);
    free(e->workers);
    free(e->fwd);
    free(e->fblob);
    hme__model_free(e->model);
    pthread_mutex_destroy(&e->mu);
    pthread_cond_destroy(&e->job_cv);
    pthread_cond_destroy(&e->ready_cv);
    free(e);
}

int hme_run(hme_engine *e, struct hme_batch *out)
{
    int64_t t0 = decode_thread_cpu_ns();
    int rc = decode_run(e, out);
    int64_t used = decode_thread_cpu_ns() - t0;
    pthread_mutex_lock(&e->mu);
    e->cpu_replay_ns += used;
    pthread_mutex_unlock(&e->mu);
    return rc;
}
