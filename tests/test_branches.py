"""An Inception block's branches run at once (minidl/engine/branches.py).

* regions are found where a fork's branches meet again in one join and nothing else
  reads them: InceptionV3's blocks but its two grid reductions (one branch is most of
  their work); not a chain, not a Dropout, not a batch norm that trains at inference's
  place, not a layer called twice; a branch read after the concatenation moves the
  region's end to that reader;
* with sharing available the steps of a region run on two threads, and predict gives the
  same numbers as with the regions run in turn (up to the rounding of products summed
  on one thread instead of two) and the same numbers bit for bit from run to run;
* an error in a step reaches the caller and the next call works;
* in a training step, a region whose nodes are walked backward runs at once too, keeping
  what backward needs (``keeps``; with the frozen nodes of a block whose other branches
  train, as in Keras's top-two-blocks recipe), and so does its backward walk
  (``training_walk.py``; an inner fork's gradients summed in the walk's order): the loss,
  every gradient and the batch norms' moving statistics equal those of the regions run in
  turn; an error in a layer's backward reaches the caller.
"""
import os
import threading

import numpy as np
import pytest
from random_batch_norms import randomize_batch_norms
from sharing import needs_sharing

import minidl
from minidl import applications, config
from minidl.engine import branches, forward, training_walk
from minidl.engine.gradient_plan import gradient_plan
from minidl.kernels.fast import chunks
from minidl.layers import (
    Activation,
    AveragePooling2D,
    BatchNormalization,
    Concatenate,
    Conv2D,
    Dense,
    Dropout,
    GlobalAveragePooling2D,
    Input,
)
from minidl.models import Model


def _conv_bn(x, filters, size, name):
    x = Conv2D(filters, size, padding="same", use_bias=False, name=f"{name}_conv")(x)
    return Activation("relu", name=f"{name}_relu")(BatchNormalization(name=f"{name}_bn")(x))


def _block_model(extra=None, heavy_branch=False):
    """stem -> a block of three branches and a pooling one -> concatenation -> a conv."""
    inputs = Input((12, 12, 3))
    x = _conv_bn(inputs, 8, 3, "stem")
    one = _conv_bn(x, 8, 1, "one")
    two_a = _conv_bn(x, 8, 1, "two_a")                  # an inner fork, as in mixed9 and mixed10
    two = Concatenate(name="two")([_conv_bn(two_a, 16, (1, 3), "two_b"), _conv_bn(two_a, 16, (3, 1), "two_c")])
    three = _conv_bn(_conv_bn(_conv_bn(x, 6, 1, "three_a"), 8, 3, "three_b"), 8, 3, "three_c")
    if heavy_branch:
        three = _conv_bn(_conv_bn(three, 64, 3, "three_d"), 64, 3, "three_e")
    pool = _conv_bn(AveragePooling2D(3, strides=1, padding="same", name="pool")(x), 4, 1, "pool_b")
    if extra == "dropout":
        pool = Dropout(0.5, name="drop")(pool)
    merged = Concatenate(name="block")([one, two, three, pool, two_a])   # two_a: 3 readers
    outputs = _conv_bn(merged, 4, 1, "after")
    if extra == "read_after_join":
        outputs = Concatenate(name="late")([outputs, one])
    model = Model(inputs, outputs)
    randomize_batch_norms(model, np.random.default_rng(0))
    return model


def _region_joins(model, training=False, plan=None):
    _, regions = forward._planned(model, training, plan)
    return sorted(region.stop.layer.name for region in regions.values())


def test_a_block_is_a_region_with_its_four_branches():
    model = _block_model()
    _, regions = forward._planned(model, False, None)
    (region,) = regions.values()
    assert region.stop.layer.name == "block"
    assert len(region.steps) == 10                     # 8 fused conv steps, the pooling, the inner concatenation
    assert sum(1 for waits in region.waits_for.values() if waits == 0) == 4     # one per branch
    starts = sorted(region.priority, key=region.priority.get)
    assert "three_a" in repr(starts[-1])                # the longest chain goes first


def test_no_region_with_a_dropout_in_a_branch():
    assert _region_joins(_block_model("dropout")) == []


def test_a_branch_read_after_the_join_moves_the_region_s_end_to_its_last_reader():
    assert _region_joins(_block_model("read_after_join")) == ["late"]      # not "block"


def test_no_region_when_one_branch_is_most_of_the_work():
    assert _region_joins(_block_model(heavy_branch=True)) == []


def test_no_region_in_a_chain_or_where_batch_norms_train():
    inputs = Input((8, 8, 3))
    chain = Model(inputs, _conv_bn(_conv_bn(inputs, 4, 3, "a"), 4, 3, "b"))
    assert _region_joins(chain) == []
    model = _block_model()
    assert _region_joins(model, training=True) == []      # every batch norm uses batch statistics
    for layer in model.layers:
        layer.trainable = False
    assert _region_joins(model, training=True) == ["block"]   # frozen: as at inference


