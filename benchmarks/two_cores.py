"""Can barenet's MNIST step use the second core better than OpenBLAS's own two threads do? Two ways, measured.

    python -m benchmarks.two_cores [--rounds 7]

On the wide network (784 -> 512 -> 512 -> 10, batch 128) ``fit`` runs the matrix products on the BLAS's two
threads and everything else, Adam included (~1.1 ms of a ~3.8 ms step over 669,706 parameters), on one. PyTorch's
``foreach`` Adam uses both cores. Two ways NumPy code could do the same, each against what barenet does:

1. **Adam over two Python threads**: each thread steps one half of the flat buffer (NumPy releases the GIL inside
   its loops), right after a two-thread matrix product, as in training. Halves whole, and halves in cache-sized
   blocks (``STEP_BLOCK``), against barenet's one-thread step in blocks. The same parameters come out (checked).
2. **Products split over two Python threads**: the step's five large products, each computed as two halves at
   once (halves of the output's rows, and of its columns) by two Python threads with one BLAS thread each,
   against one call on two BLAS threads. The same products come out (checked to float32 rounding).

Rounds alternate the variants in one process; ratios are paired by round.
"""
from __future__ import annotations

import argparse
import queue
import threading
import time

import numpy as np

MNIST_LAYERS = ((784, 512), (512, 512), (512, 10))
BATCH = 128


class Helper:
    """One worker thread that runs a function while the caller runs another: ``both(f, g)``."""

    def __init__(self):
        self.todo, self.done = queue.SimpleQueue(), queue.SimpleQueue()
        threading.Thread(target=self._loop, daemon=True).start()

    def _loop(self):
        while True:
            self.todo.get()()
            self.done.put(None)

    def both(self, mine, theirs):
        self.todo.put(theirs)
        mine()
        self.done.get()


def adam_variants(adam, params, grads, helper):
    """Step functions: barenet's (one thread) and two Python threads on halves, whole or in blocks."""
    n = params.size
    middle = n // 2

    def span(lo, hi, block, lr):
        state = adam.state
        for start in range(lo, hi, block):
            part = slice(start, min(start + block, hi))
            adam._update(params[part], grads[part], {k: v[part] for k, v in state.items()}, lr)

    def two_threads(block):
        def step():
            lr = adam.current_lr  # as Optimizer.step: the rate for this step, then the count moves on
            adam.step_count += 1
            helper.both(lambda: span(0, middle, block, lr), lambda: span(middle, n, block, lr))
        return step

    return {"barenet": lambda: adam.step(params, grads), "halves": two_threads(n),
            "halves, blocks": two_threads(adam.step_block)}


def measure_adam(rounds, helper):
    import barenet as bn

    rng = np.random.default_rng(0)
    n = sum(a * b + b for a, b in MNIST_LAYERS)
    grads = (rng.standard_normal(n) * 1e-3).astype(np.float32)
    start = rng.standard_normal(n).astype(np.float32)
    # the same three steps from the same start give the same parameters, whichever way the buffer is cut
    results = []
    for name in ("barenet", "halves", "halves, blocks"):
        adam, params = bn.Adam(1e-3), start.copy()
        adam.step(params, grads)  # the first step sets up the state
        step = adam_variants(adam, params, grads, helper)[name]
        for _ in range(3):
            step()
        results.append(params)
    if not all(np.array_equal(results[0], r) for r in results[1:]):
        raise SystemExit("Adam over two threads does not give barenet's parameters")

    adam, params = bn.Adam(1e-3), start.copy()
    adam.step(params, grads)
    steps = adam_variants(adam, params, grads, helper)
    x = rng.standard_normal((BATCH, 784), dtype=np.float32)
    w = rng.standard_normal((784, 512), dtype=np.float32)
    out = np.empty((BATCH, 512), np.float32)
    times = {name: [] for name in steps}
    for _ in range(rounds):
        for name, step in steps.items():
            spent = 0.0
            for _ in range(30):
                np.matmul(x, w, out=out)  # a two-thread product first, as in training: its second thread spins on
                tic = time.perf_counter()
                step()
                spent += time.perf_counter() - tic
            times[name].append(spent / 30)
    return times


