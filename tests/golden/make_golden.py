#!/usr/bin/python3
"""Golden dumps for tests/test_golden.c, written by PyTorch.

Regenerate (from the repository root; needs Debian's python3-torch, which only
the system interpreter has, not a pyenv `python3`):

    /usr/bin/python3 tests/golden/make_golden.py

It rewrites tests/golden/<case>.safetensors for every case below. The output is
deterministic (fixed seeds, one thread, deterministic CPU kernels), so a rerun
with the same torch gives the same bytes; the files are committed so that CI
needs no torch.

Each file holds, for one small nn.Sequential whose module indices match the
batchlab spec tokens (so state_dict names match bl_model_tensor names):
    x                (B,C,H,W) F32 input     y  (B) I32 labels
    init.<name>      every parameter and buffer before training
                     (num_batches_tracked is skipped: batchlab has no such buffer)
    logits           train-mode forward output (B,K)
    loss             [1], the mean loss over the batch
    grad.<name>      every parameter gradient of one backward of the mean loss
    sgd.<name>       params and buffers after 5 steps of SGD(lr 0.1, momentum 0.9)
    adam.<name>      params and buffers after 5 steps of Adam(lr 0.01)
Every optimizer step runs zero_grad, a train-mode forward on the same batch, the
loss, backward and step, so batch-norm running stats are updated 5 times.
__metadata__: spec (batchlab), batch, loss ("xent" | "mse"), n_classes, and
bias_before_bn: the biases that feed straight into a batch norm. Their exact
gradient is zero (batch norm subtracts the batch mean), so what either side
computes is rounding noise; Adam turns that noise into +-lr steps of random
sign. So after Adam the test bounds such a bias only loosely, and checks the
following running_mean (which sees the bias through the batch mean) after
correcting for the difference between the two bias trajectories; for that the
file also holds
    trace_adam.<bias>  (5, n) the bias at each of the 5 Adam forwards.

The safetensors writer is by hand because torch 1.13 has no safetensors
package: u64 LE header length, JSON header padded with spaces to a multiple of
8, then the raw little-endian tensor bytes back to back.
"""
import json
import os
import struct
import sys

import torch
import torch.nn as nn

OUT_DIR = os.path.dirname(os.path.abspath(__file__))
SGD_LR, SGD_MOMENTUM, ADAM_LR, STEPS = 0.1, 0.9, 0.01, 5


# name -> (spec, input (C,H,W), batch, n_classes, loss, torch module builder,
#          flatten input before the Sequential: batchlab's dense flattens its input
#          implicitly, torch needs a view outside the Sequential so indices match)
CASES = {
    "mlp": (
        "flatten,dense:16,relu,dense:12,tanh,dense:8,gelu,dense:5",
        (1, 4, 5), 6, 5, "xent",
        lambda: nn.Sequential(
            nn.Flatten(), nn.Linear(20, 16), nn.ReLU(), nn.Linear(16, 12), nn.Tanh(),
            nn.Linear(12, 8), nn.GELU(), nn.Linear(8, 5)),
        False,
    ),
    # 9x9 -conv p1-> 9x9 -maxpool2-> 4x4 -conv p1-> 4x4 -avgpool2-> 2x2; 6*2*2 = 24
    "cnn": (
        "conv3x3:4,relu,maxpool2,conv3x3:6:s1:p1,bn,lrelu:0.1,avgpool2,flatten,dense:5",
        (2, 9, 9), 4, 5, "xent",
        lambda: nn.Sequential(
            nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(4, 6, 3, stride=1, padding=1), nn.BatchNorm2d(6), nn.LeakyReLU(0.1),
            nn.AvgPool2d(2), nn.Flatten(), nn.Linear(24, 5)),
        False,
    ),
    # Non-square kernel, stride 2, pad 0: H (9-3)/2+1 = 4, W (13-5)/2+1 = 5 (floor).
    # 4x5 -conv3x3 p1 (default R/2)-> 4x5 -maxpool2-> 2x2 (odd column dropped);
    # 5*2*2 = 20 -> dense 10 -> BatchNorm1d -> relu -> 4.
    "cnn2": (
        "conv3x5:4:s2:p0,sigmoid,conv3x3:5,tanh,maxpool2,flatten,dense:10,bn,relu,dense:4",
        (3, 9, 13), 5, 4, "xent",
        lambda: nn.Sequential(
            nn.Conv2d(3, 4, (3, 5), stride=2, padding=0), nn.Sigmoid(),
            nn.Conv2d(4, 5, 3, padding=1), nn.Tanh(), nn.MaxPool2d(2), nn.Flatten(),
            nn.Linear(20, 10), nn.BatchNorm1d(10), nn.ReLU(), nn.Linear(10, 4)),
        False,
    ),
    # MSE against one-hot labels; a flat input (6,1,1) fed to dense directly.
    "mse": (
        "dense:10,sigmoid,dense:8,lrelu:0.2,dense:4",
        (6, 1, 1), 8, 4, "mse",
        lambda: nn.Sequential(
            nn.Linear(6, 10), nn.Sigmoid(), nn.Linear(10, 8), nn.LeakyReLU(0.2),
            nn.Linear(8, 4)),
        True,
    ),
}


