#!/usr/bin/env bash
# Training-step speed of batchlab against PyTorch, side by side in one run.
#
#   bench/step_bench.sh [build-dir]        (default build-dir: build)
#
# Builds bench_step, then bench/step_table.py runs, row by row, bench_step
# (batchlab's step, the sgemm replay of that step's exact GEMM shapes, forward
# latency) and bench/peer_torch.py under Debian's /usr/bin/python3, and prints
# one table. Both sides run at several thread counts and each row keeps each
# side's best (the winner in brackets): on a quiet machine batchlab's best is
# all cores, but PyTorch's often is one thread. A run during which other
# processes used more than 10% of a core is repeated (up to 3 times) and the
# table says how disturbed its rows were. Every record goes to $OUT/raw.tsv
# (default OUT=/tmp/step_bench.<pid>).
#
# Environment: MODELS (mlp,cnn), BATCHES (1,8,32,128,512,2048), LATENCY (1,8,64),
# THREADS (batchlab thread counts; default all cores and 1), TORCH_THREADS
# (1,2,1s: torch.set_num_threads(1), (2), and 1 with the BLAS/OpenMP pools at 1
# too, see peer_torch.py), TORCH_CAP (seconds; a PyTorch configuration whose
# first step is slower is skipped and shown as "-", default 10), MIN_TIME (0.3),
# RUNS (5), TRIES (3), WAIT (seconds to wait for an idle second before each
# run, 30), NATIVE (1: also build $build-native with -DBL_NATIVE=ON and
# measure it in the same run, taking turns, with a portable/native column;
# this is how the portable build's cost is checked on each machine kind).
# The ISA level each build ran at is printed (BATCHLAB_ISA lowers the
# portable build's). OPENBLAS_CORETYPE is used as found (this environment
# sets Haswell; the core in use is printed).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
build=${1:-$root/build}
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
bench2=()
if [ "${NATIVE:-0}" = 1 ]; then
    cmake -S "$root" -B "$build-native" -G Ninja -DCMAKE_BUILD_TYPE=Release -DBL_NATIVE=ON >/dev/null
    if ! log=$(cmake --build "$build-native" --target bench_step 2>&1); then
        echo "$log" | tail -20 >&2
        echo "step_bench: building the native bench_step failed" >&2
        exit 1
    fi
    bench2=(--bench2 "$build-native/bench_step" --label2 native)
fi
if [ ! -x /usr/bin/python3 ]; then
    echo "step_bench: needs /usr/bin/python3 (Debian's python3; python3-torch for the peer)" >&2
    exit 1
fi
/usr/bin/python3 -c 'import torch' 2>/dev/null ||
    echo "step_bench: python3-torch not found (apt-get install python3-torch): no PyTorch column" >&2

echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)  ($(nproc) CPUs)"
/usr/bin/python3 "$here/step_table.py" --bench "$build/bench_step" \
    --models "${MODELS:-mlp,cnn}" --batches "${BATCHES:-1,8,32,128,512,2048}" \
    --latency "${LATENCY:-1,8,64}" --threads "${THREADS:-$(nproc),1}" \
    --torch-threads "${TORCH_THREADS:-1,2,1s}" --cap "${TORCH_CAP:-10}" \
    --min-time "${MIN_TIME:-0.3}" --runs "${RUNS:-5}" --tries "${TRIES:-3}" \
    --wait "${WAIT:-30}" --raw "$OUT/raw.tsv" "${bench2[@]}"
echo "load after:  $(cut -d' ' -f1-3 /proc/loadavg)"
echo "raw records: $OUT/raw.tsv"
