"""The training loop: mini-batch gradient descent with validation, callbacks and a History.

No model code lives here: the loop only calls ``model.forward``, ``model.loss.value_and_grad``,
``model.backward`` and ``model.optimizer.step``. One step is::

    out, caches = model.forward(X_batch, training=True)       # predictions
    L, dL/dout = loss.value_and_grad(out, y_batch, w_batch)    # (p - y)/n for softmax cross-entropy
    model.backward(dL/dout, caches)                             # chain rule -> flat gradient buffer
    optimizer.step(flat_params, flat_grads)                     # in place
"""
from __future__ import annotations

import sys
import time
import warnings

import numpy as np

from .blas import fit_blas_threads
from .callbacks import Callback, TerminateOnNaN, TrainingState
from .history import History
from .losses import class_weight_array
from .metrics import get_metric
from .targets import TargetEncoder, infer_target_kind
from .validation import check_consistent_length, check_features, check_sample_weight


def fit(model, X, y, *, epochs=10, batch_size=64, validation_data=None, validation_fraction=0.0,
        sample_weight=None, class_weight=None, callbacks=(), verbose=0, metrics=None, shuffle=True,
        terminate_on_nan=True, blas_threads="auto", classes=None) -> History:
    """Train ``model`` for ``epochs`` passes over ``X, y`` in mini-batches of ``batch_size``.

    * ``validation_data=(X_val, y_val)`` or ``validation_fraction`` (a stratified, seeded split for
      classifiers) adds ``val_*`` entries to every record.
    * ``sample_weight`` (n,) and ``class_weight`` (``{label: weight}`` or ``"balanced"``) weight the loss.
    * ``metrics`` defaults to ``["accuracy"]`` for classifiers; also ``"macro_f1"``, ``"mae"``, ``"r2"``.
    * ``verbose``: 0 silent; 1 a progress bar when stderr is a terminal; 2 one line per epoch.
    * ``blas_threads``: "auto" trains small layers (<= 256 wide) on one BLAS thread (faster and immune to
      a busy machine), an int sets it, None leaves the BLAS default.
    Ctrl-C or a non-finite loss rolls the model back to the end of its last good epoch: weights, optimizer
    moments and step count, and random generator, so a later ``fit`` continues exactly from there.
    Returns the History of this call; ``model.history_`` accumulates over calls.
    """
    if not _is_integer(epochs) or epochs < 0:
        raise ValueError(f"epochs must be a non-negative integer, got {epochs!r}")
    if not _is_integer(batch_size) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    epochs, batch_size = int(epochs), int(batch_size)
    X = check_features(X, dtype=model.dtype, n_features=model.n_inputs)
    check_consistent_length(X, y)
    y = np.asarray(y)
    _prepare_targets(model, X, y, classes)
    targets = model.targets
    Y = targets.encode(y, model.dtype)
    w = check_sample_weight(sample_weight, len(X))
    metrics = list(metrics) if metrics is not None else (["accuracy"] if model.loss.is_classifier else [])

    if validation_data is not None:
        X_val, y_val = validation_data[0], validation_data[1]
        X_val = check_features(X_val, dtype=model.dtype, n_features=model.n_inputs, what="validation X")
        check_consistent_length(X_val, y_val, "validation y")
        if X_val.shape == X.shape and np.array_equal(X_val, X):
            warnings.warn("validation data is identical to the training data: validation scores will be "
                          "optimistic and early stopping will not guard against overfitting", UserWarning, stacklevel=2)
        Y_val = targets.encode(np.asarray(y_val), model.dtype, what="validation y")
    elif validation_fraction:
        if not 0.0 < validation_fraction < 1.0:
            raise ValueError(f"validation_fraction must be in (0, 1), got {validation_fraction}")
        val_idx, train_idx = split_indices(targets, Y, validation_fraction, model.rng)
        X_val, Y_val = X[val_idx], Y[val_idx]
        X, Y = X[train_idx], Y[train_idx]
        w = None if w is None else w[train_idx]
    else:
        X_val = Y_val = None

    model.loss.fit_class_weight(Y)  # a loss built with class_weight="balanced" counts the whole training set
    cw = _class_sample_weights(targets, Y, class_weight)
    if cw is not None:
        w = cw if w is None else w * cw
    if w is not None:
        w = w.astype(model.dtype)

    callbacks = list(callbacks)
    if terminate_on_nan and not any(isinstance(c, TerminateOnNaN) for c in callbacks):
        callbacks.append(TerminateOnNaN())
    history = History()
    if model.history_ is None:
        model.history_ = History()
    start_epoch = len(model.history_)
    state = TrainingState(model=model, epochs=start_epoch + int(epochs), history=history, epoch=start_epoch)
    with fit_blas_threads(model, blas_threads):
        _run_epochs(model, X, Y, w, X_val, Y_val, state, callbacks, batch_size, shuffle, metrics, verbose)
    history.stop_reason = model.history_.stop_reason = state.stop_reason or "completed"
    return history


