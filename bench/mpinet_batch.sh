#!/usr/bin/env bash
# Batch size that accounts for the network (issue 17): on two simulated hosts
# (tests/mpinet, 2 ranks, one core each) at each link setting, find --throughput
# for the mlp preset (the knee) and a short --batch auto run (the batch it settles
# on, and why). Needs root (network namespaces).
# Usage: bench/mpinet_batch.sh [OUT_DIR [LINKS [STEPS]]]
#   LINKS: space-separated RATE:DELAY_US (default "10gbit:0 1gbit:500 100mbit:2000")
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/mpinet-batch}
LINKS=${2:-"10gbit:0 1gbit:500 100mbit:2000"}
STEPS=${3:-60}
NET=tests/mpinet/mpinet
BL=$PWD/build/batchlab
mkdir -p "$OUT"
export MPINET_STATE=$OUT/state
trap '"$NET" down >/dev/null 2>&1 || true' EXIT
for link in $LINKS; do
    rate=${link%%:*} delay=${link##*:}
    "$NET" down >/dev/null 2>&1 || true
    "$NET" up "$rate" "$delay" >/dev/null
    "$NET" run "$BL" find --throughput --model mlp --batches 16,32,64,128,256,512,1024,2048 \
        --runs 1 --min-run 0.5 --threads 1 >"$OUT/find-$rate.txt" 2>/dev/null
    "$NET" run "$BL" train --model mlp --batch auto --max-batch 2048 --adapt-every 10 \
        --steps "$STEPS" --threads 1 --val-frac 0 --log "$OUT/auto-$rate.jsonl" >"$OUT/auto-$rate.txt" 2>&1
    echo "== $rate, ${delay} us"
    grep -E "batch|knee|network" "$OUT/find-$rate.txt"
    grep -E "^step [0-9]+: batch|^batch auto" "$OUT/auto-$rate.txt" || true
done
