"""Losses, Adam, metrics and fit/evaluate/predict with Keras's semantics (minidl/keras_semantics.md §5, §6)."""
import io
import math
import re

import numpy as np
import pytest

from minidl import losses, metrics, optimizers
from minidl.callbacks import (Callback, CSVLogger, EarlyStopping, LearningRateScheduler, Progbar,
                              TerminateOnNaN)
from minidl.layers import Dense, Dropout, Input
from minidl.models import Model
from minidl.parameter import Parameter


# ----------------------------------------------------------------- losses
def test_bce_worked_example_logits_and_clipped_paths():
    z = np.array([[2.0], [-1.0], [0.0], [30.0]])
    y = np.array([1, 1, 0, 0])
    expected_logits = np.array([0.12693, 1.31326, 0.69315, 30.0])      # minidl/keras_semantics.md §5.4
    expected_clipped = np.array([0.12693, 1.31326, 0.69315, 16.1181])
    bce = losses.BinaryCrossentropy()
    value, grad = bce.value_and_grad_from_logits(y, z)
    assert value == pytest.approx(expected_logits.mean(), abs=1e-4)
    p = 1 / (1 + np.exp(-z))
    np.testing.assert_allclose(grad, (p - y[:, None]) / 4)
    assert bce(y, p) == pytest.approx(expected_clipped.mean(), abs=1e-4)


def test_labels_of_shape_b_are_not_broadcast_to_b_by_b():
    p = np.array([[0.9], [0.2], [0.6]])
    y = np.array([1.0, 0.0, 0.0])
    per_sample = -(y * np.log(p[:, 0]) + (1 - y) * np.log(1 - p[:, 0]))
    assert losses.binary_crossentropy(y, p) == pytest.approx(per_sample.mean())
    with pytest.raises(ValueError, match=r"labels of shape \(2,\) do not match the model output of shape \(3, 1\)"):
        losses.binary_crossentropy(np.array([1.0, 0.0]), p)


def finite_difference_gradient(loss, y, p, relative_step=1e-6):
    """Central differences of the mean loss, one prediction at a time (steps >= 1e-9)."""
    numeric = np.zeros_like(p)
    for index in np.ndindex(p.shape):
        step = np.zeros_like(p)
        step[index] = relative_step * max(abs(p[index]), 1e-3)
        numeric[index] = (loss(y, p + step) - loss(y, p - step)) / (2 * step[index])
    return numeric


@pytest.mark.parametrize("loss_name", ["binary_crossentropy", "mse", "categorical_crossentropy"])
def test_loss_gradients_match_finite_differences(rng, loss_name):
    loss = losses.get(loss_name)
    p = rng.uniform(0.05, 0.95, (4, 3))                 # CCE: not summing to 1, so renormalised
    if loss_name == "categorical_crossentropy":
        y = np.eye(3)[rng.integers(0, 3, 4)]
    else:
        y = (rng.random((4, 3)) > 0.5).astype(float)
    np.testing.assert_allclose(loss.gradient(y, p), finite_difference_gradient(loss, y, p), rtol=1e-5, atol=1e-9)


def test_categorical_crossentropy_gradient_through_the_clipped_path():
    """Keras renormalises then clips to [eps, 1 - eps]: a clipped prediction gets no gradient."""
    loss = losses.CategoricalCrossentropy()
    p = np.array([[1e-10, 0.3, 0.5],          # true class far below eps after renormalising: clipped
                  [0.2, 0.3, 0.5],            # ordinary sample
                  [1e-12, 2e-12, 0.9],        # true class above 1 - eps after renormalising: clipped
                  [0.6, 1e-11, 0.4]])         # a clipped wrong class does not matter
    y = np.eye(3)[[0, 1, 2, 0]]
    grad = loss.gradient(y, p)
    np.testing.assert_allclose(grad, finite_difference_gradient(loss, y, p), rtol=1e-5, atol=1e-9)
    np.testing.assert_array_equal(grad[[0, 2]], 0.0)
    assert np.all(grad[1] != 0)
    expected_value = np.mean([-np.log(1e-7), -np.log(0.3), -np.log(1 - 1e-7), -np.log(0.6 / (1 + 1e-11))])
    assert loss(y, p) == pytest.approx(expected_value, rel=1e-6)


