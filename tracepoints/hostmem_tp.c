/*
 * hostmem_tp.c: the probes of the provider `hostmem`, built alone into
 * libhostmem-lttng.so.  Only this object links liblttng-ust; libhostmem loads
 * it at run time (trace_lttng.c), or a user preloads it.
 */
#define LTTNG_UST_TRACEPOINT_CREATE_PROBES
#include "hostmem_tp.h"

#include <stddef.h>

/*
 * The region events' one-write writers (hostmem_tp.h says why).
 *
 * lttng-ust's generated probe, for an event recorder, checks that the
 * session, the channel and the event are on, evaluates the event's filter
 * if it has one, reserves the event's size in the ring buffer (the event
 * header, timestamp and contexts are the tracer's), writes each field with
 * its natural width in the order TP_FIELDS lists them -- packed, on the
 * architectures below -- and commits.  A writer here does the same with the
 * fields gathered in a packed record first, so the ring buffer receives the
 * same bytes from one write.  Anything else (a filter to evaluate, an event
 * notifier) goes to the generated probe, which handles it.
 *
 * The records mirror TP_FIELDS of hostmem_tp.h member for member; the
 * constructor below checks each record's size against the generated
 * probe's own size computation and keeps the generated probe for a class
 * whose sizes differ.
 */
#define HOSTMEM_TP_PACKED __attribute__((packed))

struct hostmem_tp_rec_head { /* HOSTMEM_TP_OP_HEAD */
    uint64_t seq;
    uint64_t manager;
    uint64_t start_ns;
    int32_t hr;
    uint64_t address;
    uint64_t caller;
} HOSTMEM_TP_PACKED;

struct hostmem_tp_rec_reserve {
    struct hostmem_tp_rec_head h;
    uint64_t size;
    uint64_t base;
    uint32_t alloc_type;
    uint32_t protect;
    int32_t level;
} HOSTMEM_TP_PACKED;

struct hostmem_tp_rec_commit {
    struct hostmem_tp_rec_head h;
    uint64_t size;
    uint32_t alloc_type;
    uint32_t protect;
    int32_t level;
} HOSTMEM_TP_PACKED;

struct hostmem_tp_rec_range {
    struct hostmem_tp_rec_head h;
    uint64_t size;
    int32_t level;
} HOSTMEM_TP_PACKED;

struct hostmem_tp_rec_release {
    struct hostmem_tp_rec_head h;
} HOSTMEM_TP_PACKED;

struct hostmem_tp_rec_protect {
    struct hostmem_tp_rec_head h;
    uint64_t size;
    uint32_t protect;
    uint32_t old_protect;
} HOSTMEM_TP_PACKED;

struct hostmem_tp_rec_query {
    struct hostmem_tp_rec_head h;
    uint64_t base;
    uint64_t region_size;
    uint32_t state;
    uint32_t protect;
} HOSTMEM_TP_PACKED;

#define HOSTMEM_TP_REC_HEAD(ev)                                                                   \
    {.seq = (ev)->seq, .manager = (ev)->manager, .start_ns = (ev)->start_ns, .hr = (ev)->hr,       \
     .address = (ev)->address, .caller = (ev)->caller}

/* Whether the one write applies: an event recorder without a filter. */
static inline int hostmem_tp_fast(const struct lttng_ust_event_common *event)
{
    return event->type == LTTNG_UST_EVENT_TYPE_RECORDER &&
           !CMM_ACCESS_ONCE(event->eval_filter);
}

/* Record `len` bytes at `rec` as one event of `event` (which records). */
static inline void hostmem_tp_record(struct lttng_ust_event_common *event, const void *rec,
                                     size_t len)
{
    struct lttng_ust_event_recorder *recorder = (struct lttng_ust_event_recorder *)event->child;
    struct lttng_ust_channel_buffer *chan = recorder->chan;
    struct lttng_ust_channel_common *common = chan->parent;

    if (caa_unlikely(!CMM_ACCESS_ONCE(common->session->active)) ||
        caa_unlikely(!CMM_ACCESS_ONCE(common->enabled)) ||
        caa_unlikely(!CMM_ACCESS_ONCE(event->enabled)))
        return;
    struct lttng_ust_probe_ctx probe_ctx = {.struct_size = sizeof probe_ctx,
                                            .ip = __builtin_return_address(0)};
    struct lttng_ust_ring_buffer_ctx ctx;
    lttng_ust_ring_buffer_ctx_init(&ctx, recorder, len, 1, &probe_ctx);
    if (chan->ops->event_reserve(&ctx) < 0)
        return;
    chan->ops->event_write(&ctx, rec, len, 1);
    chan->ops->event_commit(&ctx);
}

