"""The converter: md5 of known files, shape checks against an architecture
(given as a ModelLayout: plain data), atomic output, and the command line."""
import hashlib

import h5py
import numpy as np
import pytest

from minidl.weights import minidl_h5
from minidl.weights.__main__ import main as cli_main
from minidl.weights.convert import OFFICIAL_FILES, ModelLayout, WeightsChecksumError, convert
from minidl.weights.keras_h5 import LayerWeights
from minidl.weights.minidl_h5 import read_minidl_h5, read_minidl_h5_attributes

RNG = np.random.default_rng(3)
NOTOP = "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5"


def write_small_keras_file(path):
    """input_1 -> conv2d_1 (3x3, 3->4, no bias) -> batch_normalization_1 (scale=False)
    -> flatten_1 -> dense_1 (Keras 2 names)."""
    arrays = {
        "conv2d_1": [("conv2d_1/kernel:0", RNG.standard_normal((3, 3, 3, 4)).astype(np.float32))],
        "batch_normalization_1": [
            (f"batch_normalization_1/{n}:0", RNG.standard_normal(4).astype(np.float32))
            for n in ("beta", "moving_mean", "moving_variance")
        ],
        "dense_1": [
            ("dense_1/kernel:0", RNG.standard_normal((64, 2)).astype(np.float32)),
            ("dense_1/bias:0", RNG.standard_normal(2).astype(np.float32)),
        ],
    }
    names = ["input_1", "conv2d_1", "batch_normalization_1", "flatten_1", "dense_1"]
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = np.array([n.encode() for n in names])
        f.attrs["backend"] = b"tensorflow"
        f.attrs["keras_version"] = b"2.1.6"
        for name in names:
            group = f.create_group(name)
            weights = arrays.get(name, [])
            group.attrs["weight_names"] = np.array([w.encode() for w, _ in weights]) if weights else np.asarray([])
            for weight_name, array in weights:
                group[weight_name] = array
    return names, arrays


def test_convert_writes_every_array_and_the_provenance(tmp_path):
    source = tmp_path / "small.h5"
    names, arrays = write_small_keras_file(source)
    destination = tmp_path / "out" / "small.minidl.h5"  # the folder is created
    result = convert(source, destination)
    assert result.destination == destination
    assert (result.weighted_layers, result.arrays, result.numbers) == (3, 6, 108 + 12 + 130)
    assert not result.md5_verified and not result.architecture_checked
    layers = read_minidl_h5(destination)
    assert [layer.name for layer in layers] == names
    by_name = {layer.name: layer for layer in layers}
    assert by_name["batch_normalization_1"].weight_names == ["beta", "moving_mean", "moving_variance"]
    for name, weights in arrays.items():
        for (_, expected), actual in zip(weights, by_name[name].arrays):
            np.testing.assert_array_equal(actual, expected)
    attributes = read_minidl_h5_attributes(destination)
    assert attributes["source_md5"] == hashlib.md5(source.read_bytes()).hexdigest()
    assert attributes["source_file"] == "small.h5"
    assert "small.minidl.h5" in str(result) and "250 numbers" in str(result)


def test_expected_md5_is_enforced(tmp_path):
    source = tmp_path / "small.h5"
    write_small_keras_file(source)
    actual = hashlib.md5(source.read_bytes()).hexdigest()
    result = convert(source, tmp_path / "ok.h5", expected_md5=actual)
    assert result.md5_verified
    with pytest.raises(WeightsChecksumError) as info:
        convert(source, tmp_path / "bad.h5", expected_md5="0" * 32)
    assert "small.h5" in str(info.value) and actual in str(info.value) and "0" * 32 in str(info.value)
    assert not (tmp_path / "bad.h5").exists()


def test_a_file_named_like_the_official_one_must_have_its_md5(tmp_path):
    fake = tmp_path / NOTOP
    write_small_keras_file(fake)
    with pytest.raises(WeightsChecksumError) as info:
        convert(fake, tmp_path / "converted.h5")
    message = str(info.value)
    assert NOTOP in message
    assert OFFICIAL_FILES[NOTOP].md5 in message
    assert hashlib.md5(fake.read_bytes()).hexdigest() in message
    assert not (tmp_path / "converted.h5").exists()


def test_interrupted_conversion_leaves_no_file(tmp_path, monkeypatch):
    source = tmp_path / "small.h5"
    write_small_keras_file(source)
    destination = tmp_path / "converted.h5"
    real_write = minidl_h5.write_minidl_group

    def write_half_then_fail(group, layers, *args, **kwargs):
        real_write(group, layers[:2], *args, **kwargs)  # some data is already on disk
        group.file.flush()
        raise KeyboardInterrupt

    monkeypatch.setattr(minidl_h5, "write_minidl_group", write_half_then_fail)
    with pytest.raises(KeyboardInterrupt):
        convert(source, destination)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["small.h5"]

    # an existing converted file survives a failed re-conversion untouched
    monkeypatch.setattr(minidl_h5, "write_minidl_group", real_write)
    convert(source, destination)
    before = destination.read_bytes()
    monkeypatch.setattr(minidl_h5, "write_minidl_group", write_half_then_fail)
    with pytest.raises(KeyboardInterrupt):
        convert(source, destination)
    assert destination.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["converted.h5", "small.h5"]


