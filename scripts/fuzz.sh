#!/usr/bin/env bash
# Fuzz every parser for SECONDS each (default 20) with libFuzzer, ASan and UBSan.
#
# Configures and builds build-fuzz/ (clang, -DBL_FUZZ=ON, the whole library
# compiled with -fsanitize=fuzzer-no-link,address,undefined), then runs each
# target in tests/fuzz/ on a scratch copy of its committed corpus, so CI never
# grows the corpus. Prints one line per target; exits nonzero if any target
# crashed, hung, leaked, ran out of memory or tripped a sanitizer, after saving
# the input under build-fuzz/artifacts/ (replay it with
# build-fuzz/tests/fuzz_NAME FILE, then add it to
# tests/fuzz/corpus/NAME/ as regress-* once fixed).
#
# Usage: scripts/fuzz.sh [SECONDS] [TARGET...]
#   FUZZ_BUILD=DIR  build directory (default build-fuzz in the repository root)
#   JOBS=N          build parallelism (default: all CPUs)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
secs=${1:-20}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then targets=(csv npy idx checkpoint spec kserve cli); fi
build=${FUZZ_BUILD:-$root/build-fuzz}
jobs=${JOBS:-$(nproc)}
case $secs in '' | *[!0-9]*) echo "fuzz.sh: SECONDS must be a whole number, got '$secs'" >&2; exit 2 ;; esac

command -v clang >/dev/null || { echo "fuzz.sh: needs clang (scripts/deps.sh installs it)" >&2; exit 2; }
# -fno-sanitize-recover: a UBSan report must stop the run, or libFuzzer would
# count it as a passing input. BL_NATIVE builds the kernels once instead of per
# ISA level (the parsers are what is fuzzed); MPI stays out of the process.
flags="-fsanitize=address,undefined -fno-sanitize-recover=all -fsanitize=fuzzer-no-link"
flags+=" -fno-omit-frame-pointer -g -O1"
mkdir -p "$build"
CC=clang cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Debug -DBL_FUZZ=ON \
    -DBL_NATIVE=ON -DBL_MPI=OFF -DBL_CUDA=OFF -DCMAKE_C_FLAGS="$flags" >"$build/configure.log" 2>&1 || {
    cat "$build/configure.log" >&2
    exit 1
}
t0=$(date +%s)
ninja -C "$build" -j "$jobs" $(printf 'fuzz_%s ' "${targets[@]}") >/dev/null
echo "fuzz: built ${#targets[@]} targets in $(($(date +%s) - t0)) s ($build)"

scratch=$(mktemp -d /tmp/batchlab-fuzz.XXXXXX)
trap 'rm -rf "$scratch"' EXIT
mkdir -p "$build/artifacts"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}
export OPENBLAS_NUM_THREADS=1
failed=0
for t in "${targets[@]}"; do
    corpus=$scratch/$t
    cp -r "$root/tests/fuzz/corpus/$t" "$corpus"
    dict=()
    if [ -f "$root/tests/fuzz/$t.dict" ]; then dict=(-dict="$root/tests/fuzz/$t.dict"); fi
    log=$scratch/$t.log
    rc=0
    "$build/tests/fuzz_$t" "$corpus" "${dict[@]}" -max_total_time="$secs" -detect_leaks=1 \
        -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$build/artifacts/$t-" >"$log" 2>&1 || rc=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    # A sanitizer report that did not end the process (it should) still fails.
    if [ "$rc" -ne 0 ] || grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:' "$log"; then
        echo "fuzz $t: FAILED (exit $rc) after ${runs:-?} runs; input in $build/artifacts/; log:"
        tail -n 40 "$log" | sed 's/^/    /'
        failed=1
    else
        echo "fuzz $t: ${runs:-?} runs in $secs s, no crash"
    fi
done
exit $failed
