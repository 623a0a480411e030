/*
 * random_ops.c: deterministic random sequences of every public call, checked
 * call by call against the reference model (model.h) by the shared driver
 * (ops.h).  Fixed seeds; HOSTMEM_MODEL_SEED, HOSTMEM_MODEL_SEQUENCES and
 * HOSTMEM_MODEL_STEPS change them, HOSTMEM_MODEL_VERBOSE=1 prints every call.
 *
 * Each sequence is one manager's life: the driver decodes a stream of
 * pseudo-random bytes exactly as the fuzz target decodes its input, so a
 * failing seed can be saved as a fuzz input (HOSTMEM_MODEL_DUMP=file).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "ops.h"

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static unsigned long long env_num(const char *name, unsigned long long dflt)
{
    const char *v = getenv(name);
    return v && *v ? strtoull(v, NULL, 0) : dflt;
}

int main(void)
{
    unsigned long long seed = env_num("HOSTMEM_MODEL_SEED", 20240601);
    size_t sequences = (size_t)env_num("HOSTMEM_MODEL_SEQUENCES", 16);
    size_t steps = (size_t)env_num("HOSTMEM_MODEL_STEPS", 400);
    const char *dump = getenv("HOSTMEM_MODEL_DUMP");
    hm_run_opts opts = {.max_steps = steps, .verbose = (int)env_num("HOSTMEM_MODEL_VERBOSE", 0),
                        .catch_faults = true};
    /* Each step takes at most 32 bytes: enough for every step. */
    size_t len = steps * 32 + 16;
    uint8_t *buf = malloc(len);
    size_t total_steps = 0, total_calls = 0, total_failures = 0;
    if (!buf)
        return 2;
    for (size_t s = 0; s < sequences; s++) {
        uint64_t st = seed + s;
        for (size_t k = 0; k < len; k += 8) {
            uint64_t v = splitmix(&st);
            for (size_t b = 0; b < 8 && k + b < len; b++)
                buf[k + b] = (uint8_t)(v >> (8 * b));
        }
        hm_run_stats rs;
        int bad = hm_run(buf, len, &opts, &rs);
        total_steps += rs.steps;
        total_calls += rs.calls;
        total_failures += rs.failures;
        if (bad) {
            fprintf(stderr, "FAILED: seed %llu (HOSTMEM_MODEL_SEED=%llu HOSTMEM_MODEL_SEQUENCES=1 "
                    "HOSTMEM_MODEL_STEPS=%zu reproduces it)\n", seed + s, seed + s, steps);
            if (dump) {
                FILE *f = fopen(dump, "wb");
                if (f) {
                    fwrite(buf, 1, len, f);
                    fclose(f);
                    fprintf(stderr, "input written to %s (replay with the fuzz target)\n", dump);
                }
            }
            free(buf);
            return 1;
        }
    }
    printf("random_ops: %zu sequences, %zu steps, %zu checked calls (%zu expected failures), "
           "seed %llu: the library agrees with the model\n",
           sequences, total_steps, total_calls, total_failures, seed);
    free(buf);
    return 0;
}
