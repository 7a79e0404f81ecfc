"""Flatten: (batch, d1, d2, ...) -> (batch, d1*d2*...), in C (row-major) order.

Backward reshapes dL/dy back to the input shape.

``data_format='channels_first'`` (Keras's argument for NCHW inputs) first moves axis 1
(the channels) to the end, so the flattened vector lists the values in the same order as
for the same image stored NHWC: a Dense layer after it gets the same weights either way.

Example::

    Flatten()(np.zeros((5, 8, 8, 2048))).shape   # (5, 131072)
"""
import numpy as np

from minidl.layers.base import Layer
from minidl.layers.input_spec import InputSpec


class Flatten(Layer):
    def __init__(self, data_format=None, **kwargs):
        super().__init__(**kwargs)
        if data_format not in (None, "channels_last", "channels_first"):
            raise ValueError(f"Flatten '{self.name}': data_format must be 'channels_last', 'channels_first' "
                             f"or None, got {data_format!r}")
        self.data_format = data_format or "channels_last"
        self.input_spec = InputSpec(min_ndim=2)

    def compute_output_shape(self, input_shape):
        rest = input_shape[1:]
        size = None if any(d is None for d in rest) else int(np.prod(rest))
        return (input_shape[0], size)

    def forward(self, inputs, training=False):
        self.save_for_backward(inputs.shape)
        if self.data_format == "channels_first" and inputs.ndim > 2:
            inputs = np.moveaxis(inputs, 1, -1)          # (N, C, H, W) -> (N, H, W, C)
        return inputs.reshape(inputs.shape[0], -1)

    def backward(self, grad_output):
        (input_shape,) = self.saved
        if self.data_format == "channels_first" and len(input_shape) > 2:
            channels_last_shape = (input_shape[0],) + tuple(input_shape[2:]) + (input_shape[1],)
            return np.moveaxis(grad_output.reshape(channels_last_shape), -1, 1)
        return grad_output.reshape(input_shape)

    def get_config(self):
        config = super().get_config()
        config["data_format"] = self.data_format
        return config
