"""Winograd's transforms in plain NumPy: the version to read (``winograd.py`` explains the method).

A tile row is one row of tiles of one image: the flattened index ``n * tiles_h + ty``.
Both functions work on the tile rows ``first_tile_row .. first_tile_row + tile_row_count - 1``
(one chunk of ``minidl/kernels/fast/winograd.py``), so a chunk's transformed data stays small.

Input transform, for every tile (n, ty, tx) and channel c of the chunk:

    d[i, j]       = x_padded[n, ty*MH + i, tx*MW + j, c]      i < AH, j < AW (the input tile)
    U[a, b, t, c] = sum over i, j of BT_h[a, i] * BT_w[b, j] * d[i, j]       (U = BT_h d BT_w^T)

Output transform, for every tile and filter f, with M = U @ V (one product per (a, b)):

    Y[p, q] = sum over a, b of AT_h[p, a] * AT_w[q, b] * M[a, b, t, f]      (Y = AT_h M AT_w^T)

and Y is the tile's MH x MW block of output pixels (cut at the image's bottom/right edge).

Example::

    tiles = np.empty((AH * AW, tile_row_count * tiles_w, C), x.dtype)
    winograd_input_rows(x, BT_h, BT_w, (MH, MW), (top, left), (tiles_h, tiles_w), 0, tile_row_count, tiles)
"""
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def winograd_input_rows(x, transform_h, transform_w, tile_output, pads, tiles, first_tile_row,
                        tile_row_count, out):
    """Fill ``out`` (AH*AW, tile_row_count*tiles_w, C) with the chunk's transformed input tiles.

    A tile reads ``transform_h.shape[1]`` x ``transform_w.shape[1]`` pixels of ``x``: A x A
    for the input transform BT; m x m for the kernel gradient's transform of dL/dy, whose
    matrices are AT^T (``winograd.py``).
    """
    (tile_h, tile_w), (top, left), (tiles_h, tiles_w) = tile_output, pads, tiles
    alpha_h, alpha_w = transform_h.shape[0], transform_w.shape[0]
    span_h, span_w = transform_h.shape[1], transform_w.shape[1]
    batch, height, width, channels = x.shape
    # Zero padding on every side, enough for the last tile of each row and column.
    bottom = max(0, (tiles_h - 1) * tile_h + span_h - top - height)
    right = max(0, (tiles_w - 1) * tile_w + span_w - left - width)
    padded = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))
    windows = sliding_window_view(padded, (span_h, span_w), axis=(1, 2))[:, ::tile_h, ::tile_w]
    windows = windows[:, :tiles_h, :tiles_w].reshape(batch * tiles_h, tiles_w, channels, span_h, span_w)
    chunk = windows[first_tile_row: first_tile_row + tile_row_count]     # (rows, tiles_w, C, AH, AW)
    transformed = np.einsum("ai,bj,rtcij->abrtc", transform_h, transform_w, chunk)
    out[...] = transformed.reshape(alpha_h * alpha_w, tile_row_count * tiles_w, channels)
    return out


def winograd_output_rows(products, transform_h, transform_w, tiles, first_tile_row, tile_row_count,
                         out_size, y_rows):
    """Write the chunk's output pixels into ``y_rows`` from ``products`` (AH*AW, tiles, F).

    ``y_rows`` is (pixels, F): the chunk's own pixels, in (n, oh, ow) order, from the first
    pixel of tile row ``first_tile_row``.
    """
    (tiles_h, tiles_w), (out_h, out_w) = tiles, out_size
    tile_h, alpha_h = transform_h.shape
    tile_w, alpha_w = transform_w.shape
    filters = products.shape[2]
    blocks = products.reshape(alpha_h, alpha_w, tile_row_count, tiles_w, filters)
    pixels = np.einsum("pa,qb,abrtf->rptqf", transform_h, transform_w, blocks)
    pixels = pixels.reshape(tile_row_count, tile_h, tiles_w * tile_w, filters)[:, :, :out_w]
    tile_rows = first_tile_row + np.arange(tile_row_count)
    inside = (tile_rows % tiles_h)[:, None] * tile_h + np.arange(tile_h)[None, :] < out_h
    y_rows[...] = pixels[inside].reshape(-1, filters)
    return y_rows
