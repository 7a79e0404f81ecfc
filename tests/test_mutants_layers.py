"""Dense, BatchNormalization, pooling and Dropout: behaviour the older tests left open, found by
mutation testing (tests/README.md, "Mutation testing")."""
import numpy as np
import pytest

from minidl import check_gradients
from minidl.layers import AveragePooling2D, BatchNormalization, Dense, Dropout, MaxPooling2D

TOLERANCE = 1e-6


# ----------------------------------------------------------------- configs (model files, clone_model)
@pytest.mark.parametrize("layer", [
    Dense(3, activation="sigmoid", use_bias=False, kernel_initializer="he_normal", bias_initializer="ones"),
    BatchNormalization(momentum=0.9, epsilon=1e-2, center=False, scale=False, gamma_initializer="zeros",
                       moving_variance_initializer="zeros"),
    MaxPooling2D((3, 2), strides=(1, 2), padding="same"),
    AveragePooling2D((2, 3), strides=(2, 1), padding="same"),
    Dropout(0.3, noise_shape=(None, 1, 1, 4), seed=7),
], ids=lambda layer: type(layer).__name__)
def test_a_layer_rebuilt_from_its_config_has_every_setting(layer):
    """from_config(get_config()) keeps every non-default argument, as a saved model needs."""
    config = layer.get_config()
    rebuilt = type(layer).from_config(config)
    assert rebuilt.get_config() == config
    defaults = type(layer)(**{key: config[key] for key in ("units", "rate") if key in config}).get_config()
    changed = {key for key in config if key != "name" and config[key] != defaults.get(key)}
    expected_changed = {
        "Dense": {"activation", "use_bias", "kernel_initializer", "bias_initializer"},
        "BatchNormalization": {"momentum", "epsilon", "center", "scale", "gamma_initializer",
                               "moving_variance_initializer"},
        "MaxPooling2D": {"pool_size", "strides", "padding"},
        "AveragePooling2D": {"pool_size", "strides", "padding"},
        "Dropout": {"noise_shape", "seed"},
    }[type(layer).__name__]
    assert expected_changed <= changed, sorted(expected_changed - changed)


def test_dense_without_bias_has_no_bias_and_computes_x_w(rng):
    layer = Dense(2, use_bias=False)
    x = rng.standard_normal((3, 4))
    y = layer(x)
    assert [p.name.split("/")[-1] for p in layer.weights] == ["kernel:0"]
    np.testing.assert_allclose(y, x @ layer.kernel.value, rtol=1e-6)


def test_batch_normalization_config_keeps_its_axis():
    layer = BatchNormalization(axis=3)
    assert BatchNormalization.from_config(layer.get_config()).axis == 3


# ----------------------------------------------------------------- BatchNormalization, inference
@pytest.mark.parametrize("center,scale", [(True, False), (False, True), (False, False)])
def test_batch_normalization_inference_backward_without_gamma_or_beta(kernel_path, rng, center, scale):
    """In inference mode BN is x -> gamma (x - mean) / sqrt(var + eps) + beta per channel; with
    scale=False there is no gamma (1), with center=False no beta (0): finite differences agree."""
    layer = BatchNormalization(center=center, scale=scale)
    x = rng.standard_normal((3, 2, 2, 4)) * 2 + 1
    layer(x)
    layer.moving_mean.value = rng.standard_normal(4).astype(np.float32)
    layer.moving_variance.value = rng.uniform(0.5, 2.0, 4).astype(np.float32)
    for parameter in (layer.gamma, layer.beta):
        if parameter is not None:
            parameter.value = rng.standard_normal(4).astype(np.float32)
    report = check_gradients(layer, x, training=False)
    assert report.max_error < TOLERANCE, str(report)
    gamma = layer.gamma.value if scale else 1.0
    beta = layer.beta.value if center else 0.0
    expected = gamma * (x - layer.moving_mean.value) / np.sqrt(layer.moving_variance.value + 1e-3) + beta
    np.testing.assert_allclose(layer(x, training=False), expected, rtol=1e-5)


# ----------------------------------------------------------------- Dropout
def test_dropout_keeps_each_value_with_probability_1_minus_rate_and_scales_it(rng):
    """Inverted dropout: y is 0 or x / (1 - rate); about rate of the values are dropped; the
    backward pass multiplies by the same mask."""
    layer = Dropout(0.3, seed=1)
    x = np.ones((200, 500))
    y = layer(x, training=True)
    np.testing.assert_allclose(np.unique(y), [0.0, 1 / 0.7], rtol=1e-12)
    assert np.mean(y == 0) == pytest.approx(0.3, abs=0.01)
    grad = rng.standard_normal(x.shape)
    np.testing.assert_array_equal(layer.backward(grad), grad * y)     # y = mask / 0.7 here


