"""Array layouts the Numba kernels are fast on: contiguous rows, seen from a parent array.

Numba compiles each kernel for the *layout* of its arguments: 'C' (C-contiguous) or 'A'
(any strides). In a 'C' array the next channel is always the next float, so the loop over
the channels runs as SIMD instructions (8 to 16 floats at a time). In an 'A' array it may
not be, and the same loop runs one float at a time: 3 to 5 times slower on the engine's
batch-norm epilogue and Winograd transforms (figures in ``benchmarks/README.md``).

The engine often writes *a slice of columns*: a convolution writes its channels of the
concatenation that ends an Inception block, ``concat[..., first:first + F]``, seen as
(pixels, F) rows. Such rows are not contiguous (one row ends where the other branches'
channels begin), so a kernel given them directly gets the slow 'A' build.
:func:`column_block` gives the same memory as a contiguous *parent* plus the first column:
``rows == parent[:, first_column:first_column + F]``, where ``parent`` is a genuine
C-contiguous view of the rows' own memory (whole rows of the concatenation's buffer, no
copy). Kernels take ``(parent, first_column)`` and slice each row
(``parent[i][first_column:first_column + F]``): a 'C' slice, a vectorised loop.

Example::

    concat = np.empty((320, 1280), np.float32)
    parent, first = column_block(concat[:, 320:704])      # parent is concat, first is 320
"""
import numpy as np


def column_block(rows):
    """``(parent, first_column)`` with ``rows == parent[:, first_column:first_column + rows.shape[1]]``
    and ``parent`` C-contiguous, sharing ``rows``' memory; None if ``rows`` (2-D) is not such a
    slice (its channels not adjacent, or its memory not a C-contiguous array's)."""
    if rows.ndim != 2:
        return None
    if rows.flags.c_contiguous:
        return rows, 0
    count, width = rows.shape
    itemsize = rows.itemsize
    row_stride, column_stride = rows.strides
    if (column_stride != itemsize and width > 1) or row_stride <= 0 or row_stride % itemsize:
        return None
    owner = rows
    while isinstance(owner.base, np.ndarray):
        owner = owner.base
    if owner.dtype != rows.dtype or not owner.flags.c_contiguous:
        return None
    offset = rows.__array_interface__["data"][0] - owner.__array_interface__["data"][0]
    if offset < 0 or offset % itemsize:
        return None
    row_length = row_stride // itemsize
    first_row, first_column = divmod(offset // itemsize, row_length)
    end = (first_row + count) * row_length
    if first_column + width > row_length or end > owner.size:
        return None
    return owner.reshape(-1)[first_row * row_length:end].reshape(count, row_length), first_column
