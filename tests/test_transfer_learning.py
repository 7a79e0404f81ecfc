"""Transfer learning: a frozen or partly frozen base, trained with Keras 2's semantics, fast.

* a training step with the base frozen leaves every base weight and every batch-norm
  moving statistic unchanged, bit for bit, and moves the head; its loss and head gradients
  are those of the head trained on the base's ``predict`` features (float64, 1e-10);
* with ``layers[:249]`` frozen (Keras's recipe), the engine's gradients of the trainable
  part equal those of the textbook walk over the whole graph (float64, 1e-10);
* the engine never calls a frozen layer's backward, runs the frozen part fused and keeps
  nothing for it; a frozen layer between trainable ones passes its input gradient on but
  computes no weight gradient;
* a nested frozen base (``base.trainable = False; base(inputs)``) works the same way, and a
  Dropout in a frozen part still drops in training;
* changing ``trainable`` after ``compile()`` takes effect at the next ``compile()``, with a
  warning, as in Keras 2.
"""
import numpy as np
import pytest

import minidl
from minidl import applications, config
from minidl.engine import fusion
from minidl.layers import BatchNormalization, Conv2D, Dense, Dropout, GlobalAveragePooling2D, Input
from minidl.models import Model, Sequential
from minidl.optimizers import SGD, Adam
from random_batch_norms import randomize_batch_norms

SIZE = 75


def _workshop_model(dtype=np.float64, seed=3, nested=False):
    """InceptionV3 (75x75) + the workshop's head, BN statistics that act, in ``dtype``."""
    minidl.clear_session()
    minidl.initializers.seed(seed)
    base = applications.InceptionV3(weights=None, include_top=False, input_shape=(SIZE, SIZE, 3))
    randomize_batch_norms(base, np.random.default_rng(seed))
    head = Sequential([GlobalAveragePooling2D(input_shape=base.output_shape[1:]), Dense(8, activation="relu"),
                       Dropout(0.5, seed=1), Dense(1, activation="sigmoid")])
    if nested:
        inputs = Input(shape=(SIZE, SIZE, 3))
        model = Model(inputs, head(base(inputs)))
    else:
        model = Model(base.input, head(base.output))
    for parameter in model.weights:
        parameter.value = parameter.value.astype(dtype)
    return model, base, head


def _batch(dtype=np.float64):
    rng = np.random.default_rng(4)
    return rng.normal(size=(3, SIZE, SIZE, 3)).astype(dtype), np.array([0.0, 1.0, 1.0])


def _freeze(layers):
    for layer in layers:
        layer.trainable = False


def _gradients(model, x, y, path):
    for layer in model.walk_layers():
        if isinstance(layer, Dropout):
            layer.rng = np.random.default_rng(7)            # the same mask in every run compared
    with config.using_kernel_path(path):
        loss, _ = model.compute_gradients(x, y)
    return loss, {p.name: p.grad.copy() for p in model.trainable_weights}


@pytest.mark.parametrize("nested", [False, True])
def test_a_frozen_base_does_not_change_and_the_head_learns(nested):
    model, base, head = _workshop_model(np.float32, nested=nested)
    base.trainable = False
    model.compile(Adam(learning_rate=1e-2), "binary_crossentropy")
    before = {p.name: p.value.copy() for p in base.weights}
    head_before = [p.value.copy() for p in head.weights]
    x, y = _batch(np.float32)
    for _ in range(2):
        model.train_on_batch(x, y)
    assert len(before) == 376 and all(np.array_equal(p.value, before[p.name]) for p in base.weights)
    moving = [p for p in base.weights if "moving" in p.name]
    assert len(moving) == 188                                # every BN's mean and variance, untouched
    assert all(not np.array_equal(a, p.value) for a, p in zip(head_before, head.weights))


@pytest.mark.parametrize("nested", [False, True])
def test_frozen_base_loss_and_head_gradients_are_the_head_on_the_bases_predict(nested):
    model, base, head = _workshop_model(nested=nested)
    base.trainable = False
    model.compile("sgd", "binary_crossentropy")
    x, y = _batch()
    loss, grads = _gradients(model, x, y, "numba")
    features = base.predict(x, batch_size=3)                  # the base at inference
    head.compile("sgd", "binary_crossentropy")
    head_loss, head_grads = _gradients(head, features, y, "reference")
    assert set(grads) == set(head_grads) and len(grads) == 4
    assert abs(loss - head_loss) < 1e-10 * abs(head_loss)
    for name, gradient in head_grads.items():
        np.testing.assert_allclose(grads[name], gradient, rtol=1e-10, atol=1e-12 * np.abs(gradient).max())