def test_dropout_is_the_identity_at_inference_and_with_rate_0(rng):
    x = rng.standard_normal((4, 6))
    for layer, training in ((Dropout(0.5, seed=0), False), (Dropout(0.0, seed=0), True)):
        y = layer(x, training=training)
        np.testing.assert_array_equal(y, x)
        grad = rng.standard_normal(x.shape)
        np.testing.assert_array_equal(layer.backward(grad), grad)


def test_dropout_forward_without_training_is_inference_and_keeps_float32(rng):
    """The layer protocol's forward(inputs, training=False): called bare it is inference; in
    training a float32 input gives a float32 output."""
    x = rng.standard_normal((4, 6)).astype(np.float32)
    layer = Dropout(0.5, seed=0)
    np.testing.assert_array_equal(layer.forward(x), x)
    assert layer(x, training=True).dtype == np.float32


def test_dropout_noise_shape_shares_the_mask_along_axes_of_size_1():
    """noise_shape (None, 1, 1, C): one keep/drop decision per image and channel (Keras's
    spatial dropout), the None taken from the input."""
    layer = Dropout(0.5, noise_shape=(None, 1, 1, 3), seed=2)
    y = layer(np.ones((6, 4, 5, 3)), training=True)
    for image in range(6):
        for channel in range(3):
            values = np.unique(y[image, :, :, channel])
            assert len(values) == 1 and values[0] in (0.0, 2.0)
    assert 0 < np.mean(y == 0) < 1


def test_dropout_seed_makes_the_mask_reproducible():
    x = np.ones((8, 16))
    first = Dropout(0.5, seed=11)(x, training=True)
    second = Dropout(0.5, seed=11)(x, training=True)
    np.testing.assert_array_equal(first, second)
    assert not np.array_equal(first, Dropout(0.5, seed=12)(x, training=True))


@pytest.mark.parametrize("rate", [-0.1, 1.0, 1.5])
def test_dropout_rate_outside_0_1_is_refused_with_the_value(rate):
    with pytest.raises(ValueError, match=rf"^Dropout 'dropout\w*': rate must be in \[0, 1\), got {rate}$"):
        Dropout(rate)


# ----------------------------------------------------------------- Dense
def test_dense_defaults_are_keras_in_its_config():
    config = Dense(3).get_config()
    assert (config["kernel_initializer"], config["bias_initializer"]) == ("glorot_uniform", "zeros")
    assert config["use_bias"] is True and config["activation"] == "linear"


@pytest.mark.parametrize("units", [0, -2, 2.5, "3"])
def test_dense_units_must_be_a_positive_integer(units):
    with pytest.raises(ValueError, match=rf"^Dense 'dense\w*': units must be a positive integer, got {units!r}$"):
        Dense(units)


def test_dense_builds_once_and_checks_its_input():
    """Weights are made at the first call only (a second call gives the same output); the input
    needs a batch axis and, once built, the same last dimension."""
    layer = Dense(2, bias_initializer="ones")
    x = np.arange(8.0).reshape(2, 4)
    first = layer(x)
    np.testing.assert_array_equal(layer(x), first)
    np.testing.assert_array_equal(layer.bias.value, [1.0, 1.0])
    with pytest.raises(ValueError, match=r"dense\w*"):
        layer(np.zeros((2, 5)))
    with pytest.raises(ValueError, match=r"dense\w*"):
        Dense(2)(np.zeros(4))


def test_dense_output_shape_keeps_the_middle_axes():
    from minidl.layers import Input
    assert Dense(3)(Input(shape=(4, 5))).shape == (None, 4, 3)
    assert Dense(3).compute_output_shape((None, 4, 5)) == (None, 4, 3)


def test_dense_refuses_an_unknown_last_dimension():
    with pytest.raises(ValueError, match=r"^Dense 'dense\w*': the last input dimension must be known, "
                                         r"got \(None, None\)$"):
        Dense(2).build((None, None))


# ----------------------------------------------------------------- BatchNormalization
def test_batch_normalization_defaults_and_initializers():
    layer = BatchNormalization(beta_initializer="ones", gamma_initializer="zeros",
                               moving_mean_initializer="ones", moving_variance_initializer="zeros")
    layer(np.zeros((2, 3)))
    np.testing.assert_array_equal(layer.beta.value, [1, 1, 1])
    np.testing.assert_array_equal(layer.gamma.value, [0, 0, 0])
    np.testing.assert_array_equal(layer.moving_mean.value, [1, 1, 1])
    np.testing.assert_array_equal(layer.moving_variance.value, [0, 0, 0])
    config = BatchNormalization().get_config()
    assert [config[f"{k}_initializer"] for k in ("beta", "gamma", "moving_mean", "moving_variance")] == \
        ["zeros", "ones", "zeros", "ones"]
    assert not layer.moving_mean.trainable and not layer.moving_variance.trainable


