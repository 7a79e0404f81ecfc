"""2-D convolution as im2col + one matrix product, in plain NumPy (forward and backward).

Shapes (NHWC input, HWIO kernel, TensorFlow's cross-correlation: no kernel flip)::

    x (N, H, W, C), kernel (KH, KW, C, F)  ->  y (N, OH, OW, F)

im2col lays out every input window as one row of a matrix::

    cols[(n, oh, ow), (kh, kw, c)] = x_padded[n, oh*SH + kh, ow*SW + kw, c]      (N*OH*OW, KH*KW*C)

and the convolution becomes one matrix product, which BLAS runs fast::

    y = (cols @ K).reshape(N, OH, OW, F)          K = kernel.reshape(KH*KW*C, F)

Backward, with G = grad_y.reshape(N*OH*OW, F) -- y is a matrix product, so its gradients
are the two transposed products, and im2col's own gradient is col2im::

    grad_kernel = (cols^T @ G).reshape(KH, KW, C, F)
    grad_cols   = G @ K^T
    grad_x      = col2im(grad_cols)

col2im is the adjoint (transpose) of im2col: each entry of ``grad_cols`` is added back to
the input cell it was copied from, so overlapping windows sum, and entries that came from
padding are dropped. Padded cells are zeros. ``pads = ((top, bottom), (left, right))``
comes from :func:`minidl.kernels.conv_geometry` (TensorFlow's asymmetric 'same' padding).

Instead of a loop over every output pixel, both loop over the KH*KW kernel offsets: for a
fixed (kh, kw), the cells that all windows read form one strided slice of the padded input.

Example::

    x = np.arange(16.0).reshape(1, 4, 4, 1)
    cols = im2col(x, (3, 3), (1, 1), ((0, 0), (0, 0)))   # shape (4, 9): 2x2 windows of 3x3
    dx = col2im(np.ones_like(cols), x.shape, (3, 3), (1, 1), ((0, 0), (0, 0)))
    # dx[0, :, :, 0] counts how many windows cover each pixel (1, 2, 2, 1 / 2, 4, 4, 2 / ...)
    y = conv2d_forward(x, np.ones((3, 3, 1, 2)), (1, 1), ((0, 0), (0, 0)))   # (1, 2, 2, 2)
"""
import numpy as np

from minidl.kernels.geometry import padded_output_size


def _window(offset, stride, count):
    """The cells at kernel offset ``offset`` of ``count`` windows spaced ``stride`` apart."""
    return slice(offset, offset + stride * (count - 1) + 1, stride)


def im2col(x, kernel_size, strides, pads):
    """Lay out every (KH, KW, C) window of ``x`` as one row: (N*OH*OW, KH*KW*C)."""
    batch, _, _, channels = x.shape
    kernel_h, kernel_w = kernel_size
    out_h, out_w = padded_output_size(x.shape, kernel_size, strides, pads,
                                      where="minidl/kernels/reference/conv.py im2col")
    x_padded = np.pad(x, ((0, 0), pads[0], pads[1], (0, 0)))
    cols = np.empty((batch, out_h, out_w, kernel_h, kernel_w, channels), dtype=x.dtype)
    for kh in range(kernel_h):
        for kw in range(kernel_w):
            # Cell (kh, kw) of every window, for all windows at once: a strided slice.
            cols[:, :, :, kh, kw, :] = x_padded[:, _window(kh, strides[0], out_h),
                                                _window(kw, strides[1], out_w), :]
    return cols.reshape(batch * out_h * out_w, kernel_h * kernel_w * channels)


def col2im(cols, input_shape, kernel_size, strides, pads):
    """Adjoint of :func:`im2col`: add every row of ``cols`` back into its window."""
    batch, height, width, channels = input_shape
    kernel_h, kernel_w = kernel_size
    (top, bottom), (left, right) = pads
    out_h, out_w = padded_output_size(input_shape, kernel_size, strides, pads,
                                      where="minidl/kernels/reference/conv.py col2im")
    expected = (batch * out_h * out_w, kernel_h * kernel_w * channels)
    if cols.shape != expected:
        raise ValueError(f"minidl/kernels/reference/conv.py col2im: cols must have shape {expected} for "
                         f"input_shape {tuple(input_shape)}, got {cols.shape}")
    windows = cols.reshape(batch, out_h, out_w, kernel_h, kernel_w, channels)
    grad_padded = np.zeros((batch, height + top + bottom, width + left + right, channels), dtype=cols.dtype)
    for kh in range(kernel_h):
        for kw in range(kernel_w):
            # Windows overlap across different (kh, kw), never within one slice, so += is safe.
            grad_padded[:, _window(kh, strides[0], out_h), _window(kw, strides[1], out_w), :] += \
                windows[:, :, :, kh, kw, :]
    # Gradients that landed on padding belong to no input cell: drop them.
    return np.ascontiguousarray(grad_padded[:, top: top + height, left: left + width, :])


def _check_shapes(x, kernel, where):
    if x.ndim != 4 or kernel.ndim != 4 or kernel.shape[2] != x.shape[3]:
        raise ValueError(f"minidl/kernels/reference/conv.py {where}: x must be NHWC (4-D) and kernel "
                         f"(KH, KW, C={x.shape[-1]}, F), got x {x.shape}, kernel {kernel.shape}")


def conv2d_forward(x, kernel, strides, pads):
    """y (N, OH, OW, F) = the convolution of NHWC ``x`` with HWIO ``kernel``: ``cols @ K``."""
    _check_shapes(x, kernel, "conv2d_forward")
    kernel_h, kernel_w, channels, filters = kernel.shape
    cols = im2col(x, (kernel_h, kernel_w), strides, pads)
    y = cols @ kernel.reshape(kernel_h * kernel_w * channels, filters)
    out_h, out_w = padded_output_size(x.shape, (kernel_h, kernel_w), strides, pads)
    return y.reshape(x.shape[0], out_h, out_w, filters)


def conv2d_backward(grad_output, x, kernel, strides, pads):
    """``(grad_x, grad_kernel)`` for y = conv2d_forward(x, kernel, strides, pads).

    ``cols`` is built again from ``x``: keeping it from the forward pass would hold
    KH*KW copies of every input in memory until the backward pass.
    """
    _check_shapes(x, kernel, "conv2d_backward")
    kernel_h, kernel_w, channels, filters = kernel.shape
    kernel_2d = kernel.reshape(kernel_h * kernel_w * channels, filters)
    out_h, out_w = padded_output_size(x.shape, (kernel_h, kernel_w), strides, pads)
    if grad_output.shape != (x.shape[0], out_h, out_w, filters):
        raise ValueError(f"minidl/kernels/reference/conv.py conv2d_backward: grad_output must have shape "
                         f"{(x.shape[0], out_h, out_w, filters)}, got {grad_output.shape}")
    grad_2d = grad_output.reshape(-1, filters)
    cols = im2col(x, (kernel_h, kernel_w), strides, pads)
    grad_kernel = (cols.T @ grad_2d).reshape(kernel.shape)
    grad_x = col2im(grad_2d @ kernel_2d.T, x.shape, (kernel_h, kernel_w), strides, pads)
    return grad_x, grad_kernel
