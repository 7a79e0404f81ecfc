"""Affine transformations of one image, as keras-preprocessing 1.1.2 (minidl/keras_semantics.md §1.3-§1.5).

Coordinates are **array indices (row, col)**, row first. The 3x3 homogeneous factors::

    R = [[cos t, -sin t, 0], [sin t, cos t, 0], [0, 0, 1]]    t = deg2rad(theta)
    T = [[1, 0, tx], [0, 1, ty], [0, 0, 1]]                    tx along rows, ty along cols
    S = [[1, -sin p, 0], [0, cos p, 0], [0, 0, 1]]             p = deg2rad(shear)  (DEGREES)
    Z = [[zx, 0, 0], [0, zy, 0], [0, 0, 1]]

A factor is used only if it is not the identity, and ``M = R @ T @ S @ Z``.
The matrix is then centred on ``c = (H/2 + 0.5, W/2 + 0.5)`` -- 150.0 for 299,
not the true pixel centre 149.0 (a Keras 1.1.2 quirk kept on purpose)::

    M_c = Off(c) @ M @ Off(-c),   output[r, q] = input[M_c[:2, :2] @ (r, q) + M_c[:2, 2]]

If no factor is present the image is returned untouched (no resampling).

Example (the spec's worked example)::

    m = affine_matrix(theta=10, tx=5, ty=-3, shear=0.1, zx=1.1, zy=0.9)
    m = transform_matrix_offset_center(m, 299, 299)
    m[:2, :2]  # [[1.0832885283, -0.1578300535], [0.1910129954, 0.8860528620]]
    m[:2, 2]   # [16.6262120735, -13.6460609823]
"""
import numpy as np

from minidl import kernels


def affine_matrix(theta=0, tx=0, ty=0, shear=0, zx=1, zy=1):
    """Compose M = R . T . S . Z (3x3, uncentred); None if every factor is the identity."""
    transform_matrix = None
    if theta != 0:
        angle = np.deg2rad(theta)
        transform_matrix = np.array([[np.cos(angle), -np.sin(angle), 0],
                                     [np.sin(angle), np.cos(angle), 0],
                                     [0, 0, 1]])
    if tx != 0 or ty != 0:
        shift_matrix = np.array([[1, 0, tx], [0, 1, ty], [0, 0, 1]])
        transform_matrix = shift_matrix if transform_matrix is None else transform_matrix @ shift_matrix
    if shear != 0:
        angle = np.deg2rad(shear)
        shear_matrix = np.array([[1, -np.sin(angle), 0], [0, np.cos(angle), 0], [0, 0, 1]])
        transform_matrix = shear_matrix if transform_matrix is None else transform_matrix @ shear_matrix
    if zx != 1 or zy != 1:
        zoom_matrix = np.array([[zx, 0, 0], [0, zy, 0], [0, 0, 1]])
        transform_matrix = zoom_matrix if transform_matrix is None else transform_matrix @ zoom_matrix
    return transform_matrix


def transform_matrix_offset_center(matrix, x, y):
    """Centre ``matrix`` on (x/2 + 0.5, y/2 + 0.5); x = height (rows), y = width (cols)."""
    o_x = float(x) / 2 + 0.5
    o_y = float(y) / 2 + 0.5
    offset_matrix = np.array([[1, 0, o_x], [0, 1, o_y], [0, 0, 1]])
    reset_matrix = np.array([[1, 0, -o_x], [0, 1, -o_y], [0, 0, 1]])
    return offset_matrix @ matrix @ reset_matrix


def flip_axis(x, axis):
    """Reverse ``x`` along ``axis`` (a horizontal flip is the column axis)."""
    x = np.asarray(x).swapaxes(axis, 0)
    x = x[::-1, ...]
    return x.swapaxes(0, axis)


def apply_affine_transform(x, theta=0, tx=0, ty=0, shear=0, zx=1, zy=1,
                           row_axis=0, col_axis=1, channel_axis=2,
                           fill_mode="nearest", cval=0., order=1):
    """Apply the affine transform to one image ``x`` (3-D) with bilinear resampling.

    Args:
        x: image array, e.g. (H, W, C) float32 at the 0..255 scale.
        theta: rotation in degrees. tx, ty: shifts in pixels along rows / cols.
        shear: shear angle in degrees. zx, zy: zoom factors along rows / cols
            (>1 zooms *out*: content shrinks).
        row_axis, col_axis, channel_axis: axes of ``x``.
        fill_mode: 'nearest' | 'constant' | 'reflect' | 'wrap'. cval: for 'constant'.
        order: interpolation order; only 1 (bilinear, the Keras default) is implemented.

    Returns:
        The transformed image, same shape and dtype (``x`` itself if no factor applies).
    """
    if order != 1:
        raise NotImplementedError(
            f"apply_affine_transform(order={order!r}) is not implemented in minidl: only order=1 "
            "(bilinear, the default) is")
    transform_matrix = affine_matrix(theta, tx, ty, shear, zx, zy)
    if transform_matrix is None:
        return x
    height, width = x.shape[row_axis], x.shape[col_axis]
    transform_matrix = transform_matrix_offset_center(transform_matrix, height, width)
    image_hwc = np.moveaxis(x, (row_axis, col_axis, channel_axis), (0, 1, 2))
    warped = kernels.affine_warp(image_hwc, transform_matrix[:2, :2], transform_matrix[:2, 2],
                                 fill_mode, cval)
    return np.moveaxis(warped, (0, 1, 2), (row_axis, col_axis, channel_axis))


def apply_channel_shift(x, intensity, channel_axis=0):
    """Add ``intensity`` to every channel, clipped to the image's original min..max."""
    x = np.rollaxis(x, channel_axis, 0)
    min_x, max_x = np.min(x), np.max(x)
    channel_images = [np.clip(x_channel + intensity, min_x, max_x) for x_channel in x]
    x = np.stack(channel_images, axis=0)
    return np.rollaxis(x, 0, channel_axis + 1)


def apply_brightness_shift(x, brightness):
    """Brightness through PIL, as keras-preprocessing 1.1.2.

    Note the 1.1.2 behaviour: ``array_to_img`` (scale=True) first stretches the
    image so its maximum becomes 255, and values are truncated to uint8.
    """
    from PIL import ImageEnhance

    from minidl.preprocessing.image.loading import array_to_img, img_to_array
    img = array_to_img(x)
    img = ImageEnhance.Brightness(img).enhance(brightness)
    return img_to_array(img)
