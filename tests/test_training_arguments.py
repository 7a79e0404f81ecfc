"""fit / evaluate / predict do what their arguments say (issue 15): worker threads,
progress bars, callbacks, and a clear NotImplementedError for what minidl does not do."""
import threading

import numpy as np
import pytest

from minidl.callbacks import Callback
from minidl.layers import Dense, Input
from minidl.models import Model
from minidl.utils.prefetch import prefetch


def small_model(rng):
    inputs = Input(shape=(3,))
    model = Model(inputs, Dense(1, activation="sigmoid")(Dense(4, activation="relu")(inputs)))
    model.compile("sgd", "binary_crossentropy", ["accuracy"])
    return model


class NeedsConcurrentReaders:
    """A Sequence whose batches can only be built when ``readers`` threads build them at once."""

    def __init__(self, rng, batches=6, readers=3):
        self.x = rng.normal(size=(batches, 2, 3))
        self.y = (rng.random((batches, 2, 1)) > 0.5) * 1.0
        self.barrier = threading.Barrier(readers, timeout=5)
        self.threads = set()

    def __len__(self):
        return len(self.x)

    def __getitem__(self, index):
        self.threads.add(threading.current_thread().name)
        if index < self.barrier.parties:              # the first batches meet at the barrier
            self.barrier.wait()
        return self.x[index], self.y[index]


@pytest.mark.parametrize("method", ["fit", "evaluate", "predict"])
def test_workers_n_reads_a_sequence_with_n_threads(rng, method):
    model = small_model(rng)
    sequence = NeedsConcurrentReaders(rng, readers=3)
    getattr(model, method)(sequence, workers=3, verbose=0)
    assert len(sequence.threads) == 3 and threading.current_thread().name not in sequence.threads


def test_one_worker_cannot_meet_three_readers(rng):
    """The control for the test above: with one thread the barrier breaks."""
    model = small_model(rng)
    sequence = NeedsConcurrentReaders(rng, readers=3)
    sequence.barrier = threading.Barrier(3, timeout=0.5)
    with pytest.raises(threading.BrokenBarrierError):
        model.fit(sequence, workers=1, verbose=0)


def test_workers_zero_reads_in_the_calling_thread(rng):
    model = small_model(rng)
    sequence = NeedsConcurrentReaders(rng, readers=1)
    model.fit(sequence, workers=0, verbose=0)
    assert sequence.threads == {threading.current_thread().name}


@pytest.mark.parametrize("call", [
    lambda model, data: model.fit(data, use_multiprocessing=True, verbose=0),
    lambda model, data: model.evaluate(data, use_multiprocessing=True, verbose=0),
    lambda model, data: model.predict(data, use_multiprocessing=True),
])
def test_multiprocessing_is_refused_by_name(rng, call):
    with pytest.raises(NotImplementedError, match=r"use_multiprocessing=True\) is not implemented"):
        call(small_model(rng), NeedsConcurrentReaders(rng, readers=1))


def test_negative_workers_is_an_error(rng):
    with pytest.raises(ValueError, match=r"fit\(workers=-1\)"):
        small_model(rng).fit(NeedsConcurrentReaders(rng, readers=1), workers=-1, verbose=0)


def test_a_finite_generator_read_by_several_workers_delivers_every_batch():
    for _ in range(50):
        assert sorted(prefetch(iter(range(20)), max_queue_size=2, workers=4)) == list(range(20))


class Recorder(Callback):
    def __init__(self):
        super().__init__()
        self.calls = []

    def _record(self, hook, *args):
        self.calls.append((hook,) + args)

    def on_predict_begin(self, logs=None): self._record("predict_begin")
    def on_predict_end(self, logs=None): self._record("predict_end")
    def on_predict_batch_begin(self, batch, logs=None): self._record("predict_batch_begin", batch, logs["size"])
    def on_predict_batch_end(self, batch, logs=None): self._record("predict_batch_end", batch, logs["outputs"])
    def on_test_begin(self, logs=None): self._record("test_begin")
    def on_test_end(self, logs=None): self._record("test_end", logs["loss"])
    def on_test_batch_begin(self, batch, logs=None): self._record("test_batch_begin", batch)
    def on_test_batch_end(self, batch, logs=None): self._record("test_batch_end", batch, logs["loss"])


def test_predict_calls_the_predict_hooks_with_each_batch_outputs(rng):
    model = small_model(rng)
    x = rng.normal(size=(5, 3))
    recorder = Recorder()
    outputs = model.predict(x, batch_size=2, callbacks=[recorder])
    names = [call[0] for call in recorder.calls]
    assert names == ["predict_begin"] + ["predict_batch_begin", "predict_batch_end"] * 3 + ["predict_end"]
    assert [call[2] for call in recorder.calls if call[0] == "predict_batch_begin"] == [2, 2, 1]
    batch_outputs = [call[2] for call in recorder.calls if call[0] == "predict_batch_end"]
    np.testing.assert_array_equal(np.concatenate(batch_outputs), outputs)
    assert recorder.model is model


def test_evaluate_calls_the_test_hooks(rng):
    model = small_model(rng)
    x, y = rng.normal(size=(5, 3)), (rng.random((5, 1)) > 0.5) * 1.0
    recorder = Recorder()
    loss, _ = model.evaluate(x, y, batch_size=2, verbose=0, callbacks=[recorder])
    names = [call[0] for call in recorder.calls]
    assert names == ["test_begin"] + ["test_batch_begin", "test_batch_end"] * 3 + ["test_end"]
    assert recorder.calls[-1][1] == pytest.approx(loss)
    assert recorder.calls[-2][2] == pytest.approx(loss)        # the last batch's running loss is the result


