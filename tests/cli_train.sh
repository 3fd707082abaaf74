#!/usr/bin/env bash
# CLI behaviour on the good path, on the committed sample: evaluation spacing in the
# log, --json, --report files, --batch auto decisions, predict agreeing with eval,
# and find/tune end to end. Usage: cli_train.sh BATCHLAB DATA_DIR
set -u
BL=$1
SAMPLE=$2/fmnist-sample
T=$(mktemp -d /tmp/bltest.XXXXXX)
trap 'rm -rf "$T"' EXIT
pass=0
fail=0
check() { # name condition-command...
    local name=$1
    shift
    if "$@"; then echo "ok   $name"; pass=$((pass + 1)); else echo "FAIL $name"; fail=$((fail + 1)); fi
}
count() { grep -c "$1" "$2" 2>/dev/null || echo 0; }

M="flatten,dense:32,relu,dense:10"
$BL train --quiet --data "$SAMPLE" --model $M --epochs 2 --batch 30 --eval-samples 100 \
    --log "$T/a.jsonl" --save "$T/a.safetensors" --json >"$T/a.json" 2>"$T/a.err"
check "train exits 0" test $? -eq 0
# 540 training samples x 2 epochs = 36 updates of 30; an evaluation every 100 samples
# (10 of them) plus the two epoch ends, which coincide with none of them.
check "36 step records" test "$(count '"type":"step"' "$T/a.jsonl")" -eq 36
check "2 epoch records" test "$(count '"type":"epoch"' "$T/a.jsonl")" -eq 2
check "12 eval records" test "$(count '"type":"eval"' "$T/a.jsonl")" -eq 12
check "--json has test_accuracy" grep -q '"test_accuracy"' "$T/a.json"
check "step records carry lr and samples/s" grep -q '"lr":.*"samples_per_s"' "$T/a.jsonl"

# predict's argmax agrees with eval's accuracy on the same data
acc=$($BL eval --checkpoint "$T/a.safetensors" --data "$SAMPLE" --json | grep '"accuracy"' | grep -o '[0-9.]*')
$BL predict --checkpoint "$T/a.safetensors" --input "$SAMPLE/t10k-images-idx3-ubyte.gz" \
    --output-kind class --output "$T/p.csv" 2>/dev/null
gunzip -c "$SAMPLE/t10k-labels-idx1-ubyte.gz" | tail -c 200 | od -An -tu1 -v | tr -s ' ' '\n' | sed '/^$/d' >"$T/labels"
hits=$(tail -n +2 "$T/p.csv" | paste -d' ' - "$T/labels" | awk '$1 == $2' | wc -l)
check "predict classes match eval accuracy ($hits/200 vs $acc)" \
    awk -v h="$hits" -v a="$acc" 'BEGIN { exit !(h / 200 - a < 1e-9 && a - h / 200 < 1e-9) }'

# --batch auto: evaluations logged, decisions logged with a reason, report written
$BL train --quiet --data "$SAMPLE" --model $M --batch auto --base-batch 16 --min-batch 8 \
    --max-batch 128 --adapt-every 5 --epochs 3 --log "$T/auto.jsonl" --report "$T/rep" >/dev/null 2>&1
check "auto exits 0" test $? -eq 0
check "auto logs decisions with reasons" grep -q '"type":"decision".*"reason"' "$T/auto.jsonl"
check "report.md leads with the batch size" grep -q '^\*\*Batch size: [0-9]*\*\*, chosen while training by goodput' "$T/rep/report.md"
check "report.html written" grep -q '<table' "$T/rep/report.html"
check "report plots written" test -s "$T/rep/plots/accuracy.png" -a -s "$T/rep/plots/goodput.svg"
check "no temporary files left" test -z "$(find "$T/rep" -name '*.tmp.*')"

