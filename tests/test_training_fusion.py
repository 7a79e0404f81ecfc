"""A training step's BatchNormalization -> ReLU as one step (``minidl/engine/fusion.py``).

Where a batch norm that uses the batch statistics is read only by a ReLU, both walked
backward, the engine runs them as one ``BatchNormReLUTraining``: forward in one pass after
the statistics, backward with the ReLU's mask recomputed inside the batch norm's backward.
These tests pin down:

* which pairs are fused -- and which are not: a batch norm read by a second layer, a frozen
  batch norm (inference mode) walked for the layers before it, a shared ReLU layer, a batch
  norm that is a model output, a sigmoid after the batch norm, the frozen part (fused as
  inference);
* that a training step gives the same loss, gradients and moving statistics bit for bit
  with fusion on and off (``MINIDL_FUSE_INFERENCE``), in float32 and float64, branches and all,
  and the textbook walk's (float64, 1e-10);
* that neither layer's own backward runs for a fused pair, and both free what they kept.
"""
import numpy as np
import pytest
from random_batch_norms import randomize_batch_norms

import minidl
from minidl import config
from minidl.engine import forward
from minidl.engine.fusion import BatchNormReLUTraining
from minidl.engine.gradient_plan import gradient_plan
from minidl.layers import (
    Activation,
    AveragePooling2D,
    BatchNormalization,
    Concatenate,
    Conv2D,
    Dense,
    GlobalAveragePooling2D,
    Input,
)
from minidl.models import Model


def _conv_bn_relu(x, filters, kernel, name, relu=True):
    x = BatchNormalization(name=f"{name}_bn")(Conv2D(filters, kernel, padding="same", use_bias=False,
                                                      name=f"{name}_conv")(x))
    return Activation("relu", name=f"{name}_relu")(x) if relu else x


def _model(dtype):
    """A stem, a block whose branches run at once, and the cases that must stay apart."""
    minidl.clear_session()
    minidl.initializers.seed(5)
    inputs = Input((10, 10, 3))
    stem = _conv_bn_relu(inputs, 6, 3, "stem")
    one = _conv_bn_relu(stem, 4, 1, "one")
    two = _conv_bn_relu(_conv_bn_relu(stem, 3, 1, "two_a"), 4, 3, "two_b")
    pool = _conv_bn_relu(AveragePooling2D(3, strides=1, padding="same")(stem), 2, 1, "pool")
    block = Concatenate(name="block")([one, two, pool])
    read_twice = _conv_bn_relu(block, 4, 1, "twice", relu=False)              # BN read by ReLU and concat
    shared_relu = Activation("relu", name="shared_relu")
    both = Concatenate(name="both")([shared_relu(read_twice), read_twice,
                                     shared_relu(_conv_bn_relu(block, 4, 1, "shared", relu=False))])
    frozen = _conv_bn_relu(both, 4, 3, "frozen_bn")                             # its BN frozen below
    sigmoid = Activation("sigmoid", name="after_sigmoid")(_conv_bn_relu(frozen, 4, 1, "sig", relu=False))
    head = Dense(1, name="head")(GlobalAveragePooling2D()(sigmoid))
    model = Model(inputs, head)
    randomize_batch_norms(model, np.random.default_rng(2))
    model.get_layer("frozen_bn_bn").trainable = False
    for parameter in model.weights:
        parameter.value = parameter.value.astype(dtype)
    model.compile("sgd", "mean_squared_error")
    return model


def _batch(dtype):
    rng = np.random.default_rng(3)
    return rng.normal(size=(4, 10, 10, 3)).astype(dtype), rng.normal(size=(4, 1))


def _fused_pairs(model):
    steps = forward._fused_steps(model, True, gradient_plan(model))
    return sorted(step.norm.name for step in steps.values() if isinstance(step, BatchNormReLUTraining))


