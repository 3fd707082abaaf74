#!/usr/bin/env bash
# Runs a test on the CUDA backend (BATCHLAB_DEVICE=cuda), or skips it (exit 77,
# which ctest counts as skipped) where no GPU can be used; `batchlab info`
# says why, and that reason is printed.
# Usage: on_cuda.sh BATCHLAB COMMAND [ARGS...]
set -u
BL=$1
shift
info=$("$BL" info --json 2>&1 | tr -d ' \t\n')
if ! grep -q '"cuda":true' <<<"$info"; then
    echo "skipped: no usable GPU ($(sed -n 's/.*"cuda_status":"\([^"]*\)".*/\1/p' <<<"$info"))"
    exit 77
fi
export BATCHLAB_DEVICE=cuda
exec "$@"
