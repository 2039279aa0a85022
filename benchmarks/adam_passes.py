"""barenet's Adam (moving sums, 10 whole-buffer passes) against the textbook form (moving averages, 12 passes).

    python -m benchmarks.adam_passes [--rounds 15]

Both update float32 buffers of the NSL-KDD network's size (10,117 parameters) and of the MNIST network's
(669,706), one BLAS thread, alternating round by round in one process; the ratio is paired by round. The
textbook step is the one ``Adam`` used before it kept moving sums; the two take the same step (checked first).
"""
from __future__ import annotations

import argparse
import math
import time

import numpy as np


def textbook_adam(params, grads, m, v, t, lr=1e-3, b1=0.9, b2=0.999, eps=1e-8):
    """m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2; bias correction folded into the step (12 passes)."""
    m *= b1
    m += (1.0 - b1) * grads
    g2 = np.multiply(grads, grads)
    g2 *= 1.0 - b2
    v *= b2
    v += g2
    correction = math.sqrt(1.0 - b2**t)
    denom = np.sqrt(v, out=g2)
    denom += eps * correction
    np.divide(m, denom, out=denom)
    denom *= lr * correction / (1.0 - b1**t)
    params -= denom


def main(argv=None):
    from threadpoolctl import threadpool_limits

    import barenet as bn

    from .inline_step import print_paired

    parser = argparse.ArgumentParser(prog="python -m benchmarks.adam_passes", description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    with threadpool_limits(1):
        for n, steps in ((10_117, 2000), (669_706, 40)):
            grads = rng.standard_normal(n).astype(np.float32)
            start = rng.standard_normal(n).astype(np.float32)
            ours, p = bn.Adam(1e-3), start.copy()
            q, m, v = start.copy(), np.zeros(n, np.float32), np.zeros(n, np.float32)
            for t in range(1, 4):
                ours.step(p, grads.copy())
                textbook_adam(q, grads, m, v, t)
            if not np.allclose(p, q, rtol=1e-5, atol=1e-7):
                raise SystemExit("barenet's Adam and the textbook step disagree")
            times = {"textbook": [], "barenet": []}
            for _ in range(args.rounds):
                tic = time.perf_counter()
                for _ in range(steps):
                    ours.step(p, grads)
                times["barenet"].append((time.perf_counter() - tic) / steps)
                tic = time.perf_counter()
                for _ in range(steps):
                    t += 1
                    textbook_adam(q, grads, m, v, t)
                times["textbook"].append((time.perf_counter() - tic) / steps)
            print_paired(f"Adam step, {n:,} float32 parameters, median (range) of {args.rounds} rounds", times,
                         "textbook", "barenet")

if __name__ == "__main__":
    main()
