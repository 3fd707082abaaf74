#!/usr/bin/env bash
# Instructions per training step of two batchlab builds, side by side: a
# noise-free A/B for changes whose cost is a few instructions per call (a
# shared 2-core VM cannot resolve 3% in wall-clock time; see BENCHMARKS.md).
#
#   bench/step_instructions.sh OLD_BATCHLAB NEW_BATCHLAB [DATA_DIR]
#
# Each build trains the mlp preset for N and 3N updates under callgrind, one
# thread, no prefetch thread; the difference over 2N updates is the per-step
# count (loading, start-up and the final evaluation cancel out). Environment:
# MODEL (mlp), BATCHES (1 8), N (5). DATA_DIR defaults to the committed
# Fashion-MNIST sample. Needs valgrind.
set -euo pipefail
old=$1 new=$2
data=${3:-$(cd "$(dirname "$0")/.." && pwd)/tests/data/fmnist-sample}
model=${MODEL:-mlp} n=${N:-5}
count() { # BINARY B STEPS -> instructions (callgrind's Collected)
    OPENBLAS_NUM_THREADS=1 valgrind --tool=callgrind --callgrind-out-file=/dev/null "$1" train \
        --quiet --data "$data" --model "$model" --batch "$2" --steps "$3" --threads 1 \
        --no-prefetch 2>&1 | sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}
printf 'model\tB\told_instr_per_step\tnew_instr_per_step\tnew/old\n'
for b in ${BATCHES:-1 8}; do
    o1=$(count "$old" "$b" "$n") o3=$(count "$old" "$b" $((3 * n)))
    n1=$(count "$new" "$b" "$n") n3=$(count "$new" "$b" $((3 * n)))
    awk -v m="$model" -v b="$b" -v o=$(((o3 - o1) / (2 * n))) -v w=$(((n3 - n1) / (2 * n))) \
        'BEGIN { printf "%s\t%d\t%d\t%d\t%.5f\n", m, b, o, w, w / o }'
done
