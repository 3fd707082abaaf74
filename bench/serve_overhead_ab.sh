#!/usr/bin/env bash
# Low-load overhead, A/B: several (server, client) builds measured in short runs that take
# turns, ROUNDS times, so a load that comes and goes on a shared machine falls on every
# variant alike; the summary gives each variant's per-round p50s and their median.
#
# Usage (from the repository root):
#   bench/serve_overhead_ab.sh OUT NAME=SERVER_BIN,CLIENT_BIN [NAME=SERVER_BIN,CLIENT_BIN ...]
# Per round: the bare forward pass (`load --bare`, first variant's client binary), then per
# variant `SERVER_BIN serve CK --max-batch 64 --max-delay-us 0` driven by `CLIENT_BIN load
# --format binary`, and the GET /v2/health/live floor with that client.
# Environment: RATE (req/s, default 1000), DUR (s per run, default 3), ROUNDS (default 6).
set -euo pipefail
OUT=$1
shift
RATE=${RATE:-1000}
DUR=${DUR:-3}
ROUNDS=${ROUNDS:-6}
IMAGES=tests/data/fmnist-sample/t10k-images-idx3-ubyte.gz
mkdir -p "$OUT"
CK=$OUT/mlp.safetensors
first_client=${1#*,}
[ -f "$CK" ] || "$first_client" train --quiet --data tests/data/fmnist-sample --model mlp --epochs 1 \
    --save "$CK" >/dev/null
SERVER_PID=
trap '[ -n "$SERVER_PID" ] && kill -TERM "$SERVER_PID" 2>/dev/null; true' EXIT
p50_us() { sed -n 's/.*"p50":[[:space:]]*\([0-9.e+-]*\).*/\1/p' "$1" | head -1 | awk '{ printf "%.0f", $1 * 1000 }'; }
: >"$OUT/rows.txt"
for round in $(seq 1 "$ROUNDS"); do
    "$first_client" load --bare "$CK" --rate "$RATE" --duration "$DUR" --input "$IMAGES" --json \
        >"$OUT/bare.json"
    echo "$round bare $(p50_us "$OUT/bare.json")" >>"$OUT/rows.txt"
    for v in "$@"; do
        name=${v%%=*} bins=${v#*=}
        server=${bins%%,*} client=${bins#*,}
        rm -f "$OUT/port"
        "$server" serve "$CK" --name mlp --port 0 --port-file "$OUT/port" --quiet --max-batch 64 \
            --max-delay-us 0 2>"$OUT/$name.serve.log" &
        SERVER_PID=$!
        for _ in $(seq 1 100); do [ -s "$OUT/port" ] && break; sleep 0.1; done
        url=http://127.0.0.1:$(cat "$OUT/port")
        "$client" load --url "$url" --model mlp --rate "$RATE" --duration "$DUR" --format binary \
            --input "$IMAGES" --json >"$OUT/$name.json"
        "$client" load --url "$url" --get /v2/health/live --rate "$RATE" --duration "$DUR" --json \
            >"$OUT/$name.get.json"
        kill -TERM "$SERVER_PID"
        wait "$SERVER_PID" || true
        SERVER_PID=
        echo "$round $name $(p50_us "$OUT/$name.json") $(p50_us "$OUT/$name.get.json") $(sed -n 's/.*p50\/p99 us: //p' "$OUT/$name.serve.log")" >>"$OUT/rows.txt"
    done
done
{
    echo "rate $RATE/s, $DUR s per run, $ROUNDS rounds; load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo
    echo "| variant | p50 per round, us | median p50, us | median overhead over bare, us | GET floor median p50, us |"
    echo "|---|---|---|---|---|"
    awk 'function med(s,   a, n, i, j, t) { n = split(s, a, " "); for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j-1] > a[j]; j--) { t = a[j]; a[j] = a[j-1]; a[j-1] = t }
            return n % 2 ? a[(n+1)/2] : (a[n/2] + a[n/2+1]) / 2 }
        { v[$2] = v[$2] " " $3; if ($2 != "bare") g[$2] = g[$2] " " $4; if (!($2 in seen)) { seen[$2] = 1; order[++k] = $2 } }
        END { b = med(v["bare"]); for (i = 1; i <= k; i++) { n = order[i]
            printf "| %s |%s | %.0f | %s | %s |\n", n, v[n], med(v[n]), n == "bare" ? "-" : sprintf("%.0f", med(v[n]) - b), n == "bare" ? "-" : sprintf("%.0f", med(g[n])) } }' "$OUT/rows.txt"
} >"$OUT/summary.md"
cat "$OUT/summary.md"
