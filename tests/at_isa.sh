#!/usr/bin/env bash
# Runs one test with the CPU kernels forced to one ISA level (BATCHLAB_ISA),
# or exits 77, which ctest counts as skipped, when this CPU cannot run that
# level (batchlab info --json lists what the binary holds and the CPU runs).
#   at_isa.sh LEVEL BATCHLAB_CLI COMMAND [ARGS...]
set -euo pipefail
level=$1 cli=$2
shift 2
if ! "$cli" info --json | tr -d ' \t\n' | grep -q "\"isa_usable\":{[^}]*\"$level\":true"; then
    echo "ISA level $level: this CPU cannot run it; skipped"
    exit 77
fi
BATCHLAB_ISA=$level exec "$@"
