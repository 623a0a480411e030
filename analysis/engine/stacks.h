/*
 * stacks.h: who holds memory (R5) in the C replay: the mirror of
 * analysis/hostmem_analysis/stacks.py (StackBook), line for line.  The rule is
 * in docs/analysis.md ("Who holds memory"): a region belongs to the stack of
 * its reserve; its committed bytes count for that stack whoever commits or
 * decommits them; the peak table is taken just before the first decrease
 * that follows a new maximum of the process's committed bytes.
 */
#ifndef HME_STACKS_H
#define HME_STACKS_H

#include <stddef.h>
#include <stdint.h>

struct hme_stack {
    int64_t off;       /* first frame in hme_stacks.frames */
    int32_t n;         /* frames */
    uint32_t hash;
    int64_t committed, regions;           /* now (StackBook.held) */
    int64_t peak_committed, peak_regions; /* at the peak (StackBook.peak) */
};

struct hme_stacks {
    uint64_t *frames;
    int64_t nframes, capframes;
    struct hme_stack *v; /* by id */
    int32_t n, cap;
    int32_t *slots;      /* intern table: id + 1, 0 empty */
    uint32_t nslots;
    uint64_t *pkeys;     /* pending stack events: seq -> id (open addressing, key 0 empty) */
    int32_t *pvals;
    uint32_t npend, cappend;
    int peak_pending;
};

void hme__stacks_free(struct hme_stacks *s);
/* hostmem:stack: `len` bytes of little-endian uint64 frames for the op with `seq`. */
int hme__stacks_event(struct hme_stacks *s, uint64_t seq, const void *bytes, size_t len);
/* The stack id of the op with `seq` (its stack event, else (caller,)); -1: none. */
int32_t hme__stacks_take(struct hme_stacks *s, uint64_t seq, uint64_t caller);
void hme__stacks_drop(struct hme_stacks *s, uint64_t seq);
void hme__stacks_reserve(struct hme_stacks *s, int32_t id, int64_t committed);
void hme__stacks_move(struct hme_stacks *s, int32_t id, int64_t delta);
void hme__stacks_release(struct hme_stacks *s, int32_t id, int64_t committed);
void hme__stacks_new_peak(struct hme_stacks *s);
void hme__stacks_finish(struct hme_stacks *s);

#endif
