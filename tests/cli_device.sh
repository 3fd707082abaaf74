#!/usr/bin/env bash
# The backend seam from the command line: --device picks where the model lives,
# and the opaque backend (the CPU kernels over memory the host cannot read)
# trains, evaluates and predicts bit for bit as the CPU backend does. A host
# access that reached past the seam would kill the opaque run with SIGSEGV.
# Usage: cli_device.sh BATCHLAB DATA_DIR
set -u
BL=$1
SAMPLE=$2/fmnist-sample
T=$(mktemp -d /tmp/bltest.XXXXXX)
trap 'rm -rf "$T"' EXIT
source "$(dirname "$0")/shell_lib.sh"

out=$("$BL" info --json 2>&1)
check "info lists both backends" grep -q '"backends":.*"cpu",.*"opaque"' <<<"$(tr -d ' \t\n' <<<"$out")"
out=$("$BL" info --device opaque --json 2>&1)
check "info --device opaque uses it" grep -q '"backend":.*"opaque"' <<<"$out"
# The memory model counts the opaque backend's staged batch: 64 x (784 floats + a label).
pc=$("$BL" info --device cpu --model mlp --batch 64 --json | sed -n 's/.*"predicted_bytes":[^0-9]*\([0-9]*\).*/\1/p')
po=$("$BL" info --device opaque --model mlp --batch 64 --json | sed -n 's/.*"predicted_bytes":[^0-9]*\([0-9]*\).*/\1/p')
check "info's memory model follows --device ($pc vs $po bytes)" test "$((po - pc))" -eq $((64 * (784 * 4 + 4)))
expect_error "unknown --device" "--device.*'gpu'.*cpu, opaque, cuda or cuda:N" "$BL" info --device gpu
expect_error "unknown BATCHLAB_DEVICE" "--device.*'tpu'.*cpu, opaque, cuda or cuda:N" env BATCHLAB_DEVICE=tpu "$BL" info
expect_error "--device cuda:x" "--device.*'cuda:x'.*cuda:N" "$BL" info --device cuda:x
expect_error "--device on train" "--device.*'x'" "$BL" train --data "$SAMPLE" --device x

# Every layer kind the seam carries: conv (+ fused ReLU), pools, batch norm,
# dropout, dense (+ fused ReLU), an activation of its own; Adam and momentum;
# gradient accumulation; a resume.
M="conv3x3:4,bn,relu,maxpool2,conv3x3:4,relu,avgpool2,flatten,dropout:0.2,dense:16,tanh,dense:10"
for dev in cpu opaque; do
    expect_ok "train --device $dev (adam, accumulation)" "$BL" train --quiet --device $dev \
        --data "$SAMPLE" --model "$M" --steps 12 --batch 24 --micro-batch 12 --optimizer adam \
        --lr 0.003 --seed 5 --save "$T/$dev.safetensors"
    expect_ok "resume --device $dev (momentum)" "$BL" train --quiet --device $dev \
        --data "$SAMPLE" --model "flatten,dense:32,relu,dense:10" --steps 6 --batch 32 \
        --optimizer momentum --lr 0.05 --seed 3 --save "$T/$dev-m1.safetensors"
    expect_ok "continue --device $dev" "$BL" train --quiet --device $dev --data "$SAMPLE" \
        --model "flatten,dense:32,relu,dense:10" --steps 10 --batch 32 --optimizer momentum \
        --lr 0.05 --seed 3 --resume "$T/$dev-m1.safetensors" --save "$T/$dev-m2.safetensors"
    "$BL" eval --device $dev --checkpoint "$T/$dev.safetensors" --data "$SAMPLE" --json \
        2>&1 | grep -v '"seconds"\|"checkpoint"' >"$T/$dev-eval.json"
    "$BL" predict --device $dev --checkpoint "$T/$dev.safetensors" \
        --input "$SAMPLE/t10k-images-idx3-ubyte.gz" --output "$T/$dev.csv" >/dev/null 2>&1
done
check "same checkpoint bytes on cpu and opaque" cmp "$T/cpu.safetensors" "$T/opaque.safetensors"
check "same resumed checkpoint on cpu and opaque" cmp "$T/cpu-m2.safetensors" "$T/opaque-m2.safetensors"
check "same evaluation (loss, accuracy) on cpu and opaque" cmp "$T/cpu-eval.json" "$T/opaque-eval.json"
check "evaluation reports an accuracy" grep -q '"accuracy"' "$T/cpu-eval.json"
check "same predictions on cpu and opaque" cmp "$T/cpu.csv" "$T/opaque.csv"
check "predictions are there (200 rows and a header)" test "$(wc -l <"$T/cpu.csv")" -eq 201
# The comparison is live: another seed gives another checkpoint.
"$BL" train --quiet --device opaque --data "$SAMPLE" --model "$M" --steps 12 --batch 24 \
    --micro-batch 12 --optimizer adam --lr 0.003 --seed 6 --save "$T/other.safetensors" 2>/dev/null
