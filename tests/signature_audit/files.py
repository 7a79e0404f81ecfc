"""Checks of InceptionV3, the weight files (minidl.weights) and saving models (minidl/models/saving.py)."""
import numpy as np
import pytest

import minidl
from minidl import applications
from minidl import weights as weight_files
from minidl.applications import inception_v3
from minidl.layers import Input
from minidl.models import saving
from minidl.optimizers import SGD
from signature_audit import (Doubler, X, check, compiled_model, model_with_custom_layer, named_model,
                             spy_method, tiny_model)


SMALL = (75, 75, 3)


@check("InceptionV3", "include_top", "classes")
def _(t):
    model = applications.InceptionV3(include_top=True, weights=None, classes=3)
    assert model.output_shape == (None, 3) and model.layers[-1].name == "predictions"
    assert model.input_shape == (None, 299, 299, 3)                      # the top needs the default size


@check("InceptionV3", "weights")
def _(t):
    built = applications.InceptionV3(include_top=False, weights=None, input_shape=SMALL, pooling="avg")
    built.save_weights(t.tmp_path / "w.h5")
    fresh = applications.InceptionV3(include_top=False, weights=None, input_shape=SMALL, pooling="avg")
    assert not np.array_equal(fresh.get_weights()[0], built.get_weights()[0])       # None: random
    from_path = applications.InceptionV3(include_top=False, weights=str(t.tmp_path / "w.h5"), input_shape=SMALL,
                                         pooling="avg")
    t.monkeypatch.setattr(inception_v3, "imagenet_weights", lambda include_top: t.tmp_path / "w.h5")
    imagenet = applications.InceptionV3(include_top=False, weights="imagenet", input_shape=SMALL, pooling="avg")
    for loaded in (from_path, imagenet):
        assert all(np.array_equal(a, b) for a, b in zip(loaded.get_weights(), built.get_weights()))


@check("InceptionV3", "input_tensor", "input_shape", "pooling")
def _(t):
    inputs = Input(shape=(80, 90, 3))
    model = applications.InceptionV3(include_top=False, weights=None, input_tensor=inputs, pooling="max")
    assert model.inputs == [inputs] and model.output_shape == (None, 2048)
    assert type(model.layers[-1]).__name__ == "GlobalMaxPooling2D"
    assert applications.InceptionV3(include_top=False, weights=None, input_shape=SMALL).output_shape == \
        (None, 1, 1, 2048)


@check("inception_v3.preprocess_input", "x", "data_format")
def _(t):
    x = np.array([[0, 127.5, 255]], "float32")
    np.testing.assert_allclose(inception_v3.preprocess_input(x, data_format="channels_first"), [[-1, 0, 1]])
    with pytest.raises(ValueError, match="data_format"):
        inception_v3.preprocess_input(x, data_format="NHWC")


@check("inception_v3.decode_predictions", "preds", "top")
def _(t):
    assert inception_v3.decode_predictions(np.array([[0.1, 0.7, 0.2]]), top=2) == [[(1, 0.7), (2, 0.2)]]


@check("inception_v3.imagenet_weights", "include_top", "**fetch_options")
def _(t):
    seen = spy_method(t.monkeypatch, weight_files, "fetch_weights")
    assert inception_v3.imagenet_weights(include_top=True, cache_dir="here", progress=False) == "recorded"
    assert (seen["include_top"], seen["cache_dir"], seen["progress"]) == (True, "here", False)


LAYERS = [weight_files.LayerWeights("input_1", []),
          weight_files.LayerWeights("dense_1", [("dense_1/kernel:0", np.ones((3, 1), "float32")),
                                                ("dense_1/bias:0", np.zeros(1, "float32"))])]


def same_layers(read, written=LAYERS):
    return [(l.name, [np.asarray(a).tolist() for a in l.arrays]) for l in read] == \
        [(l.name, [np.asarray(a).tolist() for a in l.arrays]) for l in written]


@check("weights.write_keras_h5", "path", "layers", "backend", "keras_version")
@check("weights.read_keras_h5", "path")
def _(t):
    import h5py
    path = weight_files.write_keras_h5(t.tmp_path / "k.h5", LAYERS, backend="theano", keras_version="2.2.4")
    with h5py.File(path, "r") as h5file:
        assert [str(np.char.decode(h5file.attrs[k]) if isinstance(h5file.attrs[k], bytes) else h5file.attrs[k])
                for k in ("backend", "keras_version")] == ["theano", "2.2.4"]
    assert same_layers(weight_files.read_keras_h5(path))


