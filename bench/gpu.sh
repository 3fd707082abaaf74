#!/usr/bin/env bash
# Everything the CUDA backend needs checked and measured on a GPU, in one call of
# the device tool (about 8 minutes; docs/BENCHMARKS.md, "GPU: bench/gpu.sh"):
#
#   deps    what the build needs (pkg-config), what is missing, and the carried
#           packages (bench/gpu_deps.sh) unpacked when they are there
#   env     nvidia-smi, nproc, nvcc, cmake, torch: written to $OUT/env.txt
#   build   cmake -S . -B $BUILD (Release, every core)
#   tests   ctest -R cuda (each test once more on the GPU: name@cuda), batchlab info
#   step    bench_step --device cuda per model, and bench/peer_torch.py --device cuda
#           in eager and CUDA-graph modes (and eager with host-side input for mlp),
#           each configuration at B = BATCHES; records in $OUT/step_raw.tsv
#   table   bench/gpu_table.py: $OUT/step_table.md, batchlab / eager and / graph
#   memory  bench/gpu_mem.py: find --memory's prediction against the measured peak
#   serve   batchlab serve --device cuda at max batch 1, with dynamic batching and
#           adaptive, driven by batchlab load: throughput at p99 <= SLO ms
# Each stage runs under its own timeout and all of them under one deadline
# (BUDGET seconds); a stage that fails or times out is recorded and the next one
# runs. Stages that need the build are skipped (exit 3) when it failed; the
# PyTorch measurements run regardless. $OUT/summary.txt has each stage's status and time.
#
# Usage, from the repository root: bench/gpu.sh
# $OUT gets at most 8 files (what the device tool brings back): summary.txt,
# env.txt, step_raw.tsv, step_table.md, memory.md, serve.md and logs.tar.gz (every
# log; refreshed after each stage, so a cut-off run still returns them).
# Environment (defaults in brackets):
#   OUT [runs/gpu-DATE]  WORK [a new /tmp/gpu-work.*]: the logs before packing
#   GPU_DEVICE [cuda]: cuda, cuda:N, or cpu to try the plumbing on a machine
#     without a GPU (graph mode and host-input are then left out)
#   BUILD [build-gpu]  CMAKE_ARGS []  PY [python3: the one with torch]
#   DEBS [runs/gpu-debs]: packages from `bench/gpu_deps.sh fetch`, used when the
#     system lacks a build dependency
#   BUDGET [480]: seconds for everything; STAGES [all of the above, in order]
#   MODELS [mlp,cnn]  BATCHES [1,8,32,128,512,2048,8192,32768]  LATENCY [1]
#   MIN_TIME [0.3]  RUNS [3]  CAP [10: skip a row whose first step is slower, s]
#   MODES [eager,graph]  H2D_MODELS [mlp]: also PyTorch eager with host-side input
#   TORCH_TF32 [default: as torch has it, which is TF32 in cuDNN's convolutions] off|on
#   BL_TF32 [off] on: batchlab's step with --tf32 (compare with TORCH_TF32=on)
#   MEM_MODELS [mlp,cnn]  MEM_BATCHES [512,8192,32768]  MEM_BUDGET [auto: the card]
#   SERVE_MODEL [mlp]  SERVE_SETTINGS [b1 dyn adaptive]  SLO [10]  SERVE_DUR [1]
#   RATES_B1, RATES_DYN (req/s, the sweeps)  SERVE_HTTP_THREADS [4]  SERVE_CONC [128]
#   T_BUILD T_TESTS T_STEP_BL T_STEP_TORCH T_MEM T_SERVE: per-stage timeouts, s
set -uo pipefail # no -e: a failing stage is recorded and the next one runs

SELF=$(cd "$(dirname "$0")" && pwd)/$(basename "$0")
ROOT=$(dirname "$(dirname "$SELF")")
cd "$ROOT" || exit 1