def test_generator_forms_pass_callbacks_and_workers_on(rng):
    model = small_model(rng)
    recorder = Recorder()
    with pytest.warns(UserWarning, match="deprecated"):
        model.predict_generator(NeedsConcurrentReaders(rng, readers=3), workers=3, callbacks=[recorder])
    assert recorder.calls[0] == ("predict_begin",) and recorder.calls[-1] == ("predict_end",)
    with pytest.warns(UserWarning, match="deprecated"):
        model.evaluate_generator(NeedsConcurrentReaders(rng, readers=3), workers=3, callbacks=[recorder])
    assert recorder.calls[-1][0] == "test_end"


def test_predict_verbose_draws_the_progress_bar(rng, capsys):
    model = small_model(rng)
    x = rng.normal(size=(5, 3))
    model.predict(x, batch_size=2)
    assert capsys.readouterr().out == ""
    model.predict(x, batch_size=2, verbose=1)
    assert capsys.readouterr().out.startswith("3/3 [==============================] - ")


def test_evaluate_verbose_shows_the_returned_values(rng, capsys):
    model = small_model(rng)
    x, y = rng.normal(size=(5, 3)), (rng.random((5, 1)) > 0.5) * 1.0
    loss, accuracy = model.evaluate(x, y, batch_size=2, verbose=1)
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("3/3 [==============================] - ")
    assert line.endswith(f" - loss: {loss:.4f} - accuracy: {accuracy:.4f}")
    model.evaluate(x, y, batch_size=2, verbose=0)
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("call, named", [
    (lambda m, x, y: m.compile("sgd", "binary_crossentropy", loss_weights=[1.0]), r"compile\(loss_weights=\[1.0\]\)"),
    (lambda m, x, y: m.compile("sgd", "binary_crossentropy", sample_weight_mode="temporal"),
     r"compile\(sample_weight_mode='temporal'\)"),
    (lambda m, x, y: m.fit(x, y, class_weight={0: 1, 1: 5}, verbose=0), r"fit\(class_weight=\{0: 1, 1: 5\}\)"),
    (lambda m, x, y: m.fit(x, y, shuffle="batch", verbose=0), r"fit\(shuffle='batch'\)"),
    (lambda m, x, y: m.fit(x, y, validation_data=(x, y, np.ones(4)), verbose=0), r"validation_data=\(x, y, sample_weight"),
    (lambda m, x, y: m.train_on_batch(x, y, np.ones(4)), r"train_on_batch\(sample_weight=<array of shape \(4,\)>\)"),
    (lambda m, x, y: m.train_on_batch(x, y, class_weight={0: 2}), r"train_on_batch\(class_weight="),
    (lambda m, x, y: m.test_on_batch(x, y, np.ones(4)), r"test_on_batch\(sample_weight="),
    (lambda m, x, y: m.fit(iter([(x, y, np.ones(4))] * 2), steps_per_epoch=1, verbose=0, workers=0),
     r"\(x, y, sample_weight\) is not supported"),
])
def test_what_minidl_does_not_do_is_refused_by_name(rng, call, named):
    model = small_model(rng)
    x, y = rng.normal(size=(4, 3)), np.ones((4, 1))
    with pytest.raises(NotImplementedError, match=named):
        call(model, x, y)


def test_a_batch_with_sample_weight_none_is_fine(rng):
    model = small_model(rng)
    x, y = rng.normal(size=(4, 3)), np.ones((4, 1))
    history = model.fit(iter([(x, y, None)] * 2), steps_per_epoch=2, verbose=0)
    assert len(history.history["loss"]) == 1


def test_validation_freq_as_a_list_validates_after_those_epochs(rng):
    model = small_model(rng)
    x, y = rng.normal(size=(4, 3)), np.ones((4, 1))
    recorder = Recorder()
    model.fit(x, y, epochs=4, validation_data=(x, y), validation_freq=[1, 3], verbose=0, callbacks=[recorder])
    assert [name for name, *_ in recorder.calls].count("test_begin") == 2
    model.fit(x, y, epochs=4, validation_data=(x, y), validation_freq=2, verbose=0)
    assert len(model.history.history["val_loss"]) == 2


def test_the_logit_flag_is_restored_to_what_it_was(rng):
    model = small_model(rng)
    output_layer = model.output_layer()
    x, y = rng.normal(size=(4, 3)), np.ones((4, 1))
    output_layer.backward_from_logits = True         # set by the user before the step
    model.compute_gradients(x, y)
    assert output_layer.backward_from_logits is True
    output_layer.backward_from_logits = False
    model.compute_gradients(x, y)
    assert output_layer.backward_from_logits is False


@pytest.mark.parametrize("method", ["save", "save_weights"])
def test_overwrite_false_asks_before_replacing_a_file(rng, tmp_path, monkeypatch, capsys, method):
    model = small_model(rng)
    path = tmp_path / "model.h5"
    path.write_bytes(b"keep me")
    answers = iter(["maybe", "n"])
    monkeypatch.setattr("builtins.input", lambda prompt: next(answers))
    getattr(model, method)(str(path), overwrite=False)
    assert path.read_bytes() == b"keep me"                       # asked twice, then told no
    monkeypatch.setattr("builtins.input", lambda prompt: "y")
    getattr(model, method)(str(path), overwrite=False)
    assert path.read_bytes() != b"keep me" and "overwrite=True" in capsys.readouterr().out
    monkeypatch.setattr("builtins.input", lambda prompt: pytest.fail("asked although overwrite=True"))
    getattr(model, method)(str(path))
