"""The ``activation=`` argument shared by Dense and Conv2D.

Dense and Conv2D compute a linear pre-activation z, then a = f(z).
This mixin applies f and differentiates it, and supports one trick the
training loop needs: when the loss is binary cross-entropy after a sigmoid (or
categorical cross-entropy after a softmax), the loss is computed from z
directly (numerically stable), and the gradient it hands back is already
dL/dz. The training loop then sets ``backward_from_logits = True`` on the
output layer, which makes backward skip f' (see ``minidl/losses.py``).
"""
from minidl import activations

_LOGIT_ACTIVATIONS = ("sigmoid", "softmax")


class ActivationMixin:
    backward_from_logits = False

    def _set_activation(self, activation):
        self.activation = activations.get(activation)

    def _activate(self, z):
        """a = f(z); keep z as ``self.logits`` when a loss may want it."""
        self.logits = z if self.activation.name in _LOGIT_ACTIVATIONS else None
        return self.activation.forward(z)

    def _activation_backward(self, grad_output, output):
        """dL/dz from dL/da (or pass through when dL/dz was given)."""
        if self.backward_from_logits:
            return grad_output
        return self.activation.backward(grad_output, output)