# ---- configuration (exported: each stage runs in its own process) ----------
: "${OUT:=runs/gpu-$(date +%Y%m%d-%H%M%S)}"
: "${GPU_DEVICE:=cuda}" "${BUILD:=build-gpu}" "${CMAKE_ARGS:=}" "${PY:=python3}"
: "${DEBS:=runs/gpu-debs}" "${DEPS_PREFIX:=/tmp/gpu-deps}" "${BUDGET:=480}"
: "${STAGES:=deps env build tests step table memory serve}"
: "${MODELS:=mlp,cnn}" "${BATCHES:=1,8,32,128,512,2048,8192,32768}" "${LATENCY:=1}"
: "${MIN_TIME:=0.3}" "${RUNS:=3}" "${CAP:=10}" "${MODES:=eager,graph}" "${H2D_MODELS:=mlp}"
: "${TORCH_TF32:=default}" "${BL_TF32:=off}"
: "${MEM_MODELS:=mlp,cnn}" "${MEM_BATCHES:=512,8192,32768}" "${MEM_BUDGET:=auto}"
: "${SERVE_MODEL:=mlp}" "${SERVE_SETTINGS:=b1 dyn adaptive}" "${SLO:=10}" "${SERVE_DUR:=1}"
: "${RATES_B1:=1000,2000,4000,6000,8000,12000,16000}"
: "${RATES_DYN:=2000,4000,8000,16000,24000,32000,48000,64000}"
: "${SERVE_HTTP_THREADS:=4}" "${SERVE_CONC:=128}"
: "${T_BUILD:=180}" "${T_TESTS:=90}" "${T_STEP_BL:=150}" "${T_STEP_TORCH:=170}"
: "${T_MEM:=75}" "${T_SERVE:=110}"
if [ -z "${WORK:-}" ]; then WORK=$(mktemp -d /tmp/gpu-work.XXXXXX); fi
mkdir -p "$OUT" "$WORK"
OUT=$(cd "$OUT" && pwd) WORK=$(cd "$WORK" && pwd)
: "${GPU_ORIG_LD=${LD_LIBRARY_PATH:-}}" # python keeps the library path it came with
ON_GPU=0
[[ $GPU_DEVICE == cuda* ]] && ON_GPU=1
export OUT WORK GPU_DEVICE BUILD CMAKE_ARGS PY DEBS DEPS_PREFIX MODELS BATCHES LATENCY \
    MIN_TIME RUNS CAP MODES H2D_MODELS MEM_MODELS MEM_BATCHES MEM_BUDGET SERVE_MODEL \
    SERVE_SETTINGS SLO SERVE_DUR RATES_B1 RATES_DYN SERVE_HTTP_THREADS SERVE_CONC GPU_ORIG_LD \
    ON_GPU T_STEP_BL T_STEP_TORCH TORCH_TF32 BL_TF32
STATE=$WORK/stage.env # what stage deps found, for the stages after it
DATA=tests/data/fmnist-sample

# ---- helpers --------------------------------------------------------------
# py ARGS: the torch python, with the library path it started with.
py() { LD_LIBRARY_PATH=$GPU_ORIG_LD "$PY" "$@"; }
# left: seconds this stage may still use (STAGE_END is set by the runner).
left() { echo $((STAGE_END - $(date +%s))); }
# tmo LIMIT: LIMIT, or what is left of the stage if that is less (at least 5).
tmo() {
    local l
    l=$(left)
    [ "$l" -lt "$1" ] && echo $((l > 5 ? l : 5)) || echo "$1"
}
need_build() {
    if [ ! -x "$BUILD/batchlab" ] || [ ! -x "$BUILD/bench_step" ]; then
        echo "no build ($BUILD/batchlab, $BUILD/bench_step): skipped"
        return 3
    fi
}
# records WHO: stdin's lines, each prefixed with its producer, onto step_raw.tsv and
# the console, line by line (a run cut off keeps what it printed)
records() { sed -u "s/^/$1\t/" | tee -a "$OUT/step_raw.tsv"; }