# --resume: --steps counts every update of the run, the checkpoint's schedule goes on.
R="$BL train --data $SAMPLE --model $M --batch 30 --schedule cosine --min-lr 0.001"
$R --quiet --steps 34 --save "$T/r.safetensors" --log "$T/r.jsonl" >/dev/null 2>&1
out=$($R --steps 5 --resume "$T/r.safetensors" --save "$T/r.safetensors" --log "$T/r.jsonl" 2>&1)
check "resume at 34 with --steps 5 exits 0" test $? -eq 0
check "... says there is nothing to train" grep -q "nothing to train" <<<"$out"
check "... and trains nothing" test "$(count '"type":"step"' "$T/r.jsonl")" -eq 34
out=$($R --steps 40 --resume "$T/r.safetensors" --save "$T/r.safetensors" --log "$T/r.jsonl" 2>&1)
check "resume at 34 with --steps 40 trains 6 more" test "$(count '"type":"step"' "$T/r.jsonl")" -eq 40
check "... continuing the 34-update cosine, with a note" grep -q "cosine schedule runs over 34 updates" <<<"$out"
# The 34-update cosine ended at its floor: updates 35-40 run at --min-lr, not on a 40-update path.
lrs=$(grep '"type":"step"' "$T/r.jsonl" | tail -6 | grep -o '"lr":[0-9.e-]*' | sort -u)
check "... at the stored schedule's learning rate ($lrs)" test "$lrs" = '"lr":0.0010000000474974513'
out=$($R --steps 50 --min-lr 0.01 --resume "$T/r.safetensors" 2>&1)
check "an explicit other --min-lr on resume is refused" grep -q "error: .*--min-lr 0.001, but this run asks for 0.01" <<<"$out"
# A save killed mid-write left its temporary file; the next save of that target removes it.
dead=$(sh -c 'echo $$') # a finished process: its pid is no one's now
echo "half a checkpoint" >"$T/r.safetensors.tmp.$dead.AbC123"
echo "another target's" >"$T/other.safetensors.tmp.$dead.AbC123"
$R --quiet --steps 42 --resume "$T/r.safetensors" --save "$T/r.safetensors" >/dev/null 2>&1
check "a dead writer's temporary file is removed at the next save" test ! -e "$T/r.safetensors.tmp.$dead.AbC123"
check "... and another target's is left alone" test -e "$T/other.safetensors.tmp.$dead.AbC123"

# find and tune end to end
out=$($BL find --memory 100M --model $M --data "$SAMPLE" --json)
check "find --memory answers a batch" grep -q '"batch":' <<<"$out"
# --memory auto: the device's free memory (the host's MemAvailable on the CPU backends)
avail=$(($(sed -n 's/^MemAvailable: *\([0-9]*\) kB/\1/p' /proc/meminfo) * 1024))
out=$($BL find --memory auto --model $M --data "$SAMPLE" --max-batch 256 --json 2>&1 | tr -d ' \t\n')
budget=$(sed -n 's/.*"budget_bytes":\([0-9.e+]*\).*/\1/p' <<<"$out")
check "find --memory auto budgets the available memory ($budget vs $avail bytes)" python3 -c \
    "import sys; b, a = float(sys.argv[1]), float(sys.argv[2]); sys.exit(not 0.8 * a < b < 1.25 * a)" \
    "${budget:-0}" "$avail"
check "... and says whose memory it is" grep -q '"budget_source":"[a-z]' <<<"$out"
out=$($BL find --memory lots --model $M --data "$SAMPLE" 2>&1)
check "find --memory lots is refused, naming auto" grep -q "error: --memory expects .* or auto, got 'lots'" <<<"$out"
$BL tune --data "$SAMPLE" --model $M --batches 16,32 --lrs 0.02,0.1 --min-examples 100 \
    --max-examples 300 --eta 2 --out "$T/tune" >/dev/null 2>&1
check "tune exits 0" test $? -eq 0
check "tune writes results.csv with 4 configurations" test "$(tail -n +2 "$T/tune/results.csv" | wc -l)" -eq 4
check "tune writes its landscape plot" test -s "$T/tune/plots/landscape.png"

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
