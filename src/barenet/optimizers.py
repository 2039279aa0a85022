"""Optimisers that update one flat parameter vector in place.

A network keeps all its parameters in one contiguous buffer (each layer's ``W`` and ``b`` are views of
it) and all gradients in another. So an optimiser step is a handful of whole-buffer NumPy operations
instead of several per array, which is where a small network's time goes (per-call overhead, not FLOPs).
A buffer too large for the cache is stepped in cache-sized blocks instead (``STEP_BLOCK``): the same
operations, block by block, with the same result.

Update rules (g = gradient, t = step counted from 1, lr = learning rate):

* SGD:      v = mu v - lr g;  theta += v                       (Nesterov: theta += mu v - lr g)
* RMSprop:  s = rho s + (1 - rho) g^2;  theta -= lr g / (sqrt(s) + eps)
* Adam:     m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;
            theta -= lr m_hat / (sqrt(v_hat) + eps),  m_hat = m / (1 - b1^t),  v_hat = v / (1 - b2^t)
            (computed from the moving sums m / (1 - b1) and v / (1 - b2): see ``Adam``)
* AdamW:    Adam, then the decoupled decay theta -= lr * weight_decay * theta

Two traps measured on these machines are avoided here: scalars are Python floats (a NumPy float64 scalar
in a float32 in-place operation runs a slow casting loop), and moment entries that decay towards zero are
flushed before they become subnormal floats (arithmetic on subnormals is ~2x slower).
"""
from __future__ import annotations

import math

import numpy as np

from .schedules import schedule_from_config, schedule_to_config

#: Moment entries smaller than this are set to exactly 0 every ``FLUSH_EVERY`` steps. An entry this small
#: moves a weight by < 1e-20 per step, so the update is unchanged in any printed digit, yet without the
#: flush it would decay (x0.9 per step) into float32's subnormal range (< 1.2e-38) within ~200 steps.
FLUSH_BELOW = 1e-30
FLUSH_EVERY = 100

#: A step over a long buffer runs one block of this many entries at a time. An Adam step is ~10 passes over
#: the parameters, gradients, two moments and a scratch array; over a whole 670k-parameter buffer (2.7 MB
#: each) every pass streams from the next cache level, while a block of 32 Ki float32 (128 KiB per array,
#: 640 KiB for all five) stays in one core's L2 cache for all ten passes: 1,578 -> 1,054 us per step on the
#: MNIST network (``python -m benchmarks.adam_passes``), whole epochs 1.09x (``benchmarks.step_block``).
STEP_BLOCK = 32768
#: A buffer of at most this many blocks is stepped whole: up to ~1 MiB per float32 array the passes are still
#: served from cache, and the ~10 extra NumPy calls per block buy nothing (33k-200k entries: 0-20 % slower in
#: blocks; the crossover measured at ~260k). Small and mid-sized networks therefore take one call, as before.
MIN_BLOCKS = 8