# ---- stages ---------------------------------------------------------------
stage_deps() {
    local missing=() m
    command -v pkg-config >/dev/null || echo "pkg-config: not installed"
    for m in openblas libcjson libmicrohttpd libcurl zlib cmocka; do
        pkg-config --exists "$m" 2>/dev/null || missing+=("$m")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "MISSING (pkg-config): ${missing[*]}"
        if compgen -G "$DEBS/*.deb" >/dev/null; then
            echo "unpacking the carried packages in $DEBS into $DEPS_PREFIX"
            bash bench/gpu_deps.sh install "$DEBS" "$DEPS_PREFIX" >"$WORK/deps.env" || return 1
            cat "$WORK/deps.env" >>"$STATE"
            # shellcheck disable=SC1090,SC1091
            . "$WORK/deps.env"
            missing=()
            for m in openblas libcjson libmicrohttpd libcurl zlib cmocka; do
                pkg-config --exists "$m" 2>/dev/null || missing+=("$m")
            done
            echo "still missing after unpacking: ${missing[*]:-nothing}"
        else
            echo "no carried packages in $DEBS (bench/gpu_deps.sh fetch, then carry it);" \
                "there is no network to install them"
        fi
    else
        echo "pkg-config finds openblas libcjson libmicrohttpd libcurl zlib cmocka"
    fi
    local can_build=1 tests=ON
    for m in "${missing[@]}"; do
        case $m in
        cmocka) tests=OFF ;;
        *) can_build=0 ;;
        esac
    done
    [ $can_build = 1 ] || echo "CANNOT BUILD batchlab (missing: ${missing[*]}): only the PyTorch parts run"
    [ $tests = ON ] || echo "cmocka missing: configuring with -DBL_TESTS=OFF (no ctest)"
    # CUDA: nvcc, cuBLAS and cuDNN where CMake looks (the CUDA toolkit), else cuDNN
    # from the python wheel (nvidia-cudnn), passed to CMake by path.
    local extra="" nvcc cudnn_lib="" cudnn_inc="" d
    nvcc=$(command -v nvcc || ls /usr/local/cuda/bin/nvcc 2>/dev/null || true)
    echo "nvcc: ${nvcc:-NOT FOUND}"
    if [ -n "$nvcc" ]; then
        [ "$nvcc" = "$(command -v nvcc)" ] || echo "export PATH=$(dirname "$nvcc"):\$PATH" >>"$STATE"
        local cuda_root
        cuda_root=$(dirname "$(dirname "$(readlink -f "$nvcc")")")
        local libs=("$cuda_root"/lib64/libcublas.so* "$cuda_root"/lib/libcublas.so*)
        echo "cuBLAS: $(compgen -G "${libs[0]}" || compgen -G "${libs[-1]}" || echo 'NOT FOUND beside nvcc')"
        for d in "$cuda_root/lib64" "$cuda_root/lib" /usr/lib/x86_64-linux-gnu /usr/local/cuda/lib64; do
            if [ -z "$cudnn_lib" ] && compgen -G "$d/libcudnn.so*" >/dev/null; then cudnn_lib=$d; fi
        done
        if [ -n "$cudnn_lib" ]; then
            echo "cuDNN: $cudnn_lib (where CMake looks)"
        else
            d=$(py -c 'import nvidia.cudnn as c; print(list(c.__path__)[0])' 2>/dev/null || true)
            if [ -n "$d" ] && compgen -G "$d/lib/libcudnn.so*" >/dev/null; then
                libs=("$d"/lib/libcudnn.so*)
                cudnn_lib=${libs[0]} cudnn_inc=$d/include
                echo "cuDNN: the python wheel's, $cudnn_lib"
                extra="-DBL_CUDNN_LIB=$cudnn_lib -DBL_CUDNN_INCLUDE=$cudnn_inc"
                echo "export LD_LIBRARY_PATH=$d/lib\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}" >>"$STATE"
            else
                echo "cuDNN: NOT FOUND (the build will have no CUDA backend)"
            fi
        fi
    fi
    {
        echo "export CAN_BUILD=$can_build BL_TESTS=$tests"
        echo "export CMAKE_EXTRA='$extra'"
    } >>"$STATE"
    [ $can_build = 1 ]
}

stage_env() {
    {
        echo "date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
        echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo '? (no .git here)')"
        echo "nproc: $(nproc); memory: $(free -g | awk '/Mem:/ { print $2 " GB" }')"
        grep -m1 PRETTY_NAME /etc/os-release
        nvidia-smi || echo "nvidia-smi: not available"
        nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm,power.limit \
            --format=csv 2>/dev/null
        nvcc --version 2>/dev/null | tail -2 || echo "nvcc: not found"
        cmake --version | head -1
        echo "ninja: $(ninja --version 2>/dev/null || echo none); $(cc --version | head -1)"
        py -c 'import torch; a = torch.cuda.is_available()
print("torch", torch.__version__, "cuda", torch.version.cuda, "available", a,
      torch.cuda.get_device_name(0) if a else "")' 2>&1 | tail -1
    } | tee "$OUT/env.txt"
}

