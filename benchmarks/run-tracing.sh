#!/usr/bin/env bash
# run-tracing.sh: what tracing costs hostmem, and what a burst of events loses.
#
#   benchmarks/run-tracing.sh [--bench PATH] [--out DIR] [--rounds N] [--quick]
#                             [--burst N] [--burst-op query|protect] [--no-burst]
#                             [--no-modes] [--shared] [--contexts LIST]
#                             [-- HOSTMEM-BENCH ARGS...]
#
# 1. Modes.  Runs hostmem-bench (default args: --only=region,pages,query,trace) with
#    no session ("none"), inside a started session whose hostmem events are
#    disabled ("disabled": enabled then disabled again, so the tracepoints are
#    registered but off), and inside a started session recording hostmem:*
#    as hostmem-profile does: its channel and its contexts, read from
#    analysis/hostmem-profile itself ("enabled"; --contexts a,b overrides
#    the contexts, to measure what one costs).  Rounds
#    rotate the order of the modes so drift hits each one alike.  Every run's
#    floors are raw syscalls that emit nothing, so they stay put while the
#    hostmem side pays for tracing.  The trace family fires a bare lttng-ust
#    event with one integer field (hostmem_bench:bare, recorded by the same
#    session): the yardstick of T6.  It also times one reserve, one release,
#    the two together, one heap alloc and one heap free, each against the
#    same call untraced and against the bare event, batch by batch in the
#    same process; from the runs with a session the report divides what one
#    event costs by what the bare event costs (T6: at most 1.5).
# 2. Burst.  --burst N operations back to back (default 1,000,000 queries, one
#    event each) recorded with the default channel (4 x 512 KiB) and with the
#    profiler's 8 x 4 MiB; events lost are read from `lttng list` (the
#    channel's discarded-event counter) and from babeltrace2's warnings, and
#    checked against the events recorded plus those discarded.
# 3. tracing_report.py turns the JSON files into the tables (and tracing.json).
#
# By default everything runs in a private mount namespace (run-isolated.sh)
# with a session daemon of its own, started here and stopped at the end:
# sessions of other users of a shared daemon would otherwise trace the "none"
# runs too.  --shared uses the machine's daemon instead (starting one if none
# runs, and leaving it running).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
bench=""
out=""
rounds=3
quick=0
burst=1000000
burst_op=query
do_burst=1
do_modes=1
shared=0
contexts_arg=""
bench_args=()
orig_args=("$@")

while [[ $# -gt 0 ]]; do
    case "$1" in
    --bench) bench=$2; shift 2 ;;
    --bench=*) bench=${1#*=}; shift ;;
    --out) out=$2; shift 2 ;;
    --out=*) out=${1#*=}; shift ;;
    --rounds) rounds=$2; shift 2 ;;
    --rounds=*) rounds=${1#*=}; shift ;;
    --quick) quick=1; shift ;;
    --burst) burst=$2; shift 2 ;;
    --burst=*) burst=${1#*=}; shift ;;
    --burst-op=*) burst_op=${1#*=}; shift ;;
    --no-burst) do_burst=0; shift ;;
    --no-modes) do_modes=0; shift ;;
    --shared) shared=1; shift ;;
    --) shift; bench_args=("$@"); break ;;
    --contexts) contexts_arg=$2; shift 2 ;;
    --contexts=*) contexts_arg=${1#*=}; shift ;;
    -h|--help) sed -n '2,35p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "run-tracing.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done

if [[ $shared -eq 0 && "${HOSTMEM_BENCH_ISOLATED:-}" != 1 ]]; then
    exec "$here/run-isolated.sh" "${BASH_SOURCE[0]}" "${orig_args[@]}"
fi

if [[ -z "$bench" ]]; then
    for c in "$here/../build/bin/hostmem-bench" "$(command -v hostmem-bench || true)"; do
        if [[ -n "$c" && -x "$c" ]]; then bench=$c; break; fi
    done
