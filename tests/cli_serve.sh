#!/usr/bin/env bash
# `batchlab serve` and `batchlab load` as a user runs them: a real process on a port
# the kernel picks (--port 0 --port-file), plain HTTP through bash's /dev/tcp (no curl
# binary needed), errors that must come back as JSON with the right status while the
# server keeps serving, batches that form, a sweep that writes CSV + PNG + SVG, and a
# SIGTERM in the middle of load that must not lose an accepted request.
# Every wait is a bounded loop; nothing asserts how long anything took.
# Usage: cli_serve.sh BATCHLAB DATA_DIR
set -u
BL=$1
DATA=$2
SAMPLE=$DATA/fmnist-sample
IMAGES=$SAMPLE/t10k-images-idx3-ubyte.gz
T=$(mktemp -d /tmp/bltest.XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; done
    rm -rf "$T"
}
trap cleanup EXIT
pass=0
fail=0
ok() { echo "ok   $1"; pass=$((pass + 1)); }
bad() { echo "FAIL $1"; fail=$((fail + 1)); }

# start_server NAME ARGS...: background server; sets SRV_PID and PORT (or fails).
start_server() {
    local name=$1
    shift
    rm -f "$T/$name.port"
    "$BL" serve "$T/mlp.safetensors" --name mlp --port 0 --port-file "$T/$name.port" "$@" \
        >"$T/$name.out" 2>"$T/$name.err" &
    SRV_PID=$!
    PIDS+=("$SRV_PID")
    for _ in $(seq 1 300); do
        [ -s "$T/$name.port" ] && break
        kill -0 "$SRV_PID" 2>/dev/null || break
        sleep 0.1
    done
    if [ ! -s "$T/$name.port" ]; then
        bad "server $name did not start: $(cat "$T/$name.err")"
        return 1
    fi
    PORT=$(cat "$T/$name.port")
}

# stop_server PID: SIGTERM, then wait (bounded) for it to exit; sets SRV_RC.
stop_server() {
    kill -TERM "$1"
    for _ in $(seq 1 300); do
        kill -0 "$1" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$1" 2>/dev/null; then
        kill -KILL "$1"
        SRV_RC=999
    else
        wait "$1"
        SRV_RC=$?
    fi
}

# http METHOD PATH [BODY_FILE] [EXTRA_HEADER]: one request on a fresh connection;
# sets CODE and BODY.
http() {
    timeout 60 bash -c '
        exec 3<>"/dev/tcp/127.0.0.1/$4" || exit 1
        len=0
        [ -n "$2" ] && len=$(stat -c %s "$2")
        {
            printf "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: %s\r\n" "$0" "$1" "$len"
            [ -n "$3" ] && printf "%s\r\n" "$3"
            printf "\r\n"
            [ -n "$2" ] && cat "$2"
        } >&3
        cat <&3' "$1" "$2" "${3:-}" "${4:-}" "$PORT" >"$T/resp" 2>/dev/null
    CODE=$(head -1 "$T/resp" | awk '{print $2}')
    BODY=$(sed '1,/^\r$/d' "$T/resp")
}

# expect_http NAME CODE PATTERN METHOD PATH [BODY_FILE] [HEADER]
expect_http() {
    local name=$1 want=$2 pattern=$3
    shift 3
    http "$@"
    if [ "$CODE" != "$want" ]; then
        bad "$name: HTTP $CODE, want $want: $(echo "$BODY" | cut -c1-200)"
    elif ! grep -qE -- "$pattern" <<<"$BODY"; then
        bad "$name: body does not match /$pattern/: $(echo "$BODY" | cut -c1-200)"
    else
        ok "$name: $CODE $(echo "$BODY" | cut -c1-100)"
    fi
}

