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

On a GPU (--device cuda or cuda:N; torch with CUDA, e.g. the device machine's
python3) the same step runs on the device, with the inputs already there, in
one of two modes (--mode, comma-separated for several):
  eager: as on the CPU, each op launched from Python;
  graph: the whole step (zero_grad, forward, loss, backward, SGD step) captured
         once per batch size as one CUDA graph (torch.cuda.CUDAGraph, static
         input tensors, warm-up on a side stream, as PyTorch's CUDA-graph docs
         do it), then replayed; latency likewise replays a captured forward.
--host-input keeps the batch in host memory and copies it to the device in
every step (into the static inputs before each replay in graph mode), as
batchlab's API does; its mode is then named eager-h2d or graph-h2d.
Timing calls torch.cuda.synchronize() before every clock read that ends a
measured interval; latency synchronizes after every call. Each (model, mode)
runs in its own process, one thread setting only (the first of --threads).
The records on a GPU carry the mode as one more, last field, and each step row
is followed by its peak memory:
  env     threads  torch_version  device  device_name  tf32_matmul  tf32_cudnn
  step    model B  step_s  samples_per_s  mode       ("-" "-" if skipped or failed)
  latency model B  us_per_call  mode
  mem     model B  max_memory_allocated_bytes  mode
On the CPU the output is exactly the records above, without a mode.
"""
import argparse
import gc
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


def no_sync():
    pass


def median_seconds(fn, min_time, runs, cap=None, sync=no_sync):
    """Median seconds per call; None if the first call exceeds cap. sync (a
    GPU's synchronize) runs before each clock read that ends an interval."""
    t0 = time.perf_counter()
    fn()
    sync()
    first = time.perf_counter() - t0
    if cap is not None and first > cap:
        return None
    calls, elapsed = 1, first
    while elapsed < min_time:
        fn()
        sync()  # else a GPU queues work ahead and the warm-up undercounts
        calls += 1
        elapsed = time.perf_counter() - t0
    reps = int(min_time / (elapsed / calls)) + 1
    per = []
    for _ in range(runs):
        s = time.perf_counter()
        for _ in range(reps):
            fn()
        sync()
        per.append((time.perf_counter() - s) / reps)
    per.sort()
    return per[len(per) // 2]


def side_stream_warmup(torch, fn, n=3):
    """n calls of fn on a side stream, as before a CUDA-graph capture."""
    st = torch.cuda.Stream()
    st.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(st):
        for _ in range(n):
            fn()
    torch.cuda.current_stream().wait_stream(st)


def step_fn(torch, net, opt, loss_fn, x_host, y_host, dev, mode, host_input):
    """The training step to time, as a function of no arguments."""
    x, y = x_host.to(dev), y_host.to(dev)  # the CPU keeps the very same tensors
    if mode == "eager":
        def step():
            xb, yb = (x_host.to(dev), y_host.to(dev)) if host_input else (x, y)
            opt.zero_grad()
            loss = loss_fn(net(xb), yb)
            loss.backward()
            opt.step()
        return step
    # graph: x and y are the static inputs. Momentum buffers come into being in
    # the warm-up steps; grads set to None before the capture are allocated by
    # the captured backward from the graph's pool and rewritten by each replay,
    # which is what the eager step's zero_grad (set_to_none) amounts to.
    for group in opt.param_groups:  # SGD has none; optimizers with a step count need it
        if "capturable" in group:
            group["capturable"] = True

    def eager():
        opt.zero_grad(set_to_none=True)
        loss_fn(net(x), y).backward()
        opt.step()
    side_stream_warmup(torch, eager)
    g = torch.cuda.CUDAGraph()
    opt.zero_grad(set_to_none=True)
    with torch.cuda.graph(g):
        loss = loss_fn(net(x), y)
        loss.backward()
        opt.step()

    def replay():
        if host_input:
            x.copy_(x_host)
            y.copy_(y_host)
        g.replay()
    replay.keep = (g, loss)  # the graph and its outputs live as long as the step
    return replay


def infer_fn(torch, net, x_host, dev, mode, host_input, sync):
    """Forward-only call to time; on a GPU it waits for its result."""
    x = x_host.to(dev)
    if mode == "eager":
        def infer():
            with torch.no_grad():
                net(x_host.to(dev) if host_input else x)
            sync()
        return infer
    with torch.no_grad():
        side_stream_warmup(torch, lambda: net(x))
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g):
            out = net(x)

    def replay():
        if host_input:
            x.copy_(x_host)
        g.replay()
        sync()
    replay.keep = (g, out)
    return replay


def worker(args):
    import torch
    torch.set_num_threads(int(args.threads.rstrip("s")))
    torch.manual_seed(0)
    dev = torch.device(args.device)
    gpu = dev.type == "cuda"
    sync, tag = no_sync, ""
    if gpu:
        if dev.index is not None:  # cuda:N
            torch.cuda.set_device(dev)
        sync = torch.cuda.synchronize
        if args.tf32 != "default":
            torch.backends.cuda.matmul.allow_tf32 = args.tf32 == "on"
            torch.backends.cudnn.allow_tf32 = args.tf32 == "on"
        print(f"env\t{args.threads}\t{torch.__version__}\t{args.device}\t"
              f"{torch.cuda.get_device_name(dev)}\t{int(torch.backends.cuda.matmul.allow_tf32)}\t"
              f"{int(torch.backends.cudnn.allow_tf32)}", flush=True)
    else:
        print(f"env\t{args.threads}\t{torch.__version__}", flush=True)

    def release():
        gc.collect()
        if gpu:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(dev)

    for model in args.models.split(","):
        for mode in args.mode.split(","):
            if gpu:
                tag = "\t" + mode + ("-h2d" if args.host_input else "")
            for B in [int(b) for b in args.batches.split(",") if b]:
                release()
                try:
                    net = build(model, torch).to(dev)
                    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
                    loss_fn = torch.nn.CrossEntropyLoss()
                    x = torch.randn(B, 1, 28, 28)
                    y = torch.randint(0, 10, (B,))
                    step = step_fn(torch, net, opt, loss_fn, x, y, dev, mode, args.host_input)
                    s = median_seconds(step, args.min_time, args.runs, args.cap, sync)
                except (RuntimeError, MemoryError) as e:  # out of memory, a failed capture
                    if not gpu:
                        raise
                    print(f"peer_torch: {model} B={B} {mode}: {str(e).splitlines()[0]}",
                          file=sys.stderr, flush=True)
                    s = None
                if s is None:
                    print(f"step\t{model}\t{B}\t-\t-{tag}", flush=True)
                else:
                    print(f"step\t{model}\t{B}\t{s:.6g}\t{B / s:.6g}{tag}", flush=True)
                    if gpu:
                        print(f"mem\t{model}\t{B}\t{torch.cuda.max_memory_allocated(dev)}{tag}",
                              flush=True)
                net = opt = step = None
            net = build(model, torch).to(dev).eval()
            for B in [int(b) for b in args.latency.split(",") if b]:
                release()
                x = torch.randn(B, 1, 28, 28)
                infer = infer_fn(torch, net, x, dev, mode, args.host_input, sync)
                s = median_seconds(infer, args.min_time, args.runs, sync=sync)
                print(f"latency\t{model}\t{B}\t{s * 1e6:.2f}{tag}", flush=True)
                infer = None
            net = None


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", default="mlp,cnn")
    p.add_argument("--batches", default="1,8,32,128,512,2048")
    p.add_argument("--latency", default="1,8,64")
    p.add_argument("--threads", default="1,2,1s",
                   help="thread settings, one process each: N or Ns (strict); "
                   "a GPU uses the first only")
    p.add_argument("--min-time", type=float, default=0.3)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--cap", type=float, default=10.0,
                   help="skip a configuration whose first step takes longer (seconds)")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N")
    p.add_argument("--mode", default="eager",
                   help="eager, graph (CUDA graph of the whole step; GPU only) or both: eager,graph")
    p.add_argument("--host-input", action="store_true",
                   help="GPU: copy the batch from host memory in every step (as batchlab does)")
    p.add_argument("--tf32", default="default", choices=("default", "off", "on"),
                   help="GPU: TF32 for matmuls and cuDNN (default: as torch has it)")
    p.add_argument("--worker-timeout", type=float, default=None,
                   help="GPU: seconds one (model, mode) process may run before it is killed")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    modes = args.mode.split(",")
    if any(m not in ("eager", "graph") for m in modes):
        p.error(f"--mode: eager, graph or eager,graph, not {args.mode!r}")
    gpu = args.device.startswith("cuda")
    if not gpu and (args.device != "cpu" or modes != ["eager"]):
        p.error("--device cpu runs --mode eager only; graph mode needs --device cuda")
    if args.worker:
        worker(args)
        return 0
    rc = 0
    common = ["--batches", args.batches, "--latency", args.latency, "--min-time",
              str(args.min_time), "--runs", str(args.runs), "--cap", str(args.cap)]
    if not gpu:
        for t in args.threads.split(","):
            cmd = [sys.executable, os.path.abspath(__file__), "--worker", "--threads", t,
                   "--models", args.models] + common
            env = dict(os.environ)
            if t.endswith("s"):
                n = t[:-1]
                env.update(OMP_NUM_THREADS=n, OPENBLAS_NUM_THREADS=n, MKL_NUM_THREADS=n)
            rc |= subprocess.call(cmd, env=env)
        return rc
    # GPU: one process per (model, mode), so that a failure (out of memory, a
    # broken capture) or a hang costs only the rows after it.
    t = args.threads.split(",")[0]
    for model in args.models.split(","):
        for mode in modes:
            cmd = [sys.executable, os.path.abspath(__file__), "--worker", "--threads", t,
                   "--models", model, "--mode", mode, "--device", args.device,
                   "--tf32", args.tf32] + common + (["--host-input"] if args.host_input else [])
            try:
                r = subprocess.call(cmd, timeout=args.worker_timeout)
            except subprocess.TimeoutExpired:
                print(f"peer_torch: {model} {mode}: killed after {args.worker_timeout} s",
                      file=sys.stderr, flush=True)
                r = 124
            rc |= r
    return rc


if __name__ == "__main__":
    sys.exit(main())
