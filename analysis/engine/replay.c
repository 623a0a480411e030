/*
 * replay.c: the model of model.py, for the hot events, in C.
 *
 * Every rule here mirrors a line of hostmem_analysis/model.py (Model.feed,
 * _region_op, _span, Region.commit/decommit, _destroy, _region_state,
 * _memory_state, the heap handlers, Stats.move and _halve_samples, Hist):
 * the differential test (analysis/tests/test_e2e.py) runs both over every
 * trace the tests record and compares the summaries exactly.  Change one,
 * change the other.
 *
 * What it keeps grows with processes, managers, live regions (a treap per
 * manager, by base), live heap blocks, call sites of temporary regions, and
 * at most MAX_SAMPLES samples of the totals per process: never with events.
 */
#include <stdlib.h>
#include <string.h>

#include "engine_int.h"
#include "stacks.h"

#define MAX_SAMPLES 16384
#define MEM_RESERVE 0x2000
#define NOPS 8 /* reserve commit decommit release protect reset reset_undo query */

/* ---- hash map: u64 key -> int32 (linear probing, backward-shift delete) ---- */

struct map {
    uint64_t *keys;
    int32_t *vals; /* -1: empty */
    uint32_t cap, n;
};

static inline uint32_t map_hash(uint64_t k)
{
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    k *= 0xc4ceb9fe1a85ec53ULL;
    k ^= k >> 33;
    return (uint32_t)k;
}

static int map_init(struct map *m, uint32_t cap)
{
    m->keys = malloc(sizeof(uint64_t) * cap);
    m->vals = malloc(sizeof(int32_t) * cap);
    if (m->keys == NULL || m->vals == NULL)
        return -1;
    for (uint32_t i = 0; i < cap; i++)
        m->vals[i] = -1;
    m->cap = cap;
    m->n = 0;
    return 0;
}

static void map_free(struct map *m)
{
    free(m->keys);
    free(m->vals);
    m->keys = NULL;
    m->vals = NULL;
    m->cap = m->n = 0;
}

static int32_t map_get(const struct map *m, uint64_t k)
{
    if (m->cap == 0)
        return -1;
    uint32_t mask = m->cap - 1, i = map_hash(k) & mask;
    while (m->vals[i] >= 0) {
        if (m->keys[i] == k)
            return m->vals[i];
        i = (i + 1) & mask;
    }
    return -1;
}

static int map_put(struct map *m, uint64_t k, int32_t v);

static int map_grow(struct map *m)
{
    struct map n;
    if (map_init(&n, m->cap ? m->cap * 2 : 16) < 0)
        return -1;
    for (uint32_t i = 0; i < m->cap; i++)
        if (m->vals[i] >= 0)
            map_put(&n, m->keys[i], m->vals[i]);
    map_free(m);
    *m = n;
    return 0;
}

static int map_put(struct map *m, uint64_t k, int32_t v)
{
    if ((m->n + 1) * 4 > m->cap * 3 && map_grow(m) < 0)
        return -1;
    uint32_t mask = m->cap - 1, i = map_hash(k) & mask;
    while (m->vals[i] >= 0) {
        if (m->keys[i] == k) {
            m->vals[i] = v;
            return 0;
        }
        i = (i + 1) & mask;
    }
    m->keys[i] = k;
    m->vals[i] = v;
    m->n++;
    return 0;
}

static void map_del(struct map *m, uint64_t k)
{
    if (m->cap == 0)
        return;
    uint32_t mask = m->cap - 1, i = map_hash(k) & mask;
    while (m->vals[i] >= 0 && m->keys[i] != k)
        i = (i + 1) & mask;
    if (m->vals[i] < 0)
        return;
    m->vals[i] = -1;
    m->n--;
    /* backward shift: move later entries of the run into the hole */
    uint32_t j = i;
    for (;;) {
        j = (j + 1) & mask;
        if (m->vals[j] < 0)
            return;
        uint32_t h = map_hash(m->keys[j]) & mask;
        /* can the entry at j live at i? (h not cyclically in (i, j]) */
        if ((j > i && (h <= i || h > j)) || (j < i && (h <= i && h > j))) {
            m->keys[i] = m->keys[j];
            m->vals[i] = m->vals[j];
            m->vals[j] = -1;
            i = j;
        }
    }
}

/* ---- histogram (hist.py) ------------------------------------------------------ */

struct hist {
    int64_t *blk[56]; /* [0]: values 0..1023; [s]: 512 buckets of shift s */
    int64_t n, max, total;
};

static int hist_add(struct hist *h, int64_t v)
{
    if (v < 0)
        v = 0;
    int b;
    uint64_t i;
    if (v < 1024) {
        b = 0;
        i = (uint64_t)v;
    } else {
        int shift = 64 - __builtin_clzll((uint64_t)v) - 10;
        b = shift;
        i = ((uint64_t)v >> shift) - 512;
    }
    if (h->blk[b] == NULL) {
        h->blk[b] = calloc(b == 0 ? 1024 : 512, sizeof(int64_t));
        if (h->blk[b] == NULL)
            return -1;
    }
    h->blk[b][i]++;
    h->n++;
    h->total += v;
    if (v > h->max)
        h->max = v;
    return 0;
}

static void hist_free(struct hist *h)
{
    for (int b = 0; b < 56; b++)
        free(h->blk[b]);
}

/* (bucket low value, count) pairs in ascending order; returns how many. */
static int64_t hist_buckets(const struct hist *h, int64_t *out)
{
    int64_t k = 0;
    for (int b = 0; b < 56; b++) {
        if (h->blk[b] == NULL)
            continue;
        int n = b == 0 ? 1024 : 512;
        for (int i = 0; i < n; i++) {
            int64_t c = h->blk[b][i];
            if (c == 0)
                continue;
            if (out) {
                out[2 * k] = b == 0 ? i : (int64_t)(((uint64_t)i + 512) << b);
                out[2 * k + 1] = c;
            }
            k++;
        }
    }
    return k;
}

/* ---- regions: a treap by base per manager ---------------------------------- */

struct run {
    int64_t s, e;
};

struct region {
    uint64_t base;
    int64_t size;
    uint64_t caller;
    int64_t t_reserve;
    struct run *runs;
    int32_t nruns, capruns;
    struct run one; /* runs point here while there is one */
    int64_t unplaced;
    int32_t from_statedump;
    int32_t has_heap;
    uint64_t heap;
    int32_t stack; /* R5: the stack of its reserve (stacks.c), -1: none */
    uint32_t prio;
    struct region *l, *r;
};

static uint32_t replay_rand_state = 2463534242u;

static uint32_t replay_rand(void)
{
    uint32_t x = replay_rand_state;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return replay_rand_state = x;
}

static int64_t region_placed(const struct region *g)
{
    int64_t t = 0;
    for (int32_t i = 0; i < g->nruns; i++)
        t += g->runs[i].e - g->runs[i].s;
    return t;
}

static int64_t region_committed(const struct region *g)
{
    int64_t c = region_placed(g) + g->unplaced;
    return c < g->size ? c : g->size;
}

static void region_free(struct region *g)
{
    if (g->runs != &g->one)
        free(g->runs);
    free(g);
}

static int region_setruns(struct region *g, const struct run *r, int32_t n)
{
    if (n <= 1) {
        if (g->runs != &g->one)
            free(g->runs);
        g->runs = &g->one;
        g->capruns = 1;
        if (n == 1)
            g->one = r[0];
        g->nruns = n;
        return 0;
    }
    struct run *a = malloc(sizeof(*a) * (size_t)n);
    if (a == NULL)
        return -1;
    memcpy(a, r, sizeof(*a) * (size_t)n);
    if (g->runs != &g->one)
        free(g->runs);
    g->runs = a;
    g->nruns = g->capruns = n;
    return 0;
}

static int run_cmp(const void *a, const void *b)
{
    const struct run *x = a, *y = b;
    if (x->s != y->s)
        return x->s < y->s ? -1 : 1;
    return x->e < y->e ? -1 : x->e > y->e;
}

/* Region.commit: mark [start, end) committed; the bytes newly committed. */
static int region_commit(struct region *g, int64_t start, int64_t end, int64_t *out)
{
    int64_t before = region_committed(g);
    if (g->nruns == 1 && !(g->one.e < start || g->one.s > end)) {
        /* the common case: one run, touched: widen it */
        g->one.s = g->one.s < start ? g->one.s : start;
        g->one.e = g->one.e > end ? g->one.e : end;
        *out = region_committed(g) - before;
        return 0;
    }
    struct run tmp[8];
    struct run *o = g->nruns + 1 <= 8 ? tmp : malloc(sizeof(*o) * (size_t)(g->nruns + 1));
    if (o == NULL)
        return -1;
    int32_t k = 0;
    for (int32_t i = 0; i < g->nruns; i++) {
        int64_t s = g->runs[i].s, e = g->runs[i].e;
        if (e < start || s > end) {
            o[k++] = g->runs[i];
        } else {
            start = start < s ? start : s;
            end = end > e ? end : e;
        }
    }
    o[k].s = start;
    o[k].e = end;
    k++;
    qsort(o, (size_t)k, sizeof(*o), run_cmp);
    int rc = region_setruns(g, o, k);
    if (o != tmp)
        free(o);
    if (rc < 0)
        return -1;
    *out = region_committed(g) - before;
    return 0;
}

