"""Keras 3's ``.keras`` files: minidl writes what Keras 3 writes, and reads what it writes.

The reference is ``tests/fixtures/keras3_tiny.keras``, written by real Keras 3.15.1
(``tests/fixtures/make_keras3_fixture.py`` says how), with the outputs Keras computed
for a fixed input in ``keras3_tiny_outputs.npz``. Keras itself is not needed here.
"""
import io
import json
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest

from minidl.layers import (Activation, BatchNormalization, Concatenate, Conv2D, Dense, Dropout, Flatten,
                           GlobalAveragePooling2D, GlobalMaxPooling2D, Input, MaxPooling2D, AveragePooling2D)
from minidl.models import Model, Sequential, load_model
from minidl.models.keras_archive import group_names, read_keras_archive
from minidl.models.keras_layers import UnsupportedKerasLayer
from minidl.optimizers import SGD, Adam, RMSprop

FIXTURES = Path(__file__).resolve().parent / "fixtures"
KERAS_FILE = FIXTURES / "keras3_tiny.keras"


@pytest.fixture(scope="module")
def keras_outputs():
    return np.load(FIXTURES / "keras3_tiny_outputs.npz")


def members(path):
    with zipfile.ZipFile(path) as archive:
        return {info.filename: (info.compress_type, archive.read(info.filename)) for info in archive.infolist()}


def h5_tree(data):
    """{h5 path: (shape, attrs)} of every group and dataset of model.weights.h5's bytes."""
    tree = {}
    with h5py.File(io.BytesIO(data), "r") as h5file:
        h5file.visititems(lambda name, node: tree.update(
            {name: (getattr(node, "shape", None), {k: str(v) for k, v in node.attrs.items()},
                    np.asarray(node) if isinstance(node, h5py.Dataset) else None)}))
    return tree


def workshop_like_model(seed=0):
    """A small base (conv, BN, pooling, an Inception-like block) and the workshop's nested
    Sequential head, as examples/workshop.py builds it."""
    inputs = Input(shape=(15, 15, 3))
    x = Conv2D(6, 3, strides=2, padding="same", use_bias=False)(inputs)
    x = BatchNormalization(scale=False)(x)
    x = Activation("relu")(x)
    a = Conv2D(4, 1, activation="relu")(x)
    b = AveragePooling2D(3, strides=1, padding="same")(x)
    c = MaxPooling2D(3, strides=1, padding="same")(x)
    x = Concatenate(axis=3)([a, b, c])
    base = Model(inputs, x)
    head = Sequential()
    head.add(GlobalAveragePooling2D(input_shape=base.output_shape[1:]))
    head.add(Dense(8, activation="relu"))
    head.add(Dropout(0.5, seed=seed))
    head.add(Dense(1, activation="sigmoid"))
    model = Model(inputs=base.input, outputs=head(base.output))
    model.compile(optimizer=Adam(lr=1e-3, epsilon=1e-8), loss="binary_crossentropy", metrics=["accuracy"])
    return model


# ---------------------------------------------------------------------------
# reading what Keras 3 wrote
# ---------------------------------------------------------------------------
def test_a_file_keras_wrote_gives_kerass_outputs(keras_outputs):
    model = load_model(KERAS_FILE)
    np.testing.assert_allclose(model.predict(keras_outputs["inputs"]), keras_outputs["outputs"], rtol=1e-5, atol=1e-6)
    assert [layer.name for layer in model.layers] == [
        "image", "stem_conv", "stem_bn", "stem_relu", "branch_avg", "branch_1x1", "branch_pool_conv", "branch_max",
        "mixed0", "block", "side_max", "head", "side_flatten", "merged", "prediction"]
    assert [type(layer).__name__ for layer in model.get_layer("head").layers] == [
        "GlobalAveragePooling2D", "Dense", "Dropout"]


