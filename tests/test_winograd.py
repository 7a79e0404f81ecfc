"""Winograd convolution (minidl/kernels/fast/winograd.py): the same convolution, fewer multiplications.

Winograd is the engine's: the reference path never runs it, and the reference convolution
(``minidl/kernels/reference/conv.py``) is what it is compared with.

Pinned down here:

* the transform matrices: AT ((G g) * (BT d)) is the correlation of d with g, exactly
  (float64), for every F(m, r) minidl uses;
* the Numba transforms equal the NumPy reference ones, chunk by chunk, and with a tile
  row's tiles in groups (a shorter last group; one tile at a time);
* winograd_conv2d_forward equals im2col's conv2d_forward up to float rounding, for every
  kernel shape it takes (3x3, 1x7, 7x1, 1x3, 3x1), 'same' and 'valid', sizes that tiles do
  not divide, float32 and float64, one chunk or many shared between the cores, with an
  epilogue (each output pixel once) and into a channel slice of a bigger array;
* which convolutions it takes (stride 1, not 1x1, enough channels);
* a kept transformed kernel is made again when the kernel's values change in place, and
  forgotten when the kernel array is freed;
* a layer's gradients still check (float64) with Winograd's forward, input gradient and
  kernel gradient;
* the engine's conv2d_backward makes the input gradient of a stride-1 convolution as a
  Winograd convolution of grad_y with the kernel turned around (when that convolution is
  one Winograd takes): equal to the reference's up to float rounding, the adjoint of the
  forward (<conv(x), g> = <x, grad_x>) at InceptionV3's real thresholds; not for strides
  of 2, nor with Winograd switched off;
* the kernel gradient of a layer whose forward Winograd takes is Winograd's (the forward's
  steps walked back): equal to the reference's up to float rounding for every case above,
  the adjoint of K -> conv(x, K) (<conv(x, K), g> = <K, grad_K>), in many chunks equal to
  one chunk and the same bits every time; im2col's where the forward is im2col's (strides
  of 2, thin layers) and bit for bit im2col's with Winograd switched off;
* ``config.set_winograd(False)`` gives im2col's numbers bit for bit;
* InceptionV3's predict with Winograd equals predict without it up to float rounding,
  fused equals unfused bit for bit with it, and predict follows its weights after a
  training step.
"""
import numpy as np
import pytest

import gc

from minidl import applications, config, kernels
from minidl.kernels import reference
from minidl.kernels.fast import winograd
from minidl.kernels.fast.winograd import (TransformedKernels, transform_kernel, winograd_conv2d_forward,
                                          winograd_matrices, winograd_plan)
from minidl.optimizers import Adam
from random_batch_norms import randomize_batch_norms


@pytest.fixture
def any_channel_count(monkeypatch, engine_path):
    """Winograd for layers of any width and size, so that tests can use small ones; on the
    engine (Winograd is the engine's), even under ``MINIDL_KERNELS=reference``."""
    monkeypatch.setattr(winograd, "_MIN_CHANNELS", 1)
    monkeypatch.setattr(winograd, "_MIN_OUTPUT_SIZE", 1)


@pytest.fixture
def small_chunks(monkeypatch):
    """Many small chunks: chunk boundaries inside images, and sharing between the cores."""
    monkeypatch.setattr(winograd, "_WHOLE_LAYER_BYTES", 0)
    monkeypatch.setattr(winograd, "_CHUNK_BYTES", 1)


@pytest.mark.parametrize("r", sorted(winograd._ALGORITHMS))
def test_the_matrices_compute_the_correlation_exactly(r):
    m, points = winograd._ALGORITHMS[r]
    output_matrix, filter_matrix, input_matrix = winograd_matrices(m, r, points)
    alpha = m + r - 1
    assert output_matrix.shape == (m, alpha) and filter_matrix.shape == (alpha, r)
    assert input_matrix.shape == (alpha, alpha)
    rng = np.random.default_rng(r)
    for _ in range(5):
        d, g = rng.normal(size=alpha), rng.normal(size=r)
        expected = np.array([d[i: i + r] @ g for i in range(m)])
        got = output_matrix @ ((filter_matrix @ g) * (input_matrix @ d))
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


def test_a_wrong_number_of_points_is_a_clear_error():
    with pytest.raises(ValueError, match=r"F\(2, 3\) needs 3 points, got 2"):
        winograd_matrices(2, 3, (0, 1))


def _case(rng, shape, kernel_size, padding, dtype):
    x = rng.normal(size=shape).astype(dtype)
    kernel = (rng.normal(size=kernel_size + (shape[3], 5)) / np.sqrt(np.prod(kernel_size) * shape[3])).astype(dtype)
    _, _, pads = kernels.conv_geometry(x.shape, kernel_size, (1, 1), padding)
    return x, kernel, pads


