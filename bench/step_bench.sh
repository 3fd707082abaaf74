#!/usr/bin/env bash
# Training-step speed of batchlab against PyTorch, side by side in one run.
#
#   bench/step_bench.sh [build-dir]        (default build-dir: build)
#
# Builds bench_step, runs it (batchlab steps, the sgemm replay of each step's
# exact GEMM shapes, forward latency), then bench/peer_torch.py under Debian's
# /usr/bin/python3 at 1 and at 2 threads (one process each), and prints one
# table. Both sides run at several thread counts and each row keeps the best
# one (in brackets): on a quiet machine batchlab's best is all cores, but on a
# busy one a single thread can win, and PyTorch is treated the same way. The
# sgemm-limit and BLAS columns belong to the run that won. Raw records are
# kept in $OUT (default /tmp/step_bench.<pid>).
#
# Environment: BATCHES, LATENCY, MODELS, THREADS (batchlab thread counts, one
# run each, the best kept per row as for PyTorch; default all cores and 1),
# TORCH_THREADS (default 1,2,1s: torch.set_num_threads(1), (2), and 1 with the
# BLAS/OpenMP pools at 1 too, see peer_torch.py), TORCH_CAP (seconds; a torch
# configuration whose first step is slower than this is skipped and shown as
# "-", default 10),
# MIN_TIME, RUNS. OPENBLAS_CORETYPE is used as found (this environment sets
# Haswell; the core in use is printed).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
build=${1:-$root/build}
BATCHES=${BATCHES:-1,8,32,128,512,2048}
LATENCY=${LATENCY:-1,8,64}
MODELS=${MODELS:-mlp,cnn}
THREADS=${THREADS:-$(nproc),1}
TORCH_THREADS=${TORCH_THREADS:-1,2,1s}
TORCH_CAP=${TORCH_CAP:-10}
MIN_TIME=${MIN_TIME:-0.3}
RUNS=${RUNS:-5}
OUT=${OUT:-/tmp/step_bench.$$}
mkdir -p "$OUT"

if [ ! -f "$build/build.ninja" ] && [ ! -f "$build/Makefile" ]; then
    cmake -S "$root" -B "$build" -G Ninja >/dev/null
fi
if ! log=$(cmake --build "$build" --target bench_step 2>&1); then
    echo "$log" | tail -20 >&2
    echo "step_bench: building bench_step failed" >&2
    exit 1
fi

echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)  ($(nproc) CPUs)" | tee "$OUT/load"
: >"$OUT/batchlab.tsv"
for t in ${THREADS//,/ }; do
    "$build/bench_step" --models "$MODELS" --batches "$BATCHES" --latency "$LATENCY" \
        --min-time "$MIN_TIME" --runs "$RUNS" --threads "$t" | tee -a "$OUT/batchlab.tsv" >&2
done
if [ -x /usr/bin/python3 ] && /usr/bin/python3 -c 'import torch' 2>/dev/null; then
    /usr/bin/python3 "$here/peer_torch.py" --models "$MODELS" --batches "$BATCHES" \
        --latency "$LATENCY" --threads "$TORCH_THREADS" --cap "$TORCH_CAP" \
        --min-time "$MIN_TIME" --runs "$RUNS" | tee "$OUT/torch.tsv" >&2
else
    echo "step_bench: /usr/bin/python3 with torch not found (apt-get install python3-torch);" \
         "PyTorch columns are empty" >&2
    : >"$OUT/torch.tsv"
fi
echo "load after:  $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/load"

awk -F'\t' -v tthreads="$TORCH_THREADS" -v blthreads="$THREADS" '
FNR == 1 { file++ }
file == 1 && $1 == "env" { bt = $2; core = $3 }
file == 1 && $1 == "step" { key = $2 SUBSEP $3
    if (!(key in bl)) order[++n] = key
    if (!(key in bl) || $5 + 0 > bl[key] + 0) { bl[key] = $5; gf[key] = $6; sg[key] = $8
        lim[key] = $9; fr[key] = $10; share[key] = $11; blt[key] = bt } }
file == 1 && $1 == "latency" { lk = $2 SUBSEP $3
    if (!(lk in bll)) lorder[++nl] = lk
    if (!(lk in bll) || $4 + 0 < bll[lk] + 0) { bll[lk] = $4; bllt[lk] = bt } }
file == 2 && $1 == "env" { tt = $2; tver = $3 }
file == 2 && $1 == "step" && $5 != "-" { key = $2 SUBSEP $3
    if (!(key in pt) || $5 + 0 > pt[key] + 0) { pt[key] = $5; ptt[key] = tt } }
file == 2 && $1 == "latency" { lk = $2 SUBSEP $3
    if (!(lk in tl) || $4 + 0 < tl[lk] + 0) { tl[lk] = $4; tlt[lk] = tt } }
END {
    printf "\nbatchlab: best of threads {%s}, OpenBLAS core %s; PyTorch %s: best of threads {%s}\n",
           blthreads, core, tver == "" ? "(not run)" : tver, tthreads
    printf "\n| model | B | batchlab samples/s | PyTorch samples/s | ratio | batchlab GFLOP/s | sgemm-limit samples/s | fraction of sgemm rate | sgemm GFLOP/s | time in BLAS |\n"
    printf "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
    for (i = 1; i <= n; i++) {
        k = order[i]; split(k, p, SUBSEP)
        if (k in pt) { ts = sprintf("%.0f [%s]", pt[k], ptt[k]); r = sprintf("%.2f", bl[k] / pt[k]) }
        else { ts = "-"; r = "-" }
        printf "| %s | %d | %.0f [%s] | %s | %s | %.1f | %.0f | %.0f%% | %.1f | %.0f%% |\n", p[1],
               p[2], bl[k], blt[k], ts, r, gf[k], lim[k], 100 * fr[k], sg[k], 100 * share[k]
    }
    printf "\nForward-only (inference) latency, microseconds per call\n\n"
    printf "| model | B | batchlab us | PyTorch us | ratio (PyTorch / batchlab) |\n|---|---:|---:|---:|---:|\n"
    for (i = 1; i <= nl; i++) {
        k = lorder[i]; split(k, p, SUBSEP)
        if (k in tl) { ts = sprintf("%.0f [%s]", tl[k], tlt[k]); r = sprintf("%.2f", tl[k] / bll[k]) }
        else { ts = "-"; r = "-" }
        printf "| %s | %d | %.0f [%s] | %s | %s |\n", p[1], p[2], bll[k], bllt[k], ts, r
    }
}' "$OUT/batchlab.tsv" "$OUT/torch.tsv"
cat "$OUT/load"
echo "raw records: $OUT"
