"""The Adam update compiled with Numba: one pass over the parameter instead of NumPy's ~8.

Same equations, in the same order, as ``minidl/kernels/reference/adam.py`` (read it
first): the results are equal bit for bit. NumPy runs each of those lines as its own pass
over arrays as large as the model (22 million numbers for InceptionV3), with temporaries;
here each element is read and written once, and ``prange`` splits the elements between
the cores (each element is read and written by one thread only).

Example::

    adam_update(parameter.value, parameter.grad, m, v, 0.9, 0.999, 1e-7, alpha)
"""
import numpy as np
from numba import prange

from minidl.kernels.fast.compiled import TwoBuilds

from minidl.kernels.reference import adam as reference_adam


@TwoBuilds
def _adam_kernel(value, grad, m, v, beta_1, beta_2, one_minus_beta_1, one_minus_beta_2, epsilon, alpha):
    """The update element by element on flat arrays; the scalars arrive in the parameter's
    dtype, so float32 stays float32."""
    for i in prange(value.size):
        g = grad[i]
        m[i] = beta_1 * m[i] + one_minus_beta_1 * g
        v[i] = beta_2 * v[i] + one_minus_beta_2 * (g * g)
        value[i] -= alpha * (m[i] / (np.sqrt(v[i]) + epsilon))


def adam_update(value, grad, m, v, beta_1, beta_2, epsilon, alpha):
    """Update ``m``, ``v`` and then ``value`` in place (see the reference)."""
    arrays = (value, grad, m, v)
    if (any(a.dtype != value.dtype or a.shape != value.shape for a in arrays)
            or not all(a.flags.c_contiguous for a in arrays)):
        # Mixed dtypes, broadcast or strided arrays: the NumPy lines handle them.
        return reference_adam.adam_update(value, grad, m, v, beta_1, beta_2, epsilon, alpha)
    dtype = value.dtype.type
    _adam_kernel(value.size, value.reshape(-1), grad.reshape(-1), m.reshape(-1), v.reshape(-1), dtype(beta_1),
                 dtype(beta_2), dtype(1 - beta_1), dtype(1 - beta_2), dtype(epsilon), dtype(alpha))
