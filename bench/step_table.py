#!/usr/bin/python3
"""Runs bench_step and peer_torch.py row by row and prints the comparison table.

Called by bench/step_bench.sh (which builds bench_step first). The machines are
shared: a measurement taken while another process ran on one of the two cores is
worthless for the 2-thread side (its threads wait for a descheduled partner) and
flatters the 1-thread side by comparison. So every (side, thread setting, row) runs
in its own process, the CPU time other processes used meanwhile is read from
/proc/stat (machine busy time minus our child's CPU time), and a run where others
used more than 10% of one core is repeated, up to --tries times, keeping the least
disturbed one; every run first waits (up to --wait seconds) for a second in which
the machine was idle. The table reports, per row, the worst disturbance among the
runs it is built from.
"""
import argparse
import os
import resource
import subprocess
import sys
import time

HZ = os.sysconf("SC_CLK_TCK")


def busy_seconds():
    v = list(map(int, open("/proc/stat").readline().split()[1:]))
    return (sum(v[:8]) - v[3] - v[4]) / HZ  # all but idle and iowait


def run(cmd, env):
    """Output lines of cmd, and the share of one core other processes used meanwhile."""
    b0, r0, t0 = busy_seconds(), resource.getrusage(resource.RUSAGE_CHILDREN), time.time()
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall, r1 = time.time() - t0, resource.getrusage(resource.RUSAGE_CHILDREN)
    child = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    others = max(0.0, busy_seconds() - b0 - child) / max(wall, 1e-9)
    if out.returncode:
        sys.stderr.write(out.stderr)
    return [l.split("\t") for l in out.stdout.splitlines()], others


def wait_quiet(max_wait):
    """Wait (up to max_wait seconds) for one second in which the machine was idle."""
    t_end = time.time() + max_wait
    while time.time() < t_end:
        b0, t0 = busy_seconds(), time.time()
        time.sleep(1.0)
        if (busy_seconds() - b0) / (time.time() - t0) < 0.05:
            return


