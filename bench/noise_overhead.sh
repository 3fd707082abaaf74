#!/usr/bin/env bash
# Overhead of measuring the gradient noise scale during training (issue 4).
#
# The machine this runs on is shared, so run-to-run timings swing by more
# than the effect being measured. The comparison is therefore made inside
# one run: with --noise-every 2, measured and unmeasured updates alternate,
# and a busy machine slows both alike. The log marks the measured updates
# (they carry noise_* fields); each run's figure is the ratio of the median
# step time of measured updates to that of unmeasured ones, and the reported
# figure is the median over RUNS runs (mlp preset, full Fashion-MNIST).
#
#   same split  --micro-batch B/2 --noise --noise-every 2: both kinds of
#               update run as two micro-batches.
#   own split   --noise --noise-every 2 with one micro-batch.
# A measured update's time is its step_time_s plus its noise_time_s: the noise
# scale is measured on a batch of its own before the update (issue 15), so the
# ratio is about 2 in both cases. With --noise-every N a run pays (ratio - 1) / N.
#
# usage: bench/noise_overhead.sh [BATCHLAB] [extra train options...]
#   env: BATCHES="16 64 256 1024" RUNS=3 SECONDS_PER_RUN=3 THREADS=1 WARM=4
set -eu
BL=${1:-build/batchlab}
shift || true
BATCHES=${BATCHES:-"16 64 256 1024"}
RUNS=${RUNS:-3}
SECONDS_PER_RUN=${SECONDS_PER_RUN:-3}
THREADS=${THREADS:-1}
WARM=${WARM:-4}
T=$(mktemp -d /tmp/bl_noise_bench.XXXXXX)
trap 'rm -rf "$T"' EXIT

# "median_measured median_unmeasured" step times (s) of one log, after warm-up
split_medians() {
    awk -v warm="$WARM" '
    function med(a, k,   i, j, x) {
        for (i = 2; i <= k; i++) { x = a[i]; j = i - 1; while (j > 0 && a[j] > x) { a[j + 1] = a[j]; j-- } a[j + 1] = x }
        return (k % 2) ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2
    }
    /"type":"step"/ {
        if (++n <= warm || !match($0, /"step_time_s":[0-9.eE+-]+/)) next
        v = substr($0, RSTART + 14, RLENGTH - 14) + 0
        if (match($0, /"noise_time_s":[0-9.eE+-]+/)) v += substr($0, RSTART + 15, RLENGTH - 15) + 0
        if (index($0, "\"noise_g2\"")) m[++km] = v; else u[++ku] = v
    }
    END { if (km && ku) print med(m, km), med(u, ku); else print "nan nan" }' "$1"
}
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{ v[++k] = $1 } END { print (k % 2) ? v[(k + 1) / 2] : (v[k / 2] + v[k / 2 + 1]) / 2 }'; }

echo "# mlp, Fashion-MNIST, threads $THREADS; median ms per update within a run, median ratio over $RUNS runs"
printf '%-6s | %-9s %-9s %-9s | %-9s %-9s %-9s %-12s\n' B unmeas. measured overhead unmeas. measured ratio "every 10"
printf '%-6s | %-29s | %-42s\n' "" "same split (micro-batch B/2)" "own split (one micro-batch)"
for B in $BATCHES; do
    steps=$((SECONDS_PER_RUN * 6000 / B))
    [ "$steps" -lt 40 ] && steps=40
    r1="" r2="" a1="" b1="" a2="" b2=""
    for r in $(seq "$RUNS"); do
        "$BL" train --quiet --batch "$B" --micro-batch $((B / 2)) --noise --noise-every 2 --steps "$steps" \
            --threads "$THREADS" --log "$T/same.jsonl" "$@" >/dev/null
        "$BL" train --quiet --batch "$B" --noise --noise-every 2 --steps "$steps" \
            --threads "$THREADS" --log "$T/own.jsonl" "$@" >/dev/null
        read -r m u < <(split_medians "$T/same.jsonl")
        r1="$r1 $(awk -v m="$m" -v u="$u" 'BEGIN { print m / u }')" a1="$a1 $u" b1="$b1 $m"
        read -r m u < <(split_medians "$T/own.jsonl")
        r2="$r2 $(awk -v m="$m" -v u="$u" 'BEGIN { print m / u }')" a2="$a2 $u" b2="$b2 $m"
    done
    awk -v B="$B" -v u1="$(echo "$a1" | median)" -v m1="$(echo "$b1" | median)" -v r1="$(echo "$r1" | median)" \
        -v u2="$(echo "$a2" | median)" -v m2="$(echo "$b2" | median)" -v r2="$(echo "$r2" | median)" 'BEGIN {
        printf "%-6s | %-9.2f %-9.2f %-9s | %-9.2f %-9.2f %-9.3f %-12s\n", B, u1 * 1e3, m1 * 1e3,
            sprintf("%+.1f%%", (r1 - 1) * 100), u2 * 1e3, m2 * 1e3, r2, sprintf("%+.1f%%", (r2 - 1) * 10) }'
done