def step_products(rng):
    """(name, a, b) for the MNIST step's five large products: forward, dW and dX of the two 512-wide layers."""
    x = rng.standard_normal((BATCH, 784), dtype=np.float32)
    h1, dz1, dz2 = (rng.standard_normal((BATCH, 512), dtype=np.float32) for _ in range(3))
    w1 = rng.standard_normal((784, 512), dtype=np.float32)
    w2 = rng.standard_normal((512, 512), dtype=np.float32)
    return [("x W1", x, w1), ("h1 W2", h1, w2), ("h1^T dz2", h1.T, dz2), ("dz2 W2^T", dz2, w2.T),
            ("x^T dz1", x.T, dz1)]


def measure_products(rounds, helper):
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(1)
    products = step_products(rng)
    outs = {name: np.empty((a.shape[0], b.shape[1]), np.float32) for name, a, b in products}

    def one_call():
        for name, a, b in products:
            np.matmul(a, b, out=outs[name])

    def split(by):
        def run():
            for name, a, b in products:
                o = outs[name]
                if by == "rows":
                    r = len(a) // 2
                    helper.both(lambda: np.matmul(a[:r], b, out=o[:r]), lambda: np.matmul(a[r:], b, out=o[r:]))
                else:
                    c = b.shape[1] // 2
                    helper.both(lambda: np.matmul(a, b[:, :c], out=o[:, :c]),
                                lambda: np.matmul(a, b[:, c:], out=o[:, c:]))
        return run

    variants = {"BLAS, 2 threads": (one_call, 2), "2 x 1, row halves": (split("rows"), 1),
                "2 x 1, column halves": (split("columns"), 1)}
    reference = {}
    with threadpool_limits(2, user_api="blas"):
        one_call()
        reference = {name: o.copy() for name, o in outs.items()}
    for name, (run, threads) in variants.items():
        with threadpool_limits(threads, user_api="blas"):
            run()
        for key, o in outs.items():
            if not np.allclose(o, reference[key], rtol=1e-4, atol=1e-3):
                raise SystemExit(f"{name}: the product {key} differs from one call")
    times = {name: [] for name in variants}
    for _ in range(rounds):
        for name, (run, threads) in variants.items():
            with threadpool_limits(threads, user_api="blas"):
                run()  # warm: the thread count just changed
                tic = time.perf_counter()
                for _ in range(20):
                    run()
                times[name].append((time.perf_counter() - tic) / 20)
    return times


def main(argv=None):
    from .inline_step import print_paired

    parser = argparse.ArgumentParser(prog="python -m benchmarks.two_cores", description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args(argv)
    helper = Helper()
    adam = measure_adam(args.rounds, helper)
    print_paired(f"Adam, 669,706 parameters, after a two-thread product; median (range) of {args.rounds} rounds",
                 adam, "halves", "barenet")
    ratios = [a / b for a, b in zip(adam["halves, blocks"], adam["barenet"])]
    print(f"  halves, blocks / barenet: {np.median(ratios):.3f} ({min(ratios):.3f}-{max(ratios):.3f})")
    products = measure_products(args.rounds, helper)
    print_paired(f"The MNIST step's five large products (batch {BATCH}), per step; median (range) of {args.rounds} "
                 "rounds", products, "2 x 1, row halves", "BLAS, 2 threads")
    ratios = [a / b for a, b in zip(products["2 x 1, column halves"], products["BLAS, 2 threads"])]
    print(f"  2 x 1, column halves / BLAS, 2 threads: {np.median(ratios):.3f} ({min(ratios):.3f}-{max(ratios):.3f})")


if __name__ == "__main__":
    main()