@check("weights.write_minidl_h5", "path", "layers", "architecture", "source_md5", "source_file")
@check("weights.read_minidl_h5", "path")
@check("weights.read_minidl_h5_attributes", "path")
def _(t):
    path = weight_files.write_minidl_h5(t.tmp_path / "m.h5", LAYERS, architecture={"class_name": "Model"},
                                        source_md5="abc", source_file="k.h5")
    attributes = weight_files.read_minidl_h5_attributes(path)
    assert (attributes["source_md5"], attributes["source_file"]) == ("abc", "k.h5")
    assert "Model" in str(attributes["architecture"])
    assert same_layers(weight_files.read_minidl_h5(path))


@check("weights.write_model_file", "path", "model_config", "layers", "training_config", "optimizer_state")
@check("weights.read_model_file", "path")
def _(t):
    state = {"iterations": 3, "slots": [{"m": np.ones(2)}]}
    path = weight_files.write_model_file(t.tmp_path / "m.h5", {"class_name": "Model"}, LAYERS,
                                         training_config={"loss": "mse"}, optimizer_state=state)
    saved = weight_files.read_model_file(path)
    assert saved.model_config == {"class_name": "Model"} and saved.training_config == {"loss": "mse"}
    assert saved.optimizer_state["iterations"] == 3 and saved.optimizer_state["slots"][0]["m"].tolist() == [1, 1]
    assert same_layers(saved.layers)


@check("weights.read_weights_file", "path")
@check("weights.detect_format", "path")
def _(t):
    keras_file = weight_files.write_keras_h5(t.tmp_path / "k.h5", LAYERS)
    minidl_file = weight_files.write_minidl_h5(t.tmp_path / "m.h5", LAYERS)
    assert (weight_files.detect_format(keras_file), weight_files.detect_format(minidl_file)) == ("keras", "minidl")
    file_format, layers_read = weight_files.read_weights_file(keras_file)
    assert file_format == "keras" and same_layers(layers_read)


@check("weights.match_layers", "model_layers", "file_layers", "by_name", "skip_mismatch", "source")
def _(t):
    renamed = [weight_files.LayerWeights("dense_9", LAYERS[1].weights)]
    assert [p for p, _ in weight_files.match_layers(LAYERS, renamed)] == [1]               # by order
    assert weight_files.match_layers(LAYERS, renamed, by_name=True) == []                  # no 'dense_9'
    wide = [weight_files.LayerWeights("dense_1", [("k", np.ones((3, 2))), ("b", np.ones(2))])]
    with pytest.raises(ValueError, match="of 'there.h5'"):
        weight_files.match_layers(LAYERS, wide, by_name=True, source="there.h5")
    with pytest.warns(UserWarning, match="Skipping"):
        assert weight_files.match_layers(LAYERS, wide, by_name=True, skip_mismatch=True) == []


@check("weights.convert", "src", "dst", "expected_md5", "architecture")
def _(t):
    source = weight_files.write_keras_h5(t.tmp_path / "k.h5", LAYERS)
    result = weight_files.convert(source, t.tmp_path / "m.h5", expected_md5=minidl.utils.files.md5_of_file(source),
                                  architecture=weight_files.ModelLayout("tiny", LAYERS))
    assert result.md5_verified and result.architecture_checked
    assert same_layers(weight_files.read_minidl_h5(t.tmp_path / "m.h5"), LAYERS)
    with pytest.raises(weight_files.WeightsChecksumError):
        weight_files.convert(source, t.tmp_path / "x.h5", expected_md5="0" * 32)
    with pytest.raises(ValueError, match="shape"):
        weight_files.convert(source, t.tmp_path / "x.h5", architecture=weight_files.ModelLayout("wide", [
            weight_files.LayerWeights("d", [("k", np.ones((3, 2))), ("b", np.ones(2))])]))


@check("weights.fetch_weights", "name", "include_top", "cache_dir", "base_urls", "progress", "known_files",
       "timeout", "build_architecture")
def _(t):
    server = t.tmp_path / "server"
    server.mkdir()
    source = weight_files.write_keras_h5(server / "tiny.h5", LAYERS)
    known = {"tiny.h5": weight_files.OfficialFile("tiny", True, "tiny.h5", minidl.utils.files.md5_of_file(source))}
    timeouts, built = [], []
    real_urlopen = weight_files.download.urllib.request.urlopen

    def urlopen(request, timeout):
        timeouts.append(timeout)
        return real_urlopen(request)

    t.monkeypatch.setattr(weight_files.download.urllib.request, "urlopen", urlopen)
    path = weight_files.fetch_weights("tiny", include_top=True, cache_dir=t.tmp_path / "cache",
                                      base_urls=["file:///nowhere/", server.as_uri() + "/"], progress=True,
                                      known_files=known, timeout=7,
                                      build_architecture=lambda: built.append(1) or weight_files.ModelLayout("t", LAYERS))
    assert path == t.tmp_path / "cache" / "tiny.minidl.h5" and same_layers(weight_files.read_minidl_h5(path))
    assert timeouts == [7, 7] and built == [1]                       # the first URL failed, the second worked
    assert "Downloading" in t.capsys.readouterr().err
    with pytest.raises(ValueError, match="no known weights file"):
        weight_files.fetch_weights("tiny", include_top=False, cache_dir=t.tmp_path / "cache", known_files=known)