/* Region.decommit: mark [start, end) decommitted; the bytes given back. */
static int region_decommit(struct region *g, int64_t start, int64_t end, int64_t *out)
{
    int64_t before = region_committed(g);
    if (start <= (int64_t)g->base && end >= (int64_t)g->base + g->size) {
        region_setruns(g, NULL, 0);
        g->unplaced = 0;
        *out = before;
        return 0;
    }
    struct run tmp[8];
    struct run *o = 2 * g->nruns <= 8 ? tmp : malloc(sizeof(*o) * (size_t)(2 * g->nruns + 1));
    if (o == NULL)
        return -1;
    int32_t k = 0;
    for (int32_t i = 0; i < g->nruns; i++) {
        int64_t s = g->runs[i].s, e = g->runs[i].e;
        if (e <= start || s >= end) {
            o[k++] = g->runs[i];
            continue;
        }
        if (s < start) {
            o[k].s = s;
            o[k].e = start;
            k++;
        }
        if (e > end) {
            o[k].s = end;
            o[k].e = e;
            k++;
        }
    }
    int rc = region_setruns(g, o, k);
    if (o != tmp)
        free(o);
    if (rc < 0)
        return -1;
    *out = before - region_committed(g);
    return 0;
}

static void treap_split(struct region *t, uint64_t key, struct region **l, struct region **r)
{
    /* l: bases < key; r: bases >= key */
    if (t == NULL) {
        *l = *r = NULL;
        return;
    }
    if (t->base < key) {
        treap_split(t->r, key, &t->r, r);
        *l = t;
    } else {
        treap_split(t->l, key, l, &t->l);
        *r = t;
    }
}

static struct region *treap_merge(struct region *a, struct region *b)
{
    if (a == NULL)
        return b;
    if (b == NULL)
        return a;
    if (a->prio > b->prio) {
        a->r = treap_merge(a->r, b);
        return a;
    }
    b->l = treap_merge(a, b->l);
    return b;
}

static struct region *treap_get(struct region *t, uint64_t base)
{
    while (t != NULL) {
        if (base == t->base)
            return t;
        t = base < t->base ? t->l : t->r;
    }
    return NULL;
}

/* Manager.find: the region with the greatest base <= addr, if addr is inside it. */
static struct region *treap_find(struct region *t, uint64_t addr)
{
    struct region *best = NULL;
    while (t != NULL) {
        if (t->base <= addr) {
            best = t;
            t = t->r;
        } else {
            t = t->l;
        }
    }
    if (best != NULL && (int64_t)addr < (int64_t)best->base + best->size)
        return best;
    return NULL;
}

/* ---- the model's records ---------------------------------------------------- */

struct opstats {
    int64_t count, failed, bytes;
    struct hist lat;
};

struct stats {
    int64_t events;
    int64_t by_name[HME_MAX_NAMES];
    int64_t first_ts, last_ts; /* -1: none (event times are after 1970) */
    int64_t reserved, committed;
    int64_t peak_reserved, peak_reserved_ts, peak_committed, peak_committed_ts;
    int keep;
    int64_t *s_ts, *s_r, *s_c;
    int64_t ns, caps;
    int64_t managers;
    int64_t *heap_committed; /* the process's heap.committed (NULL for all) */
    int64_t heap_at_peak;
};

struct leak {
    uint64_t base, manager, caller;
    int64_t size, committed, t_reserve;
    int32_t from_statedump;
    int32_t stack;
};

struct block {
    uint64_t heap, address, caller;
    int64_t size, ts, line;
    const char *file;
    int64_t order;
};

struct heap {
    uint64_t addr;
    struct map live; /* address -> block index */
    int64_t order;
    int32_t alive;
};

struct statens {
    int64_t state, ns;
};

/* How far a manager's replay holds (model.py, REPLAY_*): while it is exact
 * its totals are its own, and hostmem:totals (read racily by the library)
 * sets them only when it cannot be. */
enum {
    REPLAY_LATE = 0,  /* met after its creation: its first totals event sets its books */
    REPLAY_EXACT = 1, /* replayed from its creation or from that first totals event */
    REPLAY_LOST = 2,  /* events lost since: every totals event sets its books again */
};

struct manager {
    uint64_t addr;
    int32_t has_addr;
    int32_t alive;
    struct region *root;
    int64_t reserved, committed;
    int64_t created; /* -1: none */
    int64_t first_ts, last_ts;
    int32_t totals_known;
    int32_t replay; /* REPLAY_* */
    int32_t has_state;
    int64_t state, state_since;
    struct statens *sns;
    int32_t nsns, capsns;
    uint64_t commit_limit, as_limit, page_size;
    int64_t order;
};

struct mismatch {
    uint64_t manager;
    int64_t told, seen;
};

/* Layout v3: a debug allocation's file and line come in malloc_debug, just
 * before its malloc_alloc and under that malloc_alloc's seq (it takes none of
 * its own and is not counted, as reader.py does).  A few wait per process,
 * for other threads' events that may come in between. */
#define DEBUG_PENDING 8
struct debug_pending {
    int64_t seq; /* 0: free */
    const char *file;
    int64_t line;
};

struct proc {
    struct debug_pending dbg[DEBUG_PENDING];
    int32_t dbg_next;
    int32_t host;
    int32_t has_pid;
    int64_t pid;
    char *procname;
    struct stats st;
    int64_t seq_min, seq_max, seq_count;
    int64_t discarded_events, discarded_packets;
    struct opstats ops[NOPS];
    struct map managers; /* addr -> index into mgrs */
    int32_t none_manager;  /* the manager of events without one, -1 */
    int32_t null_manager;  /* the events of manager 0 (NULL), which is not one, -1 */
    struct manager *mgrs;
    int32_t nmgrs, capmgrs;
    int64_t mgr_order;
    struct map temp; /* caller -> index */
    uint64_t *t_caller;
    int64_t *t_n, *t_bytes;
    int32_t ntemp, captemp;
    struct hist temp_life;
    int64_t lifetimes, untracked;
    int64_t size_hist[65];
    /* heaps */
    struct map heaps; /* addr -> index into hps */
    struct heap *hps;
    int32_t nhps, caphps;
    int64_t heap_order;
    struct block *blocks; /* pool; free list through `order` */
    int32_t nblocks, capblocks, freeblock;
    int64_t block_order;
    int64_t heaps_n, allocs, frees, alloc_bytes, unknown_frees;
    int64_t heap_committed, heap_peak;
    struct block *hleaks;
    int32_t nhleaks, caphleaks;
    int32_t hleaks_at_end; /* hleaks from here on: live when the trace ended (T8) */
    struct leak *leaks, *dleaks;
    int32_t nleaks, capleaks, ndleaks, capdleaks;
    struct statens *sns;
    int32_t nsns, capsns;
    uint64_t *limits;
    int32_t nlimits, caplimits;
    struct mismatch *mismatch; /* T8: destroy counted other regions than replay holds */
    int32_t nmismatch, capmismatch;
    struct hme_stacks stacks; /* R5 (stacks.c) */
    /* seq order: the next seq expected, and what waits for the ones before it */
    uint64_t next_seq; /* seqs are uint64 in the trace: compared and stepped as such */
    int32_t has_next;
    struct held *held; /* a binary heap by (seq, order) */
    int32_t nheld, capheld;
};

/* An event waiting for the events of its process with lower seqs: the
 * record, its strings (procname and string fields, re-homed), and its
 * arrival, for equal seqs. */
struct held {
    struct hme_rec r;
    char *blob;
    uint64_t seq;
    int64_t order;
};

struct hme_model {
    /* The last region operation's facts (Model.last_op): the pages it acted
     * on, the manager's books after it; HME_UNKNOWN where not known. */
    int64_t facts[HME_FACT_COUNT];
    int64_t held_total, held_order;
    struct stats all;
    struct proc *procs;
    int32_t nprocs, capprocs;
    struct map by_key; /* process key hash -> index (chained by linear scan on collision) */
    int32_t last_proc;  /* Model._last_key's process, -1 */
    int64_t discarded_events, discarded_packets;
    /* interned strings (heap block files) */
    char **strs;
    int32_t nstrs, capstrs;
};

static void *grow(void *p, size_t elem, int32_t *cap, int32_t need)
{
    if (need <= *cap)
        return p;
    int32_t n = *cap ? *cap : 4;
    while (n < need)
        n *= 2;
    void *q = realloc(p, (size_t)n * elem);
    if (q == NULL)
        return NULL;
    memset((char *)q + (size_t)*cap * elem, 0, (size_t)(n - *cap) * elem);
    *cap = n;
    return q;
}

#define GROW(arr, n, cap)                                                                   \
    ((arr) = grow((arr), sizeof(*(arr)), &(cap), (n) + 1)) == NULL ? -1 : 0

static void stats_init(struct stats *st, int keep)
{
    memset(st, 0, sizeof(*st));
    st->first_ts = st->last_ts = -1;
    st->peak_reserved_ts = st->peak_committed_ts = -1;
    st->keep = keep;
}

/* Stats.touch: the earliest and the latest stamp (seq order can put one
 * before an earlier one). */
static void stats_touch(struct stats *st, int64_t ts)
{
    if (st->first_ts < 0 || ts < st->first_ts)
        st->first_ts = ts;
    if (st->last_ts < 0 || ts > st->last_ts)
        st->last_ts = ts;
}

