"""Step 3 - weight initialisation: how the starting weights decide whether signals survive 10 layers.

For z = x W with n_in inputs of mean square E[x^2] = v and weights of variance s^2, Var(z) = n_in s^2 v.
ReLU zeroes half of z, so the next layer's input has mean square n_in s^2 v / 2. The signal keeps its size only if
n_in s^2 / 2 = 1, i.e. s^2 = 2 / n_in: He initialisation. Anything smaller shrinks the signal
geometrically with depth (vanishing), anything larger grows it (exploding), and the gradients follow.

    python examples/lab/step3_initialization.py [--seed 0] [--fast] [--plot-dir DIR]
"""
from __future__ import annotations

import textwrap
import warnings

import labkit as lk
import numpy as np

import barenet as bn

INITS = {  # label -> initialiser spec for bn.get_initializer / Dense(init=...)
    "zeros": "zeros",
    "N(0, 0.01^2)": ("normal", {"scale": 0.01}),
    "N(0, 1)": ("normal", {"scale": 1.0}),
    "Xavier": "glorot_normal",
    "He": "he_normal",
}
DEPTH = 10


def deep_relu_net(width, init, seed):
    layers = []
    for _ in range(DEPTH):
        layers += [bn.Dense(width, init=init), bn.ReLU()]
    layers.append(bn.Dense(10, init=init))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        net = bn.Sequential(layers, seed=seed, dtype="float64", n_inputs=width)
    return net, [str(w.message) for w in caught]


def layer_statistics(net, X, y):
    """Std of each ReLU output, ||dL/dW|| of each hidden Dense layer and the std of the gradient dL/dh
    arriving at each hidden layer's input, for one forward/backward pass."""
    out, caches = net.forward(X, training=True)
    _, d = net.loss.value_and_grad(out, y)
    signal = []
    for i in range(len(net.layers) - 1, -1, -1):  # net.backward, unrolled to record dL/dh on the way down
        d = net.layers[i].backward(d, caches[i])
        if isinstance(net.layers[i], bn.Dense) and i < len(net.layers) - 1:
            signal.append(float(d.std()))
    h, stds = X, []
    for layer in net.layers[:-1]:
        h, _ = layer.forward(h)
        if isinstance(layer, bn.ReLU):
            stds.append(float(h.std()))
    grads = net.gradients()
    norms = [float(np.linalg.norm(grads[f"{2 * i}.W"])) for i in range(DEPTH)]
    return np.array(stds), np.array(norms), np.array(signal[::-1])


def init_study(args):
    width, n = (64, 128) if args.fast else (256, 512)
    rng = np.random.default_rng(args.seed)
    X = rng.standard_normal((n, width))
    y = rng.integers(0, 10, size=n)
    lk.heading(f"A {DEPTH}-layer ReLU network, width {width}, one batch of {n} standard-normal inputs", "-")
    stats, messages = {}, []
    for label, spec in INITS.items():
        net, caught = deep_relu_net(width, spec, args.seed)
        messages += caught
        stats[label] = layer_statistics(net, X, y)
    if messages:
        print("  barenet warns about the zero init:")
        print(textwrap.fill(messages[0], width=100, initial_indent="    ", subsequent_indent="    "))
    print()
    print("  standard deviation of each layer's ReLU output (the input has std 1):")
    rows = [[str(i + 1)] + [lk.fmt(stats[k][0][i], 3) for k in INITS] for i in range(DEPTH)]
    lk.table(["layer"] + list(INITS), rows)
    he = stats["He"][0]
    lk.note(f"He keeps it steady ({he.min():.2f} to {he.max():.2f}); Xavier loses a factor ~sqrt(2) per layer "
            "(it ignores that ReLU zeroes half the units)")
    lk.note(f"0.01 shrinks it ~{0.01 * np.sqrt(width / 2):.2f}x per layer (vanishing), "
            f"1.0 grows it ~{np.sqrt(width / 2):.1f}x per layer (exploding); zeros: nothing ever gets through")
    print()
    print("  gradient norm ||dL/dW|| of each layer (softmax cross-entropy on random labels):")
    rows = [[str(i + 1)] + [lk.fmt(stats[k][1][i], 3) for k in INITS] for i in range(DEPTH)]
    lk.table(["layer"] + list(INITS), rows)
    he_g, xa_s, he_s = stats["He"][1], stats["Xavier"][2], stats["He"][2]
    lk.note("zeros: exactly 0 everywhere; 0.01: vanishing (no layer can learn); 1.0: so large that one step "
            "wrecks the network")
    lk.note("Xavier looks flat only because its fading activations (x) meet a backward signal dL/dh that fades "
            f"the other way (std {lk.fmt(xa_s[-1], 2)} at layer 10 -> {lk.fmt(xa_s[0], 2)} at layer 1)")
    lk.note(f"He: every layer gets a usable gradient ({he_g.min():.2f} to {he_g.max():.2f}); the backward signal "
            f"dL/dh stays steady ({lk.fmt(he_s[-1], 2)} at layer 10 -> {lk.fmt(he_s[0], 2)} at layer 1), and the "
            "rise of ||dL/dW|| towards the output comes from deeper ReLU outputs (all >= 0) being more alike from "
            "sample to sample, so the batch sum h^T dz adds up more coherently")
    return stats


