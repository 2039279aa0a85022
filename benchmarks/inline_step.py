"""The NumPy floor of one training step: barenet's step against the same step written out by hand.

barenet runs a step through its layers, loss and optimizer objects (``Sequential.loss_and_gradients`` then
``Adam.step``). ``inline_step`` below does the same arithmetic on the same flat buffers with no objects at all:
every NumPy call written out in one function, each intermediate in a preallocated buffer, every Python
overhead gone that can go. It is what a step of this network costs in NumPy when nothing but the NumPy
calls is left, so the ratio of the two says how much barenet's structure (layers, caches, the contract)
costs, and how much any restructuring could still win without leaving NumPy.

    python -m benchmarks.inline_step [--batch-size 64] [--hidden 64 32] [--rounds 7]

Both steps start from the same weights and must produce the same weights (checked before timing). Times are
the median over rounds of the best of several passes, one BLAS thread, both measured in alternation.
"""
from __future__ import annotations

import argparse
import math
import time

import numpy as np


def inline_step_for(net, X, y):
    """A closure doing one Adam step of ``net`` (Dense/ReLU stack, softmax cross-entropy) on ``X, y`` in place.

    It updates ``net.flat_params`` and its own copies of the Adam moments, with the same formulas as barenet.
    """
    import barenet as bn

    dense = [layer for layer in net.layers if isinstance(layer, bn.Dense)]
    if len(dense) * 2 - 1 != len(net.layers) or not all(isinstance(la, bn.ReLU) for la in net.layers[1::2]):
        raise ValueError("inline_step_for handles Dense, ReLU, Dense, ReLU, ..., Dense only")
    opt = net.optimizer
    b1, b2, eps, lr = opt.beta1, opt.beta2, opt.eps, opt.current_lr
    params, grads = net.flat_params, net.flat_grads
    m, v, scratch = np.zeros_like(params), np.zeros_like(params), np.empty_like(params)
    Ws = [d.params["W"] for d in dense]
    bs = [d.params["b"][None] for d in dense]
    gWs = [d.grads["W"] for d in dense]
    gbs = [d.grads["b"] for d in dense]
    n = len(X)
    ones = np.ones(n, dtype=X.dtype)
    zeros = [np.zeros((n, W.shape[1]), dtype=X.dtype) for W in Ws[:-1]]
    at_y = y * n + np.arange(n)  # flat index of (y_i, i) in the transposed (k, n) probabilities
    t = [0]

    def step():
        nonlocal m, v, scratch, params  # updated in place (augmented assignment on arrays), never rebound to new arrays
        hs = [X]
        h = X
        for i, (W, b) in enumerate(zip(Ws, bs)):
            z = np.dot(h, W)
            z += b
            h = np.maximum(z, zeros[i]) if i < len(zeros) else z
            hs.append(h)
        # softmax cross-entropy on the transposed logits, gradient (p - onehot(y)) / n
        p = h.T.copy()
        p -= np.maximum.reduce(p)
        s_y = p.ravel()[at_y]
        np.exp(p, out=p)
        total = np.add.reduce(p)
        p /= total
        nll = np.log(total)
        nll -= s_y
        p.ravel()[at_y] -= 1.0
        d = p.T
        d *= 1.0 / n
        loss = float(np.add.reduce(nll)) / n
        for i in range(len(Ws) - 1, -1, -1):
            np.matmul(hs[i].T, d, out=gWs[i])
            np.matmul(ones, d, out=gbs[i])
            if i:
                d = np.dot(d, Ws[i].T)
                d = np.multiply(d, hs[i] > 0)
        # Adam on its moving sums (as barenet's Adam): m = b1 m + g, v = b2 v + g^2, constants folded into the step
        t[0] += 1
        m *= b1
        m += grads
        np.multiply(grads, grads, out=scratch)
        v *= b2
        v += scratch
        c = math.sqrt((1.0 - b2) / (1.0 - b2 ** t[0]))
        np.sqrt(v, out=scratch)
        scratch += eps / c
        np.divide(m, scratch, out=scratch)
        scratch *= lr * (1.0 - b1) / ((1.0 - b1 ** t[0]) * c)
        params -= scratch
        return loss

    return step


def main(argv=None):
    from threadpoolctl import threadpool_limits

    import barenet as bn

    parser = argparse.ArgumentParser(prog="python -m benchmarks.inline_step", description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--hidden", type=int, nargs="+", default=[64, 32])
    parser.add_argument("--inputs", type=int, default=122)
    parser.add_argument("--classes", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=2000, help="steps per timed pass")
    args = parser.parse_args(argv)

    rng = np.random.default_rng(0)
    X = rng.standard_normal((args.batch_size, args.inputs), dtype=np.float32)
    y = rng.integers(0, args.classes, args.batch_size)

    def fresh():
        net = bn.build_mlp(args.inputs, tuple(args.hidden), args.classes, seed=0)
        net.fit(X, y, epochs=0, classes=np.arange(args.classes))  # builds and fits the target encoder; no step taken
        return net

    with threadpool_limits(1):
        library, inline = fresh(), fresh()
        step_inline = inline_step_for(inline, X, y)

        def step_library():
            library.loss_and_gradients(X, y)
            library.optimizer.step(library.flat_params, library.flat_grads)

        for _ in range(3):
            step_library()
            step_inline()
        if not np.allclose(library.flat_params, inline.flat_params, rtol=1e-5, atol=1e-7):
            raise SystemExit("the inline step does not compute barenet's step: the weights differ")

        def best_of(fn, passes=3):
            best = math.inf
            for _ in range(passes):
                tic = time.perf_counter()
                for _ in range(args.steps):
                    fn()
                best = min(best, (time.perf_counter() - tic) / args.steps)
            return best

        times = {"barenet": [], "inline": []}
        for _ in range(args.rounds):
            times["barenet"].append(best_of(step_library))
            times["inline"].append(best_of(step_inline))
    shape = "-".join(map(str, [args.inputs, *args.hidden, args.classes]))
    print_paired(f"one Adam step, {shape}, batch {args.batch_size}, one BLAS thread; median (range) of {args.rounds} "
                 "rounds", times, "barenet", "inline")


def print_paired(title, times, slower, faster):
    """Each system's median (range) per call, then the round-by-round ratio ``times[slower] / times[faster]``."""
    print(title)
    for name, values in times.items():
        print(f"  {name:9s} {np.median(values) * 1e6:8.1f} us  ({min(values) * 1e6:.1f}-{max(values) * 1e6:.1f})")
    ratios = [a / b for a, b in zip(times[slower], times[faster])]
    print(f"  {slower} / {faster}: {np.median(ratios):.3f} ({min(ratios):.3f}-{max(ratios):.3f})")

if __name__ == "__main__":
    main()
