"""Step 2 - activations and their derivatives, checked against finite differences; the dying ReLU.

Backpropagation multiplies the incoming gradient by each activation's derivative (dx = dy * f'(x)), so a
wrong derivative silently breaks training. Here every derivative barenet uses is tabulated and compared
with the central difference (f(x + h) - f(x - h)) / 2h, whose error is O(h^2).

    python examples/lab/step2_activations.py [--seed 0] [--fast]
"""
from __future__ import annotations

import labkit as lk
import numpy as np

import barenet as bn

H = 1e-6  # finite-difference step (float64)
SAMPLE_X = np.array([-4.0, -2.0, -1.0, -0.5, 0.5, 1.0, 2.0, 4.0])
ELEMENTWISE = {"relu": bn.ReLU(), "sigmoid": bn.Sigmoid(), "tanh": bn.Tanh(), "leaky_relu": bn.LeakyReLU(0.01)}


def central_difference(f, x, h=H):
    return (f(x + h) - f(x - h)) / (2 * h)


def elementwise_table():
    lk.heading("Activations and derivatives on sample inputs (float64)", "-")
    names = ("relu", "sigmoid", "tanh")
    headers = ["x"] + [col for n in names for col in (n, f"{n}'")]
    rows = []
    for x in SAMPLE_X:
        xs = np.array([x])
        cells = [f"{x:+.1f}"]
        for n in names:
            layer = ELEMENTWISE[n]
            cells += [f"{layer.function(xs)[0]:.6f}", f"{layer.derivative(xs)[0]:.6f}"]
        rows.append(cells)
    lk.table(headers, rows)
    lk.note("relu' is exactly 0 for every negative input; sigmoid' peaks at 0.25 and tanh' at 1 (at x = 0)")
    lk.note("x = 0 is left out on purpose: ReLU has a kink there (barenet takes f'(0) = 0)")

    lk.heading("Analytic derivative vs central difference (h = 1e-6)", "-")
    rows = []
    for n, layer in ELEMENTWISE.items():
        analytic = layer.derivative(SAMPLE_X)
        numeric = central_difference(layer.function, SAMPLE_X)
        rows.append([n, "f'(x) = " + DERIVATIVE_FORMULA[n], lk.fmt(np.max(np.abs(analytic - numeric)), 3)])
    lk.table(["activation", "derivative used in backward", "max |analytic - numeric|"], rows, align=["<", "<", ">"])
    lk.note("errors of ~1e-10 are the finite difference's own rounding: the formulas are right")


DERIVATIVE_FORMULA = {
    "relu": "1 if x > 0 else 0",
    "sigmoid": "s(x) (1 - s(x))",
    "tanh": "1 - tanh(x)^2",
    "leaky_relu": "1 if x > 0 else 0.01",
}


def softmax_section():
    lk.heading("Softmax: a vector function, so its derivative is a Jacobian", "-")
    z = np.array([2.0, 1.0, 0.1, -1.0])
    s = bn.softmax(z[None, :])[0]
    print(f"  z          = {np.array2string(z, precision=4)}")
    print(f"  softmax(z) = {np.array2string(s, precision=6)}   (sum = {s.sum():.12f})")
    analytic = np.diag(s) - np.outer(s, s)  # J[i, j] = ds_i / dz_j = s_i (delta_ij - s_j)
    numeric = np.empty((4, 4))
    for j in range(4):
        e = np.zeros(4)
        e[j] = H
        numeric[:, j] = (bn.softmax((z + e)[None, :])[0] - bn.softmax((z - e)[None, :])[0]) / (2 * H)
    print("  Jacobian J = diag(s) - s s^T:")
    for row in analytic:
        print("    " + "  ".join(f"{v:+.6f}" for v in row))
    print(f"  max |J - numeric Jacobian|                = {lk.fmt(np.abs(analytic - numeric).max(), 3)}")
    layer = bn.Softmax()
    _, cache = layer.forward(z[None, :])
    g = np.random.default_rng(0).standard_normal((1, 4))
    jvp = layer.backward(g, cache)[0]  # what backprop uses: s * (g - <g, s>), never building J
    print(f"  max |Softmax.backward(g) - g J|           = {lk.fmt(np.abs(jvp - g[0] @ analytic).max(), 3)}")
    lk.note("backward never builds the n x n Jacobian: it computes s * (g - sum(g * s)) directly")

    big = np.array([[1000.0, 999.0, -1000.0]])
    with np.errstate(over="ignore", invalid="ignore"):
        naive = np.exp(big) / np.exp(big).sum()
    print(f"  logits {big[0].tolist()}: naive exp/sum = {naive[0].tolist()},"
          f" stable softmax = {np.array2string(bn.softmax(big)[0], precision=6)}")
    lk.note("subtracting the row maximum before exp keeps every exponent <= 0: no overflow, same result")


