"""Batch normalization over every axis but the last (channels last), in plain NumPy.

x is (N, C) or (N, H, W, C); statistics are per channel over the n = N*H*W values.
Keras semantics spec §5.7.

Training forward:
    mean     = (1/n) Σ x
    variance = (1/n) Σ (x - mean)²          (the BIASED batch variance)
    inv_std  = 1 / sqrt(variance + epsilon)
    x_hat    = (x - mean) * inv_std
    y        = gamma * x_hat + beta         (gamma None -> 1, beta None -> 0)

Backward (the gradient flows through mean and variance too), with g = grad_output:
    grad_beta  = Σ g
    grad_gamma = Σ g * x_hat
    grad_input = (gamma * inv_std / n) * (n*g - Σ g - x_hat * Σ(g * x_hat))

Inference:
    y = gamma * (x - moving_mean) / sqrt(moving_variance + epsilon) + beta

Statistics are accumulated in float64 (a float32 sum over ~10⁵ values loses digits);
every returned array has x's dtype.

Example::

    y, mean, variance, inv_std = batchnorm_train_forward(x, None, beta, 1e-3)
    grad_x, grad_gamma, grad_beta = batchnorm_backward(grad_y, x, mean, inv_std, None)
"""
import numpy as np


def _as_rows(x, where):
    """View x as (n, C): one row per pixel, one column per channel."""
    if x.ndim < 2:
        raise ValueError(
            f"minidl/kernels/batchnorm_reference.py {where}: x must have a batch axis and a "
            f"channel axis (e.g. (N, C) or (N, H, W, C)), got shape {x.shape}"
        )
    return x.reshape(-1, x.shape[-1])


def batchnorm_train_forward(x, gamma, beta, epsilon):
    """Return ``(y, mean, variance, inv_std)``; the last three have shape (C,)."""
    rows = _as_rows(x, "batchnorm_train_forward")
    mean = rows.mean(axis=0, dtype=np.float64)
    centered = rows - mean.astype(x.dtype)
    variance = np.mean(np.square(centered, dtype=np.float64), axis=0)
    inv_std = 1.0 / np.sqrt(variance + epsilon)
    scale = inv_std if gamma is None else gamma * inv_std
    y = centered * scale.astype(x.dtype)
    if beta is not None:
        y += np.asarray(beta, dtype=x.dtype)
    return (y.reshape(x.shape), mean.astype(x.dtype), variance.astype(x.dtype),
            inv_std.astype(x.dtype))


def batchnorm_backward(grad_output, x, mean, inv_std, gamma):
    """Return ``(grad_input, grad_gamma, grad_beta)``; see the module docstring."""
    rows = _as_rows(x, "batchnorm_backward")
    grad_rows = grad_output.reshape(rows.shape)
    count = rows.shape[0]
    x_hat = (rows - mean) * inv_std
    grad_beta = grad_rows.sum(axis=0, dtype=np.float64)
    grad_gamma = np.einsum("ij,ij->j", grad_rows, x_hat, dtype=np.float64)
    scale = inv_std if gamma is None else gamma * inv_std
    grad_input = (scale / count).astype(x.dtype) * (
        count * grad_rows - grad_beta.astype(x.dtype) - x_hat * grad_gamma.astype(x.dtype))
    return (grad_input.reshape(x.shape).astype(x.dtype, copy=False),
            grad_gamma.astype(x.dtype), grad_beta.astype(x.dtype))


def batchnorm_inference(x, moving_mean, moving_variance, gamma, beta, epsilon):
    """Normalize with the moving statistics: one multiply and one add per value."""
    scale, shift = batchnorm_inference_affine(moving_mean, moving_variance, gamma, beta, epsilon,
                                              x.shape[-1], x.dtype)
    return x * scale + shift


def batchnorm_inference_affine(moving_mean, moving_variance, gamma, beta, epsilon, channels, dtype):
    """The per-channel ``(scale, shift)`` that inference applies, in ``dtype``:

        y = x * scale + shift,   scale = gamma / sqrt(moving_variance + epsilon),
                                 shift = beta - moving_mean * scale
    """
    scale = 1.0 / np.sqrt(np.asarray(moving_variance, dtype=np.float64) + epsilon)
    if gamma is not None:
        scale = scale * gamma
    shift = -np.asarray(moving_mean, dtype=np.float64) * scale
    if beta is not None:
        shift = shift + beta
    return (np.broadcast_to(scale, (channels,)).astype(dtype),
            np.broadcast_to(shift, (channels,)).astype(dtype))


def batchnorm_inference_rows(rows, affine, relu, out):
    """Apply ``affine`` (from :func:`batchnorm_inference_affine`) to (n, C) ``rows``, then
    ReLU if ``relu``; writes ``out`` (which may be ``rows``: in place) and returns it.
    The same operations in the same order as batchnorm_inference then relu_forward."""
    if rows.ndim != 2 or out.shape != rows.shape or out.dtype != rows.dtype:
        raise ValueError(
            f"minidl/kernels/batchnorm_reference.py batchnorm_inference_rows: rows must be 2-D (n, C) "
            f"and out the same shape and dtype; got rows {rows.shape} {rows.dtype}, out {out.shape} {out.dtype}")
    scale, shift = affine
    np.multiply(rows, scale, out=out)
    out += shift
    if relu:
        np.maximum(out, 0, out=out)
    return out
