"""Dense: a fully connected layer.

Shapes: input (batch, ..., in) -> output (batch, ..., units).

Forward::

    z = x W + b          W: (in, units), b: (units,)
    a = activation(z)

Backward, given g = dL/da and the saved output a::

    dL/dz = g * f'(a)          f' written from the output a (minidl/activations.py):
                               relu: (a > 0), sigmoid: a (1 - a), ...
    dL/dW = x^T (dL/dz)        (summed over batch and any middle axes)
    dL/db = sum_batch dL/dz
    dL/dx = (dL/dz) W^T

The kernel starts glorot_uniform (U(-a, a), a = sqrt(6 / (in + units))), the
bias at zero, as in Keras. The workshop's head is Dense(256, relu) -> Dropout
-> Dense(1, sigmoid) on the 2048 pooled InceptionV3 features.

Example::

    layer = Dense(256, activation="relu")
    y = layer(np.random.rand(5, 2048).astype("float32"))   # (5, 256)
"""
import numpy as np

from minidl import initializers
from minidl.layers.activation import ActivationMixin
from minidl.layers.base import Layer
from minidl.layers.input_spec import InputSpec


class Dense(ActivationMixin, Layer):
    def __init__(self, units, activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros", **kwargs):
        super().__init__(**kwargs)
        if not isinstance(units, (int, np.integer)) or units <= 0:
            raise ValueError(f"Dense '{self.name}': units must be a positive integer, got {units!r}")
        self.units = int(units)
        self._set_activation(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self._kernel_initializer_name = kernel_initializer
        self._bias_initializer_name = bias_initializer
        self.input_spec = InputSpec(min_ndim=2)

    def build(self, input_shape):
        input_dim = input_shape[-1]
        if input_dim is None:
            raise ValueError(f"Dense '{self.name}': the last input dimension must be known, got {input_shape}")
        self.input_spec = InputSpec(min_ndim=2, axes={-1: input_dim})
        self.kernel = self.add_weight("kernel", (input_dim, self.units), self.kernel_initializer)
        self.bias = self.add_weight("bias", (self.units,), self.bias_initializer) if self.use_bias else None
        self.built = True

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def forward(self, inputs, training=False):
        z = inputs @ self.value_of(self.kernel, like=inputs)
        if self.use_bias:
            z += self.value_of(self.bias, like=inputs)
        output = self._activate(z)
        self.save_for_backward(inputs, output)
        return output

    def backward(self, grad_output):
        inputs, output = self.saved
        grad_z = self._activation_backward(grad_output, output)
        flat_inputs = inputs.reshape(-1, inputs.shape[-1])
        flat_grad_z = grad_z.reshape(-1, self.units)
        self.store_grad(self.kernel, flat_inputs.T @ flat_grad_z)
        if self.use_bias:
            self.store_grad(self.bias, flat_grad_z.sum(axis=0))
        return grad_z @ self.value_of(self.kernel, like=grad_z).T

    def get_config(self):
        config = super().get_config()
        config.update(units=self.units, activation=self.activation.name, use_bias=self.use_bias,
                      kernel_initializer=initializers.serialize(self._kernel_initializer_name),
                      bias_initializer=initializers.serialize(self._bias_initializer_name))
        return config
