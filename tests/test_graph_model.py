"""The functional graph: Keras's layer order, fan-out gradients, nesting, sharing, Sequential, config."""
import numpy as np
import pytest

import minidl
from minidl import check_gradients
from minidl.layers import (Activation, BatchNormalization, Concatenate, Conv2D, Dense, Dropout, Flatten,
                           GlobalAveragePooling2D, Input, MaxPooling2D)
from minidl.models import Model, Sequential, model_from_config


def branchy_model():
    x = Input(shape=(4,), name="x")
    a = Dense(3, name="a")(x)
    b1 = Dense(3, name="b1")(x)
    b2 = Dense(2, name="b2")(b1)
    c = Concatenate(name="c")([a, b2])
    return Model(x, c)


def test_layers_follow_keras_depth_then_preorder():
    # depths: c 0, a 1, b2 1, b1 2, x 3; pre-order from c: c, a, x, b2, b1.
    # Keras sorts by depth (deepest first), ties by pre-order: x, b1, a, b2, c,
    # which is NOT the construction order x, a, b1, b2, c.
    assert [layer.name for layer in branchy_model().layers] == ["x", "b1", "a", "b2", "c"]


def test_fan_out_gradients_are_summed(rng):
    model = branchy_model()
    report = check_gradients(model, rng.standard_normal((3, 4)))
    assert report.max_error < 1e-6, str(report)
    assert len(report.rows) == 1 + 6     # the input and 3 kernels + 3 biases


def test_inception_like_block_gradients(kernel_path, rng):
    x = Input(shape=(6, 6, 3))
    branch1 = Conv2D(2, 1, use_bias=False)(x)
    branch2 = Conv2D(2, (1, 3), padding="same", use_bias=False)(Conv2D(2, 1)(x))
    branch3 = Conv2D(2, (3, 1), padding="same", use_bias=False)(x)
    merged = Concatenate()([branch1, branch2, branch3])
    y = Activation("relu")(BatchNormalization(scale=False)(merged))
    model = Model(x, y)
    report = check_gradients(model, rng.standard_normal((2, 6, 6, 3)))
    assert report.max_error < 1e-6, str(report)


def test_bias_before_batch_norm_has_zero_gradient(rng):
    x = Input(shape=(4, 4, 2))
    conv = Conv2D(3, 3, padding="same")
    model = Model(x, BatchNormalization()(conv(x)))
    model.forward(rng.standard_normal((2, 4, 4, 2)), training=True)
    model.backward(rng.standard_normal((2, 4, 4, 3)))
    np.testing.assert_allclose(conv.bias.grad, 0, atol=1e-5)
    assert np.abs(conv.kernel.grad).max() > 1e-2


def test_shared_layer_uses_its_own_cache_and_sums_parameter_grads(rng):
    x = Input(shape=(3,))
    shared = Dense(3, activation="sigmoid", name="shared")
    y = shared(Dense(3, activation="relu")(shared(x)))
    model = Model(x, y)
    report = check_gradients(model, rng.standard_normal((4, 3)))
    assert report.max_error < 1e-6, str(report)


def test_nested_sequential_head_like_the_workshop(rng):
    x = Input(shape=(5, 5, 3))
    base = Model(x, Activation("relu")(BatchNormalization(scale=False)(Conv2D(4, 3, use_bias=False)(x))))
    head = Sequential()
    head.add(GlobalAveragePooling2D(input_shape=base.output_shape[1:], data_format=None))
    head.add(Dense(4, activation="relu"))
    head.add(Dropout(0.5, seed=1))
    head.add(Dense(1, activation="sigmoid"))
    model = Model(inputs=base.input, outputs=head(base.output))
    assert [type(l).__name__ for l in model.layers][-1] == "Sequential"
    assert model.output_shape == (None, 1)
    assert model.count_params() == base.count_params() + head.count_params()
    # The input's gradient flows back through batch norm's statistics and is small next to
    # the checked objective: with the default step h = 1e-6 float64 rounding (about 1e-16 / h
    # of the objective) alone reaches 1e-6 of it; h = 1e-5 keeps both that and the h^2
    # truncation error far below the tolerance.
    report = check_gradients(model, rng.standard_normal((3, 5, 5, 3)), step=1e-5)
    assert report.max_error < 1e-6, str(report)


def test_freezing_a_nested_model_freezes_its_layers():
    x = Input(shape=(4,))
    inner = Sequential([Dense(3, input_shape=(4,)), BatchNormalization()])
    model = Model(x, Dense(1)(inner(x)))
    total_trainable = len(model.trainable_weights)
    inner.trainable = False
    assert all(not layer.trainable for layer in inner.layers)
    assert len(model.trainable_weights) == total_trainable - 4     # kernel, bias, gamma, beta
    assert model.count_params() == sum(p.value.size for p in model.weights)


