#!/usr/bin/env bash
# Out of memory ends the process with an error, never a hang (issue 16). train (an
# MLP, and a CNN whose Winograd layer calls BLAS from every pool thread) and eval run
# under address-space limits (ulimit -v) from too small to start up to enough for the
# run, each in a subshell under `timeout`. Every run must end in time with status 0,
# or 1..127 and a message naming memory; at least one must fail that way. A checkpoint
# or log a failed run leaves must be whole: the checkpoint evaluates and every log
# line is a complete JSON object. Nothing here asserts how long anything took: the
# timeout only turns a hang into a failure.
# Usage: cli_oom.sh BATCHLAB DATA_DIR
set -u
BL=$1
SAMPLE=$2/fmnist-sample
# A sanitizer runtime reserves terabytes of address space up front, so no limit here
# leaves it room to start: the test means nothing there.
if grep -qaE '__(asan|tsan|msan)_init' "$BL"; then
    echo "skipped: $BL is a sanitizer build, which cannot run under ulimit -v"
    exit 77
fi
T=$(mktemp -d /tmp/bltest.XXXXXX)
trap 'rm -rf "$T"' EXIT
. "$(dirname "$0")/shell_lib.sh"
failed_on_memory=0

# A checkpoint to evaluate, made without a limit.
if ! "$BL" train --quiet --data "$SAMPLE" --model mlp --steps 2 --save "$T/good.safetensors"; then
    echo "FAIL could not train the checkpoint for eval"
    exit 1
fi

# under_limit KB NAME ARGS...: runs batchlab ARGS under ulimit -v KB and checks the ending.
under_limit() {
    local kb=$1 name=$2
    shift 2
    local out rc
    # -k: a process stuck in a BLAS call ignores SIGTERM (train catches it to stop cleanly
    # between steps, and a stuck step never gets there).
    out=$( (ulimit -v "$kb" && exec timeout -k 5 30 "$BL" "$@") 2>&1)
    rc=$?
    if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
        bad "$name at ulimit -v $kb: still running after 30 s (hang)" "$out"
    elif [ $rc -ge 128 ]; then
        bad "$name at ulimit -v $kb: killed by signal $((rc - 128))" "$out"
    elif [ $rc -ne 0 ] && ! grep -qi "memory" <<<"$out"; then
        bad "$name at ulimit -v $kb: exit status $rc without a message naming memory" "$out"
    else
        [ $rc -ne 0 ] && failed_on_memory=$((failed_on_memory + 1))
        ok "$name at ulimit -v $kb: exit status $rc$([ $rc -ne 0 ] && echo ": $(grep -i -m1 memory <<<"$out" | cut -c1-110)")"
    fi
}

# whole NAME: the checkpoint and log a run left, if any, are complete.
whole() {
    local name=$1
    if [ -e "$T/ck.safetensors" ] && ! "$BL" eval --checkpoint "$T/ck.safetensors" --data "$SAMPLE" >/dev/null 2>&1; then
        bad "$name: left a checkpoint that does not evaluate"
    fi
    if [ -e "$T/log.jsonl" ] && grep -qvE '^\{.*\}$' "$T/log.jsonl"; then
        bad "$name: left a torn log line" "$(grep -vE '^\{.*\}$' "$T/log.jsonl")"
    fi
    if compgen -G "$T/ck.safetensors.tmp*" >/dev/null; then bad "$name: left a temporary file"; fi
    rm -f "$T/ck.safetensors" "$T/log.jsonl"
}

# Fixed limits, from too small for OpenBLAS's buffers to room for the whole run...
for kb in 80000 150000 300000 600000 1000000; do
    under_limit $kb "train mlp" train --data "$SAMPLE" --model mlp --steps 5 \
        --save "$T/ck.safetensors" --log "$T/log.jsonl"
    whole "train mlp at $kb"
    under_limit $kb "train cnn" train --data "$SAMPLE" --model "conv3x3:8,relu,maxpool2,flatten,dense:10" \
        --steps 2 --batch 16
    under_limit $kb "eval" eval --checkpoint "$T/good.safetensors" --data "$SAMPLE"
done
# ...and limits just above what batchlab says OpenBLAS needs on this machine (it depends on
# the thread count), where a wide model's own buffers are what runs out.
least=$( (ulimit -v 80000 && exec timeout -k 5 30 "$BL" eval --checkpoint "$T/good.safetensors" \
    --data "$SAMPLE") 2>&1 |
    sed -n 's/.*at least \([0-9]*\) (kB).*/\1/p')
if [ -z "$least" ]; then
    bad "ulimit -v 80000 did not give the address-space message with the limit to ask for"
else
    for extra_mb in 0 16 48 96 256; do
        kb=$((least + extra_mb * 1024))
        under_limit $kb "train wide" train --data "$SAMPLE" --model "flatten,dense:32768,relu,dense:10" \
            --optimizer adam --batch 512 --steps 2 --save "$T/ck.safetensors" --log "$T/log.jsonl"
        whole "train wide at $kb"
    done
fi
if [ $failed_on_memory -eq 0 ]; then
    bad "no limit made a run fail: the limits no longer reach out-of-memory on this machine"
fi

finish
