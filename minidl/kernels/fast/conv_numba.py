"""im2col / col2im compiled with Numba: the fast path of the convolution.

Same contract as :mod:`minidl.kernels.reference.conv` (read that file first):

    cols[(n, oh, ow), (kh, kw, c)] = x_padded[n, oh*SH + kh, ow*SW + kw, c]

The convolution calls the chunked forms, :func:`im2col_rows` and :func:`col2im_rows_add`,
which work on output rows ``first_row .. first_row + row_count - 1`` (an output row is a
flattened (n, oh) index and owns OW consecutive rows of ``cols``). :func:`im2col` and
:func:`col2im` are the same kernels run on all N*OH output rows at once.

Parallelism without write races:

* ``im2col_rows`` runs ``prange`` over the chunk's output rows (n, oh): each writes its own
  OW rows of ``cols``. With batch 5 on 2 cores, rows balance better than images.
* ``col2im_rows_add`` is written as a *gather*: ``prange`` over the input rows (n, h) the
  chunk's windows touch; each input cell sums the (at most KH*KW) column entries of the
  chunk that were copied from it. Only the thread that owns row (n, h) writes it, so no
  atomics and no ``np.add.at`` (which is ~100x slower). Chunks run one after the other, so
  an input row shared by two chunks is never written by both at once.

Example::

    cols = im2col(x, (3, 3), (2, 2), ((0, 1), (0, 1)))
    dx = col2im(cols, x.shape, (3, 3), (2, 2), ((0, 1), (0, 1)))
    out_h, out_w = padded_output_size(x.shape, (3, 3), (2, 2), ((0, 1), (0, 1)))
    chunk = np.empty((2 * out_w, cols.shape[1]), x.dtype)       # output rows 0 and 1
    im2col_rows(x, (3, 3), (2, 2), ((0, 1), (0, 1)), 0, 2, chunk)   # chunk == cols[:2 * out_w]
"""
import numpy as np
from numba import prange

from minidl.kernels.fast.compiled import TwoBuilds

from minidl.kernels.geometry import padded_output_size


def check_chunk_arguments(where, input_shape, kernel_size, strides, pads, first_row, cols, cols_name):
    """Validate a chunk and return ``(out_h, out_w, row_count)``; ``where`` names the caller.

    ``cols`` must be a C-contiguous (row_count*OW, KH*KW*C) array whose rows are the output
    rows ``first_row .. first_row + row_count - 1`` of the input's N*OH output rows.
    """
    out_h, out_w = padded_output_size(input_shape, kernel_size, strides, pads, where=where)
    depth = int(kernel_size[0]) * int(kernel_size[1]) * int(input_shape[3])
    if cols.ndim != 2 or cols.shape[1] != depth or cols.shape[0] % out_w != 0 or cols.shape[0] == 0:
        raise ValueError(
            f"{where}: {cols_name} must have shape (row_count * {out_w}, {depth}) -- OW = {out_w} "
            f"window positions per output row, KH*KW*C = {depth} columns -- got {cols.shape}")
    if not cols.flags.c_contiguous:
        raise ValueError(f"{where}: {cols_name} must be C-contiguous (a leading slice of a buffer is)")
    row_count = cols.shape[0] // out_w
    total_rows = int(input_shape[0]) * out_h
    if first_row < 0 or first_row + row_count > total_rows:
        raise ValueError(
            f"{where}: output rows {first_row}..{first_row + row_count - 1} are outside the "
            f"N*OH = {total_rows} output rows of input shape {tuple(input_shape)}")
    return out_h, out_w, row_count


@TwoBuilds      # nogil, as every build: chunks.py runs it on several threads
def _im2col_rows_kernel(x, kernel_h, kernel_w, stride_h, stride_w, top, left, out_h, out_w,
                        first_row, row_count, cols):
    batch, height, width, channels = x.shape
    for chunk_row in prange(row_count):
        image_row = first_row + chunk_row
        n = image_row // out_h
        oh = image_row % out_h
        for ow in range(out_w):
            row = chunk_row * out_w + ow
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


