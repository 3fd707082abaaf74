#!/usr/bin/env bash
# Data-parallel measurements (issue 7): allreduce time vs message size on 2 ranks,
# an alpha-beta fit of it, training throughput with 1 and 2 ranks, and the
# efficiency the fitted model predicts at 8, 64 and 512 ranks for both presets.
# Usage: bench/mpi_bench.sh [OUT_DIR]   (after scripts/build.sh; needs Open MPI)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/mpi-bench}
mkdir -p "$OUT"
M="mpirun --allow-run-as-root --oversubscribe"
BL=./build/batchlab
$M -np 2 ./build/bench_allreduce >"$OUT/allreduce.csv"

# median step time (s) over steps 10.. of a JSONL log
med() { awk -F'"step_time_s":' '/"type":"step"/ { split($2, a, ","); if (++n > 10) print a[1] }' "$1" |
        sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
comm() { awk -F'"comm_time_s":' '/"type":"step"/ && NF > 1 { split($2, a, ","); if (++n > 10) print a[1] }' "$1" |
         sort -g | awk '{ v[NR] = $1 } END { print (NR ? v[int((NR + 1) / 2)] : 0) }'; }

echo "model,ranks,threads_per_rank,batch,median_step_s,median_comm_s,samples_per_s" >"$OUT/throughput.csv"
for model in mlp cnn; do
    B=256; steps=60; [ $model = cnn ] && steps=25
    for cfg in "1 1" "1 2" "2 1"; do
        set -- $cfg
        log="$OUT/$model-np$1-t$2.jsonl"
        OPENBLAS_NUM_THREADS=$2 $M -np $1 $BL train --quiet --model $model --batch $B --steps $steps \
            --threads $2 --val-frac 0 --log "$log" >/dev/null 2>&1
        s=$(med "$log"); c=$(comm "$log")
        echo "$model,$1,$2,$B,$s,$c,$(awk -v s=$s -v b=$B 'BEGIN { printf "%.0f", b / s }')" >>"$OUT/throughput.csv"
    done
done
cat "$OUT/allreduce.csv" "$OUT/throughput.csv"

# Ring allreduce: T(p, n) = 2(p-1) alpha + 2(p-1)/p n beta; at p = 2, T = 2 alpha + n beta.
# Least squares on the measured medians (messages >= 64 KiB, where bandwidth matters).
awk -F, -v out="$OUT" '
NR == FNR { if (FNR > 1 && $2 >= 65536) { x[++k] = $2; y[k] = $3 } next }
FNR > 1 && $2 == 1 && $3 == 1 { tc[$1] = $5 }   # one rank, one thread: per-rank compute time
END {
    for (i = 1; i <= k; i++) { sx += x[i]; sy += y[i]; sxx += x[i] * x[i]; sxy += x[i] * y[i] }
    beta = (k * sxy - sx * sy) / (k * sxx - sx * sx); a2 = (sy - beta * sx) / k; alpha = a2 / 2
    if (alpha < 0) alpha = 0
    printf "\nalpha-beta fit (2 ranks, shared memory): alpha = %.2f us, beta = %.3f ns/byte (%.2f GB/s)\n",
           alpha * 1e6, beta * 1e9, 1 / beta / 1e9
    n["mlp"] = 1863690 * 4; n["cnn"] = 1625866 * 4
    print "\nmodel,ranks,per_rank_batch,compute_s,allreduce_s,efficiency_no_overlap,efficiency_full_overlap"
    split("2 8 64 512", P, " ")
    for (m in n) for (j = 1; j <= 4; j++) {
        p = P[j]; t = 2 * (p - 1) * alpha + 2 * (p - 1) / p * n[m] * beta
        printf "%s,%d,256,%.4f,%.4f,%.3f,%.3f\n", m, p, tc[m], t, tc[m] / (tc[m] + t),
               (tc[m] >= t ? 1 : tc[m] / t)
    }
}' "$OUT/allreduce.csv" "$OUT/throughput.csv" | tee "$OUT/model.txt"
