"""One Adam update of a parameter, in plain NumPy, in place (Keras's epsilon placement).

With the step size ``alpha = lr_t * sqrt(1 - beta_2^t) / (1 - beta_1^t)`` already worked
out by the optimizer (``minidl/optimizers.py`` explains it)::

    m      = beta_1 * m + (1 - beta_1) * g
    v      = beta_2 * v + (1 - beta_2) * g²
    value -= alpha * (m / (sqrt(v) + epsilon))

Every array is updated in place: ``value``, ``m`` and ``v`` are as large as the model.

Example::

    adam_update(parameter.value, parameter.grad, m, v, 0.9, 0.999, 1e-7, alpha)
"""
import numpy as np


def adam_update(value, grad, m, v, beta_1, beta_2, epsilon, alpha):
    """Update ``m``, ``v`` and then ``value`` in place; scalars act in ``value``'s dtype."""
    dtype = value.dtype.type
    m *= dtype(beta_1)
    m += dtype(1 - beta_1) * grad
    v *= dtype(beta_2)
    v += dtype(1 - beta_2) * np.square(grad)
    value -= dtype(alpha) * (m / (np.sqrt(v) + dtype(epsilon)))
