"""barenet's Adam (moving sums, 10 passes) against the textbook form (moving averages, 12 passes over the whole
buffer), and barenet's Adam over the whole buffer against the same in cache-sized blocks.

    python -m benchmarks.adam_passes [--rounds 15]

All variants update float32 buffers of the NSL-KDD network's size (10,117 parameters), a mid-sized one (200,000)
and the MNIST network's (669,706), one BLAS thread, alternating round by round in one process; the ratios are
paired by round. The textbook step is the one ``Adam`` used before it kept moving sums; "one block" is
barenet's Adam over the whole buffer at once, "blocks" the same in blocks of ``STEP_BLOCK`` whatever the size,
and "barenet" what ``Adam`` does by default (one block up to ``MIN_BLOCKS`` blocks' worth, else blocks).
All take the same step (checked first).
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
    from barenet import optimizers

    from .inline_step import print_paired

    parser = argparse.ArgumentParser(prog="python -m benchmarks.adam_passes", description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)

    with threadpool_limits(1):
        for n, steps in ((10_117, 2000), (200_000, 100), (669_706, 40)):
            grads = rng.standard_normal(n).astype(np.float32)
            start = rng.standard_normal(n).astype(np.float32)
            adams = {name: bn.Adam(1e-3) for name in ("barenet", "one block", "blocks")}
            adams["one block"].step_block = n
            adams["blocks"].min_blocks = 0  # blocks even below MIN_BLOCKS, to show why small buffers stay whole
            steppers = {name: adam.step for name, adam in adams.items()}
            params = {name: start.copy() for name in adams}
            q, m, v = start.copy(), np.zeros(n, np.float32), np.zeros(n, np.float32)
            for t in range(1, 4):
                for name, step in steppers.items():
                    step(params[name], grads.copy())
                textbook_adam(q, grads, m, v, t)
            same = all(np.array_equal(params["barenet"], p) for p in params.values())
            if not (same and np.allclose(params["barenet"], q, rtol=1e-5, atol=1e-7)):
                raise SystemExit("barenet's Adam, in blocks or not, and the textbook step disagree")
            times = {"textbook": [], "one block": [], "blocks": [], "barenet": []}

            def timed(step):
                tic = time.perf_counter()
                for _ in range(steps):
                    step()
                return (time.perf_counter() - tic) / steps

            for _ in range(args.rounds):
                for name, step in steppers.items():
                    times[name].append(timed(lambda: step(params[name], grads)))
                t0 = t
                times["textbook"].append(timed(lambda: textbook_adam(q, grads, m, v, t0 + 1)))
                t += 1
            print_paired(f"Adam step, {n:,} float32 parameters, median (range) of {args.rounds} rounds", times,
                         "textbook", "barenet")
            ratios = [a / b for a, b in zip(times["one block"], times["blocks"])]
            default = "blocks" if n > optimizers.MIN_BLOCKS * optimizers.STEP_BLOCK else "one block"
            print(f"  one block / blocks: {np.median(ratios):.3f} ({min(ratios):.3f}-{max(ratios):.3f}); "
                  f"barenet's default here: {default}")


if __name__ == "__main__":
    main()