stage_build() {
    [ "${CAN_BUILD:-1}" = 1 ] || { echo "build dependencies missing (stage deps): skipped"; return 3; }
    local gen=() log=$WORK/build.log
    command -v ninja >/dev/null && [ ! -f "$BUILD/Makefile" ] && gen=(-G Ninja)
    # shellcheck disable=SC2086
    if ! cmake -S . -B "$BUILD" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release -DBL_TESTS="${BL_TESTS:-ON}" \
        ${CMAKE_EXTRA:-} $CMAKE_ARGS >"$log" 2>&1; then
        tail -30 "$log"
        return 1
    fi
    grep "batchlab: CUDA" "$log"
    grep -q "batchlab: CUDA compiler 1" "$log" ||
        echo "WARNING: configured WITHOUT the CUDA backend (see $log): --device cuda will fail"
    if ! cmake --build "$BUILD" -j"$(nproc)" >>"$log" 2>&1; then
        grep -m20 -E "error|Error" "$log"
        tail -20 "$log"
        return 1
    fi
    echo "built: $(ls "$BUILD"/batchlab "$BUILD"/bench_step)"
}

stage_tests() {
    need_build || return 3
    "$BUILD/batchlab" info
    [ "${BL_TESTS:-ON}" = ON ] || { echo "no tests (cmocka missing)"; return 3; }
    # every test once more on the GPU (name@cuda), several at a time
    local j=$(($(nproc) / 2))
    ctest --test-dir "$BUILD" -R cuda --output-on-failure --no-tests=error --timeout 80 -j $((j > 0 ? j : 1))
}