# expect_exit NAME STATUS PATTERN CMD...: exit status and a message matching PATTERN.
expect_exit() {
    local name=$1 want=$2 pattern=$3
    shift 3
    local out rc
    out=$(timeout 60 "$@" 2>&1)
    rc=$?
    if [ "$rc" != "$want" ]; then
        bad "$name: exit $rc, want $want: $(echo "$out" | tail -2)"
    elif ! grep -qE -- "$pattern" <<<"$out"; then
        bad "$name: output does not match /$pattern/: $(echo "$out" | tail -2)"
    else
        ok "$name: $(grep -m1 -E -- "$pattern" <<<"$out" | cut -c1-120)"
    fi
}

# summary FIELD ERR_FILE: a count from the server's "stopped:" line.
summary() { grep 'stopped:' "$2" | sed -n "s/.* $1=\([0-9]*\).*/\1/p"; }
# wait_metric NAME MIN: scrape /metrics (bounded) until NAME >= MIN; sets VAL.
wait_metric() {
    VAL=0
    for _ in $(seq 1 600); do
        http GET /metrics
        VAL=$(metric "$1")
        [ "${VAL:-0}" -ge "$2" ] && return
        sleep 0.1
    done
}
json_num() { sed -n "s/.*\"$1\":[[:space:]]*\([0-9.e+-]*\).*/\1/p" "$2" | head -1; }
metric() { grep "^$1{" <<<"$BODY" | head -1 | awk '{print $2}'; }

"$BL" train --quiet --data "$SAMPLE" --model mlp --epochs 1 --save "$T/mlp.safetensors" >/dev/null 2>&1 ||
    { echo "FAIL cannot train the test checkpoint"; echo "0 passed, 1 failed"; exit 1; }

# 784 zeros as one sample; a request of n samples is built from it.
zeros=$(printf '0,%.0s' $(seq 1 783))0
req() { # req FILE N [DATATYPE] [SHAPE]
    local data=$zeros i
    for ((i = 1; i < $2; i++)); do data="$data,$zeros"; done
    printf '{"inputs":[{"name":"input","shape":%s,"datatype":"%s","data":[%s]}]}' \
        "${4:-[$2,1,28,28]}" "${3:-FP32}" "$data" >"$1"
}
req "$T/one.json" 1
req "$T/three.json" 3
req "$T/dtype.json" 1 INT64
req "$T/shape.json" 1 FP32 "[1,1,28,27]"
printf '{"inputs": [' >"$T/malformed.json"
{ cat "$T/one.json"; head -c 30000 /dev/zero | tr '\0' ' '; } >"$T/big.json"