def test_batch_normalization_keeps_its_statistics_across_calls_and_checks_its_input():
    """Built once: two training steps apply the momentum twice. n = 2 values per channel:
    Bessel's factor n / (n - 1) = 2. x = (0, 2): mean 1, biased variance 1, unbiased 2.
    moving_mean = 0.99 * (0.99 * 0 + 0.01 * 1) + 0.01 * 1; moving_variance likewise from 1 to 2."""
    layer = BatchNormalization()
    x = np.array([[0.0], [2.0]])
    layer(x, training=True)
    layer(x, training=True)
    np.testing.assert_allclose(layer.moving_mean.value, [0.99 * 0.01 + 0.01], rtol=1e-6)
    np.testing.assert_allclose(layer.moving_variance.value, [0.99 * (0.99 + 0.02) + 0.02], rtol=1e-6)
    with pytest.raises(ValueError, match=r"batch_normalization\w*"):
        layer(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"batch_normalization\w*"):
        BatchNormalization()(np.zeros(3))


def test_batch_normalization_bare_forward_is_inference():
    layer = BatchNormalization()
    x = np.array([[0.0], [2.0]])
    layer(x)
    np.testing.assert_allclose(layer.forward(x), x / np.sqrt(1 + 1e-3), rtol=1e-6)
    np.testing.assert_array_equal(layer.moving_mean.value, [0.0])


# ----------------------------------------------------------------- pooling
def test_pooling_output_shapes_for_known_and_unknown_sizes():
    from minidl.layers import Input
    assert MaxPooling2D()(Input(shape=(8, 6, 3))).shape == (None, 4, 3, 3)
    assert AveragePooling2D(3, strides=2, padding="same").compute_output_shape((5, 7, 8, 2)) == (5, 4, 4, 2)
    assert MaxPooling2D().compute_output_shape((None, None, None, 3)) == (None, None, None, 3)
    # either spatial size unknown: both output sizes unknown, batch and channels kept
    assert MaxPooling2D().compute_output_shape((5, None, 8, 3)) == (5, None, None, 3)
    assert MaxPooling2D().compute_output_shape((5, 8, None, 3)) == (5, None, None, 3)


def test_pooling_window_larger_than_its_input_names_the_layer_and_the_shape():
    with pytest.raises(ValueError, match=r"^MaxPooling2D 'max_pooling2d\w*': .*does not fit.* "
                                         r"\(input shape \(None, 2, 2, 3\)\)$"):
        MaxPooling2D(3).compute_output_shape((None, 2, 2, 3))


@pytest.mark.parametrize("arguments,message", [
    (dict(pool_size=(2, 2, 2)), r"`pool_size` must be a positive integer or a tuple of 2 of them, got \(2, 2, 2\)"),
    (dict(strides=0), r"`strides` must be a positive integer or a tuple of 2 of them, got \(0, 0\)"),
    (dict(padding="full"), r"padding must be 'valid' or 'same', got 'full'"),
])
def test_pooling_arguments_are_checked_with_the_layer_named(arguments, message):
    with pytest.raises(ValueError, match=rf"^AveragePooling2D 'average_pooling2d\w*': {message}$"):
        AveragePooling2D(**arguments)


def test_pooling_needs_4_d_input():
    with pytest.raises(ValueError, match=r"max_pooling2d\w*"):
        MaxPooling2D()(np.zeros((2, 4, 4)))


@pytest.mark.parametrize("make_layer", [lambda: Dense(2), lambda: BatchNormalization()], ids=["Dense", "BN"])
def test_a_refused_call_leaves_the_layer_unbuilt_and_a_built_layer_refuses_1_d_input(make_layer):
    """The rank is checked before build: a 1-D input is refused without making weights, so the
    next good call builds for its own shape; once built, a 1-D input whose size matches the
    last axis is refused too (it has no batch axis)."""
    layer = make_layer()
    with pytest.raises(ValueError, match=r"(dense|batch_normalization)\w*"):
        layer(np.zeros(4))
    assert not layer.built and layer.weights == []
    layer(np.zeros((3, 5)))
    assert layer.weights[0].shape[0] == 5
    with pytest.raises(ValueError, match=r"(dense|batch_normalization)\w*"):
        layer(np.zeros(5))


def test_batch_normalization_accepts_its_axis_as_a_list_like_keras():
    x = np.random.default_rng(0).standard_normal((2, 3, 3, 4))
    y = BatchNormalization(axis=[-1])(x, training=True)
    np.testing.assert_allclose(y.mean(axis=(0, 1, 2)), 0.0, atol=1e-6)
    with pytest.raises(NotImplementedError, match=r"^BatchNormalization\(axis=\[1\]\) is not implemented"):
        BatchNormalization(axis=[1])(x)
