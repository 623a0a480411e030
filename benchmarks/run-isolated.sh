#!/usr/bin/env bash
# run-isolated.sh COMMAND [ARGS...]
#
# Run COMMAND where no LTTng session but its own can trace it.  Every LTTng-UST
# application registers with the session daemon behind /var/run/lttng (root's,
# which traces every user's processes) and with the per-user one under
# $LTTNG_HOME/.lttng, and any session enabling hostmem:* there records our
# events too: a "no session" figure taken next to someone else's session is a
# "tracing enabled" figure.  This script gives COMMAND a private mount
# namespace with an empty /var/run/lttng, an empty /dev/shm and a fresh
# LTTNG_HOME, so it sees no session daemon unless it starts its own (which
# then lives and dies with the namespace's users; see run-tracing.sh).
set -euo pipefail

if [[ $# -eq 0 ]]; then
    echo "usage: $0 COMMAND [ARGS...]" >&2
    exit 2
fi
if [[ "${HOSTMEM_BENCH_ISOLATED:-}" == 1 ]]; then
    exec "$@"
fi
if ! command -v unshare >/dev/null; then
    echo "run-isolated.sh: unshare (util-linux) is needed" >&2
    exit 2
fi

home=$(mktemp -d "${TMPDIR:-/tmp}/hostmem-bench-home.XXXXXX")
trap 'rm -rf "$home"' EXIT
if [[ $(id -u) -eq 0 ]]; then
    [[ -d /var/run/lttng ]] || mkdir -p /var/run/lttng
    ns=(unshare --mount --propagation private)
else
    # A user namespace lets an unprivileged user mount in its own mount namespace.
    ns=(unshare --user --map-root-user --mount --propagation private)
fi
"${ns[@]}" env HOSTMEM_BENCH_ISOLATED=1 LTTNG_HOME="$home" bash -c '
    set -e
    if [[ -d /var/run/lttng ]]; then mount -t tmpfs hostmem-bench /var/run/lttng; fi
    mount -t tmpfs hostmem-bench /dev/shm
    exec "$@"' run-isolated "$@"
