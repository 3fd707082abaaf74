#!/usr/bin/env python3
"""The GPU step table: batchlab against PyTorch eager and CUDA-graph, row by row.

Reads the records bench/gpu.sh collects (one file, each line the producer, a tab,
then the record as bench_step or peer_torch.py printed it):
  batchlab  env|step|mem|latency|skip ...      (bench/bench_step.c)
  torch     env|step|mem|latency ... [mode]    (bench/peer_torch.py; no mode: eager)
and prints one markdown table of training samples/s per (model, B) with the ratios
batchlab / eager and batchlab / graph (above 1: batchlab is faster), model TFLOP/s
(ANCHORS.md's 6 x forward multiply-adds per sample) and peak memory, then a small
forward-latency table when there are latency records.

  bench/gpu_table.py RAW [RAW...] [--out step_table.md]
"""
import argparse
import sys

# Forward multiply-adds per sample (shared/ANCHORS.md; as bench_step's preset_macs).
MACS = {"mlp": 784 * 1024 + 1024 * 1024 + 1024 * 10,
        "cnn": 32 * 9 * 784 + 64 * 32 * 9 * 784 + 12544 * 128 + 128 * 10}


def num(s):
    try:
        return float(s)
    except ValueError:
        return None


def read(paths):
    """Rows keyed (model, B) -> {column: value}, latency likewise, env lines, skips."""
    step, lat, env, notes = {}, {}, [], []
    order = []
    for path in paths:
        for line in open(path):
            f = line.rstrip("\n").split("\t")
            if len(f) < 2:
                continue
            who, kind, r = f[0], f[1], f[1:]
            if kind == "env":
                env.append((who, r[1:]))
                continue
            if kind == "skip" and (len(r) < 3 or num(r[2]) is None):  # a whole run
                notes.append(f"{who} {' '.join(r[1:])}")
                continue
            if len(r) < 4 or num(r[2]) is None:
                continue
            model, B = r[1], int(r[2])
            if model not in order:
                order.append(model)
            if who == "batchlab":
                col = "batchlab"
            else:  # peer_torch: the mode is the last field on a GPU, absent on the CPU
                mode = r[5] if kind == "step" and len(r) > 5 else (
                    r[4] if kind in ("latency", "mem") and len(r) > 4 else "eager")
                col = "torch " + mode
            if kind == "step":
                v = num(r[4]) if len(r) > 4 else None  # "-": skipped
                step.setdefault((model, B), {})[col] = v
                if v is None:
                    notes.append(f"{col} {model} B={B}: skipped (first step over the cap, "
                                 "out of memory or failed; see the log)")
            elif kind == "mem":
                step.setdefault((model, B), {})["mem " + col] = num(r[3])
            elif kind == "latency":
                lat.setdefault((model, B), {})[col] = num(r[3])
            elif kind == "skip":
                (lat if r[3] == "latency" else step).setdefault((model, B), {}).setdefault(col, None)
                notes.append(f"batchlab {model} B={B} {r[3]}: {r[4] if len(r) > 4 else ''}")
    key = lambda k: (order.index(k[0]), k[1])
    return dict(sorted(step.items(), key=lambda kv: key(kv[0]))), \
        dict(sorted(lat.items(), key=lambda kv: key(kv[0]))), env, notes


def fmt(v, digits=0):
    return "–" if v is None else f"{v:,.{digits}f}"


def ratio(a, b):
    return "–" if a is None or b is None or b == 0 else f"{a / b:.2f}"


def table(step, lat, env, notes):
    modes = sorted({c[len("torch "):] for row in step.values() for c in row
                    if c.startswith("torch ")}, key=lambda m: ({"eager": 0, "graph": 1}.get(m, 2), m))
    if not modes:
        modes = ["eager"]
    out = []
    for who, e in env:
        if who == "batchlab":
            dev = e[3] if len(e) > 3 else "cpu"
            out.append(f"- batchlab: device {dev}, {e[0]} threads, OpenBLAS core {e[1]}, "
                       f"ISA {e[2] if len(e) > 2 else '?'}")
        elif len(e) > 2:
            out.append(f"- PyTorch {e[1]} on {e[2]} ({e[3] if len(e) > 3 else '?'}), "
                       f"TF32 matmul {e[4] if len(e) > 4 else '?'}, "
                       f"cuDNN {e[5] if len(e) > 5 else '?'}")
        else:
            out.append(f"- PyTorch {e[1]} on the CPU, threads {e[0]}")
    out = list(dict.fromkeys(out))  # one line per distinct setting
    out.append("")
    head = ["model", "B", "batchlab samples/s"] + [f"torch {m}" for m in modes] + \
        [f"batchlab / {m}" for m in modes] + ["batchlab TFLOP/s", "best torch TFLOP/s",
                                              "peak MB: batchlab / " + " / ".join(modes)]
    out.append("| " + " | ".join(head) + " |")
    out.append("|---|" + "---:|" * (len(head) - 1))
    for (model, B), row in step.items():
        bl = row.get("batchlab")
        ts = [row.get("torch " + m) for m in modes]
        best = max([t for t in ts if t is not None], default=None)
        tf = lambda sps: None if sps is None or model not in MACS else 6 * MACS[model] * sps / 1e12
        mem = [row.get("mem batchlab")] + [row.get("mem torch " + m) for m in modes]
        cells = [model, str(B), fmt(bl)] + [fmt(t) for t in ts] + \
            [ratio(bl, t) for t in ts] + [fmt(tf(bl), 2), fmt(tf(best), 2)] + \
            [" / ".join(fmt(m / 1e6 if m is not None else None, 0) for m in mem)]
        out.append("| " + " | ".join(cells) + " |")
    if lat:
        lmodes = sorted({c[len("torch "):] for row in lat.values() for c in row
                         if c.startswith("torch ")})
        out += ["", "Forward latency, microseconds per call (synchronized)", "",
                "| model | B | batchlab | " + " | ".join(f"torch {m}" for m in lmodes) + " |",
                "|---|---:|---:|" + "---:|" * len(lmodes)]
        for (model, B), row in lat.items():
            out.append(f"| {model} | {B} | {fmt(row.get('batchlab'), 1)} | " +
                       " | ".join(fmt(row.get('torch ' + m), 1) for m in lmodes) + " |")
    out += ["", "batchlab / MODE: batchlab's samples/s over PyTorch's in that mode (above 1: "
            "batchlab is faster). eager-h2d: PyTorch copying each batch from host memory, as "
            "batchlab's API does. TFLOP/s: 6 x the forward multiply-adds per sample x samples/s. "
            "Peak: batchlab's accounted bytes (bl_mem), PyTorch's max_memory_allocated."]
    if notes:
        out += [""] + [f"- {n}" for n in dict.fromkeys(notes)]
    return "\n".join(out) + "\n"


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("raw", nargs="+", help="record files (producer TAB record)")
    p.add_argument("--out", help="also write the table here")
    p.add_argument("--title", default="Training step on the GPU, samples/s")
    a = p.parse_args()
    step, lat, env, notes = read(a.raw)
    if not step and not lat:
        print("gpu_table: no step or latency records in " + ", ".join(a.raw), file=sys.stderr)
        return 1
    text = f"## {a.title}\n\n" + table(step, lat, env, notes)
    sys.stdout.write(text)
    if a.out:
        open(a.out, "w").write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
