#!/usr/bin/env bash
# Issue 5 evidence: time to the sweep's target (validation accuracy 0.85, mlp preset,
# Fashion-MNIST) for --batch auto against every fixed batch size at the learning rate
# the sweep found best for it (docs/sweep-mlp/results.csv), all in one run on the same
# machine. Time = seconds inside optimizer updates (as the sweep's "train s"), which
# for auto includes its noise-scale measurement and every trial of another batch;
# validation every 2048 samples for every run. Repeat r uses seed r (a different
# initialisation and data order), since when a run first crosses the target is itself
# noisy; the configurations take turns within each repeat.
#  auto     starts from the sweep's recommended batch and its learning rate (the same
#           information each fixed run gets: the sweep's best lr for its batch);
#  auto64   starts from the defaults, batch 64 and lr 0.05, as without a sweep.
# Usage: bench/auto_vs_fixed.sh [REPEATS] [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
REP=${1:-2}
OUT=${2:-runs/auto-vs-fixed}
mkdir -p "$OUT"
BL=./build/batchlab
COMMON="--model mlp --target-acc 0.85 --epochs 20 --eval-samples 2048 --quiet --json"
train_s() { awk -F'"step_time_s":' '/"type":"step"/ { split($2, a, ","); s += a[1] } END { printf "%.2f", s }' "$1"; }
# The same without other jobs' bursts: for each batch size the run used, its updates at that
# size x their 10th-percentile time.
p10_s() {
    grep '"type":"step"' "$1" | sed -E 's/.*"batch":([0-9]+),.*"step_time_s":([0-9.e-]+),.*/\1 \2/' |
        sort -k1,1n -k2,2g | awk '{ b[NR] = $1; t[NR] = $2; n[$1]++ }
            END { for (i = 1; i <= NR; i++) if (++seen[b[i]] == int(n[b[i]] * 0.1) + 1) p[b[i]] = t[i]
                  for (k in n) s += n[k] * p[k]; printf "%.2f", s }'
}
field() { { grep -o "\"$2\":[^,]*" "$1" || true; } | head -1 | cut -d: -f2 | tr -d ' \t'; }
echo "config,seed,batch,lr,time_s,p10_s,steps,examples,changes,val_acc,test_acc,stop" >"$OUT/results.csv"
run() { # name repeat args...
    local name=$1 r=$2
    shift 2
    $BL train $COMMON --seed "$r" --log "$OUT/$name-$r.jsonl" "$@" >"$OUT/$name-$r.json" 2>/dev/null || true
    local j=$OUT/$name-$r.json l=$OUT/$name-$r.jsonl
    local fb examples
    fb=$(field "$j" final_batch)
    examples=$(awk -F'"samples_seen":' '/"type":"step"/ { split($2, a, ","); n = a[1] } END { print n + 0 }' "$l")
    echo "$name,$r,${fb:-$(field "$j" batch)},$(field "$j" lr),$(train_s "$l"),$(p10_s "$l"),$(field "$j" steps),$examples,$(grep -c '"changed":true' "$l" || true),$(field "$j" val_accuracy),$(field "$j" test_accuracy),$({ grep -o '"stop_reason":[^,]*' "$j" || true; } | cut -d'"' -f4 | tr ',' ';')" >>"$OUT/results.csv"
    tail -1 "$OUT/results.csv"
}
# the sweep's best learning rate for each batch size
best=$(awk -F, 'NR > 1 && $5 == 1 { print $1 ":" $3 }' docs/sweep-mlp/results.csv)
rec=$(awk -F, 'NR > 1 && $6 == 1 { print $1 ":" $3 }' docs/sweep-mlp/results.csv)
for r in $(seq 1 "$REP"); do
    run auto "$r" --batch auto --base-batch "${rec%%:*}" --lr "${rec##*:}" --max-batch 4096
    run auto64 "$r" --batch auto --base-batch 64 --lr 0.05 --max-batch 4096
    for bl in $best; do
        run "B${bl%%:*}" "$r" --batch "${bl%%:*}" --lr "${bl##*:}"
    done
done
# median time per configuration, measured and burst-free (portable: sort, no gawk extensions)
median() { sort -g | awk '{ v[NR] = $1 } END { printf "%.2f", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
echo "config time_s p10_s" >"$OUT/median.txt"
for c in $(tail -n +2 "$OUT/results.csv" | cut -d, -f1 | sort -u); do
    echo "$c $(grep "^$c," "$OUT/results.csv" | cut -d, -f5 | median) $(grep "^$c," "$OUT/results.csv" | cut -d, -f6 | median)"
done | sort -k2 -g | tee -a "$OUT/median.txt"
