#!/usr/bin/env python3
"""Write the seed corpus of every fuzz target into tests/fuzz/corpus/<target>/.

Seeds are a handful of small valid inputs and slightly broken ones, so the fuzzer
starts inside each format instead of rediscovering it, and regression seeds
(regress-*): inputs that once crashed a target, each with a note on the defect.
The output is deterministic (gzip without a timestamp), so rerunning this
changes nothing unless this script changed.

Usage: tests/fuzz/make_corpus.py   (standard library only; reads tests/data/)
"""
import gzip
import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "data")
SPLIT = b"#LABELS#"  # fuzz.h: FUZZ_SPLIT


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def gz(data):
    return gzip.compress(data, mtime=0)


# ---- csv: byte 0 = load options (fuzz_data.c), then the file -------------------
LABEL = {"last": 0, "first": 1, "none": 2, "col1": 3}
HEADER = {"auto": 0, "no": 1, "yes": 2}
CLASSES = {"train": 0, "any": 1, "declared3": 2, "present": 3}
SEP = {"detect": 0, ",": 1, "tab": 2, ";": 3, "space": 4}


def load_opts(label="last", header="auto", classes="train", sep="detect"):
    """fuzz_data.c's options byte: label + 4 * (header + 3 * (classes + 4 * sep))."""
    return LABEL[label] + 4 * (HEADER[header] + 3 * (CLASSES[classes] + 4 * SEP[sep]))


def csv_seeds():
    O = load_opts
    seeds = {
        "basic": (O(), b"1.0,2.0,0\n3.5,-1e3,1\n0,0,1\n"),
        "header": (O(), b"a,b,label\n1,2,0\n3,4,1\n"),
        "tab-crlf": (O(sep="tab"), b"1\t2\t0\r\n3\t4\t1\r\n"),
        "semicolon-first": (O(label="first", sep=";"), b"0;1.5;2\n1;2.5;3\n"),
        "bom-quotes": (O(), b'\xef\xbb\xbf"1", "2" ,0\n 3,  4,1\n\n'),
        "spaces": (O(), b" 1   2 0\n3 4\t1\n"),
        "cr-only": (O(), b"1,2,0\r3,4,1\r"),
        "no-label": (O(label="none"), b"1,2,3\n4,5,6\n"),
        "declared-k": (O(classes="declared3"), b"1,2\n3,0\n"),
        "any-label": (O(classes="any"), b"1,7\n3,2\n"),
        "label-col1": (O(label="col1", classes="present"), b"5,0,6\n7,0,8\n"),
        "forced-header": (O(header="yes"), b"x,y\n1,0\n2,1\n"),
        "no-header": (O(header="no"), b"x,y\n1,0\n2,1\n"),
        "ragged": (O(), b"1,2,0\n3,1\n"),
        "nan": (O(), b"1,nan,0\n2,3,1\n"),
        "label-gap": (O(), b"1,0\n2,2\n"),
        "label-1based": (O(), b"1,1\n2,2\n"),
        "nul": (O(), b"1,2,0\n3\x004,1\n"),
        "huge": (O(), b"1e39,0\n2,1\n"),
    }
    for name, (opt, body) in seeds.items():
        write("csv", name, bytes([opt]) + body)
    write("csv", "gzip", bytes([O()]) + gz(b"1,2,0\n3,4,1\n5,6,0\n"))
    write("csv", "gzip-truncated", bytes([O()]) + gz(b"1,2,0\n3,4,1\n5,6,0\n")[:-6])
    with open(os.path.join(DATA, "tabular", "scales-train.csv"), "rb") as f:
        head = b"".join(f.readlines()[:8])
    write("csv", "scales-head", bytes([O()]) + head)


