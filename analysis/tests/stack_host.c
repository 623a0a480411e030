/*
 * stack_host.c: a host with three call paths that commit known bytes, for
 * the stack tests (T7, R5).  Built twice: with frame pointers, and without
 * (-fomit-frame-pointer: only the unwinder finds its callers).
 *
 *   main -> load_config -> grow_cache     reserves 8 MiB, commits 3 MiB; leaked
 *   main -> build_index -> index_chunk    reserve-and-commit 2 MiB; released at the end
 *   main -> run_decoder -> decode_frame   reserves 4 MiB, commits 1 MiB in four
 *                                          commits, then decommits 256 KiB; leaked
 *   main -> run_decoder -> decode_frame -> (heap) hostmem_malloc_alloc 1000 bytes; leaked
 *
 * At the peak all three hold their bytes (cache 3 MiB, index 2 MiB, decoder
 * 1 MiB); at the end the cache holds 3 MiB and the decoder 768 KiB.  It prints
 * "ready", waits for a line on stdin (the session starts meanwhile), works,
 * prints "done".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hostmem/hostmem.h>

#define MIB (1024u * 1024u)

static hostmem_manager *m;
static hostmem_malloc *heap;
static volatile int sink; /* keeps every call a real call with work after it */

static void check(HRESULT hr, const char *what)
{
    if (FAILED(hr)) {
        fprintf(stderr, "stack_host: %s failed: 0x%08x\n", what, (unsigned)hr);
        exit(1);
    }
}

static __attribute__((noinline)) void *grow_cache(void)
{
    void *base, *p;
    check(hostmem_virtual_alloc(m, NULL, 8 * MIB, MEM_RESERVE, PAGE_READWRITE, eTaskCritical, &base),
          "cache reserve");
    check(hostmem_virtual_alloc(m, base, 3 * MIB, MEM_COMMIT, PAGE_READWRITE, eTaskCritical, &p),
          "cache commit");
    sink++;
    return base;
}

static __attribute__((noinline)) void *load_config(void)
{
    void *r = grow_cache();
    sink++;
    return r;
}

static __attribute__((noinline)) void *index_chunk(void)
{
    void *p;
    check(hostmem_virtual_alloc(m, NULL, 2 * MIB, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE,
                                eTaskCritical, &p),
          "index reserve-and-commit");
    sink++;
    return p;
}

static __attribute__((noinline)) void *build_index(void)
{
    void *r = index_chunk();
    sink++;
    return r;
}

static __attribute__((noinline)) void *decode_frame(void)
{
    void *base, *p, *block;
    check(hostmem_virtual_alloc(m, NULL, 4 * MIB, MEM_RESERVE, PAGE_READWRITE, eTaskCritical, &base),
          "decoder reserve");
    for (unsigned i = 0; i < 4; i++)
        check(hostmem_virtual_alloc(m, (char *)base + i * (MIB / 4), MIB / 4, MEM_COMMIT,
                                    PAGE_READWRITE, eTaskCritical, &p),
              "decoder commit");
    check(hostmem_malloc_alloc(heap, 1000, eTaskCritical, &block), "decoder block");
    sink++;
    return base;
}

static __attribute__((noinline)) void *run_decoder(void)
{
    void *r = decode_frame();
    sink++;
    return r;
}

int main(void)
{
    check(hostmem_create(NULL, &m), "create");
    check(hostmem_create_malloc(m, MALLOC_THREADSAFE, &heap), "create_malloc");
    printf("ready\n");
    fflush(stdout);
    char line[16];
    if (!fgets(line, sizeof line, stdin))
        return 1;
    void *cache = load_config();
    void *index = build_index();
    void *dec = run_decoder();
    /* The peak is behind us: the index goes, the decoder gives back 256 KiB. */
    check(hostmem_virtual_free(m, (char *)dec + 3 * (MIB / 4), MIB / 4, MEM_DECOMMIT), "decommit");
    check(hostmem_virtual_free(m, index, 0, MEM_RELEASE), "index release");
    (void)cache;
    printf("done\n");
    fflush(stdout);
    return 0; /* cache and decoder regions, and the block, are left live: leaks */
}