def library_check(seed):
    lk.heading("The library's gradient checker on each activation layer", "-")
    X = np.random.default_rng(seed).standard_normal((6, 5))
    rows = []
    for name, layer in list(ELEMENTWISE.items()) + [("softmax", bn.Softmax())]:
        err = bn.check_gradients(layer, X)["input"]
        rows.append([name, lk.fmt(err, 3), "PASS" if err < 1e-6 else "FAIL"])
    lk.table(["layer", "relative error of dL/dx", "< 1e-6?"], rows)
    lk.note("bn.check_gradients compares backward() with central differences of L = sum(layer(X) * R)")


def dead_units(net, X):
    """Units of the first hidden layer whose pre-activation is <= 0 for every row of X."""
    pre, _ = net.forward(X, stop=1)
    return np.flatnonzero((pre <= 0).all(axis=0))


def dying_relu(seed, fast):
    lk.heading("The dying ReLU", "-")
    n = 400 if fast else 2000
    X, y = lk.synthetic_classes(n, n_features=20, seed=seed)
    X += 3.0  # inputs that are all positive on average, like raw pixel intensities
    print(f"  data: {n} synthetic rows, 20 features shifted to mean 3 (not centred), 10 classes")
    print("  network: 20 -> Dense(64) -> ReLU -> Dense(10), SGD with momentum 0.9, 5 epochs of batch 32")
    rows, victim = [], None
    for lr in (0.01, 0.1, 0.3):
        net = bn.build_mlp(20, hidden=(64,), n_outputs=10, optimizer=bn.SGD(lr, momentum=0.9), seed=seed)
        at_init = len(dead_units(net, X))
        net.fit(X, y, epochs=5, batch_size=32)
        dead = dead_units(net, X)
        acc = net.evaluate(X, y)["accuracy"]
        rows.append([f"{lr:g}", f"{at_init} / 64", f"{len(dead)} / 64", f"{acc:.3f}"])
        if lr == 0.1:
            victim = (lr, net, dead)
    lk.table(["learning rate", "dead at init", "dead after training", "train accuracy"], rows)
    lk.note("a dead unit outputs 0 for every input; too-large steps push weights and biases far negative. "
            "The units dead at init come from the uncentred inputs: centring the features avoids most of them")
    lr, net, dead = victim
    if not len(dead):
        return
    Xf = X.astype(np.float32)
    net.loss_and_gradients(Xf, y)
    g_relu = np.linalg.norm(net.gradients()["0.W"][:, dead], axis=0)
    leaky = bn.Sequential([bn.Dense(64), bn.LeakyReLU(0.01), bn.Dense(10)], seed=seed, n_inputs=20)
    leaky.set_weights(net.get_weights())  # the very same weights, only the activation differs
    leaky.loss_and_gradients(Xf, y)
    g_leaky = np.linalg.norm(leaky.gradients()["0.W"][:, dead], axis=0)
    print(f"  with the weights trained at learning rate {lr:g}, gradient norm ||dL/dW|| of the dead units:")
    print(f"    ReLU        max over dead units = {lk.fmt(g_relu.max())}")
    print(f"    LeakyReLU   min over the same   = {lk.fmt(g_leaky.min())}")
    lk.note("ReLU passes exactly zero gradient to a dead unit, so no update can ever revive it; LeakyReLU's "
            "slope 0.01 for x < 0 keeps a small gradient flowing, so the unit can recover")


def main(argv=None):
    args = lk.make_parser(__doc__.splitlines()[0]).parse_args(argv)
    lk.heading("Step 2 - Activations and their derivatives")
    elementwise_table()
    softmax_section()
    library_check(args.seed)
    dying_relu(args.seed, args.fast)


if __name__ == "__main__":
    main()
