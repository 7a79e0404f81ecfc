"""BatchNormalization follows tf.keras: EMA with momentum 0.99 and n/(n-1) variance, epsilon 1e-3,
inference with moving statistics, trainable=False means inference mode (minidl/keras_semantics.md §5.7)."""
import numpy as np
import pytest

from minidl.layers import BatchNormalization


def test_moving_statistics_update_with_bessel_correction(kernel_path, rng):
    layer = BatchNormalization()
    x = rng.standard_normal((5, 4, 4, 3)) * 2 + 3
    layer(x)                                            # build (inference: no update)
    mean0 = rng.standard_normal(3).astype(np.float32)
    var0 = rng.uniform(0.5, 2, 3).astype(np.float32)
    layer.moving_mean.value, layer.moving_variance.value = mean0.copy(), var0.copy()
    layer(x, training=True)
    n = 5 * 4 * 4
    batch_mean = x.mean(axis=(0, 1, 2))
    batch_var = x.var(axis=(0, 1, 2)) * n / (n - 1)
    np.testing.assert_allclose(layer.moving_mean.value, 0.99 * mean0 + 0.01 * batch_mean, rtol=1e-6)
    np.testing.assert_allclose(layer.moving_variance.value, 0.99 * var0 + 0.01 * batch_var, rtol=1e-6)


def test_training_forward_uses_biased_batch_variance_and_epsilon(kernel_path, rng):
    layer = BatchNormalization(center=False, scale=False)
    x = rng.standard_normal((3, 2, 2, 4)) * 0.05           # small variance: epsilon matters
    y = layer(x, training=True)
    mean, var = x.mean(axis=(0, 1, 2)), x.var(axis=(0, 1, 2))
    np.testing.assert_allclose(y, (x - mean) / np.sqrt(var + 1e-3), rtol=1e-6, atol=1e-9)


def test_inference_uses_moving_statistics(kernel_path, rng):
    layer = BatchNormalization()
    x = rng.standard_normal((2, 3, 3, 2))
    layer(x)
    layer.set_weights([np.array([2.0, 0.5]), np.array([0.1, -0.2]), np.array([1.0, -1.0]), np.array([4.0, 0.25])])
    expected = np.array([2.0, 0.5]) * (x - [1.0, -1.0]) / np.sqrt(np.array([4.0, 0.25]) + 1e-3) + [0.1, -0.2]
    np.testing.assert_allclose(layer(x, training=False), expected, rtol=1e-6)
    before = layer.get_weights()
    layer(x, training=False)
    for a, b in zip(before, layer.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_weights_order_is_keras_order():
    layer = BatchNormalization(scale=False)
    layer(np.zeros((1, 2, 2, 3), np.float32))
    assert [p.name.split("/")[1] for p in layer.weights] == ["beta:0", "moving_mean:0", "moving_variance:0"]
    assert [p.trainable for p in layer.weights] == [True, False, False]
    assert layer.epsilon == pytest.approx(1e-3) and layer.momentum == pytest.approx(0.99)
