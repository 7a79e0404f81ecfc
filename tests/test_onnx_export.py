"""``model.export(path, format="onnx")``: onnxruntime computes what ``model.predict`` computes.

Every layer kind is exported in a small model whose batch norms really act (random
statistics), including the cases where ONNX's defaults differ from Keras's: 'same'
padding with stride 2 on odd and even sizes (TensorFlow puts the odd pixel at the
bottom/right), average pooling next to the border (Keras averages only the pixels
inside), Flatten of an NCHW tensor (Keras flattens h, w, c), softmax over channels.
The tests need ``onnx`` and ``onnxruntime`` (``pip install -e '.[onnx]'``) and skip
without them.
"""
import re
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import DATA_DIR
from minidl.applications import InceptionV3
from minidl.layers import (Activation, AveragePooling2D, BatchNormalization, Concatenate, Conv2D, Dense, Dropout,
                           Flatten, GlobalAveragePooling2D, GlobalMaxPooling2D, Input, Layer, MaxPooling2D)
from minidl.models import Model, Sequential
from random_batch_norms import randomize_batch_norms


@pytest.fixture(scope="module")
def onnxruntime():
    pytest.importorskip("onnx")
    return pytest.importorskip("onnxruntime")


def run_onnx(onnxruntime, path, images):
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: images})[0]


def randomized(model, seed=0):
    """Random batch-norm statistics everywhere, nested models included."""
    rng = np.random.default_rng(seed)
    for layer in model.walk_layers():
        if isinstance(layer, Model):
            randomize_batch_norms(layer, rng)
    randomize_batch_norms(model, rng)
    return model


def conv_block(size, kernel, strides):
    inputs = Input(shape=(size, size, 3))
    x = Conv2D(5, kernel, strides=strides, padding="same", use_bias=False)(inputs)
    x = BatchNormalization(scale=False)(x)
    x = Activation("relu")(x)
    x = Conv2D(4, 3, strides=2, padding="valid", activation="relu")(x)
    return Model(inputs, x)


def pooling_block(size, strides):
    inputs = Input(shape=(size, size, 4))
    average = AveragePooling2D(3, strides=strides, padding="same")(inputs)
    maximum = MaxPooling2D(3, strides=strides, padding="same")(inputs)
    valid = MaxPooling2D(2, strides=strides, padding="valid")(inputs)
    valid = Flatten()(valid)
    merged = Concatenate(axis=-1)([average, maximum])
    return Model(inputs, [Flatten()(merged), valid])


def head_block():
    """Nested functional model and nested Sequential, softmax over channels, every head layer."""
    inputs = Input(shape=(6, 6, 3))
    inner_input = Input(shape=(6, 6, 3))
    inner = Model(inner_input, BatchNormalization()(Conv2D(8, 1)(inner_input)), name="inner")
    x = inner(inputs)
    x = Activation("softmax")(x)
    head = Sequential([GlobalAveragePooling2D(input_shape=(6, 6, 8)), Dense(7, activation="relu"), Dropout(0.5),
                       Dense(3, activation="softmax")])
    pooled = Flatten()(GlobalMaxPooling2D(keepdims=True)(x))
    merged = Concatenate()([head(x), pooled, GlobalAveragePooling2D(keepdims=False)(x)])
    outputs = Activation("sigmoid")(Dense(2)(merged))
    return Model(inputs, outputs)


CASES = {
    "conv same stride 2, odd size": lambda: conv_block(9, 3, 2),
    "conv same stride 2, even size": lambda: conv_block(10, 3, 2),
    "conv same 1x7, even size": lambda: conv_block(8, (1, 7), 1),
    "conv same 5x5 stride 2, size 11": lambda: conv_block(11, 5, 2),
    "pooling same stride 1, odd size": lambda: pooling_block(7, 1),
    "pooling same stride 2, even size": lambda: pooling_block(8, 2),
    "pooling same stride 2, odd size": lambda: pooling_block(9, 2),
    "nested models and the head layers": head_block,
}


@pytest.mark.parametrize("case", list(CASES))
def test_onnxruntime_computes_what_predict_computes(case, onnxruntime, tmp_path):
    model = randomized(CASES[case]())
    path = model.export(tmp_path / "model.onnx", format="onnx", verbose=False)
    images = np.random.default_rng(1).standard_normal((3,) + model.inputs[0].shape[1:]).astype("float32")
    for batch in (images[:1], images):                          # one free batch dimension
        expected = model.predict(batch)
        expected = expected if isinstance(expected, list) else [expected]
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        outputs = session.run(None, {session.get_inputs()[0].name: batch})
        assert len(outputs) == len(expected)
        for got, wanted in zip(outputs, expected):
            np.testing.assert_allclose(got, wanted, rtol=1e-5, atol=1e-5)


def test_the_graph_is_nhwc_with_a_free_batch_and_keras_padding(onnxruntime, tmp_path):
    import onnx
    model = conv_block(9, 3, 2)
    path = model.export(tmp_path / "model.onnx", format="onnx", verbose=False)
    graph = onnx.load(str(path)).graph
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    (graph_input,) = graph.input
    dims = [dim.dim_param or dim.dim_value for dim in graph_input.type.tensor_type.shape.dim]
    assert dims == ["batch", 9, 9, 3]
    first_conv = next(node for node in graph.node if node.op_type == "Conv")
    pads = next(attribute for attribute in first_conv.attribute if attribute.name == "pads").ints
    assert list(pads) == [1, 1, 1, 1]                          # 9 -> 5 with stride 2: 1 above, 1 below
    even = conv_block(10, 3, 2).export(tmp_path / "even.onnx", format="onnx", verbose=False)
    conv = next(node for node in onnx.load(str(even)).graph.node if node.op_type == "Conv")
    assert list(next(a for a in conv.attribute if a.name == "pads").ints) == [0, 0, 1, 1]   # TF: extra at the end


