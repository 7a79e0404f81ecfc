"""Weight initializers with Keras's names and formulas.

* ``glorot_uniform`` (Keras's default for kernels): U(-L, L) with
  L = sqrt(6 / (fan_in + fan_out)); for a conv kernel (kh, kw, in, out),
  fan_in = kh*kw*in and fan_out = kh*kw*out.
* ``he_normal``: truncated normal, stddev sqrt(2 / fan_in).
* ``zeros``, ``ones``.

The random numbers come from NumPy, so they differ from TensorFlow's stream;
only the distribution matters (minidl/keras_semantics.md §5.1). ``minidl.initializers.seed(n)``
makes them reproducible.

Example::

    init = minidl.initializers.get("glorot_uniform")
    kernel = init((3, 3, 16, 32), "float32")
"""
import numpy as np

_rng = [np.random.default_rng()]


def seed(value):
    """Make weight initialisation reproducible."""
    _rng[0] = np.random.default_rng(value)


def compute_fans(shape):
    """Keras's fan_in/fan_out for Dense (in, out) and conv (kh, kw, in, out) kernels."""
    if len(shape) < 1:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    if len(shape) == 2:
        return shape[0], shape[1]
    receptive_field = int(np.prod(shape[:-2]))
    return shape[-2] * receptive_field, shape[-1] * receptive_field


def zeros(shape, dtype="float32"):
    return np.zeros(shape, dtype=dtype)


def ones(shape, dtype="float32"):
    return np.ones(shape, dtype=dtype)


def glorot_uniform(shape, dtype="float32"):
    fan_in, fan_out = compute_fans(shape)
    limit = np.sqrt(6.0 / max(1.0, fan_in + fan_out))
    return _rng[0].uniform(-limit, limit, size=shape).astype(dtype)


def glorot_normal(shape, dtype="float32"):
    fan_in, fan_out = compute_fans(shape)
    return _truncated_normal(shape, np.sqrt(2.0 / max(1.0, fan_in + fan_out)), dtype)


def he_normal(shape, dtype="float32"):
    fan_in, _ = compute_fans(shape)
    return _truncated_normal(shape, np.sqrt(2.0 / max(1.0, fan_in)), dtype)


def he_uniform(shape, dtype="float32"):
    fan_in, _ = compute_fans(shape)
    limit = np.sqrt(6.0 / max(1.0, fan_in))
    return _rng[0].uniform(-limit, limit, size=shape).astype(dtype)


def _truncated_normal(shape, stddev, dtype):
    # Keras's truncated normal: redraw values beyond two standard deviations;
    # the 0.8796 factor restores the requested standard deviation.
    scale = stddev / 0.87962566103423978
    values = _rng[0].normal(0.0, scale, size=shape)
    outside = np.abs(values) > 2 * scale
    while outside.any():
        values[outside] = _rng[0].normal(0.0, scale, size=int(outside.sum()))
        outside = np.abs(values) > 2 * scale
    return values.astype(dtype)


_BY_NAME = {
    "zeros": zeros, "ones": ones, "glorot_uniform": glorot_uniform,
    "glorot_normal": glorot_normal, "he_normal": he_normal, "he_uniform": he_uniform,
}


def get(identifier):
    """An initializer from its Keras name, or a callable ``(shape, dtype) -> array``."""
    if callable(identifier):
        return identifier
    if isinstance(identifier, str) and identifier.lower() in _BY_NAME:
        return _BY_NAME[identifier.lower()]
    raise ValueError(
        f"Unknown initializer {identifier!r}; expected one of {sorted(_BY_NAME)} or a callable"
    )


def serialize(identifier):
    if isinstance(identifier, str):
        return identifier
    for name, function in _BY_NAME.items():
        if function is identifier:
            return name
    raise ValueError(f"Cannot serialize custom initializer {identifier!r}")
