/*
 * stacks.c: who holds memory (R5) in the C replay; see stacks.h.  Every
 * function mirrors the StackBook method of the same name in
 * analysis/hostmem_analysis/stacks.py.  Out of memory only loses
 * attribution (the figures of the rest of the replay do not depend on it):
 * a stack that cannot be stored is no stack (-1), as an operation without
 * a caller.
 */
#include <stdlib.h>
#include <string.h>

#include "stacks.h"

static uint32_t stacks_hash(const uint64_t *f, int32_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (int32_t i = 0; i < n; i++) {
        h ^= f[i];
        h *= 1099511628211ull;
        h ^= h >> 29;
    }
    return (uint32_t)(h ^ (h >> 32));
}

void hme__stacks_free(struct hme_stacks *s)
{
    free(s->frames);
    free(s->v);
    free(s->slots);
    free(s->pkeys);
    free(s->pvals);
    memset(s, 0, sizeof(*s));
}

static int stacks_rehash(struct hme_stacks *s, uint32_t nslots)
{
    int32_t *t = calloc(nslots, sizeof(*t));
    if (t == NULL)
        return -1;
    for (int32_t id = 0; id < s->n; id++) {
        uint32_t k = s->v[id].hash & (nslots - 1);
        while (t[k])
            k = (k + 1) & (nslots - 1);
        t[k] = id + 1;
    }
    free(s->slots);
    s->slots = t;
    s->nslots = nslots;
    return 0;
}

/* The id of the stack `f[0..n)`, added when new; -1 when out of memory. */
static int32_t stacks_intern(struct hme_stacks *s, const uint64_t *f, int32_t n)
{
    if ((uint32_t)(s->n + 1) * 2 > s->nslots && stacks_rehash(s, s->nslots ? s->nslots * 2 : 64) < 0)
        return -1;
    uint32_t h = stacks_hash(f, n), k = h & (s->nslots - 1);
    for (; s->slots[k]; k = (k + 1) & (s->nslots - 1)) {
        const struct hme_stack *x = &s->v[s->slots[k] - 1];
        if (x->hash == h && x->n == n && memcmp(s->frames + x->off, f, sizeof(*f) * (size_t)n) == 0)
            return s->slots[k] - 1;
    }
    if (s->n == s->cap) {
        int32_t cap = s->cap ? s->cap * 2 : 64;
        struct hme_stack *v = realloc(s->v, sizeof(*v) * (size_t)cap);
        if (v == NULL)
            return -1;
        s->v = v;
        s->cap = cap;
    }
    if (s->nframes + n > s->capframes) {
        int64_t cap = s->capframes ? s->capframes * 2 : 1024;
        while (cap < s->nframes + n)
            cap *= 2;
        uint64_t *fr = realloc(s->frames, sizeof(*fr) * (size_t)cap);
        if (fr == NULL)
            return -1;
        s->frames = fr;
        s->capframes = cap;
    }
    memcpy(s->frames + s->nframes, f, sizeof(*f) * (size_t)n);
    s->v[s->n] = (struct hme_stack){.off = s->nframes, .n = n, .hash = h};
    s->nframes += n;
    s->slots[k] = s->n + 1;
    return s->n++;
}

/* ---- pending stack events: seq -> id ------------------------------------------ */

static uint32_t stacks_slot(const struct hme_stacks *s, uint64_t seq)
{
    uint64_t x = seq * 0x9e3779b97f4a7c15ull;
    return (uint32_t)(x >> 32) & (s->cappend - 1);
}

static int stacks_pend_grow(struct hme_stacks *s)
{
    uint32_t cap = s->cappend ? s->cappend * 2 : 64;
    uint64_t *k = calloc(cap, sizeof(*k));
    int32_t *v = calloc(cap, sizeof(*v));
    if (k == NULL || v == NULL) {
        free(k);
        free(v);
        return -1;
    }
    uint64_t *ok = s->pkeys;
    int32_t *ov = s->pvals;
    uint32_t ocap = s->cappend;
    s->pkeys = k;
    s->pvals = v;
    s->cappend = cap;
    for (uint32_t i = 0; i < ocap; i++)
        if (ok[i]) {
            uint32_t j = stacks_slot(s, ok[i]);
            while (k[j])
                j = (j + 1) & (cap - 1);
            k[j] = ok[i];
            v[j] = ov[i];
        }
    free(ok);
    free(ov);
    return 0;
}

