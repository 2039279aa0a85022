"""The one array-module seam: NumPy on the CPU, CuPy when the arrays live on a GPU.

Today every layer, loss and optimizer computes with NumPy on host arrays (their buffers are NumPy
arrays), so CuPy arrays are not accepted by a network yet. This module is the single place where a GPU
backend plugs in, the way DeZero's ``get_array_module`` does it: ``array_module(*arrays)`` picks the
module, ``to_numpy``/``to_device`` move data. CuPy is never required: it is imported lazily, only if
installed, and only here (``tests/test_architecture.py`` enforces that).
"""
from __future__ import annotations

import numpy as np


def _cupy():
    try:  # optional GPU backend: absent on most machines, and that is fine
        import cupy  # noqa: F401  (only this module may import cupy)
    except ImportError:
        return None
    return cupy


def array_module(*arrays):
    """Return ``cupy`` if any argument is a CuPy array, else ``numpy``."""
    cp = _cupy()
    if cp is not None and any(isinstance(a, cp.ndarray) for a in arrays):
        return cp
    return np


def to_numpy(array) -> np.ndarray:
    """Bring an array back to host memory as a NumPy array (no copy if it already is one)."""
    if isinstance(array, np.ndarray):
        return array
    cp = _cupy()
    if cp is not None and isinstance(array, cp.ndarray):
        return cp.asnumpy(array)
    return np.asarray(array)


def to_device(array, device: str = "cpu"):
    """Move an array to ``"cpu"`` or ``"gpu"`` (the latter needs CuPy)."""
    if device == "cpu":
        return to_numpy(array)
    if device == "gpu":
        cp = _cupy()
        if cp is None:
            raise ValueError("device='gpu' needs CuPy, which is not installed")
        return cp.asarray(array)
    raise ValueError(f"unknown device {device!r}; expected 'cpu' or 'gpu'")
