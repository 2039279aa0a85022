"""Sequential: a stack of layers with one flat parameter buffer, and ``build_mlp`` for the common case.

Forward is function composition, backward is the chain rule run in reverse::

    h_0 = x,  h_l = f_l(h_{l-1})            dL/dh_{l-1} = dL/dh_l . dh_l/dh_{l-1}

with one row per sample (row vectors, as the arrays are laid out): for a Dense layer dh_l/dh_{l-1} is W, so
the product is dz W^T; for an activation it is diagonal, so the product is dy * f'(z), elementwise.

The network owns (a) its random generator (``seed=``; dropout masks and shuffling draw from it, nothing
touches NumPy's global state), (b) one contiguous parameter vector and one gradient vector of which every
layer's arrays are views, named ``"0.W"``, ``"0.b"``, ``"3.W"``, ... (layer index, then array name).
"""
from __future__ import annotations

import math

import numpy as np

from .activations import Activation, Sigmoid, Softmax, get_activation
from .initializers import DEFAULT_FOR_FAMILY
from .layers import Dense, Dropout, Layer, layer_from_config
from .losses import get_loss, loss_name
from .optimizers import get_optimizer, optimizer_from_config, optimizer_name
from .targets import TargetEncoder
from .validation import check_features

DTYPES = {"float32": np.float32, "float64": np.float64}
#: Default rows per forward pass at inference. Large enough that per-call overhead is small, small enough that a
#: batch's activations (~1.5 MB here) stay inside the allocator's reused heap: at 8192 rows every batch's
#: arrays were fresh pages, and page faults made a 100,000-row predict_proba 2x slower.
PREDICT_BATCH = 2048


def _check_no_double_link(layers, loss) -> None:
    """Refuse a final Softmax/Sigmoid layer in front of a loss that applies it itself.

    The cross-entropy losses take raw outputs (logits) and apply the softmax or sigmoid inside, which is what
    makes their gradient the simple (p - y)/n; a Softmax layer before them would apply it twice and squash
    every probability towards uniform, silently.
    """
    last = next((layer for layer in reversed(layers) if not isinstance(layer, Dropout)), None)
    link = getattr(loss, "link", "identity")
    if isinstance(last, {"softmax": Softmax, "sigmoid": Sigmoid}.get(link, ())):
        raise ValueError(f"the last layer is {type(last).__name__}, but the loss ({type(loss).__name__}) takes "
                         f"raw outputs (logits) and applies the {link} itself: remove the final "
                         f"{type(last).__name__} layer (predict_proba already returns {link} probabilities)")


def _resolve_dtype(dtype):
    name = np.dtype(dtype).name
    if name not in DTYPES:
        raise ValueError(f"dtype must be float32 or float64, got {dtype!r}")
    return DTYPES[name]