stage_step() {
    local rc=0 m r t raw=$OUT/step_raw.tsv modes=$MODES
    # batchlab: one process per model, rows in ascending B, a row that cannot be
    # set up (out of memory) or whose first step is over CAP s is skipped
    if need_build; then
        for m in ${MODELS//,/ }; do
            t=$(tmo $((T_STEP_BL / 2)))
            echo "== batchlab $m (timeout ${t}s)"
            timeout -k 5 "$t" "$BUILD/bench_step" --device "$GPU_DEVICE" --models "$m" \
                --batches "$BATCHES" --latency "${LATENCY:-none}" --no-sgemm --keep-going --mem \
                --cap "$CAP" --min-time "$MIN_TIME" --runs "$RUNS" \
                $([ "$BL_TF32" = on ] && echo --tf32) | records batchlab
            r=${PIPESTATUS[0]}
            if [ "$r" = 124 ] || [ "$r" = 137 ]; then
                printf 'batchlab\tskip\t%s\t-\tstep\ttimed out after %s s\n' "$m" "$t" >>"$raw"
            fi
            [ "$r" = 0 ] || rc=$r
        done
    else
        rc=4 # PyTorch only
    fi
    nvidia-smi --query-gpu=clocks.sm,clocks.mem,temperature.gpu,power.draw --format=csv 2>/dev/null
    # PyTorch: one process per (model, mode), each with its own timeout
    [ "$ON_GPU" = 1 ] || modes=eager
    t=$(tmo "$T_STEP_TORCH")
    echo "== PyTorch $modes (timeout ${t}s)"
    timeout -k 5 "$t" env LD_LIBRARY_PATH="$GPU_ORIG_LD" "$PY" bench/peer_torch.py \
        --device "$GPU_DEVICE" --mode "$modes" --models "$MODELS" --batches "$BATCHES" \
        --latency "$LATENCY" --threads 1 --min-time "$MIN_TIME" --runs "$RUNS" --cap "$CAP" \
        --tf32 "$TORCH_TF32" --worker-timeout $((t / 3)) | records torch
    r=${PIPESTATUS[0]}
    [ "$r" = 0 ] || rc=$r
    if [ "$ON_GPU" = 1 ] && [ -n "$H2D_MODELS" ] && [ "$(left)" -gt 15 ]; then
        t=$(tmo 60)
        echo "== PyTorch eager, batch copied from host memory every step (timeout ${t}s)"
        timeout -k 5 "$t" env LD_LIBRARY_PATH="$GPU_ORIG_LD" "$PY" bench/peer_torch.py \
            --device "$GPU_DEVICE" --mode eager --host-input --models "$H2D_MODELS" \
            --batches "$BATCHES" --latency "" --threads 1 --min-time "$MIN_TIME" --runs "$RUNS" \
            --cap "$CAP" --tf32 "$TORCH_TF32" --worker-timeout "$t" | records torch
        r=${PIPESTATUS[0]}
        [ "$r" = 0 ] || rc=$r
    fi
    return "$rc"
}

stage_table() {
    py bench/gpu_table.py "$OUT/step_raw.tsv" --out "$OUT/step_table.md" \
        --title "Training step on $GPU_DEVICE, samples/s"
}

stage_memory() {
    need_build || return 3
    py bench/gpu_mem.py --batchlab "$BUILD/batchlab" --bench "$BUILD/bench_step" \
        --device "$GPU_DEVICE" --models "$MEM_MODELS" --batches "$MEM_BATCHES" \
        --budget "$MEM_BUDGET" --data "$DATA" --min-time 0.2 --timeout 40 \
        --deadline "$(left)" --torch-raw "$OUT/step_raw.tsv" --out "$OUT/memory.md" \
        --raw "$WORK/memory.tsv"
}

# The best median rate within the objective: "rate p99 avg_batch max_batch", or "0".
serve_best() {
    awk -F, -v slo="$SLO" 'NR > 1 && $5 <= slo && $9 == 0 && $2 > b { b = $2; p = $5; ab = $10; mb = $11 }
        END { if (b) printf "%.0f %.2f %.1f %.0f\n", b, p, ab, mb; else print 0 }' "$1"
}

stage_serve() {
    need_build || return 3
    local ck=$WORK/serve-$SERVE_MODEL.safetensors name args rates pid port rc=0 t
    local bl=$BUILD/batchlab
    "$bl" train --quiet --data "$DATA" --model "$SERVE_MODEL" --epochs 1 --save "$ck" >/dev/null ||
        return 1
    {
        echo "## Serving $SERVE_MODEL on $GPU_DEVICE: throughput at p99 <= $SLO ms"
        echo
        echo "batchlab load --sweep, binary requests of 1 sample, open loop, $SERVE_DUR s per rate,"
        echo "one round; server --http-threads $SERVE_HTTP_THREADS, load --concurrency $SERVE_CONC"
        echo
        echo "| setting | best rate within the objective, req/s | its p99, ms | avg batch | max batch |"
        echo "|---|---:|---:|---:|---:|"
    } >"$OUT/serve.md"
    declare -A best=()
    for name in $SERVE_SETTINGS; do
        case $name in
        b1) args="--max-batch 1" rates=$RATES_B1 ;;
        dyn) args="--max-batch 128" rates=$RATES_DYN ;;
        adaptive) args="--max-batch 128 --slo-p99-ms $SLO" rates=$RATES_DYN ;;
        *) echo "unknown serve setting $name" && continue ;;
        esac
        [ "$(left)" -gt 20 ] || { echo "$name: out of time" && rc=1 && continue; }
        rm -f "$WORK/serve-$name.port"
        # shellcheck disable=SC2086
        "$bl" serve "$ck" --name m --port 0 --port-file "$WORK/serve-$name.port" --quiet \
            --device "$GPU_DEVICE" --http-threads "$SERVE_HTTP_THREADS" $args \
            2>"$WORK/serve-$name.server.log" &
        pid=$!
        for _ in $(seq 1 300); do
            [ -s "$WORK/serve-$name.port" ] && break
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if [ ! -s "$WORK/serve-$name.port" ]; then
            echo "$name: the server did not start:"
            tail -5 "$WORK/serve-$name.server.log"
            kill -TERM "$pid" 2>/dev/null
            wait "$pid" 2>/dev/null
            echo "| \`serve $args\` | did not start | | | |" >>"$OUT/serve.md"
            rc=1
            continue
        fi
        port=$(cat "$WORK/serve-$name.port")
        t=$(tmo 45)
        echo "== $name: batchlab serve $args; load --sweep $rates (timeout ${t}s)"
        timeout -k 5 "$t" "$bl" load --url "http://127.0.0.1:$port" --model m --sweep "$rates" \
            --duration "$SERVE_DUR" --warmup 0.5 --timeout 2 --format binary \
            --input "$DATA/t10k-images-idx3-ubyte.gz" --concurrency "$SERVE_CONC" \
            --csv "$WORK/serve-$name.csv" --slo-ms "$SLO" >"$WORK/serve-$name.load.txt" 2>&1 || rc=1
        kill -TERM "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
        tail -3 "$WORK/serve-$name.server.log"
        if [ -s "$WORK/serve-$name.csv" ]; then
            cat "$WORK/serve-$name.csv"
            read -r rate p ab mb < <(serve_best "$WORK/serve-$name.csv")
            best[$name]=$rate
            echo "| \`serve $args\` | $rate | ${p:--} | ${ab:--} | ${mb:--} |" >>"$OUT/serve.md"
        else
            tail -5 "$WORK/serve-$name.load.txt"
            echo "| \`serve $args\` | no result | | | |" >>"$OUT/serve.md"
        fi
    done
    if [ "${best[b1]:-0}" != 0 ] && [ "${best[dyn]:-0}" != 0 ]; then
        echo >>"$OUT/serve.md"
        awk -v a="${best[dyn]}" -v b="${best[b1]}" 'BEGIN { printf "dynamic batching (max batch 128) against max batch 1: %s\n", (b > 0 ? sprintf("%.1fx", a / b) : "-") }' >>"$OUT/serve.md"
    fi
    echo >>"$OUT/serve.md"
    echo "A rate counts when its p99 is within $SLO ms and no request failed; 0: none did." >>"$OUT/serve.md"
    return "$rc"
}

