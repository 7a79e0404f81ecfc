"""GlobalAveragePooling2D: one number per channel, the mean over the image.

Shapes: (N, H, W, C) -> (N, C).

Forward::   y[n, c] = (1 / (H W)) * sum_{h, w} x[n, h, w, c]
Backward::  dL/dx[n, h, w, c] = dL/dy[n, c] / (H W)

This is what turns InceptionV3's 8x8x2048 feature map into the 2048 numbers
the workshop's classifier head reads. Compared with Flatten (8*8*2048 =
131,072 numbers) it has no weights, keeps the head small (2048*256 weights
instead of 33.5 million), works for any image size, and asks every channel to
say "is my feature anywhere in the image?". It is also what makes Grad-CAM
simple: the weight of channel c is the average of dL/dfeature over the image.

Example::

    GlobalAveragePooling2D()(np.ones((5, 8, 8, 2048))).shape   # (5, 2048)
"""
import numpy as np

from minidl.layers.base import Layer
from minidl.layers.conv import check_data_format
from minidl.layers.input_spec import InputSpec


class GlobalPooling2D(Layer):
    """What the global poolings share: (N, H, W, C) -> (N, C), or (N, 1, 1, C) with keepdims."""

    def __init__(self, data_format=None, keepdims=False, **kwargs):
        super().__init__(**kwargs)
        check_data_format(data_format, type(self).__name__)
        self.keepdims = bool(keepdims)
        self.input_spec = InputSpec(ndim=4)

    def compute_output_shape(self, input_shape):
        if self.keepdims:
            return (input_shape[0], 1, 1, input_shape[3])
        return (input_shape[0], input_shape[3])

    def get_config(self):
        config = super().get_config()
        config["keepdims"] = self.keepdims
        return config


class GlobalAveragePooling2D(GlobalPooling2D):

    def forward(self, inputs, training=False):
        self.save_for_backward(inputs.shape)
        return inputs.mean(axis=(1, 2), keepdims=self.keepdims, dtype=inputs.dtype)

    def backward(self, grad_output):
        ((n, h, w, c),) = self.saved
        grad = grad_output.reshape(n, 1, 1, c) / grad_output.dtype.type(h * w)
        return np.broadcast_to(grad, (n, h, w, c)).copy()


GlobalAvgPool2D = GlobalAveragePooling2D
