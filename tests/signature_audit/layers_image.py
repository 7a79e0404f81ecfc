"""Checks of Conv2D, BatchNormalization, the poolings, Concatenate."""
import numpy as np

from minidl import layers
from minidl.layers import BatchNormalization, Concatenate, Conv2D, Input, concatenate
from signature_audit import RNG, check, layer_kwargs_reach_layer, not_implemented


IMAGES = RNG.normal(size=(2, 6, 6, 3)).astype("float32")


@check("Conv2D", "filters", "kernel_size")
def _(t):
    layer = Conv2D(5, (2, 3))
    assert layer(IMAGES).shape == (2, 5, 4, 5) and layer.kernel.shape == (2, 3, 3, 5)


@check("Conv2D", "strides")
def _(t):
    assert Conv2D(2, 3, strides=2)(IMAGES).shape == (2, 2, 2, 2)


@check("Conv2D", "padding")
def _(t):
    assert Conv2D(2, 3, padding="same")(IMAGES).shape == (2, 6, 6, 2)


@check("Conv2D", "data_format")
def _(t):
    assert Conv2D(2, 3, data_format="channels_last")(IMAGES).shape == (2, 4, 4, 2)
    with not_implemented("Conv2D", "data_format", "channels_first"):
        Conv2D(2, 3, data_format="channels_first")


@check("Conv2D", "dilation_rate")
def _(t):
    with not_implemented("Conv2D", "dilation_rate", (2, 2)):
        Conv2D(2, 3, dilation_rate=(2, 2))


@check("Conv2D", "activation")
def _(t):
    assert Conv2D(4, 3, activation="relu")(IMAGES).min() == 0.0


@check("Conv2D", "use_bias")
def _(t):
    layer = Conv2D(2, 3, use_bias=False)
    layer(IMAGES)
    assert len(layer.weights) == 1


@check("Conv2D", "kernel_initializer", "bias_initializer")
def _(t):
    layer = Conv2D(1, 1, kernel_initializer="ones", bias_initializer="ones")
    np.testing.assert_allclose(layer(IMAGES)[..., 0], IMAGES.sum(axis=-1) + 1, rtol=1e-5)


@check("Conv2D", "**kwargs")
def _(t):
    layer_kwargs_reach_layer(lambda **kw: Conv2D(1, 1, **kw))


FEATURES = (RNG.normal(size=(4, 3, 3, 2)) * 3 + 5).astype("float64")


@check("BatchNormalization", "axis")
def _(t):
    assert BatchNormalization(axis=3)(FEATURES).shape == FEATURES.shape       # the last axis, named
    with not_implemented("BatchNormalization", "axis", 1):
        BatchNormalization(axis=1)(FEATURES)


@check("BatchNormalization", "momentum")
def _(t):
    layer = BatchNormalization(momentum=0.5)
    layer(FEATURES, training=True)
    np.testing.assert_allclose(layer.moving_mean.value, 0.5 * FEATURES.mean(axis=(0, 1, 2)), rtol=1e-5)


@check("BatchNormalization", "epsilon")
def _(t):
    np.testing.assert_allclose(BatchNormalization(epsilon=1.0)(FEATURES), FEATURES / np.sqrt(2.0), rtol=1e-6)


@check("BatchNormalization", "center", "scale")
def _(t):
    layer = BatchNormalization(center=False, scale=False)
    layer(FEATURES)
    assert [p.name.split("/")[1] for p in layer.weights] == ["moving_mean:0", "moving_variance:0"]


@check("BatchNormalization", "beta_initializer", "gamma_initializer")
def _(t):
    np.testing.assert_allclose(BatchNormalization(beta_initializer="ones", gamma_initializer="zeros")(FEATURES), 1.0)


@check("BatchNormalization", "moving_mean_initializer", "moving_variance_initializer")
def _(t):
    layer = BatchNormalization(moving_mean_initializer="ones", moving_variance_initializer="zeros", epsilon=0.25)
    np.testing.assert_allclose(layer(FEATURES), (FEATURES - 1) / 0.5, rtol=1e-6)


@check("BatchNormalization", "**kwargs")
def _(t):
    layer_kwargs_reach_layer(lambda **kw: BatchNormalization(**kw))


POOL_INPUT = np.arange(2 * 4 * 4 * 1, dtype="float64").reshape(2, 4, 4, 1)


def pooling_class(t):
    return getattr(layers, t.name)


@check("MaxPooling2D", "pool_size")
@check("AveragePooling2D", "pool_size")
def _(t):
    out = pooling_class(t)(pool_size=(2, 2))(POOL_INPUT)
    window = POOL_INPUT[0, :2, :2, 0]
    assert out[0, 0, 0, 0] == (window.max() if t.name == "MaxPooling2D" else window.mean())


@check("MaxPooling2D", "strides")
@check("AveragePooling2D", "strides")
def _(t):
    assert pooling_class(t)(pool_size=2, strides=1)(POOL_INPUT).shape == (2, 3, 3, 1)


@check("MaxPooling2D", "padding")
@check("AveragePooling2D", "padding")
def _(t):
    assert pooling_class(t)(pool_size=3, strides=2, padding="same")(POOL_INPUT).shape == (2, 2, 2, 1)


@check("MaxPooling2D", "data_format")
@check("AveragePooling2D", "data_format")
def _(t):
    with not_implemented(t.name, "data_format", "channels_first"):
        pooling_class(t)(data_format="channels_first")


@check("MaxPooling2D", "**kwargs")
@check("AveragePooling2D", "**kwargs")
def _(t):
    layer_kwargs_reach_layer(lambda **kw: pooling_class(t)(**kw))


@check("GlobalAveragePooling2D", "data_format")
@check("GlobalMaxPooling2D", "data_format")
def _(t):
    assert pooling_class(t)(data_format=None)(POOL_INPUT).shape == (2, 1)
    with not_implemented(t.name, "data_format", "channels_first"):
        pooling_class(t)(data_format="channels_first")


@check("GlobalAveragePooling2D", "keepdims")
@check("GlobalMaxPooling2D", "keepdims")
def _(t):
    out = pooling_class(t)(keepdims=True)(POOL_INPUT)
    expected = POOL_INPUT.mean(axis=(1, 2)) if t.name == "GlobalAveragePooling2D" else POOL_INPUT.max(axis=(1, 2))
    assert out.shape == (2, 1, 1, 1)
    np.testing.assert_allclose(out[:, 0, 0], expected)


@check("GlobalAveragePooling2D", "**kwargs")
@check("GlobalMaxPooling2D", "**kwargs")
def _(t):
    layer_kwargs_reach_layer(lambda **kw: pooling_class(t)(**kw))


@check("Concatenate", "axis")
def _(t):
    assert Concatenate(axis=1)([POOL_INPUT, POOL_INPUT]).shape == (2, 8, 4, 1)


@check("Concatenate", "**kwargs")
def _(t):
    layer_kwargs_reach_layer(lambda **kw: Concatenate(**kw))


@check("concatenate", "inputs", "axis", "name")
def _(t):
    a, b = Input(shape=(4, 4, 1)), Input(shape=(4, 4, 2))
    joined = concatenate([a, b], axis=3, name="mixed0")
    assert joined.shape == (None, 4, 4, 3) and joined.layer.name == "mixed0"