CASES = [((2, 9, 7, 3), (3, 3), "same"), ((2, 8, 11, 4), (3, 3), "valid"), ((1, 7, 7, 2), (3, 3), "valid"),
         ((2, 10, 9, 3), (1, 7), "same"), ((2, 9, 10, 2), (7, 1), "same"), ((1, 13, 12, 3), (1, 7), "valid"),
         ((2, 6, 5, 3), (1, 3), "same"), ((1, 7, 7, 3), (3, 1), "valid"), ((1, 1, 1, 4), (3, 3), "same"),
         ((2, 11, 10, 3), (5, 5), "same"), ((1, 12, 9, 2), (5, 5), "valid")]


@pytest.mark.parametrize("shape, kernel_size, padding", CASES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_winograd_equals_im2col(any_channel_count, shape, kernel_size, padding, dtype):
    x, kernel, pads = _case(np.random.default_rng(sum(shape)), shape, kernel_size, padding, dtype)
    plan = winograd_plan(x.shape, kernel.shape, (1, 1), pads)
    got = winograd_conv2d_forward(x, transform_kernel(kernel, plan), plan)
    expected = reference.conv2d_forward(x.astype(np.float64), kernel.astype(np.float64), (1, 1), pads)
    assert got.shape == expected.shape and got.dtype == dtype
    tolerance = 1e-12 if dtype == np.float64 else 3e-5
    np.testing.assert_allclose(got, expected, rtol=0, atol=tolerance * np.abs(expected).max())


@pytest.mark.parametrize("shape, kernel_size, padding", CASES[:6] + CASES[9:])
def test_chunks_shared_between_cores_give_the_same_result(any_channel_count, small_chunks, shape,
                                                           kernel_size, padding, monkeypatch):
    x, kernel, pads = _case(np.random.default_rng(1), shape, kernel_size, padding, np.float64)
    plan = winograd_plan(x.shape, kernel.shape, (1, 1), pads)
    transformed = transform_kernel(kernel, plan)
    chunked = winograd_conv2d_forward(x, transformed, plan)
    monkeypatch.setattr(winograd, "_WHOLE_LAYER_BYTES", 2**40)
    whole = winograd_conv2d_forward(x, transformed, plan)
    np.testing.assert_allclose(chunked, whole, rtol=0, atol=1e-13)
    np.testing.assert_allclose(whole, reference.conv2d_forward(x, kernel, (1, 1), pads), rtol=0, atol=1e-12)


@pytest.mark.parametrize("shape, kernel_size, padding", CASES[:8] + CASES[9:])
def test_numba_transforms_equal_the_reference(any_channel_count, shape, kernel_size, padding):
    from minidl.kernels.fast import winograd_numba, winograd_reference
    rng = np.random.default_rng(2)
    x, kernel, pads = _case(rng, shape, kernel_size, padding, np.float32)
    plan = winograd_plan(x.shape, kernel.shape, (1, 1), pads)
    outputs, _, inputs = plan.matrices(np.float32)
    positions = inputs[0].shape[0] * inputs[1].shape[0]
    tile_rows = plan.batch * plan.tiles[0]
    for first, count in [(0, tile_rows), (1, tile_rows - 1), (tile_rows - 1, 1)]:
        tiles = count * plan.tiles[1]
        results = []
        for module in (winograd_reference, winograd_numba):
            transformed = np.full((positions, tiles, plan.channels), np.nan, np.float32)
            module.winograd_input_rows(x, *inputs, plan.tile_output, plan.pads, plan.tiles, first, count,
                                       transformed)
            products = rng.normal(size=(positions, tiles, 4)).astype(np.float32) if not results else results[0][2]
            pixels = np.full((x.shape[0] * plan.out_size[0] * plan.out_size[1], 4), np.nan, np.float32)
            start = winograd._first_pixel(plan, first)
            stop = winograd._first_pixel(plan, first + count)
            module.winograd_output_rows(products, *outputs, plan.tiles, first, count, plan.out_size,
                                        pixels[start:stop])
            results.append((transformed, pixels, products))
        for numba_result, reference_result in zip(results[1][:2], results[0][:2]):
            scale = np.nanmax(np.abs(reference_result))
            np.testing.assert_allclose(numba_result, reference_result, rtol=0, atol=1e-6 * scale)
        assert np.isnan(results[1][1][:start]).all() and np.isnan(results[1][1][stop:]).all()
        assert not np.isnan(results[1][1][start:stop]).any()


@pytest.mark.parametrize("channels, filters", [(200, 300), (1100, 1030)])
def test_numba_transforms_equal_the_reference_when_a_row_of_tiles_goes_in_groups(any_channel_count,
                                                                                 channels, filters):
    """The Numba transforms take a tile row's tiles a group at a time (winograd_numba.py):
    a last group shorter than the others (200 channels: groups of 5 of the row's 7 tiles;
    300 filters: 3, 3, 1), and one tile at a time (over 1024 channels)."""
    from minidl.kernels.fast import winograd_numba, winograd_reference
    rng = np.random.default_rng(8)
    x = rng.normal(size=(2, 13, 27, channels)).astype(np.float32)
    pads = kernels.conv_geometry(x.shape, (3, 3), (1, 1), "same")[2]
    plan = winograd_plan(x.shape, (3, 3, channels, filters), (1, 1), pads)
    tiles_w = plan.tiles[1]
    assert tiles_w == 7 and all(max(1, winograd_numba._RUN_FLOATS // width) < tiles_w
                                for width in (channels, filters))
    outputs, _, inputs = plan.matrices(np.float32)
    positions, tile_rows = inputs[0].shape[0] * inputs[1].shape[0], plan.batch * plan.tiles[0]
    products = rng.normal(size=(positions, tile_rows * tiles_w, filters)).astype(np.float32)
    for first, count in [(0, tile_rows), (3, 2)]:
        found = []
        for module in (winograd_reference, winograd_numba):
            transformed = np.full((positions, count * tiles_w, channels), np.nan, np.float32)
            module.winograd_input_rows(x, *inputs, plan.tile_output, plan.pads, plan.tiles, first, count,
                                       transformed)
            pixels = np.full((x.shape[0] * plan.out_size[0] * plan.out_size[1], filters), np.nan, np.float32)
            start, stop = (winograd._first_pixel(plan, row) for row in (first, first + count))
            module.winograd_output_rows(products[:, first * tiles_w:(first + count) * tiles_w].copy(), *outputs,
                                        plan.tiles, first, count, plan.out_size, pixels[start:stop])
            found.append((transformed, pixels))
        for numba_result, reference_result in zip(found[1], found[0]):
            np.testing.assert_array_equal(np.isnan(numba_result), np.isnan(reference_result))
            scale = np.nanmax(np.abs(reference_result))
            np.testing.assert_allclose(numba_result, reference_result, rtol=0, atol=1e-6 * scale)


def test_epilogue_sees_every_pixel_once_and_out_can_be_a_channel_slice(any_channel_count, small_chunks):
    x, kernel, pads = _case(np.random.default_rng(3), (2, 9, 8, 3), (3, 3), "same", np.float64)
    plan = winograd_plan(x.shape, kernel.shape, (1, 1), pads)
    seen = np.zeros(2 * 9 * 8, int)
    concatenation = np.full((2, 9, 8, 11), -7.0)          # channels 3..7 are the convolution's
    out = concatenation[..., 3:8]

    def first_pixel(rows):
        """Which output pixel ``rows`` (a view into the concatenation) starts at."""
        offset = rows.__array_interface__["data"][0] - out.__array_interface__["data"][0]
        return offset // concatenation.strides[2]

    def epilogue(rows):
        seen[first_pixel(rows): first_pixel(rows) + rows.shape[0]] += 1
        np.maximum(rows, 0, out=rows)

    result = winograd_conv2d_forward(x, transform_kernel(kernel, plan), plan, epilogue=epilogue, out=out)
    assert result is out
    assert (seen == 1).all()
    expected = np.maximum(reference.conv2d_forward(x, kernel, (1, 1), pads), 0)
    np.testing.assert_allclose(concatenation[..., 3:8], expected, rtol=0, atol=1e-12)
    assert (concatenation[..., :3] == -7).all() and (concatenation[..., 8:] == -7).all()


@pytest.mark.parametrize("kernel_size", [(3, 3), (5, 5), (1, 7), (7, 1), (1, 3), (3, 1)])
def test_the_kernel_transform_is_g_h_g_g_w_transposed(any_channel_count, kernel_size):
    """V[a, b] = sum over k, l of G_h[a, k] G_w[b, l] g[k, l]; an axis of length 1 (G = [[1]])
    is skipped, which must not change a bit."""
    rng = np.random.default_rng(9)
    kernel = rng.normal(size=kernel_size + (6, 5))
    pads = tuple((size // 2, size // 2) for size in kernel_size)
    plan = winograd_plan((1, 9, 9, 6), kernel.shape, (1, 1), pads)
    _, (g_h, g_w), _ = plan.matrices(np.float64)
    expected = np.einsum("ak,bl,klcf->abcf", g_h, g_w, kernel).reshape(-1, 6, 5)
    np.testing.assert_allclose(transform_kernel(kernel, plan), expected, rtol=1e-13, atol=1e-13)
    assert transform_kernel(kernel, plan).flags.c_contiguous


def test_which_convolutions_it_takes():
    x_shape = (1, 17, 17, 64)
    same = kernels.conv_geometry(x_shape, (3, 3), (1, 1), "same")[2]
    assert winograd_plan(x_shape, (3, 3, 64, 8), (1, 1), same) is not None
    assert winograd_plan(x_shape, (1, 7, 64, 8), (1, 1), ((0, 0), (3, 3))) is not None
    assert winograd_plan(x_shape, (3, 3, 64, 8), (2, 2), ((0, 0), (0, 0))) is None       # stride 2
    assert winograd_plan(x_shape, (1, 1, 64, 8), (1, 1), ((0, 0), (0, 0))) is None       # already a product
    assert winograd_plan(x_shape, (5, 5, 64, 8), (1, 1), ((2, 2), (2, 2))).tile_output == (4, 4)
    assert winograd_plan(x_shape, (3, 5, 64, 8), (1, 1), ((1, 1), (2, 2))).tile_output == (4, 4)
    assert winograd_plan(x_shape, (9, 9, 64, 8), (1, 1), ((4, 4), (4, 4))) is None       # no F(m, 9) here
    thin = (1, 17, 17, winograd._MIN_CHANNELS - 1)
    assert winograd_plan(thin, (3, 3, thin[3], 8), (1, 1), same) is None                  # too thin to pay
    stem = (1, 17, 17, winograd._MIN_THIN_CHANNELS)                                       # thin, many filters
    assert winograd_plan(stem, (3, 3, stem[3], winograd._MIN_THIN_FILTERS), (1, 1), same) is not None
    assert winograd_plan(stem, (3, 3, stem[3], winograd._MIN_THIN_FILTERS - 1), (1, 1), same) is None
    thinner = (1, 17, 17, winograd._MIN_THIN_CHANNELS - 1)
    assert winograd_plan(thinner, (3, 3, thinner[3], 2 * winograd._MIN_THIN_FILTERS), (1, 1), same) is None
    small = (1, winograd._MIN_OUTPUT_SIZE - 1, 40, 64)
    assert winograd_plan(small, (3, 3, 64, 8), (1, 1), same) is None                      # too few tiles


def test_plan_and_input_must_agree(any_channel_count):
    x, kernel, pads = _case(np.random.default_rng(4), (2, 9, 7, 3), (3, 3), "same", np.float32)
    plan = winograd_plan(x.shape, kernel.shape, (1, 1), pads)
    for wrong in (x[:1], x[:, :8], x[..., :2]):
        with pytest.raises(ValueError, match=r"made for inputs of shape \(2, 9, 7, 3\)"):
            winograd_conv2d_forward(wrong, transform_kernel(kernel, plan), plan)


def test_a_kept_transformed_kernel_follows_changes_in_place(any_channel_count):
    x, kernel, pads = _case(np.random.default_rng(5), (1, 8, 8, 3), (3, 3), "same", np.float32)
    plan = winograd_plan(x.shape, kernel.shape, (1, 1), pads)
    kept = TransformedKernels()
    first = kept.get(kernel, plan)
    assert kept.get(kernel, plan) is first                       # unchanged: reused
    kernel[1, 1, 0, 0] += 1.0                                    # an optimizer's in-place step
    second = kept.get(kernel, plan)
    np.testing.assert_array_equal(second, transform_kernel(kernel, plan))
    assert not np.array_equal(second, first)
    as_float64 = kernel.astype(np.float64)
    assert kept.get(as_float64, plan).dtype == np.float64         # another array: its own entry
    assert len(kept._kept) == 2
    del as_float64, kernel
    gc.collect()
    assert len(kept._kept) == 0                                   # freed kernels are forgotten


def test_set_winograd_wants_a_bool():
    with pytest.raises(TypeError, match="set_winograd"):
        config.set_winograd(1)


@pytest.fixture
def fusion_and_winograd(config_switches):
    config_switches(inference_fusion=True, winograd=True)


def _inception_and_input(size=107):
    model = applications.InceptionV3(weights=None, include_top=False, input_shape=(size, size, 3))
    randomize_batch_norms(model, np.random.default_rng(7))
    x = np.random.default_rng(8).normal(size=(2, size, size, 3)).astype(np.float32)
    return model, x


def _winograd_layers(model, x):
    """Names of the convolutions that ran as Winograd in one predict."""
    used = []
    original = winograd.winograd_conv2d_forward
    winograd.winograd_conv2d_forward = lambda inputs, *args, **kwargs: (
        used.append(inputs.shape) or original(inputs, *args, **kwargs))
    try:
        model.predict_on_batch(x)
    finally:
        winograd.winograd_conv2d_forward = original
    return used


def test_inception_predict_with_winograd_equals_without(fusion_and_winograd, any_channel_count):
    model, x = _inception_and_input()
    assert len(_winograd_layers(model, x)) >= 40       # every stride-1 3x3, 1x7, 7x1, 1x3, 3x1
    with_winograd = model.predict_on_batch(x)
    config.set_winograd(False)
    assert _winograd_layers(model, x) == []
    without = model.predict_on_batch(x)
    assert np.abs(without).max() > 0.1
    np.testing.assert_allclose(with_winograd, without, rtol=0, atol=1e-4 * np.abs(without).max())
    assert not np.array_equal(with_winograd, without)   # it really ran another algorithm


def test_inception_fused_equals_unfused_bit_for_bit_with_winograd(fusion_and_winograd, any_channel_count):
    """Fusion adds batch norm + ReLU to each chunk of the same Winograd convolution."""
    model, x = _inception_and_input()
    fused = model.predict_on_batch(x)
    config.set_inference_fusion(False)
    unfused = model.predict_on_batch(x)
    assert len(_winograd_layers(model, x)) >= 40
    np.testing.assert_array_equal(fused, unfused)


def test_inception_predict_follows_a_training_step(fusion_and_winograd, any_channel_count):
    """The transformed kernels kept between predicts are made again after weights change."""
    model, x = _inception_and_input(75)
    model.compile(optimizer=Adam(learning_rate=0.01), loss="mean_squared_error")
    before = model.predict_on_batch(x)
    model.train_on_batch(x, np.zeros_like(before))
    after = model.predict_on_batch(x)
    config.set_winograd(False)
    reference = model.predict_on_batch(x)
    assert np.abs(after - before).max() > 1e-2
    np.testing.assert_allclose(after, reference, rtol=0, atol=1e-4 * np.abs(reference).max())


@pytest.mark.parametrize("kernel_size", [(3, 3), (5, 5), (1, 7), (7, 1)])
def test_gradients_check_with_a_winograd_forward(any_channel_count, kernel_size, monkeypatch):
    """Forward, the input gradient and the kernel gradient all run Winograd: backward must
    still be forward's gradient (float64, random upstream gradient, the input, kernel and
    bias checked)."""
    from minidl.gradcheck import check_gradients
    from minidl.layers import Conv2D
    convolutions, kernel_gradients = (_counting(monkeypatch, name)
                                      for name in ("winograd_conv2d_forward", "winograd_kernel_gradient"))
    layer = Conv2D(4, kernel_size, padding="same", activation="sigmoid", name="checked")
    # step 1e-5, not 1e-6: Winograd's float64 rounding (~1e-14 of an output, larger tiles
    # more) divided by the step is the finite differences' noise; F(4x4, 5x5)'s made 1.5e-6
    # of the input gradient with 1e-6 (im2col's 1e-7), 1.5e-7 with 1e-5 (im2col's 2e-8).
    report = check_gradients(layer, np.random.default_rng(10).normal(size=(2, 9, 10, 3)), step=1e-5)
    assert convolutions, "the forward passes of the check did not run as Winograd"
    assert kernel_gradients, "the kernel gradient of the check was not Winograd's"
    assert {row[0] for row in report.rows} == {"input", "checked/kernel:0", "checked/bias:0"}
    assert report.max_error < 1e-6, report


@pytest.mark.parametrize("kernel_size, channels", [((5, 5), 48), ((1, 7), 64)])
def test_a_wide_layer_checks_with_the_step_gradcheck_documents(kernel_size, channels, monkeypatch, engine_path):
    """minidl/gradcheck.py's advice for layers wide enough for Winograd at real thresholds:
    step=1e-4 brings the finite differences under 1e-6 (1e-6 showed 1.3e-6 to 3.7e-6)."""
    from minidl.gradcheck import check_gradients
    from minidl.layers import Conv2D
    convolutions = _counting(monkeypatch, "winograd_conv2d_forward")
    layer = Conv2D(64, kernel_size, padding="same", name="wide")
    report = check_gradients(layer, np.random.default_rng(1).normal(size=(2, 17, 17, channels)), step=1e-4)
    assert convolutions
    assert report.max_error < 1e-6, report


def test_set_winograd_false_gives_im2col_bit_for_bit(any_channel_count):
    from minidl.layers import Conv2D
    layer = Conv2D(6, 3, padding="same", name="plain")
    x = np.random.default_rng(9).normal(size=(2, 9, 9, 4)).astype(np.float32)
    previous = config.winograd()
    _, _, pads = kernels.conv_geometry(x.shape, (3, 3), (1, 1), "same")
    try:
        config.set_winograd(True)
        with_winograd = layer(x)
        config.set_winograd(False)
        without = layer(x)
        im2col = kernels.conv2d_forward(x, layer.kernel.value, (1, 1), pads) + layer.bias.value
    finally:
        config.set_winograd(previous)
    np.testing.assert_array_equal(without, im2col)
    assert not np.array_equal(with_winograd, without)
    np.testing.assert_allclose(with_winograd, without, rtol=0, atol=1e-5 * np.abs(without).max())


def test_a_layer_in_one_chunk_shares_its_products_by_position_and_fills_a_channel_slice(any_channel_count,
                                                                                        monkeypatch):
    x, kernel, pads = _case(np.random.default_rng(6), (2, 9, 10, 3), (3, 3), "same", np.float64)
    plan = winograd_plan(x.shape, kernel.shape, (1, 1), pads)
    shared = []
    share = winograd.for_each_chunk

    def recording(chunks, make_buffer, process):
        shared.append(len(chunks))
        return share(chunks, make_buffer, process)

    monkeypatch.setattr(winograd, "for_each_chunk", recording)
    concatenation = np.full((2, 9, 10, 12), -7.0)        # channels 4..8 are the convolution's
    winograd_conv2d_forward(x, transform_kernel(kernel, plan), plan, out=concatenation[..., 4:9])
    assert shared == [1, 36]          # one chunk of tile rows; its 6x6 positions' products shared
    expected = reference.conv2d_forward(x, kernel, (1, 1), pads)
    np.testing.assert_allclose(concatenation[..., 4:9], expected, rtol=0, atol=1e-12)
    assert (concatenation[..., :4] == -7).all() and (concatenation[..., 9:] == -7).all()


@pytest.mark.parametrize("relu", [True, False])
def test_the_output_transform_applies_an_inference_batch_norm_as_the_rows_would(any_channel_count, relu):
    from minidl.kernels.fast import batchnorm_numba, winograd_numba
    rng = np.random.default_rng(7)
    x, kernel, pads = _case(rng, (2, 9, 10, 3), (3, 3), "same", np.float32)
    plan = winograd_plan(x.shape, kernel.shape, (1, 1), pads)
    outputs, _, inputs = plan.matrices(np.float32)
    positions, tile_rows = inputs[0].shape[0] * inputs[1].shape[0], plan.batch * plan.tiles[0]
    products = rng.normal(size=(positions, tile_rows * plan.tiles[1], 5)).astype(np.float32)
    affine = batchnorm_numba.batchnorm_inference_affine(
        rng.normal(size=5).astype(np.float32), rng.uniform(0.5, 2, 5).astype(np.float32),
        rng.normal(size=5).astype(np.float32), rng.normal(size=5).astype(np.float32), 1e-3, 5, np.float32)
    pixels = 2 * 9 * 10
    plain = np.empty((pixels, 5), np.float32)
    winograd_numba.winograd_output_rows(products, *outputs, plan.tiles, 0, tile_rows, plan.out_size, plain)
    expected = batchnorm_numba.batchnorm_inference_rows(plain, affine, relu=relu, out=plain.copy())
    concatenation = np.full((pixels, 9), -7.0, np.float32)
    winograd_numba.winograd_output_rows(products, *outputs, plan.tiles, 0, tile_rows, plan.out_size,
                                        concatenation[:, 2:7],
                                        batchnorm=batchnorm_numba.InferenceEpilogue(affine, relu))
    np.testing.assert_array_equal(concatenation[:, 2:7], expected)
    assert (concatenation[:, :2] == -7).all() and (concatenation[:, 7:] == -7).all()
    assert (expected < 0).any() != relu


def _counting(monkeypatch, function_name):
    """Record the shape of the first argument of every call of winograd.``function_name``:
    ``winograd_conv2d_forward`` (grad_y for an input gradient) or ``winograd_kernel_gradient`` (x)."""
    calls = []
    original = getattr(winograd, function_name)
    monkeypatch.setattr(winograd, function_name,
                        lambda *args, **kwargs: calls.append(args[0].shape) or original(*args, **kwargs))
    return calls


def _counting_winograd(monkeypatch):
    return _counting(monkeypatch, "winograd_conv2d_forward")


def _counting_kernel_gradients(monkeypatch):
    return _counting(monkeypatch, "winograd_kernel_gradient")


def _kernel_gradient_case(seed, shape, kernel_size, padding, dtype):
    rng = np.random.default_rng(seed)
    x, kernel, pads = _case(rng, shape, kernel_size, padding, dtype)
    out_h, out_w = kernels.conv_geometry(x.shape, kernel_size, (1, 1), padding)[:2]
    grad_y = rng.normal(size=(shape[0], out_h, out_w, kernel.shape[3])).astype(dtype)
    return x, kernel, pads, grad_y


@pytest.mark.parametrize("shape, kernel_size, padding", CASES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_both_gradients_by_winograd_equal_the_reference(any_channel_count, shape, kernel_size, padding,
                                                        dtype, monkeypatch):
    """grad_x (a Winograd convolution of grad_y with the kernel turned around) and grad_kernel
    (the forward's steps walked back) equal the reference's; with Winograd off, neither is
    Winograd's and both are im2col's."""
    from minidl.kernels.fast import conv as fast_conv
    x, kernel, pads, grad_y = _kernel_gradient_case(sum(shape) + 1, shape, kernel_size, padding, dtype)
    input_calls, kernel_calls = _counting_winograd(monkeypatch), _counting_kernel_gradients(monkeypatch)
    grad_x, grad_kernel = fast_conv.conv2d_backward(grad_y, x, kernel, (1, 1), pads)
    assert input_calls == [grad_y.shape] and kernel_calls == [x.shape]     # both made by Winograd
    expected = reference.conv2d_backward(grad_y.astype(np.float64), x.astype(np.float64),
                                         kernel.astype(np.float64), (1, 1), pads)
    assert grad_x.shape == x.shape and grad_x.dtype == dtype
    assert grad_kernel.shape == kernel.shape and grad_kernel.dtype == dtype
    config.set_winograd(False)
    try:
        im2col = fast_conv.conv2d_backward(grad_y, x, kernel, (1, 1), pads)
    finally:
        config.set_winograd(True)
    assert len(input_calls) == 1 and len(kernel_calls) == 1                 # switched off: not used
    tolerance = 1e-12 if dtype == np.float64 else 3e-5
    for got in ((grad_x, grad_kernel), im2col):
        for gradient, wanted in zip(got, expected):
            np.testing.assert_allclose(gradient, wanted, rtol=0, atol=tolerance * np.abs(wanted).max())


@pytest.mark.parametrize("shape, kernel_size, padding", CASES[:8] + CASES[9:])
def test_the_gradient_transform_in_numba_equals_the_reference(any_channel_count, shape, kernel_size, padding):
    """dM = AT_h^T dY_tile AT_w: the input transform's kernels with AT^T, which read m x m
    pixels per tile (not A x A), zeros past the output's edge."""
    from minidl.kernels.fast import winograd_numba, winograd_reference
    x, kernel, pads, grad_y = _kernel_gradient_case(4, shape, kernel_size, padding, np.float32)
    plan = winograd_plan(x.shape, kernel.shape, (1, 1), pads)
    transposed = [np.ascontiguousarray(matrix.T) for matrix in plan.matrices(np.float32)[0]]
    positions = transposed[0].shape[0] * transposed[1].shape[0]
    tile_rows = plan.batch * plan.tiles[0]
    for first, count in [(0, tile_rows), (tile_rows - 1, 1)]:
        results = []
        for module in (winograd_reference, winograd_numba):
            out = np.full((positions, count * plan.tiles[1], grad_y.shape[3]), np.nan, np.float32)
            module.winograd_input_rows(grad_y, *transposed, plan.tile_output, (0, 0), plan.tiles, first, count, out)
            results.append(out)
        np.testing.assert_allclose(results[1], results[0], rtol=0, atol=1e-6 * np.abs(results[0]).max())


@pytest.mark.parametrize("shape, kernel_size, padding", CASES[:6] + CASES[9:])
def test_the_kernel_gradient_in_chunks_equals_one_chunk_and_repeats_bit_for_bit(any_channel_count, shape,
                                                                                kernel_size, padding, monkeypatch):
    """Many chunks (summed in one contiguous run per core, the runs added in order) give
    one chunk's gradient up to rounding, and the same bits every time."""
    x, kernel, pads, grad_y = _kernel_gradient_case(3, shape, kernel_size, padding, np.float32)
    plan = winograd_plan(x.shape, kernel.shape, (1, 1), pads)
    whole = winograd.winograd_kernel_gradient(x, grad_y, plan)
    monkeypatch.setattr(winograd, "_WHOLE_LAYER_BYTES", 0)
    monkeypatch.setattr(winograd, "_KERNEL_GRADIENT_CHUNK_BYTES", 1)
    chunked = [winograd.winograd_kernel_gradient(x, grad_y, plan) for _ in range(4)]
    for again in chunked[1:]:
        np.testing.assert_array_equal(again, chunked[0])
    np.testing.assert_allclose(chunked[0], whole, rtol=0, atol=1e-5 * np.abs(whole).max())


def test_the_kernel_gradient_refuses_arrays_the_plan_was_not_made_for():
    plan = winograd_plan((2, 20, 20, 48), (3, 3, 48, 8), (1, 1), ((1, 1), (1, 1)))
    with pytest.raises(ValueError, match=r"winograd_kernel_gradient: x \(2, 20, 20, 47\)"):
        winograd.winograd_kernel_gradient(np.zeros((2, 20, 20, 47)), np.zeros((2, 20, 20, 8)), plan)


def test_no_winograd_kernel_gradient_where_its_forward_is_im2col(monkeypatch):
    """Strides of 2, fewer than 48 input channels, 1x1 kernels: cols^T @ G, bit for bit."""
    from minidl.kernels.fast import conv as fast_conv
    rng = np.random.default_rng(8)
    calls = _counting_kernel_gradients(monkeypatch)
    for shape, kernel_size, strides in [((1, 40, 40, 48), (3, 3), (2, 2)), ((1, 40, 40, 47), (3, 3), (1, 1))]:
        x, kernel = rng.normal(size=shape), rng.normal(size=kernel_size + (shape[3], 4))
        out_h, out_w, pads = kernels.conv_geometry(x.shape, kernel_size, strides, "valid")
        grad_y = rng.normal(size=(1, out_h, out_w, 4))
        _, grad_kernel = fast_conv.conv2d_backward(grad_y, x, kernel, strides, pads)
        _, expected = reference.conv2d_backward(grad_y, x, kernel, strides, pads)
        np.testing.assert_allclose(grad_kernel, expected, rtol=0, atol=1e-12 * np.abs(expected).max())
    assert calls == []


@pytest.mark.parametrize("kernel_size, padding", [((3, 3), "same"), ((3, 3), "valid"), ((1, 7), "same"),
                                                  ((7, 1), "same")])
@pytest.mark.parametrize("gradient", ["input", "kernel"])
def test_each_gradient_is_the_adjoint_of_the_forward_at_real_sizes(kernel_size, padding, gradient, monkeypatch):
    """y = conv(x, K) is linear in x and in K, so <conv(x, K), g> = <x, grad_x(g)> = <K, grad_K(g)>:
    no other convolution needed to know a gradient is right. At InceptionV3's real thresholds:
    16 input channels and 48 filters for the input gradient (the forward im2col's, the input
    gradient Winograd's: 48 channels of grad_y); 48 and 16 for the kernel gradient (Winograd's,
    like the forward)."""
    from minidl.kernels.fast import conv as fast_conv
    channels, filters = (16, 48) if gradient == "input" else (48, 16)
    rng = np.random.default_rng(5)
    x = rng.normal(size=(2, 20, 19, channels))
    kernel = rng.normal(size=kernel_size + (channels, filters))
    out_h, out_w, pads = kernels.conv_geometry(x.shape, kernel_size, (1, 1), padding)
    grad_y = rng.normal(size=(2, out_h, out_w, filters))
    calls = (_counting_winograd if gradient == "input" else _counting_kernel_gradients)(monkeypatch)
    y = fast_conv.conv2d_forward(x, kernel, (1, 1), pads)
    grad_x, grad_kernel = fast_conv.conv2d_backward(grad_y, x, kernel, (1, 1), pads)
    if gradient == "input":
        assert calls == [grad_y.shape]
        other_side = np.vdot(x, grad_x)
    else:
        assert calls == [x.shape]
        other_side = np.vdot(kernel, grad_kernel)
    assert abs(np.vdot(y, grad_y) - other_side) < 1e-12 * np.abs(y).max() * np.abs(grad_y).sum()


def test_no_winograd_input_gradient_for_strides_of_two(any_channel_count, monkeypatch):
    from minidl.kernels.fast import conv as fast_conv
    rng = np.random.default_rng(6)
    x, kernel = rng.normal(size=(1, 9, 9, 3)), rng.normal(size=(3, 3, 3, 4))
    out_h, out_w, pads = kernels.conv_geometry(x.shape, (3, 3), (2, 2), "valid")
    grad_y = rng.normal(size=(1, out_h, out_w, 4))
    calls = _counting_winograd(monkeypatch)
    grad_x, _ = fast_conv.conv2d_backward(grad_y, x, kernel, (2, 2), pads)
    expected_x, _ = reference.conv2d_backward(grad_y, x, kernel, (2, 2), pads)
    assert calls == []
    np.testing.assert_allclose(grad_x, expected_x, rtol=0, atol=1e-12 * np.abs(expected_x).max())