def write_safetensors(path, tensors, metadata):
    """tensors: list of (name, torch tensor float32/int32), written in order."""
    header, blobs, off = {}, [], 0
    for name, t in tensors:
        t = t.detach().contiguous().cpu()
        if t.dtype == torch.float32:
            dt, fmt = "F32", "<%df"
        elif t.dtype == torch.int32:
            dt, fmt = "I32", "<%di"
        else:
            raise TypeError("%s: dtype %s" % (name, t.dtype))
        vals = t.reshape(-1).tolist()
        raw = struct.pack(fmt % len(vals), *vals)
        header[name] = {"dtype": dt, "shape": list(t.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    header["__metadata__"] = {k: str(v) for k, v in metadata.items()}
    hj = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hj += b" " * ((8 - len(hj) % 8) % 8)
    with open(path + ".tmp", "wb") as f:
        f.write(struct.pack("<Q", len(hj)))
        f.write(hj)
        for b in blobs:
            f.write(b)
    os.replace(path + ".tmp", path)


def read_safetensors(path):
    """Independent reader used to check what was written."""
    with open(path, "rb") as f:
        buf = f.read()
    (n,) = struct.unpack("<Q", buf[:8])
    header = json.loads(buf[8:8 + n])
    meta = header.pop("__metadata__")
    out = {}
    for name, h in header.items():
        b, e = h["data_offsets"]
        code = {"F32": "f", "I32": "i"}[h["dtype"]]
        vals = struct.unpack("<%d%s" % ((e - b) // 4, code), buf[8 + n + b:8 + n + e])
        dt = torch.float32 if code == "f" else torch.int32
        out[name] = torch.tensor(vals, dtype=dt).reshape(h["shape"])
    return out, meta


def state_items(model):
    """Parameters and buffers under their state_dict names, minus num_batches_tracked."""
    return [(k, v) for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")]


def loss_of(out, y, kind, n_classes):
    if kind == "xent":
        return nn.CrossEntropyLoss()(out, y.long())
    target = nn.functional.one_hot(y.long(), n_classes).to(out.dtype)
    return nn.MSELoss()(out, target)


def bias_before_bn(model):
    names = []
    mods = list(model)
    for i in range(len(mods) - 1):
        if isinstance(mods[i + 1], (nn.BatchNorm1d, nn.BatchNorm2d)) and \
                getattr(mods[i], "bias", None) is not None:
            names.append("%d.bias" % i)
    return names


def make_case(name, seed):
    spec, (c, h, w), B, K, kind, build, flatten_input = CASES[name]
    torch.manual_seed(seed)
    model = build()
    # Batch norm starts away from its defaults so a swapped gamma/beta or a
    # wrong running-stat update cannot pass by accident.
    with torch.no_grad():
        for m in model:
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                m.weight.copy_(1 + 0.3 * torch.randn_like(m.weight))
                m.bias.copy_(0.2 * torch.randn_like(m.bias))
                m.running_mean.copy_(0.1 * torch.randn_like(m.running_mean))
                m.running_var.copy_(0.5 + torch.rand_like(m.running_var))
    x = torch.randn(B, c, h, w)
    y = torch.randint(0, K, (B,), dtype=torch.int32)
    xin = x.reshape(B, -1) if flatten_input else x
    init = {k: v.clone() for k, v in state_items(model)}

    model.train()
    model.zero_grad()
    logits = model(xin)
    assert logits.shape == (B, K), (name, logits.shape)
    loss = loss_of(logits, y, kind, K)
    loss.backward()
    grads = [("grad." + k, p.grad.clone()) for k, p in model.named_parameters()]

    noisy = bias_before_bn(model)
    finals = {}
    for opt_name in ("sgd", "adam"):
        model.load_state_dict({**model.state_dict(), **init})
        if opt_name == "sgd":
            opt = torch.optim.SGD(model.parameters(), lr=SGD_LR, momentum=SGD_MOMENTUM)
        else:
            opt = torch.optim.Adam(model.parameters(), lr=ADAM_LR)
        traces = {k: [] for k in noisy}
        for _ in range(STEPS):
            for k in noisy:
                traces[k].append(model.state_dict()[k].clone())
            opt.zero_grad()
            l = loss_of(model(xin), y, kind, K)
            l.backward()
            opt.step()
        finals[opt_name] = [(opt_name + "." + k, v.clone()) for k, v in state_items(model)]
        if opt_name == "adam":
            finals[opt_name] += [("trace_adam." + k, torch.stack(v)) for k, v in traces.items()]

    tensors = [("x", x), ("y", y)]
    tensors += [("init." + k, v) for k, v in init.items()]
    tensors += [("logits", logits), ("loss", loss.reshape(1))]
    tensors += grads + finals["sgd"] + finals["adam"]
    meta = {"spec": spec, "batch": B, "loss": kind, "n_classes": K,
            "bias_before_bn": ",".join(noisy),
            "seed": seed, "torch": torch.__version__,
            "sgd": "lr=%g momentum=%g steps=%d" % (SGD_LR, SGD_MOMENTUM, STEPS),
            "adam": "lr=%g steps=%d" % (ADAM_LR, STEPS)}
    path = os.path.join(OUT_DIR, name + ".safetensors")
    write_safetensors(path, tensors, meta)

    back, meta_back = read_safetensors(path)
    assert meta_back["spec"] == spec
    assert [k for k, _ in tensors] == list(back.keys())
    for k, v in tensors:
        assert torch.equal(back[k], v.detach()), k
    size = os.path.getsize(path)
    assert size < 100 * 1024, (path, size)
    print("%-5s %6d bytes, %2d tensors, loss %.6f" % (name, size, len(tensors), loss.item()))


def main():
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    torch.set_default_dtype(torch.float32)
    for i, name in enumerate(CASES):
        make_case(name, 1234 + i)
    return 0


if __name__ == "__main__":
    sys.exit(main())