def test_a_file_keras_wrote_comes_compiled_with_its_adam_state():
    model = load_model(KERAS_FILE)
    optimizer = model.optimizer
    assert type(optimizer).__name__ == "Adam" and optimizer.epsilon == 1e-8
    assert optimizer.learning_rate == pytest.approx(1e-3)
    state = optimizer.get_state()
    assert state["iterations"] == 1
    parameters = model.trainable_weights
    assert len(state["slots"]) == len(parameters) == 14        # Keras stored 2 + 2 * 14 arrays
    for slots, parameter in zip(state["slots"], parameters):
        assert slots["m"].shape == slots["v"].shape == parameter.shape
    assert any(np.abs(slots["m"]).max() > 0 for slots in state["slots"])   # one Adam step was taken
    assert load_model(KERAS_FILE, compile=False).optimizer is None


# ---------------------------------------------------------------------------
# writing what Keras 3 writes
# ---------------------------------------------------------------------------
def _layer_entries(config):
    """Every layer entry with its path of names, nested models' layers included."""
    pending = [((), config)]
    while pending:
        names, entry = pending.pop()
        for layer in entry["config"]["layers"]:
            name = layer.get("name", layer["config"].get("name"))
            yield names + (name,), layer
            if layer["class_name"] in ("Functional", "Sequential"):
                pending.append((names + (name,), layer))


def test_minidl_writes_the_config_keras_wrote(tmp_path):
    load_model(KERAS_FILE).save(tmp_path / "again.keras")
    theirs = json.loads(members(KERAS_FILE)["config.json"][1])
    ours = json.loads(members(tmp_path / "again.keras")["config.json"][1])
    for key in ("module", "class_name", "registered_name", "build_config"):
        assert ours[key] == theirs[key], key
    for key in ("name", "trainable", "input_layers", "output_layers"):
        assert ours["config"][key] == theirs["config"][key], key
    their_layers = dict(_layer_entries(theirs))
    our_layers = dict(_layer_entries(ours))
    assert [names[-1] for names in our_layers if len(names) == 1] == [
        names[-1] for names in their_layers if len(names) == 1]
    for names, their_entry in their_layers.items():
        if their_entry["class_name"] == "InputLayer" and len(names) > 1 and names[0] == "head":
            continue                                        # a Sequential's hidden input: its name is free
        our_entry = our_layers[names]
        for key in ("module", "class_name", "registered_name", "inbound_nodes", "build_config"):
            assert our_entry.get(key) == their_entry.get(key), (names, key)
        assert set(our_entry["config"]) <= set(their_entry["config"]), names     # no key Keras lacks
        for key, value in our_entry["config"].items():
            if key == "dtype" and isinstance(their_entry["config"][key], dict):
                assert value == their_entry["config"][key]["config"]["name"]
            elif key.endswith("_initializer"):
                assert value["class_name"] == their_entry["config"][key]["class_name"]
            elif key != "layers":
                assert value == their_entry["config"][key], (names, key)
    compile_theirs, compile_ours = theirs["compile_config"], ours["compile_config"]
    for key in ("loss", "metrics", "loss_weights"):
        assert compile_ours[key] == compile_theirs[key]
    assert compile_ours["optimizer"]["class_name"] == "Adam"
    for key, value in compile_ours["optimizer"]["config"].items():
        assert value == pytest.approx(compile_theirs["optimizer"]["config"][key]), key


def test_minidl_writes_the_zip_and_weights_tree_keras_wrote(tmp_path):
    load_model(KERAS_FILE).save(tmp_path / "again.keras")
    theirs, ours = members(KERAS_FILE), members(tmp_path / "again.keras")
    assert list(ours) == list(theirs) == ["metadata.json", "config.json", "model.weights.h5"]
    assert {compression for compression, _ in ours.values()} == {zipfile.ZIP_STORED}
    assert set(json.loads(ours["metadata.json"][1])) >= {"keras_version", "date_saved"}
    their_tree, our_tree = h5_tree(theirs["model.weights.h5"][1]), h5_tree(ours["model.weights.h5"][1])
    assert sorted(our_tree) == sorted(their_tree)
    for path, (shape, attributes, values) in their_tree.items():
        our_shape, our_attributes, our_values = our_tree[path]
        assert our_shape == shape and our_attributes == attributes, path
        if values is not None:
            np.testing.assert_array_equal(our_values, values, err_msg=path)
            assert our_values.dtype == values.dtype, path        # int64 iteration, float32 arrays


