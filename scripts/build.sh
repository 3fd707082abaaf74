#!/usr/bin/env bash
# Configure and build (Release, warnings as errors) into ./build, or into
# $BUILD with the compiler in $CC (e.g. BUILD=build-clang CC=clang). Extra
# arguments go to cmake, e.g. -DBL_NATIVE=ON for a -march=native build.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD:-build}
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DBL_WERROR=ON "$@" >/dev/null
ninja -C "$build"
