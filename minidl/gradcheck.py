"""Gradient checking: does a layer's ``backward`` agree with its ``forward``?

The check compares the analytic gradient from ``backward`` with a numerical
one from central differences, for every input and every trainable parameter.
It computes a scalar that depends on *all* outputs with random weights,

    f(x, theta) = sum( G * forward(x, theta) ),   G ~ N(0, 1), fixed

so that dL/doutput = G. A random G matters: with ``f = sum(forward(x))``
(G = 1) batch normalization's input gradient is exactly zero and a broken
backward passes. Each entry is checked as

    numeric_i = (f(x + h e_i) - f(x - h e_i)) / (2 h)

and the error of a whole array is the relative norm
``|analytic - numeric| / max(|analytic| + |numeric|, tiny)``. Everything runs
in float64: the layer's parameters are converted for the check and restored
afterwards. Large arrays are checked on a random subset of entries plus a few
random directions.

Reading the numbers: in float64 with h = 1e-6, a central difference is
accurate to about h^2 (truncation) + 1e-16 / h (rounding), so a correct
backward typically shows 1e-8 to 1e-11; a missing term or a wrong index shows
1e-2 to 1. minidl's tests require < 1e-6. Run the check in float32 and you
learn nothing: rounding alone gives ~1e-3. A kink (ReLU at 0, the maximum of
a pooling window changing) inside [x - h, x + h] can spoil one entry; random
float64 inputs make that rare. On the engine (not ``MINIDL_KERNELS=reference``),
wide convolutions run as Winograd's (``minidl/kernels/fast/winograd.py``), whose
float64 rounding is ~1e-14 rather than ~1e-16: over h = 1e-6 that shows as up to a
few 1e-6 (Conv2D(64, (5, 5)) on 48 channels: 3.7e-6 for the input, 2.4e-8 with
im2col; Conv2D(64, (1, 7)) on 64 channels: 1.3e-6). Check such layers with a larger
step, which divides the rounding by more and keeps h^2 small (``step=1e-4``: 1.1e-8
for that 1x7 layer), or with ``MINIDL_WINOGRAD=0``. ``examples/gradcheck_tour.py`` runs the check
on every layer and shows it catching a broken batch-norm backward.

Example::

    report = check_gradients(Conv2D(4, (1, 7), padding="same"), np.random.rand(2, 6, 9, 3))
    print(report)          # one row per input and parameter
    assert report.max_error < 1e-6
"""
import numpy as np

from minidl.layers.base import Layer


class GradcheckReport:
    """Relative error per checked array; ``max_error``, ``passed(tol)``, readable ``str``."""

    def __init__(self, name):
        self.name = name
        self.rows = []      # (what, shape, checked entries, relative error)

    def add(self, what, shape, checked, error):
        self.rows.append((what, tuple(shape), checked, float(error)))

    @property
    def max_error(self):
        return max((row[3] for row in self.rows), default=0.0)

    def passed(self, tolerance=1e-6):
        return self.max_error < tolerance

    def __str__(self):
        lines = [f"gradient check of {self.name}", f"{'array':<40}{'shape':<22}{'checked':>8}  rel. error"]
        for what, shape, checked, error in self.rows:
            lines.append(f"{what:<40}{str(shape):<22}{checked:>8}  {error:.2e}")
        return "\n".join(lines)


def relative_error(analytic, numeric, zero_tolerance=1e-8):
    """|a - n| / (|a| + |n|); 0 when both are below ``zero_tolerance`` (both say "zero").

    A gradient that is truly zero -- a bias right before batch normalization, whose
    mean subtraction cancels it -- has no meaningful relative error: the numeric
    value is rounding noise.
    """
    analytic, numeric = np.ravel(analytic), np.ravel(numeric)
    norm_a, norm_n = np.linalg.norm(analytic), np.linalg.norm(numeric)
    if norm_a < zero_tolerance and norm_n < zero_tolerance:
        return 0.0
    return float(np.linalg.norm(analytic - numeric) / (norm_a + norm_n))


def _as_float64(inputs):
    if isinstance(inputs, (list, tuple)):
        return [np.array(x, dtype=np.float64) for x in inputs]
    return np.array(inputs, dtype=np.float64)


def _stochastic_layers(target):
    """Layers whose forward draws random numbers (Dropout): replay the same draw each time.
    A model's layers at any depth (``Model.walk_layers``)."""
    layers = target.walk_layers(recursive=True) if hasattr(target, "walk_layers") else [target]
    return [layer for layer in layers if hasattr(layer, "rng")]


