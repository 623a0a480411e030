/* The kernel's two answers to "what is mapped at X" agree: the PROCMAP_QUERY
 * ioctl and /proc/self/maps, over every mapping of this process and the gaps. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"

static void same(uintptr_t addr)
{
    hostmem__os_mapping a = {0}, b = {0};
    cr_assert_eq(hostmem__os_query_maps_file(addr, &b), 0);
    int err = hostmem__os_query_ioctl(addr, &a);
    if (err == ENOTTY || err == EINVAL)
        return; /* a kernel before 6.11: only the file answers */
    cr_assert_eq(err, 0);
    cr_assert_eq(a.found, b.found, "%#lx: found", (unsigned long)addr);
    if (!a.found)
        return;
    cr_assert_eq(a.start, b.start, "%#lx: start %#lx vs %#lx", (unsigned long)addr, (unsigned long)a.start,
                 (unsigned long)b.start);
    cr_assert_eq(a.end, b.end, "%#lx: end", (unsigned long)addr);
    cr_assert_eq(a.access, b.access, "%#lx: access", (unsigned long)addr);
    cr_assert_eq(a.shared, b.shared, "%#lx: shared", (unsigned long)addr);
    cr_assert_eq(a.file, b.file, "%#lx: file", (unsigned long)addr);
    cr_assert_eq(a.image, b.image, "%#lx: image", (unsigned long)addr);
}

Test(os_query, ioctl_and_maps_file_agree)
{
    /* Some mappings of every kind: anonymous, shared, file-backed, an image. */
    char *anon = mmap(NULL, 3 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    char *shared = mmap(NULL, 4096, PROT_READ, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    int fd = open("/proc/self/exe", O_RDONLY);
    char *file = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, fd, 0);
    cr_assert(anon != MAP_FAILED && shared != MAP_FAILED && file != MAP_FAILED);
    mprotect(anon + 4096, 4096, PROT_NONE);
    uintptr_t addrs[] = {0, 4096, (uintptr_t)anon, (uintptr_t)anon + 4096, (uintptr_t)anon + 8191,
                         (uintptr_t)shared, (uintptr_t)file, (uintptr_t)&same, (uintptr_t)&addrs,
                         ((uintptr_t)1 << 47) - 4096};
    for (size_t i = 0; i < sizeof addrs / sizeof *addrs; i++)
        same(addrs[i]);
    /* Walk the whole address space mapping by mapping. */
    hostmem__os_mapping m = {0};
    unsigned steps = 0;
    for (uintptr_t at = 0; steps < 10000; steps++) {
        cr_assert_eq(hostmem__os_query_maps_file(at, &m), 0);
        if (!m.found)
            break;
        same(at);
        same(m.start);
        same(m.end - 1);
        at = m.end;
    }
    cr_assert_gt(steps, 5);
    hostmem__os_query_maps_file((uintptr_t)&same, &m);
    cr_assert(m.image, "this test's own code is an image mapping");
    hostmem__os_query_maps_file((uintptr_t)file, &m);
    cr_assert(m.file && m.image, "a file with an executable mapping here is an image");
    hostmem__os_query_maps_file((uintptr_t)anon, &m);
    cr_assert(!m.file && !m.image);
    /* MAP_SHARED | MAP_ANONYMOUS: anonymous, though the kernel gives it a file */
    hostmem__os_query_maps_file((uintptr_t)shared, &m);
    cr_assert(m.found && m.shared && !m.file && !m.image);
    munmap(anon, 3 * 4096);
    munmap(shared, 4096);
    munmap(file, 4096);
    close(fd);
}