@check("weights.weights_cache_dir", "cache_dir")
def _(t):
    assert weight_files.weights_cache_dir(t.tmp_path) == t.tmp_path
    t.monkeypatch.setenv("MINIDL_HOME", str(t.tmp_path / "home"))
    assert weight_files.weights_cache_dir() == t.tmp_path / "home" / "weights"


@check("saving.save_weights", "model", "path")
@check("saving.load_weights", "model", "path")
def _(t):
    source, target = tiny_model(), tiny_model()
    saving.save_weights(source, t.tmp_path / "w.h5")
    saving.load_weights(target, t.tmp_path / "w.h5")
    np.testing.assert_array_equal(target.predict(X), source.predict(X))


@check("saving.load_weights", "by_name", "skip_mismatch")
@check("saving.load_layer_weights", "by_name", "skip_mismatch")
def _(t):
    named_model(3, 3).save_weights(t.tmp_path / "w.h5")
    target = named_model(3, 4)
    load = (saving.load_weights if t.name == "saving.load_weights" else
            lambda model, path, **kw: saving.load_layer_weights(model, weight_files.read_weights_file(path)[1], **kw))
    with pytest.warns(UserWarning, match="Skipping loading of weights for layer 'd1'"):
        load(target, t.tmp_path / "w.h5", by_name=True, skip_mismatch=True)
    np.testing.assert_array_equal(target.get_layer("d0").kernel.value, 1.0)


@check("saving.load_layer_weights", "model", "file_layers", "source")
def _(t):
    model = tiny_model()
    layers_read = [weight_files.LayerWeights("x", []), weight_files.LayerWeights("y", [("k", np.full((3, 1), 2.0)),
                                                                                    ("b", np.ones(1))])]
    saving.load_layer_weights(model, layers_read)
    np.testing.assert_array_equal(model.get_layer("out").kernel.value, 2.0)
    with pytest.raises(ValueError, match="of 'from here'"):
        saving.load_layer_weights(model, [weight_files.LayerWeights("y", [("k", np.ones((4, 1))),
                                                                           ("b", np.ones(1))])], source="from here")


@check("saving.save_model", "model", "path", "include_optimizer")
@check("saving.load_model", "path", "compile")
def _(t):
    model = compiled_model()
    saving.save_model(model, t.tmp_path / "with.h5")
    saving.save_model(model, t.tmp_path / "without.h5", include_optimizer=False)
    assert isinstance(saving.load_model(t.tmp_path / "with.h5").optimizer, SGD)
    assert saving.load_model(t.tmp_path / "with.h5", compile=False).optimizer is None
    assert saving.load_model(t.tmp_path / "without.h5").optimizer is None


@check("saving.load_model", "custom_objects")
def _(t):
    saving.save_model(model_with_custom_layer(), t.tmp_path / "m.h5")
    assert isinstance(saving.load_model(t.tmp_path / "m.h5", custom_objects={"Doubler": Doubler}).layers[1], Doubler)


@check("saving.save_keras_h5", "model", "path")
def _(t):
    saving.save_keras_h5(tiny_model(), t.tmp_path / "k.h5")
    names = [l.name for l in weight_files.read_keras_h5(t.tmp_path / "k.h5")]
    weight_names = weight_files.read_keras_h5(t.tmp_path / "k.h5")[1].weight_names
    assert weight_files.detect_format(t.tmp_path / "k.h5") == "keras" and names[1] == "out"
    assert weight_names == ["out/kernel:0", "out/bias:0"]


@check("saving.model_layer_weights", "model", "naming")
def _(t):
    model = tiny_model()
    assert saving.model_layer_weights(model)[1].weight_names == ["kernel", "bias"]
    assert saving.model_layer_weights(model, naming="keras")[1].weight_names == ["out/kernel:0", "out/bias:0"]


@check("saving.model_layout", "model")
@check("saving.model_architecture_json", "model")
@check("saving.training_config", "model")
def _(t):
    model = compiled_model()
    layout = saving.model_layout(model)
    assert layout.description == f"Model '{model.name}'" and layout.config_json == saving.model_architecture_json(model)
    assert '"class_name": "Model"' in layout.config_json
    assert saving.training_config(model)["optimizer"]["class_name"] == "SGD"
    assert saving.training_config(tiny_model()) is None
