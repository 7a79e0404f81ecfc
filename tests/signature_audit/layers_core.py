"""Checks of Layer's keywords, Input, InputLayer, Dense, Activation, Dropout, Flatten."""
import numpy as np
import pytest

from minidl.layers import Activation, Dense, Dropout, Flatten, Input, InputLayer, InputSpec, Layer
from minidl.models import Model, Sequential
from signature_audit import X, check, layer_kwargs_reach_layer


@check("Layer", "name")
def _(t):
    assert Dense(1, name="head").name == "head"


@check("Layer", "trainable")
def _(t):
    layer = Dense(1, trainable=False)
    layer(X)
    assert layer.trainable_weights == [] and len(layer.non_trainable_weights) == 2


@check("Layer", "dtype")
def _(t):
    layer = Dense(1, dtype="float64")
    layer(X)
    assert layer.kernel.value.dtype == np.float64


@check("Layer", "input_shape")
def _(t):
    assert Sequential([Dense(2, input_shape=(3,))]).input_shape == (None, 3)


@check("Layer", "batch_input_shape")
def _(t):
    assert Sequential([Dense(2, batch_input_shape=(4, 3))]).input_shape == (4, 3)


@check("Layer", "batch_size")
def _(t):
    assert Sequential([Dense(2, input_shape=(3,), batch_size=4)]).input_shape == (4, 3)


@check("Layer", "input_dim")
def _(t):
    assert Sequential([Dense(2, input_dim=3)]).input_shape == (None, 3)


@check("Layer", "weights")
def _(t):
    kernel, bias = np.full((3, 2), 0.5, "float32"), np.array([1.0, -1.0], "float32")
    layer = Dense(2, weights=[kernel, bias])
    np.testing.assert_allclose(layer(X), X @ kernel + bias, rtol=1e-6)
    np.testing.assert_array_equal(layer.kernel.value, kernel)


@check("Layer", "**unknown")
def _(t):
    with pytest.raises(TypeError, match="activity_regularizer"):
        Dense(1, activity_regularizer="l2")


@check("Layer.__call__", "inputs", "training")
def _(t):
    layer = Dropout(0.5, seed=0)
    np.testing.assert_array_equal(layer(X), X)                            # inference: unchanged
    assert np.any(layer(X, training=True) == 0)


@check("Layer.__call__", "**kwargs")
def _(t):
    with pytest.raises(TypeError, match="mask"):
        Dense(1)(X, mask=None)


class Scale(Layer):
    """A custom layer: y = x * w, one weight per channel."""

    def __init__(self, **options):
        super().__init__()
        self.options = options

    def build(self, input_shape):
        self.w = self.add_weight("w", (input_shape[-1],), **self.options)


@check("Layer.add_weight", "name", "shape", "initializer", "trainable", "dtype")
def _(t):
    layer = Scale(initializer="ones", trainable=False, dtype="float64")
    layer.build((None, 3))
    assert layer.w.name == f"{layer.name}/w:0" and layer.w.shape == (3,) and layer.w.value.dtype == np.float64
    np.testing.assert_array_equal(layer.w.value, 1.0)
    assert layer.trainable_weights == [] and layer.non_trainable_weights == [layer.w]


@check("InputSpec", "ndim", "min_ndim", "axes")
def _(t):
    InputSpec(ndim=2, min_ndim=2, axes={-1: 3}).check((5, 3), "layer")
    with pytest.raises(ValueError, match="rank 2"):
        InputSpec(ndim=2).check((5, 3, 1), "layer")
    with pytest.raises(ValueError, match="rank >= 3"):
        InputSpec(min_ndim=3).check((5, 3), "layer")
    with pytest.raises(ValueError, match="expects input with 4 channels, got 3"):
        InputSpec(axes={-1: 4}).check((5, 3), "layer")


@check("Input", "shape")
def _(t):
    assert Input(shape=(3,)).shape == (None, 3) and Input(shape=5).shape == (None, 5)


@check("Input", "batch_size")
def _(t):
    assert Input(shape=(3,), batch_size=4).shape == (4, 3)


@check("Input", "name")
def _(t):
    assert Input(shape=(3,), name="pixels").layer.name == "pixels"


@check("Input", "dtype")
def _(t):
    assert Input(shape=(3,), dtype="float64").dtype == np.float64


