"""The fast paths added for speed (issue 6) compute what the readable paths compute.

* col2im's span-wise Numba kernel == the NumPy reference (random shapes, strides, pads);
* max pooling's channels-innermost Numba kernel == the reference, ties included;
* batch norm's one-read statistics == the reference's two passes, even when the mean is
  far larger than the spread (where a naive one-pass variance would cancel);
* Adam's fused Numba update == the NumPy lines (reference path), over several steps;
* the engine's training walk (``minidl/engine/training_walk.py``: saved arrays freed on
  the way, sums of a fan-out made in place, no gradient for the model input) gives the
  same parameter gradients as ``Model.backward``, and those gradients match central
  differences in float64; afterwards a second backward is a clear error, not a silent no-op.
"""
import contextlib

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from minidl import config, engine, kernels
from minidl.gradcheck import relative_error
from minidl.kernels.fast import conv_numba, pooling_numba
from minidl.kernels.reference import conv as conv_reference
from minidl.kernels.reference import pooling as pooling_reference
from minidl.kernels.fast import batchnorm_numba
from minidl.kernels.reference import batchnorm as batchnorm_reference
from minidl.layers import (Activation, BatchNormalization, Concatenate, Conv2D, Dense, Input,
                           GlobalAveragePooling2D)
from minidl.models import Model
from minidl.optimizers import Adam


@contextlib.contextmanager
def kernel_path(path):
    previous = config.kernel_path()
    config.set_kernel_path(path)
    try:
        yield
    finally:
        config.set_kernel_path(previous)


@settings(max_examples=40, deadline=None)
@given(batch=st.integers(1, 3), height=st.integers(1, 9), width=st.integers(1, 9),
       channels=st.integers(1, 5), kernel_h=st.integers(1, 4), kernel_w=st.integers(1, 4),
       stride_h=st.integers(1, 3), stride_w=st.integers(1, 3),
       padding=st.sampled_from(["valid", "same"]), seed=st.integers(0, 2**16))
def test_col2im_numba_equals_reference(batch, height, width, channels, kernel_h, kernel_w,
                                       stride_h, stride_w, padding, seed):
    shape = (batch, height, width, channels)
    try:
        out_h, out_w, pads = kernels.conv_geometry(shape, (kernel_h, kernel_w), (stride_h, stride_w),
                                                   padding)
    except ValueError:
        return  # kernel larger than a 'valid' input: no output, nothing to compare
    rng = np.random.default_rng(seed)
    cols = rng.standard_normal((batch * out_h * out_w, kernel_h * kernel_w * channels))
    args = (shape, (kernel_h, kernel_w), (stride_h, stride_w), pads)
    np.testing.assert_allclose(conv_numba.col2im(cols, *args), conv_reference.col2im(cols, *args),
                               rtol=1e-12, atol=1e-12)
    cols32 = cols.astype(np.float32)
    fast = conv_numba.col2im(cols32, *args)
    assert fast.dtype == np.float32
    np.testing.assert_allclose(fast, conv_reference.col2im(cols32, *args), rtol=1e-5, atol=1e-5)


@settings(max_examples=30, deadline=None)
@given(height=st.integers(1, 9), width=st.integers(1, 9), channels=st.integers(1, 6),
       pool=st.integers(1, 3), stride=st.integers(1, 3), padding=st.sampled_from(["valid", "same"]),
       seed=st.integers(0, 2**16), ties=st.booleans())
def test_max_pool_forward_numba_equals_reference(height, width, channels, pool, stride, padding,
                                                 seed, ties):
    shape = (2, height, width, channels)
    try:
        _, _, pads = kernels.conv_geometry(shape, (pool, pool), (stride, stride), padding)
    except ValueError:
        return
    rng = np.random.default_rng(seed)
    # Few distinct values make ties common: the first maximum (row-major) must win.
    x = rng.integers(0, 3, shape).astype(np.float32) if ties else rng.standard_normal(shape)
    y_fast, argmax_fast = pooling_numba.max_pool_forward(x, (pool, pool), (stride, stride), pads)
    y_ref, argmax_ref = pooling_reference.max_pool_forward(x, (pool, pool), (stride, stride), pads)
    np.testing.assert_array_equal(y_fast, y_ref)
    np.testing.assert_array_equal(argmax_fast, argmax_ref)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("offset", [0.0, 1e3])
