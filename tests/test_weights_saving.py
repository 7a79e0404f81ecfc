"""Weights in and out of real minidl models (minidl/models/saving.py): minidl
format, Keras legacy HDF5 (by order, by name, other writers' names), export,
nested models, and whole model files that resume training exactly."""
import json

import h5py
import numpy as np
import pytest

import minidl.weights as W
from minidl import layers as L
from minidl import models
from minidl.models import saving
from minidl.weights.keras_h5 import WeightsFileError, read_keras_h5

X = np.random.default_rng(11).random((6, 6, 6, 2)).astype(np.float32)
Y = np.float32([0, 1, 1, 0, 1, 0])


def build_model(seed, prefix=""):
    """Input -> Conv2D(no bias) -> BN(scale=False) -> ReLU -> Flatten -> Dense(sigmoid)."""
    np.random.seed(seed)
    named = (lambda n: {"name": prefix + n}) if prefix else (lambda n: {})
    inputs = L.Input(shape=(6, 6, 2))
    x = L.Conv2D(3, 3, use_bias=False, **named("conv"))(inputs)
    x = L.BatchNormalization(scale=False, **named("bn"))(x)
    x = L.Activation("relu")(x)
    x = L.Flatten()(x)
    outputs = L.Dense(1, activation="sigmoid", **named("dense"))(x)
    return models.Model(inputs, outputs)


