"""Max and average pooling compiled with Numba: the fast path.

Same contract and TF semantics as :mod:`minidl.kernels.pooling_reference` (read it first).

Parallelism without write races:

* forward passes: ``prange`` over output rows (n, oh); each writes its own row of y;
* ``max_pool_backward``: ``prange`` over images n; each image scatters into its own
  slice grad_input[n] (windows overlap within an image, never across images);
* ``avg_pool_backward``: a *gather* with ``prange`` over input rows (n, h): each input
  cell sums the shares of the windows that contain it.

Example::

    y, argmax = max_pool_forward(x, (3, 3), (2, 2), ((0, 0), (0, 0)))
"""
import numpy as np
from numba import njit, prange

from .geometry import padded_output_size


@njit(cache=True, parallel=True)
def _max_pool_forward_kernel(x, pool_h, pool_w, stride_h, stride_w, top, left, out_h, out_w):
    batch, height, width, channels = x.shape
    y = np.empty((batch, out_h, out_w, channels), dtype=x.dtype)
    argmax = np.empty((batch, out_h, out_w, channels), dtype=np.int64)
    for image_row in prange(batch * out_h):
        n = image_row // out_h
        oh = image_row % out_h
        # Clip the window to the input: padded cells never compete.
        h_start = max(oh * stride_h - top, 0)
        h_stop = min(oh * stride_h - top + pool_h, height)
        best = np.empty(channels, dtype=x.dtype)
        best_index = np.empty(channels, dtype=np.int64)
        for ow in range(out_w):
            w_start = max(ow * stride_w - left, 0)
            w_stop = min(ow * stride_w - left + pool_w, width)
            # Channels innermost: contiguous reads of x (NHWC), all channels at once.
            for c in range(channels):
                best[c] = x[n, h_start, w_start, c]
                best_index[c] = h_start * width + w_start
            for h in range(h_start, h_stop):       # row-major scan, strict '>':
                for w in range(w_start, w_stop):   # ties keep the first maximum
                    for c in range(channels):
                        if x[n, h, w, c] > best[c]:
                            best[c] = x[n, h, w, c]
                            best_index[c] = h * width + w
            for c in range(channels):
                y[n, oh, ow, c] = best[c]
                argmax[n, oh, ow, c] = best_index[c]
    return y, argmax