# ---- npy: byte 0 = options, then X.npy [#LABELS# y.npy] ---------------------------
def npy(descr, shape, payload, fortran=False, version=1):
    shape_txt = "(" + "".join("%d, " % s for s in shape).rstrip(" ")
    shape_txt = shape_txt[:-1] + ")" if len(shape) > 1 else shape_txt + ")"
    d = "{'descr': '%s', 'fortran_order': %s, 'shape': %s, }" % (
        descr, "True" if fortran else "False", shape_txt)
    pre = 10 if version == 1 else 12
    pad = (64 - (pre + len(d) + 1) % 64) % 64
    h = (d + " " * pad + "\n").encode()
    if version == 1:
        return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(h)) + h + payload
    return b"\x93NUMPY" + bytes([version, 0]) + struct.pack("<I", len(h)) + h + payload


def f4(*v):
    return struct.pack("<%df" % len(v), *v)


def npy_seeds():
    x32 = npy("<f4", (3, 2), f4(1, 2, 3, 4, 5, 6))
    y8 = npy("<i8", (3,), struct.pack("<3q", 0, 1, 0))
    O = load_opts
    seeds = {
        "f4-i8": (O(), x32 + SPLIT + y8),
        "u1-image-unlabelled": (O(), npy("|u1", (2, 2, 2), bytes(range(8)))),
        "f8-u1": (O(classes="present"), npy("<f8", (2, 3), struct.pack("<6d", 0, 1, 2, 3, 4, 5)) +
                  SPLIT + npy("|u1", (2,), b"\x01\x00")),
        "nchw-i4": (O(classes="any"), npy("<f4", (2, 1, 2, 2), f4(*range(8))) + SPLIT +
                    npy("<i4", (2,), struct.pack("<2i", 5, 1))),
        "v2-header": (O(), npy("<f4", (2, 2), f4(1, 2, 3, 4), version=2)),
        "fortran": (O(), npy("<f4", (2, 2), f4(1, 2, 3, 4), fortran=True)),
        "truncated": (O(), npy("<f4", (3, 2), f4(1, 2, 3))),
        "bad-dtype": (O(), npy("<f2", (2, 2), b"\0" * 8)),
        "labels-mismatch": (O(), x32 + SPLIT + npy("<i8", (2,), struct.pack("<2q", 0, 1))),
        "nan": (O(), npy("<f4", (2, 1), f4(float("nan"), 1))),
        "negative-label": (O(), x32 + SPLIT + npy("<i8", (3,), struct.pack("<3q", 0, -1, 1))),
        "bad-dict": (O(), b"\x93NUMPY\x01\x00\x10\x00{'descr': '<f4'\n"),
        # The reader allocated (and zeroed) count * 4 bytes before reading the data:
        # 4 TB for this 100-byte file, and for (2^62 - 1, 1) the size wrapped in
        # bl_mem_alloc and fread wrote the data past a 60-byte block.
        "regress-npy-claims-huge": (O(), npy("<f4", (1000000000, 1000), f4(1, 2))),
        "regress-npy-size-wrap": (O(), npy("<f4", (4611686018427387903, 1), b"A" * 256)),
        # count * 4 for the float copy of uint8 data overflowed size_t.
        "regress-npy-u1-overflow": (O(), npy("|u1", (4611686018427387904, 1), b"B" * 64)),
    }
    for name, (opt, body) in seeds.items():
        write("npy", name, bytes([opt]) + body)


