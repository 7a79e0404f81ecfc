"""The engine's convolution: im2col + BLAS in chunks on every core, or Winograd's algorithm.

The equations are those of ``minidl/kernels/reference/conv.py`` (read it first)::

    y_2d        = cols @ K                      cols = im2col(x): (N*OH*OW, KH*KW*C)
    grad_kernel = cols^T @ G                    G = grad_y as (N*OH*OW, F)
    grad_x      = col2im(G @ K^T)

What the engine adds, each for a measured reason (figures in ``benchmarks/README.md``):

* **Chunks.** ``cols`` is KH*KW times larger than the input. The engine never builds it
  whole: it fills one chunk of output rows at a time (about ``_CHUNK_BYTES`` of ``cols``,
  the size of the cores' L2 caches) into one reused buffer and uses it at once, while it
  is still in cache. Same equations, summed chunk by chunk over the rows::

      y_2d[rows]  = cols[rows] @ K
      grad_kernel = sum over chunks of cols[rows]^T @ G[rows]
      grad_x      = sum over chunks of col2im_rows_add(G[rows] @ K^T)

  A layer whose whole ``cols`` fits in one chunk runs as one im2col + one product.
* **Every core.** A forward pass with many chunks gives whole chunks to every core
  (``chunks.py``). In backward, each core sums the kernel gradient of one contiguous run of
  the chunks (its own partial sum, added in order at the end: the same numbers from run to
  run); col2im's chunks run in turn (their rows of grad_x overlap).
* **Winograd.** Stride-1 3x3, 5x5, 1x7, 7x1, 1x3 and 3x1 kernels on wide enough inputs run
  their forward pass as Winograd convolutions (``winograd.py``: fewer multiplications, the
  same numbers up to float rounding) unless ``minidl.config.set_winograd(False)``. Each
  kernel's transform is kept and made again when the kernel's values change. In backward,
  the input gradient of a stride-1 convolution is itself a convolution -- of grad_y, with
  the kernel turned by 180 degrees and its channels swapped -- run as Winograd's where
  Winograd takes it (:func:`_input_gradient_by_winograd`), and so is the kernel gradient
  of a layer whose forward Winograd takes (``winograd.winograd_kernel_gradient``: U^T @ dM
  per tile position, 2.25x fewer multiply-adds than cols^T @ G for a 3x3 kernel); the
  others' kernel gradient is im2col's (cols^T @ G).
* **1x1 kernels** with stride 1 and no padding are already a matrix product over pixels:
  ``x.reshape(-1, C) @ kernel.reshape(C, F)``, no im2col.
* **Epilogue and out=** (inference and frozen layers, ``minidl/engine/fusion.py``): batch norm + ReLU
  applied to each chunk of y right after its product, while it is in cache, and y written
  straight into its channels of a concatenation's output.
* **Only the gradients wanted** (used by ``minidl/engine/training_walk.py``): no input
  gradient for the deepest layer a training step walks (:func:`without_input_gradient`:
  no grad_cols products, no col2im), no kernel gradient for a frozen layer
  (:func:`without_weight_gradient`: no cols^T G product).

Bias and activation belong to the layer, not here. ``pads`` comes from
:func:`minidl.kernels.conv_geometry`.

Example::

    out_h, out_w, pads = conv_geometry(x.shape, (3, 3), (1, 1), "same")
    y = conv2d_forward(x, kernel, (1, 1), pads)
    grad_x, grad_kernel = conv2d_backward(grad_y, x, kernel, (1, 1), pads)
"""
import threading
from contextlib import contextmanager

import numpy as np

from minidl import config
from minidl.kernels.fast import conv_numba, winograd
from minidl.kernels.fast.chunks import (
    equal_chunks,
    for_each_chunk,
    output_rows,
    sum_of_products,
    sum_over_chunks,
)
from minidl.kernels.geometry import padded_output_size

_transformed_kernels = winograd.TransformedKernels()
_gradients_wanted = threading.local()    # .input / .weights: False inside without_*_gradient()


def _check_shapes(x, kernel, where):
    if x.ndim != 4:
        raise ValueError(f"minidl/kernels/fast/conv.py {where}: x must be NHWC (4-D), got shape {x.shape}")
    if kernel.ndim != 4 or kernel.shape[2] != x.shape[3]:
        raise ValueError(
            f"minidl/kernels/fast/conv.py {where}: kernel must be (KH, KW, C={x.shape[3]}, F), "
            f"got shape {kernel.shape} for input shape {x.shape}"
        )


