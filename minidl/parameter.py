"""A trainable (or non-trainable) array with a name and a gradient slot.

Every weight in minidl -- a Conv2D kernel, a Dense bias, a BatchNormalization
moving mean -- is a :class:`Parameter`. Layers list them in ``layer.weights``
in Keras's order, optimizers update ``value`` from ``grad``, and weight files
read and write ``value``.

Example::

    p = Parameter("dense_1/kernel:0", np.zeros((3, 2), np.float32))
    p.grad = np.ones_like(p.value)
"""
import numpy as np


class Parameter:
    """One named array of a layer.

    Attributes
    ----------
    name : str
        Keras-style full name, e.g. ``"conv2d_1/kernel:0"``.
    value : numpy.ndarray
        The current value. Layers read it on every forward pass.
    grad : numpy.ndarray or None
        Gradient of the loss with respect to ``value``, written by the
        owning layer's ``backward``; ``None`` until then.
    trainable : bool
        False for statistics such as BatchNormalization's moving mean,
        which the optimizer must not touch.
    """

    def __init__(self, name, value, trainable=True):
        self.name = name
        self.value = np.asarray(value)
        self.grad = None
        self.trainable = bool(trainable)

    @property
    def shape(self):
        return self.value.shape

    @property
    def dtype(self):
        return self.value.dtype

    def assign(self, new_value):
        """Replace the value, checking the shape and keeping the dtype."""
        new_value = np.asarray(new_value)
        if new_value.shape != self.value.shape:
            raise ValueError(
                f"Parameter '{self.name}' has shape {self.value.shape}, "
                f"cannot assign an array of shape {new_value.shape}"
            )
        self.value = new_value.astype(self.value.dtype, copy=True)

    def __repr__(self):
        kind = "trainable" if self.trainable else "non-trainable"
        return f"<Parameter {self.name} shape={self.value.shape} dtype={self.value.dtype} {kind}>"