def test_batchnorm_one_read_statistics_equal_two_passes(dtype, offset):
    rng = np.random.default_rng(1)
    # offset 1e3 with spread ~1: E[x^2] - E[x]^2 computed naively would lose ~6 digits.
    x = (offset + rng.standard_normal((3, 7, 5, 6)) * rng.uniform(0.5, 2, 6)).astype(dtype)
    beta = rng.standard_normal(6).astype(dtype)
    gamma = rng.uniform(0.5, 1.5, 6).astype(dtype)
    fast = batchnorm_numba.batchnorm_train_forward(x, gamma, beta, 1e-3)
    ref = batchnorm_reference.batchnorm_train_forward(x, gamma, beta, 1e-3)
    tolerance = dict(rtol=1e-10, atol=1e-10) if dtype == np.float64 else dict(rtol=2e-4, atol=2e-4)
    for a, b in zip(fast, ref):
        assert a.dtype == dtype
        np.testing.assert_allclose(a, b, **tolerance)
    # The variance itself, against an exact float64 computation on centred data.
    x64 = x.astype(np.float64).reshape(-1, 6)
    exact_variance = ((x64 - x64.mean(axis=0)) ** 2).mean(axis=0)
    np.testing.assert_allclose(fast[2].astype(np.float64), exact_variance,
                               rtol=1e-9 if dtype == np.float64 else 1e-5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fused_adam_equals_numpy_lines(dtype):
    rng = np.random.default_rng(2)
    from minidl.parameter import Parameter
    start = [rng.standard_normal((4, 3, 2)).astype(dtype), rng.standard_normal(5).astype(dtype)]
    grads = [[rng.standard_normal(p.shape).astype(dtype) for p in start] for _ in range(4)]
    results = {}
    for path in ("numba", "reference"):
        parameters = [Parameter(f"p{i}", value.copy()) for i, value in enumerate(start)]
        optimizer = Adam(lr=1e-2, epsilon=1e-7, decay=0.01)
        with kernel_path(path):
            for step_grads in grads:
                for parameter, grad in zip(parameters, step_grads):
                    parameter.grad = grad
                optimizer.apply_gradients(parameters)
        results[path] = ([p.value for p in parameters],
                         [optimizer._slots[id(p)][k] for p in parameters for k in ("m", "v")])
    tolerance = dict(rtol=1e-6, atol=1e-7) if dtype == np.float32 else dict(rtol=1e-13, atol=1e-15)
    for fast, ref in zip(results["numba"][0] + results["numba"][1],
                         results["reference"][0] + results["reference"][1]):
        assert fast.dtype == dtype
        np.testing.assert_allclose(fast, ref, **tolerance)
    # and the parameters moved: the check is not comparing two untouched copies
    assert not np.allclose(results["numba"][0][0], start[0])


def _fan_out_model(seed):
    """Input -> conv -> BN -> relu, which feeds two branches that are concatenated."""
    rng = np.random.default_rng(seed)
    inputs = Input(shape=(6, 6, 2))
    x = Conv2D(3, (3, 3), padding="same", use_bias=False)(inputs)
    x = BatchNormalization(scale=False)(x)
    x = Activation("relu")(x)
    a = Conv2D(2, (1, 1))(x)
    b = Conv2D(2, (1, 3), padding="same")(x)
    c = Conv2D(1, (3, 1), padding="same")(x)
    merged = Concatenate()([a, b, c])
    outputs = Dense(1)(GlobalAveragePooling2D()(merged))
    model = Model(inputs, outputs)
    for parameter in model.trainable_weights:
        parameter.value = rng.standard_normal(parameter.shape)   # float64 everywhere
    return model


def _parameter_grads(model, x, upstream, walk):
    for parameter in model.trainable_weights:
        parameter.grad = None
    model.forward(x, training=True)
    input_grad = walk(model, upstream)
    return [parameter.grad.copy() for parameter in model.trainable_weights], input_grad


def _textbook_walk(model, upstream):
    return model.backward(upstream)


@pytest.mark.parametrize("path", ["numba", "reference"])
def test_training_step_backward_equals_plain_walk_and_finite_differences(path):
    rng = np.random.default_rng(3)
    model = _fan_out_model(4)
    x = rng.standard_normal((2, 6, 6, 2))
    upstream = rng.standard_normal((2, 1))
    with kernel_path(path):
        plain, plain_input_grad = _parameter_grads(model, x, upstream, _textbook_walk)
        fast, fast_input_grad = _parameter_grads(model, x, upstream, engine.backward_for_training)
        assert plain_input_grad is not None and plain_input_grad.shape == x.shape
        if path == "numba":
            assert fast_input_grad is None              # the model input's gradient is skipped
            for layer in [model] + model.layers[1:]:    # every saved array was released
                with pytest.raises(RuntimeError, match="backward\\(\\) needs what forward\\(\\) saves"):
                    layer.saved
        else:                                           # the reference path runs Model.backward itself
            np.testing.assert_array_equal(fast_input_grad, plain_input_grad)
        for a, b in zip(plain, fast):
            np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-12)

        # Central differences of f = sum(upstream * model(x)) for a few parameter entries.
        step = 1e-6
        for parameter, analytic in zip(model.trainable_weights, fast):
            flat = parameter.value.reshape(-1)
            numeric = np.zeros(min(flat.size, 4))
            for k in range(numeric.size):
                index = rng.integers(flat.size)
                original = flat[index]
                values = []
                for sign in (1, -1):
                    flat[index] = original + sign * step
                    values.append(float(np.sum(upstream * model.forward(x, training=True))))
                flat[index] = original
                numeric[k] = (values[0] - values[1]) / (2 * step)
                assert relative_error(analytic.reshape(-1)[index], numeric[k]) < 1e-6, parameter.name


