#!/usr/bin/env bash
# The test command: install dependencies, build, run every test through ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
scripts/build.sh
ctest --test-dir build --output-on-failure -j2 "$@"