def test_group_names_number_each_class_as_keras_does():
    assert group_names(["InputLayer", "Conv2D", "BatchNormalization", "Conv2D", "Functional", "Conv2D",
                        "GlobalAveragePooling2D", "MaxPooling2D"]) == [
        "input_layer", "conv2d", "batch_normalization", "conv2d_1", "functional", "conv2d_2",
        "global_average_pooling2d", "max_pooling2d"]


# ---------------------------------------------------------------------------
# minidl -> .keras -> minidl
# ---------------------------------------------------------------------------
def test_round_trip_resumes_training_exactly(tmp_path):
    rng = np.random.default_rng(1)
    images = rng.standard_normal((4, 15, 15, 3)).astype("float32")
    labels = np.array([[0.0], [1.0], [1.0], [0.0]], dtype="float32")
    model = workshop_like_model()
    model.train_on_batch(images, labels)
    model.save(tmp_path / "model.keras")
    loaded = load_model(tmp_path / "model.keras")
    np.testing.assert_array_equal(loaded.predict(images), model.predict(images))
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in model.layers]
    assert loaded.optimizer.get_state()["iterations"] == 1
    model.layers[-1].layers[2].rate = loaded.layers[-1].layers[2].rate = 0.0   # no random mask: same step
    model.train_on_batch(images, labels)
    loaded.train_on_batch(images, labels)
    for mine, theirs in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_allclose(theirs, mine, rtol=1e-6, atol=1e-7)


def test_round_trip_of_a_sequential_with_every_other_layer(tmp_path):
    model = Sequential([Input(shape=(9, 9, 2)), Conv2D(3, 2, strides=2, padding="same", activation="relu"),
                        BatchNormalization(), GlobalMaxPooling2D(keepdims=True), Flatten(),
                        Dense(4, activation="softmax")])
    model.compile(optimizer=SGD(learning_rate=0.1, momentum=0.9), loss="categorical_crossentropy")
    images = np.random.default_rng(2).standard_normal((3, 9, 9, 2)).astype("float32")
    model.train_on_batch(images, np.eye(4, dtype="float32")[[0, 1, 2]])
    model.save(tmp_path / "sequential.keras")
    config = read_keras_archive(tmp_path / "sequential.keras").config
    assert (config["module"], config["class_name"]) == ("keras", "Sequential")
    assert config["config"]["layers"][0]["class_name"] == "InputLayer"
    loaded = load_model(tmp_path / "sequential.keras")
    assert type(loaded).__name__ == "Sequential"
    np.testing.assert_array_equal(loaded.predict(images), model.predict(images))
    velocities = [slots["velocity"] for slots in loaded.optimizer.get_state()["slots"]]
    expected = [slots["velocity"] for slots in model.optimizer.get_state()["slots"]]
    assert len(velocities) == len(expected) == 6
    for mine, theirs in zip(expected, velocities):
        np.testing.assert_array_equal(theirs, mine)


def test_partly_frozen_model_keeps_its_flags_and_optimizer_slots_fit(tmp_path):
    model = workshop_like_model()
    for layer in model.layers[:3]:
        layer.trainable = False
    model.compile(optimizer=RMSprop(), loss="binary_crossentropy")
    model.save(tmp_path / "frozen.keras")
    archive = read_keras_archive(tmp_path / "frozen.keras")
    assert [entry["config"].get("trainable") for entry in archive.config["config"]["layers"]][:4] == [
        None, False, False, True]                     # the InputLayer has no flag, as in Keras
    optimizer_arrays = archive.variables["optimizer"].arrays
    assert len(optimizer_arrays) == 2 + len(model.trainable_weights)   # iteration, rate, one slot each
    loaded = load_model(tmp_path / "frozen.keras")
    # (an InputLayer's flag is not saved by Keras: it has no weights)
    assert [layer.trainable for layer in loaded.layers[1:]] == [layer.trainable for layer in model.layers[1:]]


# ---------------------------------------------------------------------------
# the extension picks the format; errors name what is wrong
# ---------------------------------------------------------------------------
def test_save_picks_the_format_from_the_extension(tmp_path):
    model = workshop_like_model()
    model.save(tmp_path / "model.keras")
    model.save(tmp_path / "model.h5")
    assert zipfile.is_zipfile(tmp_path / "model.keras")
    assert (tmp_path / "model.h5").read_bytes()[:8] == b"\x89HDF\r\n\x1a\n"
    images = np.random.default_rng(3).standard_normal((2, 15, 15, 3)).astype("float32")
    for name in ("model.keras", "model.h5"):
        np.testing.assert_array_equal(load_model(tmp_path / name).predict(images), model.predict(images))


