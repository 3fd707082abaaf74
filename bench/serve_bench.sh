#!/usr/bin/env bash
# Serving benchmarks for docs/BENCHMARKS.md, section "Serving (issue 6)": the mlp preset
# on CPU behind `batchlab serve`, driven by `batchlab load` on the same machine.
#
#  1. overhead at low load: p50 of an HTTP request (binary and JSON) against the bare
#     forward pass of the same request in-process (`load --bare`), both paced at the
#     same rate so the caches are in the same state; plus the HTTP floor (a GET of
#     /v2/health/live, no model) and the server's own stage-by-stage breakdown;
#  2. throughput at p99 <= SLO ms: an open-loop rate sweep per fixed setting (max batch
#     1, 32, 64, 128, and 64 with a 1 ms delay), and the adaptive mode (--slo-p99-ms SLO,
#     max batch up to 128). The machine is shared, so each sweep runs ROUNDS times, the
#     settings taking turns, and every number is the per-rate MEDIAN over the rounds; the
#     result is the best median throughput whose median p99 is within the objective with
#     no failed request;
#  3. (curve) the bare forward pass at each batch size: what batching can gain at most.
# Everything lands in OUT: per-round CSV/PNG/SVG from `load --sweep`, the median CSV and
# its plot per setting, logs, and summary.md (the tables for BENCHMARKS.md).
#
# Usage (from the repository root): bench/serve_bench.sh [BATCHLAB] [OUT_DIR]
# Environment: SLO (ms, default 10), DUR (seconds per sweep point, default 2), ROUNDS
#   (default 3), LOW_RATE (req/s for the overhead runs, default 100), LOW_DUR (s, default
#   20), FORMAT (binary|json for the sweeps, default binary), ONLY (a subset of: overhead
#   curve b1 b32 b64 b128 b64d1000 adaptive), RATES and RATES_B1 (the sweeps, comma-separated),
#   MODEL (the preset served, default mlp; `MODEL=cnn ONLY=curve` gives the cnn's curve),
#   SERVE_ARGS (options added to every server, e.g. "--http-threads 2").
set -euo pipefail
BL=${1:-build/batchlab}
OUT=${2:-runs/serve-bench}
SLO=${SLO:-10}
DUR=${DUR:-2}
ROUNDS=${ROUNDS:-3}
LOW_RATE=${LOW_RATE:-100}
LOW_DUR=${LOW_DUR:-20}
FORMAT=${FORMAT:-binary}
ONLY=${ONLY:-overhead curve b1 b32 b64 b128 b64d1000 adaptive}
MODEL=${MODEL:-mlp}
DATA=tests/data/fmnist-sample
IMAGES=$DATA/t10k-images-idx3-ubyte.gz
RATES_B1=${RATES_B1:-1000,2000,3000,3500,4000,4500,5000,5500,6000}
RATES=${RATES:-1000,2000,4000,6000,8000,10000,12000,14000,16000}
declare -A ARGS=([b1]="--max-batch 1" [b32]="--max-batch 32" [b64]="--max-batch 64"
    [b128]="--max-batch 128" [b64d1000]="--max-batch 64 --max-delay-us 1000"
    [adaptive]="--max-batch 128 --slo-p99-ms $SLO")
mkdir -p "$OUT"
CK=$OUT/$MODEL.safetensors
SERVER_PID=
trap '[ -n "$SERVER_PID" ] && kill -TERM "$SERVER_PID" 2>/dev/null; true' EXIT

want() { [[ " $ONLY " == *" $1 "* ]]; }

[ -f "$CK" ] || "$BL" train --quiet --data "$DATA" --model "$MODEL" --epochs 1 --save "$CK" >/dev/null

# serve NAME ARGS...: start a server on a free port; sets SERVER_PID and URL.
serve() {
    local name=$1
    shift
    rm -f "$OUT/$name.port"
    # shellcheck disable=SC2086 # SERVE_ARGS is a list of options
    "$BL" serve "$CK" --name mlp --port 0 --port-file "$OUT/$name.port" --quiet ${SERVE_ARGS:-} "$@" \
        2>"$OUT/$name.serve.log" &
    SERVER_PID=$!
    for _ in $(seq 1 100); do [ -s "$OUT/$name.port" ] && break; sleep 0.1; done
    URL=http://127.0.0.1:$(cat "$OUT/$name.port")
}

unserve() {
    kill -TERM "$SERVER_PID"
    wait "$SERVER_PID" || true
    SERVER_PID=
}

# scrape FILE: the server's /metrics over bash's /dev/tcp (no curl needed).
scrape() {
    exec 3<>"/dev/tcp/127.0.0.1/${URL##*:}"
    printf 'GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' >&3
    cat <&3 >"$OUT/$1"
    exec 3<&-
}
# mean_us BEFORE AFTER HIST: a histogram's mean in microseconds between two scrapes.
mean_us() {
    awk -v h="$3" 'FNR == 1 { f++ } $1 ~ ("^" h "_sum") { s[f] = $2 } $1 ~ ("^" h "_count") { c[f] = $2 }
        END { printf "%.0f", (c[2] > c[1] ? (s[2] - s[1]) / (c[2] - c[1]) * 1e6 : 0) }' "$1" "$2"
}
p50() { sed -n 's/.*"p50":[[:space:]]*\([0-9.e+-]*\).*/\1/p' "$1" | head -1; }
p99() { sed -n 's/.*"p99":[[:space:]]*\([0-9.e+-]*\).*/\1/p' "$1" | head -1; }

