#!/usr/bin/env bash
# batchlab sweep and batchlab noise end to end on the committed Fashion-MNIST
# sample: a small sweep's folder (CSV rows, JSON, logs, plots, report), a
# re-run that skips every finished trial, extending a sweep, refusing a folder
# of another sweep, Ctrl-C leaving only complete files, and bad input naming
# the flag at fault. Usage: cli_sweep.sh BATCHLAB DATA_DIR
set -u
BL=$1
DATA=$2
SAMPLE=$DATA/fmnist-sample
T=$(mktemp -d /tmp/blsweep.XXXXXX)
trap 'rm -rf "$T"' EXIT
source "$(dirname "$0")/shell_lib.sh"

is_png() { [ -s "$1" ] && [ "$(head -c 8 "$1" | od -An -tx1 | tr -d ' \n')" = "89504e470d0a1a0a" ]; }
is_svg() { [ -s "$1" ] && grep -q "<svg" "$1"; }
# A JSON document: python3 parses it when present; otherwise it must at least
# open and close as an object.
is_json() {
    if command -v python3 >/dev/null 2>&1; then
        python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$1" 2>/dev/null
    else
        [ "$(head -c 1 "$1")" = "{" ] && [ "$(tail -c 2 "$1" | head -c 1)" = "}" ]
    fi
}

S=$T/s1
SWEEP=("$BL" sweep --data "$SAMPLE" --model "flatten,dense:16,relu,dense:10" --target-acc 0.6
       --max-epochs 10 --eval-every-samples 128 --noise-draws 8 --noise-small 16 --noise-big 128
       --threads 1 --out "$S")

out=$("${SWEEP[@]}" --batches 16,32,64 2>&1)
if [ $? -eq 0 ]; then ok "small sweep runs"; else bad "small sweep runs" "$out"; fi

# results.csv: a header and one row per trial (3 batch sizes x 3 learning rates), 21 fields each.
rows=$(tail -n +2 "$S/results.csv" | wc -l)
[ "$rows" -eq 9 ] && ok "results.csv has 9 trial rows" || bad "results.csv has $rows rows, want 9"
nf=$(awk -F, '{ print NF }' "$S/results.csv" | sort -u | tr '\n' ' ')
[ "$nf" = "21 " ] && ok "results.csv rows all have 21 fields" || bad "results.csv field counts: $nf"
best=$(awk -F, 'NR > 1 && $5 == 1 && $4 == "reached"' "$S/results.csv" | wc -l)
[ "$best" -ge 2 ] && ok "at least two batch sizes reached the target ($best)" || bad "only $best best rows"
grep -q '^batch,lr_mult,lr,status,best,recommended,steps,examples' "$S/results.csv" && ok "results.csv header" || bad "results.csv header"