/* Stats._halve_samples */
static void stats_halve(struct stats *st)
{
    int64_t n = st->ns - 1, k = 0;
    for (int64_t i = 0; i < n - 1; i += 2) {
        int64_t r = st->s_r[i] > st->s_r[i + 1] ? st->s_r[i] : st->s_r[i + 1];
        int64_t c = st->s_c[i] > st->s_c[i + 1] ? st->s_c[i] : st->s_c[i + 1];
        st->s_ts[k] = st->s_ts[i];
        st->s_r[k] = r;
        st->s_c[k] = c;
        k++;
    }
    if (n % 2) {
        st->s_ts[k] = st->s_ts[n - 1];
        st->s_r[k] = st->s_r[n - 1];
        st->s_c[k] = st->s_c[n - 1];
        k++;
    }
    st->s_ts[k] = st->s_ts[n];
    st->s_r[k] = st->s_r[n];
    st->s_c[k] = st->s_c[n];
    k++;
    st->ns = k;
}

/* Stats.move */
static int stats_move(struct stats *st, int64_t ts, int64_t dr, int64_t dc)
{
    st->reserved += dr;
    st->committed += dc;
    if (st->keep) {
        if (st->ns == st->caps) {
            int64_t cap = st->caps ? st->caps * 2 : 256;
            if (cap > MAX_SAMPLES)
                cap = MAX_SAMPLES;
            int64_t *a = realloc(st->s_ts, sizeof(int64_t) * (size_t)cap);
            if (a == NULL)
                return -1;
            st->s_ts = a;
            a = realloc(st->s_r, sizeof(int64_t) * (size_t)cap);
            if (a == NULL)
                return -1;
            st->s_r = a;
            a = realloc(st->s_c, sizeof(int64_t) * (size_t)cap);
            if (a == NULL)
                return -1;
            st->s_c = a;
            st->caps = cap;
        }
        /* A sample is the state from its stamp on: never before the last
         * one, whatever seq order brought (model.py, Stats.move). */
        st->s_ts[st->ns] = st->ns > 0 && ts < st->s_ts[st->ns - 1] ? st->s_ts[st->ns - 1] : ts;
        st->s_r[st->ns] = st->reserved;
        st->s_c[st->ns] = st->committed;
        st->ns++;
        if (st->ns >= MAX_SAMPLES)
            stats_halve(st);
    }
    if (st->reserved > st->peak_reserved) {
        st->peak_reserved = st->reserved;
        st->peak_reserved_ts = ts;
    }
    if (st->committed > st->peak_committed) {
        st->peak_committed = st->committed;
        st->peak_committed_ts = ts;
        st->heap_at_peak = st->heap_committed ? *st->heap_committed : 0;
    }
    return 0;
}

static void stats_free(struct stats *st)
{
    free(st->s_ts);
    free(st->s_r);
    free(st->s_c);
}

struct hme_model *hme__model_new(hme_engine *e)
{
    struct hme_model *m = calloc(1, sizeof(*m));
    if (m == NULL)
        return NULL;
    stats_init(&m->all, e->keep_all_samples);
    m->last_proc = -1;
    if (map_init(&m->by_key, 64) < 0) {
        free(m);
        return NULL;
    }
    return m;
}

static void proc_free(struct proc *p)
{
    stats_free(&p->st);
    hme__stacks_free(&p->stacks);
    free(p->procname);
    for (int i = 0; i < NOPS; i++)
        hist_free(&p->ops[i].lat);
    for (int32_t i = 0; i < p->nmgrs; i++) {
        struct manager *g = &p->mgrs[i];
        /* free the treap iteratively: unlink left children by rotation */
        struct region *t = g->root;
        while (t != NULL) {
            if (t->l != NULL) {
                struct region *l = t->l;
                t->l = l->r;
                l->r = t;
                t = l;
            } else {
                struct region *r = t->r;
                region_free(t);
                t = r;
            }
        }
        free(g->sns);
    }
    free(p->mgrs);
    map_free(&p->managers);
    map_free(&p->temp);
    free(p->t_caller);
    free(p->t_n);
    free(p->t_bytes);
    hist_free(&p->temp_life);
    for (int32_t i = 0; i < p->nhps; i++)
        map_free(&p->hps[i].live);
    free(p->hps);
    map_free(&p->heaps);
    free(p->blocks);
    free(p->hleaks);
    free(p->leaks);
    free(p->dleaks);
    free(p->mismatch);
    free(p->sns);
    free(p->limits);
    for (int32_t i = 0; i < p->nheld; i++)
        free(p->held[i].blob);
    free(p->held);
}

void hme__model_free(struct hme_model *m)
{
    if (m == NULL)
        return;
    for (int32_t i = 0; i < m->nprocs; i++)
        proc_free(&m->procs[i]);
    free(m->procs);
    map_free(&m->by_key);
    stats_free(&m->all);
    for (int32_t i = 0; i < m->nstrs; i++)
        free(m->strs[i]);
    free(m->strs);
    free(m);
}

static const char *replay_intern(struct hme_model *m, const char *s, size_t n)
{
    for (int32_t i = m->nstrs - 1; i >= 0; i--)
        if (strlen(m->strs[i]) == n && memcmp(m->strs[i], s, n) == 0)
            return m->strs[i];
    if (GROW(m->strs, m->nstrs, m->capstrs) < 0)
        return NULL;
    char *c = malloc(n + 1);
    if (c == NULL)
        return NULL;
    memcpy(c, s, n);
    c[n] = 0;
    m->strs[m->nstrs++] = c;
    return c;
}

/* ---- processes and managers ------------------------------------------------- */

static uint64_t proc_key(int32_t host, int32_t has_pid, int64_t pid)
{
    return ((uint64_t)(uint32_t)host << 33) ^ ((uint64_t)has_pid << 32) ^ (uint64_t)pid;
}

static int32_t proc_find(struct hme_model *m, int32_t host, int32_t has_pid, int64_t pid)
{
    uint64_t k = proc_key(host, has_pid, pid);
    int32_t i = map_get(&m->by_key, k);
    if (i >= 0) {
        struct proc *p = &m->procs[i];
        if (p->host == host && p->has_pid == has_pid && (!has_pid || p->pid == pid))
            return i;
        for (i = 0; i < m->nprocs; i++) { /* a key collision: look everywhere */
            p = &m->procs[i];
            if (p->host == host && p->has_pid == has_pid && (!has_pid || p->pid == pid))
                return i;
        }
    }
    return -1;
}

static int32_t proc_new(hme_engine *e, int32_t host, int32_t has_pid, int64_t pid,
                        const char *procname)
{
    struct hme_model *m = e->model;
    if (GROW(m->procs, m->nprocs, m->capprocs) < 0)
        return -1;
    struct proc *p = &m->procs[m->nprocs];
    memset(p, 0, sizeof(*p));
    p->host = host;
    p->has_pid = has_pid;
    p->pid = has_pid ? pid : 0;
    p->procname = procname ? strdup(procname) : NULL;
    stats_init(&p->st, 1);
    p->none_manager = -1;
    p->null_manager = -1;
    if (map_init(&p->managers, 16) < 0 || map_init(&p->temp, 16) < 0 ||
        map_init(&p->heaps, 16) < 0)
        return -1;
    p->freeblock = -1;
    int32_t i = m->nprocs++;
    if (map_get(&m->by_key, proc_key(host, has_pid, pid)) < 0 &&
        map_put(&m->by_key, proc_key(host, has_pid, pid), i) < 0)
        return -1;
    m->procs[i].st.heap_committed = &m->procs[i].heap_committed;
    /* procs may have moved: re-point every process's heap figure */
    for (int32_t k = 0; k < m->nprocs; k++)
        m->procs[k].st.heap_committed = &m->procs[k].heap_committed;
    return i;
}

/* Model.process: the process of an event, and its procname rule. */
static int32_t replay_process(hme_engine *e, int32_t host, int32_t has_pid, int64_t pid,
                              const char *procname, int statedump_procname)
{
    struct hme_model *m = e->model;
    int named = procname != NULL && procname[0] != 0;
    if (m->last_proc >= 0) {
        struct proc *l = &m->procs[m->last_proc];
        if (named && l->host == host && l->has_pid == has_pid && (!has_pid || l->pid == pid))
            return m->last_proc;
    }
    int32_t i = proc_find(m, host, has_pid, pid);
    if (i < 0) {
        i = proc_new(e, host, has_pid, pid, procname);
        if (i < 0)
            return -1;
    } else if (named) {
        struct proc *p = &m->procs[i];
        if (p->procname == NULL || p->procname[0] == 0 || statedump_procname) {
            char *c = strdup(procname);
            if (c == NULL)
                return -1;
            free(p->procname);
            p->procname = c;
        }
    }
    m->last_proc = i;
    return i;
}

static struct manager *replay_manager(hme_engine *e, struct proc *p, int has, uint64_t addr,
                                      int64_t ts)
{
    int null = has && addr == 0;
    int32_t i = null ? p->null_manager : has ? map_get(&p->managers, addr) : p->none_manager;
    if (i < 0) {
        if (GROW(p->mgrs, p->nmgrs, p->capmgrs) < 0)
            return NULL;
        i = p->nmgrs++;
        struct manager *g = &p->mgrs[i];
        memset(g, 0, sizeof(*g));
        g->addr = addr;
        g->has_addr = has;
        g->alive = 1;
        g->created = -1;
        g->first_ts = g->last_ts = ts;
        g->state_since = ts;
        g->page_size = 4096;
        g->order = p->mgr_order++;
        if (null) {
            /* Model.feed: a call without a manager, or a hostmem_create that
             * failed; its events count, but it is no manager: not counted,
             * never to be destroyed (T8) */
            g->alive = 0;
            p->null_manager = i;
            return g;
        }
        if (has) {
            if (map_put(&p->managers, addr, i) < 0)
                return NULL;
        } else {
            p->none_manager = i;
        }
        p->st.managers++;
        e->model->all.managers++;
    }
    return &p->mgrs[i];
}

