"""2-D convolution as im2col + one BLAS matrix product (forward and backward).

Shapes (NHWC input, HWIO kernel, TensorFlow cross-correlation, no kernel flip):

    x (N, H, W, C), kernel (KH, KW, C, F)  ->  y (N, OH, OW, F)

Forward (``cols = im2col(x)`` of shape (N*OH*OW, KH*KW*C), ``K = kernel.reshape(KH*KW*C, F)``):

    y_2d = cols @ K

Backward, with ``g = grad_output.reshape(N*OH*OW, F)``:

    grad_kernel = (cols.T @ g).reshape(KH, KW, C, F)
    grad_input  = col2im(g @ K.T)

Why chunks. ``cols`` is KH*KW times larger than the input: 124 MB for InceptionV3's
147x147x32 -> 64 layer at batch 5. Built whole, it is written to main memory by im2col
and read back from it by the matrix product. But its rows are independent, so we build
it one chunk of *output rows* at a time (an output row is a flattened (n, oh) index and
owns OW rows of ``cols``) into one small reused buffer, and use each chunk at once,
while it is still in cache. Same equations, summed chunk by chunk over the rows::

    y_2d[rows]  = cols[rows] @ K
    grad_kernel = sum over chunks of cols[rows].T @ g[rows]
    grad_input  = sum over chunks of col2im_rows_add(g[rows] @ K.T)

A chunk holds about ``_CHUNK_BYTES`` = 2 MB of ``cols`` (about 1 MB per core, the size of
each core's L2 cache here); a layer whose whole ``cols`` fits in one chunk runs exactly as
an unchunked im2col + GEMM. Measured on a 2-core VM (batch 5, float32, median of 9 runs,
whole matrix -> 2 MB chunks, forward / backward with the input gradient):

    149x149x32 -> 32, 3x3 valid:   43 -> 25 ms  /  115 ->  54 ms
    147x147x32 -> 64, 3x3 same:    55 -> 39 ms  /  143 ->  83 ms
    73x73x80 -> 192,  3x3 valid:   63 -> 53 ms  /  124 -> 107 ms
    all 94 InceptionV3 convolutions, forward + backward: 1486 -> 1215 ms

1 MB chunks were slower (small matrix products), 4 and 8 MB about the same in total.

Both cores at once (``minidl/kernels/chunk_workers.py``). Forward hands whole chunks of a
layer with many of them to two threads, each running a chunk's im2col, product and
epilogue alone. Backward runs its chunks one after the other (splitting them between the
cores measured no faster for a whole training step).

The epilogue. At inference, each Conv2D -> BatchNormalization -> ReLU chain passes batch
norm + ReLU as ``epilogue``: it runs on each chunk of y right after its product, while
the chunk is in cache (``minidl/models/inference_fusion.py``).

A 1x1 kernel with stride 1 and no padding *is* a matrix product over pixels, so it skips
im2col entirely: ``x.reshape(-1, C) @ kernel.reshape(C, F)``. Bias and activation belong
to the layer, not here. ``pads`` comes from :func:`minidl.kernels.conv_geometry`.

Example::

    out_h, out_w, pads = conv_geometry(x.shape, (3, 3), (1, 1), "same")
    y = conv2d_forward(x, kernel, (1, 1), pads)
    grad_x, grad_kernel = conv2d_backward(grad_y, x, kernel, (1, 1), pads)
"""
import numpy as np

from minidl import kernels

from .chunk_workers import for_each_chunk
from .geometry import padded_output_size


def _check_shapes(x, kernel, where):
    if x.ndim != 4:
        raise ValueError(f"minidl/kernels/conv.py {where}: x must be NHWC (4-D), got shape {x.shape}")
    if kernel.ndim != 4 or kernel.shape[2] != x.shape[3]:
        raise ValueError(
            f"minidl/kernels/conv.py {where}: kernel must be (KH, KW, C={x.shape[3]}, F), "
            f"got shape {kernel.shape} for input shape {x.shape}"
        )