# median_csv OUT IN...: per-row medians of the sweep CSVs (same rates in the same order);
# ok and failed are summed.
median_csv() {
    local out=$1
    shift
    awk -F, 'function med(a, n,   i, j, t) { for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j-1] > a[j]; j--) { t = a[j]; a[j] = a[j-1]; a[j-1] = t } return n % 2 ? a[(n+1)/2] : (a[n/2] + a[n/2+1]) / 2 }
        FNR == 1 { f++; head = $0; next }
        { rows = FNR - 1; for (k = 1; k <= NF; k++) v[FNR - 1, k, f] = $k; nf = NF }
        END { print head; for (r = 1; r <= rows; r++) { line = ""
            for (k = 1; k <= nf; k++) { if (k == 8 || k == 9) { x = 0; for (g = 1; g <= f; g++) x += v[r, k, g] }
                else { delete a; for (g = 1; g <= f; g++) a[g] = v[r, k, g]; x = med(a, f) }
                line = line (k > 1 ? "," : "") x }
            print line } }' "$@" >"$out.tmp" && mv "$out.tmp" "$out"
}

# plot_csv CSV PREFIX TITLE: latency against throughput (gnuplot, written then renamed).
plot_csv() {
    gnuplot <<EOF
set datafile separator ','
set title '$3'
set xlabel 'throughput (requests/s)'
set ylabel 'latency (ms), from intended send time'
set logscale y
set grid
set key top left
set terminal pngcairo size 900,600
set output '$2.png.tmp'
plot '$1' skip 1 using 2:3 with linespoints pt 7 title 'p50', '' skip 1 using 2:5 with linespoints pt 5 title 'p99', $SLO with lines dashtype 2 lc rgb 'gray40' title 'objective'
set terminal svg size 900,600 dynamic
set output '$2.svg.tmp'
replot
unset output
EOF
    mv "$2.png.tmp" "$2.png"
    mv "$2.svg.tmp" "$2.svg"
}

# The best median rate within the objective: "rate p99 avg_batch", or "0".
best() {
    awk -F, -v slo="$SLO" 'NR > 1 && $5 <= slo && $9 == 0 && $2 > b { b = $2; p = $5; ab = $10; mb = $11 }
        END { if (b) printf "%.0f %.2f %.1f %.0f\n", b, p, ab, mb; else print 0 }' "$1"
}

{
    echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
    echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "batchlab: $("$BL" --version), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
    echo "server: 1 BLAS thread, 1 HTTP thread unless SERVE_ARGS says otherwise (SERVE_ARGS='${SERVE_ARGS:-}'); OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}"
} >"$OUT/summary.md"

if want overhead; then
    "$BL" load --bare "$CK" --rate "$LOW_RATE" --duration "$LOW_DUR" --input "$IMAGES" --json \
        >"$OUT/bare.json"
    for fmt in binary json; do # a fresh server per format: its stage breakdown is that format's
        serve "low-$fmt" --max-batch 64 --max-delay-us 0
        if [ $fmt = binary ]; then
            "$BL" load --url "$URL" --get /v2/health/live --rate "$LOW_RATE" --duration "$LOW_DUR" \
                --json >"$OUT/low-get.json"
        fi
        scrape "low-m0-$fmt.txt"
        "$BL" load --url "$URL" --model mlp --rate "$LOW_RATE" --duration "$LOW_DUR" --format "$fmt" \
            --input "$IMAGES" --json >"$OUT/low-$fmt.json"
        scrape "low-m-$fmt.txt"
        unserve
    done
    bare=$(p50 "$OUT/bare.json")
    {
        echo
        echo "### overhead at $LOW_RATE req/s (1 sample per request, $LOW_DUR s each)"
        echo
        echo "| path | p50 ms | p99 ms | p50 overhead over bare, us |"
        echo "|---|---|---|---|"
        echo "| bare forward in-process (\`load --bare\`) | $bare | $(p99 "$OUT/bare.json") | - |"
        for fmt in binary json; do
            p=$(p50 "$OUT/low-$fmt.json")
            echo "| HTTP infer, $fmt | $p | $(p99 "$OUT/low-$fmt.json") | $(awk -v a="$p" -v b="$bare" 'BEGIN { printf "%.0f", (a - b) * 1000 }') |"
        done
        echo "| HTTP floor: GET /v2/health/live, no model | $(p50 "$OUT/low-get.json") | $(p99 "$OUT/low-get.json") | - |"
        echo
        echo "| inside the server | mean queue, us | mean compute, us | mean in server, us | p50/p99 by stage, us (serve's exit summary) |"
        echo "|---|---|---|---|---|"
        for fmt in binary json; do
            q=$(mean_us "$OUT/low-m0-$fmt.txt" "$OUT/low-m-$fmt.txt" batchlab_queue_time_seconds)
            c=$(mean_us "$OUT/low-m0-$fmt.txt" "$OUT/low-m-$fmt.txt" batchlab_compute_time_seconds)
            r=$(mean_us "$OUT/low-m0-$fmt.txt" "$OUT/low-m-$fmt.txt" batchlab_request_latency_seconds)
            echo "| $fmt | $q | $c | $r | $(sed -n 's/.*p50\/p99 us: //p' "$OUT/low-$fmt.serve.log") |"
        done
    } >>"$OUT/summary.md"
