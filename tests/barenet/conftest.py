"""Shared fixtures for the barenet tests: small seeded data sets and the real-data location."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]


def data_root() -> Path | None:
    """$BARENET_DATA (relative paths are taken from the repository root, as CI sets ../shared/data)."""
    value = os.environ.get("BARENET_DATA")
    if not value:
        return None
    path = Path(value)
    if not path.is_absolute():
        path = (REPO / path).resolve()
    return path if path.is_dir() else None


@pytest.fixture
def mnist_dir() -> Path:
    root = data_root()
    if root is None or not (root / "mnist").is_dir():
        pytest.skip("real MNIST files not found: set BARENET_DATA to the shared data folder")
    return root / "mnist"


@pytest.fixture
def blobs():
    """Three well-separated Gaussian classes in 5-D: 300 rows, float32, int labels 0..2."""
    rng = np.random.default_rng(42)
    centers = np.array([[2, 0, 0, 0, 0], [0, 2, 0, 0, 0], [0, 0, 2, 0, 0]], dtype=np.float32)
    y = np.repeat(np.arange(3), 100)
    X = centers[y] + rng.standard_normal((300, 5)).astype(np.float32)
    order = rng.permutation(300)
    return X[order], y[order]
