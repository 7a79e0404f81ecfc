"""Every layer's backward agrees with finite differences of its forward (float64,
random upstream gradient, inputs and every trainable parameter), on both kernel paths."""
import numpy as np
import pytest

from minidl import check_gradients
from minidl.layers import (Activation, AveragePooling2D, BatchNormalization, Concatenate, Conv2D, Dense,
                           Dropout, Flatten, GlobalAveragePooling2D, MaxPooling2D)

TOLERANCE = 1e-6


def distinct_values(rng, shape):
    """Inputs without ties, so max pooling and ReLU have a unique derivative."""
    values = rng.permutation(np.prod(shape)).reshape(shape).astype(np.float64)
    return values / values.size + 0.01 * rng.standard_normal(shape)


def randomize_parameters(layer, rng):
    for parameter in layer.weights:
        if parameter.trainable:
            parameter.value = rng.standard_normal(parameter.shape).astype(parameter.dtype) * 0.5


def assert_gradients(layer, inputs, rng, training=True):
    layer(inputs) if not layer.built else None
    randomize_parameters(layer, rng)
    report = check_gradients(layer, inputs, training=training)
    assert report.rows, "nothing was checked"
    assert report.max_error < TOLERANCE, str(report)
    return report


@pytest.mark.parametrize("kernel_size,strides,padding,shape", [
    ((3, 3), (1, 1), "same", (2, 7, 6, 3)),
    ((3, 3), (2, 2), "valid", (2, 9, 8, 2)),
    ((3, 3), (2, 2), "same", (2, 8, 7, 2)),      # asymmetric TF padding
    ((1, 7), (1, 1), "same", (1, 5, 9, 3)),
    ((7, 1), (1, 1), "same", (1, 9, 5, 3)),
    ((1, 1), (1, 1), "valid", (2, 4, 5, 6)),     # the 1x1 fast path
    ((1, 1), (2, 2), "valid", (2, 5, 5, 3)),
    ((5, 5), (1, 1), "same", (1, 6, 6, 2)),
    ((2, 3), (3, 2), "valid", (2, 8, 9, 2)),
])
def test_conv2d(kernel_path, rng, kernel_size, strides, padding, shape):
    layer = Conv2D(4, kernel_size, strides=strides, padding=padding)
    assert_gradients(layer, rng.standard_normal(shape), rng)


@pytest.mark.parametrize("activation", ["relu", "sigmoid", "softmax", "linear"])
def test_conv2d_activation_without_bias(kernel_path, rng, activation):
    layer = Conv2D(3, 3, padding="same", activation=activation, use_bias=activation != "relu")
    assert_gradients(layer, distinct_values(rng, (2, 5, 5, 2)), rng)


@pytest.mark.parametrize("shape,training,center,scale", [
    ((4, 5, 6, 3), True, True, True),
    ((3, 4, 4, 5), True, True, False),          # InceptionV3's BN: no gamma
    ((6, 4), True, True, True),
    ((4, 5, 6, 3), False, True, True),          # inference mode uses moving statistics
    ((2, 3, 3, 4), True, False, True),
])
def test_batch_normalization(kernel_path, rng, shape, training, center, scale):
    layer = BatchNormalization(center=center, scale=scale)
    layer(np.zeros(shape))
    layer.moving_mean.value = rng.standard_normal(shape[-1]).astype(np.float32)
    layer.moving_variance.value = rng.uniform(0.5, 2.0, shape[-1]).astype(np.float32)
    report = assert_gradients(layer, rng.standard_normal(shape) * 2 + 1, rng, training=training)
    checked = {row[0] for row in report.rows}
    assert "input" in checked
    assert (f"{layer.name}/beta:0" in checked) == center
    assert (f"{layer.name}/gamma:0" in checked) == scale


def test_batch_normalization_frozen_runs_in_inference_mode(kernel_path, rng):
    layer = BatchNormalization()
    x = rng.standard_normal((4, 3, 3, 2)) * 3 + 5
    layer(x)
    layer.trainable = False
    before = layer.moving_mean.value.copy()
    y = layer(x, training=True)
    np.testing.assert_allclose(y, (x - 0) / np.sqrt(1 + 1e-3), rtol=1e-6)
    np.testing.assert_array_equal(layer.moving_mean.value, before)
    report = check_gradients(layer, x, training=True)
    assert report.max_error < TOLERANCE, str(report)


@pytest.mark.parametrize("layer_class", [MaxPooling2D, AveragePooling2D])
@pytest.mark.parametrize("pool,strides,padding,shape", [
    ((3, 3), (2, 2), "valid", (2, 9, 9, 3)),
    ((3, 3), (1, 1), "same", (2, 5, 6, 2)),
    ((2, 2), None, "valid", (1, 6, 6, 2)),
    ((3, 3), (2, 2), "same", (1, 8, 7, 2)),
    ((2, 3), (1, 2), "same", (1, 5, 7, 1)),
])
def test_pooling(kernel_path, rng, layer_class, pool, strides, padding, shape):
    layer = layer_class(pool, strides=strides, padding=padding)
    assert_gradients(layer, distinct_values(rng, shape), rng)


def test_global_average_pooling(kernel_path, rng):
    assert_gradients(GlobalAveragePooling2D(), rng.standard_normal((3, 4, 5, 6)), rng)


@pytest.mark.parametrize("activation", ["relu", "sigmoid", "softmax", "linear"])
def test_dense(kernel_path, rng, activation):
    assert_gradients(Dense(5, activation=activation), distinct_values(rng, (4, 7)), rng)


def test_dense_on_rank_3_input(kernel_path, rng):
    assert_gradients(Dense(3), rng.standard_normal((2, 4, 5)), rng)


@pytest.mark.parametrize("activation", ["relu", "sigmoid", "softmax", "linear"])
def test_activation_layer(kernel_path, rng, activation):
    assert_gradients(Activation(activation), distinct_values(rng, (3, 6)), rng)


def test_dropout_training_mask_is_replayed(kernel_path, rng):
    layer = Dropout(0.5, seed=3)
    report = assert_gradients(layer, rng.standard_normal((4, 10)), rng, training=True)
    assert report.rows[0][0] == "input"


def test_flatten(kernel_path, rng):
    assert_gradients(Flatten(), rng.standard_normal((2, 3, 4, 5)), rng)


def test_concatenate(kernel_path, rng):
    layer = Concatenate()
    inputs = [rng.standard_normal((2, 3, 3, c)) for c in (1, 4, 2)]
    report = assert_gradients(layer, inputs, rng)
    assert [row[0] for row in report.rows] == ["input 0", "input 1", "input 2"]


def test_gradcheck_catches_a_broken_backward(rng):
    """A batch-norm backward missing its mean term must fail the check."""
    layer = BatchNormalization()
    x = rng.standard_normal((4, 3, 3, 2))
    layer(x, training=True)

    original_backward = layer.backward

    def broken_backward(grad_output):
        original_backward(grad_output)
        _, inputs, mean, inv_std, gamma = layer.saved
        return grad_output * gamma * inv_std         # treats batch statistics as constants

    layer.backward = broken_backward
    report = check_gradients(layer, x, training=True)
    assert report.max_error > 1e-3
