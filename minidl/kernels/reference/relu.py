"""ReLU forward and backward in plain NumPy (the engine's compiled version must match it).

    forward:   a = max(0, z)            (NaN stays NaN, -0.0 becomes +0.0, as np.maximum)
    backward:  dL/dz = g * (a > 0)      (0 where a == 0, as TensorFlow)

The backward reads the output ``a``, not ``z``: a ReLU layer caches only its output.

Example::

    a = relu_forward(z)
    grad_z = relu_backward(grad_a, a)
"""
import numpy as np


def relu_forward(z):
    """a = max(0, z), in z's dtype."""
    return np.maximum(z, 0, dtype=z.dtype)


def relu_backward(grad_output, output):
    """dL/dz = grad_output where output > 0, else 0."""
    return grad_output * (output > 0)
