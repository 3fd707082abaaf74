#!/usr/bin/env bash
# Real tabular data through the CLI (issue 15): the normalisation `auto` picks and
# its result against scikit-learn, features constant in training, labels that are
# not class numbers, files told apart by content (any name, separator, line ending,
# gzip, header), NaN inputs refused before anything runs, integer class output and
# --quiet. Usage: cli_data.sh BATCHLAB DATA_DIR
set -u
BL=$1
DATA=$2
TAB=$DATA/tabular
T=$(mktemp -d /tmp/bltest.XXXXXX)
SRV=
trap '[ -n "$SRV" ] && kill -KILL "$SRV" 2>/dev/null; rm -rf "$T"' EXIT
source "$(dirname "$0")/shell_lib.sh"
# summary_field FILE ROW N: field N of the summary line starting with ROW.
summary_field() { awk -v r="$2" -v n="$3" '$1 == r { print $n }' "$1"; }
json_field() { grep "\"$2\"" "$1" | head -1 | sed 's/.*:[[:space:]]*//; s/,$//'; }

# ---- 1. normalisation: auto is per-feature standardisation on tabular data ------
# scales-*.csv (tests/data/tabular/gen_scales.py): 3 classes, features up to 10^5
# apart, the class signal in the small ones. scikit-learn 1.2.1's LogisticRegression()
# scores 0.8917 on the test file after StandardScaler (0.3000 on the raw features).
SKLEARN=0.8917
LOGREG=("$BL" train --model logreg --data "$TAB/scales-train.csv" --test "$TAB/scales-test.csv"
        --val-frac 0 --epochs 50 --batch 32)
"${LOGREG[@]}" --save "$T/auto.safetensors" >"$T/auto.out" 2>"$T/auto.err"
check "train on tabular CSV exits 0" test $? -eq 0
check "auto says it chose standard for a tabular CSV" \
    grep -qx 'normalisation: standard (auto: tabular CSV)' "$T/auto.err"
check "the header line is detected and reported" \
    grep -q "scales-train.csv: header detected: 'f0,f1,f2," "$T/auto.err"
auto=$(summary_field "$T/auto.out" test 5)
check "auto within 2 points of scikit-learn ($auto vs $SKLEARN)" \
    awk -v a="$auto" -v s="$SKLEARN" 'BEGIN { exit !(a != "" && a >= s - 0.02) }'
"${LOGREG[@]}" --norm unit --quiet --json >"$T/unit.json" 2>&1
unit=$(json_field "$T/unit.json" test_accuracy)
check "--norm unit is clearly worse there ($unit vs $auto)" \
    awk -v u="$unit" -v a="$auto" 'BEGIN { exit !(u != "" && u < a - 0.2) }'
# eval applies the normalisation stored in the checkpoint: the same accuracy
"$BL" eval --checkpoint "$T/auto.safetensors" --data "$TAB/scales-test.csv" --json >"$T/eval.json" 2>&1
ev=$(json_field "$T/eval.json" accuracy)
check "checkpoint stores norm standard" grep -aq '"norm":"standard"' "$T/auto.safetensors"
check "eval with the stored normalisation matches train's test accuracy ($ev)" \
    awk -v e="$ev" -v a="$auto" 'BEGIN { exit !(e != "" && e - a < 1e-4 && a - e < 1e-4) }'
# images keep one global scale
"$BL" train --data "$DATA/fmnist-sample" --model logreg --steps 1 --batch 32 >/dev/null 2>"$T/img.err"
check "auto picks unit for IDX images" grep -qx 'normalisation: unit (auto: image IDX)' "$T/img.err"

# ---- 2. a feature constant in training gets scale 1 -----------------------------
# Feature 2 is 0 in every training row and 1 in every test row. With a 1e-6 std
# floor it became 1e6 and the test loss ran into the thousands.
awk 'BEGIN { for (i = 0; i < 80; i++) printf "%g,0,%d\n", (i % 2 ? 1 : -1) * (1 + i % 5 / 10), i % 2 }' >"$T/const-train.csv"
awk 'BEGIN { for (i = 0; i < 20; i++) printf "%g,1,%d\n", (i % 2 ? 1 : -1) * (1 + i % 7 / 10), i % 2 }' >"$T/const-test.csv"
"$BL" train --model logreg --norm standard --data "$T/const-train.csv" --test "$T/const-test.csv" \
    --val-frac 0 --epochs 5 --batch 16 --quiet --json >"$T/const.json" 2>&1
