"""Affine warp with bilinear resampling -- the Numba kernel that runs.

Same computation as ``minidl.kernels.reference.warp.affine_warp`` (read that file first: it
states the rules). Here one output row is one ``prange`` task; a task writes
only its own row, so no two threads ever write the same element. For each
output pixel the source coordinate, its two neighbours per axis and the four
bilinear weights are computed once and reused for every channel.
"""
import numpy as np
from numba import njit, prange

NEAREST, CONSTANT, REFLECT, WRAP = 0, 1, 2, 3


@njit(cache=True)
def _map_coordinate(coordinate, length, mode):
    """SciPy's ``map_coordinate``: bring one coordinate into [0, length - 1].

    Returns -1.0 for 'constant' when the coordinate is outside the image.
    """
    c = coordinate
    if c < 0:
        if mode == NEAREST:
            c = 0.0
        elif mode == CONSTANT:
            c = -1.0
        elif mode == REFLECT:
            pass          # not mapped: the neighbours are reflected (_tap)
        else:  # WRAP, period length - 1
            if length <= 1:
                c = 0.0
            else:
                period = length - 1
                c = c + period * (np.trunc(-c / period) + 1)
    elif c > length - 1:
        if mode == NEAREST:
            c = length - 1.0
        elif mode == CONSTANT:
            c = -1.0
        elif mode == REFLECT:
            pass
        else:
            if length <= 1:
                c = 0.0
            else:
                period = length - 1
                c = c - period * np.trunc(c / period)
    return c


@njit(cache=True)
def _mirror_tap(index, length):
    """Mirror a neighbour index outside [0, length - 1] about the edge pixel."""
    if length <= 1:
        return 0
    period = 2 * length - 2
    if index < 0:
        index = period * ((-index) // period) + index
        if index <= 1 - length:
            index = index + period
        else:
            index = -index
    elif index >= length:
        index = index - period * (index // period)
        if index >= length:
            index = period - index
    return index


@njit(cache=True)
def _tap(index, length, mode):
    """The pixel a neighbour index reads: half-sample reflection for 'reflect', else mirrored."""
    if mode == REFLECT:
        folded = index % (2 * length)          # Python semantics: never negative
        return 2 * length - 1 - folded if folded >= length else folded
    return _mirror_tap(index, length)


@njit(cache=True, parallel=True)
def affine_warp_kernel(image, m00, m01, m10, m11, offset_row, offset_col,
                       mode, cval, out):
    """Fill ``out`` (H, W, C) from ``image`` (H, W, C), both of the image's dtype.

    Arithmetic is float64 (float32 pixels are widened exactly); the store into a
    float32 ``out`` rounds to nearest, exactly as ``astype(float32)`` would.
    """
    height, width, channels = image.shape
    for r in prange(height):
        for q in range(width):
            row_in = _map_coordinate(r * m00 + q * m01 + offset_row, height, mode)
            col_in = _map_coordinate(r * m10 + q * m11 + offset_col, width, mode)
            if mode == CONSTANT and (row_in <= -1.0 or col_in <= -1.0):
                for ch in range(channels):
                    out[r, q, ch] = cval
                continue
            row_floor = np.floor(row_in)
            col_floor = np.floor(col_in)
            row_t = row_in - row_floor
            col_t = col_in - col_floor
            r0 = _tap(np.int64(row_floor), height, mode)
            r1 = _tap(np.int64(row_floor) + 1, height, mode)
            c0 = _tap(np.int64(col_floor), width, mode)
            c1 = _tap(np.int64(col_floor) + 1, width, mode)
            w_r0 = 1.0 - row_t
            w_c0 = 1.0 - col_t
            for ch in range(channels):
                # SciPy's summation order: (r0,c0), (r0,c1), (r1,c0), (r1,c1)
                value = np.float64(image[r0, c0, ch]) * w_r0 * w_c0
                value += image[r0, c1, ch] * w_r0 * col_t
                value += image[r1, c0, ch] * row_t * w_c0
                value += image[r1, c1, ch] * row_t * col_t
                out[r, q, ch] = value


def affine_warp(image, matrix, offset, fill_mode="nearest", cval=0.0):
    """Numba version of :func:`minidl.kernels.reference.warp.affine_warp` (same signature)."""
    from minidl.kernels.reference.warp import fill_mode_code
    image = np.asarray(image)
    if image.ndim != 3:
        raise ValueError(
            f"affine_warp expects an image of shape (H, W, C), got shape {image.shape}")
    mode = fill_mode_code(fill_mode)
    matrix = np.asarray(matrix, dtype=np.float64)
    offset = np.asarray(offset, dtype=np.float64)
    if image.dtype not in (np.float32, np.float64):
        source = np.ascontiguousarray(image, dtype=np.float64)
    else:
        source = np.ascontiguousarray(image)
    out = np.empty(source.shape, dtype=source.dtype)
    affine_warp_kernel(source, matrix[0, 0], matrix[0, 1], matrix[1, 0], matrix[1, 1],
                       offset[0], offset[1], mode, float(cval), out)
    return out.astype(image.dtype, copy=False)