def randomize(model, seed):
    """Give every weight distinct values (moving variances positive)."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        layer.set_weights([rng.random(w.shape).astype(np.float32) + 0.1 for w in layer.get_weights()])


def weights_of(model):
    return [w.copy() for w in model.get_weights()]


def assert_same_weights(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


def test_minidl_format_round_trip_restores_predictions(tmp_path):
    source, target = build_model(1), build_model(2)
    randomize(source, 3)
    source.save_weights(tmp_path / "w.h5")  # the Model method calls minidl.models.saving
    assert W.detect_format(tmp_path / "w.h5") == "minidl"
    target.load_weights(tmp_path / "w.h5")
    assert_same_weights(weights_of(source), weights_of(target))
    np.testing.assert_array_equal(source.predict(X), target.predict(X))


def write_other_writer_file(path, model, style):
    """The model's weights in Keras legacy layout, but named as tf.keras
    ('conv2d', no ':0') or a Keras 3 writer ('kernel', 'vars/0') would."""
    string = h5py.string_dtype()
    with h5py.File(path, "w") as f:
        names = []
        for index, layer in enumerate(model.layers):
            name = f"layer_{index}" if style == "keras3" else type(layer).__name__.lower()
            names.append(name)
            group = f.create_group(name)
            if style == "keras3":
                weight_names = [f"vars/{i}" for i in range(len(layer.weights))]
                group.attrs["weight_names"] = np.array(weight_names, dtype=string)
            else:
                weight_names = [f"{name}/{p.name.split('/')[-1].split(':')[0]}" for p in layer.weights]
                group.attrs["weight_names"] = np.array([n.encode() for n in weight_names])
            for weight_name, value in zip(weight_names, layer.get_weights()):
                group[weight_name] = value
        if style == "keras3":
            f.attrs["layer_names"] = np.array(names, dtype=string)
        else:
            f.attrs["layer_names"] = np.array([n.encode() for n in names])
        f.attrs["backend"] = "tensorflow"
        f.attrs["keras_version"] = "3.5.0" if style == "keras3" else "2.6.0"


@pytest.mark.parametrize("style", ["tf_keras", "keras3"])
def test_files_from_other_writers_load_by_order(tmp_path, style):
    source, target = build_model(4), build_model(5)
    randomize(source, 6)
    write_other_writer_file(tmp_path / "other.h5", source, style)
    assert W.detect_format(tmp_path / "other.h5") == "keras"
    target.load_weights(tmp_path / "other.h5")
    assert_same_weights(weights_of(source), weights_of(target))


def test_keras_export_has_the_legacy_layout_and_loads_back(tmp_path):
    source, target = build_model(7), build_model(8)
    randomize(source, 9)
    saving.save_keras_h5(source, tmp_path / "k.h5")
    with h5py.File(tmp_path / "k.h5", "r") as f:
        layer_names = [n.decode() for n in f.attrs["layer_names"]]
        assert layer_names == [layer.name for layer in source.layers]  # weightless ones too
        conv = source.layers[1]
        assert [n.decode() for n in f[conv.name].attrs["weight_names"]] == [f"{conv.name}/kernel:0"]
        np.testing.assert_array_equal(f[conv.name][f"{conv.name}/kernel:0"][()], conv.get_weights()[0])
        bn = source.layers[2]
        assert [n.decode() for n in f[bn.name].attrs["weight_names"]] == [
            f"{bn.name}/beta:0", f"{bn.name}/moving_mean:0", f"{bn.name}/moving_variance:0"]
        assert f[source.layers[0].name].attrs["weight_names"].shape == (0,)
    target.load_weights(tmp_path / "k.h5")
    assert_same_weights(weights_of(source), weights_of(target))


def test_layer_count_mismatch_raises_keras_message_and_changes_nothing(tmp_path):
    saving.save_keras_h5(build_model(10), tmp_path / "k.h5")
    np.random.seed(12)
    inputs = L.Input(shape=(6, 6, 2))
    smaller = models.Model(inputs, L.Dense(1)(L.Flatten()(L.Conv2D(3, 3)(inputs))))
    before = weights_of(smaller)
    with pytest.raises(ValueError, match=r"You are trying to load a weight file containing 3 layers "
                                         r"into a model with 2 layers"):
        smaller.load_weights(tmp_path / "k.h5")
    assert_same_weights(before, weights_of(smaller))


def test_shape_mismatch_names_both_layers_and_shapes_and_assigns_nothing(tmp_path):
    source = build_model(13, prefix="src_")
    saving.save_weights(source, tmp_path / "w.h5")
    np.random.seed(14)
    inputs = L.Input(shape=(6, 6, 2))
    x = L.Conv2D(3, 3, use_bias=False, name="other_conv")(inputs)
    x = L.BatchNormalization(scale=False, name="other_bn")(x)
    x = L.Flatten()(L.Activation("relu")(x))
    target = models.Model(inputs, L.Dense(2, activation="sigmoid", name="other_dense")(x))  # 2 units, not 1
    before = weights_of(target)
    with pytest.raises(ValueError) as info:
        target.load_weights(tmp_path / "w.h5")
    message = str(info.value)
    assert "other_dense" in message and "src_dense" in message
    assert "(48, 2)" in message and "(48, 1)" in message and "w.h5" in message
    assert_same_weights(before, weights_of(target))  # conv and bn were not touched either


def test_by_name_loads_matching_layers_and_skips_mismatches_on_request(tmp_path):
    source = build_model(15, prefix="net_")
    randomize(source, 16)
    saving.save_keras_h5(source, tmp_path / "k.h5")
    np.random.seed(17)
    inputs = L.Input(shape=(6, 6, 2))
    x = L.Conv2D(3, 3, use_bias=False, name="net_conv")(inputs)            # same name, same shape
    x = L.BatchNormalization(scale=False, name="fresh_bn")(x)              # not in the file
    x = L.Flatten()(L.Activation("relu")(x))
    target = models.Model(inputs, L.Dense(2, activation="sigmoid", name="net_dense")(x))  # wrong shape
    fresh_bn_before = target.get_layer("fresh_bn").get_weights()
    dense_before = target.get_layer("net_dense").get_weights()

    with pytest.raises(ValueError, match=r"net_dense.*\(48, 2\).*\(48, 1\)"):
        target.load_weights(tmp_path / "k.h5", by_name=True)
    with pytest.warns(UserWarning, match="Skipping loading of weights for layer 'net_dense'"):
        target.load_weights(tmp_path / "k.h5", by_name=True, skip_mismatch=True)
    assert_same_weights(target.get_layer("net_conv").get_weights(), source.get_layer("net_conv").get_weights())
    assert_same_weights(target.get_layer("fresh_bn").get_weights(), fresh_bn_before)
    assert_same_weights(target.get_layer("net_dense").get_weights(), dense_before)


def test_by_name_works_with_minidl_files_too(tmp_path):
    source, target = build_model(18, prefix="a_"), build_model(19, prefix="a_")
    randomize(source, 20)
    source.save_weights(tmp_path / "w.h5")
    target.load_weights(tmp_path / "w.h5", by_name=True)
    assert_same_weights(weights_of(source), weights_of(target))


def build_nested(seed):
    """The workshop's shape: a base model plus a Sequential head used as one layer (minidl/keras_semantics.md §7.4)."""
    np.random.seed(seed)
    inputs = L.Input(shape=(6, 6, 2))
    x = L.GlobalAveragePooling2D()(L.Conv2D(3, 3)(inputs))
    head = models.Sequential([L.Dense(4, activation="relu", input_shape=(3,)), L.Dense(1, activation="sigmoid")])
    return models.Model(inputs, head(x))