/* Manager.lost: events of this manager may be missing. */
static void manager_lost(struct manager *g)
{
    if (g->replay == REPLAY_EXACT)
        g->replay = REPLAY_LOST;
}

static int replay_totals(hme_engine *e, struct proc *p, struct manager *g, int64_t ts,
                         int64_t dr, int64_t dc, int always)
{
    if (!always && !dr && !dc)
        return 0;
    g->reserved += dr;
    g->committed += dc;
    int64_t peak = p->st.peak_committed;
    if (stats_move(&p->st, ts, dr, dc) < 0 || stats_move(&e->model->all, ts, dr, dc) < 0)
        return -1;
    if (p->st.peak_committed > peak)
        hme__stacks_new_peak(&p->stacks);
    return 0;
}

static void heap_moved(struct proc *p, int64_t d)
{
    p->heap_committed += d;
    if (p->heap_committed > p->heap_peak)
        p->heap_peak = p->heap_committed;
}

static int add_statens(struct statens **a, int32_t *n, int32_t *cap, int64_t state, int64_t ns)
{
    for (int32_t i = 0; i < *n; i++)
        if ((*a)[i].state == state) {
            (*a)[i].ns += ns;
            return 0;
        }
    if (GROW(*a, *n, *cap) < 0)
        return -1;
    (*a)[*n].state = state;
    (*a)[*n].ns = ns;
    (*n)++;
    return 0;
}

/* Manager.close_state */
static int manager_close_state(struct manager *g, int64_t ts)
{
    if (g->has_state && ts > g->state_since) {
        if (add_statens(&g->sns, &g->nsns, &g->capsns, g->state, ts - g->state_since) < 0)
            return -1;
        g->state_since = ts;
    }
    return 0;
}

static int push_leak(struct leak **a, int32_t *n, int32_t *cap, const struct region *g,
                     uint64_t manager)
{
    if (GROW(*a, *n, *cap) < 0)
        return -1;
    struct leak *l = &(*a)[(*n)++];
    l->base = g->base;
    l->size = g->size;
    l->committed = region_committed(g);
    l->caller = g->caller;
    l->t_reserve = g->t_reserve;
    l->manager = manager;
    l->from_statedump = g->from_statedump;
    l->stack = g->stack;
    return 0;
}

/* In base order: leaks of every region, heap bytes given back, freed. */
static int treap_drain(struct proc *p, struct region *t, struct leak **a, int32_t *n,
                       int32_t *cap, uint64_t manager, int give_back_heap, int free_nodes)
{
    while (t != NULL) {
        if (treap_drain(p, t->l, a, n, cap, manager, give_back_heap, free_nodes) < 0)
            return -1;
        if (give_back_heap && t->has_heap)
            heap_moved(p, -region_committed(t));
        if (give_back_heap) /* destroy: the region leaves the book */
            hme__stacks_release(&p->stacks, t->stack, region_committed(t));
        if (push_leak(a, n, cap, t, manager) < 0)
            return -1;
        struct region *r = t->r;
        if (free_nodes)
            region_free(t);
        t = r;
    }
    return 0;
}

static struct region *region_remove(struct manager *g, uint64_t base)
{
    struct region *l, *mid, *r;
    if (treap_get(g->root, base) == NULL)
        return NULL;
    treap_split(g->root, base, &l, &r);
    treap_split(r, base + 1, &mid, &r);
    g->root = treap_merge(l, r);
    if (mid != NULL)
        mid->l = mid->r = NULL;
    return mid;
}

/* Manager.add: a region at an existing base replaces it in place. */
static struct region *region_add(struct manager *g, uint64_t base, int64_t size,
                                 uint64_t caller, int64_t ts, int from_statedump)
{
    struct region *x = treap_get(g->root, base);
    if (x != NULL) {
        region_setruns(x, NULL, 0);
    } else {
        x = calloc(1, sizeof(*x));
        if (x == NULL)
            return NULL;
        x->base = base;
        x->prio = replay_rand();
        struct region *l, *r;
        treap_split(g->root, base, &l, &r);
        g->root = treap_merge(treap_merge(l, x), r);
    }
    x->runs = &x->one;
    x->nruns = 0;
    x->capruns = 1;
    x->size = size;
    x->caller = caller;
    x->t_reserve = ts;
    x->unplaced = 0;
    x->from_statedump = from_statedump;
    x->has_heap = 0;
    x->heap = 0;
    x->stack = -1;
    return x;
}

/* ---- the handlers ------------------------------------------------------------ */

static int replay_temp_new(struct proc *p, uint64_t caller);

#define V(role) (c->roles[role] >= 0 ? r->v[c->roles[role]] : 0)
#define HAS(role) (c->roles[role] >= 0)

static inline int64_t round_up(unsigned __int128 v, int64_t page)
{
    unsigned __int128 p = (unsigned __int128)page;
    return (int64_t)((v + p - 1) / p * p);
}

static int replay_region_op(hme_engine *e, struct proc *p, struct manager *g,
                            const struct hme_class_desc *c, const struct hme_rec *r)
{
    int op = c->kind - HME_K_RESERVE;
    struct opstats *st = &p->ops[op];
    int64_t ts = r->ts;
    int64_t *facts = e->model->facts;
    facts[HME_FACT_BASE] = facts[HME_FACT_REGION_SIZE] = HME_UNKNOWN; /* a failure: none */
    st->count++;
    if (HAS(HME_R_START_NS)) {
        uint64_t start = V(HME_R_START_NS), end = r->clock;
        /* start_ns comes from the TSC and may be a few ns late: 0, as reader.py */
        if (0 < start && hist_add(&st->lat, start <= end ? (int64_t)(end - start) : 0) < 0)
            return -1;
    }
    int ok = !HAS(HME_R_HR) || (c->hr_ok_known && (int64_t)V(HME_R_HR) == c->hr_ok);
    if (!ok) {
        hme__stacks_drop(&p->stacks, V(HME_R_SEQ));
        st->failed++;
        if (c->kind == HME_K_COMMIT && (V(HME_R_ALLOC_TYPE) & MEM_RESERVE)) {
            struct region *x = region_remove(g, V(HME_R_ADDRESS));
            if (x != NULL) {
                hme__stacks_release(&p->stacks, x->stack, region_committed(x));
                int rc = replay_totals(e, p, g, ts, -x->size, -region_committed(x), 0);
                region_free(x);
                return rc;
            }
        }
        return 0;
    }
    /* Model._span, layout v2 */
    int64_t page = g->page_size ? (int64_t)g->page_size : 4096;
    uint64_t addr = V(HME_R_ADDRESS), size = V(HME_R_SIZE);
    int64_t base, len;
    if (c->kind == HME_K_RESERVE) {
        base = (int64_t)V(HME_R_BASE);
        if (addr)
            len = round_up((unsigned __int128)addr + size, page) - base;
        else
            len = round_up(size, page);
    } else if (c->kind == HME_K_RELEASE) {
        base = (int64_t)addr;
        len = 0;
    } else {
        base = (int64_t)(addr - addr % (uint64_t)page);
        len = round_up((unsigned __int128)addr + size, page) - base;
    }
    int64_t dr = 0, dc = 0;
    switch (c->kind) {
    case HME_K_RESERVE: {
        st->bytes += len;
        struct region *x = region_add(g, (uint64_t)base, len, V(HME_R_CALLER), ts, 0);
        if (x == NULL)
            return -1;
        x->stack = hme__stacks_take(&p->stacks, V(HME_R_SEQ), V(HME_R_CALLER));
        hme__stacks_reserve(&p->stacks, x->stack, 0);
        dr = len;
        uint64_t a = len < 0 ? (uint64_t)-len : (uint64_t)len;
        p->size_hist[a ? 64 - __builtin_clzll(a) : 0]++;
        facts[HME_FACT_BASE] = base;
        facts[HME_FACT_REGION_SIZE] = len;
        break;
    }
    case HME_K_RELEASE: {
        struct region *x = region_remove(g, (uint64_t)base);
        if (x == NULL) {
            struct region *f = treap_find(g->root, (uint64_t)base);
            if (f != NULL)
                x = region_remove(g, f->base);
        }
        if (x == NULL) {
            p->untracked++;
            manager_lost(g); /* a region the replay never saw */
            st->bytes += len;
            facts[HME_FACT_BASE] = (int64_t)(addr - addr % (uint64_t)page); /* its base page (S7) */
            break;
        }
        facts[HME_FACT_BASE] = (int64_t)x->base;
        facts[HME_FACT_REGION_SIZE] = x->size;
        int64_t cb = region_committed(x);
        if (x->has_heap)
            heap_moved(p, -cb);
        hme__stacks_release(&p->stacks, x->stack, cb);
        st->bytes += len ? len : x->size;
        dr = -x->size;
        dc = -cb;
        if (!x->from_statedump) {
            p->lifetimes++;
            int64_t life = ts - x->t_reserve;
            if (life <= e->temporary_ns) {
                int32_t k = map_get(&p->temp, x->caller);
                if (k < 0) {
                    if (replay_temp_new(p, x->caller) < 0) {
                        region_free(x);
                        return -1;
                    }
                    k = p->ntemp - 1;
                }
                p->t_n[k] += 1;
                p->t_bytes[k] += x->size;
                if (hist_add(&p->temp_life, life) < 0) {
                    region_free(x);
                    return -1;
                }
            }
        }
        region_free(x);
        break;
    }
    case HME_K_COMMIT:
    case HME_K_DECOMMIT: {
        if (c->kind == HME_K_COMMIT)
            hme__stacks_drop(&p->stacks, V(HME_R_SEQ));
        struct region *x = treap_find(g->root, (uint64_t)base);
        facts[HME_FACT_BASE] = base;
        facts[HME_FACT_REGION_SIZE] = len;
        if (c->kind == HME_K_DECOMMIT && size == 0) {
            /* size 0: the whole region (S6), which starts at that page */
            if (x != NULL) {
                len = facts[HME_FACT_REGION_SIZE] = x->size;
                base = facts[HME_FACT_BASE] = (int64_t)x->base;
            } else {
                facts[HME_FACT_REGION_SIZE] = HME_UNKNOWN;
            }
        }
        st->bytes += len;
        if (x == NULL) {
            p->untracked++;
            manager_lost(g); /* a region the replay never saw */
        } else if (c->kind == HME_K_COMMIT) {
            if (region_commit(x, base, base + len, &dc) < 0)
                return -1;
        } else {
            int64_t d;
            if (region_decommit(x, base, base + len, &d) < 0)
                return -1;
            dc = -d;
        }
        if (x != NULL) {
            hme__stacks_move(&p->stacks, x->stack, dc);
            if (x->has_heap)
                heap_moved(p, dc);
        }
        break;
    }
    case HME_K_QUERY:
        break; /* the event names the run it found */
    default:
        st->bytes += len;
        facts[HME_FACT_BASE] = base;
        facts[HME_FACT_REGION_SIZE] = len;
    }
    return replay_totals(e, p, g, ts, dr, dc, 0);
}