loss=$(json_field "$T/const.json" test_loss)
check "constant training feature: test loss stays small ($loss)" \
    awk -v l="$loss" 'BEGIN { exit !(l != "" && l < 2) }'

# ---- 3. labels are class numbers ------------------------------------------------
awk 'BEGIN { for (i = 0; i < 30; i++) printf "%d,%d,%d\n", i, 2 * i, i % 3; print "5,5,500" }' >"$T/l500.csv"
awk 'BEGIN { for (i = 0; i < 30; i++) printf "%d,%d,%d\n", i, 2 * i, i % 3; print "5,5,1000000" }' >"$T/lbig.csv"
awk 'BEGIN { for (i = 0; i < 30; i++) printf "0,%d,%d\n", i, i % 3 }' >"$T/first0.csv"
SMALL=(--model logreg --batch 8 --epochs 1)
expect_error "a stray label names its row and says what to do" \
    "l500.csv: row 31: label 500, but the labels are 0..2 and 500 only .*remap them, or pass --classes K" \
    "$BL" train --data "$T/l500.csv" "${SMALL[@]}"
expect_error "a huge label is refused where it is" "lbig.csv: row 31, column 3: label '1000000' is too large" \
    "$BL" train --data "$T/lbig.csv" "${SMALL[@]}"
expect_error "one class in the training labels" "only one class \(0\) in the training labels: check --label-col" \
    "$BL" train --data "$T/first0.csv" --label-col first "${SMALL[@]}"
"$BL" train --data "$T/l500.csv" --classes 501 "${SMALL[@]}" --quiet --json >"$T/k.json" 2>&1
check "--classes 501 declares the classes (gaps allowed)" grep -q '"model":.*"flatten,dense:501"' "$T/k.json"
expect_error "--classes below a label" "label 500, but there are 3 classes" \
    "$BL" train --data "$T/l500.csv" --classes 3 "${SMALL[@]}"

# ---- 4. files by content: names, separators, line endings, gzip, headers --------
cp "$TAB/scales-train.csv" "$T/UPPER.CSV"
cp "$TAB/scales-train.csv" "$T/plain.txt"
tr ',' '\t' <"$TAB/scales-train.csv" >"$T/tabs.tsv"
tr ',' ';' <"$TAB/scales-train.csv" >"$T/semi.csv"
gzip -c "$TAB/scales-train.csv" >"$T/table.csv.gz"
tr '\n' '\r' <"$TAB/scales-train.csv" >"$T/cr-only.csv"
sed 's/$/\r/' "$TAB/scales-train.csv" >"$T/crlf.csv"
for f in UPPER.CSV plain.txt tabs.tsv semi.csv table.csv.gz cr-only.csv crlf.csv; do
    expect_ok "reads $f" "$BL" train --data "$T/$f" "${SMALL[@]}" --quiet
done
expect_error "--no-header on a header names the cell and suggests --header" \
    "UPPER.CSV: row 1, column 1: 'f0' is not a number \(if row 1 is a header, pass --header\)" \
    "$BL" train --data "$T/UPPER.CSV" --no-header "${SMALL[@]}"
printf '1,2,0\r3,4\r5,6,1\r' >"$T/ragged-cr.csv"
expect_error "CR-only lines: a ragged row names row 2, no raw CR" "ragged-cr.csv: row 2, column 3" \
    "$BL" train --data "$T/ragged-cr.csv" "${SMALL[@]}"
printf '1,2,0\n3,\0334,1\n5,6,1\n' >"$T/esc.csv"
expect_error "a control character in a cell is escaped" "esc.csv: row 2, column 2: '\\\\x1b4'" \
    "$BL" train --data "$T/esc.csv" "${SMALL[@]}"
cp "$DATA/fmnist-sample/t10k-images-idx3-ubyte.gz" "$T/images.bin"
cp "$DATA/fmnist-sample/t10k-labels-idx1-ubyte.gz" "$T/labels.csv"
expect_ok "IDX by content, whatever the names" "$BL" train --data "$T/images.bin" --labels "$T/labels.csv" \
    "${SMALL[@]}" --quiet

