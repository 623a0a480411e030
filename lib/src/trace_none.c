/* trace_none.c: the tracing facade when hostmem is built without LTTng
 * (HOSTMEM_WITH_LTTNG=OFF).  Every event is disabled; nothing is recorded. */
#include "internal.h"

bool hostmem__trace_begin(enum hostmem__op op, hostmem__trace_op_event *ev) { return false; }

uint64_t hostmem__trace_now_ns(void) { return 0; }
void hostmem__trace_order(hostmem__trace_op_event *ev, enum hostmem__op op) {}
void hostmem__trace_flush_before(uint64_t seq) {}
uint64_t hostmem__trace_clock_ns(void) { return 0; }

void hostmem__trace_region_op(const struct hostmem_manager *m, enum hostmem__op op,
                              hostmem__trace_op_event *ev, bool last) {}
void hostmem__trace_failure(const struct hostmem_manager *m, enum hostmem__op op, int32_t hr,
                            enum hostmem__reason reason, int os_errno, uintptr_t address,
                            uint64_t size, int32_t level) {}
void hostmem__trace_decision(const struct hostmem_manager *m, enum hostmem__resource resource,
                             int32_t level, uint64_t request_bytes, uint64_t current_bytes,
                             uint64_t level_ceiling, uint64_t limit,
                             enum hostmem__decision decision, uint64_t waited_ns) {}
void hostmem__trace_memory_state(const struct hostmem_manager *m, int old_state, int new_state,
                                 uint64_t committed_bytes, uint64_t limit) {}
void hostmem__trace_address_space(const struct hostmem_manager *m, enum hostmem__as_action action,
                                  uintptr_t start, uint64_t size, int32_t hr,
                                  uint64_t external_bytes) {}
void hostmem__trace_manager_create(const struct hostmem_manager *m, uint64_t commit_limit,
                                   uint64_t address_space_limit, uint64_t page_size) {}
void hostmem__trace_manager_destroy(const struct hostmem_manager *m, uint64_t regions,
                                    uint64_t reserved_bytes, uint64_t committed_bytes,
                                    uint64_t unreturned_mappings, uint64_t unreturned_bytes) {}
void hostmem__trace_flush(void) {}
void hostmem__trace_poll_statedump(struct hostmem_manager *m) {}
void hostmem__trace_region_state(const struct hostmem_manager *m, const hostmem__region_info *r) {}
void hostmem__trace_malloc_alloc(const struct hostmem_malloc *h, uintptr_t address, uint64_t size,
                                 int32_t level, uintptr_t caller, const char *file, int line) {}
void hostmem__trace_malloc_free(const struct hostmem_malloc *h, uintptr_t address, uint64_t size,
                                uintptr_t caller) {}
void hostmem__trace_malloc_heap(const struct hostmem_manager *m, const struct hostmem_malloc *h,
                                bool created, uint32_t type, uint64_t live_blocks,
                                uint64_t live_bytes) {}
void hostmem__trace_malloc_region(const struct hostmem_manager *m, const struct hostmem_malloc *h,
                                  uintptr_t base, uint64_t size, bool live) {}
static const int trace_off;
const int *const hostmem__trace_malloc_alloc_on = &trace_off;
const int *const hostmem__trace_malloc_free_on = &trace_off;
void hostmem__trace_write_watch(const struct hostmem_manager *m, uintptr_t base, uint64_t size,
                                uint64_t pages, bool reset, bool read, int32_t hr,
                                uint64_t duration_ns) {}
void hostmem__trace_guard_hit(const struct hostmem_manager *m, uintptr_t address, uintptr_t page) {}