@pytest.mark.parametrize("writer", ["keras", "minidl"])
def test_nested_model_is_one_layer_with_concatenated_weights(tmp_path, writer):
    source, target = build_nested(21), build_nested(22)
    randomize(source, 23)
    head = source.layers[-1]
    path = tmp_path / "nested.h5"
    (saving.save_keras_h5 if writer == "keras" else saving.save_weights)(source, path)
    file_layers = W.read_weights_file(path)[1]
    assert file_layers[-1].name == head.name
    if writer == "keras":
        assert file_layers[-1].weight_names == [p.name for p in head.weights]  # e.g. dense_1/kernel:0
        with h5py.File(path, "r") as f:
            first = head.layers[0].name
            assert f[head.name][f"{first}/kernel:0"].shape == (3, 4)
    else:
        first = head.layers[0].name
        assert file_layers[-1].weight_names[:2] == [f"{first}/kernel", f"{first}/bias"]
    target.load_weights(path)
    assert_same_weights(weights_of(source), weights_of(target))
    np.testing.assert_array_equal(source.predict(X), target.predict(X))


def test_unknown_and_broken_files_are_refused_naming_them(tmp_path):
    model = build_model(24)
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(WeightsFileError, match="notes.txt"):
        model.load_weights(tmp_path / "notes.txt")
    model.save_weights(tmp_path / "w.h5")
    (tmp_path / "cut.h5").write_bytes((tmp_path / "w.h5").read_bytes()[:2000])
    with pytest.raises(WeightsFileError, match="cut.h5"):
        model.load_weights(tmp_path / "cut.h5")
    with pytest.raises(FileNotFoundError, match="missing.h5"):
        model.load_weights(tmp_path / "missing.h5")


def test_keras_export_read_by_the_reader_matches_model_weights(tmp_path):
    model = build_model(25)
    randomize(model, 26)
    saving.save_keras_h5(model, tmp_path / "k.h5")
    file_layers = read_keras_h5(tmp_path / "k.h5")
    flat = [array for layer in file_layers for array in layer.arrays]
    # layer by layer in model.layers order (model.get_weights() puts all
    # trainable weights first, as Keras does, so it is a different order)
    assert_same_weights(flat, [w for layer in model.layers for w in layer.get_weights()])


# --- whole-model files ---------------------------------------------------------
def compiled_model(seed):
    model = build_model(seed)
    model.compile(optimizer=__import__("minidl").optimizers.Adam(learning_rate=0.01),
                  loss="binary_crossentropy", metrics=["accuracy"])
    return model


def test_save_and_load_model_resume_training_exactly(tmp_path):
    model = compiled_model(27)
    model.train_on_batch(X, Y)
    model.train_on_batch(X, Y)
    model.save(tmp_path / "model.h5")
    restored = models.load_model(tmp_path / "model.h5")
    assert [layer.name for layer in restored.layers] == [layer.name for layer in model.layers]
    assert restored.metrics_names == ["loss", "accuracy"]
    assert restored.optimizer.get_config() == model.optimizer.get_config()
    assert restored.optimizer.iterations == 2
    assert_same_weights(weights_of(model), weights_of(restored))

    loss_model = model.train_on_batch(X, Y)
    loss_restored = restored.train_on_batch(X, Y)
    assert loss_model == loss_restored
    # identical only if Adam's moments and iteration count were restored
    assert_same_weights(weights_of(model), weights_of(restored))

    # a fresh optimizer would have taken a different step: the test can fail
    fresh = models.load_model(tmp_path / "model.h5")
    fresh.compile(optimizer="adam", loss="binary_crossentropy")
    fresh.optimizer.learning_rate = 0.01
    fresh.train_on_batch(X, Y)
    assert any(not np.array_equal(a, b) for a, b in zip(weights_of(fresh), weights_of(model)))


def test_model_file_weights_load_with_load_weights_and_weights_files_are_not_models(tmp_path):
    model = compiled_model(28)
    randomize(model, 29)
    saving.save_model(model, tmp_path / "model.h5")
    other = build_model(30)
    other.load_weights(tmp_path / "model.h5")
    assert_same_weights(weights_of(model), weights_of(other))
    model.save_weights(tmp_path / "weights_only.h5")
    with pytest.raises(WeightsFileError, match="weights_only.h5.*not a minidl model file"):
        models.load_model(tmp_path / "weights_only.h5")


def test_uncompiled_model_saves_and_loads_without_optimizer(tmp_path):
    model = build_model(31)
    randomize(model, 32)
    model.save(tmp_path / "m.h5")
    restored = models.load_model(tmp_path / "m.h5")
    assert restored.optimizer is None
    np.testing.assert_array_equal(model.predict(X), restored.predict(X))


