"""Activation: applies relu, sigmoid, softmax or linear as a layer of its own.

Shapes: any -> same. Forward a = f(z); backward dL/dz = f'(z) * dL/da, with f'
written from the output a (see ``minidl/activations.py`` for each f').

Example::

    y = Activation("relu")(np.array([[-1.0, 2.0]]))   # [[0., 2.]]
"""
from minidl.layers.activation_mixin import ActivationMixin
from minidl.layers.base import Layer


class Activation(ActivationMixin, Layer):
    def __init__(self, activation, **kwargs):
        super().__init__(**kwargs)
        self._set_activation(activation)

    def forward(self, inputs, training=False):
        self._prepare(inputs)
        output = self._activate(inputs)
        self._keep(output)
        return output

    def backward(self, grad_output):
        output = self._require_cache()
        return self._activation_backward(grad_output, output)

    def get_config(self):
        config = super().get_config()
        config["activation"] = self.activation.name
        return config
