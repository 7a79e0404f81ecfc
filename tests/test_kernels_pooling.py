"""Tests for max / average pooling kernels (TF semantics, both kernel paths)."""
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from minidl import config, kernels
from minidl.gradcheck import numerical_gradient
from minidl.kernels.fast import pooling_numba
from minidl.kernels.reference import pooling as pooling_reference

PATHS = ["reference", "numba"]


kernel_path = config.using_kernel_path


def tf_padding(n, k, s, padding):
    if padding == "valid":
        return (n - k) // s + 1, 0
    out = math.ceil(n / s)
    return out, max((out - 1) * s + k - n, 0) // 2


def naive_pool(x, pool_size, strides, padding):
    """Direct loops: max (first row-major max wins), mean over in-bounds cells, argmax h*W+w."""
    batch, height, width, channels = x.shape
    out_h, top = tf_padding(height, pool_size[0], strides[0], padding)
    out_w, left = tf_padding(width, pool_size[1], strides[1], padding)
    maximum = np.zeros((batch, out_h, out_w, channels))
    argmax = np.zeros((batch, out_h, out_w, channels), dtype=np.int64)
    mean = np.zeros((batch, out_h, out_w, channels))
    for n in range(batch):
        for i in range(out_h):
            for j in range(out_w):
                for c in range(channels):
                    cells = [(h, w)
                             for h in range(i * strides[0] - top, i * strides[0] - top + pool_size[0])
                             for w in range(j * strides[1] - left, j * strides[1] - left + pool_size[1])
                             if 0 <= h < height and 0 <= w < width]
                    values = [x[n, h, w, c] for h, w in cells]
                    first = int(np.argmax(values))  # np.argmax returns the first maximum
                    maximum[n, i, j, c] = values[first]
                    argmax[n, i, j, c] = cells[first][0] * width + cells[first][1]
                    mean[n, i, j, c] = sum(values) / len(values)
    return maximum, argmax, mean


@st.composite
def pool_cases(draw, max_size=9):
    pool_size = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    strides = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = draw(st.sampled_from(["same", "valid"]))
    low_h = pool_size[0] if padding == "valid" else 1
    low_w = pool_size[1] if padding == "valid" else 1
    shape = (draw(st.integers(1, 2)), draw(st.integers(low_h, max_size)),
             draw(st.integers(low_w, max_size)), draw(st.integers(1, 3)))
    return shape, pool_size, strides, padding, draw(st.integers(0, 2**31 - 1))