@check("Input", "batch_shape")
def _(t):
    assert Input(batch_shape=(2, 3)).shape == (2, 3)


@check("Input", "tensor")
def _(t):
    features = Dense(4)(Input(shape=(3,)))
    wrapped = Input(tensor=features)
    assert wrapped is features
    head = Model(wrapped, Dense(1)(wrapped))          # usable as a model's input, as in Keras
    assert head.predict(np.ones((2, 4), "float32")).shape == (2, 1)


@check("InputLayer", "input_shape", "batch_size", "batch_input_shape", "dtype", "name")
def _(t):
    layer = InputLayer(input_shape=(3,), batch_size=2, dtype="float64", name="entry")
    assert layer.output.shape == (2, 3) and layer.output.dtype == np.float64 and layer.name == "entry"
    assert InputLayer(batch_input_shape=(4, 5)).output.shape == (4, 5)


@check("InputLayer", "**kwargs")
def _(t):
    assert InputLayer(input_shape=(3,), trainable=False).trainable is False
    with pytest.raises(TypeError, match="bogus"):
        InputLayer(input_shape=(3,), bogus=1)


@check("Dense", "units")
def _(t):
    assert Dense(5)(X).shape == (8, 5)


@check("Dense", "activation")
def _(t):
    layer = Dense(2, activation="relu", weights=[-np.ones((3, 2), "float32"), np.zeros(2, "float32")])
    np.testing.assert_array_equal(layer(np.abs(X)), 0.0)


@check("Dense", "use_bias")
def _(t):
    layer = Dense(2, use_bias=False)
    layer(X)
    assert [p.name for p in layer.weights] == [f"{layer.name}/kernel:0"]


@check("Dense", "kernel_initializer", "bias_initializer")
def _(t):
    layer = Dense(2, kernel_initializer="ones", bias_initializer="ones")
    layer(X)
    np.testing.assert_array_equal(layer.kernel.value, 1.0)
    np.testing.assert_array_equal(layer.bias.value, 1.0)


@check("Dense", "**kwargs")
def _(t):
    layer_kwargs_reach_layer(lambda **kw: Dense(1, **kw))


@check("Activation", "activation")
def _(t):
    np.testing.assert_array_equal(Activation("relu")(np.array([[-1.0, 2.0]])), [[0.0, 2.0]])
    np.testing.assert_allclose(Activation("sigmoid")(np.zeros((1, 1))), 0.5)


@check("Activation", "**kwargs")
def _(t):
    layer_kwargs_reach_layer(lambda **kw: Activation("relu", **kw))


@check("Dropout", "rate")
def _(t):
    out = Dropout(0.25, seed=0)(np.ones((4000, 1)), training=True)
    assert set(np.unique(out)) == {0.0, 4 / 3}
    assert abs(np.mean(out == 0) - 0.25) < 0.03


@check("Dropout", "noise_shape")
def _(t):
    out = Dropout(0.5, noise_shape=(None, 1), seed=0)(np.ones((200, 4)), training=True)
    assert all(len(set(row)) == 1 for row in out)          # one draw per row, shared by its 4 columns
    assert 0 < np.mean(out[:, 0] == 0) < 1


@check("Dropout", "seed")
def _(t):
    first = Dropout(0.5, seed=7)(np.ones((50, 4)), training=True)
    second = Dropout(0.5, seed=7)(np.ones((50, 4)), training=True)
    other = Dropout(0.5, seed=8)(np.ones((50, 4)), training=True)
    np.testing.assert_array_equal(first, second)
    assert not np.array_equal(first, other)


@check("Dropout", "**kwargs")
def _(t):
    layer_kwargs_reach_layer(lambda **kw: Dropout(0.5, **kw))


@check("Flatten", "data_format")
def _(t):
    x = np.arange(2 * 3 * 2 * 4, dtype="float64").reshape(2, 3, 2, 4)        # (N, C, H, W)
    layer = Flatten(data_format="channels_first")
    out = layer(x)
    np.testing.assert_array_equal(out, np.moveaxis(x, 1, -1).reshape(2, -1))   # Keras: channels last first
    np.testing.assert_array_equal(layer.backward(out), x)
    np.testing.assert_array_equal(Flatten(data_format="channels_last")(x), x.reshape(2, -1))


@check("Flatten", "**kwargs")
def _(t):
    layer_kwargs_reach_layer(lambda **kw: Flatten(**kw))
