"""Tests for minidl.kernels geometry, im2col/col2im and conv2d_forward/backward.

Both kernel paths ('reference' and 'numba') are checked against an independent direct
convolution written here, against each other, for adjointness, and by finite differences.
"""
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from minidl import config, kernels
from minidl.gradcheck import numerical_gradient
from minidl.kernels import fast, reference
from minidl.kernels.fast import conv as fast_conv
from minidl.kernels.fast import conv_numba
from minidl.kernels.reference import conv as conv_reference

PATHS = ["reference", "numba"]
KERNEL_SIZES = [(1, 1), (1, 7), (7, 1), (3, 3), (5, 5), (1, 3), (3, 1), (2, 3)]
TOLERANCE = {np.float32: dict(rtol=1e-4, atol=1e-4), np.float64: dict(rtol=1e-10, atol=1e-10)}


kernel_path = config.using_kernel_path


def tf_padding(n, k, s, padding):
    """Independent restatement of TF's rule (minidl/keras_semantics.md §4.1) for the naive implementation."""
    if padding == "valid":
        return (n - k) // s + 1, 0, 0
    out = math.ceil(n / s)
    total = max((out - 1) * s + k - n, 0)
    return out, total // 2, total - total // 2


def naive_conv2d(x, kernel, strides, padding):
    """Direct cross-correlation: y[n,i,j,f] = Σ_{a,b,c} x_pad[n, i*s+a, j*s+b, c] k[a,b,c,f]."""
    batch, height, width, channels = x.shape
    kernel_h, kernel_w, _, filters = kernel.shape
    out_h, top, bottom = tf_padding(height, kernel_h, strides[0], padding)
    out_w, left, right = tf_padding(width, kernel_w, strides[1], padding)
    x_pad = np.zeros((batch, height + top + bottom, width + left + right, channels))
    x_pad[:, top:top + height, left:left + width] = x
    y = np.zeros((batch, out_h, out_w, filters))
    for n in range(batch):
        for i in range(out_h):
            for j in range(out_w):
                for f in range(filters):
                    total = 0.0
                    for a in range(kernel_h):
                        for b in range(kernel_w):
                            for c in range(channels):
                                total += x_pad[n, i * strides[0] + a, j * strides[1] + b, c] * kernel[a, b, c, f]
                    y[n, i, j, f] = total
    return y


@st.composite
def conv_cases(draw, max_batch=2, max_size=9, max_channels=3):
    kernel_size = draw(st.sampled_from(KERNEL_SIZES))
    strides = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = draw(st.sampled_from(["same", "valid"]))
    low_h = kernel_size[0] if padding == "valid" else 1
    low_w = kernel_size[1] if padding == "valid" else 1
    shape = (draw(st.integers(1, max_batch)), draw(st.integers(low_h, max(low_h, max_size))),
             draw(st.integers(low_w, max(low_w, max_size))), draw(st.integers(1, max_channels)))
    filters = draw(st.integers(1, 3))
    seed = draw(st.integers(0, 2**31 - 1))
    return shape, kernel_size, strides, padding, filters, seed


# ---------------------------------------------------------------- geometry (TF specifics)
def test_same_padding_is_asymmetric_like_tensorflow():
    assert kernels.output_size_and_padding(4, 3, 2, "same") == (2, 0, 1)
    assert kernels.output_size_and_padding(5, 3, 2, "same") == (3, 1, 1)
    assert kernels.output_size_and_padding(6, 2, 1, "SAME") == (6, 0, 1)
    assert kernels.output_size_and_padding(7, 1, 3, "same") == (3, 0, 0)


def test_valid_output_sizes_of_inception_stem():
    assert kernels.output_size_and_padding(299, 3, 2, "valid") == (149, 0, 0)
    assert kernels.output_size_and_padding(147, 3, 2, "Valid") == (73, 0, 0)
    assert kernels.conv_geometry((5, 17, 17, 128), (1, 7), (1, 1), "same") == (17, 17, ((0, 0), (3, 3)))


def test_geometry_errors_are_clear():
    with pytest.raises(ValueError, match="does not fit"):
        kernels.output_size_and_padding(2, 3, 1, "valid")
    with pytest.raises(ValueError, match="'valid' or 'same'"):
        kernels.output_size_and_padding(5, 3, 1, "full")
    with pytest.raises(ValueError, match="NHWC"):
        kernels.conv_geometry((5, 5, 3), (3, 3), (1, 1), "same")