@pytest.mark.parametrize("path", PATHS)
@settings(max_examples=25, deadline=None)
@given(case=pool_cases())
def test_pooling_matches_direct_loops_with_ties(path, case):
    shape, pool_size, strides, padding, seed = case
    rng = np.random.default_rng(seed)
    x = rng.integers(-2, 3, size=shape).astype(np.float64)  # few values: many ties
    _, _, pads = kernels.conv_geometry(shape, pool_size, strides, padding)
    expected_max, expected_argmax, expected_mean = naive_pool(x, pool_size, strides, padding)
    with kernel_path(path):
        y, argmax = kernels.max_pool_forward(x, pool_size, strides, pads)
        mean = kernels.avg_pool_forward(x, pool_size, strides, pads)
    np.testing.assert_array_equal(y, expected_max)
    np.testing.assert_array_equal(argmax, expected_argmax)
    np.testing.assert_allclose(mean, expected_mean, rtol=1e-12, atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(case=pool_cases(max_size=12), dtype=st.sampled_from([np.float32, np.float64]))
def test_numba_pooling_equals_reference(case, dtype):
    shape, pool_size, strides, padding, seed = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(dtype)
    x[..., 0] = np.round(x[..., 0])  # one channel full of ties
    _, _, pads = kernels.conv_geometry(shape, pool_size, strides, padding)
    tolerance = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    y_ref, argmax_ref = pooling_reference.max_pool_forward(x, pool_size, strides, pads)
    y_fast, argmax_fast = pooling_numba.max_pool_forward(x, pool_size, strides, pads)
    assert y_fast.dtype == dtype and y_ref.dtype == dtype
    np.testing.assert_array_equal(y_fast, y_ref)
    np.testing.assert_array_equal(argmax_fast, argmax_ref)
    grad_output = rng.standard_normal(y_ref.shape).astype(dtype)
    back_ref = pooling_reference.max_pool_backward(grad_output, argmax_ref, shape)
    back_fast = pooling_numba.max_pool_backward(grad_output, argmax_fast, shape)
    assert back_fast.dtype == dtype
    np.testing.assert_allclose(back_fast, back_ref, **tolerance)
    mean_ref = pooling_reference.avg_pool_forward(x, pool_size, strides, pads)
    mean_fast = pooling_numba.avg_pool_forward(x, pool_size, strides, pads)
    assert mean_fast.dtype == dtype and mean_ref.dtype == dtype
    np.testing.assert_allclose(mean_fast, mean_ref, **tolerance)
    back_ref = pooling_reference.avg_pool_backward(grad_output, shape, pool_size, strides, pads)
    back_fast = pooling_numba.avg_pool_backward(grad_output, shape, pool_size, strides, pads)
    assert back_fast.dtype == dtype and back_ref.dtype == dtype
    np.testing.assert_allclose(back_fast, back_ref, **tolerance)


# ---------------------------------------------------------------- TF specifics (minidl/keras_semantics.md §4.3)
@pytest.mark.parametrize("path", PATHS)
def test_avg_pool_same_excludes_padding(path):
    ones = np.ones((1, 3, 3, 1))
    _, _, pads = kernels.conv_geometry(ones.shape, (3, 3), (1, 1), "same")
    x = np.arange(9.0).reshape(1, 3, 3, 1)
    with kernel_path(path):
        np.testing.assert_allclose(kernels.avg_pool_forward(ones, (3, 3), (1, 1), pads), ones)
        y = kernels.avg_pool_forward(x, (3, 3), (1, 1), pads)[0, :, :, 0]
        # divisors 4 (corner), 6 (edge), 9 (centre)
        assert y[0, 0] == pytest.approx((0 + 1 + 3 + 4) / 4)
        assert y[0, 1] == pytest.approx((0 + 1 + 2 + 3 + 4 + 5) / 6)
        assert y[1, 1] == pytest.approx(36 / 9)
        # backward of an all-ones gradient: each cell receives Σ 1/count over its windows
        grad = kernels.avg_pool_backward(np.ones((1, 3, 3, 1)), x.shape, (3, 3), (1, 1), pads)[0, :, :, 0]
        assert grad[0, 0] == pytest.approx(1 / 4 + 1 / 6 + 1 / 6 + 1 / 9)


@pytest.mark.parametrize("path", PATHS)
def test_max_pool_tie_goes_to_first_row_major_max_and_gets_the_whole_gradient(path):
    x = np.array([[1.0, 5.0], [5.0, 5.0]]).reshape(1, 2, 2, 1)
    with kernel_path(path):
        y, argmax = kernels.max_pool_forward(x, (2, 2), (2, 2), ((0, 0), (0, 0)))
        grad = kernels.max_pool_backward(np.full((1, 1, 1, 1), 3.0), argmax, x.shape)
    assert y.item() == 5.0 and argmax.item() == 1  # (h=0, w=1), not (1, 0) or (1, 1)
    np.testing.assert_array_equal(grad[0, :, :, 0], [[0.0, 3.0], [0.0, 0.0]])


@pytest.mark.parametrize("path", PATHS)
def test_max_pool_padding_never_wins_and_same_padding_is_asymmetric(path):
    x = -1.0 - np.arange(16.0).reshape(1, 4, 4, 1)  # all negative: a zero pad would win
    _, _, pads = kernels.conv_geometry(x.shape, (3, 3), (2, 2), "same")
    assert pads == ((0, 1), (0, 1))
    with kernel_path(path):
        y, argmax = kernels.max_pool_forward(x, (3, 3), (2, 2), pads)
    assert y.shape == (1, 2, 2, 1)
    # window (1, 1) covers rows 2..3, columns 2..3 (+ padding): max is x[2, 2] = -11
    assert y[0, 1, 1, 0] == -11.0 and argmax[0, 1, 1, 0] == 2 * 4 + 2
    assert y[0, 0, 0, 0] == -1.0 and argmax[0, 0, 0, 0] == 0


# ---------------------------------------------------------------- gradients
def central_difference_check(function, array, grad_array, upstream, epsilon=1e-6):
    """Compare every entry of an analytic gradient with central differences of <f(.), upstream>."""
    numeric = numerical_gradient(lambda: np.vdot(function(), upstream), array, step=epsilon)
    error = np.abs(numeric - grad_array).max() / max(np.abs(numeric).max(), 1e-12)
    assert error < 1e-7, f"relative gradient error {error:.2e}"


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("pool_size,strides,padding", [
    ((3, 3), (2, 2), "valid"),  # InceptionV3 max pool
    ((3, 3), (1, 1), "same"),   # InceptionV3 avg pool: windows overlap, padding excluded
    ((2, 3), (2, 1), "same"),
    ((3, 3), (2, 2), "same"),   # asymmetric padding
])
def test_pooling_backward_matches_central_differences(path, pool_size, strides, padding):
    rng = np.random.default_rng(3)
    shape = (2, 6, 5, 2)
    # distinct values spaced far beyond epsilon: no ties, argmax stable under perturbation
    x = rng.permutation(np.prod(shape)).reshape(shape) * 0.1
    _, _, pads = kernels.conv_geometry(shape, pool_size, strides, padding)
    with kernel_path(path):
        y, argmax = kernels.max_pool_forward(x, pool_size, strides, pads)
        upstream = rng.standard_normal(y.shape)
        central_difference_check(lambda: kernels.max_pool_forward(x, pool_size, strides, pads)[0], x,
                                 kernels.max_pool_backward(upstream, argmax, shape), upstream)
        central_difference_check(lambda: kernels.avg_pool_forward(x, pool_size, strides, pads), x,
                                 kernels.avg_pool_backward(upstream, shape, pool_size, strides, pads), upstream)


def test_pooling_errors_name_the_problem():
    x = np.zeros((1, 2, 2, 1))
    for module in (pooling_reference, pooling_numba):
        with pytest.raises(ValueError, match="does not fit"):
            module.max_pool_forward(x, (3, 3), (1, 1), ((0, 0), (0, 0)))
        with pytest.raises(ValueError, match="same shape"):
            module.max_pool_backward(np.zeros((1, 1, 1, 1)), np.zeros((1, 1, 1, 2), dtype=np.int64), x.shape)
