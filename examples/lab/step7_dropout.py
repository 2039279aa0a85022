"""Step 7 - dropout: the same network with and without it, on data where it overfits.

Inverted dropout, in training only: y = x * m / (1 - p) with m ~ Bernoulli(1 - p) drawn afresh for every
row of every batch, so E[y] = x and inference needs no change (y = x). Backward uses the same mask:
dx = dy * m / (1 - p). Each step trains a random thinned sub-network; no unit can rely on one particular
other unit being present, which discourages memorising the training rows.

The overfitting setting: only 1,000 training rows and a wide network (two hidden layers of 512 units,
~670,000 parameters), trained long enough to fit the training set perfectly. The generalisation gap is
train accuracy - validation accuracy, both measured in inference mode.

    python examples/lab/step7_dropout.py [--epochs 60] [--seeds 3] [--seed 0] [--fast] [--plot-dir DIR]
"""
from __future__ import annotations

import time

import labkit as lk
import numpy as np

import barenet as bn

LAB_CLAIM = {"gap without": 0.087, "gap with": 0.033}
INPUT_RATE, HIDDEN_RATE = 0.2, 0.5  # the rates of Srivastava et al. (2014) for MNIST


class TrainAccuracy(bn.Callback):
    """Accuracy on the training rows in inference mode after every epoch (the running training accuracy
    that fit records is taken with dropout on, mid-update, so it is not comparable with validation)."""

    def __init__(self, X, y):
        self.X, self.y, self.values = X, y, []

    def on_epoch_end(self, state):
        self.values.append(state.model.evaluate(self.X, self.y)["accuracy"])


def network(n_inputs, width, dropout, seed):
    layers = [bn.Dropout(INPUT_RATE)] if dropout else []
    for _ in range(2):
        layers += [bn.Dense(width), bn.ReLU()] + ([bn.Dropout(HIDDEN_RATE)] if dropout else [])
    layers.append(bn.Dense(10))
    return bn.Sequential(layers, optimizer=bn.Adam(1e-3), seed=seed, n_inputs=n_inputs)


def layer_chain(net) -> str:
    """'Dropout(0.2) -> Dense(512) -> ReLU -> ...'"""
    def short(layer):
        arg = getattr(layer, "units", None) or getattr(layer, "rate", None)
        return type(layer).__name__ + (f"({arg})" if arg is not None else "")

    return " -> ".join(short(layer) for layer in net.layers)


def run(data, width, dropout, epochs, seed):
    net = network(data.n_features, width, dropout, seed)
    tracker = TrainAccuracy(data.X_train, data.y_train)
    # one BLAS thread: the same arithmetic order on every machine (so the same numbers for a seed), and no
    # threads fighting over a busy machine's cores
    tic = time.perf_counter()
    history = net.fit(data.X_train, data.y_train, epochs=epochs, batch_size=64,
                      validation_data=(data.X_val, data.y_val), callbacks=[tracker], blas_threads=1)
    result = {"seconds": time.perf_counter() - tic, "history": history, "train_curve": tracker.values}
    for part, (X, y) in {"train": (data.X_train, data.y_train), "val": (data.X_val, data.y_val),
                         "test": (data.X_test, data.y_test)}.items():
        scores = net.evaluate(X, y)
        result[f"{part}_acc"], result[f"{part}_loss"] = scores["accuracy"], scores["loss"]
    result["gap"] = result["train_acc"] - result["val_acc"]
    return net, result


