"""InceptionV3's architecture against minidl/keras_semantics.md (§4, §7.2, Appendix A).

Every expected number here comes from the spec, not from minidl's output:
parameter counts (§4.4), layer-type counts and names (§4.2), block output
shapes (§4.2) and the weighted-layer order that Keras's weight loading zips
against the file (Appendix A). No forward pass at 299x299 here (see
test_inception_oracle.py); small forwards run at the minimum size, 75x75.
"""
import numpy as np
import pytest

import minidl
from minidl import applications
from minidl.applications import inception_v3
from minidl.layers import (Activation, AveragePooling2D, BatchNormalization, Concatenate, Conv2D, Dense,
                           Dropout, GlobalAveragePooling2D, Input, InputLayer, MaxPooling2D)
from minidl.models import Model, Sequential

# Spec Appendix A, verbatim: Keras's model.layers order of the 188 weighted layers.
APPENDIX_A = """
C1 B1 C2 B2 C3 B3 C4 B4 C5 B5 C9 B9 C7 C10 B7 B10 C6 C8 C11 C12 B6 B8 B11 B12 C16 B16 C14 C17 B14 B17 C13 C15
C18 C19 B13 B15 B18 B19 C23 B23 C21 C24 B21 B24 C20 C22 C25 C26 B20 B22 B25 B26 C28 B28 C29 B29 C27 C30 B27
B30 C35 B35 C36 B36 C32 C37 B32 B37 C33 C38 B33 B38 C31 C34 C39 C40 B31 B34 B39 B40 C45 B45 C46 B46 C42 C47
B42 B47 C43 C48 B43 B48 C41 C44 C49 C50 B41 B44 B49 B50 C55 B55 C56 B56 C52 C57 B52 B57 C53 C58 B53 B58 C51
C54 C59 C60 B51 B54 B59 B60 C65 B65 C66 B66 C62 C67 B62 B67 C63 C68 B63 B68 C61 C64 C69 C70 B61 B64 B69 B70
C73 B73 C74 B74 C71 C75 B71 B75 C72 C76 B72 B76 C81 B81 C78 C82 B78 B82 C79 C80 C83 C84 C77 B79 B80 B83 B84
C85 B77 B85 C90 B90 C87 C91 B87 B91 C88 C89 C92 C93 C86 B88 B89 B92 B93 C94 B86 B94
""".split()


def _appendix_name(token):
    prefix = {"C": "conv2d", "B": "batch_normalization"}[token[0]]
    return f"{prefix}_{int(token[1:])}"


@pytest.fixture(scope="module")
def base():
    minidl.clear_session()
    return applications.InceptionV3(weights=None, include_top=False, input_shape=(299, 299, 3))


def _counts(model):
    trainable = sum(p.value.size for p in model.trainable_weights)
    non_trainable = sum(p.value.size for p in model.non_trainable_weights)
    return trainable + non_trainable, trainable, non_trainable


def _workshop_model(base_model):
    """The workshop's model: InceptionV3 base + a nested Sequential head."""
    head = Sequential()
    head.add(GlobalAveragePooling2D(input_shape=base_model.output_shape[1:]))
    head.add(Dense(256, activation="relu"))
    head.add(Dropout(0.5))
    head.add(Dense(1, activation="sigmoid"))
    return Model(inputs=base_model.input, outputs=head(base_model.output)), head


# ---------------------------------------------------------------- counts and shapes
def test_parameter_counts_notop(base):
    assert _counts(base) == (21_802_784, 21_768_352, 34_432)
    assert base.count_params() == 21_802_784


def test_conv_kernels_and_bn_channels(base):
    convs = [l for l in base.layers if isinstance(l, Conv2D)]
    bns = [l for l in base.layers if isinstance(l, BatchNormalization)]
    assert sum(c.kernel.value.size for c in convs) == 21_751_136            # minidl/keras_semantics.md §4.4
    assert sum(b.beta.value.size for b in bns) == 17_216
    assert all(not c.use_bias for c in convs)                               # minidl/keras_semantics.md §4.1
    assert all(b.gamma is None and b.epsilon == 1e-3 and b.momentum == 0.99 for b in bns)
    assert all(len(b.weights) == 3 for b in bns)                            # beta, moving mean/var
    assert [p.name.split("/")[-1] for p in bns[0].weights] == ["beta:0", "moving_mean:0", "moving_variance:0"]


def test_output_shape_and_model_name(base):
    assert base.output_shape == (None, 8, 8, 2048)
    assert base.input_shape == (None, 299, 299, 3)
    assert base.name == "inception_v3"