def test_no_region_where_a_layer_is_called_twice_and_its_gradients_are_the_textbook_walks():
    """Two calls of one layer must not run at once: a layer keeps what its last call saved."""
    inputs = Input((6, 6, 2))
    shared = Activation("sigmoid", name="shared")
    block = Concatenate(name="block")([shared(Conv2D(3, 1, name="a")(inputs)), shared(Conv2D(3, 1, name="b")(inputs))])
    model = Model(inputs, Dense(1)(GlobalAveragePooling2D()(block)))
    for parameter in model.weights:
        parameter.value = parameter.value.astype(np.float64)
    model.compile("sgd", "mean_squared_error")
    assert _region_joins(model) == [] and _region_joins(model, True, gradient_plan(model)) == []
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(2, 6, 6, 2)), rng.normal(size=(2, 1))
    gradients = {}
    for path in ("numba", "reference"):
        with config.using_kernel_path(path):
            model.compute_gradients(x, y)
        gradients[path] = {p.name: p.grad.copy() for p in model.trainable_weights}
    for name, gradient in gradients["reference"].items():
        np.testing.assert_allclose(gradients["numba"][name], gradient, rtol=1e-10, atol=1e-14, err_msg=name)


def test_inception_v3_regions_are_its_blocks_but_the_grid_reductions():
    minidl.clear_session()
    model = applications.InceptionV3(weights=None, include_top=False, input_shape=(299, 299, 3))
    assert _region_joins(model) == sorted(f"mixed{k}" for k in (0, 1, 2, 4, 5, 6, 7, 9, 10))


_RUN_STEP = branches._run_step      # each recorder wraps the engine's own, not another recorder


def _record_threads(monkeypatch):
    """Record which threads run a region's steps. Each thread's first step waits for the
    other core's first step (a barrier), so a core that never takes part fails the test
    instead of leaving it to the OS's timing which core runs tiny steps."""
    threads, lock = set(), threading.Lock()
    both_started = threading.Barrier(2, timeout=30)
    first_step = threading.local()
    run_step = _RUN_STEP

    def recording(step, *args):
        with lock:
            threads.add(threading.get_ident())
        if os.environ.get("MINIDL_PARALLEL_BRANCHES") != "0" and not getattr(first_step, "done", False):
            first_step.done = True
            both_started.wait()
        return run_step(step, *args)

    monkeypatch.setattr(branches, "_run_step", recording)
    return threads


def _predict_recording_threads(model, x, monkeypatch, enabled):
    monkeypatch.setenv("MINIDL_PARALLEL_BRANCHES", "1" if enabled else "0")
    threads = _record_threads(monkeypatch)
    return model.predict_on_batch(x), threads


@needs_sharing
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_branches_at_once_give_the_same_predictions(dtype, monkeypatch):
    minidl.clear_session()
    model = applications.InceptionV3(weights=None, include_top=False, input_shape=(75, 75, 3))
    randomize_batch_norms(model, np.random.default_rng(1))
    x = np.random.default_rng(2).normal(size=(2, 75, 75, 3)).astype(dtype)
    in_turn, no_threads = _predict_recording_threads(model, x, monkeypatch, enabled=False)
    at_once, threads = _predict_recording_threads(model, x, monkeypatch, enabled=True)
    again, _ = _predict_recording_threads(model, x, monkeypatch, enabled=True)
    assert no_threads == set() and len(threads) == 2
    np.testing.assert_array_equal(again, at_once)            # the same from run to run
    tolerance = 1e-4 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(at_once, in_turn, rtol=0, atol=tolerance * np.abs(in_turn).max())
    assert np.abs(in_turn).max() > 0.1


@needs_sharing
def test_an_error_in_a_step_reaches_the_caller_and_the_next_call_works(monkeypatch):
    model = _block_model()
    x = np.random.default_rng(3).normal(size=(2, 12, 12, 3)).astype(np.float32)
    expected = model.predict_on_batch(x)
    run_step = branches._run_step

    def failing(step, *args):
        if "three_b" in repr(step):
            raise RuntimeError("three_b failed")
        return run_step(step, *args)

    monkeypatch.setattr(branches, "_run_step", failing)
    with pytest.raises(RuntimeError, match="three_b failed"):
        model.predict_on_batch(x)
    monkeypatch.setattr(branches, "_run_step", run_step)
    assert chunks._one_region_at_a_time.acquire(blocking=False)   # the region let go of the cores
    chunks._one_region_at_a_time.release()
    np.testing.assert_array_equal(model.predict_on_batch(x), expected)