def test_sequential_builds_lazily_on_first_call(rng):
    model = Sequential([Dense(4, activation="relu"), Dense(2)])
    with pytest.raises(RuntimeError, match="not been built"):
        model.summary()
    y = model(rng.standard_normal((3, 6)).astype(np.float32))
    assert y.shape == (3, 2)
    assert [type(l).__name__ for l in model.layers] == ["Dense", "Dense"]
    assert model.input_shape == (None, 6)


def test_model_weights_roundtrip_and_errors(rng):
    model = branchy_model()
    arrays = [rng.standard_normal(w.shape).astype(np.float32) for w in model.get_weights()]
    model.set_weights(arrays)
    for got, want in zip(model.get_weights(), arrays):
        np.testing.assert_array_equal(got, want)
    with pytest.raises(ValueError, match="expects 6 weight arrays"):
        model.set_weights(arrays[:-1])
    with pytest.raises(ValueError, match=r"has shape \(4, 3\)"):
        model.layers[1].set_weights([np.zeros((5, 3)), np.zeros(3)])


def test_config_roundtrip_rebuilds_the_same_function(rng):
    x = Input(shape=(6, 6, 2))
    y = MaxPooling2D()(Conv2D(3, 3, padding="same", activation="relu")(x))
    head = Sequential([Flatten(input_shape=(3, 3, 3)), Dense(2, activation="softmax")])
    model = Model(x, head(y))
    clone = model_from_config({"class_name": "Model", "config": model.get_config()})
    clone.set_weights(model.get_weights())
    inputs = rng.standard_normal((2, 6, 6, 2)).astype(np.float32)
    np.testing.assert_array_equal(clone.predict(inputs), model.predict(inputs))
    assert [l.name for l in clone.layers] == [l.name for l in model.layers]


def test_clear_errors_for_bad_input():
    model = branchy_model()
    with pytest.raises(ValueError, match=r"expects input 'x' of shape \(None, 4\), got an array of shape \(2, 5\)"):
        model.predict(np.zeros((2, 5), np.float32))
    conv = Conv2D(4, 3)
    conv(np.zeros((1, 8, 8, 32), np.float32))
    with pytest.raises(ValueError, match=r"Conv2D 'conv2d_1' expects input with 32 channels, got 3"):
        conv(np.zeros((5, 8, 8, 3), np.float32))
    with pytest.raises(ValueError, match="expects input of rank 4"):
        Conv2D(2, 3)(np.zeros((8, 8, 3), np.float32))
    with pytest.raises(ValueError, match="Unknown activation 'rellu'"):
        Dense(2, activation="rellu")
    with pytest.raises(TypeError, match="unknown keyword argument"):
        Dense(2, kernal_size=3)
    with pytest.raises(ValueError, match="padding must be 'valid' or 'same'"):
        Conv2D(2, 3, padding="full")
    with pytest.raises(RuntimeError, match=r"Dense 'dense_\d+': backward\(\) needs what forward\(\) saves"):
        Dense(2).backward(np.zeros((1, 2)))


def test_graph_disconnected_is_reported():
    a = Input(shape=(3,), name="first")
    b = Input(shape=(3,), name="second")
    y = Concatenate()([a, b])
    with pytest.raises(ValueError, match="second"):
        Model(a, y)


def test_automatic_names_follow_keras_2():
    assert Conv2D(1, 1).name == "conv2d_1"
    assert Conv2D(1, 1).name == "conv2d_2"
    assert BatchNormalization().name == "batch_normalization_1"
    assert MaxPooling2D().name == "max_pooling2d_1"
    assert GlobalAveragePooling2D().name == "global_average_pooling2d_1"
    Dense(1, name="dense_7")
    assert Dense(1).name == "dense_8"
    minidl.clear_session()
    assert Conv2D(1, 1).name == "conv2d_1"


def test_float64_inputs_compute_in_float64(rng):
    model = branchy_model()
    assert model.predict(rng.standard_normal((2, 4))).dtype == np.float64
    assert model.predict(rng.standard_normal((2, 4)).astype(np.float32)).dtype == np.float32


def test_sequential_pop_rebuilds_the_graph(rng):
    x = rng.standard_normal((3, 6)).astype(np.float32)
    model = Sequential([Dense(4, input_shape=(6,)), Dense(2)])
    model.predict(x)
    model.pop()
    assert model.output_shape == (None, 4) and model.predict(x).shape == (3, 4)


def test_sequential_pop_of_the_last_layer_leaves_no_stale_graph(rng):
    x = rng.standard_normal((3, 6)).astype(np.float32)
    model = Sequential([Dense(4, input_shape=(6,))])
    model.predict(x)
    model.pop()
    assert model.layers == [] and not model.built
    with pytest.raises(TypeError, match="no layers to pop"):
        model.pop()
    model.add(Dense(5, input_shape=(6,)))
    assert model.output_shape == (None, 5) and model.predict(x).shape == (3, 5)