@pytest.mark.parametrize("shape", [(5, 3), (2, 3, 4)])      # (B, T, K): the mean is over B*T (and K)
@pytest.mark.parametrize("loss_name", ["binary_crossentropy", "categorical_crossentropy"])
def test_logits_path_gradient(rng, loss_name, shape):
    loss = losses.get(loss_name)
    z = rng.standard_normal(shape)
    y = (np.eye(shape[-1])[rng.integers(0, shape[-1], shape[:-1])] if loss_name == "categorical_crossentropy"
         else (rng.random(shape) > .5) * 1.0)
    _, grad = loss.value_and_grad_from_logits(y, z)
    numeric = np.zeros_like(z)
    for index in np.ndindex(z.shape):
        step = np.zeros_like(z)
        step[index] = 1e-6
        numeric[index] = (loss.value_and_grad_from_logits(y, z + step)[0]
                          - loss.value_and_grad_from_logits(y, z - step)[0]) / 2e-6
    np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-9)


def test_unknown_names_are_clear_errors():
    with pytest.raises(ValueError, match="Unknown loss 'binary_crossentropyy'"):
        losses.get("binary_crossentropyy")
    with pytest.raises(ValueError, match="Unknown optimizer 'adamm'"):
        optimizers.get("adamm")
    with pytest.raises(ValueError, match="Unknown metric 'precision'"):
        metrics.get("precision", 1, "binary_crossentropy")


# ----------------------------------------------------------------- Adam / SGD
def test_adam_worked_example_from_the_spec():
    parameter = Parameter("p", np.array([1.0]))
    adam = optimizers.Adam(lr=1e-4, beta_1=0.9, beta_2=0.999, epsilon=1e-8, decay=0.0)
    parameter.grad = np.array([0.5])
    adam.apply_gradients([parameter])
    assert parameter.value[0] == pytest.approx(0.99990000006, abs=1e-11)
    adam.apply_gradients([parameter])
    assert parameter.value[0] == pytest.approx(0.99980000011, abs=1e-11)
    assert adam.iterations == 2


def test_adam_decay_and_state_roundtrip(rng):
    def run(steps, restore_after=None):
        parameter = Parameter("p", np.linspace(-1, 1, 6))
        adam = optimizers.Adam(learning_rate=0.01, decay=0.1)
        gradients = np.random.default_rng(0).standard_normal((steps, 6))
        for i, g in enumerate(gradients):
            parameter.grad = g
            adam.apply_gradients([parameter])
            if restore_after == i:
                state = adam.get_state()
                adam = optimizers.Adam(learning_rate=0.01, decay=0.1)
                adam.set_state(state)
        return parameter.value
    np.testing.assert_array_equal(run(5), run(5, restore_after=2))
    assert optimizers.Adam(learning_rate=0.5, decay=1.0).current_learning_rate() == 0.5


def test_sgd_momentum_matches_hand_computation():
    parameter = Parameter("p", np.array([1.0, 2.0]))
    sgd = optimizers.SGD(learning_rate=0.1, momentum=0.9)
    parameter.grad = np.array([1.0, -1.0])
    sgd.apply_gradients([parameter])           # v = -0.1 g
    sgd.apply_gradients([parameter])           # v = 0.9 * v - 0.1 g
    np.testing.assert_allclose(parameter.value, [1 - 0.1 - 0.19, 2 + 0.1 + 0.19])