/* Remove seq's entry (linear probing: re-place the cluster after it). */
static int32_t stacks_pend_pop(struct hme_stacks *s, uint64_t seq)
{
    if (s->npend == 0 || seq == 0)
        return -1;
    uint32_t i = stacks_slot(s, seq);
    while (s->pkeys[i] && s->pkeys[i] != seq)
        i = (i + 1) & (s->cappend - 1);
    if (!s->pkeys[i])
        return -1;
    int32_t id = s->pvals[i];
    s->pkeys[i] = 0;
    s->npend--;
    for (uint32_t j = (i + 1) & (s->cappend - 1); s->pkeys[j]; j = (j + 1) & (s->cappend - 1)) {
        uint64_t k = s->pkeys[j];
        int32_t v = s->pvals[j];
        s->pkeys[j] = 0;
        uint32_t t = stacks_slot(s, k);
        while (s->pkeys[t])
            t = (t + 1) & (s->cappend - 1);
        s->pkeys[t] = k;
        s->pvals[t] = v;
    }
    return id;
}

int hme__stacks_event(struct hme_stacks *s, uint64_t seq, const void *bytes, size_t len)
{
    int32_t n = (int32_t)(len / 8);
    if (seq == 0 || n == 0)
        return 0;
    uint64_t f[64];
    if (n > 64)
        n = 64;
    memcpy(f, bytes, (size_t)n * 8); /* little-endian words, as the host wrote them */
    int32_t id = stacks_intern(s, f, n);
    if (id < 0)
        return 0;
    (void)stacks_pend_pop(s, seq); /* StackBook.stack_event: the latest wins */
    if ((s->npend + 1) * 2 > s->cappend && stacks_pend_grow(s) < 0)
        return 0;
    uint32_t i = stacks_slot(s, seq);
    while (s->pkeys[i])
        i = (i + 1) & (s->cappend - 1);
    s->pkeys[i] = seq;
    s->pvals[i] = id;
    s->npend++;
    return 0;
}

int32_t hme__stacks_take(struct hme_stacks *s, uint64_t seq, uint64_t caller)
{
    int32_t id = stacks_pend_pop(s, seq);
    if (id >= 0)
        return id;
    return caller ? stacks_intern(s, &caller, 1) : -1;
}

void hme__stacks_drop(struct hme_stacks *s, uint64_t seq)
{
    (void)stacks_pend_pop(s, seq);
}

/* ---- the book ------------------------------------------------------------------ */

static void stacks_settle(struct hme_stacks *s)
{
    if (!s->peak_pending)
        return;
    for (int32_t i = 0; i < s->n; i++) {
        s->v[i].peak_committed = s->v[i].committed;
        s->v[i].peak_regions = s->v[i].regions;
    }
    s->peak_pending = 0;
}

void hme__stacks_reserve(struct hme_stacks *s, int32_t id, int64_t committed)
{
    if (id < 0)
        return;
    s->v[id].committed += committed;
    s->v[id].regions++;
}

void hme__stacks_move(struct hme_stacks *s, int32_t id, int64_t delta)
{
    if (id < 0 || delta == 0)
        return;
    if (delta < 0)
        stacks_settle(s);
    s->v[id].committed += delta;
}

void hme__stacks_release(struct hme_stacks *s, int32_t id, int64_t committed)
{
    stacks_settle(s);
    if (id < 0)
        return;
    s->v[id].committed -= committed;
    s->v[id].regions--;
}

void hme__stacks_new_peak(struct hme_stacks *s)
{
    s->peak_pending = 1;
}

void hme__stacks_finish(struct hme_stacks *s)
{
    stacks_settle(s);
}