def _is_integer(value) -> bool:
    """An int, a NumPy integer or an integral float (64.0); not a bool, not a string."""
    try:
        return not isinstance(value, (bool, np.bool_, str)) and int(value) == value
    except (TypeError, ValueError, OverflowError):
        return False


def _run_epochs(model, X, Y, w, X_val, Y_val, state, callbacks, batch_size, shuffle, metrics, verbose):
    batch_hooks = [c for c in callbacks if type(c).on_batch_end is not Callback.on_batch_end]  # skip no-ops
    for c in callbacks:
        c.on_train_begin(state)
    try:
        for epoch in range(state.epoch, state.epochs):
            state.epoch = epoch
            if state.last_good_params is None or np.isfinite(model.flat_params).all():
                # never take non-finite weights (a step late in the previous epoch can overflow) as "good"
                state.remember_good()
            for c in callbacks:
                c.on_epoch_begin(state)
            tic = time.perf_counter()
            lr_at_start = model.optimizer.current_lr  # the rate this epoch's first step uses
            record = _train_one_epoch(model, X, Y, w, state, batch_hooks, batch_size, shuffle, metrics, verbose)
            if state.stop_reason == "non_finite":
                break
            if X_val is not None:
                val = evaluate_encoded(model, X_val, Y_val, metrics=metrics)
                record.update({f"val_{k}": v for k, v in val.items()})
            record["lr"] = lr_at_start
            record["time"] = time.perf_counter() - tic
            state.logs = record
            state.history.append(record)
            model.history_.append(record)  # per epoch, so a checkpoint saved by a callback holds it
            if verbose >= 2:
                print(_epoch_line(record, state.epochs), flush=True)
            for c in callbacks:
                c.on_epoch_end(state)
            if state.stop_training:
                break
    except KeyboardInterrupt:
        # the interrupt may land mid-update: roll back to the last completed epoch so the model is consistent
        state.roll_back()
        state.stop("interrupted")
        warnings.warn("training interrupted (Ctrl-C); the model (weights, optimizer state, generator) is back at "
                      "the end of the last completed epoch",
                      RuntimeWarning, stacklevel=3)
    finally:
        for c in callbacks:
            c.on_train_end(state)


#: Bytes of shuffled training rows gathered at once (a chunk of whole batches; see ``_train_one_epoch``).
GATHER_BYTES = 512 * 1024


