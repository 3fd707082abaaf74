#!/usr/bin/env bash
# Outputs on awkward files: symbolic links (written through to their target, as
# editors and cp do; a dangling link or a loop refused, naming the path), a full
# disk (/dev/full, and a real full filesystem: a 64 KiB tmpfs when this runs as
# root and mount works, otherwise that part says SKIP), and damaged state
# files read back. Nothing may be lost silently: a write that fails must fail
# the command, naming the file, and leave the previous file whole.
# Usage: cli_files.sh BATCHLAB DATA_DIR
set -u
BL=$1
SAMPLE=$2/fmnist-sample
T=$(mktemp -d /tmp/blfiles.XXXXXX)
MNT=""
cleanup() {
    [ -n "$MNT" ] && umount "$MNT" 2>/dev/null
    rm -rf "$T"
}
trap cleanup EXIT
. "$(dirname "$0")/shell_lib.sh"
TRAIN=("$BL" train --data "$SAMPLE" --model "flatten,dense:8,relu,dense:10" --batch 32 --threads 1 --quiet)

# Every line of a JSON Lines file is one JSON object (python3 when present, else a shape check).
jsonl_ok() {
    [ ! -s "$1" ] && return 0
    [ "$(tail -c 1 "$1" | od -An -c | tr -d ' ')" = '\n' ] || return 1
    if command -v python3 >/dev/null 2>&1; then
        python3 -c 'import json,sys
for l in open(sys.argv[1]): assert isinstance(json.loads(l), dict)' "$1" 2>/dev/null
    else
        ! grep -qv '^{.*}$' "$1"
    fi
}

# ---- --save, --log through symbolic links ----------------------------------------------
S=$T/links
mkdir -p "$S/real"
echo old >"$S/real/a.safetensors"
echo old >"$S/real/b.safetensors"
ln -s real/a.safetensors "$S/link"
ln -s real/b.safetensors "$S/hop1"
ln -s hop1 "$S/hop2"
ln -s missing.safetensors "$S/dangling"
ln -s loop2 "$S/loop1"
ln -s loop1 "$S/loop2"
ln -s dloop2 "$S/dloop1" # a loop of its own for reading, whatever --save did to the other
ln -s dloop1 "$S/dloop2"
"${TRAIN[@]}" --steps 2 --save "$S/link" >"$T/out" 2>&1
check "--save onto a link exits 0" test $? -eq 0
check "... the link is still a link" test -L "$S/link"
check "... its target holds the new checkpoint" test "$(stat -c %s "$S/real/a.safetensors")" -gt 1000
"$BL" eval --checkpoint "$S/link" --data "$SAMPLE" >/dev/null 2>&1
check "... which eval loads through the link" test $? -eq 0
check "... and no temporary file is left beside the link or the target" \
    test -z "$(find "$S" -name '*.tmp.*')"
"${TRAIN[@]}" --steps 2 --save "$S/hop2" >"$T/out" 2>&1
check "--save onto a link to a link writes the final target" \
    test $? -eq 0 -a -L "$S/hop2" -a -L "$S/hop1" -a "$(stat -c %s "$S/real/b.safetensors")" -gt 1000
"${TRAIN[@]}" --steps 2 --save "$S/dangling" >"$T/out" 2>&1
rc=$?
check "--save onto a dangling link fails (exit 1)" test $rc -eq 1
check "... naming the link and saying why" grep -q "$S/dangling: is a dangling symbolic link" "$T/out"
check "... and creates nothing" test -L "$S/dangling" -a ! -e "$S/missing.safetensors"
"${TRAIN[@]}" --steps 2 --save "$S/loop1" >"$T/out" 2>&1
rc=$?
check "--save onto a symlink loop fails (exit 1, not 0)" test $rc -eq 1
check "... naming the path: too many levels of symbolic links" \
    grep -q "$S/loop1: too many levels of symbolic links" "$T/out"
check "... and the loop is left as it was" test -L "$S/loop1" -a -L "$S/loop2"
echo old >"$S/real/run.jsonl"
ln -s real/run.jsonl "$S/log"
"${TRAIN[@]}" --steps 2 --log "$S/log" >"$T/out" 2>&1
check "--log onto a link writes the target's log and keeps the link" \
    test $? -eq 0 -a -L "$S/log" -a "$(grep -c '"type":"step"' "$S/real/run.jsonl")" -eq 2
