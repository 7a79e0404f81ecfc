"""Max and average pooling compiled with Numba: the fast path.

Same contract and TF semantics as :mod:`minidl.kernels.reference.pooling` (read it first).
The results are bitwise equal to the reference, not just close: every sum adds the same
numbers in the same order, and every division is done in the array's own dtype.

Parallelism without write races:

* forward passes: ``prange`` over output rows (n, oh); each writes its own row of y
  (and of argmax), using that row itself as the running max / running sum;
* ``max_pool_backward``: ``prange`` over images n; each image scatters into its own
  slice grad_input[n] (windows overlap within an image, never across images);
* ``avg_pool_backward``: first ``prange`` over output rows to divide each gradient by its
  window count (the "share"), then a *gather* with ``prange`` over input rows (n, h):
  each input cell sums the shares of the windows that contain it.

Why it is written this way (each measured on InceptionV3's shapes; ``benchmarks/README.md``):

* no scratch arrays inside ``prange`` bodies: the output row is the accumulator;
* max pooling updates the running max with two selects and unconditional stores, not an
  ``if``: LLVM then vectorises with a max, a compare and a blend, instead of masked
  stores (``vmaskmovps``) that are microcoded on AMD CPUs (the ``if`` was 3-4x slower);
* max backward indexes a (N, H*W, C) view of grad_input with argmax directly, instead of
  an integer division and modulo per element to recover (h, w);
* average backward divides once per output element (into ``share``) instead of once per
  (window, cell) pair: 9x fewer divisions for the 3x3 stride-1 windows of InceptionV3.

Example::

    y, argmax = max_pool_forward(x, (3, 3), (2, 2), ((0, 0), (0, 0)))
"""
import numpy as np
from numba import njit, prange

from minidl.kernels.fast.compiled import TwoBuilds

from minidl.kernels.geometry import padded_output_size


@njit(cache=True)
def _clipped_window(out_index, stride, pad_before, pool, in_size):
    """[start, stop) of output cell ``out_index``'s window along one axis, clipped to the
    input: padded cells never take part (TF's max and average pooling)."""
    first = out_index * stride - pad_before
    return max(first, 0), min(first + pool, in_size)


@njit(cache=True)
def _window_counts(out_size, in_size, pool, stride, pad_before, like):
    """Number of in-bounds cells of each window along one axis, in the dtype of ``like``.

    The TF divisor of a 2-D window is count_h[oh] * count_w[ow]; both factors are small
    integers, so their product is exact in float32 too, and dividing by it in the array's
    dtype rounds exactly like the reference (which divides by a float count of that dtype).
    """
    counts = np.empty(out_size, dtype=like.dtype)
    for o in range(out_size):
        start, stop = _clipped_window(o, stride, pad_before, pool, in_size)
        counts[o] = stop - start
    return counts


@TwoBuilds
def _max_pool_forward_kernel(x, pool_h, pool_w, stride_h, stride_w, top, left, out_h, out_w):
    batch, height, width, channels = x.shape
    y = np.empty((batch, out_h, out_w, channels), dtype=x.dtype)
    argmax = np.empty((batch, out_h, out_w, channels), dtype=np.int64)
    for image_row in prange(batch * out_h):
        n = image_row // out_h
        oh = image_row % out_h
        h_start, h_stop = _clipped_window(oh, stride_h, top, pool_h, height)
        for ow in range(out_w):
            w_start, w_stop = _clipped_window(ow, stride_w, left, pool_w, width)
            # The output cells are the running max: this thread owns them, no scratch needed.
            best = y[n, oh, ow]
            best_index = argmax[n, oh, ow]
            first = x[n, h_start, w_start]
            for c in range(channels):
                best[c] = first[c]
                best_index[c] = h_start * width + w_start
            for h in range(h_start, h_stop):       # row-major scan, strict '>':
                for w in range(w_start, w_stop):   # ties keep the first maximum
                    cell = x[n, h, w]              # channels innermost: contiguous NHWC reads
                    index = h * width + w
                    for c in range(channels):
                        # Selects, not `if value > best[c]: ...`: see the module docstring
                        # (an `if` compiles to slow masked stores). Same result, NaN included.
                        value = cell[c]
                        current = best[c]
                        better = value > current
                        best_index[c] = index if better else best_index[c]
                        best[c] = value if better else current
    return y, argmax


@TwoBuilds
def _max_pool_backward_kernel(grad_output, argmax, height, width):
    batch, out_h, out_w, channels = grad_output.shape
    grad_input = np.empty((batch, height, width, channels), dtype=grad_output.dtype)
    # argmax holds h*W + w, which is exactly the row of this (N, H*W, C) view.
    grad_flat = grad_input.reshape((batch, height * width, channels))
    # Only `batch` tasks (5 images on 2 threads split 3/2), but splitting an image further
    # would let two threads hit the same cell where windows overlap; channel blocks were
    # tried and were slower (partial cache lines shared between threads).
    for n in prange(batch):
        grad_flat[n] = 0.0  # zeroed by its own thread, just before the scatter reuses it
        for oh in range(out_h):        # ascending (oh, ow): overlapping windows add up
            for ow in range(out_w):    # in the same order as in the reference
                for c in range(channels):
                    grad_flat[n, argmax[n, oh, ow, c], c] += grad_output[n, oh, ow, c]
    return grad_input