class Sequential:
    """Layers applied in order, trained against ``loss`` with ``optimizer``.

    >>> net = Sequential([Dense(64), ReLU(), Dropout(0.2), Dense(5)], loss="softmax_cross_entropy", seed=0)
    >>> history = net.fit(X, y, epochs=10, validation_fraction=0.1)     # doctest: +SKIP
    """

    def __init__(self, layers, *, loss="softmax_cross_entropy", optimizer="adam", seed=None, dtype="float32",
                 n_inputs=None):
        layers = [get_activation(layer) if isinstance(layer, str) else layer for layer in layers]
        for i, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                raise ValueError(f"layer {i} is {layer!r}, not a barenet Layer")
        if not layers:
            raise ValueError("a Sequential network needs at least one layer")
        self.layers = layers
        self.loss = get_loss(loss)
        _check_no_double_link(layers, self.loss)
        self.optimizer = get_optimizer(optimizer)
        self.dtype = _resolve_dtype(dtype)
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.n_inputs = None
        self.flat_params = self.flat_grads = None
        self.targets: TargetEncoder | None = None
        self.history_ = None  # the accumulated History over every fit call
        self.metadata: dict = {}  # free-form, JSON-safe; saved with the model (applications use it)
        if n_inputs is not None:
            self.build(n_inputs)

    # ------------------------------------------------------------------------------------------
    # building
    # ------------------------------------------------------------------------------------------
    @property
    def built(self) -> bool:
        return self.flat_params is not None

    def build(self, n_inputs: int):
        """Allocate the flat buffers for ``n_inputs`` features and initialise every layer from ``self.rng``."""
        shapes, shape = [], (int(n_inputs),)
        for layer in self.layers:
            shapes.append((shape, layer.param_shapes(shape)))
            shape = layer.output_shape(shape)
        total = sum(int(np.prod(s)) for _, ps in shapes for s in ps.values())
        self.flat_params = np.zeros(total, dtype=self.dtype)
        self.flat_grads = np.zeros(total, dtype=self.dtype)
        offset = 0
        for i, (layer, (in_shape, pshapes)) in enumerate(zip(self.layers, shapes)):
            layer.params, layer.grads = {}, {}
            for name, s in pshapes.items():
                size = int(np.prod(s))
                layer.params[name] = self.flat_params[offset:offset + size].reshape(s)
                layer.grads[name] = self.flat_grads[offset:offset + size].reshape(s)
                offset += size
            if pshapes:
                if isinstance(layer, Dense) and layer.init is None:
                    # the default initialiser follows the activation after this layer (He for ReLU, else Glorot)
                    layer.init = DEFAULT_FOR_FAMILY[self._following_family(i)]
                layer.initialize(self.rng, in_shape, self.dtype)
        self.n_inputs = int(n_inputs)
        self.optimizer.state = {}
        return self

    def _following_family(self, index: int) -> str:
        for layer in self.layers[index + 1:]:
            if isinstance(layer, Activation):
                return layer.init_family
            if isinstance(layer, Dense):
                break
        return "glorot"  # an output layer (identity before the loss's softmax/sigmoid)

    def parameters(self) -> dict:
        """``{"0.W": view, "0.b": view, ...}``: views into the flat buffer (writing them changes the model)."""
        return {f"{i}.{k}": v for i, layer in enumerate(self.layers) for k, v in layer.params.items()}

    def gradients(self) -> dict:
        return {f"{i}.{k}": v for i, layer in enumerate(self.layers) for k, v in layer.grads.items()}

    def get_weights(self) -> dict:
        """A copy of every parameter array, by name."""
        return {k: v.copy() for k, v in self.parameters().items()}

    def set_weights(self, weights: dict) -> None:
        """Copy arrays into the parameters in place; names and shapes must match exactly."""
        params = self.parameters()
        if set(weights) != set(params):
            raise ValueError(f"weights have names {sorted(weights)}, the model has {sorted(params)}")
        for k, v in weights.items():
            if np.shape(v) != params[k].shape:
                raise ValueError(f"weight {k!r} has shape {np.shape(v)}, expected {params[k].shape}")
            params[k][...] = v

    @property
    def n_params(self) -> int:
        return 0 if self.flat_params is None else int(self.flat_params.size)

    def __setstate__(self, state):
        """pickle/deepcopy restore each array on its own, so the layers' views would come back as copies
        detached from the flat buffers (training would then update nothing): re-point them at the buffers."""
        self.__dict__.update(state)
        offset = 0
        for layer in self.layers if self.flat_params is not None else ():
            for name, value in layer.params.items():
                size, shape = int(value.size), value.shape
                layer.params[name] = self.flat_params[offset:offset + size].reshape(shape)
                layer.grads[name] = self.flat_grads[offset:offset + size].reshape(shape)
                offset += size

    # ------------------------------------------------------------------------------------------
    # forward and backward
    # ------------------------------------------------------------------------------------------
    def forward(self, X, *, training=False, rng=None, stop=None):
        """Run layers ``[0, stop)``; return the output and the per-layer caches that ``backward`` needs."""
        caches = []
        h = X
        rng = self.rng if rng is None else rng
        for layer in self.layers if stop is None else self.layers[:stop]:
            h, cache = layer.forward(h, training=training, rng=rng)
            caches.append(cache)
        return h, caches

    def backward(self, dout, caches, *, input_grad=False):
        """Chain rule from the output back to the input; fills every layer's grads (the flat buffer).

        Returns dL/dX when ``input_grad=True``; otherwise None, and the first layer skips that product
        (training never needs it).
        """
        d = dout
        for i in range(len(self.layers) - 1, -1, -1):
            d = self.layers[i].backward(d, caches[i], need_dx=i > 0 or input_grad)
        return d

    def penalty(self) -> float:
        """Sum of the layers' L1/L2 penalties (part of the reported loss)."""
        total = 0.0
        for layer in self.layers:  # a plain loop: this runs every training step
            total += layer.penalty()
        return total

    def loss_and_gradients(self, X, y_encoded, sample_weight=None, *, training=True):
        """One forward + loss + backward: returns (loss incl. penalties, raw outputs). Used by fit and gradcheck."""
        out, caches = self.forward(X, training=training)
        value, dout = self.loss.value_and_grad(out, y_encoded, sample_weight)
        self.backward(dout, caches)
        return value + self.penalty(), out

    # ------------------------------------------------------------------------------------------
    # inference, in bounded-memory batches
    # ------------------------------------------------------------------------------------------
    def _check_ready(self):
        if self.flat_params is None:  # not built (the property costs a call on every prediction)
            raise ValueError("this model has not been fitted or built yet; call fit(...) or build(n_inputs)")

    def _batches(self, X, batch_size):
        X = check_features(X, n_features=self.n_inputs, check_finite=False)
        for start in range(0, len(X), batch_size):
            chunk = check_features(X[start:start + batch_size], dtype=self.dtype, row_offset=start)
            yield chunk

    def _map_batches(self, X, fn, batch_size):
        """``fn`` on ``batch_size`` rows at a time, written into one preallocated result: the memory is the
        result plus one batch's activations, however many rows there are."""
        self._check_ready()
        if not (isinstance(X, np.ndarray) and X.ndim == 2 and len(X) <= batch_size):
            X = check_features(X, n_features=self.n_inputs, check_finite=False)
        n = len(X)
        if n <= batch_size:  # a single batch: its result as it is (a copy if layers passed the input through)
            chunk = check_features(X, dtype=self.dtype, n_features=self.n_inputs)
            out = fn(chunk)
            return out.copy() if np.may_share_memory(out, chunk) else out
        result = None
        for start, chunk in zip(range(0, n, batch_size), self._batches(X, batch_size)):
            out = fn(chunk)
            if result is None:
                result = np.empty((n,) + out.shape[1:], dtype=out.dtype)
            result[start:start + len(out)] = out
        return result

    def decision_function(self, X, *, batch_size=PREDICT_BATCH) -> np.ndarray:
        """Raw outputs (logits for classifiers), computed ``batch_size`` rows at a time."""
        return self._map_batches(X, lambda c: self.forward(c)[0], batch_size)

    def predict_proba(self, X, *, batch_size=PREDICT_BATCH, temperature: float = 1.0) -> np.ndarray:
        """Class probabilities (n, n_classes). ``temperature`` divides the logits first (calibration)."""
        self._require_classifier()
        if temperature != 1.0 and not (math.isfinite(temperature) and temperature > 0):
            raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")
        link = self.loss.output_to_prediction

        def proba_of(chunk):
            z = self.forward(chunk)[0]
            return link(z if temperature == 1.0 else z / temperature)

        proba = self._map_batches(X, proba_of, batch_size)
        if self.targets is not None and self.targets.kind == "binary":
            proba = np.hstack([1.0 - proba, proba])
        return proba

    def predict(self, X, *, batch_size=PREDICT_BATCH):
        """Class labels (in the type they were given to fit) or regression values."""
        self._check_ready()
        if self.loss.is_classifier:
            return self._targets_or_raise().decode(self.predict_proba(X, batch_size=batch_size))
        values = self.decision_function(X, batch_size=batch_size)
        return values if self.targets is None else self.targets.decode(values)

    def hidden_representation(self, X, *, layer: int | None = None, batch_size=PREDICT_BATCH) -> np.ndarray:
        """Activations fed into layer ``layer`` (default: the output layer), e.g. for novelty detection."""
        stop = len(self.layers) - 1 if layer is None else layer
        return self._map_batches(X, lambda c: self.forward(c, stop=stop)[0], batch_size)

    def sample_predict_proba(self, X, n_samples: int, *, seed=None, batch_size=PREDICT_BATCH) -> np.ndarray:
        """Monte-Carlo dropout: ``n_samples`` stochastic forward passes -> array (n_samples, n, n_classes).

        Uses its own generator (``seed``), so it never disturbs the model's training randomness.
        """
        self._require_classifier()
        rng = np.random.default_rng(seed)
        link = self.loss.output_to_prediction

        def one(chunk):
            return np.stack([link(self.forward(chunk, training=True, rng=rng)[0]) for _ in range(n_samples)], axis=0)

        samples = np.concatenate([one(c) for c in self._batches(X, batch_size)], axis=1)
        if self.targets is not None and self.targets.kind == "binary":  # (P(class 0), P(class 1)), as predict_proba
            samples = np.concatenate([1.0 - samples, samples], axis=2)
        return samples

    def _require_classifier(self):
        self._check_ready()
        if not self.loss.is_classifier:
            raise ValueError("predict_proba needs a classification loss; this model is a regressor")

    def _targets_or_raise(self) -> TargetEncoder:
        if self.targets is None:
            raise ValueError("this model has no classes_ yet; fit it on labelled data first")
        return self.targets

    @property
    def classes_(self):
        return None if self.targets is None else self.targets.classes_

    # ------------------------------------------------------------------------------------------
    # training (the loop itself lives in training.py)
    # ------------------------------------------------------------------------------------------
    def fit(self, X, y, **kwargs):
        """Mini-batch training; see :func:`barenet.training.fit` for every argument. Returns a History."""
        from .training import fit

        return fit(self, X, y, **kwargs)

    def partial_fit(self, X, y, *, classes=None, **kwargs):
        """One more pass (one epoch) over ``X, y``, keeping weights and optimizer state."""
        from .training import partial_fit

        return partial_fit(self, X, y, classes=classes, **kwargs)

    def evaluate(self, X, y, **kwargs) -> dict:
        """Loss and metrics on ``X, y`` in inference mode, in batches."""
        from .training import evaluate

        return evaluate(self, X, y, **kwargs)

    def save(self, path, *, metadata=None, arrays=None) -> None:
        """Write the whole model to one file (see :mod:`barenet.serialization`); atomic.

        ``arrays``: extra named arrays an application stores beside the weights (``extra_arrays`` on load)."""
        from .serialization import save

        save(self, path, metadata=metadata, arrays=arrays)

    # ------------------------------------------------------------------------------------------
    # configuration, copies, summary
    # ------------------------------------------------------------------------------------------
    def get_config(self) -> dict:
        return {
            "layers": [{"class": type(layer).__name__, "config": layer.get_config()} for layer in self.layers],
            "loss": {"name": loss_name(self.loss), "config": self.loss.get_config()},
            "optimizer": {"name": optimizer_name(self.optimizer), "config": self.optimizer.get_config()},
            "dtype": np.dtype(self.dtype).name,
            "seed": self.seed,
            "n_inputs": self.n_inputs,
            "targets": None if self.targets is None else self.targets.get_config(),
        }

    @classmethod
    def from_config(cls, config: dict) -> "Sequential":
        """Rebuild the architecture (fresh weights) from ``get_config()`` output."""
        layers = [layer_from_config(entry) for entry in config["layers"]]
        loss = get_loss(config["loss"]["name"], **_loss_kwargs(config["loss"]["config"]))
        loss.set_balanced_weights(config["loss"]["config"].get("balanced_weights"))
        opt = optimizer_from_config(config["optimizer"]["name"], config["optimizer"]["config"])
        net = cls(layers, loss=loss, optimizer=opt, seed=config.get("seed"), dtype=config["dtype"])
        if config.get("n_inputs") is not None:
            net.build(config["n_inputs"])
        if config.get("targets") is not None:
            net.targets = TargetEncoder.from_config(config["targets"])
        return net

    def clone(self, *, dtype=None) -> "Sequential":
        """An independent copy with the same weights, targets and generator state (optionally re-typed)."""
        config = self.get_config()
        if dtype is not None:
            config["dtype"] = np.dtype(_resolve_dtype(dtype)).name
        twin = Sequential.from_config(config)
        if self.built:
            twin.flat_params[...] = self.flat_params
        twin.rng.bit_generator.state = self.rng.bit_generator.state
        twin.metadata = dict(self.metadata)
        return twin

    def summary(self, print_fn=print) -> str:
        """A table of layers, output shapes and parameter counts (also returned as a string)."""
        rows = [("#", "layer", "output shape", "params")]
        shape = (self.n_inputs,) if self.built else ("?",)
        for i, layer in enumerate(self.layers):
            if self.built:
                shape = layer.output_shape(shape)
            n = sum(int(v.size) for v in layer.params.values())
            rows.append((str(i), repr(layer), str(("batch",) + tuple(shape)), f"{n:,}" if self.built else "?"))
        widths = [max(len(r[c]) for r in rows) for c in range(4)]
        lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in rows]
        rule = "-" * max(len(line) for line in lines)
        lines.insert(1, rule)
        lines.append(rule)
        lines.append(f"total parameters: {self.n_params:,}  dtype: {np.dtype(self.dtype).name}  "
                     f"loss: {loss_name(self.loss)}  optimizer: {type(self.optimizer).__name__}")
        text = "\n".join(lines)
        if print_fn is not None:
            print_fn(text)
        return text

    def __repr__(self):
        return f"Sequential({len(self.layers)} layers, {self.n_params:,} parameters)"


