#!/usr/bin/env bash
# The test command: install dependencies, build with gcc (./build) and with
# clang (./build-clang), both warning-free (-Werror) at every ISA level, run
# the kernel tests of the clang build at every level this CPU runs, then every
# test of the gcc build through ctest, once per ISA level (name@level;
# levels this CPU lacks are reported as skipped). Fault injection runs inside
# ctest (test_faults_*). Then the hardening jobs of docs/RELIABILITY.md:
# every fuzz target for FUZZ_SECONDS (default 20) each, and the sanitizer
# suite (ASan+UBSan+LSan over the tests, TSan over the threaded ones).
# BL_TEST_QUICK=1 stops after ctest (for a quick local round; CI runs all).
# Arguments are passed to the main ctest run (e.g. -R test_train).
set -euo pipefail
cd "$(dirname "$0")/.."
t0=$(date +%s)
scripts/deps.sh
scripts/build.sh
BUILD=build-clang CC=clang scripts/build.sh >/dev/null
ctest --test-dir build-clang --output-on-failure -R '^test_kernels$'
ctest --test-dir build --output-on-failure -j2 "$@"
t1=$(date +%s)
echo "test.sh: builds and ctest took $((t1 - t0)) s"
if [ "${BL_TEST_QUICK:-0}" = 1 ]; then exit 0; fi
scripts/fuzz.sh "${FUZZ_SECONDS:-20}"
t2=$(date +%s)
echo "test.sh: fuzzing took $((t2 - t1)) s"
scripts/sanitize.sh
t3=$(date +%s)
echo "test.sh: sanitizers took $((t3 - t2)) s; all $((t3 - t0)) s"