# ---- server A: endpoints, errors, batching, sweep ------------------------------------
if start_server a --max-batch 8 --max-delay-us 200000 --max-body-bytes 20000; then
    ok "serve --port 0 wrote port $PORT"
    expect_http "live" 200 '"live":true' GET /v2/health/live
    expect_http "ready" 200 '"ready":true' GET /v2/health/ready
    expect_http "model metadata" 200 '"shape":\[-1,1,28,28\]' GET /v2/models/mlp
    expect_http "model ready" 200 '"ready":true' GET /v2/models/mlp/ready
    expect_http "infer one sample" 200 '"shape":\[1,10\]' POST /v2/models/mlp/infer "$T/one.json"
    expect_http "infer three samples" 200 '"shape":\[3,10\]' POST /v2/models/mlp/infer "$T/three.json"
    expect_http "malformed JSON" 400 '"error":"malformed JSON' POST /v2/models/mlp/infer "$T/malformed.json"
    expect_http "still serving" 200 '"outputs"' POST /v2/models/mlp/infer "$T/one.json"
    expect_http "wrong shape" 400 '"error":.*does not fit' POST /v2/models/mlp/infer "$T/shape.json"
    expect_http "wrong datatype" 400 '"error":.*INT64' POST /v2/models/mlp/infer "$T/dtype.json"
    expect_http "unknown model" 404 '"error":"unknown model' POST /v2/models/nope/infer "$T/one.json"
    expect_http "oversized body" 413 '"error":.*max-body-bytes' POST /v2/models/mlp/infer "$T/big.json"
    expect_http "still serving after errors" 200 '"outputs"' POST /v2/models/mlp/infer "$T/one.json"

    "$BL" load --url "http://127.0.0.1:$PORT" --model mlp --closed --concurrency 16 --requests 64 \
        --warmup 0 --duration 120 --input "$IMAGES" --json >"$T/load.json" 2>"$T/load.err"
    n_ok=$(json_num ok "$T/load.json")
    [ "$n_ok" = 64 ] && ok "load: 64 of 64 answered" || bad "load: ok=$n_ok of 64: $(cat "$T/load.err" "$T/load.json" | tail -3)"
    http GET /metrics
    inf=$(metric batchlab_inference_count_total)
    ex=$(metric batchlab_execution_count_total)
    if awk -v i="$inf" -v e="$ex" 'BEGIN { exit !(e > 0 && i / e > 1) }'; then
        ok "batches form: $inf samples in $ex batches"
    else
        bad "batches did not form: inference_count=$inf execution_count=$ex"
    fi
    grep -q '^batchlab_request_failure_total{model="mlp",reason="bad_request"} 3$' <<<"$BODY" &&
        ok "metrics count the 3 bad requests" || bad "metrics: $(grep bad_request <<<"$BODY")"

    "$BL" load --url "http://127.0.0.1:$PORT" --model mlp --sweep 20,40 --duration 0.5 --warmup 0.2 \
        --csv "$T/sweep.csv" --plot "$T/sweep" --slo-ms 10 >"$T/sweep.out" 2>&1
    if [ "$(wc -l <"$T/sweep.csv" 2>/dev/null)" = 3 ] && head -c 4 "$T/sweep.png" | grep -q PNG &&
        grep -q '<svg' "$T/sweep.svg"; then
        ok "sweep wrote CSV, PNG and SVG"
    else
        bad "sweep outputs: $(ls "$T"; tail -3 "$T/sweep.out")"
    fi
    ls "$T" | grep -q '\.tmp\.' && bad "temp files left behind: $(ls "$T")"

    expect_exit "port in use" 1 "cannot listen" "$BL" serve "$T/mlp.safetensors" --port "$PORT"
    stop_server "$SRV_PID"
    [ "$SRV_RC" = 0 ] && ok "SIGTERM on an idle server: exit 0" || bad "idle server exit $SRV_RC"
fi

# ---- server B: SIGTERM in the middle of load ------------------------------------------
# A 300 ms batching delay keeps requests waiting in the queue, so the signal finds some.
if start_server b --max-batch 64 --max-delay-us 300000; then
    "$BL" load --url "http://127.0.0.1:$PORT" --model mlp --closed --concurrency 8 --duration 60 \
        --warmup 0 --max-errors 1 --format binary --input "$IMAGES" --json >"$T/drain.json" 2>"$T/drain.err" &
    LOAD_PID=$!
    PIDS+=("$LOAD_PID")
    wait_metric batchlab_request_success_total 16
    stop_server "$SRV_PID"
    for _ in $(seq 1 600); do kill -0 "$LOAD_PID" 2>/dev/null || break; sleep 0.1; done
    wait "$LOAD_PID"
    line=$(grep 'stopped:' "$T/b.err")
    accepted=$(summary accepted "$T/b.err")
    answered=$(summary answered "$T/b.err")
    queued=$(summary queued_at_stop "$T/b.err")
    client_ok=$(json_num ok "$T/drain.json")
    if [ "$SRV_RC" = 0 ] && [ -n "$accepted" ] && [ "$accepted" -ge 16 ] &&
        [ "$accepted" = "$answered" ] && [ "$accepted" = "$client_ok" ]; then
        ok "SIGTERM mid-load: accepted $accepted = answered $answered = client 200s $client_ok ($queued drained from the queue)"
    else
        bad "SIGTERM mid-load: exit $SRV_RC, server '$line', client ok '$client_ok': $(tail -2 "$T/drain.err")"
    fi
fi