@TwoBuilds
def _avg_pool_forward_kernel(x, pool_h, pool_w, stride_h, stride_w, top, left, out_h, out_w):
    batch, height, width, channels = x.shape
    y = np.empty((batch, out_h, out_w, channels), dtype=x.dtype)
    counts_h = _window_counts(out_h, height, pool_h, stride_h, top, x)  # in-bounds cells
    counts_w = _window_counts(out_w, width, pool_w, stride_w, left, x)  # only (TF)
    for image_row in prange(batch * out_h):
        n = image_row // out_h
        oh = image_row % out_h
        h_start, h_stop = _clipped_window(oh, stride_h, top, pool_h, height)
        for ow in range(out_w):
            w_start, w_stop = _clipped_window(ow, stride_w, left, pool_w, width)
            total = y[n, oh, ow]  # the output cells are the running sum
            for c in range(channels):
                total[c] = 0.0
            for h in range(h_start, h_stop):      # row-major, like the reference's
                for w in range(w_start, w_stop):  # (kh, kw) loop: the same rounding
                    cell = x[n, h, w]
                    for c in range(channels):
                        total[c] += cell[c]
            count = counts_h[oh] * counts_w[ow]
            for c in range(channels):
                total[c] = total[c] / count
    return y


@TwoBuilds
def _avg_pool_backward_kernel(grad_output, height, width, pool_h, pool_w,
                              stride_h, stride_w, top, left):
    batch, out_h, out_w, channels = grad_output.shape
    counts_h = _window_counts(out_h, height, pool_h, stride_h, top, grad_output)
    counts_w = _window_counts(out_w, width, pool_w, stride_w, left, grad_output)
    # Pass 1: each window's share of its gradient, one division per output element.
    share = np.empty_like(grad_output)
    for output_row in prange(batch * out_h):
        n = output_row // out_h
        oh = output_row % out_h
        for ow in range(out_w):
            count = counts_h[oh] * counts_w[ow]
            for c in range(channels):
                share[n, oh, ow, c] = grad_output[n, oh, ow, c] / count
    # Pass 2: each input cell gathers the shares of the windows that contain it.
    grad_input = np.empty((batch, height, width, channels), dtype=grad_output.dtype)
    for input_row in prange(batch * height):
        n = input_row // height
        h = input_row % height
        # Output rows whose window covers h: oh*SH - top <= h <= oh*SH - top + pool_h - 1.
        oh_first = max(0, (h + top - pool_h + stride_h) // stride_h)
        oh_last = min(out_h - 1, (h + top) // stride_h)
        for w in range(width):
            ow_first = max(0, (w + left - pool_w + stride_w) // stride_w)
            ow_last = min(out_w - 1, (w + left) // stride_w)
            total = grad_input[n, h, w]  # this thread owns input row (n, h)
            for c in range(channels):
                total[c] = 0.0
            # Descending (oh, ow): the reference adds window offsets (kh, kw) in ascending
            # order, and a larger offset means an earlier window. Same order, same bits.
            for oh in range(oh_last, oh_first - 1, -1):
                for ow in range(ow_last, ow_first - 1, -1):
                    cell = share[n, oh, ow]
                    for c in range(channels):
                        total[c] += cell[c]
    return grad_input


def _forward_windows(kernel, x, pool_size, strides, pads, name):
    """Run a forward window kernel over x with the output size and the scalars it takes."""
    out_h, out_w = padded_output_size(x.shape, pool_size, strides, pads,
                                      where=f"minidl/kernels/fast/pooling_numba.py {name}")
    return kernel(x.size, np.ascontiguousarray(x), int(pool_size[0]), int(pool_size[1]),
                  int(strides[0]), int(strides[1]), int(pads[0][0]), int(pads[1][0]), out_h, out_w)


def max_pool_forward(x, pool_size, strides, pads):
    """Return ``(y, argmax)``; argmax holds h*W + w of the first maximum (int64)."""
    return _forward_windows(_max_pool_forward_kernel, x, pool_size, strides, pads, "max_pool_forward")


def max_pool_backward(grad_output, argmax, input_shape):
    """Scatter-add grad_output to the argmax cells -> grad_input (N, H, W, C)."""
    if grad_output.shape != argmax.shape:
        raise ValueError(
            "minidl/kernels/fast/pooling_numba.py max_pool_backward: grad_output and argmax "
            f"must have the same shape, got {grad_output.shape} and {argmax.shape}"
        )
    return _max_pool_backward_kernel(grad_output.size, np.ascontiguousarray(grad_output),
                                     np.ascontiguousarray(argmax, dtype=np.int64),
                                     int(input_shape[1]), int(input_shape[2]))


def avg_pool_forward(x, pool_size, strides, pads):
    """Window mean over the in-bounds cells (TF excludes padding from the divisor)."""
    return _forward_windows(_avg_pool_forward_kernel, x, pool_size, strides, pads, "avg_pool_forward")


def avg_pool_backward(grad_output, input_shape, pool_size, strides, pads):
    """Spread each output gradient evenly over its in-bounds cells."""
    batch, height, width, channels = (int(size) for size in input_shape)
    out_h, out_w = padded_output_size(input_shape, pool_size, strides, pads,
                                      where="minidl/kernels/fast/pooling_numba.py avg_pool_backward")
    if grad_output.shape != (batch, out_h, out_w, channels):
        raise ValueError(
            "minidl/kernels/fast/pooling_numba.py avg_pool_backward: grad_output must have shape "
            f"{(batch, out_h, out_w, channels)}, got {grad_output.shape}"
        )
    return _avg_pool_backward_kernel(grad_output.size, np.ascontiguousarray(grad_output), height, width,
                                     int(pool_size[0]), int(pool_size[1]),
                                     int(strides[0]), int(strides[1]),
                                     int(pads[0][0]), int(pads[1][0]))

