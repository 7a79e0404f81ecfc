"""Max and average pooling in plain NumPy: the readable reference (TensorFlow semantics).

Shapes: x (N, H, W, C) -> y (N, OH, OW, C); ``pads = ((top, bottom), (left, right))``
from :func:`minidl.kernels.conv_geometry`. minidl/keras_semantics.md §4.3.

Max pooling
    y[n, oh, ow, c] = max over the window of x. ``argmax`` (N, OH, OW, C, int64) stores
    the flat index ``h*W + w`` of the winner in the *unpadded* input. Ties go to the FIRST
    maximal cell in row-major (h, w) order: we scan the window in that order and replace
    the running max only on a strict ``>`` (as TF's CPU kernel). Padded cells never win.
    Backward: the whole grad_output[n, oh, ow, c] goes to that one cell; windows overlap
    when stride < pool, so contributions add up.

Average pooling
    y = (sum of the in-bounds cells of the window) / (number of in-bounds cells). TF
    excludes padding from the divisor: for 3x3 'same' it is 4 at corners, 6 on edges, 9
    inside (PyTorch's default count_include_pad=True differs). Backward: each
    grad_output is spread evenly over the same in-bounds cells.

Example::

    out_h, out_w, pads = conv_geometry(x.shape, (3, 3), (2, 2), "valid")
    y, argmax = max_pool_forward(x, (3, 3), (2, 2), pads)
    grad_x = max_pool_backward(grad_y, argmax, x.shape)
"""
import numpy as np

from minidl.kernels.geometry import padded_output_size


def _window_slice(start, stride, count):
    """The cells at offset ``start`` of ``count`` windows spaced ``stride`` apart."""
    return slice(start, start + stride * (count - 1) + 1, stride)


def max_pool_forward(x, pool_size, strides, pads):
    """Return ``(y, argmax)``; see the module docstring."""
    batch, height, width, channels = x.shape
    pool_h, pool_w = pool_size
    stride_h, stride_w = strides
    (top, bottom), (left, right) = pads
    out_h, out_w = padded_output_size(x.shape, pool_size, strides, pads,
                                      where="minidl/kernels/reference/pooling.py max_pool_forward")
    x_padded = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))
    # Which padded cells are real input cells, and their flat index h*W + w.
    rows = np.arange(-top, height + bottom)
    columns = np.arange(-left, width + right)
    in_bounds = ((rows >= 0) & (rows < height))[:, None] & ((columns >= 0) & (columns < width))[None, :]
    flat_index = rows[:, None] * width + columns[None, :]

    best = np.zeros((batch, out_h, out_w, channels), dtype=x.dtype)
    argmax = np.full((batch, out_h, out_w, channels), -1, dtype=np.int64)
    for kh in range(pool_h):           # row-major scan of the window: (0,0), (0,1), ...
        for kw in range(pool_w):
            rows_slice = _window_slice(kh, stride_h, out_h)
            columns_slice = _window_slice(kw, stride_w, out_w)
            candidate = x_padded[:, rows_slice, columns_slice, :]
            valid = in_bounds[rows_slice, columns_slice][None, :, :, None]
            # Strict '>' keeps the first maximum; the first in-bounds cell always enters.
            better = valid & ((argmax < 0) | (candidate > best))
            best = np.where(better, candidate, best)
            argmax = np.where(better, flat_index[rows_slice, columns_slice][None, :, :, None], argmax)
    return best, argmax


def max_pool_backward(grad_output, argmax, input_shape):
    """Send each grad_output entry to its argmax cell (summing where windows overlap)."""
    batch, height, width, channels = input_shape
    if grad_output.shape != argmax.shape:
        raise ValueError(
            "minidl/kernels/reference/pooling.py max_pool_backward: grad_output and argmax "
            f"must have the same shape, got {grad_output.shape} and {argmax.shape}"
        )
    _, out_h, out_w, _ = grad_output.shape
    grad_flat = np.zeros((batch, height * width, channels), dtype=grad_output.dtype)
    image_index = np.arange(batch)[:, None]
    channel_index = np.arange(channels)[None, :]
    # For one output position each (n, c) has a single target, so fancy '+=' has no
    # duplicate indices; overlaps between positions are summed by the loop.
    for oh in range(out_h):
        for ow in range(out_w):
            grad_flat[image_index, argmax[:, oh, ow, :], channel_index] += grad_output[:, oh, ow, :]
    return grad_flat.reshape(batch, height, width, channels)


def _in_bounds_count(input_shape, pool_size, strides, pads, out_h, out_w):
    """(OH, OW) number of real (non-padded) cells in each window: the TF divisor."""
    (top, bottom), (left, right) = pads
    ones_padded = np.pad(np.ones(input_shape[1:3]), ((top, bottom), (left, right)))
    count = np.zeros((out_h, out_w))
    for kh in range(pool_size[0]):
        for kw in range(pool_size[1]):
            count += ones_padded[_window_slice(kh, strides[0], out_h),
                                 _window_slice(kw, strides[1], out_w)]
    return count


def avg_pool_forward(x, pool_size, strides, pads):
    """Window mean over in-bounds cells only; see the module docstring."""
    out_h, out_w = padded_output_size(x.shape, pool_size, strides, pads,
                                      where="minidl/kernels/reference/pooling.py avg_pool_forward")
    (top, bottom), (left, right) = pads
    x_padded = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))  # zeros add nothing
    total = np.zeros((x.shape[0], out_h, out_w, x.shape[3]), dtype=x.dtype)
    for kh in range(pool_size[0]):
        for kw in range(pool_size[1]):
            total += x_padded[:, _window_slice(kh, strides[0], out_h),
                              _window_slice(kw, strides[1], out_w), :]
    count = _in_bounds_count(x.shape, pool_size, strides, pads, out_h, out_w)
    return total / count[None, :, :, None].astype(x.dtype)


def avg_pool_backward(grad_output, input_shape, pool_size, strides, pads):
    """grad_input[cell] = sum over windows containing cell of grad_output / window count."""
    batch, height, width, channels = input_shape
    out_h, out_w = padded_output_size(input_shape, pool_size, strides, pads,
                                      where="minidl/kernels/reference/pooling.py avg_pool_backward")
    if grad_output.shape != (batch, out_h, out_w, channels):
        raise ValueError(
            "minidl/kernels/reference/pooling.py avg_pool_backward: grad_output must have shape "
            f"{(batch, out_h, out_w, channels)}, got {grad_output.shape}"
        )
    (top, bottom), (left, right) = pads
    count = _in_bounds_count(input_shape, pool_size, strides, pads, out_h, out_w)
    share = grad_output / count[None, :, :, None].astype(grad_output.dtype)
    grad_padded = np.zeros((batch, height + top + bottom, width + left + right, channels),
                           dtype=grad_output.dtype)
    for kh in range(pool_size[0]):
        for kw in range(pool_size[1]):
            grad_padded[:, _window_slice(kh, strides[0], out_h),
                        _window_slice(kw, strides[1], out_w), :] += share
    return np.ascontiguousarray(grad_padded[:, top: top + height, left: left + width, :])