# ---- servers C and D: stops that must not wait for all the queued compute --------------
# Eight clients keep 4000-sample requests in flight, so a drain has seconds of compute
# queued. C: a second SIGTERM during the drain (D6) must end it early; D: --grace-ms 300
# must (D7). Either way the summary is printed and every accepted request still gets an
# answer: 200, or 503 when it was never computed.
# heavy_stop NAME SIGNALS GRACE_MS EXPECT_PATTERN
heavy_stop() {
    local name=$1 signals=$2 grace=$3 pattern=$4 depth
    start_server "$name" --max-batch 64 --grace-ms "$grace" || return
    "$BL" load --url "http://127.0.0.1:$PORT" --model mlp --closed --concurrency 8 --duration 60 \
        --warmup 0 --per-request 4000 --format binary --json >"$T/$name.json" 2>"$T/$name.lerr" &
    local load_pid=$!
    PIDS+=("$load_pid")
    wait_metric batchlab_queue_depth_requests 4
    depth=$VAL
    if [ "$signals" = 2 ]; then
        kill -TERM "$SRV_PID"
        for _ in $(seq 1 100); do grep -q draining "$T/$name.err" && break; sleep 0.05; done
    fi
    stop_server "$SRV_PID"
    kill -TERM "$load_pid" 2>/dev/null
    wait "$load_pid" 2>/dev/null
    local line accepted answered cancelled
    line=$(grep 'stopped:' "$T/$name.err")
    accepted=$(summary accepted "$T/$name.err")
    answered=$(summary answered "$T/$name.err")
    cancelled=$(summary cancelled "$T/$name.err")
    if [ "$SRV_RC" = 0 ] && grep -qE "$pattern" "$T/$name.err" && [ -n "$accepted" ] &&
        [ "$accepted" -ge 4 ] && [ "$accepted" = "$answered" ] && [ "${cancelled:-0}" -ge 1 ]; then
        ok "$name: stopped early; accepted $accepted = answered $answered ($cancelled got 503)"
    else
        bad "$name (queue depth $depth): exit $SRV_RC, '$line': $(tail -3 "$T/$name.err")"
    fi
}
heavy_stop second-sigterm 2 600000 'second SIGTERM: stopped without finishing'
heavy_stop grace-300ms 1 300 'stopped:'

# ---- usage and runtime errors -----------------------------------------------------------
expect_exit "serve without a checkpoint" 2 "CHECKPOINT is required" "$BL" serve
expect_exit "serve a missing file" 1 "nope.safetensors" "$BL" serve "$T/nope.safetensors" --port 0
expect_exit "serve bad max batch" 2 "--max-batch 0" "$BL" serve "$T/mlp.safetensors" --max-batch 0
expect_exit "serve bad preferred" 2 "--preferred-batch" "$BL" serve "$T/mlp.safetensors" --preferred-batch 4,x
expect_exit "serve bad slo" 2 "--slo-p99-ms" "$BL" serve "$T/mlp.safetensors" --slo-p99-ms -1
expect_exit "serve bad conn timeout" 2 "--conn-timeout-s 0" "$BL" serve "$T/mlp.safetensors" --conn-timeout-s 0
expect_exit "serve bad read timeout" 2 "--read-timeout-s 0 is invalid" "$BL" serve "$T/mlp.safetensors" --read-timeout-s 0
expect_exit "serve huge read timeout" 2 "--read-timeout-s 4000 is invalid" "$BL" serve "$T/mlp.safetensors" --read-timeout-s 4000
expect_exit "serve bad max connections" 2 "--max-connections 0" "$BL" serve "$T/mlp.safetensors" --max-connections 0
expect_exit "serve bad grace" 2 "--grace-ms -1" "$BL" serve "$T/mlp.safetensors" --grace-ms -1
expect_exit "load bad format" 2 "--format must be json or binary" "$BL" load --format xml
expect_exit "load sweep without csv" 2 "--sweep needs --csv" "$BL" load --sweep 10,20
expect_exit "load with no server" 1 "127.0.0.1:9" "$BL" load --url http://127.0.0.1:9 --rate 10 --duration 0.1

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