def test_layer_count_and_types(base):
    layers = base.layers
    assert len(layers) == 311
    kinds = {}
    for layer in layers:
        kinds[type(layer)] = kinds.get(type(layer), 0) + 1
    assert kinds == {InputLayer: 1, Conv2D: 94, BatchNormalization: 94, Activation: 94,
                     MaxPooling2D: 4, AveragePooling2D: 9, Concatenate: 15}
    assert all(l.activation.name == "relu" for l in layers if isinstance(l, Activation))


def test_block_output_shapes(base):
    """minidl/keras_semantics.md §4.2 shape table."""
    expected = {
        "activation_1": (149, 149, 32), "activation_2": (147, 147, 32), "activation_3": (147, 147, 64),
        "max_pooling2d_1": (73, 73, 64), "activation_4": (73, 73, 80), "activation_5": (71, 71, 192),
        "max_pooling2d_2": (35, 35, 192), "mixed0": (35, 35, 256), "mixed1": (35, 35, 288),
        "mixed2": (35, 35, 288), "mixed3": (17, 17, 768), "mixed4": (17, 17, 768), "mixed5": (17, 17, 768),
        "mixed6": (17, 17, 768), "mixed7": (17, 17, 768), "mixed8": (8, 8, 1280), "mixed9_0": (8, 8, 768),
        "concatenate_1": (8, 8, 768), "mixed9": (8, 8, 2048), "mixed9_1": (8, 8, 768),
        "concatenate_2": (8, 8, 768), "mixed10": (8, 8, 2048),
    }
    for name, shape in expected.items():
        assert base.get_layer(name).output_shape == (None,) + shape, name


def test_factorised_kernels_in_mixed4(base):
    """1x7 is (rows=1, cols=7); the branch layout of mixed4 (minidl/keras_semantics.md §4.1, §4.2)."""
    # Construction order inside mixed4 (minidl/keras_semantics.md §4.2, c = 128): 1x1·192 | 1x1·c, 1x7·c, 7x1·192 |
    # 1x1·c, 7x1·c, 1x7·c, 7x1·c, 1x7·192 | pool 1x1·192. mixed0..2 have 7 convs each, mixed3 4,
    # the stem 5, so mixed4 holds conv2d_31..40.
    shapes = [base.get_layer(f"conv2d_{n}").kernel.shape for n in range(31, 41)]
    assert shapes == [(1, 1, 768, 192), (1, 1, 768, 128), (1, 7, 128, 128), (7, 1, 128, 192),
                      (1, 1, 768, 128), (7, 1, 128, 128), (1, 7, 128, 128), (7, 1, 128, 128),
                      (1, 7, 128, 192), (1, 1, 768, 192)]


def test_concatenation_branch_order(base):
    """The inputs of each concatenation, in order (minidl/keras_semantics.md §4.2: branch order)."""
    def sources(name):
        return [t.layer.name for t in base.get_layer(name)._inbound_nodes[0].input_tensors]
    assert sources("mixed0") == ["activation_6", "activation_8", "activation_11", "activation_12"]
    assert sources("mixed3") == ["activation_27", "activation_30", "max_pooling2d_3"]
    # mixed9 = conv 77..85: 1x1 | 1x1, [1x3 | 3x1] | 1x1, 3x3, [1x3 | 3x1] | pool 1x1; mixed10 = 86..94.
    assert sources("mixed9_0") == ["activation_79", "activation_80"]
    assert sources("concatenate_1") == ["activation_83", "activation_84"]
    assert sources("mixed9") == ["activation_77", "mixed9_0", "concatenate_1", "activation_85"]
    assert sources("mixed9_1") == ["activation_88", "activation_89"]
    assert sources("concatenate_2") == ["activation_92", "activation_93"]
    assert sources("mixed10") == ["activation_86", "mixed9_1", "concatenate_2", "activation_94"]


def test_pool_paddings(base):
    for layer in base.layers:
        if isinstance(layer, MaxPooling2D):
            assert (layer.pool_size, layer.strides, layer.padding) == ((3, 3), (2, 2), "valid")
        if isinstance(layer, AveragePooling2D):
            assert (layer.pool_size, layer.strides, layer.padding) == ((3, 3), (1, 1), "same")


# ---------------------------------------------------------------- names and order
def test_weighted_layer_order_is_appendix_a(base):
    weighted = [layer.name for layer in base.layers if layer.weights]
    assert len(APPENDIX_A) == 188
    assert weighted == [_appendix_name(token) for token in APPENDIX_A]


