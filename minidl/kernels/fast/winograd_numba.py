"""Winograd's transforms compiled with Numba: the fast path of ``winograd.py``.

Same contract as :mod:`minidl.kernels.fast.winograd_reference` (read that file first). Each
tile is transformed in two passes of small matrix products along its two axes,

    T[a, j] = sum_i BT_h[a, i] d[i, j]        then     U[a, b] = sum_j BT_w[b, j] T[a, j]

and the same for the output transform (AT_h, then AT_w). Many entries of a transform matrix
are zero (39% of F(4, 3)'s BT): those are skipped.

The tiles of a tile row go a group at a time, side by side: the group's pixels are first
gathered as d[i, j, (tile, channel)], so that each term of a pass is one long vectorised
loop over the group's ``_RUN_FLOATS`` or so (tile, channel) values, and the positions of U
(and of M, for the output transform) hold the group's tiles one after the other too. One
tile at a time made one short loop of C values per term (a few vector instructions, and
the loop's own cost on top): the stem's 32-channel transforms ran 1.3-1.5x slower, the
35x35 layers' 1.1-1.5x (``benchmarks/winograd_transforms.py``). Each loop indexes with its
own loop variable (k, c or f), which Numba vectorises, and takes its views once per group
and position, not once per term: a view per term cost the 17x17 layers 10-20%. The sums
are the same, term for term and in the same order, so the numbers do not change.
``prange`` runs over the chunk's tile rows; each writes its own tiles of ``out`` (input) or
its own output pixels (output), so there are no races.

Example::

    # 35x35 input, 3x3 kernel, 'same': F(4x4, 3x3), 9x9 tiles per image; tile rows 0-3
    winograd_input_rows(x, BT_h, BT_w, (4, 4), (1, 1), (9, 9), 0, 4, tiles)
"""
import numpy as np
from numba import njit, prange

from minidl.kernels.fast.layout import column_block

# Values per loop of a pass: _RUN_FLOATS // channels tiles side by side (at least one, at
# most a tile row). The input transform of InceptionV3's Winograd layers, against one tile
# at a time: runs of 512 values 19% faster, 1024 and 2048 28-30%, 4096 25%.
_RUN_FLOATS = 1024


@njit(cache=True, parallel=True, nogil=True)   # nogil: chunk_workers.py runs it on two threads
def _input_kernel(x, transform_h, transform_w, tile_h, tile_w, top, left, tiles_h, tiles_w,
                  first_tile_row, tile_row_count, out):
    _, height, width, channels = x.shape
    alpha_h, alpha_w = transform_h.shape[0], transform_w.shape[0]
    span_h, span_w = transform_h.shape[1], transform_w.shape[1]    # pixels read per tile
    group = min(tiles_w, max(1, _RUN_FLOATS // channels))
    out_runs = out.reshape(out.shape[0], -1)                      # U[position, (tile, c)]
    for local_row in prange(tile_row_count):
        tile_row = first_tile_row + local_row
        n = tile_row // tiles_h
        ty = tile_row % tiles_h
        gathered = np.empty((span_h, span_w, group, channels), dtype=x.dtype)   # d[i, j, tile, c]
        d = gathered.reshape(span_h, span_w, group * channels)                # d[i, j, (tile, c)]
        half = np.empty((alpha_h, span_w, group * channels), dtype=x.dtype)   # T[a, j, (tile, c)]
        for first_tile in range(0, tiles_w, group):
            count = min(group, tiles_w - first_tile)
            run = count * channels
            for i in range(span_h):                        # d: the group's tiles, zeros outside
                h = ty * tile_h + i - top
                for j in range(span_w):
                    for t in range(count):
                        w = (first_tile + t) * tile_w + j - left
                        if 0 <= h < height and 0 <= w < width:
                            for c in range(channels):
                                gathered[i, j, t, c] = x[n, h, w, c]
                        else:
                            for c in range(channels):
                                gathered[i, j, t, c] = 0.0
            for a in range(alpha_h):                       # T = BT_h d, one loop per term
                for j in range(span_w):
                    for k in range(run):
                        half[a, j, k] = 0.0
                    for i in range(span_h):
                        coefficient = transform_h[a, i]
                        if coefficient != 0.0:
                            for k in range(run):
                                half[a, j, k] += coefficient * d[i, j, k]
            start = (local_row * tiles_w + first_tile) * channels
            for a in range(alpha_h):                       # U = T BT_w^T, the group's tiles in a row
                for b in range(alpha_w):
                    target = out_runs[a * alpha_w + b, start:start + run]
                    for k in range(run):
                        target[k] = 0.0
                    for j in range(span_w):
                        coefficient = transform_w[b, j]
                        if coefficient != 0.0:
                            for k in range(run):
                                target[k] += coefficient * half[a, j, k]


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
    group = min(tiles_w, max(1, _RUN_FLOATS // filters))
    product_runs = products.reshape(products.shape[0], -1)        # M[position, (tile, f)]
    first_pixel_row = (first_tile_row // tiles_h) * out_h + (first_tile_row % tiles_h) * tile_h
    for local_row in prange(tile_row_count):
        tile_row = first_tile_row + local_row
        ty = tile_row % tiles_h
        pixel_row = (tile_row // tiles_h) * out_h + ty * tile_h - first_pixel_row
        half = np.empty((tile_h, alpha_w, group * filters), dtype=y_rows.dtype)   # T[p, b, (tile, f)]
        y_tiles = np.empty((tile_h, tile_w, group, filters), dtype=y_rows.dtype)  # Y[p, q, tile, f]
        y = y_tiles.reshape(tile_h, tile_w, group * filters)                    # Y[p, q, (tile, f)]
        rows = min(tile_h, out_h - ty * tile_h)            # the tile's rows, cut at the bottom edge
        for first_tile in range(0, tiles_w, group):
            count = min(group, tiles_w - first_tile)
            run = count * filters
            start = (local_row * tiles_w + first_tile) * filters
            for p in range(rows):
                for b in range(alpha_w):
                    for k in range(run):
                        half[p, b, k] = 0.0
            for b in range(alpha_w):                       # T = AT_h M, each T[p, b] summed over a in order
                for a in range(alpha_h):
                    source = product_runs[a * alpha_w + b, start:start + run]
                    for p in range(rows):
                        coefficient = transform_h[p, a]
                        if coefficient != 0.0:
                            for k in range(run):
                                half[p, b, k] += coefficient * source[k]
            for p in range(rows):                          # Y = T AT_w^T
                for q in range(tile_w):
                    for k in range(run):
                        y[p, q, k] = 0.0
                    for b in range(alpha_w):
                        coefficient = transform_w[q, b]
                        if coefficient != 0.0:
                            for k in range(run):
                                y[p, q, k] += coefficient * half[p, b, k]
            for p in range(rows):                          # the pixels, cut at the right edge
                for t in range(count):
                    for q in range(tile_w):
                        ow = (first_tile + t) * tile_w + q
                        if ow >= out_w:
                            break
                        target = y_rows[(pixel_row + p) * out_w + ow][first_column:first_column + filters]
                        if epilogue == _NO_EPILOGUE:
                            for f in range(filters):
                                target[f] = y_tiles[p, q, t, f]
                        else:                              # batch norm (+ ReLU) while the pixel is in cache
                            for f in range(filters):
                                value = (y_tiles[p, q, t, f] - center[f]) * scale[f] + shift[f]
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
