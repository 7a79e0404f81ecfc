"""BatchNormalization over the channel (last) axis, with Keras's defaults.

Shapes: (N, ..., C) -> same; statistics per channel over the n = N*H*W values.

Training forward (``training=True`` and the layer is trainable)::

    mu      = mean(x)                     sigma2 = mean((x - mu)^2)   (biased)
    x_hat   = (x - mu) / sqrt(sigma2 + eps)
    y       = gamma * x_hat + beta
    moving_mean     = momentum * moving_mean     + (1 - momentum) * mu
    moving_variance = momentum * moving_variance + (1 - momentum) * sigma2 * n/(n-1)

Training backward (mu and sigma2 depend on x, which gives the two extra
terms; ``minidl/kernels/reference/batchnorm.py`` derives it step by step), with g = dL/dy::

    dL/dbeta  = sum g                     dL/dgamma = sum g * x_hat
    dL/dx     = gamma / (n sqrt(sigma2 + eps)) * (n g - sum g - x_hat * sum(g x_hat))

Inference (``training=False``, or ``trainable=False`` as in tf.keras)::

    y = gamma * (x - moving_mean) / sqrt(moving_variance + eps) + beta
    dL/dx = g * gamma / sqrt(moving_variance + eps)

Defaults: momentum 0.99, epsilon 1e-3 (Keras's, not PyTorch's 0.1 / 1e-5).
Weights, in Keras's order: gamma (if scale), beta (if center), moving_mean,
moving_variance. The operations: ``kernels.batchnorm_train_forward``,
``batchnorm_backward``, ``batchnorm_inference`` (``minidl/kernels/reference/batchnorm.py``).

Example::

    bn = BatchNormalization()
    y = bn(np.random.rand(5, 8, 8, 16).astype("float32"), training=True)
"""
import numpy as np

from minidl import kernels
from minidl.layers.base import Layer
from minidl.layers.input_spec import InputSpec


class BatchNormalization(Layer):
    def __init__(self, axis=-1, momentum=0.99, epsilon=1e-3, center=True, scale=True,
                 beta_initializer="zeros", gamma_initializer="ones",
                 moving_mean_initializer="zeros", moving_variance_initializer="ones", **kwargs):
        super().__init__(**kwargs)
        self.axis = axis
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)
        self.center = bool(center)
        self.scale = bool(scale)
        self._initializers = dict(beta=beta_initializer, gamma=gamma_initializer,
                                  moving_mean=moving_mean_initializer,
                                  moving_variance=moving_variance_initializer)
        self.input_spec = InputSpec(min_ndim=2)

    def build(self, input_shape):
        axes = [self.axis] if isinstance(self.axis, (int, np.integer)) else list(self.axis)
        if len(axes) != 1 or axes[0] % len(input_shape) != len(input_shape) - 1:
            raise NotImplementedError(
                f"BatchNormalization(axis={self.axis!r}) is not implemented in minidl for input shape "
                f"{tuple(input_shape)}: minidl normalizes over the last (channel) axis only")
        channels = input_shape[-1]
        self.input_spec = InputSpec(min_ndim=2, axes={-1: channels})
        self.gamma = self.add_weight("gamma", (channels,), self._initializers["gamma"]) if self.scale else None
        self.beta = self.add_weight("beta", (channels,), self._initializers["beta"]) if self.center else None
        self.moving_mean = self.add_weight("moving_mean", (channels,), self._initializers["moving_mean"],
                                           trainable=False)
        self.moving_variance = self.add_weight("moving_variance", (channels,),
                                               self._initializers["moving_variance"], trainable=False)
        self.built = True

    def forward(self, inputs, training=False):
        gamma = None if self.gamma is None else self.value_of(self.gamma, like=inputs)     # scale=False: none
        beta = None if self.beta is None else self.value_of(self.beta, like=inputs)        # center=False: none
        if training and self.trainable:
            output, mean, variance, inv_std = kernels.batchnorm_train_forward(inputs, gamma, beta, self.epsilon)
            self._update_moving_statistics(mean, variance, inputs.size // inputs.shape[-1])
            self.save_for_backward("train", inputs, mean, inv_std, gamma)
            return output
        moving_mean = self.value_of(self.moving_mean, like=inputs)
        moving_variance = self.value_of(self.moving_variance, like=inputs)
        output = kernels.batchnorm_inference(inputs, moving_mean, moving_variance, gamma, beta, self.epsilon)
        inv_std = 1.0 / np.sqrt(moving_variance + inputs.dtype.type(self.epsilon))
        self.save_for_backward("inference", inputs, moving_mean, inv_std, gamma)
        return output

    def _update_moving_statistics(self, mean, variance, count):
        unbiased_variance = variance * (count / max(count - 1, 1))   # Bessel's correction, as tf.keras
        m = self.momentum
        moving_mean, moving_variance = self.moving_mean.value, self.moving_variance.value
        self.moving_mean.value = (m * moving_mean + (1 - m) * mean).astype(moving_mean.dtype)
        self.moving_variance.value = (m * moving_variance + (1 - m) * unbiased_variance).astype(moving_variance.dtype)

    def backward(self, grad_output):
        mode, inputs, mean, inv_std, gamma = self.saved
        if mode == "train":
            grad_input, grad_gamma, grad_beta = kernels.batchnorm_backward(grad_output, inputs, mean, inv_std, gamma)
        else:
            grad_input, grad_gamma, grad_beta = self._inference_backward(grad_output, inputs, mean, inv_std, gamma)
        if self.gamma is not None:
            self.store_grad(self.gamma, grad_gamma)
        if self.beta is not None:
            self.store_grad(self.beta, grad_beta)
        return grad_input

    @staticmethod
    def _inference_backward(grad_output, inputs, mean, inv_std, gamma):
        # With fixed statistics BN is an affine map per channel.
        reduce_axes = tuple(range(grad_output.ndim - 1))
        x_hat = (inputs - mean) * inv_std
        grad_gamma = (grad_output * x_hat).sum(axis=reduce_axes)
        grad_beta = grad_output.sum(axis=reduce_axes)
        scale = inv_std if gamma is None else gamma * inv_std
        return grad_output * scale, grad_gamma, grad_beta

    def get_config(self):
        config = super().get_config()
        config.update(axis=self.axis, momentum=self.momentum, epsilon=self.epsilon, center=self.center,
                      scale=self.scale, **{f"{k}_initializer": v for k, v in self._initializers.items()})
        return config
