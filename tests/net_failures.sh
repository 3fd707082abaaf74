#!/usr/bin/env bash
# Data-parallel training across a real (simulated) network that fails: two hosts
# from tests/mpinet, a silent partition (mpinet cut) and a crashed rank 1
# (mpinet kill-rank1). Each time every process on both hosts must exit with an error,
# the --save-every checkpoint must load, and a line must name the lost rank 1; after a
# partition, rank 0 also writes its summary.
# Needs root, ip netns, /dev/net/tun, mpirun and an MPI build; otherwise it skips
# (status 77, shown as skipped by ctest) and says why.
# usage: net_failures.sh BATCHLAB DATA_DIR
BL=$1
DATA=$2
HERE=$(cd "$(dirname "$0")" && pwd)
NET=$HERE/mpinet/mpinet
source "$HERE/shell_lib.sh"
skip() {
    echo "SKIP: $1"
    exit 77
}
[ "$(id -u)" = 0 ] || skip "needs root to make network namespaces"
command -v ip >/dev/null && ip netns list >/dev/null 2>&1 || skip "no ip netns (iproute2)"
[ -c /dev/net/tun ] || skip "no /dev/net/tun"
command -v mpirun >/dev/null || skip "no mpirun"
"$BL" info 2>&1 | grep -q "mpi *available" || skip "this batchlab is built without MPI"
ip netns list | grep -q '^bl_' && skip "mpinet is already up (in use by someone else)"

export MPINET_STATE=$(mktemp -d)
T=$(mktemp -d)
trap '"$NET" down >/dev/null 2>&1; rm -rf "$T" "$MPINET_STATE"' EXIT
"$NET" up 1gbit 500 >"$T/up.log" 2>&1 || skip "mpinet could not make the two hosts: $(tail -1 "$T/up.log")"
# The launcher's own connections (mpirun <-> orted) give up after TCP's retransmissions:
# 15 tries (about 15 minutes) by default; a cluster that wants partitions to end
# promptly lowers it the same way (see docs/DISTRIBUTED.md).
for h in bl_h1 bl_h2; do ip netns exec $h sysctl -qw net.ipv4.tcp_retries2=4; done
# When a rank dies, mpirun sends SIGTERM to the others and SIGKILL 1 s later by default;
# rank 0 needs up to --comm-timeout to see that its peer is gone (Open MPI does not
# fail the pending request), so the launch gives it longer (docs/DISTRIBUTED.md).
export MPINET_MPIRUN_OPTS="--mca odls_base_sigkill_timeout 10"

# A run long enough to be cut: the sample's 540 samples, many epochs.
train() {
    "$NET" run "$BL" train --data "$DATA/fmnist-sample" --model mlp --batch 64 --epochs 100000 \
        --threads 1 --comm-timeout 2 --save "$T/ck.safetensors" --save-every 2 --log "$T/log.jsonl" \
        >"$T/out" 2>&1
    echo $? >"$T/rc"
}
# Waits (as a hang guard, not a timing check) until the log holds a few steps.
wait_steps() {
    for _ in $(seq 600); do
        n=$(grep -c '"type":"step"' "$T/log.jsonl" 2>/dev/null)
        [ "${n:-0}" -ge 6 ] && return 0
        [ -f "$T/rc" ] && return 1
        sleep 0.1
    done
    return 1
}
# Waits until nothing runs on either host; fails after 120 s.
hosts_empty() {
    for _ in $(seq 240); do
        [ -z "$(ip netns pids bl_h1)$(ip netns pids bl_h2)" ] && [ -f "$T/rc" ] && return 0
        sleep 0.5
    done
    return 1
}
checkpoint_loads() {
    "$BL" eval --checkpoint "$T/ck.safetensors" --data "$DATA/fmnist-sample" >/dev/null 2>&1
}

for fault in cut kill-rank1; do
    rm -f "$T/rc" "$T/out" "$T/log.jsonl" "$T/ck.safetensors"
    "$NET" heal >/dev/null 2>&1
    train &
    if ! wait_steps; then
        bad "$fault: the run did not start" "$(cat "$T/out")"
        wait
        continue
    fi
    "$NET" $fault >/dev/null
    if hosts_empty; then ok "$fault: every process on both hosts exited"; else
        bad "$fault: processes left: $(ip netns pids bl_h1) $(ip netns pids bl_h2)" "$(cat "$T/out")"
        "$NET" heal >/dev/null 2>&1
    fi
    wait
    out=$(cat "$T/out")
    rc=$(cat "$T/rc")
    # rank 0's run log ends with how the run ended (bl_run's "end" record), which the
    # launcher cannot drop the way it can drop the terminal's last lines
    end=$(grep '"type":"end"' "$T/log.jsonl" 2>/dev/null | tail -1)
    [ "$rc" != 0 ] && ok "$fault: nonzero exit ($rc)" || bad "$fault: exit status 0" "$out"
    if [ $fault = cut ]; then
        want='batchlab train: error: rank 1 stopped answering: no progress for 2 s'
        [ "$(grep -c "$want" <<<"$out")" = 1 ] && ok "$fault: rank 0 names rank 1 in one line" ||
            bad "$fault: no single line /$want/" "$out"
        grep -q '^trained .*communication failed' <<<"$out" && ok "$fault: the summary is written" ||
            bad "$fault: no summary" "$out"
        grep -q '"ok":false.*rank 1 stopped answering' <<<"$end" &&
            ok "$fault: the log's end record names rank 1" || bad "$fault: log end record: '$end'" "$out"
    else
        # Rank 0 says which peer it lost, on the terminal and as the log's end record.
        # (Open MPI 4.1 used to hang rank 0 inside its "peer process has unexpectedly
        # disconnected" message until SIGKILL, with neither written: bl_dist_init now
        # starts MPI with orte_execute_quiet; see src/dist/dist_mpi.c.)
        want='batchlab train: error: .*rank 1'
        grep -qE "$want" <<<"$out" && ok "$fault: one line names the lost peer: $(grep -m1 -oE "$want.*" <<<"$out")" ||
            bad "$fault: no line /$want/" "$out"
        grep -qE '"ok":false.*rank 1' <<<"$end" &&
            ok "$fault: the log's end record names rank 1" || bad "$fault: log end record: '$end'" "$out"
    fi
    checkpoint_loads && ok "$fault: the --save-every checkpoint loads" ||
        bad "$fault: the checkpoint does not load" "$out"
done
finish