check "another seed differs" bash -c "! cmp -s '$T/cpu.safetensors' '$T/other.safetensors'"

# --tf32 is CUDA's: elsewhere it is refused, naming the flag and the device.
expect_error "--tf32 on cpu" "--tf32: device cpu has no TF32 math" \
    "$BL" train --device cpu --data "$SAMPLE" --tf32 --steps 1
expect_error "--tf32 on opaque (serve)" "--tf32: device opaque has no TF32 math" \
    "$BL" serve --device opaque --tf32 --checkpoint "$T/cpu.safetensors" --port 0

# CUDA: where no GPU can be used, --device cuda says why; where one can, the
# run matches the CPU's to float rounding (other summation orders).
if tr -d ' \t\n' <<<"$("$BL" info --json)" | grep -q '"cuda":true'; then
    expect_ok "train --device cuda (adam, accumulation)" "$BL" train --quiet --device cuda \
        --data "$SAMPLE" --model "$M" --steps 12 --batch 24 --micro-batch 12 --optimizer adam \
        --lr 0.003 --seed 5 --save "$T/cuda.safetensors"
    for dev in cpu cuda; do
        "$BL" eval --device $dev --checkpoint "$T/cuda.safetensors" --data "$SAMPLE" --json \
            2>/dev/null | tr -d ' \t\n' | sed -n 's/.*"loss":\([-0-9.e+]*\).*/\1/p' >"$T/$dev-loss"
    done
    check "eval on cuda matches cpu ($(cat "$T/cpu-loss") vs $(cat "$T/cuda-loss"))" \
        python3 -c "import sys; a, b = float(sys.argv[1]), float(sys.argv[2]); sys.exit(abs(a - b) > 1e-4 * max(1, abs(a)))" \
        "$(cat "$T/cpu-loss")" "$(cat "$T/cuda-loss")"
    "$BL" eval --device cpu --checkpoint "$T/cpu.safetensors" --data "$SAMPLE" --json 2>/dev/null |
        tr -d ' \t\n' | sed -n 's/.*"loss":\([-0-9.e+]*\).*/\1/p' >"$T/cpu-trained-loss"
    check "training on cuda reaches the cpu's loss ($(cat "$T/cpu-trained-loss") vs $(cat "$T/cuda-loss"))" \
        python3 -c "import sys; a, b = float(sys.argv[1]), float(sys.argv[2]); sys.exit(abs(a - b) > 0.02 * max(1, abs(a)))" \
        "$(cat "$T/cpu-trained-loss")" "$(cat "$T/cuda-loss")"
    # --tf32: tensor cores change the products' rounding (10-bit mantissas), so the
    # weights differ from the fp32 run's, but training still reaches its loss.
    expect_ok "train --device cuda --tf32" "$BL" train --quiet --device cuda --tf32 \
        --data "$SAMPLE" --model "$M" --steps 12 --batch 24 --micro-batch 12 --optimizer adam \
        --lr 0.003 --seed 5 --save "$T/tf32.safetensors"
    check "--tf32 changes the weights" bash -c "! cmp -s '$T/cuda.safetensors' '$T/tf32.safetensors'"
    "$BL" eval --device cpu --checkpoint "$T/tf32.safetensors" --data "$SAMPLE" --json 2>/dev/null |
        tr -d ' \t\n' | sed -n 's/.*"loss":\([-0-9.e+]*\).*/\1/p' >"$T/tf32-loss"
    check "training with --tf32 reaches the fp32 loss ($(cat "$T/cuda-loss") vs $(cat "$T/tf32-loss"))" \
        python3 -c "import sys; a, b = float(sys.argv[1]), float(sys.argv[2]); sys.exit(abs(a - b) > 0.02 * max(1, abs(a)))" \
        "$(cat "$T/cuda-loss")" "$(cat "$T/tf32-loss")"
else
    expect_error "--device cuda without a usable GPU" "cuda.*(CUDA device|CUDA backend)" \
        "$BL" train --data "$SAMPLE" --device cuda --steps 1
fi

finish