def _step_results(model, x, y, monkeypatch, enabled):
    """Loss, gradients and moving statistics after one gradient computation."""
    monkeypatch.setenv("MINIDL_PARALLEL_BRANCHES", "1" if enabled else "0")
    threads = _record_threads(monkeypatch)
    backward_threads = _record_backward_threads(monkeypatch, enabled)
    before = {p.name: p.value.copy() for p in model.weights if "moving" in p.name}
    loss, _ = model.compute_gradients(x, y)
    moved = {p.name: p.value.copy() for p in model.weights if "moving" in p.name}
    for parameter in model.weights:                 # back as they were: the next run starts alike
        if parameter.name in before:
            parameter.value[...] = before[parameter.name]
    return loss, {p.name: p.grad.copy() for p in model.trainable_weights}, moved, threads, backward_threads


_LAYER_BACKWARD = training_walk._layer_backward   # each recorder wraps the walk's own


def _record_backward_threads(monkeypatch, enabled):
    """The threads that run the block's layers' backward; with regions at once, each thread's
    first one waits for the other core's (a barrier, as _record_threads)."""
    threads, lock = set(), threading.Lock()
    both_started, first = threading.Barrier(2, timeout=30), threading.local()
    layer_backward = _LAYER_BACKWARD

    def recording(layer, grad, wants):
        if layer.name.split("_")[0] in ("one", "two", "three", "pool"):
            with lock:
                threads.add(threading.get_ident())
            if enabled and not getattr(first, "done", False):
                first.done = True
                both_started.wait()
        return layer_backward(layer, grad, wants)

    monkeypatch.setattr(training_walk, "_layer_backward", recording)
    return threads


@needs_sharing
@pytest.mark.parametrize("frozen", [(), ("stem_conv", "stem_bn", "pool_b_conv", "pool_b_bn", "pool")])
def test_a_training_step_runs_its_walked_branches_at_once_with_the_same_numbers(frozen, monkeypatch):
    model = _block_model()
    for layer in model.layers:
        if layer.name in frozen:
            layer.trainable = False
    for parameter in model.weights:
        parameter.value = parameter.value.astype(np.float64)
    model.compile("sgd", "mse")
    from minidl.engine import gradient_plan
    _, regions = forward._planned(model, True, gradient_plan.gradient_plan(model))
    assert [(region.stop.layer.name, region.keeps) for region in regions.values()] == [("block", True)]
    rng = np.random.default_rng(9)
    x, y = rng.normal(size=(3, 12, 12, 3)), rng.normal(size=(3, 12, 12, 4))
    in_turn = _step_results(model, x, y, monkeypatch, enabled=False)
    at_once = _step_results(model, x, y, monkeypatch, enabled=True)
    assert in_turn[3] == set() and len(at_once[3]) == 2
    assert len(in_turn[4]) == 1 and len(at_once[4]) == 2       # the backward walk's branches too
    assert abs(at_once[0] - in_turn[0]) <= 1e-12 * abs(in_turn[0])
    assert at_once[1].keys() == in_turn[1].keys() and len(in_turn[1]) == 3 * (8 if frozen else 10)   # kernel, gamma, beta
    # Bit for bit: the gradients summed where branches meet are summed in the walk's order (a
    # mutant that changes the order fails here), and products this small are summed alike by
    # OpenBLAS on one thread or two (larger ones may differ in the last bits: see branches.py).
    for name, gradient in in_turn[1].items():
        np.testing.assert_array_equal(at_once[1][name], gradient)
    for name, statistic in in_turn[2].items():
        np.testing.assert_allclose(at_once[2][name], statistic, rtol=1e-12)


@needs_sharing
def test_an_error_in_a_backward_at_once_reaches_the_caller(monkeypatch):
    model = _block_model()
    model.compile("sgd", "mse")
    rng = np.random.default_rng(10)
    x, y = rng.normal(size=(2, 12, 12, 3)).astype(np.float32), rng.normal(size=(2, 12, 12, 4))
    node_backward = training_walk._node_backward

    def failing(node, kept, grad, wants):
        if node.layer.name == "three_b_bn":
            raise RuntimeError("three_b_bn backward failed")
        return node_backward(node, kept, grad, wants)

    monkeypatch.setattr(training_walk, "_node_backward", failing)
    with pytest.raises(RuntimeError, match="three_b_bn backward failed"):
        model.train_on_batch(x, y)
    monkeypatch.setattr(training_walk, "_node_backward", node_backward)
    assert chunks._one_region_at_a_time.acquire(blocking=False)
    chunks._one_region_at_a_time.release()
    assert np.isfinite(model.train_on_batch(x, y))

