"""Activation functions, each with its derivative written from its output.

=========  ===========================  ==========================================
name       forward  a = f(z)            backward  dL/dz given g = dL/da
=========  ===========================  ==========================================
linear     a = z                        g
relu       a = max(0, z)                g * (a > 0)        (0 at z = 0, as TF)
sigmoid    a = 1 / (1 + exp(-z))        g * a * (1 - a)
softmax    a_i = exp(z_i) / sum exp     a * (g - sum_j g_j a_j)   (last axis)
=========  ===========================  ==========================================

Every backward needs only the output ``a``, so a layer caches its output
and not its pre-activation.

Example::

    relu = minidl.activations.get("relu")
    a = relu.forward(z)
    grad_z = relu.backward(grad_a, a)
"""
import numpy as np

from minidl import kernels


class ActivationFunction:
    """A named element-wise (or last-axis, for softmax) nonlinearity."""

    name = None

    def forward(self, z):
        raise NotImplementedError

    def backward(self, grad_output, output):
        raise NotImplementedError

    def __call__(self, z):
        return self.forward(np.asarray(z))

    def __repr__(self):
        return f"<activation {self.name}>"


class Linear(ActivationFunction):
    name = "linear"

    def forward(self, z):
        return z

    def backward(self, grad_output, output):
        return grad_output


class ReLU(ActivationFunction):
    name = "relu"

    # np.maximum(z, 0) and grad_output * (output > 0): the operations relu_forward and
    # relu_backward (minidl/kernels/reference/relu.py).
    def forward(self, z):
        return kernels.relu_forward(z)

    def backward(self, grad_output, output):
        return kernels.relu_backward(grad_output, output)


class Sigmoid(ActivationFunction):
    name = "sigmoid"

    def forward(self, z):
        # exp(-|z|) never overflows: for z >= 0 use 1/(1+e^-z), else e^z/(1+e^z).
        e = np.exp(-np.abs(z))
        return np.where(z >= 0, 1 / (1 + e), e / (1 + e)).astype(z.dtype, copy=False)

    def backward(self, grad_output, output):
        return grad_output * output * (1 - output)


class Softmax(ActivationFunction):
    name = "softmax"

    def forward(self, z):
        shifted = z - z.max(axis=-1, keepdims=True)   # same result, no overflow
        e = np.exp(shifted)
        return e / e.sum(axis=-1, keepdims=True)

    def backward(self, grad_output, output):
        inner = (grad_output * output).sum(axis=-1, keepdims=True)
        return output * (grad_output - inner)


_BY_NAME = {cls.name: cls() for cls in (Linear, ReLU, Sigmoid, Softmax)}

relu = _BY_NAME["relu"]
sigmoid = _BY_NAME["sigmoid"]
softmax = _BY_NAME["softmax"]
linear = _BY_NAME["linear"]


def get(identifier):
    """Look an activation up by Keras name (None means linear)."""
    if identifier is None:
        return _BY_NAME["linear"]
    if isinstance(identifier, ActivationFunction):
        return identifier
    if isinstance(identifier, str) and identifier.lower() in _BY_NAME:
        return _BY_NAME[identifier.lower()]
    raise ValueError(
        f"Unknown activation {identifier!r}; expected one of {sorted(_BY_NAME)}"
    )