# About this many bytes of ``cols`` per chunk (chosen by measurement: 1 MB chunks made the
# products too small, 4 and 8 MB were no faster; benchmarks/README.md).
# Every chunk's matrix products read the whole kernel again, and backward adds a
# kernel-sized partial grad_kernel per chunk: so a chunk also holds at least
# _KERNEL_MULTIPLE times the kernel's bytes, or layers with a big kernel and few pixels
# (8x8x448 -> 384) would spend their time there. Both are read at call time, so tests
# can shrink them to force many chunks.
_CHUNK_BYTES = 2 * 2**20
_KERNEL_MULTIPLE = 4


def _row_chunks(total_rows, out_w, depth, filters, itemsize):
    """Split output rows 0..total_rows-1 into chunks of at most about ``_CHUNK_BYTES`` of ``cols``.

    Returns ``(rows_per_chunk, [(first_row, row_count), ...])``: as few chunks as that
    allows, of equal sizes (give or take a row); ``rows_per_chunk`` is the largest. One
    output row is OW rows of ``cols``, i.e. OW * depth * itemsize bytes.
    """
    chunk_bytes = max(_CHUNK_BYTES, _KERNEL_MULTIPLE * depth * filters * itemsize)
    most_rows = max(1, min(total_rows, chunk_bytes // (out_w * depth * itemsize)))
    chunks = equal_chunks(0, total_rows, -(-total_rows // most_rows))
    return max(count for _, count in chunks), chunks


def _is_pointwise(kernel, strides, pads):
    """1x1 kernel, stride 1, no padding: the convolution is a plain matrix product."""
    no_padding = tuple(pads[0]) == (0, 0) and tuple(pads[1]) == (0, 0)
    return kernel.shape[:2] == (1, 1) and tuple(strides) == (1, 1) and no_padding


def conv2d_forward(x, kernel, strides, pads, epilogue=None, out=None):
    """Convolve NHWC ``x`` with HWIO ``kernel``; returns y (N, OH, OW, F).

    Winograd's algorithm where it applies (see the module docstring), else im2col's.
    ``epilogue``, if given, is called as ``epilogue(y_rows)`` on each chunk of the output,
    a (pixels, F) view, right after the chunk's product; it must work in place. ``out``, if
    given, is where y goes instead of a new array (an (N, OH, OW, F) array or a slice of
    its last axis); it is returned.
    """
    _check_shapes(x, kernel, "conv2d_forward")
    plan = winograd.winograd_plan(x.shape, kernel.shape, strides, pads) if config.winograd() else None
    if plan is not None:
        transformed = _transformed_kernels.get(kernel, plan)
        return winograd.winograd_conv2d_forward(x, transformed, plan, epilogue=epilogue, out=out)
    return _im2col_conv2d_forward(x, kernel, strides, pads, epilogue, out)


def _im2col_conv2d_forward(x, kernel, strides, pads, epilogue, out):
    """conv2d_forward by im2col + product, chunk by chunk."""
    kernel_h, kernel_w, channels, filters = kernel.shape
    batch = x.shape[0]
    out_h, out_w = padded_output_size(x.shape, (kernel_h, kernel_w), strides, pads,
                                      where="minidl/kernels/fast/conv.py conv2d_forward")
    y_2d = output_rows(out, (batch, out_h, out_w, filters), np.result_type(x.dtype, kernel.dtype),
                       "minidl/kernels/fast/conv.py conv2d_forward")
    if _is_pointwise(kernel, strides, pads):
        _pointwise_forward(x.reshape(-1, channels), kernel.reshape(channels, filters), epilogue, y_2d)
        return y_2d.reshape(batch, out_h, out_w, filters) if out is None else out
    x = np.ascontiguousarray(x)
    depth = kernel_h * kernel_w * channels
    kernel_2d = kernel.reshape(depth, filters)
    rows_per_chunk, chunks = _row_chunks(batch * out_h, out_w, depth, filters, x.dtype.itemsize)
    work = batch * out_h * out_w * depth            # the whole cols: it picks the kernels' build

    def convolve_chunk(chunk, buffer):
        first_row, row_count = chunk
        cols = buffer[: row_count * out_w]                # the last chunk may be shorter
        conv_numba.im2col_rows(x, (kernel_h, kernel_w), strides, pads, first_row, row_count, cols, work)
        pixels = y_2d[first_row * out_w: (first_row + row_count) * out_w]
        np.matmul(cols, kernel_2d, out=pixels)
        if epilogue is not None:
            epilogue(pixels)

    # Each chunk on one core, every core at once when possible (see chunks.py).
    for_each_chunk(chunks, lambda: np.empty((rows_per_chunk * out_w, depth), dtype=x.dtype), convolve_chunk)
    return y_2d.reshape(batch, out_h, out_w, filters) if out is None else out


def _pointwise_forward(x_2d, kernel_2d, epilogue, y_2d):
    """y_2d = x_2d @ kernel_2d, then the epilogue on all of it.

    Not chunked: a 1x1 layer's whole output is small enough to stay in cache, and sharing
    its chunks between the cores measured no faster than one product on every core.
    """
    np.matmul(x_2d, kernel_2d, out=y_2d)
    if epilogue is not None:
        epilogue(y_2d)


@contextmanager
def _not_wanted(which):
    previous = getattr(_gradients_wanted, which, True)
    setattr(_gradients_wanted, which, False)
    try:
        yield
    finally:
        setattr(_gradients_wanted, which, previous)


def without_input_gradient():
    """Within the block :func:`conv2d_backward` computes no input gradient (returns None
    for it): the training walk uses it where nobody needs that gradient (the model's
    input, a frozen part). It skips the grad_cols products and col2im."""
    return _not_wanted("input")


def without_weight_gradient():
    """Within the block :func:`conv2d_backward` computes no kernel gradient (returns None
    for it): the training walk uses it for a frozen layer. It skips cols^T G."""
    return _not_wanted("weights")


def conv2d_backward(grad_output, x, kernel, strides, pads):
    """Return ``(grad_x, grad_kernel)`` for y = conv2d_forward(x, kernel, ...); either is None
    inside :func:`without_input_gradient` / :func:`without_weight_gradient`.

    ``cols`` is built again from ``x``, chunk by chunk (cheaper in memory than keeping it
    across all the layers of a network). The input gradient is a Winograd convolution of
    grad_y where Winograd takes that convolution, else col2im's chunk after chunk. The
    kernel gradient is Winograd's where Winograd takes the forward, else cols^T @ G, its
    chunks summed in one run per core when they can be shared.
    """
    need_input_grad = getattr(_gradients_wanted, "input", True)
    need_kernel_grad = getattr(_gradients_wanted, "weights", True)
    _check_shapes(x, kernel, "conv2d_backward")
    kernel_h, kernel_w, channels, filters = kernel.shape
    expected_h, expected_w = padded_output_size(x.shape, (kernel_h, kernel_w), strides, pads,
                                                where="minidl/kernels/fast/conv.py conv2d_backward")
    expected = (x.shape[0], expected_h, expected_w, filters)
    if grad_output.shape != expected:
        raise ValueError(
            f"minidl/kernels/fast/conv.py conv2d_backward: grad_output must have shape {expected}, "
            f"got {grad_output.shape}"
        )
    grad_2d = grad_output.reshape(-1, filters)
    if _is_pointwise(kernel, strides, pads):
        grad_kernel = (x.reshape(-1, channels).T @ grad_2d).reshape(kernel.shape) if need_kernel_grad else None
        grad_input = None
        if need_input_grad:
            grad_input = (grad_2d @ kernel.reshape(channels, filters).T).reshape(x.shape)
        return grad_input, grad_kernel
    x = np.ascontiguousarray(x)
    depth = kernel_h * kernel_w * channels
    rows_per_chunk, chunks = _row_chunks(x.shape[0] * expected_h, expected_w, depth, filters, x.dtype.itemsize)
    geometry = (kernel_h, kernel_w), strides, pads, expected_w, x.shape[0] * expected_h * expected_w * depth
    grad_input = grad_kernel = None
    if need_input_grad and config.winograd():
        grad_input = _input_gradient_by_winograd(grad_output, kernel, strides, pads, x.shape)
    if need_input_grad and grad_input is None:
        grad_input = _input_gradient_by_col2im(grad_2d, kernel, x.shape, geometry, chunks)
    if need_kernel_grad and config.winograd():
        grad_kernel = _kernel_gradient_by_winograd(grad_output, x, kernel.shape, strides, pads)
    if need_kernel_grad and grad_kernel is None:
        grad_kernel = _kernel_gradient(grad_2d, x, depth, geometry, rows_per_chunk, chunks).reshape(kernel.shape)
    return grad_input, grad_kernel


def _kernel_gradient_by_winograd(grad_output, x, kernel_shape, strides, pads):
    """grad_kernel by Winograd (``winograd.winograd_kernel_gradient``) for a layer whose
    forward Winograd takes; None for the others."""
    plan = winograd.winograd_plan(x.shape, kernel_shape, strides, pads)
    return None if plan is None else winograd.winograd_kernel_gradient(x, grad_output, plan)


def _kernel_gradient(grad_2d, x, depth, geometry, rows_per_chunk, chunks):
    """grad_kernel (as (KH*KW*C, F)) = sum over chunks of cols[rows]^T @ G[rows], im2col
    chunk by chunk; the chunks in one run per core when they can be shared
    (``chunks.sum_over_chunks``)."""
    kernel_size, strides, pads, out_w, work = geometry

    def sum_in_order(run):
        buffer = np.empty((rows_per_chunk * out_w, depth), dtype=x.dtype)

        def chunk_products():
            for first_row, row_count in run:
                cols = buffer[: row_count * out_w]                 # the last chunk may be shorter
                conv_numba.im2col_rows(x, kernel_size, strides, pads, first_row, row_count, cols, work)
                yield cols.T, grad_2d[first_row * out_w: (first_row + row_count) * out_w]

        return sum_of_products(chunk_products())

    return sum_over_chunks(chunks, sum_in_order)


def _input_gradient_by_col2im(grad_2d, kernel, x_shape, geometry, chunks):
    """grad_x = sum over chunks of col2im_rows_add(G[rows] @ K^T), the chunks in turn (their
    col2im rows overlap)."""
    kernel_size, strides, pads, out_w, work = geometry
    kernel_2d = kernel.reshape(-1, kernel.shape[3])
    grad_input = np.zeros(x_shape, dtype=np.result_type(grad_2d.dtype, kernel.dtype))
    buffer = np.empty((max(count for _, count in chunks) * out_w, kernel_2d.shape[0]), dtype=grad_input.dtype)
    for first_row, row_count in chunks:
        grad_rows = grad_2d[first_row * out_w: (first_row + row_count) * out_w]
        grad_cols = np.matmul(grad_rows, kernel_2d.T, out=buffer[: len(grad_rows)])   # the last chunk may be shorter
        conv_numba.col2im_rows_add(grad_cols, first_row, grad_input, kernel_size, strides, pads, work)
    return grad_input


def transposed_kernel(kernel):
    """The kernel of the convolution that maps grad_y to grad_x: HWIO ``kernel`` turned by
    180 degrees in (H, W), its input and output channels swapped; (KH, KW, F, C)."""
    return np.ascontiguousarray(kernel[::-1, ::-1].transpose(0, 1, 3, 2))


def input_gradient_pads(kernel_shape, pads):
    """The padding of the convolution grad_x = conv(grad_y, transposed_kernel): KH - 1 - top
    above, KH - 1 - bottom below (the same across); stride 1 only."""
    (top, bottom), (left, right) = pads
    kernel_h, kernel_w = kernel_shape[:2]
    return ((kernel_h - 1 - top, kernel_h - 1 - bottom), (kernel_w - 1 - left, kernel_w - 1 - right))


def _input_gradient_by_winograd(grad_output, kernel, strides, pads, x_shape):
    """grad_x as the stride-1 convolution of grad_y with the transposed kernel, run as a
    Winograd convolution; None where that does not apply (strides, kernel, sizes).

    With stride 1, grad_x[i] = sum_k grad_y[i + top - k] K[k] is a correlation of grad_y
    (padded by KH - 1 - top and KH - 1 - bottom) with K turned around: the forward
    convolution's own kind, which Winograd does with fewer multiplications than
    grad_y @ K^T + col2im (``winograd.py``; the same numbers up to float rounding).
    """
    if tuple(strides) != (1, 1):
        return None
    back_pads = input_gradient_pads(kernel.shape, pads)
    if min(min(pair) for pair in back_pads) < 0:
        return None
    turned_shape = kernel.shape[:2] + (kernel.shape[3], kernel.shape[2])
    plan = winograd.winograd_plan(grad_output.shape, turned_shape, (1, 1), back_pads)
    if plan is None or plan.out_size != tuple(x_shape[1:3]):
        return None
    turned = winograd.transform_kernel(transposed_kernel(kernel), plan)
    return winograd.winograd_conv2d_forward(grad_output, turned, plan)

