"""Inference fusion: Conv2D -> BatchNormalization -> ReLU run as one pass, same numbers.

minidl/engine/fusion.py finds the chains and, on the numba path, predict runs each as
the convolution with batch norm + ReLU applied to each output chunk (the epilogue). These
tests pin down:

* which chains are fused -- and which are not: a bias, an activation on the convolution,
  an intermediate read by a second layer or returned by the model, a sigmoid after BN;
* which fused steps write straight into a channel concatenation's output (and that the
  concatenation then copies in only the others);
* that predict gives the same numbers bit for bit with fusion on and off, in float32 and
  float64, for a whole InceptionV3 with non-trivial BN statistics;
* that ``Model.forward`` itself is never fused (Grad-CAM's forward keeps what backward needs);
* the kernels the epilogue uses: batchnorm_inference_rows == batchnorm_inference then
  relu_forward, bit for bit, in place or not, NaN and -0.0 included;
* conv2d_forward hands every output row to the epilogue exactly once, as views of y.

Fused or not, a convolution runs the same algorithm (im2col, or Winograd where Conv2D picks
it), so the bit-for-bit claims hold either way; tests/test_winograd.py checks them with
Winograd on InceptionV3's shapes.
"""
import numpy as np
import pytest

from minidl import applications, config, kernels
from minidl.engine import forward
from minidl.engine.fusion import ConvBatchNormReLU
from minidl.kernels.fast import batchnorm_numba, relu_numba
from minidl.kernels.fast import conv as fast_conv
from minidl.layers import Activation, AveragePooling2D, BatchNormalization, Concatenate, Conv2D, Input
from minidl.layers.base import no_backward
from minidl.models import Model
from random_batch_norms import randomize_batch_norms


@pytest.fixture
def fusion_on(config_switches, engine_path):
    """Inference fusion switched on, on the engine (fusion is the engine's), even under
    ``MINIDL_KERNELS=reference``."""
    config_switches(inference_fusion=True)


def _fused_chains(model):
    return [[node.layer.name for node in step.nodes]
            for step in forward._fused_steps(model, False, None).values() if isinstance(step, ConvBatchNormReLU)]


def _concatenations_in_place(model):
    """{concatenate name: sorted names of the fused steps writing into it}"""
    found = {}
    for step in forward._fused_steps(model, False, None).values():
        if isinstance(step, ConvBatchNormReLU) and step.destination is not None:
            found.setdefault(step.destination[0].node.layer.name, []).append(step.nodes[-1].layer.name)
    return {name: sorted(writers) for name, writers in found.items()}


