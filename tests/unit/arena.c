/* Arenas through the OS seam: an arena whose base is aligned to a map span
 * (16 MiB) is held by whole-span map entries; carving regions out of it must
 * still give each region its own entries. */
#include <criterion/criterion.h>
#include <string.h>

#include "internal.h"

#define SPAN ((size_t)16 << 20)

/* Reserve at NULL lands on a 16 MiB boundary (the arena's worst case). */
static int aligned_reserve(void *addr, size_t size, void **out)
{
    if (addr)
        return hostmem__os_linux.reserve(addr, size, out);
    void *p;
    int err = hostmem__os_linux.reserve(NULL, size + SPAN, &p);
    if (err)
        return err;
    uintptr_t start = (uintptr_t)p, base = (start + SPAN - 1) & ~(uintptr_t)(SPAN - 1);
    if (base > start)
        hostmem__os_linux.release(p, base - start);
    if (start + size + SPAN > base + size)
        hostmem__os_linux.release((void *)(base + size), start + size + SPAN - base - size);
    *out = (void *)base;
    return 0;
}

static hostmem__os aligned_os;

static void install(void)
{
    aligned_os = hostmem__os_linux;
    aligned_os.reserve = aligned_reserve;
    hostmem__os_set(&aligned_os);
}

static void uninstall(void) { hostmem__os_set(NULL); }

TestSuite(arena, .init = install, .fini = uninstall);

Test(arena, regions_carved_from_a_span_aligned_arena_stay_apart)
{
    hostmem_manager *m;
    cr_assert_eq(hostmem_create(NULL, &m), S_OK);
    void *p[8];
    for (int i = 0; i < 8; i++) {
        cr_assert_eq(hostmem_virtual_alloc(m, NULL, 65536, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE,
                                           eTaskCritical, &p[i]), S_OK);
        memset(p[i], i + 1, 65536);
    }
    for (int i = 0; i < 8; i++) {
        MEMORY_BASIC_INFORMATION mbi;
        SIZE_T n;
        cr_assert_eq(hostmem_virtual_query(m, p[i], &mbi, sizeof mbi, &n), S_OK);
        cr_assert_eq(mbi.AllocationBase, p[i], "region %d: AllocationBase %p", i, mbi.AllocationBase);
        cr_assert_eq(mbi.State, MEM_COMMIT);
        cr_assert_eq(((unsigned char *)p[i])[65535], i + 1);
    }
    for (int i = 0; i < 8; i++)
        cr_assert_eq(hostmem_virtual_free(m, p[i], 0, MEM_RELEASE), S_OK, "release %d", i);
    hostmem_stats st;
    hostmem_get_stats(m, &st);
    cr_assert_eq(st.region_count, 0);
    cr_assert_eq(st.committed_bytes, 0);
    hostmem_destroy(m);
}
