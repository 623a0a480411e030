/*
 * ops.h: the differential driver shared by the deterministic random test
 * (random_ops.c) and the libFuzzer target (tests/fuzz/fuzz_api.c).
 *
 * hm_run() decodes a byte string into the life of one manager: a
 * configuration, then a sequence of public calls with adversarial arguments
 * (odd addresses, addresses inside / at / past regions, foreign mappings,
 * sizes from 0 to SIZE_MAX, every flag and protection bit, the three
 * levels), plus writes and reads of the committed memory.  Each call goes to
 * the library and to the reference model (model.h); the HRESULT, the out
 * values, the notifications, and after each step the whole state (a query
 * walk of every region, the statistics, the memory contents) must agree.
 *
 * The same bytes always give the same calls; where the library chooses (the
 * base of a NULL-address reservation) the driver follows it, so a byte
 * string replays the same scenario.
 *
 * HOSTMEM_MODEL_TOLERATE=peak,reset_out,low_address,foreign_run relaxes the checks of
 * deviations already reported (see ops.c), to look past them; unset, every
 * check is strict.
 */
#ifndef HOSTMEM_TEST_OPS_H
#define HOSTMEM_TEST_OPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct hm_run_opts {
    size_t max_steps;  /* stop after this many operations (0: when the bytes run out) */
    int verbose;       /* 1: print every call to stderr */
    bool catch_faults; /* prove access rights with a SIGSEGV handler (not under sanitizers) */
} hm_run_opts;

typedef struct hm_run_stats {
    size_t steps;     /* operations decoded */
    size_t calls;     /* library calls made and checked */
    size_t failures;  /* calls that returned a failure HRESULT (as the model expected) */
} hm_run_stats;

/* 0: the library agreed with the model; 1: a difference (reported on stderr,
 * with the last calls).  `stats` may be NULL. */
int hm_run(const uint8_t *data, size_t size, const hm_run_opts *opts, hm_run_stats *stats);

/* The heap (H1-H3) against its model, from the same kind of bytes
 * (heap_ops.c).  0: agreed; 1: a difference, reported on stderr. */
int hm_heap_run(const uint8_t *data, size_t size, const hm_run_opts *opts, hm_run_stats *stats);

#endif