fi
if [[ -z "$bench" || ! -x "$bench" ]]; then
    echo "run-tracing.sh: hostmem-bench not found; pass --bench PATH" >&2
    exit 2
fi
bench=$(cd "$(dirname "$bench")" && pwd)/$(basename "$bench")
[[ ${#bench_args[@]} -gt 0 ]] || bench_args=(--only=region,pages,query,trace)
if [[ $quick -eq 1 ]]; then
    bench_args+=(--quick)
    [[ "$burst" -le 10000 ]] || burst=10000
    rounds=1
fi
[[ -n "$out" ]] || out=$(mktemp -d "${TMPDIR:-/tmp}/hostmem-tracing.XXXXXX")
mkdir -p "$out/modes" "$out/burst" "$out/traces"
out=$(cd "$out" && pwd)
python=/usr/bin/python3

# hostmem-profile's session: the figures are what a user of it gets.
profile="$here/../analysis/hostmem-profile"
profile_value() { # NAME -> the string constant NAME = "..." of hostmem-profile
    sed -n "s/^$1 = \"\(.*\)\"\$/\1/p" "$profile"
}
subbuf_size=$(profile_value SUBBUF_SIZE)
num_subbuf=$(profile_value SUBBUF_COUNT)
contexts=${contexts_arg:-$(profile_value CONTEXTS)}
if [[ -z "$subbuf_size" || -z "$num_subbuf" || -z "$contexts" ]]; then
    echo "run-tracing.sh: cannot read SUBBUF_SIZE, SUBBUF_COUNT and CONTEXTS from $profile" >&2
    exit 2
fi
ctx_args=()
IFS=, read -ra ctx_list <<<"$contexts"
for c in "${ctx_list[@]}"; do ctx_args+=(-t "$c"); done
echo "run-tracing.sh: profiler channel $num_subbuf x $subbuf_size, contexts $contexts" >&2

# ---- the session daemon -------------------------------------------------------
started_daemon=""
sessions=()
cleanup() {
    local s
    for s in "${sessions[@]}"; do
        lttng destroy "$s" >/dev/null 2>&1 || true
    done
    if [[ -n "$started_daemon" && "${HOSTMEM_BENCH_ISOLATED:-}" == 1 ]]; then
        kill "$started_daemon" 2>/dev/null || true
    fi
}
trap cleanup EXIT
trap "exit 130" INT TERM

# Start a daemon only when none of ours runs (a busy one may be slow to answer,
# and a second daemon would take over its sockets and break both); then wait
# until it answers.
# Isolated (run-isolated.sh), the machine's daemons are invisible to lttng but
# not to pgrep: start ours regardless, and stop it at the end.
if ! lttng list >/dev/null 2>&1; then
    if [[ "${HOSTMEM_BENCH_ISOLATED:-}" == 1 ]] || ! pgrep -u "$(id -u)" -x lttng-sessiond >/dev/null; then
        lttng-sessiond --daemonize --no-kernel
        rundir=/var/run/lttng
        [[ $(id -u) -eq 0 ]] || rundir=${LTTNG_HOME:-$HOME}/.lttng
        # The daemon writes its pid file after it detached: wait for it.
        for _ in $(seq 100); do
            started_daemon=$(cat "$rundir/lttng-sessiond.pid" 2>/dev/null || true)
            [[ -n "$started_daemon" ]] && break
            sleep 0.05
        done
        echo "run-tracing.sh: started lttng-sessiond ${started_daemon:+(pid $started_daemon)}" >&2
    fi
    for _ in $(seq 150); do
        lttng list >/dev/null 2>&1 && break
        sleep 0.1
    done
fi
session_create() { # name channel(default|profiler) events(on|off)
    local name=$1 channel=$2 events=$3
    lttng create "$name" --output="$out/traces/$name" >/dev/null
    sessions+=("$name")
    local c=()
    if [[ $channel == profiler ]]; then
        lttng enable-channel -u -s "$name" --subbuf-size="$subbuf_size" --num-subbuf="$num_subbuf" \
            hostmem >/dev/null
        c=(-c hostmem)
    fi
    lttng enable-event -u -s "$name" "${c[@]}" 'hostmem:*,hostmem_bench:*' >/dev/null
    if [[ $channel == profiler ]]; then
        # hostmem-profile's other events share its channel (and its event ids).
        lttng enable-event -u -s "$name" "${c[@]}" 'lttng_ust_statedump:*' >/dev/null
        # The contexts hostmem-profile records.
        lttng add-context -u -s "$name" "${c[@]}" "${ctx_args[@]}" >/dev/null
    fi
    if [[ $events == off ]]; then
        lttng disable-event -u -s "$name" "${c[@]}" 'hostmem:*,hostmem_bench:*' >/dev/null
    fi
    lttng start "$name" >/dev/null
}

session_discarded() { # name -> sum of the channels' discarded-event counters
    lttng list "$1" | awk '/Discarded events:/ { n += $3 } END { print n + 0 }'
}

session_destroy() {
    lttng destroy "$1" >/dev/null
    local keep=() s
    for s in "${sessions[@]}"; do [[ $s == "$1" ]] || keep+=("$s"); done
    sessions=("${keep[@]}")
}

tag="hmbench-$$"

# ---- 1. modes ---------------------------------------------------------------------
if [[ $do_modes -eq 1 ]]; then
    modes=(none disabled enabled)
    for ((r = 1; r <= rounds; r++)); do
        for ((k = 0; k < 3; k++)); do
            mode=${modes[$(((k + r - 1) % 3))]}
            name="$tag-$mode-$r"
            echo "run-tracing.sh: round $r/$rounds, mode $mode" >&2
            case $mode in
            none) ;;
            disabled) session_create "$name" profiler off ;;
            enabled) session_create "$name" profiler on ;;
            esac
            "$bench" --json --tracing-mode="$mode" "${bench_args[@]}" >"$out/modes/$mode.$r.json"
            if [[ $mode != none ]]; then
                lttng stop "$name" >/dev/null
                echo "$(session_discarded "$name")" >"$out/modes/$mode.$r.discarded"
                session_destroy "$name"
                rm -rf "$out/traces/$name"
            fi
        done
    done
