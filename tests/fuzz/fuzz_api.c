/*
 * fuzz_api.c: libFuzzer target.  The input is decoded by the same driver as
 * tests/model/random_ops.c (tests/model/ops.h) into one manager's life: a
 * configuration and a sequence of public calls with adversarial arguments.
 * Every call is checked against the reference model; any difference aborts
 * (after printing the calls that led to it), as does any sanitizer report.
 * The same bytes then drive the heap against its model (heap_ops.c).
 */
#include <stdint.h>
#include <stdlib.h>

#include "ops.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* Bounded so that one input stays fast; the decoder stops earlier when the bytes run out. */
    static const hm_run_opts opts = {.max_steps = 256, .verbose = 0, .catch_faults = false};
    if (hm_run(data, size, &opts, NULL))
        abort();
    if (hm_heap_run(data, size, &opts, NULL))
        abort();
    return 0;
}
