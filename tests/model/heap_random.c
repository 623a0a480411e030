/*
 * heap_random.c: deterministic random lives of a heap checked against its
 * model by heap_ops.c (the fuzz target decodes its input the same way).
 * HOSTMEM_HEAP_SEED, HOSTMEM_HEAP_SEQUENCES and HOSTMEM_HEAP_STEPS change the
 * run; HOSTMEM_MODEL_VERBOSE=1 prints every call.
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
    unsigned long long seed = env_num("HOSTMEM_HEAP_SEED", 20261201);
    size_t sequences = (size_t)env_num("HOSTMEM_HEAP_SEQUENCES", 8);
    size_t steps = (size_t)env_num("HOSTMEM_HEAP_STEPS", 2000);
    hm_run_opts opts = {.max_steps = steps, .verbose = (int)env_num("HOSTMEM_MODEL_VERBOSE", 0)};
    size_t len = steps * 4 + 1;
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
        buf[0] = (uint8_t)s; /* every limit, with and without MALLOC_THREADSAFE */
        hm_run_stats rs;
        int bad = hm_heap_run(buf, len, &opts, &rs);
        total_steps += rs.steps;
        total_calls += rs.calls;
        total_failures += rs.failures;
        if (bad) {
            fprintf(stderr, "FAILED: seed %llu (HOSTMEM_HEAP_SEED=%llu HOSTMEM_HEAP_SEQUENCES=1 "
                    "HOSTMEM_HEAP_STEPS=%zu reproduces it)\n", seed + s, seed + s, steps);
            free(buf);
            return 1;
        }
    }
    printf("heap_random: %zu sequences, %zu steps, %zu checked calls (%zu expected failures), "
           "seed %llu: the heap agrees with the model\n",
           sequences, total_steps, total_calls, total_failures, seed);
    free(buf);
    return 0;
}
