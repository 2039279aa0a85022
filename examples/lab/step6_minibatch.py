"""Step 6 - mini-batch training with validation: batch size 1, 64 and the full batch on the same data.

One update is theta <- theta - lr * g_B, where g_B is the gradient averaged over a batch B of rows. An epoch
(one pass over the n training rows) makes ceil(n / |B|) updates: with |B| = 1 many cheap, noisy steps; with
|B| = n one exact but expensive step; in between, a gradient that is accurate enough at a fraction of the
cost. The validation set, never trained on, tells whether what was learned generalises.

    python examples/lab/step6_minibatch.py [--epochs 10] [--seed 0] [--fast] [--plot-dir DIR]
"""
from __future__ import annotations

import math
import time

import labkit as lk
import numpy as np

import barenet as bn

LEARNING_RATE = 0.05


def train(data, batch_size, epochs, seed):
    """A fresh 784 -> 64 -> 10 network trained with plain SGD; returns (history, final metrics, seconds)."""
    net = bn.build_mlp(data.n_features, hidden=(64,), n_outputs=10, optimizer=bn.SGD(LEARNING_RATE), seed=seed)
    tic = time.perf_counter()
    # blas_threads=1: these matrices are small, and one BLAS thread is faster than two that must synchronise
    history = net.fit(data.X_train, data.y_train, epochs=epochs, batch_size=batch_size,
                      validation_data=(data.X_val, data.y_val), blas_threads=1)
    elapsed = time.perf_counter() - tic
    final = {"train": net.evaluate(data.X_train, data.y_train), "val": net.evaluate(data.X_val, data.y_val)}
    return history, final, elapsed


def main(argv=None):
    parser = lk.make_parser(__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=None, help="epochs for every batch size (default 10)")
    args = parser.parse_args(argv)
    n_train, n_val = (500, 200) if args.fast else (5000, 1000)
    epochs = args.epochs or (2 if args.fast else 10)

    lk.heading("Step 6 - Mini-batch training with validation")
    data = lk.image_split("mnist", n_train, n_val, 0, seed=args.seed)
    lk.describe(data)
    print(f"  network: {data.n_features} -> Dense(64) -> ReLU -> Dense(10); plain SGD, learning rate "
          f"{LEARNING_RATE} for every batch size; {epochs} epochs; seed {args.seed}")

    runs = {}
    for batch_size in (1, 64, n_train):
        label = f"{batch_size} (full)" if batch_size == n_train else str(batch_size)
        runs[label] = (batch_size,) + train(data, batch_size, epochs, args.seed)

    lk.heading("Cost: the same number of epochs, very different numbers of updates", "-")
    rows = []
    for label, (bs, history, final, elapsed) in runs.items():
        per_epoch = float(np.median(history["time"]))
        updates = epochs * math.ceil(n_train / bs)
        rows.append([label, f"{math.ceil(n_train / bs):,}", f"{updates:,}", lk.seconds(per_epoch),
                     f"{per_epoch / math.ceil(n_train / bs) * 1e6:,.0f} us", lk.seconds(elapsed)])
    lk.table(["batch size", "updates/epoch", "updates", "time/epoch", "time/update", "total time"], rows)
    per_row = {k: float(np.median(v[1]["time"])) / n_train for k, v in runs.items()}
    one, mid = list(runs)[:2]
    lk.note("times (median epoch) change from run to run; the counts do not. Per training row, an epoch costs "
            f"{per_row[one] * 1e6:.1f} us with batch 1 and {per_row[mid] * 1e6:.1f} us with batch 64: with batch "
            "1 most of the time is Python's fixed cost per update, not arithmetic")

    lk.heading(f"Result after {epochs} epochs (evaluated in inference mode at the end)", "-")
    rows = []
    for label, (bs, history, final, elapsed) in runs.items():
        tr, va = final["train"], final["val"]
        rows.append([label, f"{tr['loss']:.4f}", f"{va['loss']:.4f}", f"{tr['accuracy']:.4f}",
                     f"{va['accuracy']:.4f}"])
    lk.table(["batch size", "train loss", "val loss", "train acc", "val acc"], rows)
    (one, r1), (mid, r64), (full, rf) = [(k, v) for k, v in runs.items()]
    updates = {k: epochs * math.ceil(n_train / v[0]) for k, v in runs.items()}
    lk.note(f"full batch: {updates[full]} exact updates are far too few (val accuracy {rf[2]['val']['accuracy']:.3f}); "
            "it would need many more epochs")
    lk.note(f"batch 1: {updates[one]:,} noisy updates (val accuracy {r1[2]['val']['accuracy']:.3f}, val loss "
            f"{r1[2]['val']['loss']:.3f}); each step follows a single row, so the curves jump from epoch to epoch")
    lk.note(f"batch 64: {updates[mid]:,} updates (val accuracy {r64[2]['val']['accuracy']:.3f}, val loss "
            f"{r64[2]['val']['loss']:.3f}) in {lk.seconds(r64[3])} against {lk.seconds(r1[3])} for batch 1: far "
            "less noise than batch 1, far more updates than the full batch, which is why mini-batches are the "
            "default")

    lk.heading("Validation accuracy per epoch", "-")
    rows = [[str(e + 1)] + [f"{runs[k][1]['val_accuracy'][e]:.4f}" for k in runs] for e in range(epochs)]
    lk.table(["epoch"] + [f"batch {k}" for k in runs], rows)
    if args.plot_dir:
        plot(runs, n_train, args.plot_dir)


def plot(runs, n_train, plot_dir):
    plt = lk.pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    for label, (bs, history, _, _) in runs.items():
        epochs = np.arange(1, len(history) + 1)
        line, = axes[0].plot(epochs, history["val_loss"], marker="o", ms=3, label=f"batch {label}")
        axes[0].plot(epochs, history["loss"], ls="--", color=line.get_color(), alpha=0.6)
        axes[1].semilogx(epochs * math.ceil(n_train / bs), history["val_accuracy"], marker="o", ms=3,
                         label=f"batch {label}")
    axes[0].set(title="loss per epoch (solid: validation, dashed: train)", xlabel="epoch", ylabel="cross-entropy")
    axes[1].set(title="validation accuracy per update", xlabel="number of updates (log scale)", ylabel="accuracy")
    for ax in axes:
        ax.grid(True, alpha=0.3)
    axes[1].legend(fontsize=8)
    lk.save_figure(fig, plot_dir, "step6_learning_curves.png")


if __name__ == "__main__":
    main()