"${TRAIN[@]}" --steps 2 --log "$S/dangling" >"$T/out" 2>&1
check "--log onto a dangling link fails, naming it" grep -q "$S/dangling: is a dangling" "$T/out"
"${TRAIN[@]}" --steps 1 --data "$S/dloop1" >"$T/out" 2>&1
rc=$?
check "--data on a symlink loop fails with exit 1" test $rc -eq 1
check "... saying: too many levels of symbolic links, naming the path" \
    grep -qi "$S/dloop1: .*too many levels of symbolic links" "$T/out"
"$BL" eval --checkpoint "$S/dloop1" --data "$SAMPLE" >"$T/out" 2>&1
check "--checkpoint on a symlink loop: the same" \
    grep -qi "$S/dloop1: .*too many levels of symbolic links" "$T/out"

# ---- a full disk: /dev/full ---------------------------------------------------------------
if [ -c /dev/full ]; then
    "${TRAIN[@]}" --steps 3 --log /dev/full >"$T/out" 2>&1
    rc=$?
    check "--log on a full device fails (it exited 0, with the log lost)" test $rc -eq 1
    check "... naming the file and the reason" grep -q "/dev/full: .*No space left on device" "$T/out"
else
    echo "SKIP /dev/full: not a character device here"
fi

# ---- a real full filesystem (root only: a 64 KiB tmpfs) -----------------------------------
F=$T/full
mkdir -p "$F"
if [ "$(id -u)" -eq 0 ] && mount -t tmpfs -o size=64k tmpfs "$F" 2>/dev/null; then
    MNT=$F
    "${TRAIN[@]}" --steps 2 --save "$F/m.safetensors" >"$T/out" 2>&1
    check "a checkpoint fits the empty 64 KiB filesystem" test $? -eq 0
    cp "$F/m.safetensors" "$T/old.safetensors"
    "${TRAIN[@]}" --steps 4 --save "$F/m.safetensors" >"$T/out" 2>&1
    rc=$?
    check "a second one (needing room for both) fails with exit 1" test $rc -eq 1
    check "... naming the checkpoint and the reason" \
        grep -q "$F/m.safetensors: .*No space left on device" "$T/out"
    check "... leaving the old checkpoint byte for byte" cmp -s "$F/m.safetensors" "$T/old.safetensors"
    check "... and no temporary file" test -z "$(find "$F" -name '*.tmp.*')"
    rm -f "$F/m.safetensors"
    dd if=/dev/zero of="$F/fill" bs=4096 >/dev/null 2>&1 # until the filesystem is full
    truncate -s -8192 "$F/fill"                          # two pages left
    "${TRAIN[@]}" --steps 60 --log "$F/run.jsonl" >"$T/out" 2>&1
    rc=$?
    check "train --log filling the disk fails with exit 1 (it exited 0)" test $rc -eq 1
    check "... naming the log and the reason" grep -q "$F/run.jsonl: .*No space left on device" "$T/out"
    check "... keeping what fitted ($(wc -l <"$F/run.jsonl") lines), every line whole" \
        jsonl_ok "$F/run.jsonl"
    check "... and some of it did fit" test -s "$F/run.jsonl"
    rm -f "$F/run.jsonl"
    "${TRAIN[@]}" --steps 2 --report "$F/rep" >"$T/out" 2>&1
    rc=$?
    check "train --report on the full disk fails with exit 1, naming a file of the report" \
        test $rc -eq 1 -a -n "$(grep "$F/rep/" "$T/out")"
    check "... and leaves no temporary file" test -z "$(find "$F" -name '*.tmp.*')"
    for f in "$F"/rep/*.md "$F"/rep/*.html; do
        [ -e "$f" ] || continue
        check "... $f is whole" test -s "$f"
    done
    umount "$F" && MNT=""
else
    echo "SKIP full filesystem: mounting a 64 KiB tmpfs needs root (CI runs as root)"
fi

# ---- damaged state read back --------------------------------------------------------------
U=$T/tune
"$BL" tune --data "$SAMPLE" --model "flatten,dense:8,relu,dense:10" --batches 16 --lrs 0.05 \
    --min-examples 64 --max-examples 128 --eta 2 --threads 1 --out "$U" >/dev/null 2>&1
check "a small tune runs" test $? -eq 0
trial=$(ls "$U"/trials/*.json | head -1)
echo '{"val_accuracy": [0.5, 0.6], "val_loss": [1.0], "examples": 64}' >"$trial"
"$BL" tune --data "$SAMPLE" --model "flatten,dense:8,relu,dense:10" --batches 16 --lrs 0.05 \
    --min-examples 64 --max-examples 128 --eta 2 --threads 1 --out "$U" >"$T/out" 2>&1
rc=$?
check "a damaged tune trial record is not a crash (exit $rc)" test $rc -lt 128

finish
