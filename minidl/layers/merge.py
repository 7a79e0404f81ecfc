"""Concatenate: join several tensors along one axis (the channels by default).

Shapes: [(N, H, W, C1), (N, H, W, C2), ...] -> (N, H, W, C1 + C2 + ...).

Forward::   y = [x1 | x2 | ...] along ``axis``
Backward::  dL/dx_k = the slice of dL/dy that x_k filled

This is how an Inception block merges its branches (``mixed0`` ... ``mixed10``).

Example::

    y = Concatenate()([np.ones((1, 4, 4, 3)), np.zeros((1, 4, 4, 5))])   # (1, 4, 4, 8)
"""
import numpy as np

from minidl.layers.base import Layer


class Concatenate(Layer):
    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        self.axis = int(axis)

    def _check_shapes(self, shapes):
        if not isinstance(shapes, (list, tuple)) or len(shapes) < 2 or not isinstance(shapes[0], (list, tuple)):
            raise ValueError(f"Concatenate '{self.name}' needs a list of at least 2 inputs, got {shapes!r}")
        rank = len(shapes[0])
        axis = self.axis % rank
        for shape in shapes:
            if len(shape) != rank or any(
                    a is not None and b is not None and a != b
                    for i, (a, b) in enumerate(zip(shape, shapes[0])) if i not in (0, axis)):
                raise ValueError(
                    f"Concatenate '{self.name}': inputs must match except along axis {self.axis}, "
                    f"got shapes {[tuple(s) for s in shapes]}")
        return axis

    def build(self, input_shape):
        self._check_shapes(input_shape)
        self.built = True

    def compute_output_shape(self, input_shape):
        axis = self._check_shapes(input_shape)
        sizes = [s[axis] for s in input_shape]
        output = list(input_shape[0])
        output[axis] = None if any(s is None for s in sizes) else int(sum(sizes))
        return tuple(output)

    def forward(self, inputs, training=False):
        axis = self._check_shapes([x.shape for x in inputs])
        self.built = True
        self.save_for_backward(axis, [x.shape[axis] for x in inputs])
        return np.concatenate(inputs, axis=axis)

    def backward(self, grad_output):
        axis, sizes = self.saved
        boundaries = np.cumsum(sizes)[:-1]
        return np.split(grad_output, boundaries, axis=axis)

    def get_config(self):
        config = super().get_config()
        config["axis"] = self.axis
        return config


def concatenate(inputs, axis=-1, name=None):
    """Functional shortcut: ``concatenate([a, b], axis=3, name='mixed0')``."""
    return Concatenate(axis=axis, name=name)(inputs)
