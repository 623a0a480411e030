/*
 * opcount.c: hostmem-opcount, a fixed sequence of one operation for an
 * instruction counter (valgrind --tool=callgrind).  The kernel's work is not
 * counted there, so the instructions of hostmem_virtual_alloc / _free /
 * _query per call are the manager's own cost over the syscall, without the
 * noise of a shared machine.  See README.md ("Instruction counts").
 *
 *   hostmem-opcount OP SIZE N      OP: commit | decommit | query | query-random
 *
 * commit: N times commit [S, 2S) of a 3S reservation (decommitted again,
 * outside the counted function, in between); decommit: the reverse; query: N
 * queries inside one region; query-random: N queries of random ones of SIZE
 * live 64 KiB regions.  Exit status 0 when every call succeeded.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hostmem/hostmem.h>

static int fail(const char *what, HRESULT hr)
{
    fprintf(stderr, "hostmem-opcount: %s failed: 0x%08x\n", what, (unsigned)hr);
    return 1;
}

/* Counted separately by callgrind (--toggle-collect=opcount_*): only the
 * operation under study runs inside these.  Not static: callgrind finds them
 * by name. */
HRESULT opcount_commit(hostmem_manager *m, void *p, size_t s);
HRESULT opcount_decommit(hostmem_manager *m, void *p, size_t s);
HRESULT opcount_query(hostmem_manager *m, void *p);

__attribute__((noinline)) HRESULT opcount_commit(hostmem_manager *m, void *p, size_t s)
{
    void *q;
    return hostmem_virtual_alloc(m, p, s, MEM_COMMIT, PAGE_READWRITE, eTaskCritical, &q);
}

__attribute__((noinline)) HRESULT opcount_decommit(hostmem_manager *m, void *p, size_t s)
{
    return hostmem_virtual_free(m, p, s, MEM_DECOMMIT);
}

__attribute__((noinline)) HRESULT opcount_query(hostmem_manager *m, void *p)
{
    MEMORY_BASIC_INFORMATION mbi;
    SIZE_T n;
    return hostmem_virtual_query(m, p, &mbi, sizeof mbi, &n);
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: hostmem-opcount commit|decommit|query|query-random SIZE N\n"
                        "  commit, decommit: N times [SIZE, 2 SIZE) of a 3 SIZE reservation\n"
                        "  query: N queries inside one region; query-random: N queries of\n"
                        "  random ones of SIZE live 64 KiB regions\n");
        return 2;
    }
    const char *op = argv[1];
    size_t s = strtoull(argv[2], NULL, 0), n = strtoull(argv[3], NULL, 0);
    hostmem_manager *m;
    HRESULT hr = hostmem_create(NULL, &m);
    if (FAILED(hr))
        return fail("hostmem_create", hr);
    int rc = 0;
    if (!strcmp(op, "query-random")) {
        void **r = calloc(s, sizeof *r);
        for (size_t i = 0; i < s && !rc; i++)
            if (FAILED(hr = hostmem_virtual_alloc(m, NULL, 65536, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE,
                                                  eTaskCritical, &r[i])))
                rc = fail("reserve", hr);
        unsigned x = 1;
        for (size_t i = 0; i < n && !rc; i++) {
            x = x * 1103515245u + 12345u;
            if (FAILED(hr = opcount_query(m, (char *)r[(x >> 8) % s] + 4096)))
                rc = fail("query", hr);
        }
        free(r);
    } else {
        void *p;
        if (FAILED(hr = hostmem_virtual_alloc(m, NULL, 3 * s, MEM_RESERVE, PAGE_READWRITE, eTaskCritical, &p)))
            return fail("reserve", hr);
        char *mid = (char *)p + s;
        bool commit = !strcmp(op, "commit"), decommit = !strcmp(op, "decommit"), query = !strcmp(op, "query");
        if (!commit && !decommit && !query)
            return fail("unknown operation", E_INVALIDARG);
        if (query && FAILED(hr = opcount_commit(m, mid, s)))
            return fail("commit", hr);
        for (size_t i = 0; i < n && !rc; i++) {
            if (query) {
                if (FAILED(hr = opcount_query(m, mid)))
                    rc = fail("query", hr);
                continue;
            }
            if (FAILED(hr = commit ? opcount_commit(m, mid, s)
                                   : hostmem_virtual_alloc(m, mid, s, MEM_COMMIT, PAGE_READWRITE, eTaskCritical,
                                                           &(void *){0})))
                rc = fail("commit", hr);
            else if (FAILED(hr = decommit ? opcount_decommit(m, mid, s)
                                          : hostmem_virtual_free(m, mid, s, MEM_DECOMMIT)))
                rc = fail("decommit", hr);
        }
    }
    hostmem_destroy(m);
    return rc;
}
