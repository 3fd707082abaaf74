#!/usr/bin/env python3
"""Cut a small committed Fashion-MNIST sample for tests and CLI examples.

Reads the IDX .gz files of Debian's dataset-fashion-mnist package and writes the
first N_TRAIN training and N_TEST test images/labels, with the same file names,
so bl_dataset_load_fashion_mnist(dir) loads the sample exactly like the full set.
The gzip streams carry no file name and mtime 0, so reruns give identical bytes.

usage: scripts/make_fmnist_sample.py [SRC_DIR] [DST_DIR]
"""
import gzip
import os
import struct
import sys

N_TRAIN = 600
N_TEST = 200
SRC = "/usr/share/datasets/fashion-mnist"
DST = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data",
                   "fmnist-sample")


def read_idx(path):
    with gzip.open(path, "rb") as f:
        raw = f.read()
    zero, dtype, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype != 0x08:
        sys.exit(f"{path}: not an unsigned-byte IDX file")
    dims = list(struct.unpack(">" + "I" * ndim, raw[4:4 + 4 * ndim]))
    return dims, raw[4 + 4 * ndim:]


def write_idx(path, dims, payload):
    header = struct.pack(">HBB", 0, 0x08, len(dims)) + struct.pack(">" + "I" * len(dims), *dims)
    with open(path, "wb") as out:
        with gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0) as gz:
            gz.write(header + payload)


def cut(src_dir, dst_dir, prefix, n):
    for kind in ("images-idx3", "labels-idx1"):
        name = f"{prefix}-{kind}-ubyte.gz"
        dims, payload = read_idx(os.path.join(src_dir, name))
        if dims[0] < n:
            sys.exit(f"{name}: has only {dims[0]} samples, need {n}")
        per_sample = 1
        for d in dims[1:]:
            per_sample *= d
        write_idx(os.path.join(dst_dir, name), [n] + dims[1:], payload[:n * per_sample])


def main():
    src = sys.argv[1] if len(sys.argv) > 1 else SRC
    dst = sys.argv[2] if len(sys.argv) > 2 else DST
    os.makedirs(dst, exist_ok=True)
    cut(src, dst, "train", N_TRAIN)
    cut(src, dst, "t10k", N_TEST)


if __name__ == "__main__":
    main()
