#!/usr/bin/env python3
"""Generate scales-train.csv and scales-test.csv: a small 3-class tabular set whose
features differ in range by up to 10^5 (as real tabular data does), for
tests/cli_data.sh. The class signal lies in four small-range features; the
wide-range features are noise, and one feature is constant. Dividing every
feature by one global maximum (--norm unit) flattens the signal; per-feature
standardisation keeps it.

Run once (numpy and scikit-learn needed only here, never by the tests):
    /usr/bin/python3 tests/data/tabular/gen_scales.py tests/data/tabular
It prints scikit-learn's LogisticRegression test accuracy with default options,
on the raw features and after StandardScaler; the test compares against the
better of the two.
"""
import sys

import numpy as np

out = sys.argv[1] if len(sys.argv) > 1 else "."
rng = np.random.default_rng(15)
K, n_train, n_test = 3, 240, 120
centres = 1.4 * np.array([[0.0, 0.0, 0.0, 0.0], [1.6, 0.4, -0.8, 0.6], [-0.4, 1.5, 0.9, -1.1]])
signal_scale = np.array([0.002, 0.01, 0.05, 0.3])            # small-range informative features
noise_scale = np.array([1, 5, 20, 80, 200, 500, 1000, 2000, 3000, 5000, 10000])
noise_offset = np.array([0, 10, -50, 300, 1000, -2000, 5000, 0, 20000, 1e4, 5e4])


def make(n):
    y = np.arange(n) % K
    rng.shuffle(y)
    s = (centres[y] + rng.normal(size=(n, 4))) * signal_scale
    z = rng.normal(size=(n, len(noise_scale))) * noise_scale + noise_offset
    const = np.full((n, 1), 7.0)
    x = np.hstack([z[:, :5], s[:, :2], const, z[:, 5:], s[:, 2:]])
    return np.round(x, 6), y


def write(path, x, y):
    names = [f"f{j}" for j in range(x.shape[1])] + ["class"]
    with open(path, "w") as f:
        f.write(",".join(names) + "\n")
        for row, label in zip(x, y):
            f.write(",".join(f"{v:.6g}" for v in row) + f",{label}\n")


xtr, ytr = make(n_train)
xte, yte = make(n_test)
write(f"{out}/scales-train.csv", xtr, ytr)
write(f"{out}/scales-test.csv", xte, yte)

# Read back what was written (rounded to 6 digits), as batchlab sees it.
tr = np.loadtxt(f"{out}/scales-train.csv", delimiter=",", skiprows=1)
te = np.loadtxt(f"{out}/scales-test.csv", delimiter=",", skiprows=1)
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

raw = LogisticRegression().fit(tr[:, :-1], tr[:, -1]).score(te[:, :-1], te[:, -1])
std = make_pipeline(StandardScaler(), LogisticRegression()).fit(tr[:, :-1], tr[:, -1])
std = std.score(te[:, :-1], te[:, -1])
print(f"sklearn LogisticRegression(): raw {raw:.4f}, StandardScaler {std:.4f}")