@TwoBuilds
def _col2im_rows_add_kernel(grad_cols, first_row, row_count, grad_rows, channels,
                            kernel_h, kernel_w, stride_h, stride_w, top, left, out_h, out_w):
    batch, height, row_length = grad_rows.shape
    width = row_length // channels
    span = kernel_w * channels
    # The chunk's windows cover input rows from the first window's top row to the last
    # window's bottom row (clipped to the image); as flattened (n, h) indices, one range.
    first_image, first_oh = first_row // out_h, first_row % out_h
    last_image, last_oh = (first_row + row_count - 1) // out_h, (first_row + row_count - 1) % out_h
    first_input_row = first_image * height + max(0, first_oh * stride_h - top)
    stop_input_row = last_image * height + min(height, last_oh * stride_h - top + kernel_h)
    for index in prange(max(0, stop_input_row - first_input_row)):
        input_row = first_input_row + index
        n = input_row // height
        h = input_row % height
        for kh in range(kernel_h):
            # Which output row oh has kernel row kh on input row h?  oh*SH - top + kh == h
            offset_h = h + top - kh
            if offset_h < 0 or offset_h % stride_h != 0:
                continue
            oh = offset_h // stride_h
            chunk_row = n * out_h + oh - first_row
            if oh >= out_h or chunk_row < 0 or chunk_row >= row_count:
                continue  # that window is not in this chunk
            # Add each window's kernel row kh (KW*C consecutive columns) back onto the
            # KW*C consecutive values of input row h it was copied from. Only this
            # iteration writes row (n, h): no two threads touch the same element.
            for ow in range(out_w):
                row = chunk_row * out_w + ow
                start = kh * span
                w_first = ow * stride_w - left
                if w_first >= 0 and w_first + kernel_w <= width:
                    offset = w_first * channels
                    for j in range(span):
                        grad_rows[n, h, offset + j] += grad_cols[row, start + j]
                else:
                    for kw in range(kernel_w):
                        w = w_first + kw
                        if 0 <= w < width:
                            for c in range(channels):
                                grad_rows[n, h, w * channels + c] += grad_cols[row, start + kw * channels + c]


def _int_geometry(kernel_size, strides, pads):
    """(KH, KW, SH, SW, top, left) as plain ints, so Numba compiles one specialisation."""
    return (int(kernel_size[0]), int(kernel_size[1]), int(strides[0]), int(strides[1]),
            int(pads[0][0]), int(pads[1][0]))


def im2col_rows(x, kernel_size, strides, pads, first_row, row_count, out, work=None):
    """Fill ``out`` (row_count*OW, KH*KW*C) with rows of ``im2col(x)`` for output rows
    ``first_row .. first_row + row_count - 1``; returns ``out``. ``work``: the size of the
    whole convolution the chunk belongs to (``compiled.py``: it picks the build), default
    the chunk's."""
    where = "minidl/kernels/fast/conv_numba.py im2col_rows"
    out_h, out_w, received_rows = check_chunk_arguments(where, x.shape, kernel_size, strides, pads,
                                                        int(first_row), out, "out")
    if received_rows != row_count:
        raise ValueError(f"{where}: out must have {row_count * out_w} rows for "
                         f"row_count={row_count}, got {out.shape[0]}")
    _im2col_rows_kernel(out.size if work is None else work, np.ascontiguousarray(x),
                        *_int_geometry(kernel_size, strides, pads),
                        out_h, out_w, int(first_row), int(row_count), out)
    return out


def col2im_rows_add(grad_cols, first_row, grad_input, kernel_size, strides, pads, work=None):
    """Add the col2im of one chunk of rows (``grad_cols``, output rows ``first_row ..``) into
    ``grad_input`` (N, H, W, C, C-contiguous); returns ``grad_input``. ``work`` as for
    :func:`im2col_rows`."""
    where = "minidl/kernels/fast/conv_numba.py col2im_rows_add"
    if grad_input.ndim != 4 or not grad_input.flags.c_contiguous:
        raise ValueError(f"{where}: grad_input must be a C-contiguous (N, H, W, C) array, "
                         f"got shape {grad_input.shape}")
    out_h, out_w, row_count = check_chunk_arguments(where, grad_input.shape, kernel_size, strides,
                                                    pads, int(first_row), grad_cols, "grad_cols")
    batch, height, width, channels = grad_input.shape
    _col2im_rows_add_kernel(grad_cols.size if work is None else work, grad_cols, int(first_row), row_count,
                            grad_input.reshape(batch, height, width * channels), channels,
                            *_int_geometry(kernel_size, strides, pads), out_h, out_w)
    return grad_input


def im2col(x, kernel_size, strides, pads):
    """Lay out every (KH, KW, C) window of NHWC ``x`` as one row of ``cols``."""
    out_h, out_w = padded_output_size(x.shape, kernel_size, strides, pads,
                                      where="minidl/kernels/fast/conv_numba.py im2col")
    depth = int(kernel_size[0]) * int(kernel_size[1]) * x.shape[3]
    cols = np.empty((x.shape[0] * out_h * out_w, depth), dtype=x.dtype)
    return im2col_rows(x, kernel_size, strides, pads, 0, x.shape[0] * out_h, cols)


def col2im(cols, input_shape, kernel_size, strides, pads):
    """Adjoint of :func:`im2col`: returns (N, H, W, C), overlaps summed, padding dropped."""
    batch, height, width, channels = (int(size) for size in input_shape)
    out_h, out_w = padded_output_size(input_shape, kernel_size, strides, pads,
                                      where="minidl/kernels/fast/conv_numba.py col2im")
    expected = (batch * out_h * out_w, int(kernel_size[0]) * int(kernel_size[1]) * channels)
    if cols.shape != expected:
        raise ValueError(
            f"minidl/kernels/fast/conv_numba.py col2im: cols must have shape {expected} for "
            f"input_shape {tuple(input_shape)}, got {cols.shape}"
        )
    grad_input = np.zeros((batch, height, width, channels), dtype=cols.dtype)
    return col2im_rows_add(np.ascontiguousarray(cols), 0, grad_input, kernel_size, strides, pads)