/* A new call site of temporary regions (first-seen order, as a dict keeps it). */
static int replay_temp_new(struct proc *p, uint64_t caller)
{
    if (p->ntemp == p->captemp) {
        int32_t cap = p->captemp ? p->captemp * 2 : 8;
        uint64_t *a = realloc(p->t_caller, sizeof(*a) * (size_t)cap);
        if (a == NULL)
            return -1;
        p->t_caller = a;
        int64_t *b = realloc(p->t_n, sizeof(*b) * (size_t)cap);
        if (b == NULL)
            return -1;
        p->t_n = b;
        b = realloc(p->t_bytes, sizeof(*b) * (size_t)cap);
        if (b == NULL)
            return -1;
        p->t_bytes = b;
        p->captemp = cap;
    }
    if (map_put(&p->temp, caller, p->ntemp) < 0)
        return -1;
    p->t_caller[p->ntemp] = caller;
    p->t_n[p->ntemp] = 0;
    p->t_bytes[p->ntemp] = 0;
    p->ntemp++;
    return 0;
}

static struct heap *replay_heap(struct proc *p, uint64_t addr)
{
    int32_t i = map_get(&p->heaps, addr);
    if (i >= 0)
        return &p->hps[i];
    if (GROW(p->hps, p->nhps, p->caphps) < 0)
        return NULL;
    i = p->nhps++;
    struct heap *h = &p->hps[i];
    memset(h, 0, sizeof(*h));
    h->addr = addr;
    h->alive = 1;
    h->order = p->heap_order++;
    if (map_init(&h->live, 16) < 0 || map_put(&p->heaps, addr, i) < 0)
        return NULL;
    p->heaps_n++;
    return h;
}

static int block_cmp(const void *a, const void *b)
{
    const struct block *x = a, *y = b;
    return x->order < y->order ? -1 : x->order > y->order;
}

/* h.live.values() into the process's heap leaks, in insertion order; the heap dies. */
static int heap_leak_all(struct proc *p, struct heap *h)
{
    int32_t first = p->nhleaks;
    for (uint32_t i = 0; i < h->live.cap; i++) {
        int32_t b = h->live.vals[i];
        if (b < 0)
            continue;
        if (GROW(p->hleaks, p->nhleaks, p->caphleaks) < 0)
            return -1;
        p->hleaks[p->nhleaks++] = p->blocks[b];
        p->blocks[b].order = p->freeblock;
        p->freeblock = b;
    }
    if (p->nhleaks > first)
        qsort(p->hleaks + first, (size_t)(p->nhleaks - first), sizeof(struct block), block_cmp);
    map_free(&h->live);
    h->alive = 0;
    map_del(&p->heaps, h->addr);
    return 0;
}

static int replay_heap_event(hme_engine *e, struct proc *p, const struct hme_class_desc *c,
                             const struct hme_rec *r, const char *blob)
{
    uint64_t haddr = V(HME_R_HEAP);
    switch (c->kind) {
    case HME_K_MALLOC_CREATE: {
        int32_t i = map_get(&p->heaps, haddr);
        if (i >= 0 && heap_leak_all(p, &p->hps[i]) < 0)
            return -1;
        return replay_heap(p, haddr) == NULL ? -1 : 0;
    }
    case HME_K_MALLOC_DESTROY: {
        struct heap *h = replay_heap(p, haddr);
        return h == NULL ? -1 : heap_leak_all(p, h);
    }
    case HME_K_MALLOC_ALLOC: {
        hme__stacks_drop(&p->stacks, V(HME_R_SEQ)); /* HeapBlock.stack: not reported */
        struct heap *h = replay_heap(p, haddr);
        if (h == NULL)
            return -1;
        p->allocs++;
        int64_t size = (int64_t)V(HME_R_SIZE);
        p->alloc_bytes += size;
        uint64_t addr = V(HME_R_ADDRESS);
        int32_t b = map_get(&h->live, addr);
        int64_t order;
        if (b >= 0) {
            p->unknown_frees++; /* its free was lost: count the block once */
            order = p->blocks[b].order;
        } else {
            if (p->freeblock >= 0) {
                b = p->freeblock;
                p->freeblock = (int32_t)p->blocks[b].order;
            } else {
                if (GROW(p->blocks, p->nblocks, p->capblocks) < 0)
                    return -1;
                b = p->nblocks++;
            }
            if (map_put(&h->live, addr, b) < 0)
                return -1;
            order = p->block_order++;
        }
        struct block *k = &p->blocks[b];
        k->heap = haddr;
        k->address = addr;
        k->size = size;
        k->caller = V(HME_R_CALLER);
        k->ts = r->ts;
        k->line = HAS(HME_R_LINE) ? (int64_t)V(HME_R_LINE) : 0;
        k->file = NULL;
        if (HAS(HME_R_FILE)) {
            uint64_t s = V(HME_R_FILE);
            size_t n = (size_t)(s & 0xffffffffu);
            if (n > 0 && c->keep_strings) {
                k->file = replay_intern(e->model, blob + (s >> 32), n);
                if (k->file == NULL)
                    return -1;
            }
        }
        if (!HAS(HME_R_FILE) && HAS(HME_R_SEQ)) {
            int64_t seq = (int64_t)V(HME_R_SEQ);
            for (int i = 0; i < DEBUG_PENDING; i++) {
                if (p->dbg[i].seq == seq) {
                    k->file = p->dbg[i].file;
                    k->line = p->dbg[i].line;
                    p->dbg[i].seq = 0;
                    break;
                }
            }
        }
        k->order = order;
        return 0;
    }
    case HME_K_MALLOC_FREE: {
        uint64_t addr = V(HME_R_ADDRESS);
        if (!addr)
            return 0;
        struct heap *h = replay_heap(p, haddr);
        if (h == NULL)
            return -1;
        p->frees++;
        int32_t b = map_get(&h->live, addr);
        if (b < 0) {
            p->unknown_frees++;
        } else {
            map_del(&h->live, addr);
            p->blocks[b].order = p->freeblock;
            p->freeblock = b;
        }
        return 0;
    }
    case HME_K_MALLOC_REGION: {
        if (!V(HME_R_LIVE))
            return 0;
        if (replay_heap(p, haddr) == NULL)
            return -1;
        int32_t i = HAS(HME_R_MANAGER) ? map_get(&p->managers, V(HME_R_MANAGER)) : p->none_manager;
        if (i < 0)
            return 0;
        struct region *x = treap_get(p->mgrs[i].root, V(HME_R_BASE));
        if (x == NULL)
            return 0;
        if (!x->has_heap) {
            x->has_heap = 1;
            x->heap = haddr;
            heap_moved(p, region_committed(x));
        }
        return 0;
    }
    default:
        return 0;
    }
}

/* ---- seq order ----------------------------------------------------------------
 *
 * Streams are merged by timestamp, but a process's events are replayed in the
 * order of their `seq` (reorder.py is the same rule in Python; the
 * differential test compares both).  An event whose seq is past the next one
 * expected waits until the missing ones arrive, or until the merge is
 * REORDER_WINDOW_NS past it, or while more than REORDER_MAX events wait: then
 * the missing seqs are taken for lost and the lowest waiting event goes.  An
 * event whose seq is below the next one expected (it came too late) is
 * replayed when it arrives.  Companion events (stack, malloc_debug: the seq
 * of their operation) and events without a seq pass at once.  Memory: at most
 * REORDER_MAX waiting events.
 */
#define REORDER_WINDOW_NS 100000000LL
#define REORDER_MAX 65536

static int replay_event(hme_engine *e, int32_t pi, const struct hme_rec *r, const char *blob);