class Optimizer:
    """Base: learning rate (float or schedule), optional global gradient-norm clipping, state dicts."""

    def __init__(self, learning_rate=1e-3, *, clip_norm=None):
        if isinstance(learning_rate, (int, float)) and not learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {learning_rate!r}")
        self.learning_rate = learning_rate
        self.clip_norm = None if clip_norm is None else float(clip_norm)
        self.lr_scale = 1.0  # multiplied in by ReduceLROnPlateau; saved with the state
        self.step_count = 0
        self.state: dict[str, np.ndarray] = {}

    # -- learning rate ------------------------------------------------------------------------
    @property
    def current_lr(self) -> float:
        lr = self.learning_rate
        base = lr(self.step_count) if callable(lr) else lr
        return float(base) * self.lr_scale

    # -- the update ---------------------------------------------------------------------------
    def step(self, params: np.ndarray, grads: np.ndarray) -> None:
        """Update ``params`` in place from ``grads`` (both flat, same dtype)."""
        if not self.state:
            self._init_state(params)
        if self.clip_norm is not None:
            norm = math.sqrt(float(np.dot(grads, grads)))
            if norm > self.clip_norm:
                grads *= self.clip_norm / norm  # global norm clipping: one direction, shorter step
        lr = self.current_lr  # schedule(step) for steps counted from 0, read before the count moves on
        self.step_count += 1
        block, state = self.step_block, self.state
        if params.size <= self.min_blocks * block:
            self._update(params, grads, state, lr)
        else:  # cache-sized blocks (see STEP_BLOCK): the same elementwise arithmetic, block by block
            for name, buf in state.items():  # slices of a mis-sized buffer would not fail: refuse it here
                if buf.shape != params.shape:
                    raise ValueError(f"{type(self).__name__} state {name!r} has shape {buf.shape}, "
                                     f"the parameters {params.shape}")
            for start in range(0, params.size, block):
                part = slice(start, start + block)
                self._update(params[part], grads[part], {k: v[part] for k, v in state.items()}, lr)
        if self.step_count % FLUSH_EVERY == 0:
            for buf in self.state.values():
                buf[np.abs(buf) < FLUSH_BELOW] = 0.0

    def _init_state(self, params):
        self.state = {name: np.zeros_like(params) for name in self._state_names}

    _state_names: tuple = ()
    # how a step is cut into blocks (how, not what, it computes: never saved; see STEP_BLOCK and MIN_BLOCKS)
    step_block: int = STEP_BLOCK
    min_blocks: int = MIN_BLOCKS

    def _update(self, params, grads, state, lr):  # pragma: no cover - abstract
        """One step on ``params`` (a block of the flat buffer) with ``state``: the same block of each buffer."""
        raise NotImplementedError

    # -- persistence --------------------------------------------------------------------------
    def get_config(self) -> dict:
        cfg = {k: v for k, v in vars(self).items()
               if k not in ("state", "step_count", "lr_scale", "learning_rate", "step_block", "min_blocks")}
        cfg = {k: v for k, v in cfg.items() if not k.startswith("_")}
        cfg["learning_rate"] = schedule_to_config(self.learning_rate)
        return cfg

    def state_dict(self) -> dict:
        """Everything needed to resume exactly: step count, lr scale and the moment buffers (copies)."""
        return {"step_count": self.step_count, "lr_scale": self.lr_scale,
                "buffers": {k: v.copy() for k, v in self.state.items()}}

    def load_state_dict(self, state: dict) -> None:
        self.step_count = int(state["step_count"])
        self.lr_scale = float(state.get("lr_scale", 1.0))
        buffers = state.get("buffers", {})
        if buffers and set(buffers) != set(self._state_names):
            raise ValueError(f"{type(self).__name__} state needs buffers {self._state_names}, got {sorted(buffers)}")
        self.state = {k: np.array(v, copy=True) for k, v in buffers.items()}

    def __repr__(self):
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.get_config().items())})"


