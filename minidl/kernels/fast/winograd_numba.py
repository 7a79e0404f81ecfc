"""Winograd's transforms compiled with Numba: the fast path of ``winograd.py``.

Same contract as :mod:`minidl.kernels.fast.winograd_reference` (read that file first). Each
tile is transformed in two passes of small matrix products along its two axes,

    T[a, j] = sum_i BT_h[a, i] d[i, j]        then     U[a, b] = sum_j BT_w[b, j] T[a, j]

with the channels as the innermost, vectorised loop. Many entries of a transform matrix are
zero (39% of F(4, 3)'s BT): those are skipped. ``prange`` runs over the chunk's tile rows; each writes
its own tiles of ``out`` (input) or its own output pixels (output), so there are no races.

Example::

    # 35x35 input, 3x3 kernel, 'same': F(4x4, 3x3), 9x9 tiles per image; tile rows 0-3
    winograd_input_rows(x, BT_h, BT_w, (4, 4), (1, 1), (9, 9), 0, 4, tiles)
"""
import numpy as np
from numba import njit, prange

from minidl.kernels.fast.layout import column_block


@njit(cache=True, parallel=True, nogil=True)   # nogil: chunk_workers.py runs it on two threads
def _input_kernel(x, transform_h, transform_w, tile_h, tile_w, top, left, tiles_h, tiles_w,
                  first_tile_row, tile_row_count, out):
    batch, height, width, channels = x.shape
    alpha_h, alpha_w = transform_h.shape[0], transform_w.shape[0]
    span_h, span_w = transform_h.shape[1], transform_w.shape[1]    # pixels read per tile
    for local_row in prange(tile_row_count):
        tile_row = first_tile_row + local_row
        n = tile_row // tiles_h
        ty = tile_row % tiles_h
        tile = np.empty((span_h, span_w, channels), dtype=x.dtype)
        half = np.empty((alpha_h, span_w, channels), dtype=x.dtype)
        for tx in range(tiles_w):
            for i in range(span_h):                        # d: the input tile, zeros outside
                h = ty * tile_h + i - top
                for j in range(span_w):
                    w = tx * tile_w + j - left
                    if 0 <= h < height and 0 <= w < width:
                        for c in range(channels):
                            tile[i, j, c] = x[n, h, w, c]
                    else:
                        for c in range(channels):
                            tile[i, j, c] = 0.0
            for a in range(alpha_h):                       # T = BT_h d
                for j in range(span_w):
                    for c in range(channels):
                        half[a, j, c] = 0.0
                    for i in range(span_h):
                        coefficient = transform_h[a, i]
                        if coefficient != 0.0:
                            for c in range(channels):
                                half[a, j, c] += coefficient * tile[i, j, c]
            column = local_row * tiles_w + tx
            for a in range(alpha_h):                       # U = T BT_w^T
                for b in range(alpha_w):
                    target = out[a * alpha_w + b, column]
                    for c in range(channels):
                        target[c] = 0.0
                    for j in range(span_w):
                        coefficient = transform_w[b, j]
                        if coefficient != 0.0:
                            for c in range(channels):
                                target[c] += coefficient * half[a, j, c]


def winograd_input_rows(x, transform_h, transform_w, tile_output, pads, tiles, first_tile_row,
                        tile_row_count, out):
    """Fill ``out`` (AH*AW, tile_row_count*tiles_w, C) with the chunk's transformed input tiles.

    A tile reads ``transform_h.shape[1]`` x ``transform_w.shape[1]`` pixels: A x A for the
    input transform BT, m x m for the kernel gradient's transform of dL/dy with AT^T.
    """
    _input_kernel(x, transform_h, transform_w, tile_output[0], tile_output[1], pads[0], pads[1],
                  tiles[0], tiles[1], first_tile_row, tile_row_count, out)
    return out


_NO_EPILOGUE, _BATCHNORM, _BATCHNORM_RELU = 0, 1, 2


@njit(cache=True, parallel=True, nogil=True)
def _output_kernel(products, transform_h, transform_w, tiles_h, tiles_w, first_tile_row, tile_row_count,
                   out_h, out_w, y_rows, first_column, center, scale, shift, epilogue):
    tile_h, alpha_h = transform_h.shape
    tile_w, alpha_w = transform_w.shape
    filters = products.shape[2]
    zero = y_rows.dtype.type(0)
    first_pixel_row = (first_tile_row // tiles_h) * out_h + (first_tile_row % tiles_h) * tile_h
    for local_row in prange(tile_row_count):
        tile_row = first_tile_row + local_row
        ty = tile_row % tiles_h
        pixel_row = (tile_row // tiles_h) * out_h + ty * tile_h - first_pixel_row
        half = np.empty((tile_h, alpha_w, filters), dtype=y_rows.dtype)
        for tx in range(tiles_w):
            column = local_row * tiles_w + tx
            for p in range(tile_h):                        # T = AT_h M
                for b in range(alpha_w):
                    for f in range(filters):
                        half[p, b, f] = 0.0
                    for a in range(alpha_h):
                        coefficient = transform_h[p, a]
                        if coefficient != 0.0:
                            source = products[a * alpha_w + b, column]
                            for f in range(filters):
                                half[p, b, f] += coefficient * source[f]
            for p in range(tile_h):                        # Y = T AT_w^T, cut at the edges
                if ty * tile_h + p >= out_h:
                    break
                for q in range(tile_w):
                    ow = tx * tile_w + q
                    if ow >= out_w:
                        break
                    target = y_rows[(pixel_row + p) * out_w + ow][first_column:first_column + filters]
                    for f in range(filters):
                        target[f] = 0.0
                    for b in range(alpha_w):
                        coefficient = transform_w[q, b]
                        if coefficient != 0.0:
                            for f in range(filters):
                                target[f] += coefficient * half[p, b, f]
                    if epilogue != _NO_EPILOGUE:      # batch norm (+ ReLU) while the pixel is in cache
                        for f in range(filters):
                            value = (target[f] - center[f]) * scale[f] + shift[f]
                            target[f] = zero if epilogue == _BATCHNORM_RELU and value <= zero else value


def winograd_output_rows(products, transform_h, transform_w, tiles, first_tile_row, tile_row_count,
                         out_size, y_rows, batchnorm=None):
    """Write the chunk's output pixels into ``y_rows`` from ``products`` (AH*AW, tiles, F).

    ``y_rows`` may be a column slice of a larger array (a concatenation's channels): the
    kernel then writes through its contiguous parent (``layout.py``). ``batchnorm``, if
    given, is an inference epilogue (``batchnorm_numba.InferenceEpilogue``): each pixel
    is then written already normalised (and through ReLU), the same numbers as applying
    it to the rows afterwards, without reading them back.
    """
    parent, first_column = column_block(y_rows) or (y_rows, 0)
    if batchnorm is None:
        no_values = np.zeros(0, y_rows.dtype)
        center = scale = shift = no_values
        epilogue = _NO_EPILOGUE
    else:
        center, scale, shift = batchnorm.affine
        epilogue = _BATCHNORM_RELU if batchnorm.relu else _BATCHNORM
    _output_kernel(products, transform_h, transform_w, tiles[0], tiles[1], first_tile_row, tile_row_count,
                   out_size[0], out_size[1], parent, first_column, center, scale, shift, epilogue)
    return y_rows
