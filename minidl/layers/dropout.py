"""Dropout: randomly zero activations during training (inverted dropout).

Shapes: any -> same.

Forward in training, with keep probability q = 1 - rate and an independent
Bernoulli(q) mask m per element::

    y = x * m / q

so the expected value of y equals x and inference needs no rescaling: at
inference (``training=False``) y = x. Backward: dL/dx = dL/dy * m / q.

Why divide by q during training ("inverted" dropout) rather than multiply by
q at inference: the trained network can then be used as it is, and
``predict`` does not need to know dropout was there. Why dropout at all: a
unit cannot rely on any one other unit being present, which discourages
co-adapted features and acts as a regulariser -- useful with the workshop's 65
training images. The mask drawn in forward is cached and reused in backward
(``minidl.check_gradients`` replays the same draw for every finite difference).

``seed`` makes the masks reproducible.

Example::

    layer = Dropout(0.5, seed=0)
    y = layer(np.ones((2, 4)), training=True)     # zeros and 2.0s
"""
import numpy as np

from minidl.layers.base import Layer


class Dropout(Layer):
    def __init__(self, rate, noise_shape=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        if not 0 <= rate < 1:
            raise ValueError(f"Dropout '{self.name}': rate must be in [0, 1), got {rate!r}")
        self.rate = float(rate)
        self.noise_shape = None if noise_shape is None else tuple(noise_shape)
        self.seed = seed
        self.rng = np.random.default_rng(seed)

    def _mask_shape(self, shape):
        if self.noise_shape is None:
            return shape
        return tuple(s if n is None else n for n, s in zip(self.noise_shape, shape))

    def forward(self, inputs, training=False):
        if not training or self.rate == 0:
            self.save_for_backward(None)          # identity: no mask to remember
            return inputs
        keep_probability = 1.0 - self.rate
        mask = self.rng.random(self._mask_shape(inputs.shape)) < keep_probability
        scaled_mask = mask.astype(inputs.dtype) / inputs.dtype.type(keep_probability)
        self.save_for_backward(scaled_mask)
        return inputs * scaled_mask

    def backward(self, grad_output):
        (scaled_mask,) = self.saved
        return grad_output if scaled_mask is None else grad_output * scaled_mask

    def get_config(self):
        config = super().get_config()
        config.update(rate=self.rate, noise_shape=None if self.noise_shape is None else list(self.noise_shape),
                      seed=self.seed)
        return config