def _loss_kwargs(config: dict) -> dict:
    cw = config.get("class_weight")
    if isinstance(cw, dict):
        cw = {int(k): v for k, v in cw.items()}
    return {"class_weight": cw}


def build_mlp(n_inputs=None, hidden=(64, 32), n_outputs=2, *, activation="relu", dropout=0.0, init=None,
              l2=0.0, loss="softmax_cross_entropy", optimizer="adam", seed=None, dtype="float32") -> Sequential:
    """A multi-layer perceptron: [Dense -> activation -> Dropout] per hidden width, then Dense(n_outputs).

    ``activation`` and ``dropout`` may be one value or one per hidden layer. ``n_inputs=None`` infers the
    input width at the first fit. The output layer emits raw scores (logits); the loss applies the link.
    ``l2`` applies to every Dense layer's weights, the output layer's included. ``init`` applies to the hidden
    layers only: the output layer is always Glorot-initialised (it feeds a softmax/sigmoid/identity, not a
    ReLU). Build a ``Sequential`` directly for full control.
    """
    hidden = tuple(hidden)
    acts = list(activation) if isinstance(activation, (list, tuple)) else [activation] * len(hidden)
    drops = list(dropout) if isinstance(dropout, (list, tuple)) else [dropout] * len(hidden)
    if len(acts) != len(hidden) or len(drops) != len(hidden):
        raise ValueError(f"got {len(acts)} activations and {len(drops)} dropout rates for {len(hidden)} hidden layers")
    layers: list[Layer] = []
    for width, act, rate in zip(hidden, acts, drops):
        layers += [Dense(width, init=init, l2=l2), get_activation(act)]
        if rate:
            layers.append(Dropout(rate))
    layers.append(Dense(n_outputs, l2=l2))
    return Sequential(layers, loss=loss, optimizer=optimizer, seed=seed, dtype=dtype, n_inputs=n_inputs)