def distinct_units(W, tol=1e-3):
    """How many different columns (units' incoming weights) W has, up to ``tol`` relative to max |W|.

    Columns that are equal in exact arithmetic can differ in their last float32 bits: a BLAS computes a
    product's columns in tiles, so two columns may be summed in another order. Those few-ulp differences
    grow with the steps but stay far below 0.1 % of the weights; columns from a random start differ by O(1).
    """
    scale = max(float(np.abs(W).max()), 1e-30)
    reps = []
    for col in W.T:
        if not any(np.abs(col - r).max() <= tol * scale for r in reps):
            reps.append(col)
    return len(reps)


def symmetry_study(args):
    n_train, n_val = (500, 200) if args.fast else (3000, 1000)
    data = lk.image_split("mnist", n_train, n_val, 0, seed=args.seed)
    lk.heading("The symmetry problem: units that start equal stay equal", "-")
    lk.describe(data)
    hidden, epochs, batch = 32, (2 if args.fast else 5), 64
    steps = epochs * -(-n_train // batch)
    print(f"  network: {data.n_features} -> Dense({hidden}) -> act -> Dense({hidden}) -> act -> Dense(10)")
    print(f"  every layer initialised alike; SGD lr 0.1, {steps} updates (batch {batch}, {epochs} epochs)")
    rows = []
    for init, act in (("zeros", "relu"), ("zeros", "sigmoid"), ("he_normal", "relu")):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the zero-init warning was shown above
            layers = [bn.Dense(hidden, init=init), bn.get_activation(act),
                      bn.Dense(hidden, init=init), bn.get_activation(act), bn.Dense(10, init=init)]
            net = bn.Sequential(layers, optimizer=bn.SGD(0.1), seed=args.seed, n_inputs=data.n_features)
        start = net.get_weights()
        net.fit(data.X_train, data.y_train, epochs=epochs, batch_size=batch, blas_threads=1)
        W1, W2 = net.parameters()["0.W"], net.parameters()["2.W"]
        moved = np.linalg.norm(W1 - start["0.W"])
        acc = net.evaluate(data.X_val, data.y_val)["accuracy"]
        rows.append([f"{init} + {act}", lk.fmt(moved, 3), f"{distinct_units(W1)} / {hidden}",
                     f"{distinct_units(W2)} / {hidden}", f"{acc:.3f}"])
    lk.table(["init + activation", "||W1 - W1(0)||", "distinct units, layer 1", "layer 2", "val accuracy"], rows)
    lk.note("zeros + relu: every hidden unit outputs 0 and gets gradient 0; the weights never move")
    lk.note("zeros + sigmoid: the weights do move, but every unit of a layer gets the same gradient, so the "
            "units stay copies of each other: a layer of 32 behaves like 1 unit. Random init breaks the tie")


def plot(stats, plot_dir):
    plt = lk.pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    layers = np.arange(1, DEPTH + 1)
    for label, (stds, norms, _) in stats.items():
        if label == "zeros":
            continue  # exactly 0 everywhere: nothing to draw on a log scale
        axes[0].semilogy(layers, stds, marker="o", label=label)
        axes[1].semilogy(layers, norms, marker="o", label=label)
    axes[0].set(title="activation std per layer", xlabel="layer", ylabel="std of ReLU output")
    axes[1].set(title="gradient norm per layer", xlabel="layer", ylabel="||dL/dW||")
    for ax in axes:
        ax.set_xticks(layers)
        ax.grid(True, which="major", alpha=0.3)
    axes[0].legend(title="init (zeros: all 0)", fontsize=8, title_fontsize=8)
    lk.save_figure(fig, plot_dir, "step3_init.png")


def main(argv=None):
    args = lk.make_parser(__doc__.splitlines()[0]).parse_args(argv)
    lk.heading("Step 3 - Weight initialisation")
    stats = init_study(args)
    symmetry_study(args)
    if args.plot_dir:
        plot(stats, args.plot_dir)


if __name__ == "__main__":
    main()
