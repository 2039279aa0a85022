"""Shared helpers for the lab scripts: command line, printed tables, data, plots.

Nothing here is neural-network code; every step script shows its own math. The helpers only keep the
eight scripts short and their output uniform.

Data: the real data sets are found through the ``BARENET_DATA`` environment variable (a folder holding
``mnist/`` and ``fashion-mnist/`` with the four IDX ``.gz`` files each), read by ``barenet.load_mnist``.
Without it the steps fall back to a clearly labelled synthetic data set, so every script still runs anywhere.
"""
from __future__ import annotations

import argparse
import functools
import os
import textwrap
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import barenet as bn

DPI = 90  # keeps every PNG well under 150 KB


# ------------------------------------------------------------------------------------------------
# command line
# ------------------------------------------------------------------------------------------------
def make_parser(description: str) -> argparse.ArgumentParser:
    """The flags every step shares: --fast, --seed, --plot-dir."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--fast", action="store_true", help="tiny sizes, finishes in seconds (used by the tests)")
    parser.add_argument("--seed", type=int, default=0, help="seed of every random generator (default 0)")
    parser.add_argument("--plot-dir", default=None, help="write PNG plots into this folder (needs matplotlib)")
    return parser


# ------------------------------------------------------------------------------------------------
# printing
# ------------------------------------------------------------------------------------------------
def heading(text: str, char: str = "=") -> None:
    print()
    print(text)
    print(char * len(text))


def note(text: str, width: int = 104) -> None:
    """A short explanation under a table, wrapped to ``width`` characters."""
    print(textwrap.fill(text, width=width, initial_indent="  -> ", subsequent_indent="     ",
                        break_on_hyphens=False))


def table(headers, rows, *, align=None, indent: int = 2) -> None:
    """Print an aligned table; cells are printed as given (format numbers before), right-aligned by default."""
    rows = [[str(c) for c in row] for row in rows]
    headers = [str(h) for h in headers]
    align = align or ["<"] + [">"] * (len(headers) - 1)
    widths = [max(len(r[i]) for r in [headers] + rows) for i in range(len(headers))]

    def line(cells):
        return (" " * indent + "  ".join(f"{c:{a}{w}}" for c, a, w in zip(cells, align, widths))).rstrip()

    print(line(headers))
    print(" " * indent + "  ".join("-" * w for w in widths))
    for r in rows:
        print(line(r))


def fmt(x, digits: int = 4) -> str:
    """A number in a short, fixed style: plain for ordinary sizes, scientific for tiny or huge ones."""
    x = float(x)
    if x == 0.0:
        return "0"
    if not np.isfinite(x):
        return str(x)
    if abs(x) < 1e-3 or abs(x) >= 1e5:
        return f"{x:.{max(digits - 2, 1)}e}"
    return f"{x:.{digits}f}"


def seconds(t: float) -> str:
    """A duration; the only numbers in a step's output that change from run to run."""
    return f"{t * 1e3:.2f} ms" if t < 1.0 else f"{t:.2f} s"


# ------------------------------------------------------------------------------------------------
# data
# ------------------------------------------------------------------------------------------------
@dataclass
class Split:
    """Train / validation / test arrays plus a one-line description of where they came from."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    source: str
    synthetic: bool

    @property
    def n_features(self) -> int:
        return self.X_train.shape[1]


def data_dir() -> Path | None:
    """The folder named by BARENET_DATA, or None when the variable is not set."""
    value = os.environ.get("BARENET_DATA")
    return Path(value) if value else None


@functools.lru_cache(maxsize=2)
def _official_files(name: str):
    """The official train and test arrays of MNIST or Fashion-MNIST from $BARENET_DATA (read once per process)."""
    return bn.load_mnist(data_dir(), kind=name, download=False)


def _load_images(name: str, n_trainval: int, n_test: int):
    """(X_trainval, y_trainval, X_test, y_test): the first rows of the official files, pixels as float32 in [0, 1]."""
    (Xa, ya), (Xb, yb) = _official_files(name)
    return (_pixels(Xa[:n_trainval]), ya[:n_trainval].astype(np.int64),
            _pixels(Xb[:n_test]), yb[:n_test].astype(np.int64))


def _pixels(images: np.ndarray) -> np.ndarray:
    """uint8 images (n, 28, 28) -> float32 rows (n, 784) in [0, 1]."""
    flat = images.reshape(images.shape[0], int(np.prod(images.shape[1:])))
    return flat.astype(np.float32) / np.float32(255.0)


def synthetic_classes(n: int, *, n_features=64, n_classes=10, noise=1.0, seed=0):
    """Gaussian clouds around random class centres, scaled so every feature has unit variance: the stand-in
    used when BARENET_DATA is not set. ``noise`` is the spread of a cloud relative to that of the centres."""
    rng = np.random.default_rng(10_000 + seed)
    centres = rng.standard_normal((n_classes, n_features))
    y = rng.integers(0, n_classes, size=n)
    X = (centres[y] + noise * rng.standard_normal((n, n_features))) / np.sqrt(1.0 + noise**2)
    return X.astype(np.float32), y.astype(np.int64)


def image_split(name: str, n_train: int, n_val: int, n_test: int, *, seed: int = 0,
                synthetic_noise: float = 3.0) -> Split:
    """A train/validation/test split of MNIST or Fashion-MNIST (or of synthetic data without BARENET_DATA).

    Train and validation come from the first ``n_train + n_val`` rows of the official training file, split
    by a seeded permutation; test is the first ``n_test`` rows of the official test file.
    """
    root = data_dir()
    if root is not None and (root / name).is_dir():
        X, y, X_test, y_test = _load_images(name, n_train + n_val, n_test)
        label = {"mnist": "MNIST digits", "fashion-mnist": "Fashion-MNIST clothing"}.get(name, name)
        source = (f"{label} from $BARENET_DATA/{name}: 28x28 pixels scaled to [0, 1] -> 784 inputs, 10 classes")
        synthetic = False
    else:
        X, y = synthetic_classes(n_train + n_val + n_test, noise=synthetic_noise, seed=seed)
        X, y, X_test, y_test = X[:n_train + n_val], y[:n_train + n_val], X[n_train + n_val:], y[n_train + n_val:]
        why = "BARENET_DATA is not set" if root is None else f"{root / name} does not exist"
        source = (f"SYNTHETIC data ({why}): 10 Gaussian classes in 64 dimensions; "
                  f"the numbers will differ from docs/lab.md")
        synthetic = True
    order = np.random.default_rng(seed).permutation(len(X))
    train, val = order[:n_train], order[n_train:n_train + n_val]
    return Split(X[train], y[train], X[val], y[val], X_test, y_test, source, synthetic)


def describe(split: Split) -> None:
    print(f"  data: {split.source}")
    print(f"  rows: {len(split.X_train)} train, {len(split.X_val)} validation, {len(split.X_test)} test")


# ------------------------------------------------------------------------------------------------
# plots (matplotlib is imported only here, and only when a plot is asked for)
# ------------------------------------------------------------------------------------------------
def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, plot_dir, name: str) -> Path:
    """Write ``fig`` as ``plot_dir/name`` (PNG, small), close it and say where it went."""
    path = Path(plot_dir) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    pyplot().close(fig)
    print(f"  plot written: {path.as_posix()}")
    return path
