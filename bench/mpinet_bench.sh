#!/usr/bin/env bash
# Data-parallel training across a shaped link (issue 17): for each link setting and
# preset, 2 ranks (one core each, tests/mpinet), global batch 256, --overlap off, on
# and auto (the default) in turn, REPS times; plus one rank's compute time for its
# share (batch 128, one thread, no MPI). Step medians are of steps 5 on, and for auto
# of the steps after its decision (13 on). Prints one CSV line per run and a Markdown
# table of medians. Needs root (network namespaces).
# Usage: bench/mpinet_bench.sh [OUT_DIR [REPS [LINKS]]]
#   LINKS: space-separated RATE:DELAY_US (default "10gbit:0 1gbit:500 100mbit:2000")
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/mpinet-bench}
REPS=${2:-3}
LINKS=${3:-"10gbit:0 1gbit:500 100mbit:2000"}
NET=tests/mpinet/mpinet
BL=$PWD/build/batchlab
mkdir -p "$OUT"
export MPINET_STATE=$OUT/state
trap '"$NET" down >/dev/null 2>&1 || true' EXIT

# median of a JSONL field over steps FROM.. (default 5)
med() { awk -F"\"$2\":" -v from="${3:-5}" '/"type":"step"/ { split($2, a, ","); if (++n > from) print a[1] }' "$1" |
        sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

steps_for() { case $1:$2:$3 in *:auto) echo 24 ;; mlp:100mbit:*) echo 14 ;; cnn:*) echo 16 ;; *) echo 30 ;; esac; }

echo "link,model,mode,rep,step_s,comm_s,auto_kept" >"$OUT/runs.csv"
echo "model,rep,compute_s" >"$OUT/compute.csv"
for model in mlp cnn; do # one rank's share, on one core, no network
    for r in $(seq "$REPS"); do
        OPENBLAS_NUM_THREADS=1 taskset -c 0 "$BL" train --quiet --model $model --batch 128 \
            --steps 16 --threads 1 --val-frac 0 --log "$OUT/compute-$model-$r.jsonl" >/dev/null
        echo "$model,$r,$(med "$OUT/compute-$model-$r.jsonl" step_time_s)" >>"$OUT/compute.csv"
    done
done
for link in $LINKS; do
    rate=${link%%:*} delay=${link##*:}
    "$NET" down >/dev/null 2>&1 || true
    "$NET" up "$rate" "$delay" >/dev/null
    for model in mlp cnn; do
        for r in $(seq "$REPS"); do
            for mode in off on auto; do
                log=$OUT/$rate-$model-$mode-$r.jsonl
                from=5; [ $mode = auto ] && from=12
                "$NET" run "$BL" train --quiet --model $model --batch 256 --steps "$(steps_for $model $rate $mode)" \
                    --threads 1 --val-frac 0 --overlap $mode --log "$log" >/dev/null 2>&1
                kept=$(grep -o '"overlap_ratio":[0-9.e-]*' "$log" |
                    awk -F: '{ print ($2 <= 1) ? "on" : "off" }' || true)
                echo "$rate,$model,$mode,$r,$(med "$log" step_time_s $from),$(med "$log" comm_time_s $from),${kept:--}" |
                    tee -a "$OUT/runs.csv"
            done
        done
    done
done

# Table: wire floor of the ring at N = 2 = bytes x 8 / rate + 2 one-way delays.
bytes() { case $1 in mlp) echo 7454760 ;; cnn) echo 6503464 ;; esac; }
bps() { case $1 in *gbit) echo $((${1%gbit} * 1000000000)) ;; *mbit) echo $((${1%mbit} * 1000000)) ;; esac; }
{
    echo "| link | model | wire floor | comm, off (ratio) | step, off | step, on | step, auto (kept) | comm exposed, on | compute alone | compute in run | on / max(compute alone, comm) | on / max(compute in run, comm) |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
    for link in $LINKS; do
        rate=${link%%:*} delay=${link##*:}
        for model in mlp cnn; do
            pick() { awk -F, -v l=$rate -v m=$model -v o=$1 -v c=$2 '$1 == l && $2 == m && $3 == o { print $c }' "$OUT/runs.csv" | median; }
            # compute in run: each off run's step minus its wait (the same cores, the same
            # placement, with the link idle while it computes), median over the runs
            inrun=$(awk -F, -v l=$rate -v m=$model '$1 == l && $2 == m && $3 == "off" { print $5 - $6 }' "$OUT/runs.csv" | median)
            kept=$(awk -F, -v l=$rate -v m=$model '$1 == l && $2 == m && $3 == "auto" { print $7 }' "$OUT/runs.csv" | sort | uniq -c | awk '{ printf "%s%s x%s", (NR > 1 ? ", " : ""), $2, $1 }')
            sn=$(pick off 5) cn=$(pick off 6) so=$(pick on 5) co=$(pick on 6) sa=$(pick auto 5)
            comp=$(awk -F, -v m=$model '$1 == m { print $3 }' "$OUT/compute.csv" | median)
            awk -v l="$rate, ${delay} us" -v m=$model -v b="$(bytes $model)" -v r="$(bps $rate)" -v d=$delay \
                -v sn=$sn -v cn=$cn -v so=$so -v co=$co -v sa=$sa -v kept="$kept" -v comp=$comp -v inrun=$inrun 'BEGIN {
                floor = b * 8 / r + 2 * d * 1e-6; mx = comp > cn ? comp : cn; mi = inrun > cn ? inrun : cn
                printf "| %s | %s | %.1f ms | %.1f ms (%.2f) | %.1f ms | %.1f ms | %.1f ms (%s) | %.1f ms | %.1f ms | %.1f ms | %.2f | %.2f |\n",
                    l, m, floor * 1e3, cn * 1e3, cn / floor, sn * 1e3, so * 1e3, sa * 1e3, kept, co * 1e3, comp * 1e3, inrun * 1e3, so / mx, so / mi }'
        done
    done
} | tee "$OUT/table.md"
