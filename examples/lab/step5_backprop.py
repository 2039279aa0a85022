"""Step 5 - cross-entropy loss and backpropagation, checked against numerical gradients.

Loss: L = -(1/n) sum_i log p_i[y_i] with p_i = softmax(z_i). Softmax and cross-entropy together have the
simple gradient dL/dz = (p - onehot(y)) / n. Backpropagation then applies the chain rule layer by layer,
from the output back to the input:

    Dense  z = h W + b :  dW = h^T dz,   db = sum_rows(dz),   dh = dz W^T
    ReLU   h = max(z, 0):  dz = dh * 1[z > 0]

Every analytic gradient is compared with the central difference (L(theta + eps) - L(theta - eps)) / 2 eps.

    python examples/lab/step5_backprop.py [--seed 0] [--fast]
"""
from __future__ import annotations

import labkit as lk
import numpy as np

import barenet as bn

EPS = 1e-6


class ForgetfulReLU(bn.ReLU):
    """A deliberately wrong ReLU for the demonstration: its backward forgets to multiply by f'(x)."""

    def backward(self, dy, cache, *, need_dx=True):
        return dy  # bug: should be dy * (cache > 0)


def matrix(name, a, digits=4):
    print(f"  {name} {a.shape}:")
    for row in np.atleast_2d(a):
        print("    " + "  ".join(f"{v:+.{digits}f}" for v in row))


def tiny_problem(seed):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((4, 3))
    y = np.array([0, 2, 1, 2])
    net = bn.Sequential([bn.Dense(5), bn.ReLU(), bn.Dense(3)], dtype="float64", seed=seed, n_inputs=3)
    return net, X, y


def cross_entropy_section(net, X, y):
    lk.heading("Cross-entropy on a batch of 4 rows, 3 classes (network 3 -> Dense(5) -> ReLU -> Dense(3))", "-")
    z, _ = net.forward(X)
    p = bn.softmax(z)
    nll = -np.log(p[np.arange(len(y)), y])
    rows = [[str(i), str(y[i]), "  ".join(f"{v:+.3f}" for v in z[i]), "  ".join(f"{v:.3f}" for v in p[i]),
             f"{p[i, y[i]]:.4f}", f"{nll[i]:.4f}"] for i in range(len(y))]
    lk.table(["row", "y", "logits z", "p = softmax(z)", "p[y]", "-log p[y]"], rows)
    value, dz = net.loss.value_and_grad(z, y)
    print(f"  L = mean of -log p[y] = {nll.mean():.6f}   (barenet's SoftmaxCrossEntropy: {value:.6f})")
    lk.note("a confident right answer costs ~0, a confident wrong one costs a lot; chance level is log 3 = 1.0986")
    silent = [i for i in range(len(y)) if not np.any(net.forward(X[i:i + 1], stop=2)[0])]
    if silent:
        lk.note(f"row {silent[0]}: every hidden ReLU is off for this input, so its logits are just the (zero) biases")

    onehot = np.eye(3)[y]
    matrix("dL/dz = (p - onehot(y)) / n", (p - onehot) / len(y))
    numeric = np.empty_like(z)
    for i in np.ndindex(z.shape):
        zp, zm = z.copy(), z.copy()
        zp[i] += EPS
        zm[i] -= EPS
        numeric[i] = (net.loss.value(zp, y) - net.loss.value(zm, y)) / (2 * EPS)
    print(f"  max |(p - y)/n - numerical dL/dz| = {lk.fmt(np.abs(dz - numeric).max(), 3)}")
    lk.note("each row of dL/dz sums to 0: raising the true class's score lowers every other probability")
    return z, dz


def chain_rule_section(net, X, y, dz_out):
    lk.heading("The chain rule, layer by layer (by hand, then by net.backward)", "-")
    W0, b0 = net.parameters()["0.W"], net.parameters()["0.b"]
    W2 = net.parameters()["2.W"]
    z0 = X @ W0 + b0          # layer 0: Dense
    h1 = np.maximum(z0, 0)    # layer 1: ReLU
    by_hand = {}
    by_hand["2.W"] = h1.T @ dz_out          # layer 2 (Dense): dW = h^T dz
    by_hand["2.b"] = dz_out.sum(axis=0)     #                  db = sum of rows of dz
    dh1 = dz_out @ W2.T                     #                  dh = dz W^T
    dz0 = dh1 * (z0 > 0)                    # layer 1 (ReLU):  dz = dh * 1[z > 0]
    by_hand["0.W"] = X.T @ dz0              # layer 0 (Dense): dW = x^T dz
    by_hand["0.b"] = dz0.sum(axis=0)
    dx = dz0 @ W0.T                         #                  dx = dz W^T

    out, caches = net.forward(X, training=True)
    _, dout = net.loss.value_and_grad(out, y)
    net.backward(dout, caches)  # fills net.gradients(); it skips dL/dx, which training never needs
    grads = net.gradients()
    d = dout
    for i in range(len(net.layers) - 1, -1, -1):  # the same loop, asking the first layer for dL/dx too
        d = net.layers[i].backward(d, caches[i], need_dx=True)
    dx_net = d
    def diff(name):
        return lk.fmt(np.abs(by_hand[name] - grads[name]).max(), 2)

    rows = [
        ["2 Dense", "dW = h^T dz", "2.W", str(by_hand["2.W"].shape), diff("2.W")],
        ["", "db = sum_rows dz", "2.b", str(by_hand["2.b"].shape), diff("2.b")],
        ["", "dh = dz W^T", "dL/dh", str(dh1.shape), ""],
        ["1 ReLU", "dz = dh * 1[z > 0]", "dL/dz", str(dz0.shape), ""],
        ["0 Dense", "dW = x^T dz", "0.W", str(by_hand["0.W"].shape), diff("0.W")],
        ["", "db = sum_rows dz", "0.b", str(by_hand["0.b"].shape), diff("0.b")],
        ["", "dx = dz W^T", "dL/dx", str(dx.shape), lk.fmt(np.abs(dx - dx_net).max(), 2)],
    ]
    lk.table(["layer (backwards)", "rule", "gradient", "shape", "|by hand - net.backward|"], rows,
             align=["<", "<", "<", ">", ">"])
    zeroed = int((z0 <= 0).sum())
    lk.note(f"every gradient has the shape of what it differentiates; ReLU zeroed {zeroed} of {z0.size} entries of dz")


