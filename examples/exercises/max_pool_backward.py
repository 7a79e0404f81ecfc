"""Exercise 1: the backward pass of max pooling.

Fill in :func:`max_pool_backward`, then run::

    python examples/exercises/check.py max_pool_backward

The forward pass has already been done for you by
``minidl.kernels.max_pool_forward(x, pool_size, strides, pads)``. It returns the
pooled output ``y`` (N, OH, OW, C) and ``argmax`` (N, OH, OW, C, int64): for
every output cell, *which* input cell won, written as the flat index
``h * W + w`` into the (unpadded) input of shape (N, H, W, C).

The maths. Max pooling picks one input per window::

    y[n, i, j, c] = x[n, h*, w*, c]        where (h*, w*) = argmax of the window

so dy[n, i, j, c] / dx[n, h, w, c] is 1 for the winning cell and 0 for every
other cell. By the chain rule::

    dL/dx[n, h, w, c] = sum over the output cells (i, j) whose winner is (h, w) of dL/dy[n, i, j, c]

In words: each output gradient goes *entirely* to its window's winner, and
when windows overlap (stride < pool size) a cell can win several windows --
then its gradients ADD UP. Cells that never win get 0. Ties were settled by the
forward pass (the first maximum in row-major order wins), so ``argmax`` already
names exactly one cell per window: follow it.

Hints: start from ``np.zeros(input_shape, dtype=grad_output.dtype)``;
``divmod(argmax, W)`` turns a flat index back into (h, w). A plain loop over
n, i, j, c is a perfectly good first solution (the checks use small arrays).

When you are done, compare with minidl's own versions of
``minidl.kernels.max_pool_backward``, which are the reference solutions:
``minidl/kernels/reference/pooling.py`` (NumPy) and
``minidl/kernels/fast/pooling_numba.py`` (Numba).
"""
import numpy as np


def max_pool_backward(grad_output, argmax, input_shape):
    """Return dL/dx of shape ``input_shape`` (N, H, W, C), in ``grad_output``'s dtype.

    grad_output : (N, OH, OW, C) array, dL/dy
    argmax      : (N, OH, OW, C) int64 array, flat index h*W + w of each window's winner
    input_shape : (N, H, W, C)
    """
    raise NotImplementedError("max_pool_backward: your code goes here")