def test_rmsprop_is_the_compile_default_and_matches_hand_computation(rng):
    parameter = Parameter("p", np.array([1.0, -2.0]))
    rmsprop = optimizers.RMSprop(learning_rate=0.01, rho=0.9, epsilon=1e-7)
    gradients = [np.array([0.5, -1.0]), np.array([0.2, 0.3])]
    expected, accumulator = parameter.value.copy(), np.zeros(2)
    for g in gradients:
        parameter.grad = g
        rmsprop.apply_gradients([parameter])
        accumulator = 0.9 * accumulator + 0.1 * g ** 2
        expected -= 0.01 * g / (np.sqrt(accumulator) + 1e-7)
    np.testing.assert_allclose(parameter.value, expected, rtol=1e-12)
    model = small_model()
    model.compile(loss="binary_crossentropy")
    assert isinstance(model.optimizer, optimizers.RMSprop)


# ----------------------------------------------------------------- metrics
def test_binary_accuracy_counts_half_as_class_zero():
    metric = metrics.get("accuracy", 1, "binary_crossentropy")
    metric.update(np.array([0, 1, 1, 0]), np.array([[0.5], [0.5001], [0.2], [0.7]]))
    assert metric.result() == pytest.approx(0.5)
    metric.update(np.array([1]), np.array([[0.9]]))
    assert metric.result() == pytest.approx(3 / 5)      # correct / seen over all updates


# ----------------------------------------------------------------- fit / evaluate / predict
def small_model(seed=0, dropout=0.0):
    np.random.seed(seed)
    x = Input(shape=(3,))
    h = Dense(8, activation="relu")(x)
    if dropout:
        h = Dropout(dropout, seed=seed)(h)
    return Model(x, Dense(1, activation="sigmoid")(h))


def toy_data(rng, n=10):
    x = rng.standard_normal((n, 3)).astype(np.float32)
    return x, (x[:, 0] + x[:, 1] > 0).astype(np.float32)


def test_epoch_loss_is_batch_size_weighted_mean_of_pre_update_losses(rng):
    x, y = toy_data(rng, 10)
    model = small_model()
    model.compile(optimizers.SGD(learning_rate=0.0), "binary_crossentropy", ["accuracy"])
    history = model.fit(x, y, batch_size=4, epochs=2, verbose=0, shuffle=True)   # batches 4, 4, 2
    loss, accuracy = model.evaluate(x, y, verbose=0)
    assert history.history["loss"] == pytest.approx([loss, loss], rel=1e-5)
    assert history.history["accuracy"] == pytest.approx([accuracy, accuracy])
    assert history.epoch == [0, 1]


def test_history_keys_follow_the_metric_name_as_written(rng):
    x, y = toy_data(rng)
    for name in ("accuracy", "acc"):
        model = small_model()
        model.compile("adam", "binary_crossentropy", [name])
        history = model.fit(x, y, epochs=3, batch_size=5, validation_data=(x, y), verbose=0)
        assert list(history.history) == ["loss", name, "val_loss", "val_" + name]
        assert all(len(v) == 3 for v in history.history.values())


def test_validation_runs_in_inference_mode(rng):
    x, y = toy_data(rng)
    model = small_model(dropout=0.9)
    model.compile(optimizers.SGD(learning_rate=0.0), "binary_crossentropy", ["accuracy"])
    history = model.fit(x, y, epochs=1, batch_size=5, validation_data=(x, y), verbose=0)
    val_loss, val_accuracy = model.evaluate(x, y, batch_size=3, verbose=0)
    assert history.history["val_loss"][0] == pytest.approx(val_loss, rel=1e-6)
    assert history.history["val_loss"][0] != pytest.approx(history.history["loss"][0], rel=1e-3)


def test_training_reduces_the_loss_and_uses_logits(rng):
    x, y = toy_data(rng, 64)
    model = small_model()
    model.compile(optimizers.Adam(learning_rate=0.05), "binary_crossentropy", ["accuracy"])
    assert model._logit_layer is model.layers[-1]
    history = model.fit(x, y, epochs=15, batch_size=16, verbose=0)
    assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]
    assert history.history["accuracy"][-1] >= 0.9


