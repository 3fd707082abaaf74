#!/usr/bin/env bash
# kill -9 never costs a checkpoint (issue 16). A training run that saves after every
# step (--save-every 1) and appends to its log is killed with SIGKILL at spread-out
# moments, ROUNDS times, each round resuming from what the last one left. After
# every kill: the checkpoint (once one exists) loads and evaluates, every log line
# is a whole JSON object, and the next run cleans up the temporary file a killed
# writer may have left. The kill moments are spread over the run by a fixed
# sequence, not timed: the test asserts nothing about how long anything takes.
# Usage: cli_kill.sh BATCHLAB DATA_DIR
set -u
BL=$1
SAMPLE=$2/fmnist-sample
ROUNDS=${KILL_ROUNDS:-24}
T=$(mktemp -d /tmp/blkill.XXXXXX)
PID=""
trap '[ -n "$PID" ] && kill -KILL "$PID" 2>/dev/null; rm -rf "$T"' EXIT
. "$(dirname "$0")/shell_lib.sh"

CK=$T/ck.safetensors
LOG=$T/run.jsonl
# A model wide enough that a save takes a while (about 3 MB), so kills land inside writes too.
MODEL="flatten,dense:1024,relu,dense:10"
survived=0
mid_save=0
for round in $(seq 1 "$ROUNDS"); do
    resume=()
    [ -e "$CK" ] && resume=(--resume "$CK")
    "$BL" train --quiet --data "$SAMPLE" --model "$MODEL" --batch 32 --threads 1 \
        --steps 100000 --save-every 1 --save "$CK" --log "$LOG" "${resume[@]}" \
        >"$T/out" 2>&1 &
    PID=$!
    # 20..260 ms in 24 steps of a stride coprime to the range, so the moments spread.
    delay_ms=$((20 + (round * 37) % 241))
    sleep "0.$(printf '%03d' "$delay_ms")"
    if ! kill -0 "$PID" 2>/dev/null; then
        wait "$PID"
        bad "round $round: the run ended before the kill (exit $?)" "$(cat "$T/out")"
        PID=""
        continue
    fi
    kill -KILL "$PID"
    wait "$PID" 2>/dev/null
    PID=""
    compgen -G "$CK.tmp.*" >/dev/null && mid_save=$((mid_save + 1))
    if [ -e "$CK" ] && ! "$BL" eval --checkpoint "$CK" --data "$SAMPLE" >"$T/eval" 2>&1; then
        bad "round $round (kill after ${delay_ms} ms): the checkpoint does not evaluate" "$(cat "$T/eval")"
        continue
    fi
    if [ -e "$LOG" ] && grep -qvE '^\{.*\}$' "$LOG"; then
        bad "round $round: a torn log line" "$(grep -vE '^\{.*\}$' "$LOG" | head -2)"
        continue
    fi
    survived=$((survived + 1))
done
if [ $survived -eq "$ROUNDS" ]; then ok "$ROUNDS kills -9, each left a checkpoint that evaluates and a whole log"; fi
if [ -e "$CK" ]; then ok "a checkpoint exists after the kills"; else bad "no kill left a checkpoint: the runs never reached a save"; fi
# One more run, not killed, must clean up the orphans of killed writers and resume.
"$BL" train --quiet --data "$SAMPLE" --model "$MODEL" --batch 32 --threads 1 --steps 1 \
    --save "$CK" --resume "$CK" >"$T/out" 2>&1
check "a run after the kills resumes and ends cleanly" test $? -eq 0
check "... and leaves no temporary file behind" test -z "$(compgen -G "$CK.tmp.*")"
echo "kills: $ROUNDS, survived: $survived, during a save (temporary file left): $mid_save"
finish
