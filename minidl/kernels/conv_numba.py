"""im2col / col2im compiled with Numba: the fast path of the convolution.

Same contract as :mod:`minidl.kernels.conv_reference` (read that file first):

    cols[(n, oh, ow), (kh, kw, c)] = x_padded[n, oh*SH + kh, ow*SW + kw, c]

Parallelism without write races:

* ``im2col`` runs ``prange`` over output rows (n, oh): each writes its own OW rows of
  ``cols``. With batch 5 on 2 cores, rows balance better than images.
* ``col2im`` is written as a *gather*: ``prange`` over input rows (n, h); each input cell
  sums the (at most KH*KW) column entries that were copied from it. Only the thread that
  owns row (n, h) writes it, so no atomics and no ``np.add.at`` (which is ~100x slower).

Example::

    cols = im2col(x, (3, 3), (2, 2), ((0, 1), (0, 1)))
    dx = col2im(cols, x.shape, (3, 3), (2, 2), ((0, 1), (0, 1)))
"""
import numpy as np
from numba import njit, prange

from .geometry import padded_output_size


@njit(cache=True, parallel=True)
def _im2col_kernel(x, kernel_h, kernel_w, stride_h, stride_w, top, left, out_h, out_w):
    batch, height, width, channels = x.shape
    cols = np.empty((batch * out_h * out_w, kernel_h * kernel_w * channels), dtype=x.dtype)
    for image_row in prange(batch * out_h):
        n = image_row // out_h
        oh = image_row % out_h
        for ow in range(out_w):
            row = image_row * out_w + ow
            for kh in range(kernel_h):
                h = oh * stride_h - top + kh
                for kw in range(kernel_w):
                    w = ow * stride_w - left + kw
                    start = (kh * kernel_w + kw) * channels
                    if 0 <= h < height and 0 <= w < width:
                        for c in range(channels):
                            cols[row, start + c] = x[n, h, w, c]
                    else:  # a padded cell
                        for c in range(channels):
                            cols[row, start + c] = 0.0
    return cols


@njit(cache=True, parallel=True)
def _col2im_kernel(cols, batch, height, width, channels, kernel_h, kernel_w,
                   stride_h, stride_w, top, left, out_h, out_w):
    span = kernel_w * channels
    grad_rows = np.zeros((batch, height, width * channels), dtype=cols.dtype)
    for input_row in prange(batch * height):
        n = input_row // height
        h = input_row % height
        for kh in range(kernel_h):
            # Which output row oh has kernel row kh on input row h?  oh*SH - top + kh == h
            offset_h = h + top - kh
            if offset_h < 0 or offset_h % stride_h != 0:
                continue
            oh = offset_h // stride_h
            if oh >= out_h:
                continue
            # Add each window's kernel row kh (KW*C consecutive columns) back onto the
            # KW*C consecutive values of input row h it was copied from. Only this
            # iteration writes row (n, h): no two threads touch the same element.
            for ow in range(out_w):
                row = (n * out_h + oh) * out_w + ow
                start = kh * span
                w_first = ow * stride_w - left
                if w_first >= 0 and w_first + kernel_w <= width:
                    offset = w_first * channels
                    for j in range(span):
                        grad_rows[n, h, offset + j] += cols[row, start + j]
                else:
                    for kw in range(kernel_w):
                        w = w_first + kw
                        if 0 <= w < width:
                            for c in range(channels):
                                grad_rows[n, h, w * channels + c] += cols[row, start + kw * channels + c]
    return grad_rows.reshape(batch, height, width, channels)


def im2col(x, kernel_size, strides, pads):
    """Lay out every (KH, KW, C) window of NHWC ``x`` as one row of ``cols``."""
    out_h, out_w = padded_output_size(x.shape, kernel_size, strides, pads,
                                      where="minidl/kernels/conv_numba.py im2col")
    return _im2col_kernel(np.ascontiguousarray(x), int(kernel_size[0]), int(kernel_size[1]),
                          int(strides[0]), int(strides[1]), int(pads[0][0]), int(pads[1][0]),
                          out_h, out_w)


def col2im(cols, input_shape, kernel_size, strides, pads):
    """Adjoint of :func:`im2col`: returns (N, H, W, C), overlaps summed, padding dropped."""
    batch, height, width, channels = (int(size) for size in input_shape)
    out_h, out_w = padded_output_size(input_shape, kernel_size, strides, pads,
                                      where="minidl/kernels/conv_numba.py col2im")
    expected = (batch * out_h * out_w, int(kernel_size[0]) * int(kernel_size[1]) * channels)
    if cols.shape != expected:
        raise ValueError(
            f"minidl/kernels/conv_numba.py col2im: cols must have shape {expected} for "
            f"input_shape {tuple(input_shape)}, got {cols.shape}"
        )
    return _col2im_kernel(np.ascontiguousarray(cols), batch, height, width, channels,
                          int(kernel_size[0]), int(kernel_size[1]),
                          int(strides[0]), int(strides[1]), int(pads[0][0]), int(pads[1][0]),
                          out_h, out_w)