def test_model_gradient_through_the_logits_path_matches_finite_differences(rng):
    x, y = toy_data(rng, 6)
    model = small_model()
    model.compile("sgd", "binary_crossentropy")
    for parameter in model.weights:
        parameter.value = parameter.value.astype(np.float64)
    x = x.astype(np.float64)
    model.compute_gradients(x, y)
    for parameter in model.trainable_weights:
        analytic = parameter.grad.copy()
        numeric = np.zeros_like(parameter.value)
        for index in np.ndindex(parameter.shape):
            saved = parameter.value[index]
            parameter.value[index] = saved + 1e-6
            plus = model.loss(y, model.predict(x))
            parameter.value[index] = saved - 1e-6
            minus = model.loss(y, model.predict(x))
            parameter.value[index] = saved
            numeric[index] = (plus - minus) / 2e-6
        np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-8)


def test_saturated_sigmoid_still_gets_a_gradient():
    x = Input(shape=(1,))
    model = Model(x, Dense(1, activation="sigmoid", kernel_initializer="ones")(x))
    model.compile("sgd", "binary_crossentropy")
    loss, _ = model.compute_gradients(np.array([[40.0]], np.float32), np.array([0.0]))
    assert loss == pytest.approx(40.0, rel=1e-4)           # logit path: no clipping at 16.1
    assert model.layers[-1].kernel.grad[0, 0] == pytest.approx(40.0, rel=1e-4)


class CountingSequence:
    def __init__(self, x, y, batch_size):
        self.x, self.y, self.batch_size = x, y, batch_size
        self.epochs_ended = 0
        self.fetched = []

    def __len__(self):
        return math.ceil(len(self.x) / self.batch_size)

    def __getitem__(self, index):
        self.fetched.append(index)
        part = slice(index * self.batch_size, (index + 1) * self.batch_size)
        return self.x[part], self.y[part]

    def on_epoch_end(self):
        self.epochs_ended += 1


def test_fit_on_a_sequence_fetches_every_batch_once_per_pass(rng):
    x, y = toy_data(rng, 10)
    sequence = CountingSequence(x, y, 4)
    model = small_model()
    model.compile("adam", "binary_crossentropy", ["accuracy"])
    history = model.fit(sequence, epochs=2, verbose=0, workers=0)
    assert sorted(sequence.fetched) == [0, 0, 1, 1, 2, 2]
    assert sequence.epochs_ended >= 1
    assert len(history.history["loss"]) == 2


def test_fit_generator_warns_and_needs_steps(rng):
    x, y = toy_data(rng, 10)
    model = small_model()
    model.compile("adam", "binary_crossentropy", ["accuracy"])

    def generator():
        while True:
            yield x[:5], y[:5]
    with pytest.raises(ValueError, match="steps_per_epoch is required"):
        model.fit(generator(), epochs=1, verbose=0)
    with pytest.warns(UserWarning, match="`Model.fit_generator` is deprecated"):
        history = model.fit_generator(generator(), steps_per_epoch=3, epochs=2, verbose=0,
                                      validation_data=generator(), validation_steps=2)
    assert len(history.history["val_loss"]) == 2


def test_predict_batches_and_concatenates(rng):
    x, _ = toy_data(rng, 70)
    model = small_model()
    np.testing.assert_allclose(model.predict(x), model.predict(x, batch_size=7), rtol=1e-6)
    assert model.predict(x).shape == (70, 1)


def test_fit_errors_are_clear(rng):
    x, y = toy_data(rng, 10)
    model = small_model()
    with pytest.raises(RuntimeError, match="must be compiled before fit"):
        model.fit(x, y, verbose=0)
    model.compile("adam", "binary_crossentropy")
    with pytest.raises(ValueError, match="x has 10 samples but y has 9"):
        model.fit(x, y[:9], verbose=0)
    with pytest.raises(ValueError, match="labels of shape"):
        model.fit(x, np.zeros((10, 2)), verbose=0)


