"""Tests for the batch-normalization kernels (channels last, minidl/keras_semantics.md §5.7), both paths."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from minidl import config, kernels
from minidl.gradcheck import numerical_gradient
from minidl.kernels.fast import batchnorm_numba, relu_numba
from minidl.kernels.reference import batchnorm as batchnorm_reference

PATHS = ["reference", "numba"]


kernel_path = config.using_kernel_path


def naive_batchnorm(x, gamma, beta, epsilon):
    """Per channel, over all other axes, with np.var (ddof=0: the biased variance)."""
    axes = tuple(range(x.ndim - 1))
    mean = x.mean(axis=axes)
    variance = x.var(axis=axes)
    gamma = 1.0 if gamma is None else gamma
    beta = 0.0 if beta is None else beta
    return gamma * (x - mean) / np.sqrt(variance + epsilon) + beta, mean, variance


shapes = st.one_of(
    st.tuples(st.integers(2, 6), st.integers(1, 7)),
    st.tuples(st.integers(1, 3), st.integers(1, 6), st.integers(1, 6), st.integers(1, 7)),
)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("use_gamma,use_beta", [(True, True), (False, True), (False, False)])
def test_train_forward_and_inference_match_the_formula(path, use_gamma, use_beta):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 4, 5, 6)) * 3 + 2
    gamma = rng.standard_normal(6) if use_gamma else None
    beta = rng.standard_normal(6) if use_beta else None
    expected, mean, variance = naive_batchnorm(x, gamma, beta, 1e-3)
    moving_mean, moving_variance = rng.standard_normal(6), rng.uniform(0.5, 2, 6)
    expected_inference = ((x - moving_mean) / np.sqrt(moving_variance + 1e-3)
                          * (1.0 if gamma is None else gamma) + (0.0 if beta is None else beta))
    with kernel_path(path):
        y, batch_mean, batch_variance, inv_std = kernels.batchnorm_train_forward(x, gamma, beta, 1e-3)
        inference = kernels.batchnorm_inference(x, moving_mean, moving_variance, gamma, beta, 1e-3)
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(batch_mean, mean, rtol=1e-12)
    np.testing.assert_allclose(batch_variance, variance, rtol=1e-12)
    np.testing.assert_allclose(inv_std, 1 / np.sqrt(variance + 1e-3), rtol=1e-12)
    assert batch_mean.shape == batch_variance.shape == inv_std.shape == (6,)
    np.testing.assert_allclose(inference, expected_inference, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("path", PATHS)
def test_float32_stays_float32_and_statistics_survive_a_large_offset(path):
    rng = np.random.default_rng(1)
    x64 = 1000.0 + rng.standard_normal((5, 30, 30, 4))
    x = x64.astype(np.float32)
    with kernel_path(path):
        outputs = kernels.batchnorm_train_forward(x, None, np.zeros(4, np.float32), 1e-3)
        grads = kernels.batchnorm_backward(np.ones_like(x), x, outputs[1], outputs[3], None)
        inference = kernels.batchnorm_inference(x, outputs[1], outputs[2], None, None, 1e-3)
    assert all(array.dtype == np.float32 for array in outputs + grads + (inference,))
    _, mean, variance = naive_batchnorm(x.astype(np.float64), None, None, 1e-3)
    np.testing.assert_allclose(outputs[1], mean, rtol=1e-6)
    np.testing.assert_allclose(outputs[2], variance, rtol=1e-3)


@settings(max_examples=40, deadline=None)
@given(shape=shapes, dtype=st.sampled_from([np.float32, np.float64]),
       use_gamma=st.booleans(), seed=st.integers(0, 2**31 - 1))
def test_numba_batchnorm_equals_reference(shape, dtype, use_gamma, seed):
    rng = np.random.default_rng(seed)
    channels = shape[-1]
    x = (rng.standard_normal(shape) * 2 + 1).astype(dtype)
    gamma = rng.standard_normal(channels).astype(dtype) if use_gamma else None
    beta = rng.standard_normal(channels).astype(dtype)
    tolerance = dict(rtol=2e-4, atol=2e-4) if dtype == np.float32 else dict(rtol=1e-9, atol=1e-9)
    forward_ref = batchnorm_reference.batchnorm_train_forward(x, gamma, beta, 1e-3)
    forward_fast = batchnorm_numba.batchnorm_train_forward(x, gamma, beta, 1e-3)
    for fast, ref in zip(forward_fast, forward_ref):
        assert fast.dtype == dtype and ref.dtype == dtype and fast.shape == ref.shape
        np.testing.assert_allclose(fast, ref, **tolerance)
    grad_output = rng.standard_normal(shape).astype(dtype)
    _, mean, variance, inv_std = forward_ref
    backward_ref = batchnorm_reference.batchnorm_backward(grad_output, x, mean, inv_std, gamma)
    backward_fast = batchnorm_numba.batchnorm_backward(grad_output, x, mean, inv_std, gamma)
    for fast, ref in zip(backward_fast, backward_ref):
        assert fast.dtype == dtype and ref.dtype == dtype and fast.shape == ref.shape
        np.testing.assert_allclose(fast, ref, **tolerance)
    inference_ref = batchnorm_reference.batchnorm_inference(x, mean, variance, gamma, beta, 1e-3)
    inference_fast = batchnorm_numba.batchnorm_inference(x, mean, variance, gamma, beta, 1e-3)
    assert inference_fast.dtype == dtype
    np.testing.assert_allclose(inference_fast, inference_ref, **tolerance)


def central_difference(function, array, upstream, epsilon=1e-6):
    return numerical_gradient(lambda: np.vdot(function(), upstream), array, step=epsilon)


def assert_gradient(numeric, analytic):
    error = np.abs(numeric - analytic).max() / max(np.abs(numeric).max(), 1e-12)
    assert error < 1e-6, f"relative gradient error {error:.2e}"


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("shape", [(3, 2, 2, 3), (5, 4)])
@pytest.mark.parametrize("use_gamma", [True, False])
def test_batchnorm_backward_matches_central_differences(path, shape, use_gamma):
    rng = np.random.default_rng(11)
    channels = shape[-1]
    x = rng.standard_normal(shape) * 1.5 + 0.5
    gamma = rng.uniform(0.5, 2.0, channels) if use_gamma else None
    beta = rng.standard_normal(channels)
    epsilon = 1e-3
    with kernel_path(path):
        y, mean, _, inv_std = kernels.batchnorm_train_forward(x, gamma, beta, epsilon)
        upstream = rng.standard_normal(y.shape)
        grad_input, grad_gamma, grad_beta = kernels.batchnorm_backward(upstream, x, mean, inv_std, gamma)

        def forward():
            return kernels.batchnorm_train_forward(x, gamma, beta, epsilon)[0]

        assert_gradient(central_difference(forward, x, upstream), grad_input)
        assert_gradient(central_difference(forward, beta, upstream), grad_beta)
        if gamma is not None:
            assert_gradient(central_difference(forward, gamma, upstream), grad_gamma)
        else:  # gamma None means gamma = 1: its gradient is still reported
            ones = np.ones(channels)
            numeric = central_difference(lambda: kernels.batchnorm_train_forward(x, ones, beta, epsilon)[0],
                                         ones, upstream)
            assert_gradient(numeric, grad_gamma)


def test_batchnorm_rejects_arrays_without_a_channel_axis():
    for module in (batchnorm_reference, batchnorm_numba):
        with pytest.raises(ValueError, match="channel axis"):
            module.batchnorm_train_forward(np.zeros(5), None, None, 1e-3)
    # the engine's error names the function that was called, not one it calls in turn
    with pytest.raises(ValueError, match="batchnorm_train_forward: x must have"):
        batchnorm_numba.batchnorm_train_forward(np.zeros(5), None, None, 1e-3)
    with pytest.raises(ValueError, match="batchnorm_relu_backward: x must have"):
        batchnorm_numba.batchnorm_relu_backward(np.zeros(5), np.zeros(5), 0.0, 1.0, None, None)


def _batch_with_edges(dtype, shape=(3, 5, 4, 6)):
    """x, gamma, beta, g: values of every sign, elements whose normalised value is exactly 0
    (x at the channel's mean, beta 0), and an inf and a NaN in the upstream gradient."""
    rng = np.random.default_rng(7)
    x = (rng.standard_normal(shape) * 2 + 1).astype(dtype)
    x[..., 0] = (np.arange(x[..., 0].size) % 3 + 1).reshape(x[..., 0].shape)     # 1, 2, 3: mean exactly 2
    gamma = (rng.random(shape[-1]) + 0.5).astype(dtype)
    beta = (rng.standard_normal(shape[-1]) * 0.5).astype(dtype)
    beta[0] = 0.0
    grad = rng.standard_normal(shape).astype(dtype)
    grad[0, 0, 0, 1], grad[1, 2, 3, 2] = np.inf, np.nan
    return x, gamma, beta, grad


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_batchnorm_then_relu_fused_is_the_two_kernels_bit_for_bit(dtype):
    """The engine's fused training kernels (one Conv2D -> BN -> ReLU step of a training walk)
    give the bits batchnorm_train_forward then relu_forward give, and backward the bits of
    relu_backward then batchnorm_backward -- the ReLU's mask recomputed from x."""
    x, gamma, beta, grad = _batch_with_edges(dtype)
    y, mean, variance, inv_std = batchnorm_numba.batchnorm_train_forward(x, gamma, beta, 1e-3)
    a = relu_numba.relu_forward(y)
    fused = batchnorm_numba.batchnorm_relu_train_forward(x, gamma, beta, 1e-3)
    for got, want in zip(fused[:4], (a, mean, variance, inv_std)):
        assert got.dtype == dtype and np.array_equal(got, want)
    assert (a == 0).any() and (a > 0).any() and (y[..., 0] == 0).any()
    unfused = batchnorm_numba.batchnorm_backward(relu_numba.relu_backward(grad, a), x, mean, inv_std, gamma)
    through = batchnorm_numba.batchnorm_relu_backward(grad, x, mean, inv_std, gamma, relu_affine=fused[4])
    for got, want in zip(through, unfused):
        assert got.dtype == dtype and np.array_equal(got, want, equal_nan=True)
    assert np.isnan(through[0]).any() and np.isfinite(through[0]).any()
    sums_only = batchnorm_numba.batchnorm_relu_backward(grad, x, mean, inv_std, gamma, fused[4], input_gradient=False)
    assert sums_only[0] is None and all(np.array_equal(g, w, equal_nan=True) for g, w in zip(sums_only[1:], unfused[1:]))


def test_batchnorm_then_relu_backward_equals_the_reference_ops():
    """Against the readable path: reference relu's mask, then reference batchnorm_backward (float64)."""
    x, gamma, beta, grad = _batch_with_edges(np.float64)
    grad = np.nan_to_num(grad, nan=0.5, posinf=2.0)
    y, mean, _, inv_std = batchnorm_reference.batchnorm_train_forward(x, gamma, beta, 1e-3)
    want = batchnorm_reference.batchnorm_backward(grad * (y > 0), x, mean, inv_std, gamma)
    affine = batchnorm_numba.batchnorm_relu_train_forward(x, gamma, beta, 1e-3)[4]
    got = batchnorm_numba.batchnorm_relu_backward(grad, x, mean, inv_std, gamma, relu_affine=affine)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-12)
