"""2-D convolution as im2col + one BLAS matrix product (forward and backward).

Shapes (NHWC input, HWIO kernel, TensorFlow cross-correlation, no kernel flip):

    x (N, H, W, C), kernel (KH, KW, C, F)  ->  y (N, OH, OW, F)

Forward (``cols = im2col(x)`` of shape (N*OH*OW, KH*KW*C), ``K = kernel.reshape(KH*KW*C, F)``):

    y_2d = cols @ K

Backward, with ``g = grad_output.reshape(N*OH*OW, F)``:

    grad_kernel = (cols.T @ g).reshape(KH, KW, C, F)
    grad_input  = col2im(g @ K.T)

A 1x1 kernel with stride 1 and no padding *is* a matrix product over pixels, so it skips
im2col entirely: ``x.reshape(-1, C) @ kernel.reshape(C, F)``. Bias and activation belong
to the layer, not here. ``pads`` comes from :func:`minidl.kernels.conv_geometry`.

Example::

    out_h, out_w, pads = conv_geometry(x.shape, (3, 3), (1, 1), "same")
    y = conv2d_forward(x, kernel, (1, 1), pads)
    grad_x, grad_kernel = conv2d_backward(grad_y, x, kernel, (1, 1), pads)
"""
from minidl import kernels

from .geometry import padded_output_size


def _check_shapes(x, kernel, where):
    if x.ndim != 4:
        raise ValueError(f"minidl/kernels/conv.py {where}: x must be NHWC (4-D), got shape {x.shape}")
    if kernel.ndim != 4 or kernel.shape[2] != x.shape[3]:
        raise ValueError(
            f"minidl/kernels/conv.py {where}: kernel must be (KH, KW, C={x.shape[3]}, F), "
            f"got shape {kernel.shape} for input shape {x.shape}"
        )


def _is_pointwise(kernel, strides, pads):
    """1x1 kernel, stride 1, no padding: the convolution is a plain matrix product."""
    no_padding = tuple(pads[0]) == (0, 0) and tuple(pads[1]) == (0, 0)
    return kernel.shape[:2] == (1, 1) and tuple(strides) == (1, 1) and no_padding


def conv2d_forward(x, kernel, strides, pads):
    """Convolve NHWC ``x`` with HWIO ``kernel``; returns y (N, OH, OW, F)."""
    _check_shapes(x, kernel, "conv2d_forward")
    kernel_h, kernel_w, channels, filters = kernel.shape
    batch = x.shape[0]
    if _is_pointwise(kernel, strides, pads):
        y_2d = x.reshape(-1, channels) @ kernel.reshape(channels, filters)
        return y_2d.reshape(x.shape[:3] + (filters,))
    out_h, out_w = padded_output_size(x.shape, (kernel_h, kernel_w), strides, pads,
                                      where="minidl/kernels/conv.py conv2d_forward")
    cols = kernels.im2col(x, (kernel_h, kernel_w), strides, pads)
    y_2d = cols @ kernel.reshape(kernel_h * kernel_w * channels, filters)
    return y_2d.reshape(batch, out_h, out_w, filters)


def conv2d_backward(grad_output, x, kernel, strides, pads, need_input_grad=True):
    """Return ``(grad_input or None, grad_kernel)`` for y = conv2d_forward(x, kernel, ...).

    ``cols`` is recomputed from ``x`` (cheaper in memory than caching it across 94 layers).
    Pass ``need_input_grad=False`` for the first layer, whose input needs no gradient.
    """
    _check_shapes(x, kernel, "conv2d_backward")
    kernel_h, kernel_w, channels, filters = kernel.shape
    expected_h, expected_w = padded_output_size(x.shape, (kernel_h, kernel_w), strides, pads,
                                                where="minidl/kernels/conv.py conv2d_backward")
    expected = (x.shape[0], expected_h, expected_w, filters)
    if grad_output.shape != expected:
        raise ValueError(
            f"minidl/kernels/conv.py conv2d_backward: grad_output must have shape {expected}, "
            f"got {grad_output.shape}"
        )
    grad_2d = grad_output.reshape(-1, filters)
    if _is_pointwise(kernel, strides, pads):
        x_2d = x.reshape(-1, channels)
        grad_kernel = (x_2d.T @ grad_2d).reshape(kernel.shape)
        grad_input = None
        if need_input_grad:
            grad_input = (grad_2d @ kernel.reshape(channels, filters).T).reshape(x.shape)
        return grad_input, grad_kernel
    kernel_2d = kernel.reshape(kernel_h * kernel_w * channels, filters)
    cols = kernels.im2col(x, (kernel_h, kernel_w), strides, pads)
    grad_kernel = (cols.T @ grad_2d).reshape(kernel.shape)
    grad_input = None
    if need_input_grad:
        del cols  # free the big matrix before allocating grad_cols of the same size
        grad_cols = grad_2d @ kernel_2d.T
        grad_input = kernels.col2im(grad_cols, x.shape, (kernel_h, kernel_w), strides, pads)
    return grad_input, grad_kernel