/* One writer per class: the record from the event's values, or the
 * generated probe when the one write does not apply. */
#define HOSTMEM_TP_WRITER(cls, ...)                                                               \
    static void hostmem_tp_write_##cls(void *tp_data, const struct hostmem_tp_op_v2 *ev)         \
    {                                                                                             \
        struct lttng_ust_event_common *event = (struct lttng_ust_event_common *)tp_data;          \
        if (caa_unlikely(!hostmem_tp_fast(event))) {                                              \
            lttng_ust__event_probe__hostmem___op_##cls(tp_data, ev);                              \
            return;                                                                               \
        }                                                                                         \
        struct hostmem_tp_rec_##cls rec = {HOSTMEM_TP_REC_HEAD(ev), __VA_ARGS__};                 \
        hostmem_tp_record(event, &rec, sizeof rec);                                               \
    }

HOSTMEM_TP_WRITER(reserve, .size = ev->size, .base = ev->base, .alloc_type = ev->alloc_type,
                  .protect = ev->protect, .level = ev->level)
HOSTMEM_TP_WRITER(commit, .size = ev->size, .alloc_type = ev->alloc_type, .protect = ev->protect,
                  .level = ev->level)
HOSTMEM_TP_WRITER(range, .size = ev->size, .level = ev->level)
HOSTMEM_TP_WRITER(release)
HOSTMEM_TP_WRITER(protect, .size = ev->size, .protect = ev->protect,
                  .old_protect = ev->old_protect)
HOSTMEM_TP_WRITER(query, .base = ev->base, .region_size = ev->region_size,
                  .state = ev->alloc_type, .protect = ev->protect)

/* Filled by the constructor, read by libhostmem after it loaded this module. */
__attribute__((visibility("default"))) struct hostmem_tp_op_writers_v2 hostmem_tp_op_writers_v2;

/* The generated probe's size of one class's payload, for the record check. */
#define HOSTMEM_TP_CLASS(k, cls)                                                                  \
    {k, lttng_ust__event_probe__hostmem___op_##cls, hostmem_tp_write_##cls,                       \
     lttng_ust__event_get_size__hostmem___op_##cls, lttng_ust__event_get_align__hostmem___op_##cls, \
     sizeof(struct hostmem_tp_rec_##cls)}

__attribute__((constructor)) static void hostmem_tp_writers_init(void)
{
    static const struct {
        enum hostmem_tp_op_class k;
        hostmem_tp_op_fn probe, write;
        size_t (*size)(size_t *dynamic_len, void *tp_data, const struct hostmem_tp_op_v2 *ev);
        size_t (*align)(const struct hostmem_tp_op_v2 *ev);
        size_t rec_size;
    } classes[] = {
        HOSTMEM_TP_CLASS(HOSTMEM_TP_OP_RESERVE, reserve),
        HOSTMEM_TP_CLASS(HOSTMEM_TP_OP_COMMIT, commit),
        HOSTMEM_TP_CLASS(HOSTMEM_TP_OP_RANGE, range),
        HOSTMEM_TP_CLASS(HOSTMEM_TP_OP_RELEASE, release),
        HOSTMEM_TP_CLASS(HOSTMEM_TP_OP_PROTECT, protect),
        HOSTMEM_TP_CLASS(HOSTMEM_TP_OP_QUERY, query),
    };
    const struct hostmem_tp_op_v2 zero = {0};
    for (size_t i = 0; i < sizeof classes / sizeof classes[0]; i++) {
        size_t dynamic_len[1];
        int same = classes[i].size(dynamic_len, NULL, &zero) == classes[i].rec_size &&
                   classes[i].align(&zero) == 1;
#ifdef LTTNG_UST_RING_BUFFER_NATURAL_ALIGN
        same = 0; /* fields padded to their alignment: the generated probe knows how */
#endif
        hostmem_tp_op_writers_v2.op[classes[i].k].probe = classes[i].probe;
        hostmem_tp_op_writers_v2.op[classes[i].k].write = same ? classes[i].write : classes[i].probe;
    }
}
