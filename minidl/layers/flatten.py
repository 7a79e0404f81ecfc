"""Flatten: (batch, d1, d2, ...) -> (batch, d1*d2*...), in C (row-major) order.

Backward reshapes dL/dy back to the input shape.

Example::

    Flatten()(np.zeros((5, 8, 8, 2048))).shape   # (5, 131072)
"""
import numpy as np

from minidl.layers.base import Layer
from minidl.layers.input_spec import InputSpec


class Flatten(Layer):
    def __init__(self, data_format=None, **kwargs):
        super().__init__(**kwargs)
        if data_format not in (None, "channels_last"):
            raise ValueError(f"Flatten '{self.name}': only data_format='channels_last' is supported, got {data_format!r}")
        self.input_spec = InputSpec(min_ndim=2)

    def compute_output_shape(self, input_shape):
        rest = input_shape[1:]
        size = None if any(d is None for d in rest) else int(np.prod(rest))
        return (input_shape[0], size)

    def forward(self, inputs, training=False):
        self.save_for_backward(inputs.shape)
        return inputs.reshape(inputs.shape[0], -1)

    def backward(self, grad_output):
        (input_shape,) = self.saved
        return grad_output.reshape(input_shape)
