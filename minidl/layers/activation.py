"""Activation functions in layers: the ``Activation`` layer, and Dense's and Conv2D's ``activation=``.

``Activation('relu')`` is a layer of its own. Shapes: any -> same::

    forward:   a = f(z)
    backward:  dL/dz = f'(z) * dL/da,   with f' written from the output a

(see ``minidl/activations.py`` for each f'; every one of them needs only a, so the layer
saves its output, not its input).

``ActivationMixin`` gives Dense and Conv2D the same ``activation=`` argument: they compute
a linear z, then a = f(z), and differentiate f the same way. It also supports one trick
the training loop needs: when the loss is binary cross-entropy after a sigmoid (or
categorical cross-entropy after a softmax), the loss is computed from z directly
(numerically stable, see ``minidl/losses.py``) and the gradient it hands back is
already dL/dz. The training loop then sets ``backward_from_logits = True`` on the output
layer for that step, and backward skips f'.

Example::

    y = Activation("relu")(np.array([[-1.0, 2.0]]))   # [[0., 2.]]
"""
from minidl import activations
from minidl.layers.base import Layer

_LOGIT_ACTIVATIONS = ("sigmoid", "softmax")


class ActivationMixin:
    """``activation=`` for a layer that computes a linear z first (Dense, Conv2D)."""

    backward_from_logits = False

    def _set_activation(self, activation):
        self.activation = activations.get(activation)

    def _activate(self, z):
        """a = f(z); keep z as ``self.logits`` when a loss may want it."""
        self.logits = z if self.activation.name in _LOGIT_ACTIVATIONS else None
        return self.activation.forward(z)

    def _activation_backward(self, grad_output, output):
        """dL/dz from dL/da and the output a (or pass dL/dz through when it was given)."""
        if self.backward_from_logits:
            return grad_output
        return self.activation.backward(grad_output, output)


class Activation(ActivationMixin, Layer):
    def __init__(self, activation, **kwargs):
        super().__init__(**kwargs)
        self._set_activation(activation)

    def forward(self, inputs, training=False):
        output = self._activate(inputs)
        self.save_for_backward(output)
        return output

    def backward(self, grad_output):
        (output,) = self.saved
        return self._activation_backward(grad_output, output)

    def get_config(self):
        config = super().get_config()
        config["activation"] = self.activation.name
        return config
