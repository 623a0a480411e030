/*
 * codes.h: the one list of every code hostmem names.  HRESULT names, failure
 * reasons, operations, decisions and memory states are each one X-macro list;
 * hresult.c builds the name tables from them and the LTTng provider builds
 * its enums from the same lists, so the two cannot drift.
 */
#ifndef HOSTMEM_CODES_H
#define HOSTMEM_CODES_H

/* X(name, value) */
#define HOSTMEM_HRESULT_LIST(X)                 \
    X(S_OK, 0x00000000)                         \
    X(E_NOTIMPL, 0x80004001)                    \
    X(E_NOINTERFACE, 0x80004002)                \
    X(E_POINTER, 0x80004003)                    \
    X(E_FAIL, 0x80004005)                       \
    X(E_ACCESSDENIED, 0x80070005)               \
    X(E_OUTOFMEMORY, 0x8007000E)                \
    X(E_INVALIDARG, 0x80070057)                 \
    X(HOST_E_INVALIDOPERATION, 0x80131022)      \
    X(HOST_E_CLRNOTAVAILABLE, 0x80131023)       \
    X(HOST_E_TIMEOUT, 0x80131024)               \
    X(HOST_E_NOT_OWNER, 0x80131025)             \
    X(HOST_E_ABANDONED, 0x80131026)             \
    X(HOSTMEM_E_INVALID_ADDRESS, 0x800701E7)    \
    X(HOSTMEM_E_BAD_LENGTH, 0x80070018)

/* Operations: the trace event of each, and the `op` of a failure.  X(name) */
#define HOSTMEM_OP_LIST(X) \
    X(reserve)             \
    X(commit)              \
    X(decommit)            \
    X(release)             \
    X(protect)             \
    X(reset)               \
    X(reset_undo)          \
    X(query)               \
    X(create)              \
    X(memory_load)         \
    X(register_callback)   \
    X(needs_address_space) \
    X(acquired_address_space) \
    X(released_address_space) \
    X(stats)                   \
    X(create_malloc)           \
    X(malloc_alloc)            \
    X(malloc_free)             \
    X(get_write_watch)         \
    X(reset_write_watch)

/* Why a call failed: the `reason` of a failure event.  X(name) */
#define HOSTMEM_REASON_LIST(X) \
    X(none)                    \
    X(null_pointer)            \
    X(bad_type)                \
    X(bad_protect)             \
    X(write_execute_denied)    \
    X(not_implemented)         \
    X(zero_size)               \
    X(range_wraps)             \
    X(beyond_user_space)       \
    X(low_address)             \
    X(too_large)               \
    X(misaligned)              \
    X(overlap)                 \
    X(not_in_region)           \
    X(not_region_base)         \
    X(crosses_region)          \
    X(past_region_end)         \
    X(not_committed)           \
    X(bad_length)              \
    X(limit_denied)            \
    X(data_lost)               \
    X(unknown_external)        \
    X(already_acquired)        \
    X(os_reserve)              \
    X(os_release)              \
    X(os_protect)              \
    X(os_decommit)             \
    X(os_reset)                \
    X(os_query)                \
    X(no_metadata)             \
    X(shutdown)                \
    X(abandoned)               \
    X(timeout)                 \
    X(unavailable)             \
    X(rollback_failed)         \
    X(inconsistent)            \
    X(foreign_pointer)         \
    X(interior_pointer)        \
    X(double_free)             \
    X(not_watched)             \
    X(zero_count)              \
    X(os_watch)

/* Critical-level decisions (P1-P3).  X(name) */
#define HOSTMEM_DECISION_LIST(X) \
    X(granted)                   \
    X(granted_from_reserve)      \
    X(denied)

/* What a decision or address_space event is about.  X(name) */
#define HOSTMEM_RESOURCE_LIST(X) \
    X(commit)                    \
    X(address_space)

/* address_space events.  X(name) */
#define HOSTMEM_AS_ACTION_LIST(X) \
    X(needs)                      \
    X(acquired)                   \
    X(released)

#define HOSTMEM__ENUM_OP(n) HOSTMEM_OP_##n,
#define HOSTMEM__ENUM_REASON(n) HOSTMEM_REASON_##n,
#define HOSTMEM__ENUM_DECISION(n) HOSTMEM_DECISION_##n,
#define HOSTMEM__ENUM_RESOURCE(n) HOSTMEM_RESOURCE_##n,
#define HOSTMEM__ENUM_AS(n) HOSTMEM_AS_##n,
enum hostmem__op { HOSTMEM_OP_LIST(HOSTMEM__ENUM_OP) HOSTMEM_OP_COUNT };
enum hostmem__reason { HOSTMEM_REASON_LIST(HOSTMEM__ENUM_REASON) HOSTMEM_REASON_COUNT };
enum hostmem__decision { HOSTMEM_DECISION_LIST(HOSTMEM__ENUM_DECISION) HOSTMEM_DECISION_COUNT };
enum hostmem__resource { HOSTMEM_RESOURCE_LIST(HOSTMEM__ENUM_RESOURCE) HOSTMEM_RESOURCE_COUNT };
enum hostmem__as_action { HOSTMEM_AS_ACTION_LIST(HOSTMEM__ENUM_AS) HOSTMEM_AS_COUNT };

#endif