def test_plan_fuses_plain_chains_and_leaves_the_rest(fusion_on):
    inputs = Input((9, 9, 3))
    a = Activation("relu", name="a_relu")(BatchNormalization(name="a_bn")(
        Conv2D(4, 3, padding="same", use_bias=False, name="a_conv")(inputs)))
    # a bias: not fused
    b = Activation("relu", name="b_relu")(BatchNormalization(name="b_bn")(
        Conv2D(4, 3, padding="same", name="b_conv")(inputs)))
    # an activation on the convolution: not fused
    c = BatchNormalization(name="c_bn")(Conv2D(4, 1, use_bias=False, activation="relu", name="c_conv")(inputs))
    # the convolution's output read twice: not fused
    d_conv = Conv2D(4, 1, use_bias=False, name="d_conv")(inputs)
    d = BatchNormalization(name="d_bn")(d_conv)
    # a sigmoid after BN: conv + BN fused, the sigmoid runs alone
    e = Activation("sigmoid", name="e_sigmoid")(BatchNormalization(name="e_bn")(
        Conv2D(4, 1, use_bias=False, name="e_conv")(inputs)))
    # BN output read twice: conv + BN fused, no ReLU
    f_bn = BatchNormalization(name="f_bn")(Conv2D(4, 1, use_bias=False, name="f_conv")(inputs))
    f = Activation("relu", name="f_relu")(f_bn)
    merged = Concatenate()([a, b, c, d_conv, d, e, f, f_bn])
    # BN output is a model output: conv + BN fused, the ReLU after it stays separate
    g_bn = BatchNormalization(name="g_bn")(Conv2D(4, 1, use_bias=False, name="g_conv")(inputs))
    g = Activation("relu", name="g_relu")(g_bn)
    model = Model(inputs, [merged, g_bn, g])
    chains = sorted(_fused_chains(model))
    assert chains == [["a_conv", "a_bn", "a_relu"], ["e_conv", "e_bn"], ["f_conv", "f_bn"],
                      ["g_conv", "g_bn"]]

    rng = np.random.default_rng(3)
    randomize_batch_norms(model, rng)
    x = rng.normal(size=(2, 9, 9, 3)).astype(np.float32)
    fused = model.predict_on_batch(x)
    config.set_inference_fusion(False)
    assert forward._fused_steps(model, False, None) == {}
    unfused = model.predict_on_batch(x)
    for got, expected in zip(fused, unfused):
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_inception_predict_is_the_same_fused_or_not(dtype, fusion_on):
    model = applications.InceptionV3(weights=None, include_top=False, input_shape=(75, 75, 3))
    randomize_batch_norms(model, np.random.default_rng(7))
    assert len(_fused_chains(model)) == 94                 # every conv2d_bn of Keras's network
    x = np.random.default_rng(8).normal(size=(2, 75, 75, 3)).astype(dtype)
    fused = model.predict_on_batch(x)
    config.set_inference_fusion(False)
    unfused = model.predict_on_batch(x)
    assert fused.dtype == unfused.dtype == dtype
    assert np.abs(unfused).max() > 0.1                     # the network did not collapse to zeros
    np.testing.assert_array_equal(fused, unfused)


def test_model_forward_is_never_fused_predict_is(fusion_on):
    inputs = Input((6, 6, 2))
    outputs = Activation("relu")(BatchNormalization()(Conv2D(3, 3, use_bias=False)(inputs)))
    model = Model(inputs, outputs)
    x = np.random.default_rng(0).normal(size=(1, 6, 6, 2)).astype(np.float64)
    calls = []
    original = ConvBatchNormReLU.run
    ConvBatchNormReLU.run = lambda self, values, buffers: calls.append(1) or original(self, values, buffers)
    try:
        recorded = model.forward(x, training=False)        # saving for backward: Grad-CAM's way
        grad = model.backward(np.ones_like(recorded))      # works: every layer kept what it needs
        assert calls == [] and grad.shape == x.shape
        with no_backward():
            plain = model.forward(x, training=False)       # Model.forward is the textbook walk
        assert calls == []
        fused = model.predict_on_batch(x)                  # predict goes through the engine
        assert calls == [1]
        np.testing.assert_array_equal(fused, recorded)
        np.testing.assert_array_equal(plain, recorded)
    finally:
        ConvBatchNormReLU.run = original


def test_set_inference_fusion_wants_a_bool():
    with pytest.raises(TypeError, match="set_inference_fusion"):
        config.set_inference_fusion("no")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_batchnorm_inference_rows_equals_batchnorm_then_relu(dtype):
    rng = np.random.default_rng(5)
    rows = rng.normal(size=(300, 7)).astype(dtype)
    rows[0, :3] = [np.nan, -0.0, np.inf]
    mean, variance = rng.normal(size=7), rng.uniform(0.1, 2, 7)
    gamma, beta = rng.normal(size=7), rng.normal(size=7)
    for g, b in ((gamma, beta), (None, None)):
        affine = batchnorm_numba.batchnorm_inference_affine(mean.astype(dtype), variance.astype(dtype), g, b,
                                                            1e-3, 7, dtype)
        normalized = batchnorm_numba.batchnorm_inference(rows, mean.astype(dtype), variance.astype(dtype), g, b,
                                                         1e-3)
        expected = relu_numba.relu_forward(normalized)
        out = np.empty_like(rows)
        assert batchnorm_numba.batchnorm_inference_rows(rows, affine, relu=True, out=out) is out
        np.testing.assert_array_equal(out, expected)
        assert not np.signbit(out[~np.isnan(out)]).any()  # -0.0 became +0.0, as relu_forward
        np.testing.assert_array_equal(batchnorm_numba.batchnorm_inference_rows(
            rows, affine, relu=False, out=np.empty_like(rows)), normalized)
        in_place = rows.copy()
        batchnorm_numba.batchnorm_inference_rows(in_place, affine, relu=True, out=in_place)
        np.testing.assert_array_equal(in_place, expected)


