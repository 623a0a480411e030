#!/bin/sh
# Bounded libFuzzer session of the hostmem API against the reference model.
#
#   tests/fuzz/run-fuzz.sh [SECONDS]        (default 60)
#
# Builds the target if needed (clang-14, -DHOSTMEM_FUZZ=ON, in $BUILD_DIR,
# default build-fuzz under the repository root), fuzzes for SECONDS starting
# from the committed corpus, writes new inputs to a temporary corpus, and prints
# executions, executions per second and coverage (libFuzzer's cov / ft).
#
# Longer runs: tests/fuzz/run-fuzz.sh 3600, or directly
#   $BUILD_DIR/bin/hostmem_fuzz_api -jobs=2 -workers=2 -max_total_time=36000 NEW_DIR tests/fuzz/corpus
# and keep what was found with
#   $BUILD_DIR/bin/hostmem_fuzz_api -merge=1 tests/fuzz/corpus NEW_DIR
# A crash leaves crash-* in the current directory: replay it with
#   $BUILD_DIR/bin/hostmem_fuzz_api crash-...   (prints the calls and the difference)
set -eu
seconds=${1:-60}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${BUILD_DIR:-$root/build-fuzz}
cc=${CC:-clang-14}
fuzzer=$build/bin/hostmem_fuzz_api

if [ ! -f "$build/CMakeCache.txt" ]; then
    CC=$cc cmake -S "$root" -B "$build" -DHOSTMEM_FUZZ=ON -DHOSTMEM_WITH_LTTNG=OFF \
        -DHOSTMEM_BUILD_TESTS=ON -DHOSTMEM_BUILD_BENCHMARKS=OFF -DHOSTMEM_BUILD_EXAMPLES=OFF >/dev/null
fi
cmake --build "$build" -j2 --target hostmem_fuzz_api >/dev/null

work=$(mktemp -d "${TMPDIR:-/tmp}/hostmem-fuzz.XXXXXX")
log=$work/fuzz.log
mkdir -p "$work/corpus"
echo "fuzzing for ${seconds}s; new inputs in $work/corpus, log in $log"
set +e
ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1} \
    "$fuzzer" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=4096 -print_final_stats=1 \
    -artifact_prefix="$work/" "$work/corpus" "$here/corpus" >"$log" 2>&1
status=$?
set -e
last=$(grep -E '^#[0-9]+' "$log" | tail -1)
echo "last status line: $last"
grep -E 'stat::number_of_executed_units|stat::average_exec_per_sec|stat::new_units_added|stat::peak_rss_mb' "$log" || true
echo "coverage: $(echo "$last" | grep -oE 'cov: [0-9]+ ft: [0-9]+')"
echo "corpus: $(ls "$work/corpus" | wc -l) new inputs (merge: $fuzzer -merge=1 $here/corpus $work/corpus)"
if [ $status -ne 0 ]; then
    echo "the fuzzer stopped with status $status: see $log and $work/crash-*" >&2
    grep -A40 'differs from the model\|ERROR: ' "$log" | head -60 >&2 || true
    exit $status
fi
