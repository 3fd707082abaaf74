#!/usr/bin/env bash
# --comm-dtype bf16 against fp32 on the full Fashion-MNIST (issue 17): 2 ranks, the
# mlp preset, global batch 256, EPOCHS epochs; prints both test accuracies and their
# difference in points (the target: within 0.3).
# Usage: bench/bf16_accuracy.sh [EPOCHS]   (after scripts/build.sh; needs Open MPI)
set -euo pipefail
cd "$(dirname "$0")/.."
EPOCHS=${1:-3}
for dt in fp32 bf16; do
    acc=$(mpirun --allow-run-as-root --oversubscribe -np 2 -x OPENBLAS_NUM_THREADS=1 \
        build/batchlab train --quiet --json --model mlp --batch 256 --epochs "$EPOCHS" --threads 1 \
        --comm-dtype $dt | awk -F: '/"test_accuracy"/ { gsub(/[ \t,]/, "", $2); print $2 }')
    echo "$dt $acc"
    eval "acc_$dt=$acc"
done
awk -v a="$acc_fp32" -v b="$acc_bf16" 'BEGIN { d = (b - a) * 100; printf "bf16 - fp32: %+.2f points (%s)\n", d, (d < 0 ? -d : d) <= 0.3 ? "within 0.3" : "NOT within 0.3" }'