def test_each_walked_batch_norm_read_only_by_a_relu_is_fused_with_it(engine_path, config_switches):
    config_switches(inference_fusion=True)
    model = _model(np.float32)
    assert _fused_pairs(model) == ["one_bn", "pool_bn", "stem_bn", "two_a_bn", "two_b_bn"]
    config_switches(inference_fusion=False)
    assert _fused_pairs(model) == []


def test_a_batch_norm_that_is_a_model_output_keeps_its_relu_apart(engine_path, config_switches):
    config_switches(inference_fusion=True)
    inputs = Input((6, 6, 2))
    kept = _conv_bn_relu(inputs, 3, 1, "kept", relu=False)
    fused = _conv_bn_relu(inputs, 3, 1, "fused")
    model = Model(inputs, [kept, Activation("relu", name="kept_relu")(kept), fused])
    assert _fused_pairs(model) == ["fused_bn"]


def test_a_frozen_part_fuses_as_inference_and_not_as_training(engine_path, config_switches):
    config_switches(inference_fusion=True)
    model = _model(np.float32)
    for layer in model.layers:
        layer.trainable = layer.name.startswith(("sig", "head"))
    model.compile("sgd", "mean_squared_error")
    assert _fused_pairs(model) == []          # what is walked has no batch norm -> ReLU left


def _step(model, x, y):
    """A training step's loss, gradients and moving statistics after it."""
    loss, _ = model.compute_gradients(x, y)
    gradients = {p.name: p.grad.copy() for p in model.trainable_weights}
    model.train_on_batch(x, y)
    statistics = {w.name: w.value.copy() for w in model.weights if "moving" in w.name}
    return loss, gradients, statistics


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_training_step_fused_gives_the_unfused_bits(dtype, engine_path, config_switches):
    x, y = _batch(dtype)
    results = []
    for fuse in (True, False):
        config_switches(inference_fusion=fuse)
        results.append(_step(_model(dtype), x, y))
    (fused_loss, fused, fused_statistics), (loss, unfused, statistics) = results
    assert fused_loss == loss
    assert fused.keys() == unfused.keys() and len(fused) > 20
    for name, gradient in unfused.items():
        np.testing.assert_array_equal(fused[name], gradient, err_msg=name)
    for name, value in statistics.items():
        np.testing.assert_array_equal(fused_statistics[name], value, err_msg=name)


def test_a_fused_training_step_gives_the_textbook_walks_gradients(config_switches):
    config_switches(inference_fusion=True)
    x, y = _batch(np.float64)
    model = _model(np.float64)
    results = {}
    for path in ("numba", "reference"):
        with config.using_kernel_path(path):
            loss, _ = model.compute_gradients(x, y)
        results[path] = (loss, {p.name: p.grad.copy() for p in model.trainable_weights})
    np.testing.assert_allclose(results["numba"][0], results["reference"][0], rtol=1e-12)
    for name, gradient in results["reference"][1].items():
        scale = np.abs(gradient).max() + 1e-30
        np.testing.assert_allclose(results["numba"][1][name] / scale, gradient / scale, atol=1e-10, err_msg=name)


def test_a_fused_pair_runs_neither_layers_backward_and_frees_what_they_kept(engine_path, config_switches,
                                                                          monkeypatch):
    config_switches(inference_fusion=True)
    model = _model(np.float32)
    called = []
    for cls in (BatchNormalization, Activation):
        original = cls.backward
        monkeypatch.setattr(cls, "backward", lambda self, grad, _original=original: called.append(self.name)
                            or _original(self, grad))
    model.train_on_batch(*_batch(np.float32))
    fused = set(_fused_pairs(model))
    assert fused and not fused & set(called)
    assert {"twice_bn", "shared_bn", "frozen_bn_bn", "sig_bn", "shared_relu", "after_sigmoid"} <= set(called)
    for name in fused | {name.replace("_bn", "_relu") for name in fused}:
        with pytest.raises(RuntimeError, match="needs what forward"):
            _ = model.get_layer(name).saved