def test_truncated_source_is_refused_without_output(tmp_path):
    source = tmp_path / "small.h5"
    write_small_keras_file(source)
    truncated = tmp_path / "cut.h5"
    truncated.write_bytes(source.read_bytes()[:1500])
    with pytest.raises(OSError, match="cut.h5"):
        convert(truncated, tmp_path / "out.h5")
    assert not (tmp_path / "out.h5").exists()


def test_cli_convert_and_info(tmp_path, capsys):
    source = tmp_path / "small.h5"
    write_small_keras_file(source)
    assert cli_main(["convert", str(source), str(tmp_path / "c.h5")]) == 0
    assert "3 layers with weights" in capsys.readouterr().out
    assert cli_main(["info", str(tmp_path / "c.h5")]) == 0
    out = capsys.readouterr().out
    assert "minidl format" in out and "conv2d_1: kernel (3, 3, 3, 4)" in out

    text = tmp_path / "notes.h5"
    text.write_text("not hdf5")
    assert cli_main(["convert", str(text), str(tmp_path / "never.h5")]) == 1
    assert "notes.h5" in capsys.readouterr().err
    assert not (tmp_path / "never.h5").exists()


def small_minidl_model(dense_units):
    from minidl import layers as L
    from minidl import models

    inputs = L.Input(shape=(6, 6, 3))
    x = L.Conv2D(4, 3, use_bias=False)(inputs)
    x = L.BatchNormalization(scale=False)(x)
    x = L.Flatten()(x)
    return models.Model(inputs, L.Dense(dense_units)(x))


def test_architecture_check_accepts_a_fitting_model_and_stores_its_config(tmp_path):
    from minidl.models.saving import model_layout

    source = tmp_path / "small.h5"
    write_small_keras_file(source)
    model = small_minidl_model(2)
    result = convert(source, tmp_path / "c.h5", architecture=model_layout(model))
    assert result.architecture_checked
    assert result.architecture_note == f"checked against Model '{model.name}'"
    stored = read_minidl_h5_attributes(tmp_path / "c.h5")["architecture"]
    assert [entry["class_name"] for entry in stored["config"]["layers"]][:3] == ["InputLayer", "Conv2D", "BatchNormalization"]
    # the converted file then loads into that model
    model.load_weights(tmp_path / "c.h5")
    np.testing.assert_array_equal(model.layers[1].get_weights()[0], read_minidl_h5(tmp_path / "c.h5")[1].arrays[0])


def test_architecture_check_rejects_a_wrong_shape_without_output(tmp_path):
    from minidl.models.saving import model_layout

    source = tmp_path / "small.h5"
    write_small_keras_file(source)
    with pytest.raises(ValueError, match=r"\(64, 3\).*dense_1.*\(64, 2\)"):
        convert(source, tmp_path / "c.h5", architecture=model_layout(small_minidl_model(3)))
    assert not (tmp_path / "c.h5").exists()


def test_architecture_as_plain_data_needs_no_model(tmp_path):
    """The layout is data: a list of layers with arrays of the right shapes is enough."""
    source = tmp_path / "small.h5"
    names, arrays = write_small_keras_file(source)
    layers = [LayerWeights(name, [(weight_name, np.zeros_like(array)) for weight_name, array in arrays.get(name, [])])
              for name in names]
    layout = ModelLayout("a hand-written layout", layers, config_json='{"class_name": "Model", "config": {}}')
    result = convert(source, tmp_path / "c.h5", architecture=layout)
    assert result.architecture_checked and "a hand-written layout" in result.architecture_note
    assert read_minidl_h5_attributes(tmp_path / "c.h5")["architecture"] == {"class_name": "Model", "config": {}}

    shorter = layout._replace(layers=layers[:-1])  # dense_1 missing: 2 weighted layers, not 3
    with pytest.raises(ValueError, match="containing 3 layers into a model with 2 layers"):
        convert(source, tmp_path / "d.h5", architecture=shorter)
    assert not (tmp_path / "d.h5").exists()


def test_a_model_object_is_refused_with_the_way_to_describe_it(tmp_path):
    source = tmp_path / "small.h5"
    write_small_keras_file(source)
    with pytest.raises(TypeError, match=r"ModelLayout.*got Model.*model_layout\(model\)"):
        convert(source, tmp_path / "c.h5", architecture=small_minidl_model(2))
    assert not (tmp_path / "c.h5").exists()


def test_official_file_name_without_architecture_is_md5_checked_only(tmp_path, capsys):
    """The weights package never builds InceptionV3 itself (it must not import the
    models): a file named like the official one is md5-checked and converted; the
    shape check happens where the model is built (tests/test_weights_imagenet.py)."""
    fake = tmp_path / NOTOP
    write_small_keras_file(fake)
    md5 = hashlib.md5(fake.read_bytes()).hexdigest()
    result = convert(fake, tmp_path / "c.h5", expected_md5=md5)
    assert result.md5_verified and not result.architecture_checked
    assert result.architecture_note == "not checked (no architecture given)"
    assert read_minidl_h5_attributes(tmp_path / "c.h5")["architecture"] is None
    # the command line's old switch is still accepted
    assert cli_main(["convert", str(fake), str(tmp_path / "d.h5"), "--md5", md5, "--no-architecture-check"]) == 0
    assert "md5 verified" in capsys.readouterr().out