fi

if want curve; then # what one forward pass costs at each batch size: the ceiling of batching
    {
        echo
        echo "### the bare forward pass of $MODEL by batch size"
        echo
        echo "paced: \`load --bare CK --per-request B --rate 50 --duration 4\` (weights leave the cache between"
        echo "requests); back to back: \`load --bare CK --per-request B --rate 1000000 --requests N\` (warm)."
        echo
        echo "| B | paced p50, ms | paced, us per sample | back to back, samples/s | back to back, us per sample |"
        echo "|---|---|---|---|---|"
        for b in 1 2 4 8 16 32 64 128; do
            "$BL" load --bare "$CK" --rate 50 --duration 4 --per-request $b --input "$IMAGES" --json \
                >"$OUT/curve-$b.json"
            "$BL" load --bare "$CK" --rate 1000000 --requests $((4000 / b + 50)) --warmup 0 --per-request $b \
                --input "$IMAGES" --json >"$OUT/curve-b2b-$b.json"
            p=$(p50 "$OUT/curve-$b.json")
            t=$(sed -n 's/.*"samples_per_s":[[:space:]]*\([0-9.e+-]*\).*/\1/p' "$OUT/curve-b2b-$b.json" | head -1)
            awk -v b=$b -v p="$p" -v t="$t" 'BEGIN { printf "| %d | %.3f | %.0f | %.0f | %.0f |\n", b, p, p * 1000 / b, t, 1e6 / t }'
        done
    } >>"$OUT/summary.md"
fi

names=()
for name in b1 b32 b64 b128 b64d1000 adaptive; do want "$name" && names+=("$name"); done
for round in $(seq 1 "$ROUNDS"); do
    for name in "${names[@]}"; do
        rates=$RATES
        [ "$name" = b1 ] && rates=$RATES_B1
        # shellcheck disable=SC2086
        serve "$name.r$round" ${ARGS[$name]}
        echo "== round $round, $name: batchlab serve ${ARGS[$name]}; load --sweep $rates" >&2
        "$BL" load --url "$URL" --model mlp --sweep "$rates" --duration "$DUR" --warmup 0.5 \
            --timeout 2 --format "$FORMAT" --input "$IMAGES" --csv "$OUT/$name.r$round.csv" \
            --plot "$OUT/$name.r$round" --slo-ms "$SLO" | tee "$OUT/$name.r$round.txt" >&2
        unserve
    done
done
if [ ${#names[@]} -gt 0 ]; then
    {
        echo
        echo "### throughput at p99 <= $SLO ms ($FORMAT requests of 1 sample, open loop, $DUR s per rate, median of $ROUNDS rounds)"
        echo
        echo "| setting | best rate within the objective, req/s | its p99, ms | avg batch | max batch at the end |"
        echo "|---|---|---|---|---|"
    } >>"$OUT/summary.md"
    fixed_best=0
    fixed_name=
    for name in "${names[@]}"; do
        median_csv "$OUT/$name.csv" "$OUT/$name".r*.csv
        plot_csv "$OUT/$name.csv" "$OUT/$name" "batchlab serve ${ARGS[$name]} (median of $ROUNDS)"
        read -r rate p ab mb < <(best "$OUT/$name.csv")
        echo "| \`serve ${ARGS[$name]}\` | ${rate} | ${p:--} | ${ab:--} | ${mb:--} |" >>"$OUT/summary.md"
        if [ "$name" != adaptive ] && [ "$name" != b1 ] &&
            awk -v a="$rate" -v b="$fixed_best" 'BEGIN { exit !(a > b) }'; then
            fixed_best=$rate
            fixed_name=$name
        fi
        eval "best_$name=$rate"
    done
    echo >>"$OUT/summary.md"
    if want b1 && [ -n "$fixed_name" ]; then
        echo "dynamic batching (best fixed: $fixed_name) against max batch 1: $(awk -v a="$fixed_best" -v b="$best_b1" 'BEGIN { printf "%.1fx", b ? a / b : 0 }')" >>"$OUT/summary.md"
    fi
    if want adaptive && [ -n "$fixed_name" ]; then
        echo "adaptive against the best fixed setting ($fixed_name): $(awk -v a="$best_adaptive" -v b="$fixed_best" 'BEGIN { printf "%.2fx", b ? a / b : 0 }')" >>"$OUT/summary.md"
    fi
fi
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/summary.md"
cat "$OUT/summary.md"
