"""The hardware floor of a training run: its matrix products alone, replayed on arrays of the same shapes.

One step of an MLP with layers W_1 .. W_L on a batch X (n rows) needs, and only needs, these products::

    forward    h_l = h_{l-1} W_l                      (n, d_{l-1}) x (d_{l-1}, d_l)
    backward   dW_l = h_{l-1}^T dz_l                  (d_{l-1}, n) x (n, d_l)
               dh_{l-1} = dz_l W_l^T   for l >= 2     (n, d_l) x (d_l, d_{l-1})

Everything else a framework does (bias, activations, the loss, the optimiser, shuffling, Python) is overhead
on top of these. ``replay_training_gemms`` runs exactly these products, for every batch of every epoch
(including the last, shorter batch), into preallocated outputs, so its time is what the same training
would take if everything else were free. With ``row_blocks=True`` (one BLAS thread of an OpenBLAS with
small-matrix kernels, as ``fit`` decides) the forward and dW products are cut into the same row blocks
barenet's Dense uses (``barenet.blas.row_block``): there that is the faster way to do the same products,
so it belongs to the floor.

``library="torch"`` replays the same products with ``torch.mm`` on the same arrays (shared memory), under the
thread count PyTorch was given: PyTorch's BLAS (MKL on x86) against NumPy's (OpenBLAS) on the same products,
which is the gap no NumPy code can close on a network whose time is mostly matrix products. (Row blocks are
NumPy's only: with them, at one thread and 129-256 rows, the two replays cut the same products differently.)
"""
from __future__ import annotations

import time

import numpy as np


def replay_training_gemms(n_rows: int, widths, batch_size: int, epochs: int, *, seed=0, dtype=np.float32,
                          row_blocks: bool = False, library: str = "numpy") -> float:
    """Seconds spent in the matrix products of ``epochs`` epochs of mini-batch training (see module doc)."""
    from barenet.blas import row_block, single_thread_products

    rng = np.random.default_rng(seed)
    widths = [int(w) for w in widths]
    sizes = [batch_size] * (n_rows // batch_size) + ([n_rows % batch_size] if n_rows % batch_size else [])
    W = [rng.standard_normal((a, b), dtype=dtype) * 0.1 for a, b in zip(widths[:-1], widths[1:])]
    gW = [np.empty_like(w) for w in W]

    def buffers(n):
        h = [rng.standard_normal((n, w), dtype=dtype) for w in widths]  # h_0 = X, h_l = layer outputs
        dz = [rng.standard_normal((n, w), dtype=dtype) for w in widths]
        return h, dz

    shapes = {n: buffers(n) for n in set(sizes)}
    if row_blocks:
        with single_thread_products():
            blocks = {n: [row_block(n, *w.shape) for w in W] for n in shapes}
    else:
        blocks = {n: [n] * len(W) for n in shapes}
    scratch = [np.empty_like(w) for w in W]
    matmul = np.matmul
    if library == "torch":  # the same arrays, seen as tensors: the products below then run in PyTorch's BLAS
        import torch

        matmul = torch.mm
        W, gW, scratch = ([torch.from_numpy(a) for a in arrays] for arrays in (W, gW, scratch))
        shapes = {n: tuple([torch.from_numpy(a) for a in arrays] for arrays in pair) for n, pair in shapes.items()}
    elif library != "numpy":
        raise ValueError(f"library must be 'numpy' or 'torch', got {library!r}")

    def one_step(n):
        (h, dz), block = shapes[n], blocks[n]
        for i, w in enumerate(W):  # forward
            if block[i] == n:
                matmul(h[i], w, out=h[i + 1])
            else:
                for s in range(0, n, block[i]):
                    matmul(h[i][s:s + block[i]], w, out=h[i + 1][s:s + block[i]])
        for i in range(len(W) - 1, -1, -1):  # backward
            b = block[i]
            if b == n:
                matmul(h[i].T, dz[i + 1], out=gW[i])
            else:
                matmul(h[i][:b].T, dz[i + 1][:b], out=gW[i])
                for s in range(b, n, b):
                    gW[i] += matmul(h[i][s:s + b].T, dz[i + 1][s:s + b], out=scratch[i])
            if i > 0:
                matmul(dz[i + 1], W[i].T, out=dz[i])

    for n in shapes:  # warm-up, untimed: the libraries' first calls set up threads and buffers
        one_step(n)
    tic = time.perf_counter()
    for _ in range(epochs):
        for n in sizes:
            one_step(n)
    return time.perf_counter() - tic
