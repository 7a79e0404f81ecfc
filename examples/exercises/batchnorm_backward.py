"""Exercise 2: the backward pass of batch normalization (training mode).

Fill in :func:`batchnorm_backward`, then run::

    python examples/exercises/check.py batchnorm_backward

The forward pass (``minidl.kernels.batchnorm_train_forward``) normalises each
channel c over the n = N*H*W values of the batch (x viewed as n rows, C columns)::

    mean     = (1/n) sum_k x_k
    variance = (1/n) sum_k (x_k - mean)^2           (biased)
    inv_std  = 1 / sqrt(variance + epsilon)
    x_hat_k  = (x_k - mean) * inv_std
    y_k      = gamma * x_hat_k + beta

The maths of the backward pass, with g_k = dL/dy_k (one channel; sums run over k = 1..n).
The parameters are easy::

    dL/dbeta  = sum_k g_k
    dL/dgamma = sum_k g_k * x_hat_k

The input is the interesting part: x_k reaches the loss directly AND through
the mean and the variance, which every x_k helps to compute. Writing
dL/dx_hat_k = gamma * g_k and following all three paths gives::

    dL/dx_k = (gamma * inv_std / n) * ( n * g_k  -  sum_j g_j  -  x_hat_k * sum_j (g_j * x_hat_j) )
                                        direct     via mean       via variance

(Derive it: dmean/dx_k = 1/n, dvariance/dx_k = 2 (x_k - mean) / n, and
dinv_std/dvariance = -inv_std^3 / 2.) Forget the last two terms and the
gradient check fails -- ``examples/gradcheck_tour.py`` shows it.

When ``gamma`` is None (``BatchNormalization(scale=False)``, as in InceptionV3)
use gamma = 1 and return ``grad_gamma`` computed anyway.

Hint: ``x.reshape(-1, x.shape[-1])`` gives the (n, C) view; sums over axis 0.
The reference solution is ``minidl.kernels.batchnorm_backward``; its NumPy version
is in ``minidl/kernels/reference/batchnorm.py``.
"""
import numpy as np


def batchnorm_backward(grad_output, x, mean, inv_std, gamma):
    """Return ``(grad_input, grad_gamma, grad_beta)``.

    grad_output, x : (N, C) or (N, H, W, C) arrays; grad_input has the same shape and dtype
    mean, inv_std  : (C,) arrays from the forward pass
    gamma          : (C,) array or None (meaning 1)
    grad_gamma, grad_beta : (C,) arrays
    """
    raise NotImplementedError("batchnorm_backward: your code goes here")