for j in "$S/results.json" "$S/sweep.json" "$S"/trials/*.json; do
    is_json "$j" || bad "$j is not valid JSON"
done
ok "results.json, sweep.json and trials/*.json parse"
grep -q '"b_crit"' "$S/results.json" && grep -q '"recommendation"' "$S/results.json" &&
    ok "results.json has the fit and a recommendation" || bad "results.json lacks fit/recommendation"
[ "$(ls "$S"/trials/*.json | wc -l)" -eq 9 ] && ok "9 trial records" || bad "trial records: $(ls "$S/trials")"
[ "$(ls "$S"/logs/*.jsonl | wc -l)" -eq 9 ] && ok "9 trial logs" || bad "trial logs: $(ls "$S/logs")"
grep -q '"type":"eval"' "$S"/logs/B16_*.jsonl && grep -q '"type":"step"' "$S"/logs/B16_*.jsonl &&
    ok "logs hold step and eval records" || bad "logs lack step/eval records"
[ -z "$(find "$S" -name '*.part' -o -name '*.tmp.*')" ] && ok "no temporary files left" || bad "temporary files: $(find "$S" -name '*.part' -o -name '*.tmp.*')"

if command -v gnuplot >/dev/null 2>&1; then
    n=0
    for p in steps_vs_batch examples_vs_steps time_vs_batch gap_vs_batch noise_vs_batch \
             noise_over_training val_acc_over_training; do
        if is_png "$S/plots/$p.png" && is_svg "$S/plots/$p.svg"; then n=$((n + 1)); else bad "plot $p missing or empty"; fi
    done
    [ $n -eq 7 ] && ok "7 plots as non-empty PNG and SVG"
else
    grep -q "No plots" "$S/report.md" && ok "report says why there are no plots (no gnuplot)" || bad "no gnuplot, and the report does not say so"
fi
head -1 "$S/report.md" | grep -q '^# Batch-size sweep' && grep -q '^## Recommendation' "$S/report.md" &&
    grep -q 'Use batch size' "$S/report.md" && ok "report.md opens with the recommendation" || bad "report.md"
grep -q '<html' "$S/report.html" && grep -q '<h2>Recommendation</h2>' "$S/report.html" && ok "report.html" || bad "report.html"

# Running again skips every finished trial and rewrites nothing in trials/ or logs/.
sum_before=$(cat "$S"/trials/*.json "$S"/logs/*.jsonl | cksum)
out=$("${SWEEP[@]}" --batches 16,32,64 2>&1)
if [ $? -eq 0 ] && grep -q "9 finished earlier and skipped" <<<"$out" &&
    [ "$(cat "$S"/trials/*.json "$S"/logs/*.jsonl | cksum)" = "$sum_before" ]; then
    ok "re-run skips the 9 finished trials"
else
    bad "re-run skips the finished trials" "$out"
fi
out=$("${SWEEP[@]}" --batches 16,32,64,128 2>&1)
if [ $? -eq 0 ] && grep -q "12 (9 finished earlier and skipped)" <<<"$out" && [ "$(tail -n +2 "$S/results.csv" | wc -l)" -eq 12 ]; then
    ok "extending with a batch size runs only its trials"
else
    bad "extending with a batch size" "$out"
fi
expect_error "refuses a folder with other settings" "different settings: lr is 0.05 there but 0.1 now" "${SWEEP[@]}" --lr 0.1

# On small data the default evaluation interval follows the data and the batch (540 rows:
# every max(B, 33) examples), so S is resolved to a few updates at every batch size; a fixed
# 4096 examples made every trial cross at 4096 whatever its batch. Short times print in ms.
Q=$T/resolution
out=$("$BL" sweep --data "$SAMPLE" --model "flatten,dense:16,relu,dense:10" --target-acc 0.6 \
    --max-epochs 10 --batches 8,16,32 --lr-grid 1 --noise-draws 0 --threads 1 --out "$Q" 2>&1)
if [ $? -eq 0 ]; then ok "sweep with the default evaluation interval runs"; else bad "sweep with the default interval" "$out"; fi
E=$(awk -F, 'NR > 1 && $4 == "reached" { print $8 }' "$Q/results.csv" | sort -u | tr '\n' ' ')
n_e=$(wc -w <<<"$E")
[ "$n_e" -ge 2 ] && awk -v e="$E" 'BEGIN { n = split(e, v, " "); for (i = 1; i <= n; i++) if (v[i] >= 2048) exit 1 }' &&
    ok "each batch size reaches the target at its own example count ($E)" ||
    bad "examples to the target: '$E' (want at least 2 distinct values, all below 2048)"
grep -q '"steps_resolution":' "$Q/results.json" && grep -q '| S resolved to |' "$Q/report.md" &&
    grep -q 'I = min(4096, max(B, n_train/16))' "$Q/report.md" &&
    ok "the report states the resolution of S and the interval rule" || bad "the report lacks the resolution of S"
res=$(grep -o '"steps_resolution":[[:space:]]*[0-9]*' "$Q/results.json" | tr -dc '0-9\n' | sort -n | tail -1)
[ -n "$res" ] && [ "$res" -le 4 ] && ok "S resolved to at most 4 updates ($res)" || bad "S resolution $res updates"
if grep -q ' ms' <<<"$out" && ! grep -qE '(^|[^0-9])0\.0 s' <<<"$out"; then
    ok "short times print in ms"
else
    bad "short times print in ms" "$out"
fi

# Ctrl-C: exit 130, a message saying how to continue, and only complete files.
I=$T/int
"$BL" sweep --data "$SAMPLE" --model mlp --batches 32,64 --lr-grid 1 --target-acc 0.999 --max-epochs 200 \
    --noise-draws 0 --threads 1 --quiet --out "$I" >"$T/int.out" 2>&1 &
pid=$!
sleep 1
kill -INT $pid
wait $pid
rc=$?
if [ $rc -eq 130 ] && grep -q "run the same command again" "$T/int.out" &&
    [ -z "$(find "$I" -name '*.part' -o -name '*.tmp.*')" ] && [ ! -e "$I/results.csv" ] && is_json "$I/sweep.json"; then
    ok "Ctrl-C exits 130 and leaves a consistent folder"
else
    bad "Ctrl-C (status $rc)" "$(cat "$T/int.out"; find "$I")"
fi

# Bad input names the flag.
B2=("$BL" sweep --data "$SAMPLE" --out "$T/bad")
expect_error "sweep: non-numeric batch" "--batches: 'abc'" "${B2[@]}" --target-acc 0.5 --batches 16,abc
expect_error "sweep: zero batch" "--batches: '0'" "${B2[@]}" --target-acc 0.5 --batches 16,0
expect_error "sweep: repeated batch" "--batches: 16 is listed twice" "${B2[@]}" --target-acc 0.5 --batches 16,16
expect_error "sweep: batch above the data" "--batches: 100000 exceeds the 540 training samples" "${B2[@]}" --target-acc 0.5 --batches 16,100000
expect_error "sweep: empty batch list" "--batches: ''" "${B2[@]}" --target-acc 0.5 --batches ""
expect_error "sweep: target accuracy above 1" "--target-acc 1.5 must be in \(0, 1\]" "${B2[@]}" --target-acc 1.5
expect_error "sweep: target accuracy 0" "--target-acc 0 must be in" "${B2[@]}" --target-acc 0
expect_error "sweep: negative target loss" "--target-loss -1 must be > 0" "${B2[@]}" --target-loss -1
expect_error "sweep: no target" "--target-acc X .* or --target-loss X" "${B2[@]}"
expect_error "sweep: two targets" "exactly one target" "${B2[@]}" --target-acc 0.5 --target-loss 1
expect_error "sweep: bad grid" "--lr-grid: '-2'" "${B2[@]}" --target-acc 0.5 --lr-grid 1,-2
expect_error "sweep: zero epochs" "--max-epochs 0 must be > 0" "${B2[@]}" --target-acc 0.5 --max-epochs 0
expect_error "sweep: noise batches" "--noise-small 64 must be at least 1 and below --noise-big 32" "${B2[@]}" --target-acc 0.5 --noise-small 64 --noise-big 32
expect_error "sweep: no output folder" "--out DIR is required" "$BL" sweep --data "$SAMPLE" --target-acc 0.5
expect_error "sweep: bad lr scale" "--lr-scale" "${B2[@]}" --target-acc 0.5 --lr-scale cubic
[ ! -e "$T/bad" ] && ok "bad input creates no output folder" || bad "bad input created $T/bad"

# batchlab noise on a small trained checkpoint, and its bad input.
"$BL" train --quiet --data "$SAMPLE" --epochs 2 --model "flatten,dense:16,relu,dense:10" --save "$T/m.safetensors" >/dev/null 2>&1
out=$("$BL" noise --checkpoint "$T/m.safetensors" --data "$SAMPLE" --small 8 --big 64 --draws 40 --json 2>&1)
if [ $? -eq 0 ] && grep -q '"noise_scale":' <<<"$out" && grep -q '"noise_scale_lo":' <<<"$out"; then
    ok "noise measures a checkpoint with an interval"
else
    bad "noise measures a checkpoint" "$out"
fi
N=("$BL" noise --data "$SAMPLE")
expect_error "noise: missing checkpoint file" "--checkpoint: $T/nope.safetensors" "${N[@]}" --checkpoint "$T/nope.safetensors"
expect_error "noise: no checkpoint" "--checkpoint PATH is required" "${N[@]}"
expect_error "noise: big not above small" "--big 8 must be larger than --small 8" "${N[@]}" --checkpoint "$T/m.safetensors" --small 8 --big 8
expect_error "noise: too few draws" "--draws 1" "${N[@]}" --checkpoint "$T/m.safetensors" --draws 1
expect_error "noise: big above the data" "--big 100000 exceeds the 600 samples" "${N[@]}" --checkpoint "$T/m.safetensors" --big 100000
expect_error "noise: bad confidence" "--confidence 1.5" "${N[@]}" --checkpoint "$T/m.safetensors" --confidence 1.5

finish
