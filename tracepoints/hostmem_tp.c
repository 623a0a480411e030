/*
 * hostmem_tp.c: the probes of the provider `hostmem`, built alone into
 * libhostmem-lttng.so.  Only this object links liblttng-ust; libhostmem loads
 * it at run time (trace_lttng.c), or a user preloads it.
 */
#define LTTNG_UST_TRACEPOINT_CREATE_PROBES
#include "hostmem_tp.h"
