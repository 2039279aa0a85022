"""The benchmark's data, prepared identically for every system measured (a few lines each, on purpose).

* NSL-KDD: one-hot of the 3 categoricals (categories from the training file; unseen ones -> all zeros),
  log1p of the heavy-tailed counts, standardise with training statistics -> 122 float32 features;
  labels mapped to 5 classes (normal, DoS, Probe, R2L, U2R) as integers 0..4.
* MNIST: pixels / 255 as float32 (784 features), labels 0..9.

Reading is NumPy-only (no pandas) so the benchmark measures the training systems, not a CSV parser.
"""
from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

CATEGORICAL = (1, 2, 3)  # protocol_type, service, flag
# heavy-tailed counts / byte totals: duration, src_bytes, dst_bytes, wrong_fragment, urgent, hot,
# num_failed_logins, num_compromised, num_root, num_file_creations, num_shells, num_access_files, count,
# srv_count, dst_host_count, dst_host_srv_count
LOG1P = (0, 4, 5, 7, 8, 9, 10, 12, 15, 16, 17, 18, 22, 23, 31, 32)
CLASSES = ("normal", "DoS", "Probe", "R2L", "U2R")
FAMILY = {
    "normal": "normal",
    **dict.fromkeys("back land neptune pod smurf teardrop apache2 mailbomb processtable udpstorm".split(), "DoS"),
    **dict.fromkeys("ipsweep nmap portsweep satan mscan saint".split(), "Probe"),
    **dict.fromkeys(("ftp_write guess_passwd imap multihop phf spy warezclient warezmaster named sendmail "
                     "snmpgetattack snmpguess worm xlock xsnoop httptunnel").split(), "R2L"),
    **dict.fromkeys("buffer_overflow loadmodule perl rootkit ps sqlattack xterm".split(), "U2R"),
}


def data_dir() -> Path:
    """``$BARENET_DATA`` or ``../shared/data`` next to the repository."""
    repo = Path(__file__).resolve().parents[1]
    env = os.environ.get("BARENET_DATA")
    if env:
        return Path(env) if Path(env).is_absolute() else (repo / env).resolve()
    return repo.parent / "shared" / "data"


def _read_kdd(path: Path):
    with gzip.open(path, "rt") as fh:
        rows = [line.rstrip("\n").split(",") for line in fh if line.strip()]
    cols = list(zip(*rows))
    return cols


def load_nsl_kdd(root: Path | None = None):
    """(X_train, y_train, X_test, y_test): float32 (n, 122) and int64 labels in 0..4 (see ``CLASSES``)."""
    root = Path(root or data_dir()) / "nsl-kdd"
    train, test = _read_kdd(root / "KDDTrain+.txt.gz"), _read_kdd(root / "KDDTest+.txt.gz")
    categories = [sorted(set(train[c])) for c in CATEGORICAL]
    numeric = [c for c in range(41) if c not in CATEGORICAL]

    def features(cols):
        num = np.array([cols[c] for c in numeric], dtype=np.float64).T
        for j, c in enumerate(numeric):
            if c in LOG1P:
                np.log1p(num[:, j], out=num[:, j])
        onehots = []
        for c, cats in zip(CATEGORICAL, categories):
            lookup = {v: i for i, v in enumerate(cats)}
            idx = np.array([lookup.get(v, -1) for v in cols[c]])
            block = np.zeros((len(idx), len(cats)))
            known = idx >= 0
            block[np.flatnonzero(known), idx[known]] = 1.0  # unseen categories stay all-zero
            onehots.append(block)
        return np.hstack([num] + onehots)

    Xtr, Xte = features(train), features(test)
    mean, std = Xtr.mean(axis=0), Xtr.std(axis=0)
    std[std == 0] = 1.0
    Xtr = ((Xtr - mean) / std).astype(np.float32)
    Xte = ((Xte - mean) / std).astype(np.float32)
    index = {c: i for i, c in enumerate(CLASSES)}
    ytr = np.array([index[FAMILY[v]] for v in train[41]], dtype=np.int64)
    yte = np.array([index[FAMILY[v]] for v in test[41]], dtype=np.int64)
    return Xtr, ytr, Xte, yte


def _read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as fh:
        data = fh.read()
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def load_mnist(root: Path | None = None):
    """(X_train, y_train, X_test, y_test): float32 (n, 784) in [0, 1] and int64 labels 0..9."""
    root = Path(root or data_dir()) / "mnist"
    out = []
    for split in ("train", "t10k"):
        X = _read_idx(root / f"{split}-images-idx3-ubyte.gz").reshape(-1, 784).astype(np.float32)
        X *= np.float32(1.0 / 255.0)
        y = _read_idx(root / f"{split}-labels-idx1-ubyte.gz").astype(np.int64)
        out += [X, y]
    return tuple(out)


def synthetic(n: int, d: int, k: int, seed: int = 0):
    """A small learnable stand-in (for the smoke test): Gaussian features, labels from a random linear map."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d), dtype=np.float32)
    y = np.argmax(X @ rng.standard_normal((d, k), dtype=np.float32), axis=1).astype(np.int64)
    cut = int(0.8 * n)
    return X[:cut], y[:cut], X[cut:], y[cut:]