# ----------------------------------------------------------------- progress bar and callbacks
def test_progress_bar_final_line_matches_keras_format():
    stream = io.StringIO()
    bar = Progbar(13, stream=stream, stateful_metrics=["accuracy", "val_loss", "val_accuracy"])
    for step in range(1, 13):
        bar.update(step, [("loss", 0.5), ("accuracy", 0.8)])
    bar.update(13, [("loss", 0.6931), ("accuracy", 0.5077), ("val_loss", 0.6012), ("val_accuracy", 0.7)])
    lines = stream.getvalue().strip().splitlines()
    assert len(lines) == 1        # not a terminal: one line per epoch
    assert re.fullmatch(r"13/13 \[={30}\] - \d+s \d+(s|ms|us)/step - loss: 0\.\d{4} - accuracy: 0\.5077 "
                        r"- val_loss: 0\.6012 - val_accuracy: 0\.7000", lines[0]), lines[0]


def test_progress_bar_partial_bar_shape():
    bar = Progbar(13, stream=io.StringIO())
    assert bar._bar(7, False, bar.start + 7).startswith(" 7/13 [" + "=" * 15 + ">" + "." * 14 + "] - ETA: ")


def test_fit_prints_epochs_and_bar(rng, capsys):
    x, y = toy_data(rng, 10)
    model = small_model()
    model.compile("adam", "binary_crossentropy", ["accuracy"])
    model.fit(x, y, batch_size=5, epochs=2, verbose=1)
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "Epoch 1/2" and out[2] == "Epoch 2/2"
    assert re.match(r"2/2 \[={30}\] - .* - loss: \d\.\d{4} - accuracy: \d\.\d{4}$", out[1]), out[1]


def test_callbacks_early_stopping_csv_logger_scheduler(rng, tmp_path):
    x, y = toy_data(rng, 10)
    model = small_model()
    model.compile(optimizers.SGD(learning_rate=0.0), "binary_crossentropy", ["accuracy"])
    events = []

    class Recorder(Callback):
        def on_epoch_begin(self, epoch, logs=None):
            events.append(("begin", epoch, model.optimizer.learning_rate))

    stopper = EarlyStopping(monitor="loss", patience=2)
    # shuffle=False: the same batches every epoch, so the loss repeats to the last bit
    history = model.fit(x, y, epochs=10, batch_size=5, verbose=0, shuffle=False, callbacks=[
        LearningRateScheduler(lambda epoch: 0.0 * epoch), Recorder(), stopper,
        CSVLogger(tmp_path / "log.csv")])
    assert len(history.epoch) == 3            # loss never improves with lr 0: best at 0, stop after 2 more
    lines = (tmp_path / "log.csv").read_text().splitlines()
    assert lines[0] == "epoch,accuracy,loss,lr" and len(lines) == 4
    assert [e[1] for e in events] == [0, 1, 2]


def test_terminate_on_nan(rng):
    x, y = toy_data(rng, 10)
    x[3] = np.nan
    model = small_model()
    model.compile("adam", "binary_crossentropy")
    history = model.fit(x, y, epochs=5, batch_size=10, verbose=0, shuffle=False, callbacks=[TerminateOnNaN()])
    assert len(history.epoch) == 1


def test_validation_is_wrapped_in_test_hooks(rng):
    x, y = toy_data(rng, 10)
    model = small_model()
    model.compile("adam", "binary_crossentropy", ["accuracy"])
    events = []

    class Recorder(Callback):
        def on_train_batch_end(self, batch, logs=None): events.append("train")
        def on_test_begin(self, logs=None): events.append("test_begin")
        def on_test_batch_end(self, batch, logs=None): events.append("test")
        def on_test_end(self, logs=None): events.append("test_end")
        def on_epoch_end(self, epoch, logs=None): events.append("epoch_end")

    model.fit(x, y, batch_size=5, epochs=1, validation_data=(x, y), verbose=0, callbacks=[Recorder()])
    assert events == ["train", "train", "test_begin", "test", "test", "test_end", "epoch_end"]

