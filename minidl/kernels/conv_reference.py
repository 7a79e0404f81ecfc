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

The convolution itself (``minidl/kernels/conv.py``) never builds the whole of ``cols`` for
a big layer: it walks over *output rows* -- a flattened (n, oh) index in range(N*OH), each
owning OW consecutive rows of ``cols`` -- a chunk at a time, so one small buffer stays in
cache. :func:`im2col_rows` fills the rows of ``cols`` of one chunk, and
:func:`col2im_rows_add` adds one chunk's gradient back into the input. By definition::

    im2col_rows(x, ..., first_row, row_count, out)
        ->  out == im2col(x)[first_row*OW : (first_row + row_count)*OW]
    col2im(cols) == sum over the chunks of col2im_rows_add(cols[chunk rows], first_row, ...)

Example::

    x = np.arange(16.0).reshape(1, 4, 4, 1)
    cols = im2col(x, (3, 3), (1, 1), ((0, 0), (0, 0)))   # shape (4, 9)
    dx = col2im(np.ones_like(cols), x.shape, (3, 3), (1, 1), ((0, 0), (0, 0)))
    # dx[0, :, :, 0] counts how many windows cover each pixel (1, 2, 2, 1 / 2, 4, 4, 2 / ...)
    out = np.empty((1 * 2, 9))                            # output row 1 = (n=0, oh=1): 2 windows
    im2col_rows(x, (3, 3), (1, 1), ((0, 0), (0, 0)), 1, 1, out)   # == cols[2:4]
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


# ------------------------------------------------------------ one chunk of output rows at a time
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
            f"window positions per output row, KH*KW*C = {depth} columns -- got {cols.shape}"
        )
    if not cols.flags.c_contiguous:
        raise ValueError(f"{where}: {cols_name} must be C-contiguous (a leading slice of a buffer is)")
    row_count = cols.shape[0] // out_w
    total_rows = int(input_shape[0]) * out_h
    if first_row < 0 or first_row + row_count > total_rows:
        raise ValueError(
            f"{where}: output rows {first_row}..{first_row + row_count - 1} are outside the "
            f"N*OH = {total_rows} output rows of input shape {tuple(input_shape)}"
        )
    return out_h, out_w, row_count


def _image_segments(first_row, row_count, out_h):
    """Split output rows ``first_row ..`` (flattened (n, oh)) into runs inside one image.

    Yields ``(n, oh_first, oh_stop, chunk_start)``: image n's output rows oh_first..oh_stop-1,
    which are rows chunk_start.. of the chunk. A chunk may end in one image and go on in the next.
    """
    row, stop = first_row, first_row + row_count
    while row < stop:
        n, oh_first = divmod(row, out_h)
        oh_stop = min(out_h, oh_first + stop - row)
        yield n, oh_first, oh_stop, row - first_row
        row += oh_stop - oh_first


def _padded_band(image, start, stop, pads):
    """Rows ``start .. stop-1`` (padded coordinates) of one zero-padded (H, W, C) image."""
    (top, _), (left, right) = pads
    height, width, channels = image.shape
    band = np.zeros((stop - start, left + width + right, channels), dtype=image.dtype)
    real_first, real_stop = max(start, top), min(stop, top + height)  # rows holding pixels
    if real_first < real_stop:
        band[real_first - start: real_stop - start, left: left + width] = \
            image[real_first - top: real_stop - top]
    return band


def im2col_rows(x, kernel_size, strides, pads, first_row, row_count, out):
    """Fill ``out`` (row_count*OW, KH*KW*C) with rows of ``im2col(x)`` for output rows
    ``first_row .. first_row + row_count - 1``; returns ``out``.

    Per image in the chunk, the windows of output rows oh_first..oh_stop-1 read padded input
    rows oh_first*SH .. (oh_stop-1)*SH + KH - 1: pad just that band, then take the same
    strided (kh, kw) slices as :func:`im2col`.
    """
    kernel_h, kernel_w = kernel_size
    stride_h, stride_w = strides
    out_h, out_w, received_rows = check_chunk_arguments(
        "minidl/kernels/conv_reference.py im2col_rows", x.shape, kernel_size, strides, pads,
        first_row, out, "out")
    if received_rows != row_count:
        raise ValueError(f"minidl/kernels/conv_reference.py im2col_rows: out must have "
                         f"{row_count * out_w} rows for row_count={row_count}, got {out.shape[0]}")
    out_windows = out.reshape(row_count, out_w, kernel_h, kernel_w, x.shape[3])  # a view
    for n, oh_first, oh_stop, chunk_start in _image_segments(first_row, row_count, out_h):
        count = oh_stop - oh_first
        band = _padded_band(x[n], oh_first * stride_h, (oh_stop - 1) * stride_h + kernel_h, pads)
        for kh in range(kernel_h):
            for kw in range(kernel_w):
                out_windows[chunk_start: chunk_start + count, :, kh, kw, :] = band[
                    kh: kh + stride_h * (count - 1) + 1: stride_h,
                    kw: kw + stride_w * (out_w - 1) + 1: stride_w,
                ]
    return out


def col2im_rows_add(grad_cols, first_row, grad_input, kernel_size, strides, pads):
    """Add the col2im of one chunk of rows into ``grad_input`` (N, H, W, C); returns it.

    ``grad_cols`` (row_count*OW, KH*KW*C) holds output rows ``first_row ..``. Per image: add
    the strided (kh, kw) slices into a zero band of padded rows (as :func:`col2im` does for
    the whole input), then add the band's real rows into ``grad_input`` (padding dropped).
    """
    kernel_h, kernel_w = kernel_size
    stride_h, stride_w = strides
    (top, _), (left, right) = pads
    height, width = grad_input.shape[1:3]
    out_h, out_w, row_count = check_chunk_arguments(
        "minidl/kernels/conv_reference.py col2im_rows_add", grad_input.shape, kernel_size,
        strides, pads, first_row, grad_cols, "grad_cols")
    grad_windows = grad_cols.reshape(row_count, out_w, kernel_h, kernel_w, grad_input.shape[3])
    for n, oh_first, oh_stop, chunk_start in _image_segments(first_row, row_count, out_h):
        count = oh_stop - oh_first
        band_start = oh_first * stride_h
        band = np.zeros(((count - 1) * stride_h + kernel_h, left + width + right, grad_input.shape[3]),
                        dtype=grad_cols.dtype)  # padded rows band_start .. of image n
        for kh in range(kernel_h):
            for kw in range(kernel_w):
                band[
                    kh: kh + stride_h * (count - 1) + 1: stride_h,
                    kw: kw + stride_w * (out_w - 1) + 1: stride_w,
                ] += grad_windows[chunk_start: chunk_start + count, :, kh, kw, :]
        # Drop the rows and columns that are padding; the rest belongs to input rows of image n.
        real_first, real_stop = max(band_start, top), min(band_start + band.shape[0], top + height)
        if real_first < real_stop:
            grad_input[n, real_first - top: real_stop - top] += \
                band[real_first - band_start: real_stop - band_start, left: left + width]
    return grad_input