# ---- one stage in its own process (the runner calls this) -----------------
if [ "${1:-}" = --stage ]; then
    # shellcheck disable=SC1090
    [ -f "$STATE" ] && . "$STATE"
    STAGE_END=$2
    "stage_$3"
    exit $?
fi

# ---- the runner -----------------------------------------------------------
T0=$(date +%s)
SUMMARY=$OUT/summary.txt
{
    echo "bench/gpu.sh on $(hostname) at $(date -u '+%Y-%m-%d %H:%M:%S UTC'), device $GPU_DEVICE, budget ${BUDGET}s"
    printf '%-8s %-26s %6s\n' stage status seconds
} >"$SUMMARY"
: >"$OUT/step_raw.tsv"
: >"$STATE"
pack() { tar -czf "$OUT/logs.tar.gz.tmp" -C "$WORK" --exclude='*.safetensors' . &&
    mv "$OUT/logs.tar.gz.tmp" "$OUT/logs.tar.gz"; }

declare -A LIMIT=([deps]=60 [env]=30 [build]=$T_BUILD [tests]=$T_TESTS [step]=$((T_STEP_BL + T_STEP_TORCH))
    [table]=30 [memory]=$T_MEM [serve]=$T_SERVE)
for s in $STAGES; do
    [ -n "${LIMIT[$s]:-}" ] || { echo "gpu.sh: unknown stage $s" >&2; continue; }
    now=$(date +%s)
    left_all=$((T0 + BUDGET - now - 10)) # 10 s kept for packing
    lim=${LIMIT[$s]}
    [ "$left_all" -lt "$lim" ] && lim=$left_all
    [ "$s" = table ] && [ "$lim" -lt 10 ] && lim=10 # seconds, and what the rest was for
    if [ "$lim" -lt 10 ]; then
        printf '%-8s %-26s %6s\n' "$s" "skipped: out of time" 0 >>"$SUMMARY"
        echo "== $s: skipped, out of time"
        continue
    fi
    echo "== $s (up to ${lim}s; log $WORK/$s.log)"
    timeout -k 10 "$lim" bash "$SELF" --stage $((now + lim)) "$s" 2>&1 | tee "$WORK/$s.log"
    rc=${PIPESTATUS[0]}
    dt=$(($(date +%s) - now))
    case $rc in
    0) st=ok ;;
    124 | 137) st="TIMEOUT after ${lim}s" ;;
    3) st="skipped (see its log)" ;;
    4) st="partial: PyTorch only" ;;
    *) st="FAILED (exit $rc)" ;;
    esac
    printf '%-8s %-26s %6s\n' "$s" "$st" "$dt" >>"$SUMMARY"
    echo "== $s: $st in ${dt}s"
    pack
done
echo "total: $(($(date +%s) - T0))s; logs: $WORK, packed in $OUT/logs.tar.gz" >>"$SUMMARY"
pack
for f in step_table.md memory.md serve.md summary.txt; do
    [ -s "$OUT/$f" ] && { echo; echo "==== $f"; cat "$OUT/$f"; }
done
echo
echo "files in $OUT:" "$(cd "$OUT" && printf '%s ' *)"
