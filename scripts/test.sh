#!/usr/bin/env bash
# The test command: install dependencies, build with gcc (./build) and with
# clang (./build-clang), both warning-free (-Werror) at every ISA level, run
# the kernel tests of the clang build at every level this CPU runs, then every
# test of the gcc build through ctest, once per ISA level (name@level;
# levels this CPU lacks are reported as skipped).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
scripts/build.sh
BUILD=build-clang CC=clang scripts/build.sh >/dev/null
ctest --test-dir build-clang --output-on-failure -R '^test_kernels$'
ctest --test-dir build --output-on-failure -j2 "$@"