# ---------------------------------------------------------------- forward correctness
@pytest.mark.parametrize("path", PATHS)
@settings(max_examples=25, deadline=None)
@given(case=conv_cases())
def test_conv2d_forward_matches_direct_convolution(path, case):
    shape, kernel_size, strides, padding, filters, seed = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)
    kernel = rng.standard_normal(kernel_size + (shape[3], filters))
    _, _, pads = kernels.conv_geometry(shape, kernel_size, strides, padding)
    with kernel_path(path):
        y = kernels.conv2d_forward(x, kernel, strides, pads)
    np.testing.assert_allclose(y, naive_conv2d(x, kernel, strides, padding), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("path", PATHS)
def test_pointwise_fast_path_matches_direct_convolution_and_keeps_float32(path):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 5, 4, 6)).astype(np.float32)
    kernel = rng.standard_normal((1, 1, 6, 3)).astype(np.float32)
    with kernel_path(path):
        y = kernels.conv2d_forward(x, kernel, (1, 1), ((0, 0), (0, 0)))
        grad_input, grad_kernel = kernels.conv2d_backward(np.ones_like(y), x, kernel, (1, 1), ((0, 0), (0, 0)))
    assert y.dtype == np.float32 and grad_input.dtype == np.float32 and grad_kernel.dtype == np.float32
    np.testing.assert_allclose(y, naive_conv2d(x.astype(np.float64), kernel.astype(np.float64), (1, 1), "valid"),
                               rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------- reference vs numba
@settings(max_examples=40, deadline=None)
@given(case=conv_cases(max_batch=3, max_size=12, max_channels=5),
       dtype=st.sampled_from([np.float32, np.float64]))
def test_numba_im2col_col2im_equal_reference(case, dtype):
    shape, kernel_size, strides, padding, _, seed = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(dtype)
    _, _, pads = kernels.conv_geometry(shape, kernel_size, strides, padding)
    cols_reference = conv_reference.im2col(x, kernel_size, strides, pads)
    cols_numba = conv_numba.im2col(x, kernel_size, strides, pads)
    assert cols_numba.dtype == dtype and cols_reference.dtype == dtype
    np.testing.assert_array_equal(cols_numba, cols_reference)  # a pure copy: exact
    grad_cols = rng.standard_normal(cols_reference.shape).astype(dtype)
    back_reference = conv_reference.col2im(grad_cols, shape, kernel_size, strides, pads)
    back_numba = conv_numba.col2im(grad_cols, shape, kernel_size, strides, pads)
    assert back_numba.dtype == dtype and back_numba.shape == shape
    np.testing.assert_allclose(back_numba, back_reference, **TOLERANCE[dtype])


def test_im2col_column_order_is_kh_kw_c_and_padding_is_zero():
    x = np.arange(1, 1 + 2 * 3 * 2, dtype=np.float64).reshape(1, 2, 3, 2)
    for module in (conv_reference, conv_numba):
        cols = module.im2col(x, (2, 2), (1, 1), ((0, 1), (0, 1)))  # 'same' for k=2: pad after
        assert cols.shape == (6, 8)
        # window at output (0, 0): cells (0,0),(0,1),(1,0),(1,1), channels inner
        np.testing.assert_array_equal(cols[0], np.concatenate([x[0, 0, 0], x[0, 0, 1], x[0, 1, 0], x[0, 1, 1]]))
        # window at output (1, 2): only (1, 2) is inside; the rest is padding
        np.testing.assert_array_equal(cols[5], np.concatenate([x[0, 1, 2], [0, 0], [0, 0], [0, 0]]))


# ---------------------------------------------------------------- adjointness
@pytest.mark.parametrize("path", PATHS)
@settings(max_examples=25, deadline=None)
@given(case=conv_cases(max_batch=3, max_size=10, max_channels=4))
def test_col2im_is_the_adjoint_of_im2col(path, case):
    shape, kernel_size, strides, padding, _, seed = case
    rng = np.random.default_rng(seed)
    _, _, pads = kernels.conv_geometry(shape, kernel_size, strides, padding)
    x = rng.standard_normal(shape)
    with kernel_path(path):
        cols = kernels.im2col(x, kernel_size, strides, pads)
        c = rng.standard_normal(cols.shape)
        back = kernels.col2im(c, shape, kernel_size, strides, pads)
    assert np.isclose(np.vdot(cols, c), np.vdot(x, back), rtol=1e-10, atol=1e-10)


# ---------------------------------------------------------------- gradients
def central_difference_check(function, array, grad_array, upstream, epsilon=1e-6):
    """Compare every entry of an analytic gradient with central differences of <f(.), upstream>."""
    numeric = numerical_gradient(lambda: np.vdot(function(), upstream), array, step=epsilon)
    error = np.abs(numeric - grad_array).max() / max(np.abs(numeric).max(), 1e-12)
    assert error < 1e-7, f"relative gradient error {error:.2e}"


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("kernel_size,strides,padding", [
    ((3, 3), (2, 2), "same"),   # asymmetric TF padding: n=6, k=3, s=2 -> (0, 1)
    ((3, 3), (1, 1), "valid"),
    ((1, 3), (1, 2), "same"),
    ((3, 1), (2, 1), "valid"),
    ((1, 1), (1, 1), "valid"),  # the 1x1 fast path
    ((2, 2), (3, 3), "same"),   # stride larger than the kernel: some cells unused
])
def test_conv2d_backward_matches_central_differences(path, kernel_size, strides, padding):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 6, 5, 2))
    kernel = rng.standard_normal(kernel_size + (2, 3))
    _, _, pads = kernels.conv_geometry(x.shape, kernel_size, strides, padding)
    with kernel_path(path):
        y = kernels.conv2d_forward(x, kernel, strides, pads)
        upstream = rng.standard_normal(y.shape)
        grad_input, grad_kernel = kernels.conv2d_backward(upstream, x, kernel, strides, pads)

        def forward():
            return kernels.conv2d_forward(x, kernel, strides, pads)

        central_difference_check(forward, x, grad_input, upstream)
        central_difference_check(forward, kernel, grad_kernel, upstream)


