"""GlobalMaxPooling2D: one number per channel, the largest over the image.

Shapes: (N, H, W, C) -> (N, C)  (or (N, 1, 1, C) with ``keepdims=True``).

Forward::   y[n, c] = max_{h, w} x[n, h, w, c]
Backward::  dL/dx[n, h, w, c] = dL/dy[n, c] * [x[n, h, w, c] == y[n, c]] / k[n, c]

where k[n, c] is how many positions hold the maximum. Keras computes this
layer with ``tf.reduce_max``, whose gradient shares dL/dy *equally* among tied
maxima (TensorFlow's ``_MinOrMaxGrad``) -- unlike MaxPooling2D, which gives it
all to the first maximum. Ties are common after a ReLU (several zeros).

``InceptionV3(include_top=False, pooling='max')`` ends with this layer.

Example::

    GlobalMaxPooling2D()(np.random.rand(5, 8, 8, 2048)).shape   # (5, 2048)
"""
import numpy as np

from minidl.layers.global_pooling import GlobalPooling2D


class GlobalMaxPooling2D(GlobalPooling2D):

    def forward(self, inputs, training=False):
        maxima = inputs.max(axis=(1, 2), keepdims=True)
        # What backward needs: where the maxima are, and how many share each one.
        is_max = inputs == maxima
        self.save_for_backward(is_max, is_max.sum(axis=(1, 2), keepdims=True))
        return maxima if self.keepdims else maxima.reshape(inputs.shape[0], inputs.shape[3])

    def backward(self, grad_output):
        is_max, tie_count = self.saved
        n, _, _, c = is_max.shape
        grad = grad_output.reshape(n, 1, 1, c) / tie_count.astype(grad_output.dtype)
        return np.where(is_max, grad, grad_output.dtype.type(0))


GlobalMaxPool2D = GlobalMaxPooling2D