@pytest.mark.parametrize("relu", [True, False])
def test_batchnorm_inference_rows_in_place_on_channels_of_a_concatenation(relu):
    rng = np.random.default_rng(6)
    concatenation = rng.normal(size=(4, 5, 6, 13)).astype(np.float32)
    rows = concatenation[..., 3:10].reshape(-1, 7)[5:83]          # a chunk of a convolution's channels
    mean, variance = rng.normal(size=7).astype(np.float32), rng.uniform(0.1, 2, 7).astype(np.float32)
    gamma, beta = rng.normal(size=7).astype(np.float32), rng.normal(size=7).astype(np.float32)
    affine = batchnorm_numba.batchnorm_inference_affine(mean, variance, gamma, beta, 1e-3, 7, np.float32)
    expected = batchnorm_numba.batchnorm_inference(np.ascontiguousarray(rows), mean, variance, gamma, beta, 1e-3)
    if relu:
        expected = relu_numba.relu_forward(expected)
    before = concatenation.copy()
    assert batchnorm_numba.batchnorm_inference_rows(rows, affine, relu=relu, out=rows) is rows
    np.testing.assert_array_equal(rows, expected)
    untouched = np.ones(concatenation.shape, bool)
    untouched.reshape(-1, 13)[5:83, 3:10] = False
    np.testing.assert_array_equal(concatenation[untouched], before[untouched])


def test_batchnorm_inference_rows_rejects_a_wrong_out():
    rows = np.zeros((4, 3), np.float32)
    affine = batchnorm_numba.batchnorm_inference_affine(np.zeros(3), np.ones(3), None, None, 1e-3, 3, np.float32)
    with pytest.raises(ValueError, match="batchnorm_inference_rows"):
        batchnorm_numba.batchnorm_inference_rows(rows, affine, relu=False, out=np.zeros((4, 3), np.float64))


@pytest.mark.parametrize("kernel_size,padding", [((3, 3), "same"), ((1, 1), "valid"), ((1, 7), "same")])
def test_conv_epilogue_sees_every_output_row_once(kernel_size, padding, monkeypatch):
    monkeypatch.setattr(fast_conv, "_CHUNK_BYTES", 256)   # many chunks
    monkeypatch.setattr(fast_conv, "_KERNEL_MULTIPLE", 0)
    rng = np.random.default_rng(2)
    x = rng.normal(size=(3, 11, 9, 4))
    kernel = rng.normal(size=kernel_size + (4, 5))
    _, _, pads = kernels.conv_geometry(x.shape, kernel_size, (1, 1), padding)
    plain = fast_conv.conv2d_forward(x, kernel, (1, 1), pads)
    seen = []

    def epilogue(rows):
        assert rows.shape[1] == 5
        seen.append(rows.shape[0])
        rows *= 2.0

    doubled = fast_conv.conv2d_forward(x, kernel, (1, 1), pads, epilogue=epilogue)
    assert sum(seen) == plain.size // 5
    if kernel_size != (1, 1):
        assert len(seen) > 1
    np.testing.assert_allclose(doubled, 2.0 * plain, rtol=1e-12, atol=1e-12)