@pytest.mark.parametrize("kernel_size,strides", [((3, 3), (2, 2)), ((1, 1), (1, 1))])
def test_engine_skips_the_input_gradient_only_when_asked(kernel_size, strides):
    rng = np.random.default_rng(8)
    x = rng.standard_normal((2, 6, 5, 2))
    kernel = rng.standard_normal(kernel_size + (2, 3))
    _, _, pads = kernels.conv_geometry(x.shape, kernel_size, strides, "same")
    upstream = rng.standard_normal(fast_conv.conv2d_forward(x, kernel, strides, pads).shape)
    grad_input, grad_kernel = fast_conv.conv2d_backward(upstream, x, kernel, strides, pads)
    with fast_conv.without_input_gradient():
        only_kernel = fast_conv.conv2d_backward(upstream, x, kernel, strides, pads)
    assert grad_input is not None and only_kernel[0] is None
    np.testing.assert_array_equal(only_kernel[1], grad_kernel)
    assert fast_conv.conv2d_backward(upstream, x, kernel, strides, pads)[0] is not None   # restored


@pytest.mark.parametrize("path", PATHS)
def test_conv_shape_errors_name_the_problem(path):
    x = np.zeros((1, 5, 5, 3))
    with kernel_path(path):
        with pytest.raises(ValueError, match="C=3"):
            kernels.conv2d_forward(x, np.zeros((3, 3, 4, 2)), (1, 1), ((1, 1), (1, 1)))
        with pytest.raises(ValueError, match="grad_output must have shape"):
            kernels.conv2d_backward(np.zeros((1, 4, 4, 2)), x, np.zeros((3, 3, 3, 2)), (1, 1), ((1, 1), (1, 1)))


def test_operations_follow_set_kernel_path_at_once():
    with kernel_path("reference"):
        assert kernels.conv2d_forward is reference.conv2d_forward
        assert kernels.adam_update is reference.adam_update
    with kernel_path("numba"):
        x, kernel = np.ones((1, 3, 3, 1)), np.ones((1, 1, 1, 1))
        kernels.conv2d_forward(x, kernel, (1, 1), ((0, 0), (0, 0)))    # the engine loads at its first call
        assert kernels.conv2d_forward is fast.conv2d_forward
        assert kernels.relu_forward is fast.relu_forward
    with kernel_path("reference"):
        assert kernels.conv2d_forward is reference.conv2d_forward
