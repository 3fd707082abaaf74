#!/usr/bin/env python3
"""The memory model against measurement: what `batchlab find --memory` predicts a
training step needs at batch B, and what a step at B really takes.

For each model and B (bench/gpu.sh, stage "memory"; it runs on the CPU too):
  - predicted: `batchlab find --memory BUDGET --margin 0 --max-batch B --json`, whose
    one trial at B reports the footprint the model computes (parameters, gradients,
    optimizer state, activations, workspace and the loader's input buffers);
    where B does not fit the budget, the affine fit fixed + per_sample x B (marked ~);
  - accounted: bench_step --mem, the peak of what the context allocated (bl_mem);
  - measured: the device memory a bench_step process at B really held, read by
    sampling nvidia-smi (memory.used, every 50 ms, less the reading before it
    started); on the CPU, the child's peak resident set (getrusage).
    The measurement includes the CUDA context, cuBLAS/cuDNN workspaces and the
    allocator's rounding, which the model does not count; the run at the smallest
    batch of the first model (B=1) estimates that context: measured - accounted.
  - error: the predicted device part (the prediction less the loader's input
    buffers, which live in host memory on a GPU) against measured - context.
Last, per model, the largest batch `find --memory BUDGET` proposes for the whole
budget (the card's memory by default) and what its trials confirmed.
The CLI has no way to report the device's own memory statistics, hence the
outside sampling; a torch column (max_memory_allocated at the same B, from
peer_torch.py's mem records) is added when --torch-raw names step records.
"""
import argparse
import json
import os
import subprocess
import sys
import threading
import time

DIM = 784  # 1 x 28 x 28, both presets
LOADER_BUFFERS = 2  # src/data/loader.c: bl_loader_batch_bytes = 2 B (4 dim + 4)


def loader_bytes(B):
    return LOADER_BUFFERS * B * (4 * DIM + 4)


def gpu_index(device):
    return device.split(":")[1] if ":" in device else "0"


def smi(device, query):
    out = subprocess.run(["nvidia-smi", "-i", gpu_index(device), f"--query-gpu={query}",
                          "--format=csv,noheader,nounits"], capture_output=True, text=True,
                         timeout=20)
    return float(out.stdout.strip().splitlines()[0])


class Sampler:
    """Highest nvidia-smi memory.used (MiB) while it runs."""

    def __init__(self, device):
        self.proc = subprocess.Popen(["nvidia-smi", "-i", gpu_index(device),
                                      "--query-gpu=memory.used", "--format=csv,noheader,nounits",
                                      "-lms", "50"], stdout=subprocess.PIPE, text=True)
        self.peak = 0.0
        self.thread = threading.Thread(target=self.read, daemon=True)
        self.thread.start()

    def read(self):
        for line in self.proc.stdout:
            try:
                self.peak = max(self.peak, float(line.strip()))
            except ValueError:
                pass

    def stop(self):
        time.sleep(0.2)  # one more reading after the process ended is harmless
        self.proc.terminate()
        self.proc.wait()
        self.thread.join(timeout=2)
        return self.peak


def run(cmd, timeout):
    """(returncode, stdout, stderr); 124 on timeout."""
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        return r.returncode, r.stdout, r.stderr
    except subprocess.TimeoutExpired as e:
        return 124, e.stdout or "", e.stderr or ""


def run_rss(cmd, timeout):
    """Like run, with the child's own peak RSS (wait4), for the CPU measurement."""
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err, t_end = [], [], time.time() + timeout

    def drain(f, acc):
        acc.append(f.read())
    ts = [threading.Thread(target=drain, args=(p.stdout, out)),
          threading.Thread(target=drain, args=(p.stderr, err))]
    for t in ts:
        t.start()
    rc, ru = None, None
    while rc is None:
        pid, status, ru = os.wait4(p.pid, os.WNOHANG)
        if pid:
            rc = os.waitstatus_to_exitcode(status)
            break
        if time.time() > t_end:
            p.kill()
            os.wait4(p.pid, 0)
            rc, ru = 124, None
            break
        time.sleep(0.02)
    p.returncode = rc
    for t in ts:
        t.join()
    return rc, "".join(out), "".join(err), (ru.ru_maxrss * 1024 if ru else 0)


