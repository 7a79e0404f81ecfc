"""ImageDataGenerator augmentation: minidl/keras_semantics.md §1 (keras-preprocessing 1.1.2)."""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minidl import config
from minidl.kernels.fast import warp_numba
from minidl.kernels.reference import warp as warp_reference
from minidl.preprocessing.image import ImageDataGenerator
from minidl.preprocessing.image.affine import (affine_matrix, apply_affine_transform,
                                               transform_matrix_offset_center)

WORKSHOP = dict(rescale=1. / 255, shear_range=0.2, zoom_range=0.2, rotation_range=20,
                width_shift_range=0.2, height_shift_range=0.2, horizontal_flip=True)
MODES = ("nearest", "constant", "reflect", "wrap")


# ---------------------------------------------------------------- independent oracle
def _oracle_axis(c, n, mode):
    """Map one coordinate as scipy.ndimage (>= 1.6) does; None means 'use cval'.

    Written with Python's modulo instead of the C-style truncations of the kernels.
    """
    if n == 1:
        return None if (mode == "constant" and c != 0) else 0.0
    if 0 <= c <= n - 1:
        return c
    if mode == "nearest":
        return 0.0 if c < 0 else float(n - 1)
    if mode == "constant":
        return None
    if mode == "reflect":  # not mapped: the neighbours are read from "d c b a | a b c d | d c b a"
        return c
    # 'wrap': SciPy's period is n - 1 (first and last pixel overlap)
    if c > n - 1:
        return c - (n - 1) * math.floor(c / (n - 1))
    return c + (n - 1) * (math.floor(-c / (n - 1)) + 1)


def _oracle_tap(i, n, mode):
    """A neighbour outside the image: half-sample reflection (period 2n) for 'reflect',
    otherwise mirrored about the edge pixel (period 2n - 2)."""
    if mode == "reflect":
        i = i % (2 * n)
        return 2 * n - 1 - i if i >= n else i
    if n == 1:
        return 0
    period = 2 * n - 2
    i = i % period
    return period - i if i >= n else i


def oracle_warp(image, matrix, offset, mode, cval):
    """Per-pixel loop: bilinear interpolation with the fill mode's boundary rule."""
    h, w, ch = image.shape
    out = np.zeros(image.shape, dtype=np.float64)
    for r in range(h):
        for q in range(w):
            cr = _oracle_axis(matrix[0][0] * r + matrix[0][1] * q + offset[0], h, mode)
            cc = _oracle_axis(matrix[1][0] * r + matrix[1][1] * q + offset[1], w, mode)
            if cr is None or cc is None:
                out[r, q] = cval
                continue
            r0, c0 = math.floor(cr), math.floor(cc)
            tr, tc = cr - r0, cc - c0
            for dr, wr in ((0, 1 - tr), (1, tr)):
                for dc, wc in ((0, 1 - tc), (1, tc)):
                    out[r, q] += wr * wc * image[_oracle_tap(r0 + dr, h, mode), _oracle_tap(c0 + dc, w, mode)]
    return out


# ---------------------------------------------------------------- matrix (§1.3)
def test_worked_example_matrix_and_offset():
    m = transform_matrix_offset_center(affine_matrix(10, 5, -3, 0.1, 1.1, 0.9), 299, 299)
    np.testing.assert_allclose(m[:2, :2], [[1.0832885283, -0.1578300535],
                                           [0.1910129954, 0.8860528620]], atol=1e-9)
    np.testing.assert_allclose(m[:2, 2], [16.6262120735, -13.6460609823], atol=1e-9)


def test_centre_is_half_height_plus_half():
    # A pure rotation by 180 degrees maps the centre (H/2 + 0.5, W/2 + 0.5) onto itself.
    m = transform_matrix_offset_center(affine_matrix(theta=180), 299, 299)
    np.testing.assert_allclose(m[:2, :2] @ [150.0, 150.0] + m[:2, 2], [150.0, 150.0], atol=1e-9)


def test_no_factor_returns_image_untouched():
    x = np.random.default_rng(0).random((7, 9, 3)).astype(np.float32)
    assert apply_affine_transform(x) is x
    gen = ImageDataGenerator()
    params = gen.get_random_transform(x.shape)
    assert gen.apply_transform(x, params) is x