class SGD(Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum."""

    def __init__(self, learning_rate=0.01, *, momentum=0.0, nesterov=False, clip_norm=None):
        super().__init__(learning_rate, clip_norm=clip_norm)
        self.momentum, self.nesterov = float(momentum), bool(nesterov)
        if nesterov and not momentum:
            raise ValueError("Nesterov momentum needs momentum > 0")

    @property
    def _state_names(self):
        return ("velocity",) if self.momentum else ()

    def _update(self, params, grads, state, lr):
        if not self.momentum:
            params -= lr * grads
            return
        v = state["velocity"]
        v *= self.momentum
        v -= lr * grads  # v = mu v - lr g
        if self.nesterov:
            params += self.momentum * v  # theta += mu v - lr g  (look-ahead)
            params -= lr * grads
        else:
            params += v


class RMSprop(Optimizer):
    """Divide the step by a running root-mean-square of recent gradients."""

    _state_names = ("square_avg",)

    def __init__(self, learning_rate=1e-3, *, rho=0.9, eps=1e-7, clip_norm=None):
        super().__init__(learning_rate, clip_norm=clip_norm)
        self.rho, self.eps = float(rho), float(eps)

    def _update(self, params, grads, state, lr):
        s = state["square_avg"]
        s *= self.rho
        s += (1.0 - self.rho) * (grads * grads)
        denom = np.sqrt(s)
        denom += self.eps
        np.divide(grads, denom, out=denom)
        denom *= lr
        params -= denom


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015), with its moving averages kept as moving *sums* and the constants folded in.

    The textbook step, with m and v the moving averages of g and g^2::

        m = b1 m + (1 - b1) g        v = b2 v + (1 - b2) g^2
        theta -= lr m_hat / (sqrt(v_hat) + eps),   m_hat = m / (1 - b1^t),  v_hat = v / (1 - b2^t)

    barenet keeps m_sum = m / (1 - b1) and v_sum = v / (1 - b2) instead, so the updates lose their
    multiplications by (1 - b): ``m_sum = b1 m_sum + g`` and ``v_sum = b2 v_sum + g^2``. Putting m and v back
    into the step and collecting the scalars gives the same step as above::

        theta -= step_t m_sum / (sqrt(v_sum) + eps_t),   c_t = sqrt((1 - b2) / (1 - b2^t)),
        step_t = lr (1 - b1) / ((1 - b1^t) c_t),          eps_t = eps / c_t

    That is 10 passes over the buffer per step instead of 12 (two of the textbook's are the (1 - b) products),
    which a small network feels: its step is a few dozen short NumPy calls. The state buffers are named
    ``m_sum`` and ``v_sum`` to say what they hold; a state saved with textbook ``m``/``v`` loads too.
    """

    _state_names = ("m_sum", "v_sum")

    def __init__(self, learning_rate=1e-3, *, beta1=0.9, beta2=0.999, eps=1e-8, clip_norm=None):
        super().__init__(learning_rate, clip_norm=clip_norm)
        self.beta1, self.beta2, self.eps = float(beta1), float(beta2), float(eps)

    def _update(self, params, grads, state, lr):
        m_sum, v_sum = state["m_sum"], state["v_sum"]
        b1, b2, t = self.beta1, self.beta2, self.step_count
        m_sum *= b1
        m_sum += grads  # m_sum = b1 m_sum + g        (m = (1 - b1) m_sum)
        g2 = np.multiply(grads, grads)
        v_sum *= b2
        v_sum += g2  # v_sum = b2 v_sum + g^2          (v = (1 - b2) v_sum)
        c = math.sqrt((1.0 - b2) / (1.0 - b2**t))  # sqrt(v_hat) = c sqrt(v_sum)
        denom = np.sqrt(v_sum, out=g2)
        denom += self.eps / c
        np.divide(m_sum, denom, out=denom)
        denom *= lr * (1.0 - b1) / ((1.0 - b1**t) * c)  # m_hat / (sqrt(v_hat) + eps), scaled by lr
        params -= denom
        self._decay(params, lr)

    def load_state_dict(self, state: dict) -> None:
        buffers = state.get("buffers", {})
        if set(buffers) == {"m", "v"}:  # textbook moving averages, as model files before format version 2 hold
            m, v = np.asarray(buffers["m"]), np.asarray(buffers["v"])
            state = {**state, "buffers": {"m_sum": m / (1.0 - self.beta1), "v_sum": v / (1.0 - self.beta2)}}
        super().load_state_dict(state)

    def _decay(self, params, lr):
        pass


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter, 2019): theta -= lr * wd * theta each step."""

    def __init__(self, learning_rate=1e-3, *, weight_decay=0.01, beta1=0.9, beta2=0.999, eps=1e-8, clip_norm=None):
        super().__init__(learning_rate, beta1=beta1, beta2=beta2, eps=eps, clip_norm=clip_norm)
        self.weight_decay = float(weight_decay)

    def _decay(self, params, lr):
        if self.weight_decay:
            params *= 1.0 - lr * self.weight_decay


OPTIMIZERS = {"sgd": SGD, "rmsprop": RMSprop, "adam": Adam, "adamw": AdamW}


def get_optimizer(spec, **kwargs) -> Optimizer:
    """Resolve ``"adam"``, ``"sgd"``, ... (with keyword arguments) or pass an Optimizer through."""
    if isinstance(spec, Optimizer):
        return spec
    key = str(spec).lower()
    if key not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {spec!r}; expected one of {sorted(OPTIMIZERS)}")
    return OPTIMIZERS[key](**kwargs)


def optimizer_from_config(name: str, config: dict) -> Optimizer:
    config = dict(config)
    config["learning_rate"] = schedule_from_config(config["learning_rate"])
    return OPTIMIZERS[name](**config)


def optimizer_name(opt: Optimizer) -> str:
    for name, cls in OPTIMIZERS.items():
        if type(opt) is cls:
            return name
    raise ValueError(f"cannot save custom optimizer type {type(opt).__name__}")
