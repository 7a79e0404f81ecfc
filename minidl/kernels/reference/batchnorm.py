"""Batch normalization over every axis but the last (channels last), in plain NumPy.

x is (N, C) or (N, H, W, C); statistics are per channel over the n = N*H*W values of that
channel (minidl/keras_semantics.md §5.7). Below, every sum runs over those n values.

Training forward::

    mean     = (1/n) Σ x
    variance = (1/n) Σ (x - mean)²          (the BIASED batch variance)
    inv_std  = 1 / sqrt(variance + epsilon)
    x_hat    = (x - mean) * inv_std
    y        = gamma * x_hat + beta         (gamma None -> 1, beta None -> 0)

Backward, derived. Let g = dL/dy (one value per element). gamma and beta are easy, they
touch each y once::

    dL/dbeta  = Σ g
    dL/dgamma = Σ g * x_hat

The input is harder: x_i reaches the loss through x_hat_i directly AND through the mean
and the variance, which depend on every x_j of the channel. Step by step:

1. Through x_hat:         dL/dx_hat_j = g_j * gamma
2. Into the variance:     x_hat_j = (x_j - mean) * (variance + eps)^(-1/2), so
                          dL/dvariance = Σ_j dL/dx_hat_j * (x_j - mean) * (-1/2) (variance + eps)^(-3/2)
                                       = -(1/2) inv_std² Σ_j dL/dx_hat_j * x_hat_j
3. Into the mean:         mean appears in every x_hat_j (and in the variance, but there its
                          gradient is Σ_j -2(x_j - mean)/n = 0), so
                          dL/dmean = -inv_std Σ_j dL/dx_hat_j
4. Back to x_i: x_i appears in x_hat_i, in the mean (d mean/d x_i = 1/n) and in the
   variance (d variance/d x_i = 2 (x_i - mean)/n):
                          dL/dx_i = dL/dx_hat_i * inv_std + dL/dmean / n
                                    + dL/dvariance * 2 (x_i - mean) / n
5. Substitute 1-3 and collect inv_std * gamma / n:
                          dL/dx_i = (gamma * inv_std / n) * (n g_i - Σ g - x_hat_i Σ(g * x_hat))

The "- Σ g" term comes from the mean, the "- x_hat_i Σ(g x_hat)" term from the variance.
With g = 1 everywhere both cancel n g_i exactly and dL/dx = 0: that is why a gradient
check of batch norm needs a random g (``minidl/gradcheck.py``).

Inference (fixed statistics, an affine map per channel)::

    y = gamma * (x - moving_mean) / sqrt(moving_variance + epsilon) + beta
      = x * scale + shift,   scale = gamma / sqrt(moving_variance + epsilon),
                             shift = beta - moving_mean * scale

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
            f"minidl/kernels/reference/batchnorm.py {where}: x must have a batch axis and a "
            f"channel axis (e.g. (N, C) or (N, H, W, C)), got shape {x.shape}")
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
    return y.reshape(x.shape), mean.astype(x.dtype), variance.astype(x.dtype), inv_std.astype(x.dtype)


def batchnorm_backward(grad_output, x, mean, inv_std, gamma):
    """Return ``(grad_x, grad_gamma, grad_beta)``: step 5 of the module docstring."""
    rows = _as_rows(x, "batchnorm_backward")
    grad_rows = grad_output.reshape(rows.shape)
    count = rows.shape[0]
    x_hat = (rows - mean) * inv_std
    grad_beta = grad_rows.sum(axis=0, dtype=np.float64)                          # Σ g
    grad_gamma = np.einsum("ij,ij->j", grad_rows, x_hat, dtype=np.float64)       # Σ g * x_hat
    scale = inv_std if gamma is None else gamma * inv_std
    grad_x = (scale / count).astype(x.dtype) * (
        count * grad_rows - grad_beta.astype(x.dtype) - x_hat * grad_gamma.astype(x.dtype))
    return (grad_x.reshape(x.shape).astype(x.dtype, copy=False),
            grad_gamma.astype(x.dtype), grad_beta.astype(x.dtype))


def batchnorm_inference(x, moving_mean, moving_variance, gamma, beta, epsilon):
    """y = x * scale + shift with the moving statistics (see the module docstring)."""
    scale = 1.0 / np.sqrt(np.asarray(moving_variance, dtype=np.float64) + epsilon)
    if gamma is not None:
        scale = scale * gamma
    shift = -np.asarray(moving_mean, dtype=np.float64) * scale
    if beta is not None:
        shift = shift + beta
    return x * scale.astype(x.dtype) + shift.astype(x.dtype)