# ---------------------------------------------------------------- draws (§1.2)
def test_workshop_draw_order_replays_global_rng():
    gen = ImageDataGenerator(**WORKSHOP)
    for seed in range(5):
        np.random.seed(seed)
        params = gen.get_random_transform((299, 299, 3))
        after = np.random.random()
        np.random.seed(seed)
        theta = np.random.uniform(-20, 20)
        tx = np.random.uniform(-0.2, 0.2) * 299
        ty = np.random.uniform(-0.2, 0.2) * 299
        shear = np.random.uniform(-0.2, 0.2)
        zx, zy = np.random.uniform(0.8, 1.2, 2)
        flip_h = np.random.random() < 0.5
        np.random.random()  # the vertical flip draw is consumed although vertical_flip=False
        assert params["theta"] == theta and params["tx"] == tx and params["ty"] == ty
        assert params["shear"] == shear and params["zx"] == zx and params["zy"] == zy
        assert bool(params["flip_horizontal"]) == flip_h and not params["flip_vertical"]
        assert np.random.random() == after


def test_tx_scales_by_height_and_ty_by_width():
    gen = ImageDataGenerator(width_shift_range=0.1, height_shift_range=0.3)
    np.random.seed(3)
    params = gen.get_random_transform((40, 100, 3))
    np.random.seed(3)
    assert params["tx"] == np.random.uniform(-0.3, 0.3) * 40
    assert params["ty"] == np.random.uniform(-0.1, 0.1) * 100


def test_rescale_only_generator_consumes_two_draws():
    gen = ImageDataGenerator(rescale=1. / 255)
    np.random.seed(11)
    gen.get_random_transform((5, 5, 3))
    value = np.random.random()
    np.random.seed(11)
    np.random.random(), np.random.random()
    assert np.random.random() == value


@pytest.mark.parametrize("shift", [4, [2, 5, 7]])
def test_integer_or_list_shift_uses_choice_times_sign(shift):
    gen = ImageDataGenerator(width_shift_range=shift)
    np.random.seed(5)
    params = gen.get_random_transform((30, 30, 1))
    np.random.seed(5)
    expected = np.random.choice(shift) * np.random.choice([-1, 1])
    assert params["ty"] == expected and params["tx"] == 0


def test_channel_shift_and_brightness_are_drawn_last():
    gen = ImageDataGenerator(channel_shift_range=10., brightness_range=(0.5, 1.5))
    np.random.seed(2)
    params = gen.get_random_transform((4, 4, 3))
    np.random.seed(2)
    np.random.random(), np.random.random()
    assert params["channel_shift_intensity"] == np.random.uniform(-10, 10)
    assert params["brightness"] == np.random.uniform(0.5, 1.5)


def test_zoom_range_normalisation_and_errors():
    assert ImageDataGenerator(zoom_range=0.2).zoom_range == [0.8, 1.2]
    assert ImageDataGenerator(zoom_range=(0.5, 2)).zoom_range == [0.5, 2]
    with pytest.raises(ValueError, match="zoom_range"):
        ImageDataGenerator(zoom_range=(1, 2, 3))
    with pytest.raises(ValueError, match="fill_mode"):
        ImageDataGenerator(fill_mode="mirror")
    with pytest.raises(ValueError, match="validation_split"):
        ImageDataGenerator(validation_split=1.5)


# ---------------------------------------------------------------- conventions (§1.3, §1.5)
def test_positive_tx_moves_content_up_and_ty_left():
    x = np.zeros((9, 9, 1), dtype=np.float32)
    x[5, 6] = 100.0
    up = apply_affine_transform(x, tx=2)
    assert up[3, 6, 0] == 100.0 and up.sum() == 100.0
    left = apply_affine_transform(x, ty=3)
    assert left[5, 3, 0] == 100.0


def test_flip_happens_after_the_warp():
    rng = np.random.default_rng(1)
    x = (rng.random((12, 15, 3)) * 255).astype(np.float32)
    gen = ImageDataGenerator()
    params = dict(theta=17.0, tx=1.5, zx=1.1, zy=0.95)
    warped = gen.apply_transform(x, params)
    flipped = gen.apply_transform(x, dict(params, flip_horizontal=True))
    np.testing.assert_array_equal(flipped, warped[:, ::-1])
    flipped_v = gen.apply_transform(x, dict(params, flip_vertical=True))
    np.testing.assert_array_equal(flipped_v, warped[::-1])