static int held_before(const struct held *a, const struct held *b)
{
    return a->seq < b->seq || (a->seq == b->seq && a->order < b->order);
}

static void held_pop(struct proc *p)
{
    struct held *h = p->held;
    h[0] = h[--p->nheld];
    int32_t i = 0, n = p->nheld;
    for (;;) {
        int32_t l = 2 * i + 1, k = i;
        if (l < n && held_before(&h[l], &h[k]))
            k = l;
        if (l + 1 < n && held_before(&h[l + 1], &h[k]))
            k = l + 1;
        if (k == i)
            return;
        struct held t = h[i];
        h[i] = h[k];
        h[k] = t;
        i = k;
    }
}

/* Copy the event with its strings, then wait. */
static int held_push(hme_engine *e, struct proc *p, const struct hme_rec *r, const char *blob,
                     uint64_t seq)
{
    struct hme_model *m = e->model;
    const struct hme_class_desc *c = &e->classes[r->cls];
    if (GROW(p->held, p->nheld, p->capheld) < 0)
        return -1;
    struct held x = {.r = *r, .blob = NULL, .seq = seq, .order = m->held_order++};
    size_t need = r->procname != NULL ? strlen(r->procname) + 1 : 0;
    int32_t nv = c->nfields < HME_NV ? c->nfields : HME_NV;
    for (int32_t i = 0; i < nv; i++)
        if (c->fields[i].kind != HME_F_UINT && c->fields[i].kind != HME_F_SINT)
            need += (size_t)(r->v[i] & 0xffffffffu);
    if (need > 0) {
        if ((x.blob = malloc(need)) == NULL)
            return -1;
        size_t at = 0;
        for (int32_t i = 0; i < nv; i++) {
            if (c->fields[i].kind == HME_F_UINT || c->fields[i].kind == HME_F_SINT)
                continue;
            uint64_t off = r->v[i] >> 32, len = r->v[i] & 0xffffffffu;
            memcpy(x.blob + at, blob + off, len);
            x.r.v[i] = (uint64_t)at << 32 | len;
            at += len;
        }
        if (r->procname != NULL) {
            memcpy(x.blob + at, r->procname, strlen(r->procname) + 1);
            x.r.procname = x.blob + at;
        }
    }
    struct held *h = p->held;
    int32_t i = p->nheld++;
    h[i] = x;
    while (i > 0) {
        int32_t up = (i - 1) / 2;
        if (!held_before(&h[i], &h[up]))
            break;
        struct held t = h[i];
        h[i] = h[up];
        h[up] = t;
        i = up;
    }
    m->held_total++;
    return 0;
}

/* Replay the lowest waiting event of process pi (`force`: whatever its seq),
 * then every one that follows it without a gap. */
static int held_release(hme_engine *e, int32_t pi, int force)
{
    struct hme_model *m = e->model;
    for (;;) {
        struct proc *p = &m->procs[pi];
        if (p->nheld == 0 || (!force && p->held[0].seq > p->next_seq))
            return 0;
        force = 0;
        struct held x = p->held[0];
        held_pop(p);
        m->held_total--;
        if (x.seq >= p->next_seq)
            p->next_seq = x.seq + (x.seq != UINT64_MAX);
        int rc = replay_event(e, pi, &x.r, x.blob);
        free(x.blob);
        if (rc < 0)
            return -1;
    }
}

/* Waited longer than the window (now - ts, without overflow on any input). */
static int held_expired(const struct held *h, int64_t now)
{
    return now > h->r.ts && (uint64_t)now - (uint64_t)h->r.ts > (uint64_t)REORDER_WINDOW_NS;
}

/* Before an event at `now`: what waited longer than the window goes. */
static int reorder_expire(hme_engine *e, int64_t now)
{
    struct hme_model *m = e->model;
    for (int32_t pi = 0; pi < m->nprocs && m->held_total > 0; pi++)
        while (m->procs[pi].nheld > 0 && held_expired(&m->procs[pi].held[0], now))
            if (held_release(e, pi, 1) < 0)
                return -1;
    return 0;
}

static int reorder_accept(hme_engine *e, int32_t pi, const struct hme_rec *r, const char *blob,
                          uint64_t seq)
{
    struct hme_model *m = e->model;
    struct proc *p = &m->procs[pi];
    if (p->has_next && seq > p->next_seq) {
        if (held_push(e, p, r, blob, seq) < 0)
            return -1;
        return m->held_total > REORDER_MAX ? held_release(e, pi, 1) : 0;
    }
    if (!p->has_next || seq == p->next_seq) {
        p->has_next = 1;
        p->next_seq = seq + (seq != UINT64_MAX);
    }
    if (replay_event(e, pi, r, blob) < 0)
        return -1;
    return held_release(e, pi, 0);
}

/* At the end of the trace: every process's waiting events, in seq order. */
static int reorder_flush(hme_engine *e)
{
    struct hme_model *m = e->model;
    for (int32_t pi = 0; pi < m->nprocs; pi++)
        while (m->procs[pi].nheld > 0)
            if (held_release(e, pi, 1) < 0)
                return -1;
    return 0;
}

int hme__model_event(hme_engine *e, const struct hme_rec *r, const char *blob)
{
    struct hme_model *m = e->model;
    if (m->held_total > 0 && reorder_expire(e, r->ts) < 0)
        return -1;
    const struct hme_class_desc *c = &e->classes[r->cls];
    const char *pname = r->procname;
    char buf[64];
    if (c->roles[HME_R_PROCNAME] >= 0) {
        /* lttng_ust_statedump:procname: its payload names the process */
        uint64_t s = r->v[c->roles[HME_R_PROCNAME]];
        size_t n = (size_t)(s & 0xffffffffu);
        if (n >= sizeof(buf))
            n = sizeof(buf) - 1;
        memcpy(buf, blob + (s >> 32), n);
        buf[n] = 0;
        pname = buf;
    }
    int32_t host = e->traces[c->trace].host;
    int32_t pi = replay_process(e, host, r->has_pid, r->pid, pname,
                                c->roles[HME_R_PROCNAME] >= 0);
    if (pi < 0)
        return -1;
    if (c->ordered && HAS(HME_R_SEQ))
        return reorder_accept(e, pi, r, blob, V(HME_R_SEQ));
    return replay_event(e, pi, r, blob);
}

