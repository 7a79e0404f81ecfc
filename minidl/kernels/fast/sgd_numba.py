"""The SGD-with-momentum update compiled with Numba: one pass over the parameter.

Same equations, in the same order, as ``minidl/kernels/reference/sgd.py`` (read it
first), so the results are equal bit for bit. NumPy runs each line as its own pass over
arrays as large as the trainable part of the model, with a temporary for ``lr * g``; here
each element is read and written once, and ``prange`` splits the elements between the
cores (each element belongs to one thread).

Example::

    sgd_momentum_update(parameter.value, parameter.grad, velocity, 0.9, 1e-4, nesterov=False)
"""
from numba import prange

from minidl.kernels.fast.compiled import TwoBuilds
from minidl.kernels.reference import sgd as reference_sgd


@TwoBuilds
def _sgd_momentum_kernel(value, grad, velocity, mu, lr, nesterov):
    """The update element by element on flat arrays; the scalars arrive in the parameter's dtype."""
    for i in prange(value.size):
        step = lr * grad[i]
        v = mu * velocity[i] - step
        velocity[i] = v
        if nesterov:
            value[i] += mu * v - step
        else:
            value[i] += v


def sgd_momentum_update(value, grad, velocity, momentum, learning_rate, nesterov):
    """Update ``velocity`` and then ``value`` in place (see the reference)."""
    arrays = (value, grad, velocity)
    if (any(a.dtype != value.dtype or a.shape != value.shape for a in arrays)
            or not all(a.flags.c_contiguous for a in arrays)):
        # Mixed dtypes, broadcast or strided arrays: the NumPy lines handle them.
        return reference_sgd.sgd_momentum_update(value, grad, velocity, momentum, learning_rate, nesterov)
    dtype = value.dtype.type
    _sgd_momentum_kernel(value.size, value.reshape(-1), grad.reshape(-1), velocity.reshape(-1), dtype(momentum),
                         dtype(learning_rate), bool(nesterov))