def relative_error(analytic, numeric):
    scale = max(np.abs(analytic).max(), np.abs(numeric).max(), 1e-12)
    return float(np.abs(analytic - numeric).max() / scale)


def numerical_check(net, X, y):
    """What bn.check_gradients does, written out: central differences for every entry of every parameter
    and of the input, against the backward pass. (``net`` must already be float64.)"""
    out, caches = net.forward(X, training=True)
    _, d = net.loss.value_and_grad(out, y)
    for i in range(len(net.layers) - 1, -1, -1):  # backward, keeping dL/dx at the end
        d = net.layers[i].backward(d, caches[i], need_dx=True)
    analytic = {**{k: v.copy() for k, v in net.gradients().items()}, "input": d}
    arrays = {**net.parameters(), "input": X.copy()}
    results = {}
    for name, theta in arrays.items():
        numeric = np.zeros_like(theta)
        for i in np.ndindex(theta.shape):
            old = theta[i]
            theta[i] = old + EPS
            plus = net.loss.value(net.forward(arrays["input"])[0], y)
            theta[i] = old - EPS
            minus = net.loss.value(net.forward(arrays["input"])[0], y)
            theta[i] = old
            numeric[i] = (plus - minus) / (2 * EPS)
        results[name] = relative_error(analytic[name], numeric)
    return results


def check_table(results, threshold=1e-6):
    rows = [[name, lk.fmt(err, 3), "PASS" if err < threshold else "FAIL"] for name, err in results.items()]
    lk.table(["parameter", "relative error", "< 1e-6?"], rows)


def numerical_section(net, X, y, seed, fast):
    lk.heading("Analytic vs numerical gradient, every parameter (float64, eps = 1e-6)", "-")
    theta = net.parameters()["0.W"]
    old = theta[0, 0]
    theta[0, 0] = old + EPS
    plus = net.loss.value(net.forward(X)[0], y)
    theta[0, 0] = old - EPS
    minus = net.loss.value(net.forward(X)[0], y)
    theta[0, 0] = old
    net.loss_and_gradients(X, y)
    print(f"  one entry by hand: dL/dW0[0,0] analytic = {net.gradients()['0.W'][0, 0]:+.10f}, "
          f"numerical = (L(+eps) - L(-eps)) / 2eps = {(plus - minus) / (2 * EPS):+.10f}")
    print("  bn.check_gradients(net, X, y) does this for every entry; error = max|a - n| / max(|a|, |n|):")
    check_table(bn.check_gradients(net, X, y))

    n_in, widths = (8, (6, 6)) if fast else (20, (16, 16))
    rng = np.random.default_rng(seed)
    Xb = rng.standard_normal((16, n_in))
    yb = rng.integers(0, 5, size=16)
    deep = bn.build_mlp(n_in, hidden=widths, n_outputs=5, activation=["tanh", "relu"], dropout=0.2, l2=1e-3,
                        dtype="float64", seed=seed)
    print(f"\n  a deeper network: {n_in} -> {widths[0]} tanh -> {widths[1]} relu, dropout 0.2 after each, "
          f"L2 1e-3 -> 5 ({deep.n_params} parameters):")
    check_table(bn.check_gradients(deep, Xb, yb))
    lk.note("dropout is checked with the same mask in every evaluation; the L2 penalty's 2 l2 W is included. "
            "float64 errors of 1e-7 or less mean the backward pass is right; a bug gives ~1e-2 or more")

    lk.heading("A bug the gradient check catches", "-")
    buggy = bn.Sequential([bn.Dense(5), ForgetfulReLU(), bn.Dense(3)], dtype="float64", seed=seed, n_inputs=3)
    print("  ForgetfulReLU: its backward returns dy instead of dy * 1[x > 0]; the same network otherwise.")
    print("  Checked with numerical_check() in this script: the same loop as bn.check_gradients, written out.")
    check_table(numerical_check(buggy, X, y))
    lk.note("the output layer's gradients are still right (they come before the bug in the backward order); "
            "everything below the broken layer is wrong, and the check says so")


def main(argv=None):
    args = lk.make_parser(__doc__.splitlines()[0]).parse_args(argv)
    lk.heading("Step 5 - Loss and backpropagation")
    net, X, y = tiny_problem(args.seed)
    _, dz = cross_entropy_section(net, X, y)
    chain_rule_section(net, X, y, dz)
    numerical_section(net, X, y, args.seed, args.fast)


if __name__ == "__main__":
    main()
