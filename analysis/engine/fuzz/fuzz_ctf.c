/*
 * fuzz_ctf.c: libFuzzer target over the C engine's decoder and replay.  The
 * input is one stream file; the layout is that of a real trace (layout.h,
 * generated from ./metadata by gen_layout.py, i.e. what engine.py hands the
 * engine).  Built with ASan + UBSan in the fuzz preset; the corpus holds the
 * stream files of a scripted-host trace.  Whatever the bytes, the engine must
 * stop with an error or read them, never touch memory it does not own.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../engine.h"
#include "layout.h"

_Static_assert(sizeof(layout_trace[0]) == sizeof(struct hme_trace_desc),
               "layout.h is stale: regenerate it with gen_layout.py");
_Static_assert(sizeof(layout_sclasses[0]) == sizeof(struct hme_stream_class_desc),
               "layout.h is stale: regenerate it with gen_layout.py");
_Static_assert(sizeof(layout_classes[0]) == sizeof(struct hme_class_desc),
               "layout.h is stale: regenerate it with gen_layout.py");

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_results(hme_engine *e)
{
    int64_t n = hme_nprocs(e);
    struct hme_proc_info pi;
    hme_proc(e, -1, &pi);
    for (int64_t i = 0; i < n; i++) {
        hme_proc(e, i, &pi);
        struct hme_op_info oi;
        for (int op = 0; op < 8; op++) {
            hme_op(e, i, op, &oi, NULL);
            int64_t *b = malloc(sizeof(int64_t) * 2 * (size_t)(oi.nbuckets + 1));
            hme_op(e, i, op, &oi, b);
            free(b);
        }
        struct hme_leak_info *l = calloc((size_t)(pi.nleaks + pi.nleaks_at_destroy + 1), sizeof(*l));
        hme_leaks(e, i, 0, l);
        hme_leaks(e, i, 1, l);
        free(l);
        struct hme_block_info *bl = calloc((size_t)pi.nheap_leaks + 1, sizeof(*bl));
        hme_heap_leaks(e, i, bl);
        free(bl);
        int64_t *s = calloc((size_t)pi.nsamples * 3 + 1, sizeof(int64_t));
        hme_samples(e, i, s, s + pi.nsamples, s + 2 * pi.nsamples);
        free(s);
        struct hme_manager_info *mi = calloc((size_t)pi.nlive_managers + 1, sizeof(*mi));
        hme_live_managers(e, i, mi);
        free(mi);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    hme_engine *e = hme_new(1, 100000000, 1);
    if (e == NULL)
        return 0;
    struct hme_trace_desc t;
    memcpy(&t, layout_trace[0], sizeof(t));
    t.env_procname = NULL;
    int ti = hme_add_trace(e, &t);
    for (int i = 0; i < LAYOUT_NSCLASSES; i++) {
        struct hme_stream_class_desc sc;
        memcpy(&sc, layout_sclasses[i], sizeof(sc));
        sc.trace = ti;
        hme_add_stream_class(e, &sc);
    }
    for (int i = 0; i < LAYOUT_NCLASSES; i++) {
        struct hme_class_desc c;
        memcpy(&c, layout_classes[i], sizeof(c));
        c.trace = ti;
        hme_add_class(e, &c);
    }
    int fd = memfd_create("stream", MFD_CLOEXEC);
    if (fd < 0 || write(fd, data, size) != (ssize_t)size) {
        if (fd >= 0)
            close(fd);
        hme_free(e);
        return 0;
    }
    char path[64];
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    if (hme_add_stream(e, ti, path, (int64_t)size) >= 0) {
        struct hme_batch b;
        int rc;
        while ((rc = hme_run(e, &b)) == 1) {
            /* Python reads every forwarded string: so do we */
            for (int64_t i = 0; i < b.n; i++)
                for (int k = 0; k < HME_NV; k++) {
                    uint64_t v = b.recs[i].v[k];
                    if ((v >> 32) + (v & 0xffffffffu) <= (uint64_t)b.blob_n)
                        (void)b.blob[(v >> 32)];
                }
        }
        if (rc == 0)
            fuzz_results(e);
    }
    hme_free(e);
    close(fd);
    return 0;
}
