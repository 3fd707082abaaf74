#!/usr/bin/python3
"""The PyTorch peer of bench/bench_step.c: the same two models, step and method.

Run with Debian's python3-torch (/usr/bin/python3). For each thread count it
measures, as shared/ANCHORS.md prescribes (median of 5 timed runs of >= 0.3 s
after a warm-up of >= 0.3 s):
  - training samples/s: zero_grad, forward, cross-entropy, backward,
    SGD(momentum 0.9), on N(0,1) inputs with random labels;
  - forward-only latency per call in eval mode under torch.no_grad().
Each thread setting runs in its own process. "N" is what a user writes,
torch.set_num_threads(N) (the ANCHORS.md method); Debian's torch does its
matrix products in OpenBLAS, whose own pthread pool ignores that call and
keeps all cores, so "1" is really 1 + 2 threads. "Ns" is strict: every knob
(OMP/OPENBLAS/MKL_NUM_THREADS too) at N. The default tries 1, 2 and 1s, and
the caller keeps the best, so the peer is never weakened by our choice of
knobs.

A configuration whose single warm-up step already takes longer than --cap
seconds is skipped and reported as "-" (the CNN at large batches: ANCHORS.md
has no figure there either).

Output: the same tab-separated records as bench_step:
  env     threads  torch_version
  step    model B  step_s  samples_per_s
  latency model B  us_per_call
"""
import argparse
import os
import subprocess
import sys
import time


def build(model, torch):
    nn = torch.nn
    if model == "mlp":
        return nn.Sequential(nn.Flatten(), nn.Linear(784, 1024), nn.ReLU(),
                             nn.Linear(1024, 1024), nn.ReLU(), nn.Linear(1024, 10))
    if model == "cnn":
        return nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(),
                             nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Flatten(), nn.Linear(12544, 128), nn.ReLU(), nn.Linear(128, 10))
    raise ValueError(model)


def median_seconds(fn, min_time, runs, cap=None):
    """Median seconds per call; None if the first call exceeds cap."""
    t0 = time.perf_counter()
    fn()
    first = time.perf_counter() - t0
    if cap is not None and first > cap:
        return None
    calls, elapsed = 1, first
    while elapsed < min_time:
        fn()
        calls += 1
        elapsed = time.perf_counter() - t0
    reps = int(min_time / (elapsed / calls)) + 1
    per = []
    for _ in range(runs):
        s = time.perf_counter()
        for _ in range(reps):
            fn()
        per.append((time.perf_counter() - s) / reps)
    per.sort()
    return per[len(per) // 2]


def worker(args):
    import torch
    torch.set_num_threads(int(args.threads.rstrip("s")))
    torch.manual_seed(0)
    print(f"env\t{args.threads}\t{torch.__version__}", flush=True)
    for model in args.models.split(","):
        for B in [int(b) for b in args.batches.split(",") if b]:
            net = build(model, torch)
            opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
            loss_fn = torch.nn.CrossEntropyLoss()
            x = torch.randn(B, 1, 28, 28)
            y = torch.randint(0, 10, (B,))

            def step():
                opt.zero_grad()
                loss = loss_fn(net(x), y)
                loss.backward()
                opt.step()

            s = median_seconds(step, args.min_time, args.runs, args.cap)
            if s is None:
                print(f"step\t{model}\t{B}\t-\t-", flush=True)
            else:
                print(f"step\t{model}\t{B}\t{s:.6g}\t{B / s:.6g}", flush=True)
        net = build(model, torch).eval()
        for B in [int(b) for b in args.latency.split(",") if b]:
            x = torch.randn(B, 1, 28, 28)

            def infer():
                with torch.no_grad():
                    net(x)

            s = median_seconds(infer, args.min_time, args.runs)
            print(f"latency\t{model}\t{B}\t{s * 1e6:.2f}", flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", default="mlp,cnn")
    p.add_argument("--batches", default="1,8,32,128,512,2048")
    p.add_argument("--latency", default="1,8,64")
    p.add_argument("--threads", default="1,2,1s",
                   help="thread settings, one process each: N or Ns (strict)")
    p.add_argument("--min-time", type=float, default=0.3)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--cap", type=float, default=10.0,
                   help="skip a configuration whose first step takes longer (seconds)")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        worker(args)
        return 0
    rc = 0
    for t in args.threads.split(","):
        cmd = [sys.executable, os.path.abspath(__file__), "--worker", "--threads", t,
               "--models", args.models, "--batches", args.batches, "--latency", args.latency,
               "--min-time", str(args.min_time), "--runs", str(args.runs), "--cap", str(args.cap)]
        env = dict(os.environ)
        if t.endswith("s"):
            n = t[:-1]
            env.update(OMP_NUM_THREADS=n, OPENBLAS_NUM_THREADS=n, MKL_NUM_THREADS=n)
        rc |= subprocess.call(cmd, env=env)
    return rc


if __name__ == "__main__":
    sys.exit(main())