def test_failed_model_save_leaves_no_file(tmp_path, monkeypatch):
    model = compiled_model(33)
    model.train_on_batch(X, Y)

    def broken_state():
        raise KeyboardInterrupt

    monkeypatch.setattr(model.optimizer, "get_state", broken_state)
    with pytest.raises(KeyboardInterrupt):
        model.save(tmp_path / "m.h5")
    assert list(tmp_path.iterdir()) == []


def test_workshop_shaped_nested_model_file_round_trip(tmp_path):
    model = build_nested(34)
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    model.train_on_batch(X, Y)
    model.save(tmp_path / "nested_model.h5")
    restored = models.load_model(tmp_path / "nested_model.h5")
    assert type(restored.layers[-1]).__name__ == "Sequential"
    np.testing.assert_array_equal(model.predict(X), restored.predict(X))
    model.train_on_batch(X, Y)
    restored.train_on_batch(X, Y)
    assert_same_weights(weights_of(model), weights_of(restored))


def test_sequential_weights_round_trip(tmp_path):
    def build(seed):
        np.random.seed(seed)
        return models.Sequential([L.Dense(3, activation="relu", input_shape=(4,)), L.Dense(1)])

    source, target = build(35), build(36)
    source.save_weights(tmp_path / "seq.h5")
    target.load_weights(tmp_path / "seq.h5")
    assert_same_weights(weights_of(source), weights_of(target))


def test_sequential_model_file_round_trip(tmp_path):
    np.random.seed(37)
    model = models.Sequential([L.Dense(3, activation="relu", input_shape=(4,)), L.Dense(1, activation="sigmoid")])
    model.compile(optimizer="adam", loss="binary_crossentropy")
    model.save(tmp_path / "seq_model.h5")
    restored = models.load_model(tmp_path / "seq_model.h5")
    x = np.random.default_rng(0).random((3, 4)).astype(np.float32)
    np.testing.assert_array_equal(model.predict(x), restored.predict(x))


def test_a_subclass_of_model_is_saved_as_a_functional_model(tmp_path):
    """serialization.py finds the model classes registered by minidl.models (it imports
    neither model.py nor sequential.py): a subclass is recorded as the class it derives from."""
    from minidl.models import serialization

    class TaggedModel(models.Model):
        pass

    np.random.seed(38)
    inputs = L.Input(shape=(4,))
    head = models.Sequential([L.Dense(2, input_shape=(4,))])
    model = TaggedModel(inputs, head(inputs))
    assert serialization.config_class_name(model) == "Model"
    assert serialization.config_class_name(head) == "Sequential"
    assert serialization.layer_config(model)["config"]["layers"][1]["class_name"] == "Sequential"
    model.save(tmp_path / "tagged.h5")
    restored = models.load_model(tmp_path / "tagged.h5")
    assert type(restored) is models.Model and type(restored.layers[1]) is models.Sequential
    x = np.random.default_rng(1).random((3, 4)).astype(np.float32)
    np.testing.assert_array_equal(model.predict(x), restored.predict(x))


def test_model_layout_describes_the_model_as_plain_data():
    model = build_model(39, prefix="p_")
    layout = saving.model_layout(model)
    assert layout.description == f"Model '{model.name}'"
    assert [layer.name for layer in layout.layers] == [layer.name for layer in model.layers]
    assert layout.layers[1].weight_names == ["p_conv/kernel:0"]
    assert [a.shape for a in layout.layers[2].arrays] == [(3,), (3,), (3,)]  # beta, moving mean, variance
    assert json.loads(layout.config_json)["config"]["name"] == model.name


def test_a_partly_frozen_model_is_saved_and_loaded_partly_frozen(tmp_path):
    from minidl.layers import Dense, Input
    from minidl.models import Model, Sequential, load_model
    inputs = Input(shape=(3,))
    head = Sequential([Dense(2, input_shape=(4,), name="head_a"), Dense(1, name="head_b")], name="head")
    model = Model(inputs, head(Dense(4, name="frozen")(inputs)))
    model.get_layer("frozen").trainable = False
    head.layers[0].trainable = False
    model.compile("sgd", "mean_squared_error")
    model.save(tmp_path / "model.h5")
    loaded = load_model(tmp_path / "model.h5")
    assert [(layer.name, layer.trainable) for layer in loaded.walk_layers()] == [
        (layer.name, layer.trainable) for layer in model.walk_layers()]
    assert [p.name for p in loaded.trainable_weights] == ["head_b/kernel:0", "head_b/bias:0"]