def test_a_sequential_model_grown_after_predict_is_planned_again(fusion_on):
    from minidl.models import Sequential
    model = Sequential([Conv2D(3, 3, use_bias=False, input_shape=(8, 8, 2), name="first_conv"),
                        BatchNormalization(name="first_bn"), Activation("relu", name="first_relu")])
    x = np.random.default_rng(0).normal(size=(2, 8, 8, 2)).astype(np.float32)
    model.predict_on_batch(x)
    assert _fused_chains(model) == [["first_conv", "first_bn", "first_relu"]]
    model.add(Conv2D(4, 1, use_bias=False, name="second_conv"))
    model.add(BatchNormalization(name="second_bn"))
    randomize_batch_norms(model, np.random.default_rng(1))
    fused = model.predict_on_batch(x)
    assert sorted(_fused_chains(model)) == [["first_conv", "first_bn", "first_relu"], ["second_conv", "second_bn"]]
    config.set_inference_fusion(False)
    np.testing.assert_array_equal(fused, model.predict_on_batch(x))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fused_steps_write_into_the_concatenation(dtype, fusion_on):
    inputs = Input((9, 9, 3))

    def conv_bn_relu(x, filters, size, name):
        x = Conv2D(filters, size, padding="same", use_bias=False, name=f"{name}_conv")(x)
        return Activation("relu", name=f"{name}_relu")(BatchNormalization(name=f"{name}_bn")(x))

    a = conv_bn_relu(inputs, 4, 3, "a")
    b = conv_bn_relu(inputs, 5, 1, "b")
    pooled = AveragePooling2D(3, strides=1, padding="same", name="pool")(inputs)
    c = conv_bn_relu(inputs, 2, 3, "c")
    read_twice = conv_bn_relu(inputs, 3, 1, "d")
    mixed = Concatenate(name="mixed")([a, pooled, b, read_twice])
    inner = Concatenate(name="inner")([c, read_twice])        # read_twice feeds two: no writer
    outer = Concatenate(name="outer")([mixed, inner, conv_bn_relu(inputs, 2, 1, "e")])
    model = Model(inputs, outer)
    assert _concatenations_in_place(model) == {"mixed": ["a_relu", "b_relu"], "inner": ["c_relu"],
                                               "outer": ["e_relu"]}
    randomize_batch_norms(model, np.random.default_rng(5))
    x = np.random.default_rng(6).normal(size=(2, 9, 9, 3)).astype(dtype)
    fused = model.predict_on_batch(x)
    config.set_inference_fusion(False)
    unfused = model.predict_on_batch(x)
    assert fused.shape == (2, 9, 9, 4 + 3 + 5 + 3 + 2 + 3 + 2) and fused.dtype == dtype
    np.testing.assert_array_equal(fused, unfused)


def test_inception_blocks_are_concatenated_in_place(fusion_on):
    model = applications.InceptionV3(weights=None, include_top=False, input_shape=(75, 75, 3))
    in_place = _concatenations_in_place(model)
    named = {f"mixed{i}" for i in range(11)} | {"mixed9_0", "mixed9_1"}
    assert len(in_place) == 15 and named <= set(in_place)     # + the two unnamed inner ones
    assert len(in_place["mixed0"]) == 4 and len(in_place["mixed3"]) == 2   # mixed3: + a max-pool branch


def test_conv_out_must_be_a_slice_of_the_last_axis():
    x = np.zeros((1, 4, 4, 2))
    kernel = np.zeros((3, 3, 2, 3))
    _, _, pads = kernels.conv_geometry(x.shape, (3, 3), (1, 1), "same")
    with pytest.raises(ValueError, match="out must have shape"):
        fast_conv.conv2d_forward(x, kernel, (1, 1), pads, out=np.zeros((1, 4, 4, 4)))
    with pytest.raises(ValueError, match="evenly spaced"):
        fast_conv.conv2d_forward(x, kernel, (1, 1), pads, out=np.zeros((1, 8, 4, 3))[:, ::2])
    target = np.full((1, 4, 4, 7), 5.0)
    fast_conv.conv2d_forward(x + 1, kernel + 1, (1, 1), pads, out=target[..., 2:5])
    np.testing.assert_array_equal(target[..., :2], 5.0)
    np.testing.assert_array_equal(target[..., 5:], 5.0)
    np.testing.assert_array_equal(target[..., 2:5], fast_conv.conv2d_forward(x + 1, kernel + 1, (1, 1), pads))
