/*
 * destroy_host.c: a host whose destroy meets a kernel that will not unmap.
 * Under libhostmem-inject.so it reserves a 4 MiB region and a small one (an
 * arena), then makes every munmap of libhostmem fail with ENOMEM and calls
 * hostmem_destroy: the mappings must stay (nothing is unmapped behind the
 * kernel's back) and the manager_destroy event must report them.  Prints
 * "unreturned MAPPINGS BYTES" (what it expects the event to say) on success.
 */
#define _GNU_SOURCE 1
#include <hostmem/hostmem.h>

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "inject.h"

static int mapped(uintptr_t addr)
{
    FILE *f = fopen("/proc/self/maps", "r");
    char line[512];
    int found = 0;
    while (f && !found && fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx", &lo, &hi) == 2 && addr >= lo && addr < hi)
            found = 1;
    }
    if (f)
        fclose(f);
    return found;
}

int main(void)
{
    const hminj_api *j = hminj_get();
    if (!j) {
        fprintf(stderr, "destroy_host: libhostmem-inject.so is not preloaded\n");
        return 2;
    }
    hostmem_manager *m;
    void *big, *small;
    if (FAILED(hostmem_create(NULL, &m)) ||
        FAILED(hostmem_virtual_alloc(m, NULL, 4u << 20, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE, eTaskCritical,
                                     &big)) ||
        FAILED(hostmem_virtual_alloc(m, NULL, 4096, MEM_RESERVE, PAGE_READWRITE, eTaskCritical, &small))) {
        fprintf(stderr, "destroy_host: setup failed\n");
        return 1;
    }
    memset(big, 1, 4u << 20);
    int err = ENOMEM;
    j->fail_rate(HMINJ_MUNMAP, 1000000, &err, 1, HMINJ_FAIL);
    long before = j->injected(HMINJ_MUNMAP);
    hostmem_destroy(m);
    long failed = j->injected(HMINJ_MUNMAP) - before;
    j->clear();
    if (failed < 8) { /* two mappings, each asked more than once */
        fprintf(stderr, "destroy_host: destroy tried munmap %ld times\n", failed);
        return 1;
    }
    if (!mapped((uintptr_t)big) || !mapped((uintptr_t)small)) {
        fprintf(stderr, "destroy_host: a mapping the kernel refused to unmap is gone\n");
        return 1;
    }
    printf("unreturned 2 %lu\n", (unsigned long)((4u << 20) + (32u << 20)));
    return 0;
}
