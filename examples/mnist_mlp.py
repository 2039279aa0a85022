"""Train a multi-layer perceptron on MNIST with barenet (NumPy only) and report the test accuracy once.

    BARENET_DATA=../shared/data python examples/mnist_mlp.py            # full run: 98.68 % test accuracy
                                                                         # in ~45 s on a 2-core machine (2026-11-25)
    python examples/mnist_mlp.py --data-dir /path/to/mnist --epochs 1 --limit 2000   # quick smoke run

Recipe: pixels scaled to [0, 1]; 784 -> 512 -> 256 -> 10 with ReLU (so He initialisation by default),
dropout after each hidden layer, Adam with a cosine learning-rate decay, mini-batches of 128.
Model selection uses only the training set: its last 5,000 images are held out for validation and
EarlyStopping puts back the weights of the epoch with the best validation accuracy. The 10,000 test
images are touched exactly once, at the very end.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time

import numpy as np

import barenet as bn


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default=None, help="folder with the MNIST IDX files (default: $BARENET_DATA/mnist, "
                   "then ~/.cache/barenet/mnist, then download)")
    p.add_argument("--kind", default="mnist", choices=["mnist", "fashion-mnist"])
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--hidden", type=int, nargs="+", default=[512, 256])
    p.add_argument("--dropout", type=float, default=0.2)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--patience", type=int, default=5)
    p.add_argument("--validation", type=int, default=5000, help="last N training images held out for validation")
    p.add_argument("--limit", type=int, default=None, help="use only the first N training images (quick runs)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--blas-threads", default="1", help="BLAS threads while training: an integer, or 'auto' "
                   "(default 1: on a small shared machine a second BLAS thread that must wait for a core costs far "
                   "more than it gains)")
    p.add_argument("--no-download", action="store_true", help="fail instead of downloading")
    return p.parse_args(argv)


def machine_line() -> str:
    return (f"machine: {platform.platform()}, {platform.machine()}, {os.cpu_count()} logical cores; "
            f"python {platform.python_version()}, numpy {np.__version__}, barenet {bn.__version__}")


def prepare(args):
    (X_train, y_train), (X_test, y_test) = bn.load_mnist(args.data_dir, kind=args.kind, download=not args.no_download)
    X_train = X_train.reshape(len(X_train), -1).astype(np.float32) / 255.0
    X_test = X_test.reshape(len(X_test), -1).astype(np.float32) / 255.0
    if args.limit:
        X_train, y_train = X_train[:args.limit], y_train[:args.limit]
    n_val = min(args.validation, len(X_train) // 5)
    split = len(X_train) - n_val
    return (X_train[:split], y_train[:split]), (X_train[split:], y_train[split:]), (X_test, y_test)


def main(argv=None) -> float:
    args = parse_args(argv)
    tic = time.perf_counter()
    print(machine_line())
    (X_tr, y_tr), (X_val, y_val), (X_test, y_test) = prepare(args)
    print(f"data: {len(X_tr)} training, {len(X_val)} validation, {len(X_test)} test images ({args.kind})")

    steps = args.epochs * -(-len(X_tr) // args.batch_size)
    net = bn.build_mlp(X_tr.shape[1], hidden=args.hidden, n_outputs=10, activation="relu", dropout=args.dropout,
                       optimizer=bn.Adam(bn.CosineDecay(args.lr, total_steps=max(steps, 1))), seed=args.seed)
    net.summary()
    early = bn.EarlyStopping(monitor="val_accuracy", patience=args.patience, restore_best_weights=True)
    history = net.fit(X_tr, y_tr, epochs=args.epochs, batch_size=args.batch_size, validation_data=(X_val, y_val),
                      callbacks=[early], verbose=2,
                      blas_threads="auto" if args.blas_threads == "auto" else int(args.blas_threads))
    print()
    print(history.table(["epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr", "time"]))
    print(f"stopped: {history.stop_reason}; best epoch {early.best_epoch + 1} "
          f"(val_accuracy {early.best:.4f}), whose weights are kept")

    test_accuracy = net.evaluate(X_test, y_test)["accuracy"]  # the only look at the test set
    print(f"test accuracy: {test_accuracy:.4f} ({test_accuracy * 100:.2f} %)  "
          f"wall time: {time.perf_counter() - tic:.1f} s")
    return test_accuracy


if __name__ == "__main__":
    main(sys.argv[1:])
