"""The reference kernels (minidl/kernels/reference/): behaviour the older tests left open, found by
mutation testing (tests/README.md, "Mutation testing"). A learner reads these files; their
errors must say which function refused what, and float32 must stay float32."""
import numpy as np
import pytest

from minidl.kernels.reference import batchnorm, conv, pooling

VALID = ((0, 0), (0, 0))


# ----------------------------------------------------------------- errors name the function
@pytest.mark.parametrize("call,where", [
    (lambda x: conv.im2col(x, (3, 3), (1, 1), VALID), "conv.py im2col"),
    (lambda x: conv.col2im(np.zeros((1, 9)), x.shape, (3, 3), (1, 1), VALID), "conv.py col2im"),
    (lambda x: pooling.max_pool_forward(x, (3, 3), (1, 1), VALID), "pooling.py max_pool_forward"),
    (lambda x: pooling.avg_pool_forward(x, (3, 3), (1, 1), VALID), "pooling.py avg_pool_forward"),
    (lambda x: pooling.avg_pool_backward(np.zeros((1, 1, 1, 1)), x.shape, (3, 3), (1, 1), VALID),
     "pooling.py avg_pool_backward"),
], ids=["im2col", "col2im", "max_pool_forward", "avg_pool_forward", "avg_pool_backward"])
def test_a_window_larger_than_the_input_names_the_function(call, where):
    x = np.zeros((1, 2, 2, 1))
    with pytest.raises(ValueError, match=rf"^minidl/kernels/reference/{where}: window \(3, 3\) with pads "
                                         r"\(\(0, 0\), \(0, 0\)\) does not fit in input of shape \(1, 2, 2, 1\)"):
        call(x)


def test_shape_mismatches_name_the_function_and_both_shapes():
    x = np.zeros((1, 4, 4, 2))
    with pytest.raises(ValueError, match=r"^minidl/kernels/reference/conv.py col2im: cols must have shape "
                                         r"\(4, 18\) for input_shape \(1, 4, 4, 2\), got \(4, 9\)$"):
        conv.col2im(np.zeros((4, 9)), x.shape, (3, 3), (1, 1), VALID)
    with pytest.raises(ValueError, match=r"^minidl/kernels/reference/conv.py conv2d_forward: x must be NHWC "
                                         r"\(4-D\) and kernel \(KH, KW, C=2, F\), got x \(1, 4, 4, 2\), "
                                         r"kernel \(3, 3, 3, 1\)$"):
        conv.conv2d_forward(x, np.zeros((3, 3, 3, 1)), (1, 1), VALID)
    with pytest.raises(ValueError, match=r"^minidl/kernels/reference/conv.py conv2d_backward: x must be NHWC"):
        conv.conv2d_backward(np.zeros((1, 2, 2, 1)), x, np.zeros((3, 3, 3, 1)), (1, 1), VALID)
    with pytest.raises(ValueError, match=r"^minidl/kernels/reference/pooling.py avg_pool_backward: grad_output "
                                         r"must have shape \(1, 2, 2, 2\), got \(1, 2, 2, 1\)$"):
        pooling.avg_pool_backward(np.zeros((1, 2, 2, 1)), x.shape, (3, 3), (1, 1), VALID)
    with pytest.raises(ValueError, match=r"^minidl/kernels/reference/pooling.py max_pool_backward: grad_output "
                                         r"and argmax must have the same shape, got \(1, 1\) and \(1, 2\)$"):
        pooling.max_pool_backward(np.zeros((1, 1)), np.zeros((1, 2), dtype=np.int64), x.shape)


@pytest.mark.parametrize("call,where", [
    (lambda x: batchnorm.batchnorm_train_forward(x, None, None, 1e-3), "batchnorm_train_forward"),
    (lambda x: batchnorm.batchnorm_backward(x, x, np.zeros(1), np.ones(1), None), "batchnorm_backward"),
])
def test_batchnorm_without_a_channel_axis_names_the_function(call, where):
    with pytest.raises(ValueError, match=rf"^minidl/kernels/reference/batchnorm.py {where}: x must have a "
                                         r"batch axis and a channel axis .* got shape \(5,\)$"):
        call(np.zeros(5))


# ----------------------------------------------------------------- float32 in, float32 out
def test_max_pool_backward_keeps_float32():
    x = np.arange(16, dtype=np.float32).reshape(1, 4, 4, 1)
    y, argmax = pooling.max_pool_forward(x, (2, 2), (2, 2), VALID)
    grad = pooling.max_pool_backward(np.ones_like(y), argmax, x.shape)
    assert grad.dtype == np.float32
    np.testing.assert_array_equal(grad[0, :, :, 0], [[0, 0, 0, 0], [0, 1, 0, 1], [0, 0, 0, 0], [0, 1, 0, 1]])


# ----------------------------------------------------------------- batch norm sums in float64
def test_batchnorm_variance_is_accumulated_in_float64():
    """The docstring's promise: statistics in float64. float32 activations of +-1.5e19: each square
    (2.25e38) fits in float32, their float32 sum does not; the normalized output is still +-1."""
    x = np.array([[-1.5e19], [1.5e19]], dtype=np.float32)
    y, _, _, inv_std = batchnorm.batchnorm_train_forward(x, None, None, 1e-3)
    np.testing.assert_allclose(y[:, 0], [-1.0, 1.0], rtol=1e-6)
    assert y.dtype == np.float32 and np.isfinite(inv_std).all()


def test_batchnorm_gradient_sums_are_accumulated_in_float64():
    """dL/dbeta = sum g and dL/dgamma = sum g x_hat, summed in float64 then rounded once to
    float32: 1e8 + 1 - 1e8 is 1, where a float32 running sum gives 0."""
    x = np.array([[-1.0], [0.5], [1.0]], dtype=np.float32)
    _, mean, _, inv_std = batchnorm.batchnorm_train_forward(x, None, None, 1e-3)
    g = np.array([[1e8], [1.0], [-1e8]], dtype=np.float32)
    _, _, grad_beta = batchnorm.batchnorm_backward(g, x, mean, inv_std, None)
    assert grad_beta[0] == np.float32(1.0) and grad_beta.dtype == np.float32
    x_hat = (x - mean) * inv_std                        # as the kernel computes it, in float32
    g = np.array([[1e8 / x_hat[0, 0]], [1.0], [-1e8 / x_hat[2, 0]]], dtype=np.float32)   # g x_hat ~ 1e8, x_hat_1, -1e8
    _, grad_gamma, _ = batchnorm.batchnorm_backward(g, x, mean, inv_std, None)
    expected = np.float32(np.sum(g.astype(np.float64) * x_hat.astype(np.float64)))
    assert expected != 0 and grad_gamma[0] == expected and grad_gamma.dtype == np.float32


def test_convolution_refuses_a_3_d_input_and_names_the_batch_in_gradient_shapes():
    from minidl.kernels.reference import conv as conv_module
    with pytest.raises(ValueError, match=r"^minidl/kernels/reference/conv.py conv2d_forward: x must be NHWC"):
        conv_module.conv2d_forward(np.zeros((4, 4, 2)), np.zeros((3, 3, 2, 1)), (1, 1), VALID)
    x = np.zeros((3, 4, 4, 2))
    with pytest.raises(ValueError, match=r"^minidl/kernels/reference/conv.py conv2d_backward: grad_output must "
                                         r"have shape \(3, 2, 2, 1\), got \(3, 2, 2, 2\)$"):
        conv_module.conv2d_backward(np.zeros((3, 2, 2, 2)), x, np.zeros((3, 3, 2, 1)), (1, 1), VALID)