def test_training_step_backward_keeps_the_first_layer_input_gradient_when_needed():
    """The plain walk (gradcheck, Grad-CAM) still returns dL/dinput after a training step."""
    rng = np.random.default_rng(5)
    model = _fan_out_model(6)
    x = rng.standard_normal((2, 6, 6, 2))
    upstream = rng.standard_normal((2, 1))
    _parameter_grads(model, x, upstream, engine.backward_for_training)
    _, input_grad = _parameter_grads(model, x, upstream, _textbook_walk)
    assert input_grad is not None and np.abs(input_grad).sum() > 0


def _engine_walk_equals_textbook_walk(model, rng):
    """Random float64 parameters, input and upstream gradient; both walks on the numba path give
    the same parameter gradients. Returns (those gradients, each walk's input gradient)."""
    for parameter in model.trainable_weights:
        parameter.value = rng.standard_normal(parameter.shape)
    x = rng.standard_normal((2,) + tuple(model.inputs[0].shape[1:]))
    upstream = rng.standard_normal((2, 1))
    with kernel_path("numba"):
        plain, plain_input_grad = _parameter_grads(model, x, upstream, _textbook_walk)
        fast, fast_input_grad = _parameter_grads(model, x, upstream, engine.backward_for_training)
    for a, b in zip(plain, fast):
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-12)
    return plain, plain_input_grad, fast_input_grad


def test_a_nested_model_reading_the_input_still_passes_gradients_inside_it():
    """The Keras pattern ``features = base(inputs)``: the nested model reads the model's input,
    but the layers inside it still need each other's input gradients."""
    rng = np.random.default_rng(7)
    inner_input = Input(shape=(6, 6, 2))
    inner = Conv2D(3, 3, padding="same")(Activation("relu")(Conv2D(3, 3, padding="same")(inner_input)))
    base = Model(inner_input, inner)
    inputs = Input(shape=(6, 6, 2))
    model = Model(inputs, Dense(1)(GlobalAveragePooling2D()(base(inputs))))
    plain, _, _ = _engine_walk_equals_textbook_walk(model, rng)
    assert len(plain) == 6 and all(np.abs(g).max() > 0 for g in plain)


@pytest.mark.parametrize("first", ["Dense", "BatchNormalization", "Activation", "Conv2D"])
def test_training_step_gives_no_input_gradient_whatever_layer_reads_the_input(first):
    """The walk's docstring promises None for the model's input gradient during a training
    step; that must hold whichever layer reads the input, not only a Conv2D (issue 15)."""
    rng = np.random.default_rng(11)
    inputs = Input(shape=(5, 5, 3))
    reader = {"Dense": lambda: Dense(4), "BatchNormalization": lambda: BatchNormalization(),
              "Activation": lambda: Activation("relu"), "Conv2D": lambda: Conv2D(4, 3, padding="same")}[first]()
    outputs = Dense(1)(GlobalAveragePooling2D()(Conv2D(2, 3, padding="same")(reader(inputs))))
    _, plain_input_grad, fast_input_grad = _engine_walk_equals_textbook_walk(Model(inputs, outputs), rng)
    assert plain_input_grad is not None and plain_input_grad.shape == (2, 5, 5, 3)
    assert fast_input_grad is None
