/*
 * meta.c: the manager's own memory -- the manager, region structs, map nodes,
 * run arrays, arena and external-range records, the statedump table -- taken
 * from the OS, never from the process heap.  A host's malloc may itself sit on
 * hostmem (A5): a heap call from inside hostmem would come back into
 * hostmem, under one of its locks, and deadlock or recurse.
 *
 * Blocks of up to META_MAX_SMALL bytes come in power-of-two classes carved
 * from chunks of META_CHUNK bytes, each at a multiple of its size (up to a
 * page: a region struct starts a cache line, a map leaf a page), each class
 * with a free list; a chunk is
 * never given back (metadata is reused by the next manager).  Larger blocks
 * are mapped and unmapped one by one.  Every block reads zero when handed out.
 *
 * One lock of its own, which nothing else is taken under; callers may hold
 * the state lock or a region lock.  Mapping a chunk is then the one syscall
 * made under those locks, once per META_CHUNK bytes of metadata (more often
 * only near RLIMIT_AS, when a whole chunk is refused and a page-sized one
 * serves the block at hand).
 */
#include <pthread.h>
#include <string.h>

#include "internal.h"

#define META_MIN_SHIFT 5u                        /* 32 bytes */
#define META_MAX_SHIFT 14u                       /* 16 KiB */
#define META_MAX_SMALL ((size_t)1 << META_MAX_SHIFT)
#define META_CLASSES (META_MAX_SHIFT - META_MIN_SHIFT + 1)
#define META_CHUNK ((size_t)64 << 10)
#define META_ALIGN_MAX ((size_t)4096)

typedef struct meta_free_block {
    struct meta_free_block *next;
} meta_free_block;

static pthread_mutex_t meta_lock = PTHREAD_MUTEX_INITIALIZER;
static meta_free_block *meta_free[META_CLASSES];
static char *meta_cur, *meta_end; /* the chunk being carved */

static void meta_atfork_prepare(void) { pthread_mutex_lock(&meta_lock); }
static void meta_atfork_release(void) { pthread_mutex_unlock(&meta_lock); }

/* Before any other handler of the library: taken last at fork, as in the code. */
__attribute__((constructor(101))) static void meta_install_atfork(void)
{
    (void)pthread_atfork(meta_atfork_prepare, meta_atfork_release, meta_atfork_release);
}

/* Blocks of [meta_cur, to) into the free lists, each at a multiple of its
 * own size, and meta_cur to `to` (meta_lock held). */
static void meta_give_back(char *to)
{
    while (to - meta_cur >= (ptrdiff_t)((size_t)1 << META_MIN_SHIFT)) {
        unsigned k = META_CLASSES - 1;
        while (((size_t)1 << (k + META_MIN_SHIFT)) > (size_t)(to - meta_cur) ||
               ((uintptr_t)meta_cur & (((size_t)1 << (k + META_MIN_SHIFT)) - 1)))
            k--;
        meta_free_block *b = (meta_free_block *)meta_cur;
        b->next = meta_free[k];
        meta_free[k] = b;
        meta_cur += (size_t)1 << (k + META_MIN_SHIFT);
    }
}

static unsigned meta_class(size_t size)
{
    unsigned shift = META_MIN_SHIFT;
    while (((size_t)1 << shift) < size)
        shift++;
    return shift - META_MIN_SHIFT;
}

static size_t meta_page_round(size_t size)
{
    size_t page = hostmem__os_caps_get()->page_size;
    return (size + page - 1) & ~(page - 1);
}

void *hostmem__meta_alloc(size_t size)
{
    if (size == 0)
        size = 1;
    if (size > META_MAX_SMALL) {
        void *p;
        size_t bytes = meta_page_round(size);
        return bytes >= size && hostmem__os_map_meta(bytes, &p) == 0 ? p : NULL;
    }
    unsigned c = meta_class(size);
    size_t bytes = (size_t)1 << (c + META_MIN_SHIFT);
    void *p = NULL;
    pthread_mutex_lock(&meta_lock);
    if (meta_free[c]) {
        p = meta_free[c];
        meta_free[c] = meta_free[c]->next;
    } else {
        /* Every block sits at a multiple of its size (up to a page), so a
         * structure of a cache line or more never straddles one line more
         * than it needs; the space skipped goes to the smaller classes. */
        size_t align = bytes < META_ALIGN_MAX ? bytes : META_ALIGN_MAX;
        size_t gap = (align - ((uintptr_t)meta_cur & (align - 1))) & (align - 1);
        if ((size_t)(meta_end - meta_cur) >= gap + bytes) {
            meta_give_back(meta_cur + gap);
        } else {
            /* The rest of the old chunk is too small for this class: it goes
             * to the smaller classes' free lists, nothing is lost. */
            meta_give_back(meta_end);
            /* When a whole chunk cannot be mapped (RLIMIT_AS nearly reached),
             * a chunk just big enough for this block: metadata must not be
             * what makes a small reservation fail where a mapping of its own
             * size would succeed (P7). */
            void *chunk;
            size_t got = META_CHUNK;
            if (hostmem__os_map_meta(got, &chunk) != 0) {
                got = meta_page_round(bytes);
                if (hostmem__os_map_meta(got, &chunk) != 0)
                    got = 0;
            }
            if (got) {
                meta_cur = chunk;
                meta_end = meta_cur + got;
            }
        }
        if ((size_t)(meta_end - meta_cur) >= bytes) {
            p = meta_cur;
            meta_cur += bytes;
        }
    }
    pthread_mutex_unlock(&meta_lock);
    if (p)
        memset(p, 0, bytes);
    return p;
}

void hostmem__meta_free(void *p, size_t size)
{
    if (!p)
        return;
    if (size == 0)
        size = 1;
    if (size > META_MAX_SMALL) {
        /* Metadata mappings are ours alone: unmapping cannot fail but for a
         * bad argument, and nothing could be done about it here. */
        (void)hostmem__os_unmap_meta(p, meta_page_round(size));
        return;
    }
    unsigned c = meta_class(size);
    meta_free_block *b = p;
    pthread_mutex_lock(&meta_lock);
    b->next = meta_free[c];
    meta_free[c] = b;
    pthread_mutex_unlock(&meta_lock);
}
