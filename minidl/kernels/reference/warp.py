"""Affine warp with bilinear (order-1) resampling -- the readable NumPy reference.

This is the kernel behind ``ImageDataGenerator.apply_transform`` (``minidl/keras_semantics.md``
§1.4). keras-preprocessing 1.1.2 called, for every
channel, ``scipy.ndimage.affine_transform(channel, matrix, offset, order=1,
mode=fill_mode, cval=cval)``. minidl may not use scipy, so this file states
exactly what that call computes, and ``minidl/kernels/fast/warp_numba.py`` computes the same thing
fast. Tests prove the two agree.

For the output pixel at array index (r, q) the input is sampled at::

    row_in = matrix[0, 0] * r + matrix[0, 1] * q + offset[0]
    col_in = matrix[1, 0] * r + matrix[1, 1] * q + offset[1]

Each coordinate is first mapped into the image by the fill mode (SciPy's
``map_coordinate``), then interpolated bilinearly from its two neighbours
``floor(c)`` and ``floor(c) + 1`` with weights ``1 - t`` and ``t``
(``t = c - floor(c)``). A neighbour that still falls outside ``[0, n - 1]``
(which only happens at the very border) is mirrored about the edge pixel.
'reflect' is simpler still: the coordinate is not mapped at all, the image
is extended half-sample symmetrically (``d c b a | a b c d | d c b a``) and
each neighbour index is read from that extension -- checked against SciPy
1.17's ``map_coordinates(mode='reflect', order=1)`` (SciPy < 1.6 differed
within one pixel of the border).

Fill modes (n = axis length), as in scipy.ndimage >= 1.6:

* ``'nearest'``  -- clamp the coordinate to [0, n - 1]   (``a a a | a b c d | d d d``)
* ``'constant'`` -- any coordinate outside [0, n - 1] gives ``cval``, no blending
* ``'reflect'``  -- half-sample symmetric, period 2n    (``d c b a | a b c d | d c b a``)
* ``'wrap'``     -- periodic with period n - 1 (SciPy's 'wrap': the first and last
  pixels overlap; SciPy's 'grid-wrap' would use period n)

Values are computed in float64 and cast back to the input dtype.

Example::

    out = affine_warp(image_hwc, np.eye(2), np.zeros(2), "nearest", 0.0)
    assert np.array_equal(out, image_hwc)
"""
import numpy as np

FILL_MODES = ("nearest", "constant", "reflect", "wrap")


def fill_mode_code(fill_mode):
    """Integer code of a fill mode (the Numba kernel cannot take strings)."""
    if fill_mode not in FILL_MODES:
        raise ValueError(
            f"fill_mode must be one of {FILL_MODES}, got {fill_mode!r}")
    return FILL_MODES.index(fill_mode)


def map_coordinates_into_image(coordinate, length, fill_mode):
    """Map float coordinates along one axis into the image, as SciPy does.

    Returns the mapped coordinates (float64). For 'constant', coordinates
    outside [0, length - 1] become -1.0, the marker for "use cval".
    """
    c = np.array(coordinate, dtype=np.float64, copy=True)
    if length <= 1:
        # A single pixel: every mode maps everything onto it, except
        # 'constant', which still needs the in-range test below.
        if fill_mode != "constant":
            return np.zeros_like(c)
    below = c < 0
    above = c > length - 1
    if fill_mode == "nearest":
        c[below] = 0.0
        c[above] = length - 1
    elif fill_mode == "constant":
        c[below | above] = -1.0
    elif fill_mode == "reflect":
        pass              # the neighbours are reflected instead: see reflect_tap_index
    elif fill_mode == "wrap":
        period = length - 1
        low = c[below]
        c[below] = low + period * (np.trunc(-low / period) + 1)
        high = c[above]
        c[above] = high - period * np.trunc(high / period)
    else:
        raise ValueError(
            f"fill_mode must be one of {FILL_MODES}, got {fill_mode!r}")
    return c