@njit(cache=True, parallel=True)
def _max_pool_backward_kernel(grad_output, argmax, height, width):
    batch, out_h, out_w, channels = grad_output.shape
    grad_input = np.zeros((batch, height, width, channels), dtype=grad_output.dtype)
    for n in prange(batch):
        for oh in range(out_h):
            for ow in range(out_w):
                for c in range(channels):
                    index = argmax[n, oh, ow, c]
                    grad_input[n, index // width, index % width, c] += grad_output[n, oh, ow, c]
    return grad_input


@njit(cache=True, parallel=True)
def _avg_pool_forward_kernel(x, pool_h, pool_w, stride_h, stride_w, top, left, out_h, out_w):
    batch, height, width, channels = x.shape
    y = np.empty((batch, out_h, out_w, channels), dtype=x.dtype)
    for image_row in prange(batch * out_h):
        n = image_row // out_h
        oh = image_row % out_h
        h_start = max(oh * stride_h - top, 0)
        h_stop = min(oh * stride_h - top + pool_h, height)
        total = np.empty(channels, dtype=x.dtype)
        for ow in range(out_w):
            w_start = max(ow * stride_w - left, 0)
            w_stop = min(ow * stride_w - left + pool_w, width)
            total[:] = 0.0
            for h in range(h_start, h_stop):
                for w in range(w_start, w_stop):
                    for c in range(channels):
                        total[c] += x[n, h, w, c]
            count = (h_stop - h_start) * (w_stop - w_start)  # in-bounds cells only (TF)
            for c in range(channels):
                y[n, oh, ow, c] = total[c] / count
    return y


@njit(cache=True, parallel=True)
def _avg_pool_backward_kernel(grad_output, height, width, pool_h, pool_w,
                              stride_h, stride_w, top, left):
    batch, out_h, out_w, channels = grad_output.shape
    grad_input = np.zeros((batch, height, width, channels), dtype=grad_output.dtype)
    for input_row in prange(batch * height):
        n = input_row // height
        h = input_row % height
        # Output rows whose window covers h: oh*SH - top <= h <= oh*SH - top + pool_h - 1.
        oh_first = max(0, (h + top - pool_h + stride_h) // stride_h)
        oh_last = min(out_h - 1, (h + top) // stride_h)
        for oh in range(oh_first, oh_last + 1):
            count_h = min(oh * stride_h - top + pool_h, height) - max(oh * stride_h - top, 0)
            for w in range(width):
                ow_first = max(0, (w + left - pool_w + stride_w) // stride_w)
                ow_last = min(out_w - 1, (w + left) // stride_w)
                for ow in range(ow_first, ow_last + 1):
                    count_w = min(ow * stride_w - left + pool_w, width) - max(ow * stride_w - left, 0)
                    count = count_h * count_w
                    for c in range(channels):
                        grad_input[n, h, w, c] += grad_output[n, oh, ow, c] / count
    return grad_input


def max_pool_forward(x, pool_size, strides, pads):
    """Return ``(y, argmax)``; argmax holds h*W + w of the first maximum (int64)."""
    out_h, out_w = padded_output_size(x.shape, pool_size, strides, pads,
                                      where="minidl/kernels/pooling_numba.py max_pool_forward")
    return _max_pool_forward_kernel(np.ascontiguousarray(x), int(pool_size[0]), int(pool_size[1]),
                                    int(strides[0]), int(strides[1]),
                                    int(pads[0][0]), int(pads[1][0]), out_h, out_w)


def max_pool_backward(grad_output, argmax, input_shape):
    """Scatter-add grad_output to the argmax cells -> grad_input (N, H, W, C)."""
    if grad_output.shape != argmax.shape:
        raise ValueError(
            "minidl/kernels/pooling_numba.py max_pool_backward: grad_output and argmax "
            f"must have the same shape, got {grad_output.shape} and {argmax.shape}"
        )
    return _max_pool_backward_kernel(np.ascontiguousarray(grad_output),
                                     np.ascontiguousarray(argmax, dtype=np.int64),
                                     int(input_shape[1]), int(input_shape[2]))


def avg_pool_forward(x, pool_size, strides, pads):
    """Window mean over the in-bounds cells (TF excludes padding from the divisor)."""
    out_h, out_w = padded_output_size(x.shape, pool_size, strides, pads,
                                      where="minidl/kernels/pooling_numba.py avg_pool_forward")
    return _avg_pool_forward_kernel(np.ascontiguousarray(x), int(pool_size[0]), int(pool_size[1]),
                                    int(strides[0]), int(strides[1]),
                                    int(pads[0][0]), int(pads[1][0]), out_h, out_w)


def avg_pool_backward(grad_output, input_shape, pool_size, strides, pads):
    """Spread each output gradient evenly over its in-bounds cells."""
    batch, height, width, channels = (int(size) for size in input_shape)
    out_h, out_w = padded_output_size(input_shape, pool_size, strides, pads,
                                      where="minidl/kernels/pooling_numba.py avg_pool_backward")
    if grad_output.shape != (batch, out_h, out_w, channels):
        raise ValueError(
            "minidl/kernels/pooling_numba.py avg_pool_backward: grad_output must have shape "
            f"{(batch, out_h, out_w, channels)}, got {grad_output.shape}"
        )
    return _avg_pool_backward_kernel(np.ascontiguousarray(grad_output), height, width,
                                     int(pool_size[0]), int(pool_size[1]),
                                     int(strides[0]), int(strides[1]),
                                     int(pads[0][0]), int(pads[1][0]))

