"""Checks of Model, Sequential, their own methods, load_model, model_from_config."""
import numpy as np
import pytest

from minidl.layers import Dense, Dropout, Input
from minidl.models import Model, Sequential, load_model, model_from_config
from minidl.optimizers import SGD
from signature_audit import (Doubler, X, Y, check, compiled_model, model_with_custom_layer, not_implemented,
                             tiny_model)


@check("Model", "inputs", "outputs")
def _(t):
    inputs = Input(shape=(3,))
    hidden = Dense(4)(inputs)
    model = Model(inputs, [hidden, Dense(1)(hidden)])
    assert [o.shape for o in model.predict(X)] == [(8, 4), (8, 1)]


@check("Model", "name")
def _(t):
    assert tiny_model(name="classifier").name == "classifier"


@check("Model", "trainable")
def _(t):
    inputs = Input(shape=(3,))
    assert Model(inputs, Dense(1)(inputs), trainable=False).trainable_weights == []


@check("Model", "**kwargs")
def _(t):
    inputs = Input(shape=(3,))
    outputs = Dense(1)(inputs)
    with pytest.raises(TypeError, match="input_shape"):
        Model(inputs, outputs, input_shape=(3,))
    with not_implemented("Model", "dtype", "float64"):
        Model(inputs, outputs, dtype="float64")


@check("Model.get_layer", "name", "index")
def _(t):
    model = tiny_model()
    assert model.get_layer("out") is model.layers[1]
    assert model.get_layer(index=0) is model.layers[0]
    with pytest.raises(ValueError, match="name or an index"):
        model.get_layer()


@check("Model.summary", "line_length", "positions", "print_fn")
def _(t):
    lines = []
    tiny_model().summary(line_length=50, positions=[14, 28, 36, 50], print_fn=lines.append)
    assert lines[1] == "_" * 50
    assert lines[2] == "Layer (type)".ljust(14) + "Output Shape".ljust(14) + "Param #".ljust(8) + "Connected to"
    shares = []
    tiny_model().summary(positions=[0.5, 0.7, 0.8, 1.0], print_fn=shares.append)
    assert shares[2].index("Output Shape") == 49 and len(shares[1]) == 98
    assert t.capsys.readouterr().out == ""


@check("Model.walk_layers", "recursive")
def _(t):
    inner = tiny_model()
    inputs = Input(shape=(3,))
    outer = Model(inputs, inner(inputs))
    assert len(list(outer.walk_layers(recursive=False))) == 2
    assert len(list(outer.walk_layers())) == 4


@check("Model.compute_gradients", "x", "y", "training")
def _(t):
    inputs = Input(shape=(3,))
    model = Model(inputs, Dense(1, activation="sigmoid")(Dropout(0.5, seed=1)(inputs)))
    model.compile(SGD(0.1), "binary_crossentropy")
    kernel = model.trainable_weights[0]
    model.compute_gradients(X, Y, training=False)
    inference = kernel.grad.copy()
    model.compute_gradients(X, Y, training=False)
    np.testing.assert_array_equal(kernel.grad, inference)            # no dropout: the same every time
    model.compute_gradients(X, Y)                                     # training=True drops inputs
    assert not np.allclose(kernel.grad, inference)


@check("Layer.set_weights", "arrays")
def _(t):
    model = tiny_model()
    arrays = [np.full((3, 1), 2.0, "float32"), np.array([1.0], "float32")]
    model.set_weights(arrays)
    np.testing.assert_allclose(model.get_layer("out").kernel.value, 2.0)
    with pytest.raises(ValueError, match="expects 2 weight arrays"):
        model.set_weights(arrays[:1])


@check("Sequential", "layers", "name")
def _(t):
    model = Sequential([Dense(2, input_shape=(3,)), Dense(1)], name="stack")
    assert model.name == "stack" and model.predict(X).shape == (8, 1) and len(model.layers) == 2


@check("Sequential", "**kwargs")
def _(t):
    model = Sequential([Dense(2, input_shape=(3,))], trainable=False)
    assert model.trainable_weights == []
    with pytest.raises(TypeError, match="input_shape"):
        Sequential(input_shape=(3,))


@check("Sequential.add", "layer")
def _(t):
    model = Sequential()
    model.add(Input(shape=(3,)))
    model.add(Dense(2))
    assert model.output_shape == (None, 2)


@check("Sequential.build", "input_shape")
def _(t):
    model = Sequential([Dense(2)])
    model.build((None, 3))
    assert model.input_shape == (None, 3) and model.layers[0].kernel.shape == (3, 2)


@check("load_model", "filepath", "compile")
def _(t):
    model = compiled_model()
    model.fit(X, Y, epochs=1, verbose=0)
    model.save(t.tmp_path / "m.h5")
    loaded = load_model(t.tmp_path / "m.h5")
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    assert loaded.optimizer.iterations == model.optimizer.iterations
    assert load_model(t.tmp_path / "m.h5", compile=False).optimizer is None


@check("load_model", "custom_objects")
def _(t):
    model = model_with_custom_layer()
    model.save(t.tmp_path / "m.h5")
    with pytest.raises(ValueError, match="Doubler"):
        load_model(t.tmp_path / "m.h5")
    loaded = load_model(t.tmp_path / "m.h5", custom_objects={"Doubler": Doubler})
    np.testing.assert_allclose(loaded.predict(X), model.predict(X))


@check("model_from_config", "entry", "custom_objects")
def _(t):
    model = model_with_custom_layer()
    entry = {"class_name": "Model", "config": model.get_config()}
    with pytest.raises(ValueError, match="Doubler"):
        model_from_config(entry)
    clone = model_from_config(entry, custom_objects={"Doubler": Doubler})
    clone.set_weights(model.get_weights())
    np.testing.assert_allclose(clone.predict(X), model.predict(X))
