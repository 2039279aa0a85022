"""Weight initialisers: ``init(rng, shape, dtype) -> array``.

``shape`` is ``(fan_in, fan_out)`` for a Dense weight matrix. The variance each one targets:

=====================  ==========================  =========================================
name                   variance of W               why
=====================  ==========================  =========================================
lecun_normal/uniform   1 / fan_in                  keeps the forward variance for linear/SELU
glorot_normal/uniform  2 / (fan_in + fan_out)      balances forward and backward (tanh, sigmoid)
he_normal/uniform      2 / fan_in                  ReLU zeroes half the inputs, so double it
=====================  ==========================  =========================================

Uniform variants draw from U(-a, a) with a = sqrt(3 * variance). Randomness always comes from the
``numpy.random.Generator`` passed in; there is no global random state.
"""
from __future__ import annotations

import math
import warnings

import numpy as np


def _fans(shape):
    if len(shape) < 2:
        return shape[0], shape[0]
    return shape[0], shape[1]


def zeros(rng, shape, dtype=np.float32):
    """All zeros. Fine for biases; for weights every unit then computes and learns the same thing."""
    return constant(rng, shape, dtype, value=0.0)


def constant(rng, shape, dtype=np.float32, *, value=0.0):
    """Every entry equal to ``value``."""
    if len(shape) >= 2:
        warnings.warn(
            "constant/zero weight initialisation: every unit in the layer gets the same gradient and "
            "will learn the same thing (the symmetry problem); use a random initialiser such as 'he_normal'",
            UserWarning,
            stacklevel=3,
        )
    return np.full(shape, value, dtype=dtype)


def normal(rng, shape, dtype=np.float32, *, scale=0.01):
    """N(0, scale^2)."""
    return (rng.standard_normal(shape) * scale).astype(dtype)


def uniform(rng, shape, dtype=np.float32, *, scale=0.05):
    """U(-scale, scale)."""
    return rng.uniform(-scale, scale, size=shape).astype(dtype)


def _scaled_normal(rng, shape, dtype, variance):
    return normal(rng, shape, dtype, scale=math.sqrt(variance))


def _scaled_uniform(rng, shape, dtype, variance):
    return uniform(rng, shape, dtype, scale=math.sqrt(3.0 * variance))


def lecun_normal(rng, shape, dtype=np.float32):
    fan_in, _ = _fans(shape)
    return _scaled_normal(rng, shape, dtype, 1.0 / fan_in)


def lecun_uniform(rng, shape, dtype=np.float32):
    fan_in, _ = _fans(shape)
    return _scaled_uniform(rng, shape, dtype, 1.0 / fan_in)


def glorot_normal(rng, shape, dtype=np.float32):
    fan_in, fan_out = _fans(shape)
    return _scaled_normal(rng, shape, dtype, 2.0 / (fan_in + fan_out))


def glorot_uniform(rng, shape, dtype=np.float32):
    fan_in, fan_out = _fans(shape)
    return _scaled_uniform(rng, shape, dtype, 2.0 / (fan_in + fan_out))


def he_normal(rng, shape, dtype=np.float32):
    fan_in, _ = _fans(shape)
    return _scaled_normal(rng, shape, dtype, 2.0 / fan_in)


def he_uniform(rng, shape, dtype=np.float32):
    fan_in, _ = _fans(shape)
    return _scaled_uniform(rng, shape, dtype, 2.0 / fan_in)


def orthogonal(rng, shape, dtype=np.float32, *, gain=1.0):
    """A (semi-)orthogonal matrix from the QR decomposition of a Gaussian one (Saxe et al., 2014)."""
    rows, cols = shape[0], int(np.prod(shape[1:]))
    a = rng.standard_normal((max(rows, cols), min(rows, cols)))
    q, r = np.linalg.qr(a)
    q *= np.sign(np.diag(r))  # make the decomposition unique, so the draw is uniform over orthogonal matrices
    if rows < cols:
        q = q.T
    return (gain * q[:rows, :cols]).reshape(shape).astype(dtype)


INITIALIZERS = {
    "zeros": zeros,
    "constant": constant,
    "normal": normal,
    "uniform": uniform,
    "lecun_normal": lecun_normal,
    "lecun_uniform": lecun_uniform,
    "glorot_normal": glorot_normal,
    "glorot_uniform": glorot_uniform,
    "xavier_normal": glorot_normal,
    "xavier_uniform": glorot_uniform,
    "he_normal": he_normal,
    "he_uniform": he_uniform,
    "kaiming_normal": he_normal,
    "kaiming_uniform": he_uniform,
    "orthogonal": orthogonal,
}

#: The default per activation family (see ``Activation.init_family``).
DEFAULT_FOR_FAMILY = {"relu": "he_normal", "glorot": "glorot_uniform"}


def get_initializer(spec):
    """Resolve a name (``"he_normal"``), a ``(name, kwargs)`` pair or a callable to ``init(rng, shape, dtype)``."""
    if callable(spec):
        return spec
    name, kwargs = (spec, {}) if isinstance(spec, str) else (spec[0], dict(spec[1]))
    key = str(name).lower()
    if key not in INITIALIZERS:
        raise ValueError(f"unknown initialiser {name!r}; expected one of {sorted(INITIALIZERS)}")
    fn = INITIALIZERS[key]
    if not kwargs:
        return fn
    return lambda rng, shape, dtype=np.float32: fn(rng, shape, dtype, **kwargs)