def test_rescale_is_applied_after_the_transform_in_float32():
    rng = np.random.default_rng(2)
    x = np.round(rng.random((20, 20, 3)) * 255).astype(np.float32)
    gen = ImageDataGenerator(rescale=1. / 255, rotation_range=30)
    np.random.seed(4)
    out = gen.standardize(gen.random_transform(x.copy()))
    np.random.seed(4)
    warped = gen.apply_transform(x.copy(), gen.get_random_transform(x.shape))
    expected = warped * np.float32(1. / 255)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, expected)
    # interpolation ran on 0..255 values: rescaling first gives other float32 roundings
    np.random.seed(4)
    rescaled_first = gen.apply_transform(x * np.float32(1. / 255), gen.get_random_transform(x.shape))
    assert not np.array_equal(rescaled_first, expected)


def test_constant_mode_gives_cval_outside_without_blending():
    x = np.full((10, 10, 1), 50.0, dtype=np.float32)
    out = apply_affine_transform(x, ty=2.5, fill_mode="constant", cval=-7.0)
    # source column q + 2.5 > 9 for q >= 7 -> exactly cval; inside the image no blending with cval
    assert np.all(out[:, 7:] == -7.0) and np.all(out[:, :7] == 50.0)


def test_reflect_and_wrap_integer_shifts():
    row = np.arange(6, dtype=np.float32)
    x = np.tile(row, (4, 1))[..., None]
    reflect = apply_affine_transform(x, ty=-2, fill_mode="reflect")[0, :, 0]
    np.testing.assert_array_equal(reflect, [1, 0, 0, 1, 2, 3])  # "b a | a b c d"
    wrap = apply_affine_transform(x, ty=-2, fill_mode="wrap")[0, :, 0]
    np.testing.assert_array_equal(wrap, [3, 4, 0, 1, 2, 3])     # period n - 1 = 5


def test_reflect_matches_scipy_1_17_values(kernel_path):
    """Values printed by scipy.ndimage.map_coordinates(a, [x], order=1, mode='reflect'), SciPy 1.17."""
    a = np.array([10., 20., 40., 80., 160.])
    coordinates = [-6.3, -5.2, -4.7, -3.5, -1.5, -1.2, -0.7, -0.5, -0.3, 0.0, 0.4, 3.6, 4.0, 4.2, 4.5,
                   4.8, 5.3, 6.5, 9.7, 10.2]
    scipy_values = [136, 160, 136, 60, 15, 12, 10, 10, 10, 10, 14, 128, 160, 160, 160, 160, 136, 60, 10, 12]
    from minidl import kernels
    got = [kernels.affine_warp(a[None, :, None], np.eye(2), np.array([0.0, x]), "reflect")[0, 0, 0] for x in coordinates]
    np.testing.assert_allclose(got, scipy_values, atol=1e-9)


def test_brightness_goes_through_pil_like_keras():
    from PIL import Image, ImageEnhance
    rng = np.random.default_rng(3)
    x = (rng.random((6, 7, 3)) * 200).astype(np.float32)
    out = ImageDataGenerator().apply_transform(x, {"brightness": 1.3})
    stretched = (x / x.max() * 255).astype("uint8")  # array_to_img(scale=True)
    expected = np.asarray(ImageEnhance.Brightness(Image.fromarray(stretched)).enhance(1.3),
                          dtype=np.float32)
    np.testing.assert_array_equal(out, expected)


def test_channel_shift_clips_to_original_range():
    x = np.array([[[10., 20., 30.]]], dtype=np.float32).repeat(2, 0)
    out = ImageDataGenerator().apply_transform(x, {"channel_shift_intensity": 15.0})
    np.testing.assert_array_equal(out[0, 0], [25., 30., 30.])


# ---------------------------------------------------------------- resampling (§1.4)
@pytest.mark.parametrize("mode", MODES)
def test_warp_matches_independent_per_pixel_loop(mode):
    rng = np.random.default_rng(MODES.index(mode))
    for shape in [(9, 11, 2), (1, 6, 1), (2, 5, 3), (13, 7, 1)]:
        image = (rng.random(shape) * 255).astype(np.float32)
        matrix = np.array([[1.2, 0.3], [-0.25, 0.9]]) * rng.uniform(0.6, 1.6)
        offset = rng.normal(size=2) * 6
        expected = oracle_warp(image.astype(np.float64), matrix, offset, mode, 3.5)
        for warp in (warp_reference.affine_warp, warp_numba.affine_warp):
            np.testing.assert_allclose(warp(image, matrix, offset, mode, 3.5), expected,
                                       atol=1e-3, err_msg=f"{warp.__module__} {mode} {shape}")


