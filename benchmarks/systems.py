"""The three systems under test, each trained and queried the same way.

Every ``train_*`` function gets the same float32 arrays, hidden widths, batch size, epochs and Adam settings
(lr, beta1 0.9, beta2 0.999, eps 1e-8, no weight decay) and returns ``(seconds, predict_proba)``: the wall
time of the whole training call and a function mapping a float32 batch to class probabilities (the same
call the inference timings use). Each system imports its library lazily, so a worker process loads only
the one it measures.

* barenet: ``build_mlp(...).fit(...)`` with its defaults (it also computes the training loss and accuracy
  every epoch, which the other two skip or do less of).
* scikit-learn: ``MLPClassifier(solver="adam", alpha=0, tol=0, n_iter_no_change > epochs, shuffle=True,
  early_stopping=False)``, fitted on float32 input (it keeps float32). It uses its own Glorot-uniform
  initialisation: its estimator has no way to take given initial weights.
* PyTorch: ``nn.Sequential`` of ``nn.Linear``/``nn.ReLU`` started from barenet's initial weights (same seed,
  so the same starting point), ``nn.CrossEntropyLoss`` and ``torch.optim.Adam`` (``fused=True`` or the
  default ``foreach`` implementation); the textbook loop: ``randperm`` per epoch, index a batch,
  ``zero_grad(set_to_none=True)``, forward, loss, backward, step. Inference runs under ``inference_mode``.
"""
from __future__ import annotations

import time
import warnings

import numpy as np

ADAM = dict(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8)


def barenet_init(n_inputs, hidden, n_classes, seed):
    """barenet's initial parameters for this seed: a list of (W (d_in, d_out), b) per Dense layer."""
    import barenet as bn

    net = bn.build_mlp(n_inputs, hidden, n_classes, seed=seed)
    dense = [layer for layer in net.layers if isinstance(layer, bn.Dense)]
    return [(layer.params["W"].copy(), layer.params["b"].copy()) for layer in dense]


# ------------------------------------------------------------------------------------------------
# barenet
# ------------------------------------------------------------------------------------------------
def train_barenet(X, y, *, hidden, n_classes, batch_size, epochs, seed, threads):
    import barenet as bn

    opt = bn.Adam(ADAM["lr"], beta1=ADAM["beta1"], beta2=ADAM["beta2"], eps=ADAM["eps"])
    net = bn.build_mlp(X.shape[1], hidden, n_classes, optimizer=opt, seed=seed)
    tic = time.perf_counter()
    net.fit(X, y, epochs=epochs, batch_size=batch_size, classes=np.arange(n_classes))  # blas_threads="auto"
    seconds = time.perf_counter() - tic
    return seconds, net.predict_proba


# ------------------------------------------------------------------------------------------------
# scikit-learn
# ------------------------------------------------------------------------------------------------
def train_sklearn(X, y, *, hidden, n_classes, batch_size, epochs, seed, threads):
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier
    from threadpoolctl import threadpool_limits

    clf = MLPClassifier(hidden_layer_sizes=tuple(hidden), activation="relu", solver="adam", alpha=0.0,
                        batch_size=batch_size, learning_rate_init=ADAM["lr"], max_iter=epochs, shuffle=True,
                        random_state=seed, tol=0.0, n_iter_no_change=epochs + 1, early_stopping=False,
                        beta_1=ADAM["beta1"], beta_2=ADAM["beta2"], epsilon=ADAM["eps"])
    with warnings.catch_warnings(), threadpool_limits(limits=threads, user_api="blas"):
        warnings.simplefilter("ignore", ConvergenceWarning)  # max_iter=epochs is the point
        tic = time.perf_counter()
        clf.fit(X, y)
        seconds = time.perf_counter() - tic
    if clf.coefs_[0].dtype != X.dtype:
        raise RuntimeError(f"scikit-learn trained in {clf.coefs_[0].dtype}, not {X.dtype}")
    return seconds, clf.predict_proba


# ------------------------------------------------------------------------------------------------
# PyTorch
# ------------------------------------------------------------------------------------------------
def torch_network(n_inputs, hidden, n_classes, seed):
    import torch

    widths = [n_inputs, *hidden, n_classes]
    layers = []
    for i, (d_in, d_out) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(torch.nn.Linear(d_in, d_out))
        if i < len(hidden):
            layers.append(torch.nn.ReLU())
    net = torch.nn.Sequential(*layers)
    linears = [m for m in net if isinstance(m, torch.nn.Linear)]
    with torch.no_grad():
        for lin, (W, b) in zip(linears, barenet_init(n_inputs, hidden, n_classes, seed)):
            lin.weight.copy_(torch.from_numpy(np.ascontiguousarray(W.T)))  # torch keeps (d_out, d_in)
            lin.bias.copy_(torch.from_numpy(b))
    return net


def train_torch(X, y, *, hidden, n_classes, batch_size, epochs, seed, threads, adam="fused"):
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    net = torch_network(X.shape[1], hidden, n_classes, seed)
    kind = {"fused": dict(fused=True), "foreach": dict(foreach=True)}[adam]
    opt = torch.optim.Adam(net.parameters(), lr=ADAM["lr"], betas=(ADAM["beta1"], ADAM["beta2"]), eps=ADAM["eps"],
                           **kind)
    loss_fn = torch.nn.CrossEntropyLoss()
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y.astype(np.int64))
    gen = torch.Generator().manual_seed(seed)
    n = len(Xt)
    tic = time.perf_counter()
    for _ in range(epochs):
        order = torch.randperm(n, generator=gen)
        for start in range(0, n, batch_size):
            idx = order[start:start + batch_size]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(net(Xt[idx]), yt[idx])
            loss.backward()
            opt.step()
    seconds = time.perf_counter() - tic
    net.eval()

    def predict_proba(xb):
        with torch.inference_mode():
            return torch.softmax(net(torch.from_numpy(xb)), dim=1).numpy()

    return seconds, predict_proba


def prepare(system: str) -> None:
    """Import what ``system`` needs up front, so a memory measurement sees the work, not the imports."""
    import threadpoolctl  # noqa: F401

    import barenet  # noqa: F401  (PyTorch starts from barenet's initial weights)

    if system == "sklearn":
        import sklearn.neural_network  # noqa: F401
    elif system.startswith("torch"):
        import torch  # noqa: F401


TRAINERS = {
    "barenet": train_barenet,
    "sklearn": train_sklearn,
    "torch-fused": lambda *a, **k: train_torch(*a, adam="fused", **k),
    "torch-foreach": lambda *a, **k: train_torch(*a, adam="foreach", **k),
    "torch": lambda *a, **k: train_torch(*a, adam="fused", **k),  # inference workloads: the Adam does not matter
}