def _train_one_epoch(model, X, Y, w, state, batch_hooks, batch_size, shuffle, metrics, verbose) -> dict:
    n = len(X)
    order = model.rng.permutation(n) if shuffle else np.arange(n)
    # training-set predictions (taken on each batch before its update, as Keras does) only for label metrics
    wanted = model.targets.kind in ("multiclass", "binary") and any(get_metric(m)[1] == "labels" for m in metrics)
    predictions = np.empty(n, dtype=np.intp) if wanted else None
    # The shuffled rows are gathered a chunk of whole batches at a time (~512 KiB, so it stays in cache) into
    # reused buffers: one np.take per ~16 small batches instead of one per batch, and the working memory stays
    # one chunk, never a shuffled copy of all of X.
    chunk = min(n, batch_size * max(1, GATHER_BYTES // (batch_size * max(1, X[:1].nbytes))))
    x_buf = np.empty((chunk,) + X.shape[1:], dtype=X.dtype)
    y_buf = np.empty((chunk,) + Y.shape[1:], dtype=Y.dtype)
    total = 0.0
    bar = _progress(verbose, n, state)
    step, params, grads, kind = model.optimizer.step, model.flat_params, model.flat_grads, model.targets.kind
    for b, start in enumerate(range(0, n, batch_size)):
        at = start % chunk
        if at == 0:
            rows = order[start:start + chunk]
            # mode="clip": the rows come from a permutation, so always in range; the default mode="raise"
            # gathers into a hidden temporary and copies that into ``out`` (a second pass over the chunk)
            np.take(X, rows, axis=0, out=x_buf[:len(rows)], mode="clip")
            np.take(Y, rows, axis=0, out=y_buf[:len(rows)], mode="clip")
        m = min(batch_size, n - start)
        xb, yb = x_buf[at:at + m], y_buf[at:at + m]
        value, out = model.loss_and_gradients(xb, yb, None if w is None else w[order[start:start + m]])
        step(params, grads)
        total += value * m
        if predictions is not None:
            _predicted_index(out, kind, predictions[start:start + m])
        state.batch, state.batch_loss = b, value
        for c in batch_hooks:
            c.on_batch_end(state)
        if bar is not None:
            bar.update(m)
            bar.set_postfix(loss=f"{total / (start + m):.4f}", refresh=False)
        if state.stop_training and state.stop_reason == "non_finite":
            break
    if bar is not None:
        bar.close()
    record = {"epoch": state.epoch + 1, "loss": total / n}
    if predictions is not None:
        truth = Y[order] if Y.ndim == 1 else Y[order].ravel().astype(np.intp)
        for name in metrics:
            fn, kind = get_metric(name)
            if kind == "labels":
                record[name] = fn(truth, predictions)
    return record


def _predicted_index(out, kind, into):
    if kind == "binary":
        np.greater(out[:, 0], 0.0, out=into, casting="unsafe")
    else:
        out.argmax(axis=1, out=into)
    return into


def evaluate_encoded(model, X, Y, *, sample_weight=None, metrics=(), batch_size=2048) -> dict:
    """Loss (with penalties) and metrics on already-encoded targets, in inference mode and in batches."""
    total, outs = 0.0, []
    for start in range(0, len(X), batch_size):
        xb, yb = X[start:start + batch_size], Y[start:start + batch_size]
        wb = None if sample_weight is None else sample_weight[start:start + batch_size]
        out, _ = model.forward(xb, training=False)
        total += model.loss.value(out, yb, wb) * len(xb)
        outs.append(_predicted_index(out, model.targets.kind, np.empty(len(xb), np.intp))
                    if model.targets.kind in ("multiclass", "binary") else out)
    result = {"loss": total / len(X) + model.penalty()}
    labels = model.targets.kind in ("multiclass", "binary")
    preds = np.concatenate(outs)
    for name in metrics:
        fn, kind = get_metric(name)
        if kind == "labels" and labels:
            truth = Y if Y.ndim == 1 else Y.ravel().astype(np.intp)
            result[name] = fn(truth, preds)
        elif kind == "values" and not model.loss.is_classifier:
            result[name] = fn(Y, preds)
    return result


def evaluate(model, X, y, *, sample_weight=None, metrics=None, batch_size=2048) -> dict:
    """``{"loss": ..., "accuracy": ...}`` on ``X, y`` (labels as given to fit)."""
    model._check_ready()
    X = check_features(X, dtype=model.dtype, n_features=model.n_inputs)
    check_consistent_length(X, y)
    Y = model._targets_or_raise().encode(np.asarray(y), model.dtype)
    w = check_sample_weight(sample_weight, len(X))
    metrics = list(metrics) if metrics is not None else (["accuracy"] if model.loss.is_classifier else ["mae"])
    return evaluate_encoded(model, X, Y, sample_weight=w, metrics=metrics, batch_size=batch_size)


def partial_fit(model, X, y, *, classes=None, sample_weight=None, batch_size=64, **kwargs) -> History:
    """One epoch over ``X, y`` that continues from the current weights and optimizer state."""
    return fit(model, X, y, epochs=1, batch_size=batch_size, sample_weight=sample_weight, classes=classes, **kwargs)


# ----------------------------------------------------------------------------------------------
# helpers of the loop
# ----------------------------------------------------------------------------------------------
def _prepare_targets(model, X, y, classes):
    if model.targets is None:
        kind = infer_target_kind(y, model.loss.link)
        model.targets = TargetEncoder.fit(y, kind, classes=classes)
    elif classes is not None and model.targets.classes_ is not None:
        new = np.setdiff1d(np.asarray(classes), model.targets.classes_)
        if new.size:
            raise ValueError(f"classes {new.tolist()} were not in the classes this model was first fitted with")
    if not model.built:
        model.build(X.shape[1])
    n_out = model.layers[-1].output_shape((None,))[0] if hasattr(model.layers[-1], "units") else None
    want = model.targets.n_outputs if model.targets.kind != "continuous" else np.asarray(y).reshape(len(y), -1).shape[1]
    if n_out is not None and n_out != want:
        classes = model.targets.classes_
        detail = "" if classes is None else f", classes {classes.tolist()[:10]}"
        raise ValueError(f"the output layer has {n_out} units but the targets need {want} "
                         f"({model.targets.kind}{detail})")


def _class_sample_weights(targets, Y, class_weight):
    if class_weight is None:
        return None
    if targets.kind not in ("multiclass", "binary"):
        raise ValueError(f"fit(class_weight=...) weights classes of multiclass or binary targets; these are "
                         f"{targets.kind}. Set per-output weights on the loss instead, e.g. "
                         "SigmoidBinaryCrossEntropy(class_weight=...) or MeanSquaredError(class_weight={column: w})")
    index = Y if Y.ndim == 1 else Y.ravel().astype(np.intp)
    if isinstance(class_weight, dict):  # user labels -> class indices
        lookup = {c: i for i, c in enumerate(targets.classes_.tolist())}
        unknown = [k for k in class_weight if k not in lookup]
        if unknown:
            raise ValueError(f"class_weight has labels {unknown} that are not classes {list(lookup)}")
        class_weight = {lookup[k]: v for k, v in class_weight.items()}
    return class_weight_array(class_weight, index, len(targets.classes_))[index]


def stratified_split(labels, fraction: float, rng: np.random.Generator):
    """(train rows, validation rows): ``fraction`` of each label's rows (rounded) go to validation.

    Labels may be of any type; each label's rows are shuffled from ``rng``, so the split is seeded, and every
    class keeps its share in both parts (to within one row).
    """
    labels = np.asarray(labels)
    val = []
    for value in np.unique(labels):
        rows = np.flatnonzero(labels == value)
        rng.shuffle(rows)
        val.append(rows[: int(round(fraction * len(rows)))])
    val_idx = np.sort(np.concatenate(val)) if val else np.arange(0)
    mask = np.ones(len(labels), dtype=bool)
    mask[val_idx] = False
    return np.flatnonzero(mask), val_idx


def split_indices(targets, Y, fraction, rng):
    """(validation, training) row indices; stratified per class for classifiers, shuffled from ``rng``."""
    n = len(Y)
    if targets.kind in ("multiclass", "binary"):
        val_idx = stratified_split(Y if Y.ndim == 1 else Y.ravel().astype(np.intp), fraction, rng)[1]
    else:
        val_idx = np.sort(rng.permutation(n)[: int(round(fraction * n))])
    if len(val_idx) == 0 or len(val_idx) == n:
        raise ValueError(f"validation_fraction={fraction} leaves {len(val_idx)} of {n} rows for validation")
    mask = np.ones(n, dtype=bool)
    mask[val_idx] = False
    return val_idx, np.flatnonzero(mask)


def _is_terminal() -> bool:
    return hasattr(sys.stderr, "isatty") and sys.stderr.isatty()


def _progress(verbose, n, state):
    if verbose != 1 or not _is_terminal():
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:  # optional extra: barenet[train]
        return None
    return tqdm(total=n, desc=f"epoch {state.epoch + 1}/{state.epochs}", unit="row", leave=False)


def _epoch_line(record, epochs):
    parts = [f"epoch {record['epoch']}/{epochs}"]
    parts += [f"{k}={v:.4f}" for k, v in record.items() if k not in ("epoch", "time", "lr") and isinstance(v, float)]
    parts.append(f"({record['time']:.2f}s)")
    return "  ".join(parts)