@settings(max_examples=30, deadline=None)
@given(height=st.integers(1, 12), width=st.integers(1, 12), channels=st.integers(1, 4),
       mode=st.sampled_from(MODES), data=st.data())
def test_numba_and_reference_warp_agree_exactly(height, width, channels, mode, data):
    seed = data.draw(st.integers(0, 2 ** 31 - 1))
    rng = np.random.default_rng(seed)
    image = (rng.random((height, width, channels)) * 255).astype(np.float32)
    matrix = rng.normal(size=(2, 2)) * 2
    offset = rng.normal(size=2) * 20
    a = warp_reference.affine_warp(image, matrix, offset, mode, 1.0)
    b = warp_numba.affine_warp(image, matrix, offset, mode, 1.0)
    assert a.dtype == b.dtype == np.float32
    np.testing.assert_array_equal(a, b)


def test_nearest_mode_is_clamped_bilinear_interpolation():
    rng = np.random.default_rng(7)
    image = rng.random((8, 10, 1))
    matrix = np.array([[1.7, 0.2], [0.4, 1.9]])
    offset = np.array([-4.0, -6.0])
    out = warp_numba.affine_warp(image, matrix, offset, "nearest")
    for r, q in [(0, 0), (7, 9), (3, 4), (6, 1)]:
        cr = min(max(matrix[0] @ [r, q] + offset[0], 0), 7)
        cc = min(max(matrix[1] @ [r, q] + offset[1], 0), 9)
        r0, c0 = int(np.floor(cr)), int(np.floor(cc))
        r1, c1 = min(r0 + 1, 7), min(c0 + 1, 9)
        tr, tc = cr - r0, cc - c0
        expected = ((1 - tr) * (1 - tc) * image[r0, c0] + (1 - tr) * tc * image[r0, c1]
                    + tr * (1 - tc) * image[r1, c0] + tr * tc * image[r1, c1])
        np.testing.assert_allclose(out[r, q], expected, rtol=1e-12)


def test_kernel_path_switch_gives_identical_augmentation():
    x = (np.random.default_rng(5).random((31, 29, 3)) * 255).astype(np.float32)
    gen = ImageDataGenerator(**WORKSHOP)
    params = gen.get_random_transform(x.shape, seed=9)
    previous = config.kernel_path()
    try:
        config.set_kernel_path("reference")
        reference = gen.apply_transform(x, params)
        config.set_kernel_path("numba")
        fast = gen.apply_transform(x, params)
    finally:
        config.set_kernel_path(previous)
    np.testing.assert_array_equal(reference, fast)


# ---------------------------------------------------------------- standardize / fit
def test_fit_featurewise_and_standardize():
    rng = np.random.default_rng(8)
    data = (rng.random((6, 5, 4, 3)) * 255).astype(np.float32)
    gen = ImageDataGenerator(featurewise_center=True, featurewise_std_normalization=True,
                             rescale=0.5)
    gen.fit(data)
    scaled = data * np.float32(0.5)
    np.testing.assert_allclose(gen.mean.ravel(), scaled.mean(axis=(0, 1, 2)), rtol=1e-5)
    np.testing.assert_allclose(gen.std.ravel(), scaled.std(axis=(0, 1, 2)), rtol=1e-4)
    out = gen.standardize(data[0].copy())
    expected = (data[0] * np.float32(0.5) - gen.mean) / (gen.std + 1e-6)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="rank 4"):
        gen.fit(data[0])


def test_samplewise_and_preprocessing_function_order():
    calls = []

    def preprocess(x):
        calls.append(float(x.max()))
        return x + 1.0

    gen = ImageDataGenerator(samplewise_center=True, samplewise_std_normalization=True,
                             preprocessing_function=preprocess, rescale=2.0)
    x = np.arange(12, dtype=np.float32).reshape(2, 2, 3)
    out = gen.standardize(x.copy())
    assert calls == [11.0]  # preprocessing_function saw the raw values first
    y = (np.arange(12, dtype=np.float32).reshape(2, 2, 3) + 1) * 2
    expected = (y - y.mean()) / (y.std() + 1e-6)
    np.testing.assert_allclose(out, expected, rtol=1e-5)
