"""im2col / col2im in plain NumPy: the readable reference for the convolution.

A convolution (TensorFlow cross-correlation, NHWC input, HWIO kernel) becomes one matrix
product once every input window is laid out as a row:

    cols[(n, oh, ow), (kh, kw, c)] = x_padded[n, oh*SH + kh, ow*SW + kw, c]
    y.reshape(N*OH*OW, F) = cols @ kernel.reshape(KH*KW*C, F)

Shapes: x (N, H, W, C) -> cols (N*OH*OW, KH*KW*C). Padded cells are zeros.

col2im is the adjoint (transpose) of im2col: each entry of ``cols`` is added back to the
input cell it was copied from, so overlapping windows sum, and entries that came from
padding are dropped. This is exactly the chain rule for the backward pass:
``grad_x = col2im(grad_cols)`` with ``grad_cols = grad_y_2d @ kernel_2d.T``.

Instead of a loop over every output pixel we loop over the KH*KW kernel offsets: for a
fixed (kh, kw), the cells touched by all windows form one strided slice of the padded input.

Example::

    x = np.arange(16.0).reshape(1, 4, 4, 1)
    cols = im2col(x, (3, 3), (1, 1), ((0, 0), (0, 0)))   # shape (4, 9)
    dx = col2im(np.ones_like(cols), x.shape, (3, 3), (1, 1), ((0, 0), (0, 0)))
    # dx[0, :, :, 0] counts how many windows cover each pixel (1, 2, 2, 1 / 2, 4, 4, 2 / ...)
"""
import numpy as np

from .geometry import padded_output_size


def im2col(x, kernel_size, strides, pads):
    """Lay out every (KH, KW, C) window of ``x`` as one row; see the module docstring."""
    batch, _, _, channels = x.shape
    kernel_h, kernel_w = kernel_size
    stride_h, stride_w = strides
    out_h, out_w = padded_output_size(x.shape, kernel_size, strides, pads,
                                      where="minidl/kernels/conv_reference.py im2col")
    x_padded = np.pad(x, ((0, 0), pads[0], pads[1], (0, 0)))
    cols = np.empty((batch, out_h, out_w, kernel_h, kernel_w, channels), dtype=x.dtype)
    for kh in range(kernel_h):
        for kw in range(kernel_w):
            # Row kh of every window, for all windows at once: a strided slice.
            cols[:, :, :, kh, kw, :] = x_padded[
                :,
                kh: kh + stride_h * (out_h - 1) + 1: stride_h,
                kw: kw + stride_w * (out_w - 1) + 1: stride_w,
                :,
            ]
    return cols.reshape(batch * out_h * out_w, kernel_h * kernel_w * channels)


def col2im(cols, input_shape, kernel_size, strides, pads):
    """Adjoint of :func:`im2col`: add every row of ``cols`` back into its window."""
    batch, height, width, channels = input_shape
    kernel_h, kernel_w = kernel_size
    stride_h, stride_w = strides
    (top, bottom), (left, right) = pads
    out_h, out_w = padded_output_size(input_shape, kernel_size, strides, pads,
                                      where="minidl/kernels/conv_reference.py col2im")
    expected = (batch * out_h * out_w, kernel_h * kernel_w * channels)
    if cols.shape != expected:
        raise ValueError(
            f"minidl/kernels/conv_reference.py col2im: cols must have shape {expected} for "
            f"input_shape {tuple(input_shape)}, got {cols.shape}"
        )
    cols = cols.reshape(batch, out_h, out_w, kernel_h, kernel_w, channels)
    grad_padded = np.zeros((batch, height + top + bottom, width + left + right, channels),
                           dtype=cols.dtype)
    for kh in range(kernel_h):
        for kw in range(kernel_w):
            # Windows overlap across different (kh, kw), never within one slice, so += is safe.
            grad_padded[
                :,
                kh: kh + stride_h * (out_h - 1) + 1: stride_h,
                kw: kw + stride_w * (out_w - 1) + 1: stride_w,
                :,
            ] += cols[:, :, :, kh, kw, :]
    # Gradients that landed on padding belong to no input cell: drop them.
    return np.ascontiguousarray(grad_padded[:, top: top + height, left: left + width, :])