def test_layer_names(base):
    names = [layer.name for layer in base.layers]
    assert len(set(names)) == 311
    expected = ({"input_1"} | {f"conv2d_{i}" for i in range(1, 95)}
                | {f"batch_normalization_{i}" for i in range(1, 95)}
                | {f"activation_{i}" for i in range(1, 95)}
                | {f"max_pooling2d_{i}" for i in range(1, 5)}
                | {f"average_pooling2d_{i}" for i in range(1, 10)}
                | {f"mixed{i}" for i in range(11)} | {"mixed9_0", "mixed9_1", "concatenate_1", "concatenate_2"})
    assert set(names) == expected
    assert names[:4] == ["input_1", "conv2d_1", "batch_normalization_1", "activation_1"]
    assert names[-1] == "mixed10"


def test_names_are_fresh_whatever_came_before():
    # Layers created earlier in the session must not shift the names.
    Conv2D(4, 3), BatchNormalization(), Activation("relu"), Concatenate(), Input(shape=(3,))
    model = applications.InceptionV3(weights=None, include_top=False, input_shape=(75, 75, 3))
    names = {layer.name for layer in model.layers}
    assert {"input_1", "conv2d_1", "conv2d_94", "batch_normalization_1", "activation_1",
            "concatenate_1", "concatenate_2", "average_pooling2d_9", "max_pooling2d_4"} <= names
    # ... and a second build in the same session has the same names (matching the weight file).
    again = applications.InceptionV3(weights=None, include_top=False, input_shape=(75, 75, 3))
    assert [l.name for l in again.layers] == [l.name for l in model.layers]


def test_later_automatic_names_do_not_collide():
    model = applications.InceptionV3(weights=None, include_top=False, input_shape=(75, 75, 3))
    names = {layer.name for layer in model.layers}
    later = [Dense(3), Conv2D(2, 1), BatchNormalization(), Activation("relu"), Concatenate(),
             MaxPooling2D(), AveragePooling2D(), Input(shape=(4,)).layer]
    for layer in later:
        assert layer.name not in names, layer.name


def test_include_top():
    model = inception_v3.InceptionV3(weights=None, include_top=True)
    assert model.count_params() == 23_851_784
    assert model.output_shape == (None, 1000)
    assert model.input_shape == (None, 299, 299, 3)
    assert [l.name for l in model.layers[-2:]] == ["avg_pool", "predictions"]
    assert isinstance(model.get_layer("avg_pool"), GlobalAveragePooling2D)
    predictions = model.get_layer("predictions")
    assert predictions.activation.name == "softmax" and predictions.kernel.shape == (2048, 1000)
    assert inception_v3.InceptionV3(weights=None, classes=7, input_shape=(80, 90, 3)).output_shape == (None, 7)


def test_workshop_model_counts(base):
    model, head = _workshop_model(base)
    assert _counts(model) == (22_327_585, 22_293_153, 34_432)
    assert model.output_shape == (None, 1)
    assert model.layers[-1] is head and len(model.layers) == 312


# ---------------------------------------------------------------- arguments (Keras's checks)
def test_default_input_shape_without_top_is_any_size():
    model = applications.InceptionV3(weights=None, include_top=False)
    assert model.input_shape == (None, None, None, 3)
    assert model.output_shape == (None, None, None, 2048)
    assert model.count_params() == 21_802_784


@pytest.mark.parametrize("kwargs, message", [
    (dict(input_shape=(74, 299, 3)), "at least 75x75"),
    (dict(input_shape=(299, 74, 3)), "at least 75x75"),
    (dict(input_shape=(299, 299)), "three integers"),
    (dict(input_shape=(299, 299, 1), weights="imagenet"), "3 input channels"),
    (dict(input_shape=(224, 224, 3), weights="imagenet", include_top=True), r"\(299, 299, 3\)"),
    (dict(include_top=True, input_shape=(None, None, 3)), "static"),
    (dict(weights="imagenet", include_top=True, classes=10), "classes"),
    (dict(weights="/no/such/file.h5"), "weights"),
    (dict(pooling="min"), "pooling"),
])
def test_argument_errors(kwargs, message):
    arguments = dict(include_top=False, weights=None)
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=message):
        applications.InceptionV3(**arguments)


