"""Whole training epochs of the MNIST network with the optimizer stepping in cache-sized blocks and without.

    python -m benchmarks.step_block [--rounds 6] [--epochs 1] [--rows 60000]

``Optimizer.step`` updates a long parameter buffer one block of ``barenet.optimizers.STEP_BLOCK`` entries at
a time, so that the ~10 passes of an Adam step stay in the L2 cache. A microbenchmark
(``python -m benchmarks.adam_passes``) runs Adam alone with warm caches; this one measures what the blocks
change inside real training, where the matrix products run between two steps (and on a 2-core machine the
BLAS's second thread may still be spinning). It trains 784 -> 512 -> 512 -> 10 on MNIST (``$BARENET_DATA``),
batch 128, Adam, the library's default BLAS threads, alternating the two settings round by round (the same
seed within a round, so the same work); the ratio is paired by round. Both settings compute the same weights.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from .data import load_mnist


def main(argv=None):
    import barenet as bn

    parser = argparse.ArgumentParser(prog="python -m benchmarks.step_block", description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--rows", type=int, default=60_000, help="training rows used (default: all 60,000)")
    args = parser.parse_args(argv)
    X, y, _, _ = load_mnist()
    X, y = X[:args.rows], y[:args.rows]
    rows = {"blocks": [], "one block": []}
    weights = {}
    for r in range(args.rounds):
        for name in ("blocks", "one block") if r % 2 == 0 else ("one block", "blocks"):
            opt = bn.Adam(1e-3)
            if name == "one block":
                opt.step_block = 2**62  # the whole buffer in one step, as before blocks
            net = bn.build_mlp(784, (512, 512), 10, optimizer=opt, seed=r)
            tic = time.perf_counter()
            net.fit(X, y, epochs=args.epochs, batch_size=128, classes=np.arange(10))
            rows[name].append(len(X) * args.epochs / (time.perf_counter() - tic))
            weights[name] = net.flat_params
            print(f"  round {r + 1}/{args.rounds}  {name:9s} {rows[name][-1]:>9,.0f} rows/s", flush=True)
        if not np.array_equal(weights["blocks"], weights["one block"]):
            raise SystemExit("the two settings trained different weights")
    ratios = [a / b for a, b in zip(rows["blocks"], rows["one block"])]
    print(f"MNIST 784-512-512-10, batch 128, {args.epochs} epoch(s) per fit, median (range) of {args.rounds} rounds")
    for name, values in rows.items():
        print(f"  {name:9s} {np.median(values):9,.0f} rows/s  ({min(values):,.0f}-{max(values):,.0f})")
    print(f"  blocks / one block: {np.median(ratios):.3f} ({min(ratios):.3f}-{max(ratios):.3f})")


if __name__ == "__main__":
    main()