def main(argv=None):
    parser = lk.make_parser(__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=None, help="training epochs (default 60)")
    parser.add_argument("--seeds", type=int, default=None, help="repeat with this many seeds (default 3)")
    args = parser.parse_args(argv)
    n_train, n_val, n_test, width = (200, 200, 500, 64) if args.fast else (1000, 1000, 10000, 512)
    epochs = args.epochs or (5 if args.fast else 60)
    seeds = list(range(args.seed, args.seed + (args.seeds or (1 if args.fast else 3))))

    lk.heading("Step 7 - Dropout")
    data = lk.image_split("mnist", n_train, n_val, n_test, seed=args.seed)
    lk.describe(data)
    variants = {"no dropout": False, f"dropout {INPUT_RATE} in / {HIDDEN_RATE} hidden": True}
    for name, dropout in variants.items():
        net = network(data.n_features, width, dropout, args.seed)
        print(f"  {name:<28} {layer_chain(net)}")
    print(f"  {net.n_params:,} parameters for {n_train:,} training rows; Adam lr 1e-3, batch 64, {epochs} epochs, "
          f"seeds {seeds[0]}..{seeds[-1]}")

    results = {name: [] for name in variants}
    for seed in seeds:
        for name, dropout in variants.items():
            results[name].append(run(data, width, dropout, epochs, seed)[1])

    lk.heading("Per seed (all accuracies in inference mode, after the last epoch)", "-")
    rows = []
    for seed_index, seed in enumerate(seeds):
        for name in variants:
            r = results[name][seed_index]
            rows.append([str(seed), name, f"{r['train_acc']:.4f}", f"{r['val_acc']:.4f}", f"{r['gap']:.4f}",
                         f"{r['train_loss']:.4f}", f"{r['val_loss']:.4f}", f"{r['test_acc']:.4f}",
                         lk.seconds(r["seconds"])])
    lk.table(["seed", "model", "train acc", "val acc", "gap", "train loss", "val loss", "test acc", "time"], rows,
             align=["<", "<"] + [">"] * 7)

    lk.heading(f"Mean over {len(seeds)} seed(s)", "-")
    rows, means = [], {}
    for name in variants:
        m = {k: float(np.mean([r[k] for r in results[name]])) for k in ("train_acc", "val_acc", "gap", "val_loss",
                                                                         "test_acc")}
        sd = float(np.std([r["gap"] for r in results[name]]))
        means[name] = m
        rows.append([name, f"{m['train_acc']:.4f}", f"{m['val_acc']:.4f}", f"{m['gap']:.4f} +- {sd:.4f}",
                     f"{m['val_loss']:.4f}", f"{m['test_acc']:.4f}"])
    lk.table(["model", "train acc", "val acc", "gap (+- sd)", "val loss", "test acc"], rows)
    plain, drop = (means[name] for name in variants)
    print(f"\n  lab claim : gap {LAB_CLAIM['gap without']:.3f} without dropout -> {LAB_CLAIM['gap with']:.3f} with "
          "dropout, test accuracy slightly better")
    print(f"  measured  : gap {plain['gap']:.3f} without dropout -> {drop['gap']:.3f} with dropout, "
          f"test accuracy {plain['test_acc']:.4f} -> {drop['test_acc']:.4f} "
          f"({drop['test_acc'] - plain['test_acc']:+.4f})")
    lk.note(f"dropout changed the gap by {drop['gap'] - plain['gap']:+.3f} and the validation loss by "
            f"{drop['val_loss'] - plain['val_loss']:+.3f}")
    if min(plain["train_acc"], drop["train_acc"]) > 0.999:
        lk.note("both networks still fit every training row (train accuracy 1.000), so dropout can narrow the gap "
                "only by raising the validation accuracy"
                + ("; its clearer effect is on the validation loss: fewer confidently wrong predictions"
                   if drop["val_loss"] < plain["val_loss"] else ""))
    if args.plot_dir:
        plot(results, args.plot_dir)


def plot(results, plot_dir):
    plt = lk.pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    for name, runs in results.items():
        train = np.mean([r["train_curve"] for r in runs], axis=0)
        val = np.mean([r["history"]["val_accuracy"] for r in runs], axis=0)
        epochs = np.arange(1, len(train) + 1)
        line, = axes[0].plot(epochs, train, ls="--", label=f"{name}: train")
        axes[0].plot(epochs, val, color=line.get_color(), label=f"{name}: validation")
        axes[1].plot(epochs, train - val, color=line.get_color(), label=name)
    n = len(next(iter(results.values())))
    axes[0].set(title=f"accuracy, inference mode (mean of {n} seeds)", xlabel="epoch", ylabel="accuracy")
    axes[1].set(title="generalisation gap = train - validation", xlabel="epoch", ylabel="gap")
    for ax in axes:
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    lk.save_figure(fig, plot_dir, "step7_dropout_gap.png")

if __name__ == "__main__":
    main()