fi

# ---- 2. burst -----------------------------------------------------------------------
if [[ $do_burst -eq 1 ]]; then
    for channel in default profiler; do
        name="$tag-burst-$channel"
        echo "run-tracing.sh: burst of $burst $burst_op events, $channel channel" >&2
        session_create "$name" "$channel" on
        "$bench" --burst="$burst" --burst-op="$burst_op" --json \
            --tracing-mode="enabled-$channel" >"$out/burst/$channel.bench.json"
        lttng stop "$name" >/dev/null
        discarded_lttng=$(session_discarded "$name")
        session_destroy "$name"
        recorded=$(babeltrace2 "$out/traces/$name" 2>"$out/burst/$channel.bt.err" |
            grep -v ' hostmem:totals: ' | grep -c ' hostmem:[a-z_]*: ' || true)
        discarded_bt=$({ grep -o 'discarded [0-9]* events' "$out/burst/$channel.bt.err" || true; } |
            awk '{ n += $2 } END { print n + 0 }')
        if [[ $channel == profiler ]]; then
            sub=$(numfmt --from=iec "$subbuf_size") n=$num_subbuf
        else
            sub=524288 n=4
        fi
        cat >"$out/burst/$channel.json" <<JSON
{"channel": "$channel", "subbuf_size": $sub, "num_subbuf": $n, "recorded": $recorded,
 "discarded_lttng": $discarded_lttng, "discarded_babeltrace": $discarded_bt,
 "bench": $(cat "$out/burst/$channel.bench.json")}
JSON
        rm -rf "$out/traces/$name"
    done
fi

# ---- 3. report ------------------------------------------------------------------------
"$python" "$here/tracing_report.py" "$out" | tee "$out/report.txt"
echo "run-tracing.sh: results in $out (tracing.json, report.txt)" >&2