def test_average_pooling_excludes_the_padding(onnxruntime, tmp_path):
    inputs = Input(shape=(2, 2, 1))
    model = Model(inputs, AveragePooling2D(3, strides=1, padding="same")(inputs))
    path = model.export(tmp_path / "pool.onnx", format="onnx", verbose=False)
    ones = np.ones((1, 2, 2, 1), dtype="float32")
    np.testing.assert_array_equal(run_onnx(onnxruntime, path, ones), ones)   # counting padding would give 4/9


def he_initialized(model, seed=0):
    """He-normal kernels and BN betas ~ N(0, 0.2), as the shared oracle file has: a deep
    network's outputs then still depend on its input (Keras's default initialisation
    leaves InceptionV3's output nearly the same for every image)."""
    rng = np.random.default_rng(seed)
    for layer in model.walk_layers():
        if isinstance(layer, (Conv2D, Dense)):
            kernel = layer.kernel.value
            standard_deviation = np.sqrt(2 / np.prod(kernel.shape[:-1]))          # He: 2 / fan_in
            layer.kernel.value = rng.normal(0, standard_deviation, kernel.shape).astype("float32")
        if isinstance(layer, BatchNormalization) and layer.beta is not None:
            layer.beta.value = rng.normal(0, 0.2, layer.beta.value.shape).astype("float32")
    return model


def workshop_model(size):
    base = InceptionV3(weights=None, include_top=False, input_shape=(size, size, 3))
    head = Sequential([GlobalAveragePooling2D(input_shape=base.output_shape[1:]), Dense(256, activation="relu"),
                       Dropout(0.5), Dense(1, activation="sigmoid")])
    return he_initialized(Model(inputs=base.input, outputs=head(base.output)))


def assert_within_relative(got, expected, tolerance=1e-4):
    assert np.max(np.abs(got - expected)) <= tolerance * np.max(np.abs(expected)), (got.ravel(), expected.ravel())


def test_inception_v3_with_the_workshop_head(onnxruntime, tmp_path):
    model = workshop_model(75)
    path = model.export(tmp_path / "inception.onnx", format="onnx", verbose=False)
    images = np.random.default_rng(3).random((5, 75, 75, 3), dtype=np.float32)
    expected = model.predict(images)
    assert expected.std() > 1e-3                                  # the outputs differ: a real comparison
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    assert_within_relative(session.run(None, {name: images})[0], expected)
    assert_within_relative(session.run(None, {name: images[:1]})[0], expected[:1])


@pytest.mark.slow
def test_workshop_model_on_real_radiographs_at_299(onnxruntime, tmp_path):
    from minidl.preprocessing.image import img_to_array, load_img
    files = sorted((DATA_DIR / "TEST").glob("*.png")) + sorted((DATA_DIR / "VAL" / "openI_CXR").glob("*.png"))[:3]
    if len(files) < 5:
        pytest.skip(f"the workshop's radiographs are not in {DATA_DIR}")
    images = np.stack([img_to_array(load_img(str(f), target_size=(299, 299))) / 255.0 for f in files])
    images = images.astype("float32")
    model = workshop_model(299)
    path = model.export(tmp_path / "workshop.onnx", format="onnx", verbose=False)
    expected = model.predict(images, batch_size=5)
    for batch in (1, 5):
        got = np.concatenate([run_onnx(onnxruntime, path, images[i:i + batch]) for i in range(0, 5, batch)])
        assert_within_relative(got, expected)


# ---------------------------------------------------------------------------
# what cannot be exported says so
# ---------------------------------------------------------------------------
class Doubling(Layer):
    def forward(self, inputs, training=False):
        return 2 * inputs


def test_a_layer_without_an_onnx_form_is_named_and_no_file_is_left(onnxruntime, tmp_path):
    inputs = Input(shape=(4,))
    model = Model(inputs, Dense(2)(Doubling(name="doubling")(inputs)))
    with pytest.raises(NotImplementedError, match=r"layer 'doubling' \(Doubling\) has no ONNX export"):
        model.export(tmp_path / "model.onnx", format="onnx")
    assert list(tmp_path.iterdir()) == []


def test_other_formats_are_refused_by_name(tmp_path):
    inputs = Input(shape=(4,))
    model = Model(inputs, Dense(2)(inputs))
    with pytest.raises(NotImplementedError, match=r"format='tf_saved_model'.*'onnx'"):
        model.export(tmp_path / "saved_model")
    with pytest.raises(NotImplementedError, match=r"format='openvino'"):
        model.export(tmp_path / "model.xml", format="openvino")


def test_without_the_onnx_package_the_error_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)          # `import onnx` now fails
    inputs = Input(shape=(4,))
    model = Model(inputs, Dense(2)(inputs))
    with pytest.raises(ImportError, match=r"pip install -e '\.\[onnx\]'"):
        model.export(tmp_path / "model.onnx", format="onnx")


@pytest.mark.slow
def test_the_export_example_saves_both_files_and_agrees(onnxruntime, tmp_path, capsys):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
    import export_model
    from workshop_data import make_tiny_workshop_data
    data = make_tiny_workshop_data(tmp_path / "data")
    assert export_model.main(["--data", str(data), "--image-size", "75", "--steps", "1",
                              "--out", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out
    assert (tmp_path / "out" / "model.keras").exists() and (tmp_path / "out" / "model.onnx").exists()
    minidl_score = float(re.search(r"minidl\s+([0-9.]+)", printed).group(1))
    onnx_score = float(re.search(r"onnxruntime\s+([0-9.]+)", printed).group(1))
    assert onnx_score == pytest.approx(minidl_score, rel=1e-4, abs=1e-6)