def test_forward_and_pooling_options():
    # 107x107 gives a 2x2 final map, so the global poolings are not trivial.
    x = np.random.default_rng(0).random((2, 107, 107, 3), dtype=np.float32)
    maxed = applications.InceptionV3(weights=None, include_top=False, input_shape=(107, 107, 3), pooling="max")
    assert maxed.output_shape == (None, 2048)
    assert type(maxed.layers[-1]).__name__ == "GlobalMaxPooling2D"
    # One forward pass gives both the feature map and the pooled output.
    both = Model(maxed.input, [maxed.get_layer("mixed10").output, maxed.output])
    feature_map, pooled = both.predict(x)
    assert feature_map.shape == (2, 2, 2, 2048) and feature_map.dtype == np.float32
    assert np.all(feature_map >= 0)                     # the last layers are ReLUs
    np.testing.assert_array_equal(pooled, feature_map.max(axis=(1, 2)))

    averaged = applications.InceptionV3(weights=None, include_top=False, input_shape=(107, 107, 3), pooling="avg")
    assert averaged.output_shape == (None, 2048)
    assert isinstance(averaged.layers[-1], GlobalAveragePooling2D)
    assert averaged.count_params() == maxed.count_params() == 21_802_784
    assert applications.InceptionV3(weights=None, include_top=False, input_shape=(75, 75, 3)).output_shape \
        == (None, 1, 1, 2048)


def test_input_tensor():
    inputs = Input(shape=(75, 75, 3))
    model = applications.InceptionV3(weights=None, include_top=False, input_tensor=inputs)
    assert model.input is inputs
    assert model.output_shape == (None, 1, 1, 2048)

    # A tensor computed from an Input: the model's input is the source Input (get_source_inputs).
    source = Input(shape=(80, 80, 3))
    scaled = Activation("linear")(source)
    model = applications.InceptionV3(weights=None, include_top=False, input_tensor=scaled)
    assert model.input is source and len(model.layers) == 312
    with pytest.raises(TypeError, match="input_tensor"):
        applications.InceptionV3(weights=None, include_top=False, input_tensor=np.zeros((1, 75, 75, 3)))


def test_weights_from_path_and_imagenet(tmp_path, monkeypatch):
    """weights=<minidl file> loads it; weights='imagenet' loads what fetch_weights returns."""
    import minidl.weights as weights_package
    source = applications.InceptionV3(weights=None, include_top=False, input_shape=(75, 75, 3))
    rng = np.random.default_rng(5)
    for layer in source.layers:
        if isinstance(layer, BatchNormalization):   # make every array distinguishable
            layer.set_weights([rng.normal(size=w.shape).astype(np.float32) for w in layer.get_weights()])
    path = tmp_path / "inception.minidl.h5"
    source.save_weights(str(path))

    loaded = applications.InceptionV3(weights=path, include_top=False, input_shape=(75, 75, 3))
    for expected, got in zip(source.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(expected, got)

    calls = []

    def fake_fetch_weights(name="inception_v3", include_top=False, **kwargs):
        calls.append((name, include_top))
        return path

    monkeypatch.setattr(weights_package, "fetch_weights", fake_fetch_weights)
    pretrained = applications.InceptionV3(weights="imagenet", include_top=False, input_shape=(75, 75, 3))
    assert calls == [("inception_v3", False)]
    for expected, got in zip(source.get_weights(), pretrained.get_weights()):
        np.testing.assert_array_equal(expected, got)


# ---------------------------------------------------------------- helpers
def test_preprocess_input():
    pixels = np.array([[0, 127.5, 255]], dtype=np.float32)
    np.testing.assert_allclose(inception_v3.preprocess_input(pixels), [[-1.0, 0.0, 1.0]])
    as_integers = inception_v3.preprocess_input(np.array([0, 51, 255], dtype=np.uint8))
    assert as_integers.dtype == np.float32
    np.testing.assert_allclose(as_integers, [-1.0, 51 / 127.5 - 1, 1.0], rtol=1e-6)
    x = np.random.default_rng(1).random((2, 5, 5, 3))
    np.testing.assert_allclose(inception_v3.preprocess_input(255 * x), 2 * x - 1, atol=1e-12)


def test_decode_predictions():
    preds = np.array([[0.1, 0.6, 0.3, 0.0], [0.25, 0.25, 0.4, 0.1]])
    decoded = inception_v3.decode_predictions(preds, top=3)
    assert decoded[0] == [(1, 0.6), (2, 0.3), (0, 0.1)]
    assert decoded[1] == [(2, 0.4), (0, 0.25), (1, 0.25)]
    assert len(inception_v3.decode_predictions(preds, top=10)[0]) == 4
    with pytest.raises(ValueError, match="shape"):
        inception_v3.decode_predictions(np.zeros(4))