/* One event of process pi, in its process's seq order. */
static int replay_apply(hme_engine *e, int32_t pi, const struct hme_rec *r, const char *blob)
{
    struct hme_model *m = e->model;
    const struct hme_class_desc *c = &e->classes[r->cls];
    if (c->kind == HME_K_FWD_OTHER)
        return hme__fwd_push(e, r, blob, pi, NULL);
    struct proc *p = &m->procs[pi];
    if (c->kind == HME_K_MALLOC_DEBUG) {
        struct debug_pending *d = &p->dbg[p->dbg_next];
        p->dbg_next = (p->dbg_next + 1) % DEBUG_PENDING;
        d->seq = HAS(HME_R_SEQ) ? (int64_t)V(HME_R_SEQ) : 0;
        d->line = HAS(HME_R_LINE) ? (int64_t)V(HME_R_LINE) : 0;
        d->file = NULL;
        if (HAS(HME_R_FILE)) {
            uint64_t s = V(HME_R_FILE);
            size_t n = (size_t)(s & 0xffffffffu);
            if (n > 0 && (d->file = replay_intern(m, blob + (s >> 32), n)) == NULL)
                return -1;
        }
        return 0;
    }
    int64_t ts = r->ts;
    if (c->kind == HME_K_STACK) {
        /* T7: counted, but its seq is the op's that follows (stacks.py, Model.feed) */
        p->st.events++;
        m->all.events++;
        if (c->name_id >= 0 && c->name_id < HME_MAX_NAMES) {
            p->st.by_name[c->name_id]++;
            m->all.by_name[c->name_id]++;
        }
        if (!HAS(HME_R_FRAMES))
            return 0;
        uint64_t s = V(HME_R_FRAMES);
        return hme__stacks_event(&p->stacks, V(HME_R_SEQ), blob + (s >> 32),
                                 (size_t)(s & 0xffffffffu));
    }
    if (HAS(HME_R_SEQ)) {
        int64_t seq = (int64_t)V(HME_R_SEQ);
        if (p->seq_count == 0) {
            p->seq_min = p->seq_max = seq;
        } else {
            if (seq < p->seq_min)
                p->seq_min = seq;
            if (seq > p->seq_max) {
                if ((uint64_t)seq - (uint64_t)p->seq_max > 1) {
                    /* Process.lost_events: a gap, events of the process are missing */
                    for (int32_t i = 0; i < p->nmgrs; i++)
                        if (p->mgrs[i].alive)
                            manager_lost(&p->mgrs[i]);
                }
                p->seq_max = seq;
            }
        }
        p->seq_count++;
    }
    p->st.events++;
    m->all.events++;
    if (c->name_id >= 0 && c->name_id < HME_MAX_NAMES) {
        p->st.by_name[c->name_id]++;
        m->all.by_name[c->name_id]++;
    }
    stats_touch(&p->st, ts);
    stats_touch(&m->all, ts);
    if (c->kind >= HME_K_MALLOC_ALLOC)
        return replay_heap_event(e, p, c, r, blob);
    struct manager *g = replay_manager(e, p, HAS(HME_R_MANAGER), V(HME_R_MANAGER), ts);
    if (g == NULL)
        return -1;
    g->last_ts = ts;
    switch (c->kind) {
    case HME_K_FWD:
        return hme__fwd_push(e, r, blob, pi, NULL);
    case HME_K_TOTALS: {
        /* Model._resync: the library's books set the replay's only when it
         * cannot be exact */
        g->totals_known = 1;
        if (g->replay == REPLAY_EXACT)
            return 0;
        if (g->replay == REPLAY_LATE)
            g->replay = REPLAY_EXACT;
        int64_t dr = HAS(HME_R_RESERVED) ? (int64_t)V(HME_R_RESERVED) - g->reserved : 0;
        int64_t dc = HAS(HME_R_COMMITTED) ? (int64_t)V(HME_R_COMMITTED) - g->committed : 0;
        return replay_totals(e, p, g, ts, dr, dc, 0);
    }
    case HME_K_MEMSTATE: {
        if (!g->has_state) {
            /* the state before the first change held since the manager began */
            g->has_state = 1;
            g->state = (int64_t)V(HME_R_OLD_STATE);
            g->state_since = g->created >= 0 ? g->created : g->first_ts;
        }
        /* Manager.set_state */
        if (add_statens(&g->sns, &g->nsns, &g->capsns, g->state, ts - g->state_since) < 0)
            return -1;
        g->state = (int64_t)V(HME_R_STATE);
        g->state_since = ts;
        return hme__fwd_push(e, r, blob, pi, NULL);
    }
    case HME_K_CREATE:
        g->created = ts;
        g->state_since = ts;
        g->totals_known = 1;
        g->replay = REPLAY_EXACT;
        g->commit_limit = V(HME_R_COMMIT_LIMIT);
        if (g->commit_limit) {
            int found = 0;
            for (int32_t i = 0; i < p->nlimits; i++)
                found |= p->limits[i] == g->commit_limit;
            if (!found) {
                if (GROW(p->limits, p->nlimits, p->caplimits) < 0)
                    return -1;
                p->limits[p->nlimits++] = g->commit_limit;
            }
        }
        g->as_limit = V(HME_R_AS_LIMIT);
        if (V(HME_R_PAGE_SIZE))
            g->page_size = V(HME_R_PAGE_SIZE);
        return 0;
    case HME_K_DESTROY: {
        if (manager_close_state(g, ts) < 0)
            return -1;
        for (int32_t i = 0; i < g->nsns; i++)
            if (add_statens(&p->sns, &p->nsns, &p->capsns, g->sns[i].state, g->sns[i].ns) < 0)
                return -1;
        g->nsns = 0;
        g->has_state = 0;
        struct region *root = g->root;
        g->root = NULL;
        int32_t before = p->ndleaks;
        if (treap_drain(p, root, &p->dleaks, &p->ndleaks, &p->capdleaks, g->addr, 1, 1) < 0)
            return -1;
        /* T8 (Model._destroy): a manager seen from its creation shows as many
         * live regions as destroy found, or releases were lost */
        if (HAS(HME_R_REGIONS) && g->created >= 0 &&
            (int64_t)V(HME_R_REGIONS) != (int64_t)(p->ndleaks - before)) {
            if (GROW(p->mismatch, p->nmismatch, p->capmismatch) < 0)
                return -1;
            p->mismatch[p->nmismatch++] = (struct mismatch){g->addr, (int64_t)V(HME_R_REGIONS),
                                                             p->ndleaks - before};
        }
        int64_t dr = -g->reserved, dc = -g->committed;
        g->reserved = g->committed = 0;
        int64_t peak = p->st.peak_committed;
        if (stats_move(&p->st, ts, dr, dc) < 0 || stats_move(&m->all, ts, dr, dc) < 0)
            return -1;
        if (p->st.peak_committed > peak)
            hme__stacks_new_peak(&p->stacks);
        /* a later manager may reuse the address: start afresh */
        g->alive = 0;
        if (g->has_addr)
            map_del(&p->managers, g->addr);
        else
            p->none_manager = -1;
        return 0;
    }
    case HME_K_REGION_STATE: {
        uint64_t base = V(HME_R_BASE);
        if (treap_get(g->root, base) != NULL)
            return 0;
        manager_lost(g); /* a live region the replay never saw (made untraced, A5) */
        int64_t size = (int64_t)V(HME_R_REGION_SIZE);
        struct region *x = region_add(g, base, size, V(HME_R_CALLER), ts, 1);
        if (x == NULL)
            return -1;
        x->unplaced = (int64_t)V(HME_R_COMMITTED);
        x->stack = hme__stacks_take(&p->stacks, 0, V(HME_R_CALLER));
        hme__stacks_reserve(&p->stacks, x->stack, region_committed(x));
        /* a manager first seen through a statedump: its live regions are its totals */
        if (!g->totals_known)
            return replay_totals(e, p, g, ts, x->size, x->unplaced, 1);
        return 0;
    }
    default: {
        if (replay_region_op(e, p, g, c, r) < 0)
            return -1;
        /* the books after the call, when the replay knows them: not before
         * a manager met late has had its first totals (REPLAY_LATE) */
        int known = g->replay != REPLAY_LATE;
        m->facts[HME_FACT_RESERVED] = known ? g->reserved : HME_UNKNOWN;
        m->facts[HME_FACT_COMMITTED] = known ? g->committed : HME_UNKNOWN;
        return 0;
    }
    }
}

/* replay_apply, then, for export, the event to Python (those Python handles
 * went in replay_apply), a region operation with its facts. */
static int replay_event(hme_engine *e, int32_t pi, const struct hme_rec *r, const char *blob)
{
    int kind = e->classes[r->cls].kind;
    if (replay_apply(e, pi, r, blob) < 0)
        return -1;
    if (!e->forward_all || kind == HME_K_FWD || kind == HME_K_FWD_OTHER || kind == HME_K_MEMSTATE)
        return 0;
    int op = kind >= HME_K_RESERVE && kind <= HME_K_QUERY;
    return hme__fwd_push(e, r, blob, pi, op ? e->model->facts : NULL);
}

void hme__model_discarded(hme_engine *e, int trace, int64_t events, int64_t packets)
{
    struct hme_model *m = e->model;
    const struct hme_trace_desc *t = &e->traces[trace];
    m->discarded_events += events;
    m->discarded_packets += packets;
    if (!t->has_env_pid)
        return;
    int32_t i = proc_find(m, t->host, 1, t->env_pid);
    if (i < 0)
        i = proc_new(e, t->host, 1, t->env_pid, t->env_procname);
    if (i < 0)
        return;
    m->procs[i].discarded_events += events;
    m->procs[i].discarded_packets += packets;
}

static int mgr_cmp(const void *a, const void *b)
{
    const struct manager *const *x = a, *const *y = b;
    return (*x)->order < (*y)->order ? -1 : (*x)->order > (*y)->order;
}

static int heap_cmp(const void *a, const void *b)
{
    const struct heap *const *x = a, *const *y = b;
    return (*x)->order < (*y)->order ? -1 : (*x)->order > (*y)->order;
}

/* Model.finish, per process: what is still live is left at the end. */
int hme__model_finish(hme_engine *e)
{
    struct hme_model *m = e->model;
    if (reorder_flush(e) < 0)
        return -1;
    for (int32_t pi = 0; pi < m->nprocs; pi++) {
        struct proc *p = &m->procs[pi];
        hme__stacks_finish(&p->stacks);
        struct manager **live = malloc(sizeof(*live) * (size_t)(p->nmgrs + 1));
        struct heap **hl = malloc(sizeof(*hl) * (size_t)(p->nhps + 1));
        if (live == NULL || hl == NULL) {
            free(live);
            free(hl);
            return -1;
        }
        int32_t n = 0;
        for (int32_t i = 0; i < p->nmgrs; i++)
            if (p->mgrs[i].alive)
                live[n++] = &p->mgrs[i];
        qsort(live, (size_t)n, sizeof(*live), mgr_cmp);
        int rc = 0;
        for (int32_t i = 0; i < n && rc == 0; i++) {
            if (p->st.last_ts >= 0)
                rc = manager_close_state(live[i], p->st.last_ts);
            if (rc == 0)
                rc = treap_drain(p, live[i]->root, &p->leaks, &p->nleaks, &p->capleaks,
                                 live[i]->addr, 0, 0);
        }
        for (int32_t i = 0; i < n && rc == 0; i++) {
            for (int32_t k = 0; k < live[i]->nsns && rc == 0; k++)
                rc = add_statens(&p->sns, &p->nsns, &p->capsns, live[i]->sns[k].state,
                                 live[i]->sns[k].ns);
            live[i]->nsns = 0;
            live[i]->has_state = 0;
        }
        int32_t nh = 0;
        p->hleaks_at_end = p->nhleaks;
        for (int32_t i = 0; i < p->nhps; i++)
            if (p->hps[i].alive)
                hl[nh++] = &p->hps[i];
        qsort(hl, (size_t)nh, sizeof(*hl), heap_cmp);
        for (int32_t i = 0; i < nh && rc == 0; i++)
            rc = heap_leak_all(p, hl[i]);
        free(live);
        free(hl);
        if (rc < 0)
            return -1;
    }
    return 0;
}

/* ---- results ------------------------------------------------------------------ */

int64_t hme_nprocs(hme_engine *e)
{
    return e->model->nprocs;
}

int64_t hme_model_discarded(hme_engine *e, int packets)
{
    return packets ? e->model->discarded_packets : e->model->discarded_events;
}