def reflect_tap_index(index, length):
    """Index into the half-sample symmetric extension ``d c b a | a b c d | d c b a`` (period 2n)."""
    folded = np.mod(np.asarray(index, dtype=np.int64), 2 * length)
    return np.where(folded >= length, 2 * length - 1 - folded, folded)


def mirror_tap_index(index, length):
    """Mirror an integer neighbour index that fell outside [0, length - 1]."""
    index = np.asarray(index, dtype=np.int64).copy()
    if length <= 1:
        return np.zeros_like(index)
    period = 2 * length - 2
    low = index < 0
    neg = index[low]
    # C integer division truncates towards zero, hence np.trunc-like // on positives
    neg = period * ((-neg) // period) + neg
    neg = np.where(neg <= 1 - length, neg + period, -neg)
    index[low] = neg
    high = index >= length
    pos = index[high]
    pos = pos - period * (pos // period)
    pos = np.where(pos >= length, period - pos, pos)
    index[high] = pos
    return index


def affine_warp(image, matrix, offset, fill_mode="nearest", cval=0.0):
    """Warp a (H, W, C) image: output[r, q] = input sampled at matrix @ (r, q) + offset.

    Args:
        image: array (H, W, C), any float dtype (float32 in the generator).
        matrix: (2, 2) array in (row, col) index space (minidl/keras_semantics.md §1.3).
        offset: (2,) array.
        fill_mode: 'nearest' | 'constant' | 'reflect' | 'wrap'.
        cval: value for 'constant'.

    Returns:
        array (H, W, C) of the same dtype as ``image``.
    """
    image = np.asarray(image)
    if image.ndim != 3:
        raise ValueError(
            f"affine_warp expects an image of shape (H, W, C), got shape {image.shape}")
    fill_mode_code(fill_mode)
    matrix = np.asarray(matrix, dtype=np.float64)
    offset = np.asarray(offset, dtype=np.float64)
    height, width, _ = image.shape
    rows, cols = np.meshgrid(np.arange(height, dtype=np.float64),
                             np.arange(width, dtype=np.float64), indexing="ij")
    # Same summation order as SciPy: m[i, 0] * r + m[i, 1] * q + offset[i]
    row_in = rows * matrix[0, 0] + cols * matrix[0, 1] + offset[0]
    col_in = rows * matrix[1, 0] + cols * matrix[1, 1] + offset[1]
    row_in = map_coordinates_into_image(row_in, height, fill_mode)
    col_in = map_coordinates_into_image(col_in, width, fill_mode)
    use_cval = ((row_in <= -1.0) | (col_in <= -1.0)) if fill_mode == "constant" else np.zeros(row_in.shape, bool)

    row_start = np.floor(row_in)
    col_start = np.floor(col_in)
    row_t = row_in - row_start
    col_t = col_in - col_start
    row_start = row_start.astype(np.int64)
    col_start = col_start.astype(np.int64)
    tap_index = reflect_tap_index if fill_mode == "reflect" else mirror_tap_index
    r0 = tap_index(row_start, height)
    r1 = tap_index(row_start + 1, height)
    c0 = tap_index(col_start, width)
    c1 = tap_index(col_start + 1, width)
    # Out-of-image pixels read index 0 (any valid index) and are replaced by cval below.
    for index in (r0, r1, c0, c1):
        index[use_cval] = 0

    source = image.astype(np.float64)
    w_r0 = (1.0 - row_t)[..., None]
    w_r1 = row_t[..., None]
    w_c0 = (1.0 - col_t)[..., None]
    w_c1 = col_t[..., None]
    # Accumulate in SciPy's order: (r0,c0), (r0,c1), (r1,c0), (r1,c1); each term (v*w_row)*w_col.
    value = source[r0, c0] * w_r0 * w_c0
    value = value + source[r0, c1] * w_r0 * w_c1
    value = value + source[r1, c0] * w_r1 * w_c0
    value = value + source[r1, c1] * w_r1 * w_c1
    value[use_cval] = cval
    return value.astype(image.dtype)
