#!/usr/bin/env bash
# Adaptive batching against fixed settings at fixed offered loads (issue 14, D2): the
# issue's setup is `serve --max-batch 32 --slo-p99-ms 10` under open-loop Poisson load
# from `batchlab load`, where the old controller cut the max batch to 1. For each rate,
# each setting gets its own server and one `load` run per round, the settings taking
# turns (the machine is shared); the table gives per-setting medians over the rounds.
#
# Usage (from the repository root): bench/serve_controller_ab.sh [BATCHLAB] [OUT_DIR]
# Environment: RATES (default 500,1000,1500,2000), DUR (s per run, default 8), ROUNDS
#   (default 3), MODEL (preset, default mlp), SETTINGS (names from the list below).
set -euo pipefail
BL=${1:-build/batchlab}
OUT=${2:-runs/serve-controller-ab}
RATES=${RATES:-500,1000,1500,2000}
DUR=${DUR:-8}
ROUNDS=${ROUNDS:-3}
MODEL=${MODEL:-mlp}
SETTINGS=${SETTINGS:-b1 b32 adaptive32}
declare -A ARGS=([b1]="--max-batch 1" [b32]="--max-batch 32"
    [b32d1000]="--max-batch 32 --max-delay-us 1000" [adaptive32]="--max-batch 32 --slo-p99-ms 10")
DATA=tests/data/fmnist-sample
IMAGES=$DATA/t10k-images-idx3-ubyte.gz
mkdir -p "$OUT"
CK=$OUT/$MODEL.safetensors
[ -f "$CK" ] || "$BL" train --quiet --data "$DATA" --model "$MODEL" --epochs 1 --save "$CK" >/dev/null
SERVER_PID=
trap '[ -n "$SERVER_PID" ] && kill -TERM "$SERVER_PID" 2>/dev/null; true' EXIT
num() { sed -n "s/.*\"$1\":[[:space:]]*\([0-9.e+-]*\).*/\1/p" "$2" | head -1; }
med() { sort -g | awk '{ v[NR] = $1 } END { print NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)" >"$OUT/summary.md"
for rate in ${RATES//,/ }; do
    for round in $(seq 1 "$ROUNDS"); do
        for s in $SETTINGS; do
            rm -f "$OUT/port"
            # shellcheck disable=SC2086
            "$BL" serve "$CK" --name m --port 0 --port-file "$OUT/port" --quiet ${ARGS[$s]} \
                2>"$OUT/$s.$rate.r$round.serve.log" &
            SERVER_PID=$!
            for _ in $(seq 1 100); do [ -s "$OUT/port" ] && break; sleep 0.1; done
            "$BL" load --url "http://127.0.0.1:$(cat "$OUT/port")" --model m --rate "$rate" \
                --arrivals poisson --duration "$DUR" --warmup 1 --timeout 5 --format binary \
                --input "$IMAGES" --seed "$round" --json >"$OUT/$s.$rate.r$round.json"
            kill -TERM "$SERVER_PID"
            wait "$SERVER_PID" || true
            SERVER_PID=
        done
    done
done
{
    echo "| offered req/s (Poisson) | setting | throughput req/s | p50 ms | p99 ms | failed | rounds |"
    echo "|---|---|---|---|---|---|---|"
    for rate in ${RATES//,/ }; do
        for s in $SETTINGS; do
            f=("$OUT/$s.$rate".r*.json)
            t=$(for x in "${f[@]}"; do num throughput_rps "$x"; done | med)
            p50=$(for x in "${f[@]}"; do num p50 "$x"; done | med)
            p99=$(for x in "${f[@]}"; do num p99 "$x"; done | med)
            fl=$(for x in "${f[@]}"; do num failed "$x"; done | awk '{ s += $1 } END { print s }')
            printf '| %s | `serve %s` | %.0f | %.1f | %.1f | %s | %s |\n' "$rate" "${ARGS[$s]}" "$t" \
                "$p50" "$p99" "$fl" "${#f[@]}"
        done
    done
    echo
    echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
} >>"$OUT/summary.md"
cat "$OUT/summary.md"