static struct proc *result_proc(hme_engine *e, int64_t i)
{
    return i >= 0 && i < e->model->nprocs ? &e->model->procs[i] : NULL;
}

static void stats_info(const struct stats *st, struct hme_proc_info *o)
{
    o->events = st->events;
    o->first_ts = st->first_ts;
    o->last_ts = st->last_ts;
    o->managers = st->managers;
    o->reserved = st->reserved;
    o->committed = st->committed;
    o->peak_reserved = st->peak_reserved;
    o->peak_reserved_ts = st->peak_reserved_ts;
    o->peak_committed = st->peak_committed;
    o->peak_committed_ts = st->peak_committed_ts;
    o->heap_at_peak = st->heap_at_peak;
    o->nsamples = st->ns;
}

int hme_proc(hme_engine *e, int64_t i, struct hme_proc_info *o)
{
    memset(o, 0, sizeof(*o));
    if (i < 0) {
        stats_info(&e->model->all, o);
        return 0;
    }
    struct proc *p = result_proc(e, i);
    if (p == NULL)
        return -1;
    stats_info(&p->st, o);
    o->host = p->host;
    o->has_pid = p->has_pid;
    o->pid = p->pid;
    o->procname = p->procname;
    o->seq_min = p->seq_min;
    o->seq_max = p->seq_max;
    o->seq_count = p->seq_count;
    o->discarded_events = p->discarded_events;
    o->discarded_packets = p->discarded_packets;
    o->untracked = p->untracked;
    o->lifetimes = p->lifetimes;
    o->heaps = p->heaps_n;
    o->allocs = p->allocs;
    o->frees = p->frees;
    o->alloc_bytes = p->alloc_bytes;
    o->unknown_frees = p->unknown_frees;
    o->heap_committed = p->heap_committed;
    o->heap_peak = p->heap_peak;
    o->nleaks = p->nleaks;
    o->nleaks_at_destroy = p->ndleaks;
    o->nheap_leaks = p->nhleaks;
    o->ntemporary = p->ntemp;
    int64_t live = 0;
    for (int32_t k = 0; k < p->nmgrs; k++)
        live += p->mgrs[k].alive;
    o->nlive_managers = live;
    memcpy(o->size_hist, p->size_hist, sizeof(o->size_hist));
    return 0;
}

static void hist_info(const struct hist *h, struct hme_op_info *o, int64_t *buckets)
{
    o->n = h->n;
    o->max = h->max;
    o->total = h->total;
    o->nbuckets = hist_buckets(h, buckets);
}

int hme_op(hme_engine *e, int64_t i, int op, struct hme_op_info *o, int64_t *buckets)
{
    struct proc *p = result_proc(e, i);
    if (p == NULL || op < 0 || op >= NOPS)
        return -1;
    memset(o, 0, sizeof(*o));
    o->count = p->ops[op].count;
    o->failed = p->ops[op].failed;
    o->bytes = p->ops[op].bytes;
    hist_info(&p->ops[op].lat, o, buckets);
    return 0;
}

int hme_temporary_life(hme_engine *e, int64_t i, struct hme_op_info *o, int64_t *buckets)
{
    struct proc *p = result_proc(e, i);
    if (p == NULL)
        return -1;
    memset(o, 0, sizeof(*o));
    hist_info(&p->temp_life, o, buckets);
    return 0;
}

int hme_samples(hme_engine *e, int64_t i, int64_t *ts, int64_t *res, int64_t *com)
{
    const struct stats *st = i < 0 ? &e->model->all : (result_proc(e, i) ? &result_proc(e, i)->st : NULL);
    if (st == NULL)
        return -1;
    if (st->ns) {
        memcpy(ts, st->s_ts, sizeof(int64_t) * (size_t)st->ns);
        memcpy(res, st->s_r, sizeof(int64_t) * (size_t)st->ns);
        memcpy(com, st->s_c, sizeof(int64_t) * (size_t)st->ns);
    }
    return 0;
}

int hme_leaks(hme_engine *e, int64_t i, int at_destroy, struct hme_leak_info *o)
{
    struct proc *p = result_proc(e, i);
    if (p == NULL)
        return -1;
    const struct leak *l = at_destroy ? p->dleaks : p->leaks;
    int32_t n = at_destroy ? p->ndleaks : p->nleaks;
    for (int32_t k = 0; k < n; k++) {
        memset(&o[k], 0, sizeof(o[k]));
        o[k].base = l[k].base;
        o[k].size = (uint64_t)l[k].size;
        o[k].committed = (uint64_t)l[k].committed;
        o[k].caller = l[k].caller;
        o[k].manager = l[k].manager;
        o[k].t_reserve = l[k].t_reserve;
        o[k].from_statedump = l[k].from_statedump;
        o[k].stack = l[k].stack;
    }
    return 0;
}

int64_t hme_stacks(hme_engine *e, int64_t i)
{
    struct proc *p = result_proc(e, i);
    return p == NULL ? -1 : p->stacks.n;
}

int hme_stack(hme_engine *e, int64_t i, int32_t id, uint64_t *frames, int64_t *info)
{
    struct proc *p = result_proc(e, i);
    if (p == NULL || id < 0 || id >= p->stacks.n)
        return -1;
    const struct hme_stack *x = &p->stacks.v[id];
    memcpy(frames, p->stacks.frames + x->off, sizeof(*frames) * (size_t)x->n);
    info[0] = x->n;
    info[1] = x->committed;
    info[2] = x->regions;
    info[3] = x->peak_committed;
    info[4] = x->peak_regions;
    return 0;
}

int hme_heap_leaks(hme_engine *e, int64_t i, struct hme_block_info *o)
{
    struct proc *p = result_proc(e, i);
    if (p == NULL)
        return -1;
    for (int32_t k = 0; k < p->nhleaks; k++) {
        const struct block *b = &p->hleaks[k];
        o[k].heap = b->heap;
        o[k].address = b->address;
        o[k].size = (uint64_t)b->size;
        o[k].caller = b->caller;
        o[k].ts = b->ts;
        o[k].line = b->line;
        o[k].file = b->file;
    }
    return 0;
}

int hme_temporary(hme_engine *e, int64_t i, uint64_t *caller, int64_t *n, int64_t *bytes)
{
    struct proc *p = result_proc(e, i);
    if (p == NULL)
        return -1;
    for (int32_t k = 0; k < p->ntemp; k++) {
        caller[k] = p->t_caller[k];
        n[k] = p->t_n[k];
        bytes[k] = p->t_bytes[k];
    }
    return 0;
}

int64_t hme_state_ns(hme_engine *e, int64_t i, int64_t *state, int64_t *ns, int64_t cap)
{
    struct proc *p = result_proc(e, i);
    if (p == NULL)
        return -1;
    for (int32_t k = 0; k < p->nsns && k < cap; k++) {
        state[k] = p->sns[k].state;
        ns[k] = p->sns[k].ns;
    }
    return p->nsns;
}

int64_t hme_heap_leaks_at_end(hme_engine *e, int64_t i)
{
    struct proc *p = result_proc(e, i);
    return p == NULL ? -1 : p->hleaks_at_end;
}

int64_t hme_commit_limits(hme_engine *e, int64_t i, uint64_t *out, int64_t cap)
{
    struct proc *p = result_proc(e, i);
    if (p == NULL)
        return -1;
    for (int32_t k = 0; k < p->nlimits && k < cap; k++)
        out[k] = p->limits[k];
    return p->nlimits;
}

int64_t hme_destroy_mismatches(hme_engine *e, int64_t i, uint64_t *manager, int64_t *told,
                               int64_t *seen, int64_t cap)
{
    struct proc *p = result_proc(e, i);
    if (p == NULL)
        return -1;
    for (int32_t k = 0; k < p->nmismatch && k < cap; k++) {
        manager[k] = p->mismatch[k].manager;
        told[k] = p->mismatch[k].told;
        seen[k] = p->mismatch[k].seen;
    }
    return p->nmismatch;
}

int hme_live_managers(hme_engine *e, int64_t i, struct hme_manager_info *o)
{
    struct proc *p = result_proc(e, i);
    if (p == NULL)
        return -1;
    struct manager **live = malloc(sizeof(*live) * (size_t)(p->nmgrs + 1));
    if (live == NULL)
        return -1;
    int32_t n = 0;
    for (int32_t k = 0; k < p->nmgrs; k++)
        if (p->mgrs[k].alive)
            live[n++] = &p->mgrs[k];
    qsort(live, (size_t)n, sizeof(*live), mgr_cmp);
    for (int32_t k = 0; k < n; k++) {
        const struct manager *g = live[k];
        memset(&o[k], 0, sizeof(o[k]));
        o[k].addr = g->addr;
        o[k].has_addr = g->has_addr;
        o[k].totals_known = g->totals_known;
        o[k].reserved = g->reserved;
        o[k].committed = g->committed;
        o[k].created = g->created;
        o[k].first_ts = g->first_ts;
        o[k].last_ts = g->last_ts;
        o[k].commit_limit = g->commit_limit;
        o[k].address_space_limit = g->as_limit;
        o[k].page_size = g->page_size;
    }
    free(live);
    return 0;
}

int hme_events_by_name(hme_engine *e, int64_t i, int64_t *out)
{
    const struct stats *st = i < 0 ? &e->model->all : (result_proc(e, i) ? &result_proc(e, i)->st : NULL);
    if (st == NULL)
        return -1;
    memcpy(out, st->by_name, sizeof(st->by_name));
    return 0;
}