# ---- 5. NaN inputs are refused at load time, naming the element -----------------
# npy_write FILE DESCR SHAPE BYTES: a v1 .npy (printf escapes in BYTES).
npy_write() {
    local dict="{'descr': '$2', 'fortran_order': False, 'shape': $3, }"
    printf '\223NUMPY\001\000' >"$1"
    printf "\\$(printf %03o ${#dict})\\000" >>"$1"
    printf '%s' "$dict" >>"$1"
    printf "$4" >>"$1"
}
ONE='\000\000\200\077' ZERO='\000\000\000\000' NAN='\000\000\300\177'
npy_write "$T/x.npy" '<f4' '(4, 2)' "$ONE$ZERO$ZERO$ONE$ONE$ZERO$ZERO$ONE"
npy_write "$T/xnan.npy" '<f4' '(4, 2)' "$ONE$ZERO$ZERO$ONE$ONE$ZERO$NAN$ONE"
L0='\000\000\000\000\000\000\000\000' L1='\001\000\000\000\000\000\000\000'
npy_write "$T/y.npy" '<i8' '(4,)' "$L0$L1$L0$L1"
expect_ok "train on a clean .npy" "$BL" train --data "$T/x.npy" --labels "$T/y.npy" --model logreg \
    --batch 2 --val-frac 0 --epochs 2 --quiet --save "$T/np.safetensors"
NANMSG='xnan.npy: element \[3, 0\] .* is nan: every input must be a finite number'
expect_error "eval refuses NaN inputs" "$NANMSG" \
    "$BL" eval --checkpoint "$T/np.safetensors" --data "$T/xnan.npy" --labels "$T/y.npy" --json
expect_error "predict refuses NaN inputs" "$NANMSG" \
    "$BL" predict --checkpoint "$T/np.safetensors" --input "$T/xnan.npy" --output "$T/nan.csv"
check "predict wrote nothing" test ! -e "$T/nan.csv"
expect_error "train --norm none refuses NaN before training" "$NANMSG" \
    "$BL" train --data "$T/xnan.npy" --labels "$T/y.npy" --norm none --model logreg --batch 2
expect_error "a .npy without --labels says so" "x.npy is a NumPy array \(.npy\): .*pass --labels" \
    "$BL" train --data "$T/x.npy" --model logreg --batch 2

# ---- 9. integer classes; --quiet is quiet ----------------------------------------
"$BL" predict --checkpoint "$T/auto.safetensors" --input "$TAB/scales-test.csv" --label-col last \
    --output-kind class --output "$T/cls.npy" 2>/dev/null
check "predict --output-kind class writes int64 .npy" grep -aq "'descr': '<i8'" "$T/cls.npy"
"$BL" predict --checkpoint "$T/auto.safetensors" --input "$TAB/scales-test.csv" --label-col last \
    --output-kind class >"$T/cls.csv" 2>/dev/null
check "predict --output-kind class writes integers in CSV" \
    test "$(tail -n +2 "$T/cls.csv" | grep -cvx '[0-2]')" -eq 0
"${LOGREG[@]}" --epochs 1 --quiet >"$T/q.out" 2>"$T/q.err"
check "train --quiet prints nothing" test ! -s "$T/q.out" -a ! -s "$T/q.err"
"${LOGREG[@]}" --epochs 1 --quiet --json >"$T/qj.out" 2>"$T/qj.err"
check "train --quiet --json prints only the JSON" \
    test "$(head -c1 "$T/qj.out")" = "{" -a "$(tail -n1 "$T/qj.out")" = "}" -a ! -s "$T/qj.err"
"$BL" sweep --data "$TAB/scales-train.csv" --model logreg --target-acc 0.5 --batches 16,32 \
    --lr-grid 1 --max-epochs 2 --out "$T/sweep" --quiet >"$T/sw.out" 2>"$T/sw.err"
check "sweep --quiet prints nothing" test $? -eq 0 -a ! -s "$T/sw.out" -a ! -s "$T/sw.err"
"$BL" serve "$T/auto.safetensors" --port 0 --port-file "$T/port" --quiet >"$T/srv.out" 2>"$T/srv.err" &
SRV=$!
for _ in $(seq 1 100); do [ -s "$T/port" ] && break; sleep 0.1; done
kill -TERM "$SRV" 2>/dev/null
wait "$SRV"
SRV=
check "serve --quiet prints nothing on stdout" test -s "$T/port" -a ! -s "$T/srv.out"

finish