# ---- idx: byte 0 = options, then images [#LABELS# labels], raw or gzip ---------------
def idx(dims, payload, type_byte=0x08):
    return bytes([0, 0, type_byte, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims) + payload


def idx_seeds():
    with gzip.open(os.path.join(DATA, "fmnist-sample", "train-images-idx3-ubyte.gz")) as f:
        f.read(16)
        pixels = f.read(3 * 784)
    with gzip.open(os.path.join(DATA, "fmnist-sample", "train-labels-idx1-ubyte.gz")) as f:
        f.read(8)
        labels = f.read(3)
    images3 = idx((3, 28, 28), pixels)
    labels3 = idx((3,), labels)
    tiny = idx((4, 2, 2), bytes(range(16)))
    tiny_labels = idx((4,), b"\x00\x01\x01\x00")
    O = load_opts
    seeds = {
        "fmnist-3": (O(classes="any"), images3 + SPLIT + labels3),
        "fmnist-3-gz": (O(classes="any"), gz(images3) + SPLIT + gz(labels3)),
        "tiny": (O(), tiny + SPLIT + tiny_labels),
        "tiny-gz": (O(), gz(tiny) + SPLIT + tiny_labels),
        "unlabelled": (O(), tiny),
        "2d": (O(classes="any"), idx((2, 3), bytes(6)) + SPLIT + idx((2,), b"\x00\x07")),
        "4d": (O(classes="declared3"), idx((2, 1, 2, 2), bytes(range(8))) + SPLIT +
               idx((2,), b"\x01\x00")),
        "1d": (O(), idx((5,), bytes(5))),
        "type-int": (O(), idx((2, 2), bytes(4), type_byte=0x0C)),
        "ndim-5": (O(), idx((1, 1, 1, 1, 1), b"\x00")),
        "truncated": (O(), idx((4, 2, 2), bytes(10))),
        "count-mismatch": (O(), tiny + SPLIT + idx((3,), b"\x00\x01\x00")),
        "claims-huge": (O(), idx((2000000000, 2000000000), bytes(8))),
        "gz-truncated": (O(), gz(tiny)[:-5]),
    }
    for name, (opt, body) in seeds.items():
        write("idx", name, bytes([opt]) + body)


# ---- checkpoint: a safetensors file ----------------------------------------------
def safetensors(tensors, meta=None, pad=True):
    """tensors: [(name, dtype, shape, raw bytes)] laid out in order."""
    header, off = {}, 0
    if meta is not None:
        header["__metadata__"] = meta
    for name, dt, shape, raw in tensors:
        header[name] = {"dtype": dt, "shape": list(shape), "data_offsets": [off, off + len(raw)]}
        off += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    if pad:
        h += b" " * ((8 - len(h) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + b"".join(t[3] for t in tensors)


def ramp(n, scale=0.1):
    return f4(*[((i * 7) % 11 - 5) * scale for i in range(n)])


def ckpt_meta(spec, shape, n_classes, norm):
    return {"format": "batchlab-checkpoint-1", "spec": spec, "input_shape": shape,
            "n_classes": str(n_classes), "loss": "xent", "optimizer": "sgd", "optim_t": "3",
            "step": "3", "epoch": "0", "epoch_pos": "6", "samples_seen": "6", "seed": "1",
            "batch": "2", "micro_batch": "2", "lr": "0.1", "norm": norm, "world_size": "1"}


def checkpoint_seeds():
    # The dropout generator state of checkpoints from before counter-based dropout: the
    # loader ignores it now, and the seeds keep that older layout covered.
    rng = ("rng.dropout", "U8", (32,), bytes(range(32)))
    dense = safetensors([
        ("1.weight", "F32", (3, 4), ramp(12)), ("1.bias", "F32", (3,), ramp(3)),
        ("norm.scale", "F32", (4,), f4(1, 0.5, 2, 1)), ("norm.mean", "F32", (4,), f4(0, 1, 0, -1)),
        rng], ckpt_meta("flatten,dense:3", "4,1,1", 3, "standard"))
    conv = safetensors([
        ("0.weight", "F32", (2, 1, 3, 3), ramp(18)), ("0.bias", "F32", (2,), ramp(2)),
        ("4.weight", "F32", (2, 8), ramp(16)), ("4.bias", "F32", (2,), ramp(2)),
        ("norm.scale", "F32", (16,), f4(*[1 / 255] * 16)), rng],
        ckpt_meta("conv3x3:2,relu,maxpool2,flatten,dense:2", "1,4,4", 2, "unit"))
    bn = safetensors([
        ("0.weight", "F32", (4, 3), ramp(12)), ("0.bias", "F32", (4,), ramp(4)),
        ("1.weight", "F32", (4,), f4(1, 1, 1, 1)), ("1.bias", "F32", (4,), f4(0, 0, 0, 0)),
        ("1.running_mean", "F32", (4,), f4(0, 0.1, 0, 0)),
        ("1.running_var", "F32", (4,), f4(1, 1, 2, 1)),
        ("4.weight", "F32", (2, 4), ramp(8)), ("4.bias", "F32", (2,), ramp(2))],
        ckpt_meta("dense:4,bn,relu,dropout:0.5,dense:2", "3,1,1", 2, "none"))
    pool = safetensors([
        ("3.weight", "F32", (2, 2), ramp(4)), ("3.bias", "F32", (2,), ramp(2))],
        ckpt_meta("avgpool2,flatten,lrelu:0.1,dense:2,sigmoid", "2,2,2", 2, "none"))
    plain = safetensors([
        ("a", "F64", (2,), struct.pack("<2d", 1, 2)), ("b", "I32", (), struct.pack("<i", 7)),
        ("c", "I64", (1, 1), struct.pack("<q", -1)), ("d", "U8", (0, 3), b"")],
        {"note": "not a checkpoint"})
    write("checkpoint", "dense-standard", dense)
    write("checkpoint", "conv-unit", conv)
    write("checkpoint", "bn-dropout", bn)
    write("checkpoint", "pool-lrelu", pool)
    write("checkpoint", "plain-dtypes", plain)
    write("checkpoint", "unpadded", safetensors([("x", "F32", (1,), f4(1))], pad=False))
    write("checkpoint", "truncated", dense[:-10])
    write("checkpoint", "header-too-long", struct.pack("<Q", 1 << 40) + b"{}")
    write("checkpoint", "not-json", struct.pack("<Q", 8) + b"{\"a\":[1,")
    write("checkpoint", "trailing", struct.pack("<Q", 8) + b"{}  x   ")
    over = bytearray(safetensors([("x", "F32", (1,), f4(1)), ("y", "F32", (1,), f4(2))]))
    write("checkpoint", "overlap", bytes(over).replace(b"[4,8]", b"[0,4]") + f4(0))
    write("checkpoint", "wrong-shape", safetensors([
        ("1.weight", "F32", (4, 3), ramp(12)), ("1.bias", "F32", (3,), ramp(3))],
        ckpt_meta("flatten,dense:3", "4,1,1", 3, "none")).replace(b"[4,3]", b"[2,6]"))
    write("checkpoint", "missing-tensor", safetensors(
        [("1.bias", "F32", (3,), ramp(3))], ckpt_meta("flatten,dense:3", "4,1,1", 3, "none")))
    write("checkpoint", "bad-format", safetensors(
        [("1.bias", "F32", (3,), ramp(3))], {"format": "other", "spec": "dense:3"}))
    # input_shape is text: 1x2147483647x1 overflowed int in the conv output size
    # (h + 2 * pad), and 2097152x2097152x4194304 wrapped c*h*w to 0 in size_t.
    meta = {"format": "batchlab-checkpoint-1", "n_classes": "0", "norm": "none"}
    write("checkpoint", "regress-shape-int-overflow",
          safetensors([], dict(meta, spec="conv3x3:1", input_shape="1,2147483647,1")))
    write("checkpoint", "regress-shape-size-wrap",
          safetensors([], dict(meta, spec="flatten,dense:1", input_shape="2097152,2097152,4194304")))


# ---- spec: c, h, w, classes/batch, then the spec ---------------------------------------
# c = 1 + b0 % 4, h = 1 + b1 % 16, w = 1 + b2 % 16; b3 bit 3 set: 1 + (b3 & 7) classes,
# else any output width; batch = 1 + (b3 >> 4) % 4.
def spec_seeds():
    seeds = {
        "mlp": ((0, 15, 15, 0x1F), "mlp"),
        "cnn": ((0, 15, 15, 0x0F), "cnn"),
        "logreg": ((2, 3, 3, 0x0A), "logreg"),
        "everything": ((2, 7, 7, 0x3A),
                       "conv3x3:4:s2:p1,bn,relu,maxpool2:s1,flatten,dropout:0.3,dense:5,gelu,"
                       "dense:3"),
        "pools-acts": ((1, 3, 3, 0x00), "avgpool2,flatten,lrelu:0.2,tanh,sigmoid,dense:2"),
        "rect-conv": ((0, 5, 5, 0x10), " conv5x3:2:p0 , flatten, dense:4"),
        "bn-vector": ((3, 0, 0, 0x00), "dense:8,bn,relu,dense:2,dropout"),
        "dense-0": ((0, 0, 0, 0x00), "dense:0"),
        "typo": ((0, 0, 0, 0x00), "dens:4"),
        "conv-no-k": ((0, 3, 3, 0x00), "conv3x3"),
        "empty-token": ((0, 0, 0, 0x00), "dense:4,,relu"),
        "negative-slope": ((0, 0, 0, 0x00), "lrelu:-1"),
        "infinite-slope": ((0, 1, 1, 0x00), "lrelu:inf"),
        "big-slopes": ((0, 1, 1, 0x00), "dense:4,lrelu:1e30,dense:4,lrelu:1e30,dense:2"),
        "dropout-1": ((0, 0, 0, 0x00), "dropout:1"),
        "conv-too-big": ((0, 1, 1, 0x00), "conv9x9:1:p0"),
        "classes-mismatch": ((0, 0, 0, 0x0A), "dense:2"),
        "big-dense": ((3, 15, 15, 0x00), "flatten,dense:1000000"),
        # A kernel taller than its input with "same" padding: im2col zeroed rows
        # past the end of its buffer (a 9x9 kernel on 2x2, pad 4).
        "regress-conv-kernel-over-input": ((0, 1, 1, 0x00), "conv9x9:1"),
        "regress-conv-kernel-over-input-deep": ((1, 2, 2, 0x1A), "conv7x7:2,relu,flatten,dense:3"),
    }
    for name, (head, spec) in seeds.items():
        write("spec", name, bytes(head) + spec.encode())


# ---- kserve: byte 0 = model (bits 0-1) | header present (bit 2); [u16 header_len] body
def kserve_seeds():
    def req(shape, data=None, extra_input=None, **top):
        inp = {"name": "input", "shape": shape, "datatype": "FP32"}
        if data is not None:
            inp["data"] = data
        inp.update(extra_input or {})
        body = dict(top)
        body["inputs"] = [inp]
        return json.dumps(body).encode()

    def binary(model, shape, values, **top):
        raw = f4(*values)
        j = req(shape, extra_input={"parameters": {"binary_data_size": len(raw)}}, **top)
        return bytes([model | 4]) + struct.pack("<H", len(j)) + j + raw

    seeds = {
        "flat": bytes([0]) + req([2, 4], list(range(1, 9)), id="a"),
        "nested": bytes([0]) + req([2, 4], [[1, 2, 3, 4], [5, 6.5, -7e-3, 8E2]]),
        "params-outputs": bytes([0]) + req(
            [1, 4], [0, 0, 0, 0], parameters={"timeout_ms": 5, "binary_data_output": True},
            outputs=[{"name": "logits", "parameters": {"binary_data": True}}]),
        "image": bytes([1]) + req([1, 1, 2, 3], [[[1, 2, 3], [4, 5, 6]]]),
        "image-flat": bytes([1]) + req([1, 6], [1, 2, 3, 4, 5, 6]),
        "binary": binary(0, [1, 4], [1, 2, 3, 4]),
        "binary-image": binary(1, [2, 1, 2, 3], list(range(12)), id="b"),
        "wrong-name": bytes([0]) + req([1, 4], [1, 2, 3, 4]).replace(b'"input"', b'"x"'),
        "wrong-dtype": bytes([0]) + req([1, 4], [1, 2, 3, 4]).replace(b"FP32", b"INT8"),
        "shape-mismatch": bytes([0]) + req([1, 5], [1, 2, 3, 4, 5]),
        "count-mismatch": bytes([0]) + req([2, 4], [1, 2, 3]),
        "malformed": bytes([0]) + b'{"inputs": [{"name": "input", "data": [1,2,',
        "data-twice": bytes([2]) + b'{"data":[1],"inputs":[{"name":"input","shape":[1,1],'
                                   b'"datatype":"FP32","data":[2]}]}',
        "id-number": bytes([2]) + req([1, 1], [1], id=5),
        "odd-numbers": bytes([2]) + req([4, 1], [0]).replace(
            b"[0]", b"[1e400, -0.0, 1.5E-7, 12345678901234567890123]"),
        "id-escapes": bytes([3]) + req([1, 2, 2, 1], [1, 2, 3, 4], id='q"\\\u0001\u00e9'),
        "binary-no-header": bytes([0]) + req(
            [1, 4], extra_input={"parameters": {"binary_data_size": 16}}) + f4(1, 2, 3, 4),
        # The shape sized the input buffer before the body was checked: 8 GB here.
        "regress-shape-allocates": bytes([2]) + req([2000000000, 1], [1]),
        "regress-shape-allocates-binary": binary(2, [2000000000, 1], [1]),
        # Issue 14: the scan of the whole text (json_scan.c).
        "escaped-key-decoy": bytes([2]) + b'{"parameters":{"data":[9]},"inputs":[{"name":'
                                          b'"input","shape":[1,1],"datatype":"FP32",'
                                          b'"d\\u0061ta":[2]}]}',
        "escaped-inputs": bytes([2]) + req([1, 1], [3]).replace(b'"inputs"', b'"\\u0069nputs"'),
        "id-utf8": bytes([2]) + req([1, 1], [1]).replace(b"{", b'{"id":"\xc3\xa9\xf0\x9f\x98\x80",', 1),
        "id-bad-utf8": bytes([2]) + req([1, 1], [1]).replace(b"{", b'{"id":"a\xff\xc0\xaf",', 1),
        "id-surrogates": bytes([2]) + req([1, 1], [1]).replace(
            b"{", b'{"id":"\\ud83d\\ude00\\ud800",', 1),
        "id-too-long": bytes([2]) + req([1, 1], [1], id="x" * 256),
        "trailing-bytes": bytes([2]) + req([1, 1], [1]) + b" xyz",
        "non-finite": bytes([2]) + req([2, 1], [0]).replace(b"[0]", b"[1e39, -1e39]"),
        "binary-nan": binary(2, [1, 1], [float("nan")]),
        "data-not-numbers": bytes([2]) + req([3, 1], [0]).replace(b"[0]", b'[1, "2,]", {"a":[3]}]'),
        "extra-big-array": bytes([2]) + req([1, 1], [1], parameters={"junk": list(range(300))}),
    }
    for name, body in seeds.items():
        write("kserve", name, body)


# ---- cli: argv after the subcommand, split on NUL -------------------------------------
def cli_seeds():
    seeds = {
        "train": ["--model", "cnn", "--batch", "128", "--lr=0.05", "--steps", "100"],
        "find": ["--memory", "2G", "--batches", "16,32,64", "--margin", "0.2"],
        "tune": ["--lrs", "0.1,0.01,1e-3", "--max-body-bytes", "1048576", "--quiet"],
        "data": ["--data", "x.csv", "--label-col", "first", "--sep", "tab", "--header",
                 "--classes", "10"],
        "positional": ["ckpt.safetensors", "--quiet", "second"],
        "help": ["--batch", "1", "--help"],
        "bad-int": ["--batch", "abc"],
        "int-range": ["--batch", "99999999999"],
        "inf": ["--lr", "inf"],
        "flag-value": ["--quiet=1"],
        "unknown": ["--unknown", "1"],
        "missing-value": ["--model"],
        "negative-size": ["--max-body-bytes", "-5"],
        "list-repeat": ["--lrs", "0.1,0.1"],
        "list-bad": ["--batches", "1,2,x"],
        "bytes-units": ["--memory", "1.5GiB"],
        "three-positional": ["a", "b", "c"],
        # cli_parse_bytes converted any double to size_t: undefined beyond 2^64.
        "regress-memory-overflow": ["--memory", "1e300G"],
    }
    for name, args in seeds.items():
        write("cli", name, b"\0".join(a.encode() for a in args))


if __name__ == "__main__":
    csv_seeds()
    npy_seeds()
    idx_seeds()
    checkpoint_seeds()
    spec_seeds()
    kserve_seeds()
    cli_seeds()
