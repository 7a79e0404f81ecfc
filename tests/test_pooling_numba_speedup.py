"""The fast pooling kernels give the reference's results bit for bit (not just within rtol).

minidl/kernels/fast/pooling_numba.py sums in the reference's order and divides in the array's
dtype, so max and average pooling, forward and backward, must be *exactly* equal to
minidl/kernels/reference/pooling.py. These tests pin that down, plus the max-pool corner
cases that a vectorised max could silently change (NaN, signed zeros, ties).
"""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from minidl import kernels
from minidl.kernels.fast import pooling_numba
from minidl.kernels.reference import pooling as pooling_reference


def all_four(module, x, grad_seed, pool_size, strides, pads):
    """Max forward (y, argmax), max backward, avg forward, avg backward from one module."""
    y, argmax = module.max_pool_forward(x, pool_size, strides, pads)
    rng = np.random.default_rng(grad_seed)
    grad_output = rng.standard_normal(y.shape).astype(x.dtype)
    max_back = module.max_pool_backward(grad_output, argmax, x.shape)
    mean = module.avg_pool_forward(x, pool_size, strides, pads)
    avg_back = module.avg_pool_backward(grad_output, x.shape, pool_size, strides, pads)
    return y, argmax, max_back, mean, avg_back


def assert_bitwise_equal(fast, reference, dtype):
    names = ["max forward y", "max forward argmax", "max backward", "avg forward", "avg backward"]
    for name, a, b in zip(names, fast, reference):
        assert a.shape == b.shape, name
        assert a.dtype == b.dtype, f"{name}: dtype {a.dtype} != {b.dtype}"
        if name != "max forward argmax":
            assert a.dtype == dtype, name
        np.testing.assert_array_equal(a, b, err_msg=name)


@st.composite
def pool_cases(draw):
    pool_size = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    strides = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = draw(st.sampled_from(["same", "valid"]))
    low_h = pool_size[0] if padding == "valid" else 1
    low_w = pool_size[1] if padding == "valid" else 1
    shape = (draw(st.integers(1, 3)), draw(st.integers(low_h, 13)),
             draw(st.integers(low_w, 13)), draw(st.integers(1, 19)))
    return shape, pool_size, strides, padding, draw(st.integers(0, 2**31 - 1))


@settings(max_examples=60, deadline=None)
@given(case=pool_cases(), dtype=st.sampled_from([np.float32, np.float64]))
def test_numba_pooling_is_bitwise_equal_to_reference(case, dtype):
    shape, pool_size, strides, padding, seed = case
    rng = np.random.default_rng(seed)
    # Values of very different magnitudes make the rounding depend on the summation order.
    x = (rng.standard_normal(shape) * 10.0 ** rng.integers(-3, 4, shape)).astype(dtype)
    x[..., 0] = np.round(x[..., 0])  # one channel full of ties (argmax shared by windows)
    _, _, pads = kernels.conv_geometry(shape, pool_size, strides, padding)
    fast = all_four(pooling_numba, x, seed + 1, pool_size, strides, pads)
    reference = all_four(pooling_reference, x, seed + 1, pool_size, strides, pads)
    assert_bitwise_equal(fast, reference, dtype)


@pytest.mark.parametrize("size,channels,pool,stride,padding", [
    (31, 64, 3, 2, "valid"),   # like the 147x147x64 max pool (odd size, overlapping windows)
    (17, 40, 3, 1, "same"),    # like InceptionV3's 3x3/1 'same' average pools
    (8, 72, 3, 1, "same"),     # channels not a multiple of the SIMD width
    (9, 33, 3, 2, "same"),     # asymmetric 'same' padding (0 before, 1 after)
])
def test_inception_like_shapes_are_bitwise_equal(size, channels, pool, stride, padding):
    rng = np.random.default_rng(size * channels)
    x = rng.standard_normal((2, size, size, channels)).astype(np.float32)
    _, _, pads = kernels.conv_geometry(x.shape, (pool, pool), (stride, stride), padding)
    window, strides = (pool, pool), (stride, stride)
    fast = all_four(pooling_numba, x, 7, window, strides, pads)
    reference = all_four(pooling_reference, x, 7, window, strides, pads)
    assert_bitwise_equal(fast, reference, np.float32)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_max_pool_nan_and_signed_zero_follow_strict_greater_than(dtype):
    # Window scan order is row-major; the running max only changes on a strict '>'.
    # A NaN in the FIRST cell stays (nothing is > NaN); a later NaN never wins.
    # -0.0 first then +0.0: not strictly greater, so -0.0 (and its index) is kept.
    windows = np.array([
        [[np.nan, 1.0], [2.0, 3.0]],
        [[1.0, np.nan], [0.5, 3.0]],
        [[-0.0, 0.0], [-1.0, -2.0]],
        [[-5.0, -1.0], [-1.0, np.nan]],
    ], dtype=dtype)
    channels = windows.shape[0]
    x = np.ascontiguousarray(np.transpose(windows, (1, 2, 0)))[None]  # (1, 2, 2, C)
    pads = ((0, 0), (0, 0))
    y_fast, argmax_fast = pooling_numba.max_pool_forward(x, (2, 2), (2, 2), pads)
    y_ref, argmax_ref = pooling_reference.max_pool_forward(x, (2, 2), (2, 2), pads)
    np.testing.assert_array_equal(argmax_fast, argmax_ref)
    np.testing.assert_array_equal(y_fast, y_ref)  # NaNs compare equal position-wise here
    np.testing.assert_array_equal(np.signbit(y_fast), np.signbit(y_ref))
    # Independent of both implementations: expected winners and values.
    np.testing.assert_array_equal(argmax_fast.reshape(channels), [0, 3, 0, 1])
    assert np.isnan(y_fast[0, 0, 0, 0])
    assert y_fast[0, 0, 0, 1] == 3.0
    assert y_fast[0, 0, 0, 2] == 0.0 and np.signbit(y_fast[0, 0, 0, 2])
    assert y_fast[0, 0, 0, 3] == -1.0


def test_max_pool_backward_sums_overlapping_windows_into_the_shared_argmax():
    # A single large value in the middle of a 5x5 input wins all four 3x3/2 windows.
    x = np.zeros((1, 5, 5, 3), dtype=np.float32)
    x[0, 2, 2, :] = 1.0
    y, argmax = pooling_numba.max_pool_forward(x, (3, 3), (2, 2), ((0, 0), (0, 0)))
    assert np.all(argmax == 2 * 5 + 2)
    grad_output = np.arange(12, dtype=np.float32).reshape(1, 2, 2, 3)
    grad = pooling_numba.max_pool_backward(grad_output, argmax, x.shape)
    expected = np.zeros_like(x)
    expected[0, 2, 2, :] = grad_output[0].sum(axis=(0, 1))
    np.testing.assert_array_equal(grad, expected)