def find_json(a, model, extra, timeout):
    cmd = [a.batchlab, "find", "--memory", a.budget, "--model", model, "--device", a.device,
           "--data", a.data, "--json"] + extra
    rc, out, err = run(cmd, timeout)
    if rc:
        return None, f"find exit {rc}: {(err.strip().splitlines() or ['?'])[-1]}"
    try:
        return json.loads(out[out.index("{"):])["memory"], None
    except (ValueError, KeyError) as e:
        return None, f"find output not understood: {e}"


def measure(a, model, B, timeout):
    """(accounted bytes, measured bytes, note) of one bench_step process at B."""
    cmd = [a.bench, "--device", a.device, "--models", model, "--batches", str(B),
           "--latency", "none", "--no-sgemm", "--mem", "--min-time", str(a.min_time),
           "--runs", "1", "--keep-going"]
    if a.gpu:
        try:
            before = smi(a.device, "memory.used")
            s = Sampler(a.device)
        except (OSError, ValueError, IndexError, subprocess.SubprocessError) as e:
            return None, None, f"nvidia-smi: {e}"
        rc, out, err = run(cmd, timeout)
        measured = (s.stop() - before) * 2**20
    else:
        rc, out, err, measured = run_rss(cmd, timeout)
    acct, note = None, ""
    for line in out.splitlines():
        f = line.split("\t")
        if f[0] == "mem":
            acct = int(f[3])
        elif f[0] == "skip":
            note = "skipped: " + f[4]
    if rc:
        note = f"bench_step exit {rc}: {(err.strip().splitlines() or ['?'])[-1]}"
    return acct, (measured if rc == 0 and acct is not None else None), note


def torch_peaks(path):
    """{(model, B): {mode: bytes}} from peer_torch.py mem records (prefixed 'torch')."""
    peaks = {}
    if not path or not os.path.exists(path):
        return peaks
    for line in open(path):
        f = line.rstrip("\n").split("\t")
        if len(f) >= 6 and f[0] == "torch" and f[1] == "mem":
            peaks.setdefault((f[2], int(f[3])), {})[f[5]] = int(f[4])
    return peaks


def mb(x):
    return "–" if x is None else f"{x / 1e6:.1f}"


