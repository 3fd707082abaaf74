#!/usr/bin/env bash
# CLI behaviour on bad input: every case must exit nonzero WITHOUT a signal
# (status < 128) and print a message naming the file, line, column, flag or
# token at fault. Usage: cli_errors.sh BATCHLAB DATA_DIR
set -u
BL=$1
DATA=$2
SAMPLE=$DATA/fmnist-sample
T=$(mktemp -d /tmp/bltest.XXXXXX)
trap 'rm -rf "$T"' EXIT
source "$(dirname "$0")/shell_lib.sh"



TRAIN=("$BL" train --quiet --data "$SAMPLE" --epochs 1)

# A good checkpoint to evaluate against.
expect_ok "train a small model" "${TRAIN[@]}" --model "flatten,dense:16,relu,dense:10" --save "$T/good.safetensors"

expect_error "missing file" "$T/nope.csv" "$BL" train --data "$T/nope.csv"
expect_error "missing dataset dir" "apt-get install dataset-fashion-mnist" "$BL" train --data "$T"

mkdir -p "$T/trunc"
cp "$SAMPLE"/train-labels-idx1-ubyte.gz "$SAMPLE"/t10k-* "$T/trunc/"
head -c 3000 "$SAMPLE/train-images-idx3-ubyte.gz" >"$T/trunc/train-images-idx3-ubyte.gz"
expect_error "truncated .gz" "train-images-idx3-ubyte.gz.*(truncat|corrupt|end of file)" "${TRAIN[@]/$SAMPLE/$T/trunc}"

printf '\x00\x00\x08\x07\x00\x00\x00\x01' >"$T/badmagic.idx"
expect_error "IDX magic mismatch" "badmagic.idx.*(magic|dimension|type)" "$BL" train --data "$T/badmagic.idx" --labels "$SAMPLE/train-labels-idx1-ubyte.gz"
expect_error "IDX count mismatch" "(count|mismatch|600|200)" "$BL" train --data "$SAMPLE/t10k-images-idx3-ubyte.gz" --labels "$SAMPLE/train-labels-idx1-ubyte.gz"

printf '1,2,0\n3,4,1\n5,x7,0\n' >"$T/bad.csv"
expect_error "CSV non-numeric cell" "bad.csv: row 3, column 2" "$BL" train --data "$T/bad.csv"
printf '1,2,0\n3,4\n' >"$T/ragged.csv"
expect_error "CSV ragged row" "ragged.csv: row 2" "$BL" train --data "$T/ragged.csv"

# 784 features + label 12, against the 10-class checkpoint.
awk 'BEGIN { for (i = 0; i < 784; i++) printf "0,"; print "12" }' >"$T/label12.csv"
expect_error "label out of range" "label 12" "$BL" eval --checkpoint "$T/good.safetensors" --data "$T/label12.csv"
printf '1,2,3,0\n4,5,6,1\n' >"$T/small.csv"
expect_error "input size mismatch" "small.csv.*3 values.*784" "$BL" eval --checkpoint "$T/good.safetensors" --data "$T/small.csv"

expect_error "model spec typo" "token 2 'maxpol2'.*did you mean 'maxpool'" "${TRAIN[@]}" --model "conv3x3:8,relu,maxpol2,flatten,dense:10"
expect_error "model spec bad value" "token 0 'dense:abc'" "${TRAIN[@]}" --model "dense:abc,dense:10"
expect_error "model output width" "10 classes" "${TRAIN[@]}" --model "flatten,dense:5"
expect_error "batch size 0" "batch.*0" "${TRAIN[@]}" --batch 0
expect_error "batch larger than dataset" "batch size 100000.*540" "${TRAIN[@]}" --batch 100000
expect_error "micro-batch does not divide" "micro-batch 5 must divide" "${TRAIN[@]}" --batch 32 --micro-batch 5
expect_error "unknown flag" "unknown option '--bogus'" "${TRAIN[@]}" --bogus 3
expect_error "non-numeric flag value" "--lr expects a finite number, got 'fast'" "${TRAIN[@]}" --lr fast
expect_error "unknown optimizer" "sgd.*adam" "${TRAIN[@]}" --optimizer rmsprop
expect_error "unknown loss (train)" "--loss must be xent or mse, got 'l1'" "${TRAIN[@]}" --loss l1
expect_error "unknown loss (sweep)" "--loss must be xent or mse, got 'l1'" "$BL" sweep --data "$SAMPLE" --out "$T/sw" --loss l1
expect_error "momentum with adam (sweep)" "--momentum applies to" "$BL" sweep --data "$SAMPLE" --out "$T/sw" --optimizer adam --momentum 0.5
expect_error "unknown command" "unknown command 'trian'" "$BL" trian

# NaN: a huge learning rate diverges; the message names the step and suggests a lower
# lr; the checkpoint written before stays loadable and finite.
cp "$T/good.safetensors" "$T/ck.safetensors"
expect_error "NaN loss" "(NaN|infinite|non-finite).*step [0-9]+.*(lower|--lr)" "${TRAIN[@]}" --model "flatten,dense:16,relu,dense:10" --lr 1e30 --save "$T/ck.safetensors" --save-every 1
expect_ok "checkpoint still good after NaN" "$BL" eval --checkpoint "$T/ck.safetensors" --data "$SAMPLE"
ls "$T" | grep -q '\.tmp\.' && bad "temp files left behind: $(ls "$T")"

printf 'garbage' >"$T/corrupt.safetensors"
expect_error "corrupt checkpoint" "corrupt.safetensors" "$BL" eval --checkpoint "$T/corrupt.safetensors" --data "$SAMPLE"
expect_error "predict without input" "--input" "$BL" predict --checkpoint "$T/good.safetensors"

# ISA levels: a forced level shows in info; an unknown one, or one beyond this CPU, is refused.
expect_error "unknown ISA level" "BATCHLAB_ISA: unknown ISA level 'avx9'" env BATCHLAB_ISA=avx9 "$BL" train --steps 1
if "$BL" info --json | tr -d ' \t\n' | grep -q '"avx512":false'; then
    expect_error "ISA level beyond the CPU" "BATCHLAB_ISA=avx512: this CPU cannot run" env BATCHLAB_ISA=avx512 "$BL" eval --checkpoint "$T/good.safetensors"
fi
out=$(BATCHLAB_ISA=baseline "$BL" info)
if grep -q '^isa *baseline: forced by BATCHLAB_ISA=baseline' <<<"$out"; then
    ok "info names a forced ISA level"
else
    bad "info does not name the forced level" "$out"
fi

finish
