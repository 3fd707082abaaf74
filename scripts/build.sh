#!/usr/bin/env bash
# Configure and build into ./build (Release, warnings as errors).
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DBL_WERROR=ON >/dev/null
ninja -C build