def emit(a, lines, rows, notes, raw):
    """The report so far, written to --out and --raw (again after every row, so a
    run cut off by its deadline leaves what it measured)."""
    text = "\n".join(lines + [""] + rows + [""] + notes + [
        "", "predicted: find's footprint at B (~: the affine fit, B over the budget); input "
        "buffers: the loader's two host batches, counted in the prediction; on a GPU the error "
        "compares the prediction less them with the measured device memory less the context. "
        "measured: nvidia-smi memory.used (peak while the process ran, less before) on a GPU, "
        "the process's peak RSS on the CPU."]) + "\n"
    if a.out:
        with open(a.out, "w") as f:
            f.write("## Memory model against measurement\n\n" + text)
    if a.raw:
        with open(a.raw, "w") as f:
            f.write("model\tB\tpredicted\tinput_buffers\taccounted\tmeasured\tcontext\tkind\n")
            f.write("\n".join(raw) + ("\n" if raw else ""))
    return text


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batchlab", default="build-gpu/batchlab")
    p.add_argument("--bench", default="build-gpu/bench_step")
    p.add_argument("--device", default="cuda")
    p.add_argument("--models", default="mlp,cnn")
    p.add_argument("--batches", default="512,8192,32768")
    p.add_argument("--budget", default="auto",
                   help="find's --memory (default: the GPU's memory, or 1G on the CPU)")
    p.add_argument("--data", default="tests/data/fmnist-sample", help="find's --data (its shape)")
    p.add_argument("--min-time", type=float, default=0.3, help="bench_step's, per measurement")
    p.add_argument("--timeout", type=float, default=60, help="seconds per command")
    p.add_argument("--deadline", type=float, default=0,
                   help="stop starting commands after this many seconds (0: none)")
    p.add_argument("--torch-raw", help="step records with peer_torch.py's mem records")
    p.add_argument("--out", help="write the markdown here too")
    p.add_argument("--raw", help="write one tab-separated line per row here")
    a = p.parse_args()
    a.gpu = a.device.startswith("cuda")
    if a.budget == "auto":
        try:
            a.budget = f"{smi(a.device, 'memory.total'):.0f}MiB" if a.gpu else "1G"
        except (OSError, ValueError, IndexError, subprocess.SubprocessError) as e:
            print(f"gpu_mem: no GPU memory size from nvidia-smi ({e}); budget 80G", file=sys.stderr)
            a.budget = "80G"
    t0 = time.time()

    def time_left():
        return a.deadline <= 0 or time.time() - t0 < a.deadline - 5

    def cmd_timeout():
        if a.deadline <= 0:
            return a.timeout
        return max(5, min(a.timeout, a.deadline - (time.time() - t0)))

    models = a.models.split(",")
    batches = [int(b) for b in a.batches.split(",") if b]
    lines = [f"device {a.device}; budget for find: {a.budget}", ""]
    # The context: what a process holds beyond what it accounts (B=1 of the first model).
    acct1, meas1, note1 = measure(a, models[0], 1, cmd_timeout())
    ctx = meas1 - acct1 if meas1 is not None else None
    lines.append(f"context (measured - accounted at {models[0]} B=1): {mb(ctx)} MB"
                 + (f" ({note1})" if note1 else ""))
    tp = torch_peaks(a.torch_raw)
    modes = sorted({m for v in tp.values() for m in v})
    head = ("| model | B | predicted, MB | of which input buffers (host), MB | accounted peak, MB "
            "| measured, MB | measured less context, MB | error of the device part |"
            + "".join(f" torch {m} max allocated, MB |" for m in modes))
    rows = [head, "|---|---:|---:|---:|---:|---:|---:|---:|" + "---:|" * len(modes)]
    raw = []
    notes = []
    for model in models:
        for B in batches:
            if not time_left():
                notes.append(f"{model} B={B}: not run, out of time")
                continue
            r, why = find_json(a, model, ["--margin", "0", "--max-batch", str(B)], cmd_timeout())
            pred, approx = None, ""
            if r:
                at_b = [t for t in r["trials"] if t["batch"] == B]
                if at_b:
                    pred = at_b[0]["predicted_bytes"]
                else:  # B is over the budget: the affine fit
                    pred, approx = r["fixed_bytes"] + r["per_sample_bytes"] * B, "~"
            else:
                notes.append(f"{model} B={B}: {why}")
            acct, meas, note = measure(a, model, B, cmd_timeout())
            if note:
                notes.append(f"{model} B={B}: {note}")
            host = loader_bytes(B) if a.gpu else 0
            less = meas - ctx if meas is not None and ctx is not None else None
            dev_pred = pred - host if pred is not None else None
            err = (f"{100 * (dev_pred / less - 1):+.1f}%"
                   if dev_pred is not None and less and less > 0 else "–")
            cells = [model, str(B), approx + mb(pred), mb(loader_bytes(B)), mb(acct), mb(meas),
                     mb(less), err] + [mb(tp.get((model, B), {}).get(m)) for m in modes]
            rows.append("| " + " | ".join(cells) + " |")
            raw.append("\t".join(str(x) for x in [model, B, pred, loader_bytes(B), acct, meas,
                                                   ctx, approx or "exact"]))
            print(rows[-1], file=sys.stderr, flush=True)
            emit(a, lines, rows, notes, raw)
    # Last, the largest batch for the whole budget (its trials can be long).
    finds = []
    for model in models:
        if not time_left():
            break
        r, why = find_json(a, model, [], min(20, cmd_timeout()))
        if r:
            trials = ", ".join(f"{t['batch']} {'fits' if t['fits'] else 'fails'}"
                               for t in r["trials"])
            finds.append(f"{model}: find --memory {a.budget} proposes batch {r['predicted']}, "
                         f"trials: {trials}; largest that fits: {r['batch']} "
                         f"({r['fixed_bytes'] / 1e6:.1f} MB + {r['per_sample_bytes'] / 1e3:.1f} kB "
                         "per sample)")
        else:
            finds.append(f"{model}: find --memory {a.budget}: {why}")
    lines += finds
    sys.stdout.write(emit(a, lines, rows, notes, raw))
    return 0 if any(r.split("\t")[5] != "None" for r in raw) else 1  # something measured


if __name__ == "__main__":
    sys.exit(main())