@pytest.mark.parametrize("nested", [False, True])
def test_with_layers_249_on_trainable_the_engine_gives_the_full_walks_gradients(nested):
    model, base, head = _workshop_model(nested=nested)
    layers = base.layers if nested else model.layers
    _freeze(layers[:249])
    model.compile(SGD(learning_rate=1e-4, momentum=0.9), "binary_crossentropy")
    x, y = _batch()
    engine_loss, engine = _gradients(model, x, y, "numba")
    textbook_loss, textbook = _gradients(model, x, y, "reference")     # Model.forward / Model.backward
    assert engine.keys() == textbook.keys() and len(engine) == 4 + 2 * 18   # mixed9, mixed10: 18 conv + BN
    assert abs(engine_loss - textbook_loss) < 1e-10 * abs(textbook_loss)
    # 1e-9, not 1e-10: the trainable batch norms normalise 3 images of 1x1 pixels, which
    # magnifies float64 rounding (the engine's frozen part sums its products in another
    # order than the textbook's: branches at once, single-threaded products) up to ~2e-10.
    for name, gradient in textbook.items():
        assert np.abs(gradient).max() > 0, name
        np.testing.assert_allclose(engine[name], gradient, rtol=0, atol=1e-9 * np.abs(gradient).max())


def _count_backward_calls(layers):
    calls = []
    for layer in layers:
        original = layer.backward
        layer.backward = lambda grad, _layer=layer, _original=original: calls.append(_layer) or _original(grad)
    return calls


def test_the_engine_never_calls_a_frozen_layers_backward_and_fuses_the_frozen_part(monkeypatch, engine_path):
    model, base, _ = _workshop_model(np.float32)
    _freeze(model.layers[:249])
    model.compile("sgd", "binary_crossentropy")
    calls = _count_backward_calls(model.layers)
    fused = []
    original_run = fusion.ConvBatchNormReLU.run
    monkeypatch.setattr(fusion.ConvBatchNormReLU, "run",
                        lambda self, values, buffers: fused.append(self.conv) or original_run(self, values, buffers))
    model.train_on_batch(*_batch(np.float32))
    assert calls and not [layer for layer in calls if not layer.trainable]
    assert {layer.name for layer in calls} >= {"mixed9", "mixed10", "conv2d_94"}
    assert len(fused) == 94 - 18 and not [conv for conv in fused if conv.trainable]  # frozen chains fused
    for layer in model.layers[1:249]:                      # the frozen part kept nothing for backward
        with pytest.raises(RuntimeError, match="needs what forward"):
            layer.saved


def test_a_frozen_layer_between_trainable_ones_passes_gradients_but_computes_none_of_its_own():
    minidl.clear_session()
    inputs = Input(shape=(6, 6, 2))
    first = Conv2D(3, 3, padding="same", name="first")
    middle = Conv2D(3, 3, padding="same", name="frozen_middle")
    frozen_norm = BatchNormalization(name="frozen_norm")
    x = frozen_norm(middle(first(inputs)))
    model = Model(inputs, Dense(1)(GlobalAveragePooling2D()(x)))
    randomize_batch_norms(model, np.random.default_rng(0))
    for parameter in model.weights:
        parameter.value = parameter.value.astype(np.float64)
    middle.trainable = frozen_norm.trainable = False
    model.compile("sgd", "mean_squared_error")
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(2, 6, 6, 2)), rng.normal(size=(2, 1))
    engine_loss, engine = _gradients(model, x, y, "numba")
    assert middle.kernel.grad is None                     # the frozen kernel's product was skipped
    textbook_loss, textbook = _gradients(model, x, y, "reference")
    assert sorted(engine) == sorted(textbook) == ["dense_1/bias:0", "dense_1/kernel:0", "first/bias:0",
                                                  "first/kernel:0"]
    for name, gradient in textbook.items():
        np.testing.assert_allclose(engine[name], gradient, rtol=1e-10, atol=1e-14)
    moving_before = frozen_norm.moving_mean.value.copy()
    model.train_on_batch(x, y)
    np.testing.assert_array_equal(frozen_norm.moving_mean.value, moving_before)


def test_a_dropout_in_a_frozen_part_still_drops_in_training(engine_path):
    minidl.clear_session()
    inputs = Input(shape=(50,))
    dropout = Dropout(0.5, seed=0)
    frozen = Dense(50, kernel_initializer="ones", name="frozen")
    model = Model(inputs, Dense(1, name="head")(dropout(frozen(inputs))))
    frozen.trainable = False
    model.compile("sgd", "mean_squared_error")
    seen = []
    original = dropout.forward
    dropout.forward = lambda x, training=False: seen.append(training) or original(x, training=training)
    model.train_on_batch(np.ones((4, 50)), np.zeros((4, 1)))
    assert seen == [True]
    with pytest.raises(RuntimeError):
        dropout.saved                                      # it ran as part of the frozen part


def test_trainable_changed_after_compile_takes_effect_at_the_next_compile_with_a_warning():
    model, base, head = _workshop_model(np.float32)
    model.compile(SGD(learning_rate=1e-2), "binary_crossentropy")
    x, y = _batch(np.float32)
    base.trainable = False                                 # after compile: no effect yet
    kernel = base.get_layer("conv2d_1").kernel
    before = kernel.value.copy()
    with pytest.warns(UserWarning, match=r"`trainable` changed after compile\(\).*takes effect when you call"):
        model.train_on_batch(x, y)
    assert not np.array_equal(kernel.value, before)       # still trained, as compile() saw it
    assert not base.get_layer("conv2d_1").trainable        # the user's flag is back afterwards
    model.compile(SGD(learning_rate=1e-2), "binary_crossentropy")
    before = kernel.value.copy()
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.train_on_batch(x, y)
    np.testing.assert_array_equal(kernel.value, before)   # frozen now