def _rewrite(source, destination, edit_config):
    """A copy of a .keras file whose config.json went through ``edit_config``."""
    with zipfile.ZipFile(source) as archive, zipfile.ZipFile(destination, "w") as copy:
        for name in archive.namelist():
            data = archive.read(name)
            if name == "config.json":
                config = json.loads(data)
                edit_config(config)
                data = json.dumps(config)
            copy.writestr(name, data)
    return destination


def test_an_unsupported_layer_is_named_with_the_file(tmp_path):
    def make_it_a_layer_norm(config):
        config["config"]["layers"][2]["class_name"] = "LayerNormalization"
    path = _rewrite(KERAS_FILE, tmp_path / "layer_norm.keras", make_it_a_layer_norm)
    with pytest.raises(UnsupportedKerasLayer, match=r"layer_norm\.keras.*'stem_bn' \(LayerNormalization\).*"
                                                    r"minidl has no LayerNormalization"):
        load_model(path)


def test_an_argument_minidl_cannot_honour_is_named(tmp_path):
    def dilate(config):
        config["config"]["layers"][1]["config"]["dilation_rate"] = [2, 2]
    with pytest.raises(UnsupportedKerasLayer, match=r"'stem_conv' \(Conv2D\) has dilation_rate=\[2, 2\]"):
        load_model(_rewrite(KERAS_FILE, tmp_path / "dilated.keras", dilate))


def test_weights_that_do_not_fit_are_refused_before_any_is_assigned(tmp_path):
    def widen(config):
        config["config"]["layers"][1]["config"]["filters"] = 9
    with pytest.raises(ValueError, match=r"'stem_conv' needs weights of shapes \[\(3, 3, 3, 9\)\], "
                                         r"'layers/conv2d/vars' holds \[\(3, 3, 3, 8\)\]"):
        load_model(_rewrite(KERAS_FILE, tmp_path / "wide.keras", widen))


def test_a_failed_save_leaves_the_old_file_untouched(tmp_path, monkeypatch):
    path = tmp_path / "model.keras"
    workshop_like_model().save(path)
    before = path.read_bytes()
    original_writestr = zipfile.ZipFile.writestr

    def fail_on_weights(self, name, data, *args, **kwargs):
        if str(getattr(name, "filename", name)) == "model.weights.h5":
            raise OSError("disk full")
        return original_writestr(self, name, data, *args, **kwargs)

    monkeypatch.setattr(zipfile.ZipFile, "writestr", fail_on_weights)
    with pytest.raises(OSError, match="disk full"):
        workshop_like_model().save(path)
    assert path.read_bytes() == before
    assert [each.name for each in tmp_path.iterdir()] == ["model.keras"]    # no temporary file left


def test_a_file_that_is_not_a_keras_archive_says_so(tmp_path):
    path = tmp_path / "broken.keras"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("config.json", "{}")
    with pytest.raises(OSError, match=r"broken\.keras.*no model\.weights\.h5"):
        load_model(path)


def test_a_custom_layer_loads_through_custom_objects(tmp_path, keras_outputs):
    class ReluFromKeras(Activation):
        @classmethod
        def from_config(cls, config):                  # receives Keras's config of the layer
            return cls("relu", name=config["name"])

    def rename(config):
        config["config"]["layers"][3]["class_name"] = "ReluFromKeras"
    path = _rewrite(KERAS_FILE, tmp_path / "custom.keras", rename)
    with pytest.raises(UnsupportedKerasLayer, match=r"'stem_relu' \(ReluFromKeras\)"):
        load_model(path)
    model = load_model(path, custom_objects={"ReluFromKeras": ReluFromKeras})
    assert type(model.get_layer("stem_relu")) is ReluFromKeras
    np.testing.assert_allclose(model.predict(keras_outputs["inputs"]), keras_outputs["outputs"], rtol=1e-5, atol=1e-6)