def measure(cmd, env, tries, max_wait):
    """Least disturbed of up to `tries` runs: (records, disturbance). Each run
    starts after a quiet second, if one comes within max_wait seconds."""
    best = None
    for _ in range(tries):
        wait_quiet(max_wait)
        rec, others = run(cmd, env)
        if best is None or others < best[1]:
            best = (rec, others)
        if others <= 0.10:
            break
    return best


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--bench", required=True, help="path of bench_step")
    p.add_argument("--models", default="mlp,cnn")
    p.add_argument("--batches", default="1,8,32,128,512,2048")
    p.add_argument("--latency", default="1,8,64")
    p.add_argument("--threads", default="2,1", help="batchlab thread counts")
    p.add_argument("--torch-threads", default="1,2,1s")
    p.add_argument("--cap", default="10")
    p.add_argument("--min-time", default="0.3")
    p.add_argument("--runs", default="5")
    p.add_argument("--tries", type=int, default=3)
    p.add_argument("--wait", type=float, default=30,
                   help="seconds to wait for a quiet second before each run")
    p.add_argument("--raw", help="append every record here")
    p.add_argument("--bench2", help="a second bench_step (e.g. a BL_NATIVE build), measured "
                   "in the same run; the table adds its samples/s and the ratio")
    p.add_argument("--label2", default="native", help="name of --bench2 in the table")
    a = p.parse_args()
    here = os.path.dirname(os.path.abspath(__file__))
    env = dict(os.environ)
    have_torch = subprocess.run(["/usr/bin/python3", "-c", "import torch"],
                                capture_output=True).returncode == 0
    raw = open(a.raw, "a") if a.raw else None
    common = ["--min-time", a.min_time, "--runs", a.runs]
    rows, lat = [], []
    core, tver, isa, isa2 = "?", "(not run)", "?", "?"

    def keep(recs, who, setting, dist):
        nonlocal core, tver, isa, isa2
        for r in recs:
            if raw:
                raw.write("\t".join([who, setting, f"{dist:.3f}"] + r) + "\n")
            if r[0] == "env":
                if who == "batchlab":
                    core = r[2]
                    isa = r[3] if len(r) > 3 else "?"
                elif who == a.label2:
                    isa2 = r[3] if len(r) > 3 else "?"
                else:
                    tver = r[2]
        return [r for r in recs if r[0] in ("step", "latency")]

    for model in a.models.split(","):
        for kind, sizes in (("step", a.batches), ("latency", a.latency)):
            for B in [s for s in sizes.split(",") if s]:
                best_bl, best_pt, best_b2 = None, None, None
                benches = [(a.bench, "batchlab")] + ([(a.bench2, a.label2)] if a.bench2 else [])
                for t in a.threads.split(","):
                    for bench, who in benches:  # the two builds take turns
                        cmd = [bench, "--models", model, "--threads", t] + common
                        cmd += (["--batches", B, "--latency", "none"] if kind == "step" else
                                ["--batches", "none", "--latency", B, "--no-sgemm"])
                        recs, dist = measure(cmd, env, a.tries, a.wait)
                        for r in keep(recs, who, t, dist):
                            val = float(r[4] if kind == "step" else r[3])
                            best = best_bl if who == "batchlab" else best_b2
                            if best is None or (val > best[0] if kind == "step"
                                                else val < best[0]):
                                if who == "batchlab":
                                    best_bl = (val, t, dist, r)
                                else:
                                    best_b2 = (val, t, dist, r)
                if have_torch:
                    for t in a.torch_threads.split(","):
                        cmd = ["/usr/bin/python3", os.path.join(here, "peer_torch.py"),
                               "--models", model, "--threads", t, "--cap", a.cap] + common
                        cmd += (["--batches", B, "--latency", ""] if kind == "step" else
                                ["--batches", "", "--latency", B])
                        recs, dist = measure(cmd, env, a.tries, a.wait)
                        for r in keep(recs, "torch", t, dist):
                            if r[-1] == "-":
                                continue
                            val = float(r[4] if kind == "step" else r[3])
                            better = best_pt is None or (val > best_pt[0] if kind == "step"
                                                         else val < best_pt[0])
                            if better:
                                best_pt = (val, t, dist)
                (rows if kind == "step" else lat).append((model, B, best_bl, best_pt, best_b2))

    print(f"\nbatchlab: ISA level {isa}, best of threads {{{a.threads}}}, OpenBLAS core {core}; "
          f"PyTorch {tver}: best of threads {{{a.torch_threads}}}"
          + (f"; {a.label2}: ISA level {isa2}" if a.bench2 else ""))
    extra_h = f" {a.label2} samples/s | batchlab / {a.label2} |" if a.bench2 else ""
    extra_s = "---:|---:|" if a.bench2 else ""
    print("\n| model | B | batchlab samples/s | PyTorch samples/s | ratio | batchlab GFLOP/s "
          "| sgemm-limit samples/s | fraction of sgemm rate | sgemm GFLOP/s | time in BLAS "
          "| others' CPU |" + extra_h)
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|" + extra_s)
    for model, B, bl, pt, b2 in rows:
        if bl is None:
            continue
        r = bl[3]
        ts = f"{pt[0]:.0f} [{pt[1]}]" if pt else "-"
        ratio = f"{bl[0] / pt[0]:.2f}" if pt else "-"
        dist = max(bl[2], pt[2] if pt else 0)
        extra = (f" {b2[0]:.0f} [{b2[1]}] | {bl[0] / b2[0]:.3f} |" if b2 else " - | - |"
                 ) if a.bench2 else ""
        print(f"| {model} | {B} | {bl[0]:.0f} [{bl[1]}] | {ts} | {ratio} | {float(r[5]):.1f} "
              f"| {float(r[8]):.0f} | {100 * float(r[9]):.0f}% | {float(r[7]):.1f} "
              f"| {100 * float(r[10]):.0f}% | {100 * dist:.0f}% |" + extra)
    print("\nForward-only (inference) latency, microseconds per call\n")
    print("| model | B | batchlab us | PyTorch us | ratio (PyTorch / batchlab) | others' CPU |")
    print("|---|---:|---:|---:|---:|---:|")
    for model, B, bl, pt, b2 in lat:
        if bl is None:
            continue
        ts = f"{pt[0]:.0f} [{pt[1]}]" if pt else "-"
        ratio = f"{pt[0] / bl[0]:.2f}" if pt else "-"
        dist = max(bl[2], pt[2] if pt else 0)
        print(f"| {model} | {B} | {bl[0]:.0f} [{bl[1]}] | {ts} | {ratio} | {100 * dist:.0f}% |")
    print("\nothers' CPU: the most CPU time, as a share of one core, that other processes "
          "used during any run a row is built from (runs above 10% were repeated, up to "
          f"{a.tries} times).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