# About this many bytes of ``cols`` per chunk (chosen by measurement, see the docstring).
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
    chunks = _equal_chunks(0, total_rows, -(-total_rows // most_rows))
    return max(count for _, count in chunks), chunks


def _equal_chunks(first_row, total_rows, count):
    """Rows first_row .. first_row + total_rows - 1 in ``count`` chunks of equal sizes (+-1)
    (fewer if there are fewer rows: a chunk has at least one)."""
    count = max(1, min(count, total_rows))
    bounds = [first_row + total_rows * i // count for i in range(count + 1)]
    return [(start, stop - start) for start, stop in zip(bounds, bounds[1:])]


def _is_pointwise(kernel, strides, pads):
    """1x1 kernel, stride 1, no padding: the convolution is a plain matrix product."""
    no_padding = tuple(pads[0]) == (0, 0) and tuple(pads[1]) == (0, 0)
    return kernel.shape[:2] == (1, 1) and tuple(strides) == (1, 1) and no_padding


def conv2d_forward(x, kernel, strides, pads, epilogue=None, out=None):
    """Convolve NHWC ``x`` with HWIO ``kernel``; returns y (N, OH, OW, F).

    ``epilogue``, if given, is called as ``epilogue(y_rows)`` on each chunk of the output,
    a (pixels, F) view, right after the chunk's product, while it is still in cache; it
    must work in place. :mod:`minidl.models.inference_fusion` passes inference batch norm
    + ReLU this way, so that the output is not read back from memory twice more.

    ``out``, if given, is where y goes instead of a new array: an (N, OH, OW, F) array or
    view, e.g. the channels ``[c:c+F]`` of a concatenation's output, which then needs no
    copy (inference fusion again). It is returned.
    """
    _check_shapes(x, kernel, "conv2d_forward")
    kernel_h, kernel_w, channels, filters = kernel.shape
    batch = x.shape[0]
    out_h, out_w = padded_output_size(x.shape, (kernel_h, kernel_w), strides, pads,
                                      where="minidl/kernels/conv.py conv2d_forward")
    y_2d = _output_rows(out, (batch, out_h, out_w, filters), np.result_type(x.dtype, kernel.dtype))
    if _is_pointwise(kernel, strides, pads):
        _pointwise_forward(x.reshape(-1, channels), kernel.reshape(channels, filters), epilogue, y_2d)
        return y_2d.reshape(batch, out_h, out_w, filters) if out is None else out
    x = np.ascontiguousarray(x)
    depth = kernel_h * kernel_w * channels
    kernel_2d = kernel.reshape(depth, filters)
    rows_per_chunk, chunks = _row_chunks(batch * out_h, out_w, depth, filters, x.dtype.itemsize)

    def convolve_chunk(chunk, buffer):
        first_row, row_count = chunk
        cols = buffer[: row_count * out_w]                # the last chunk may be shorter
        kernels.im2col_rows(x, (kernel_h, kernel_w), strides, pads, first_row, row_count, cols)
        pixels = y_2d[first_row * out_w: (first_row + row_count) * out_w]
        np.matmul(cols, kernel_2d, out=pixels)
        if epilogue is not None:
            epilogue(pixels)

    # Each chunk on one core, both cores at once when possible (see chunk_workers.py).
    for_each_chunk(chunks, lambda: np.empty((rows_per_chunk * out_w, depth), dtype=x.dtype), convolve_chunk)
    return y_2d.reshape(batch, out_h, out_w, filters) if out is None else out


def _output_rows(out, shape, dtype):
    """y as a (pixels, F) matrix: a new one, or a view of ``out`` (checked)."""
    if out is None:
        return np.empty((shape[0] * shape[1] * shape[2], shape[3]), dtype=dtype)
    if out.shape != shape or out.dtype != dtype:
        raise ValueError(f"minidl/kernels/conv.py conv2d_forward: out must have shape {shape} and dtype "
                         f"{dtype}, got {out.shape} {out.dtype}")
    rows = out.reshape(-1, shape[3])
    if not np.may_share_memory(rows, out):     # reshape had to copy: out's pixels are not evenly spaced
        raise ValueError("minidl/kernels/conv.py conv2d_forward: out must be an array or a slice "
                         "of its last axis (pixels evenly spaced in memory)")
    return rows


def _pointwise_forward(x_2d, kernel_2d, epilogue, y_2d):
    """y_2d = x_2d @ kernel_2d, then the epilogue on all of it.

    Not chunked: a 1x1 layer's whole output is at most 2 MB here (it stays in cache), and
    sharing its chunks between the cores measured no faster than one two-thread product
    (88.1 vs 88.4 ms for InceptionV3's 1x1 layers with batch norm + ReLU).
    """
    np.matmul(x_2d, kernel_2d, out=y_2d)
    if epilogue is not None:
        epilogue(y_2d)


def conv2d_backward(grad_output, x, kernel, strides, pads, need_input_grad=True):
    """Return ``(grad_input or None, grad_kernel)`` for y = conv2d_forward(x, kernel, ...).

    ``cols`` is recomputed from ``x``, chunk by chunk (cheaper in memory than caching it
    across 94 layers). Pass ``need_input_grad=False`` for the first layer, whose input
    needs no gradient: the grad_cols products and col2im are then skipped.
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
    x = np.ascontiguousarray(x)
    depth = kernel_h * kernel_w * channels
    kernel_2d = kernel.reshape(depth, filters)
    grad_kernel_2d = np.empty(kernel_2d.shape, dtype=np.result_type(x.dtype, grad_output.dtype))
    chunk_grad_kernel = None
    grad_input = None
    if need_input_grad:
        grad_input = np.zeros(x.shape, dtype=np.result_type(grad_output.dtype, kernel.dtype))
    rows_per_chunk, chunks = _row_chunks(x.shape[0] * expected_h, expected_w, depth, filters, x.dtype.itemsize)
    buffer = np.empty((rows_per_chunk * expected_w, depth), dtype=x.dtype)
    for first_row, row_count in chunks:
        cols = buffer[: row_count * expected_w]                 # the last chunk may be shorter
        kernels.im2col_rows(x, (kernel_h, kernel_w), strides, pads, first_row, row_count, cols)
        grad_rows = grad_2d[first_row * expected_w: (first_row + row_count) * expected_w]
        if first_row == 0:  # the first chunk starts the sum, the others add to it
            np.matmul(cols.T, grad_rows, out=grad_kernel_2d)
        else:
            chunk_grad_kernel = np.matmul(cols.T, grad_rows, out=chunk_grad_kernel)
            grad_kernel_2d += chunk_grad_kernel
        if need_input_grad:
            # cols has served grad_kernel: its buffer now takes this chunk's grad_cols.
            grad_cols = cols if cols.dtype == grad_input.dtype else None
            grad_cols = np.matmul(grad_rows, kernel_2d.T, out=grad_cols)
            kernels.col2im_rows_add(grad_cols, first_row, grad_input, (kernel_h, kernel_w), strides, pads)
    return grad_input, grad_kernel_2d.reshape(kernel.shape)