def check_gradients(target, inputs, training=True, step=1e-6, max_entries=60, directions=3, seed=0,
                    check_inputs=True):
    """Check ``target.backward`` (a layer or a model) against finite differences.

    Parameters
    ----------
    target : Layer or Model
    inputs : array or list of arrays (converted to float64)
    training : run forward in training mode (batch statistics, dropout with a fixed mask)
    step : the finite-difference step h
    max_entries : entries checked per array (all when the array is smaller)
    directions : extra random directions per array (checks the whole gradient at once)
    """
    if not isinstance(target, Layer):
        raise TypeError(f"check_gradients expects a minidl layer or model, got {type(target).__name__}")
    rng = np.random.default_rng(seed)
    inputs = _as_float64(inputs)
    multi = isinstance(inputs, list)
    target.forward(inputs, training=training) if target.built else target(inputs, training=training)
    original = [(p, p.value) for p in target.weights]
    random_layers = _stochastic_layers(target)
    rng_states = [layer.rng.bit_generator.state for layer in random_layers]
    for parameter, value in original:
        parameter.value = value.astype(np.float64)
    try:
        def objective(x):
            for layer, state in zip(random_layers, rng_states):
                layer.rng.bit_generator.state = state
            return target.forward(x, training=training)

        output = objective(inputs)
        outputs = output if isinstance(output, list) else [output]
        upstream = [rng.standard_normal(o.shape) for o in outputs]

        def f(x):
            result = objective(x)
            result = result if isinstance(result, list) else [result]
            return float(sum(np.sum(g * r) for g, r in zip(upstream, result)))

        objective(inputs)
        input_grads = target.backward(upstream if isinstance(output, list) else upstream[0])
        input_grads = input_grads if isinstance(input_grads, list) else [input_grads]
        param_grads = [(p, None if p.grad is None else np.array(p.grad, dtype=np.float64))
                       for p in target.trainable_weights]

        report = GradcheckReport(getattr(target, "name", type(target).__name__))
        arrays = inputs if multi else [inputs]
        if check_inputs:
            for index, (array, grad) in enumerate(zip(arrays, input_grads)):
                if grad is None:
                    continue
                error, checked = _check_array(f, array, grad, inputs, rng, step, max_entries, directions)
                report.add(f"input {index}" if multi else "input", array.shape, checked, error)
        for parameter, grad in param_grads:
            if grad is None:
                raise AssertionError(f"backward() left no gradient in trainable parameter '{parameter.name}'")
            error, checked = _check_array(f, parameter.value, grad, inputs, rng, step, max_entries, directions)
            report.add(parameter.name, parameter.shape, checked, error)
        return report
    finally:
        for parameter, value in original:
            parameter.value = value


def numerical_gradient(objective, array, indices=None, step=1e-6):
    """Central differences of a scalar ``objective()`` with respect to entries of ``array``.

    ``array`` is perturbed in place (and restored): ``objective`` must read it.
    ``indices`` are flat positions (default: every entry); the result has one
    value per index, or ``array``'s shape when all entries are taken::

        d objective / d array[i] ~ (objective(array + h e_i) - objective(array - h e_i)) / (2 h)

    Example::

        grad = numerical_gradient(lambda: np.vdot(layer.forward(x), upstream), x)
    """
    flat = array.reshape(-1)
    every_entry = indices is None
    indices = np.arange(flat.size) if every_entry else indices
    numeric = np.empty(len(indices))
    for k, i in enumerate(indices):
        saved = flat[i]
        flat[i] = saved + step
        plus = objective()
        flat[i] = saved - step
        minus = objective()
        flat[i] = saved
        numeric[k] = (plus - minus) / (2 * step)
    return numeric.reshape(array.shape) if every_entry else numeric


def _check_array(f, array, analytic, inputs, rng, step, max_entries, directions):
    """Perturb ``array`` in place (an input or a parameter value) and compare."""
    flat = array.reshape(-1)
    analytic = np.asarray(analytic, dtype=np.float64).reshape(-1)
    if flat.size <= max_entries:
        indices = np.arange(flat.size)
    else:
        indices = rng.choice(flat.size, size=max_entries, replace=False)
    numeric = numerical_gradient(lambda: f(inputs), array, indices, step)
    errors = [relative_error(analytic[indices], numeric)]
    for _ in range(directions):
        direction = rng.standard_normal(flat.size)
        direction /= np.linalg.norm(direction)
        saved = flat.copy()
        flat[:] = saved + step * direction
        plus = f(inputs)
        flat[:] = saved - step * direction
        minus = f(inputs)
        flat[:] = saved
        errors.append(relative_error(analytic @ direction, (plus - minus) / (2 * step)))
    return max(errors), len(indices)
