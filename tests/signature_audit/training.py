"""Checks of compile, fit, evaluate, predict, the *_generator and *_on_batch forms, save/load
(minidl/models/training.py).
"""
import functools
import threading

import numpy as np
import pytest

from minidl.callbacks import Callback
from minidl.models import Model, load_model
from minidl.optimizers import SGD, Adam
from signature_audit import (Batches, Recorder, X, Y, check, compiled_model, endless_batches, named_model,
                             not_implemented, spy_method, spy_prefetch, tiny_model)


@check("Model.compile", "optimizer")
def _(t):
    model = tiny_model()
    model.compile(optimizer="sgd", loss="binary_crossentropy")
    assert isinstance(model.optimizer, SGD)
    adam = Adam(1e-3)
    model.compile(optimizer=adam, loss="binary_crossentropy")
    assert model.optimizer is adam


@check("Model.compile", "loss")
def _(t):
    model = tiny_model(activation=None)
    model.compile(SGD(0.1), loss="mse")
    assert model.evaluate(X, Y, verbose=0) == pytest.approx(np.mean((model.predict(X)[:, 0] - Y) ** 2), rel=1e-5)


@check("Model.compile", "metrics")
def _(t):
    model = compiled_model(metrics=["acc"])
    assert model.metrics_names == ["loss", "acc"]
    assert set(model.fit(X, Y, verbose=0).history) == {"loss", "acc"}


@check("Model.compile", "loss_weights", "sample_weight_mode", "weighted_metrics", "target_tensors")
def _(t):
    for argument, value in [("loss_weights", [1.0]), ("sample_weight_mode", "temporal"),
                            ("weighted_metrics", ["accuracy"]), ("target_tensors", ["y"])]:
        with not_implemented("compile", argument, value):
            tiny_model().compile(SGD(0.1), "binary_crossentropy", **{argument: value})


@check("Model.fit", "x", "y")
def _(t):
    model = compiled_model()
    before = model.get_weights()
    history = model.fit(X, Y, verbose=0)
    assert not np.array_equal(model.get_weights()[0], before[0]) and len(history.history["loss"]) == 1


@check("Model.fit", "batch_size")
def _(t):
    recorder = Recorder()
    compiled_model().fit(X, Y, batch_size=3, verbose=0, callbacks=[recorder])
    assert recorder.count("on_train_batch_end") == 3                      # 3 + 3 + 2 samples


@check("Model.fit", "epochs")
def _(t):
    assert compiled_model().fit(X, Y, epochs=3, verbose=0).epoch == [0, 1, 2]


@check("Model.fit", "verbose")
def _(t):
    compiled_model().fit(X, Y, verbose=0)
    assert t.capsys.readouterr().out == ""
    compiled_model().fit(X, Y, verbose=2)
    out = t.capsys.readouterr().out
    assert out.startswith("Epoch 1/1\n") and "loss:" in out and "[" not in out


@check("Model.fit", "callbacks")
def _(t):
    recorder = Recorder()
    compiled_model().fit(X, Y, epochs=2, verbose=0, callbacks=[recorder])
    assert recorder.count("on_epoch_end") == 2 and recorder.count("on_train_begin") == 1


@check("Model.fit", "validation_split")
def _(t):
    recorder = Recorder()
    history = compiled_model().fit(X, Y, batch_size=2, validation_split=0.25, verbose=0, callbacks=[recorder])
    assert recorder.count("on_train_batch_end") == 3 and recorder.count("on_test_batch_end") == 1
    assert "val_loss" in history.history


@check("Model.fit", "validation_data")
def _(t):
    model = compiled_model()
    history = model.fit(X, Y, validation_data=(X[:4], Y[:4]), verbose=0)
    assert history.history["val_loss"][0] == pytest.approx(model.evaluate(X[:4], Y[:4], verbose=0)[0], rel=1e-6)


@check("Model.fit", "shuffle")
def _(t):
    import random
    random.seed(3)
    in_order, shuffled = Batches(batch_size=1), Batches(batch_size=1)
    compiled_model().fit(in_order, shuffle=False, workers=0, verbose=0)
    compiled_model().fit(shuffled, shuffle=True, workers=0, verbose=0)
    assert [i for i, _ in in_order.reads] == list(range(8))
    assert sorted(i for i, _ in shuffled.reads) == list(range(8)) != [i for i, _ in shuffled.reads]


@check("Model.fit", "initial_epoch")
def _(t):
    assert compiled_model().fit(X, Y, epochs=3, initial_epoch=2, verbose=0).epoch == [2]


@check("Model.fit", "steps_per_epoch")
def _(t):
    recorder = Recorder()
    compiled_model().fit(endless_batches(), steps_per_epoch=3, verbose=0, callbacks=[recorder])
    assert recorder.count("on_train_batch_end") == 3


@check("Model.fit", "validation_steps")
def _(t):
    recorder = Recorder()
    compiled_model().fit(X, Y, validation_data=endless_batches(), validation_steps=2, verbose=0,
                         callbacks=[recorder])
    assert recorder.count("on_test_batch_end") == 2


@check("Model.fit", "validation_freq")
def _(t):
    history = compiled_model().fit(X, Y, epochs=4, validation_data=(X, Y), validation_freq=2, verbose=0)
    assert len(history.history["val_loss"]) == 2
    history = compiled_model().fit(X, Y, epochs=3, validation_data=(X, Y), validation_freq=[1], verbose=0)
    assert len(history.history["val_loss"]) == 1


@check("Model.fit", "class_weight")
def _(t):
    with not_implemented("fit", "class_weight", {0: 1.0, 1: 2.0}):
        compiled_model().fit(X, Y, class_weight={0: 1.0, 1: 2.0}, verbose=0)


def reading_arguments(t, method):
    """Call ``method`` (fit, evaluate or predict) on a Sequence with max_queue_size=3,
    workers=2; return (the prefetcher's arguments, the names of the threads that read)."""
    made = spy_prefetch(t.monkeypatch)
    batches = Batches(with_labels=method != "predict")
    model = compiled_model()
    getattr(model, method)(batches, max_queue_size=3, workers=2, verbose=0)
    return made, {thread for _, thread in batches.reads}


@check("Model.fit", "max_queue_size", "workers")
@check("Model.evaluate", "max_queue_size", "workers")
@check("Model.predict", "max_queue_size", "workers")
def _(t):
    method = t.name.split(".")[1]
    made, threads = reading_arguments(t, method)
    assert [(m["max_queue_size"], m["workers"]) for m in made] == [(3, 2)]
    assert threading.current_thread().name not in threads
    batches = Batches(with_labels=method != "predict")
    getattr(compiled_model(), method)(batches, workers=0, verbose=0)            # in the calling thread
    assert {thread for _, thread in batches.reads} == {threading.current_thread().name}


@check("Model.fit", "use_multiprocessing")
@check("Model.evaluate", "use_multiprocessing")
@check("Model.predict", "use_multiprocessing")
def _(t):
    method = t.name.split(".")[1]
    with not_implemented(method, "use_multiprocessing", True):
        getattr(compiled_model(), method)(Batches(with_labels=method != "predict"), use_multiprocessing=True,
                                          verbose=0)


@check("Model.evaluate", "x", "y")
def _(t):
    model = compiled_model()
    p = np.clip(model.predict(X)[:, 0], 1e-7, 1 - 1e-7)
    loss, accuracy = model.evaluate(X, Y, verbose=0)
    assert loss == pytest.approx(np.mean(-(Y * np.log(p) + (1 - Y) * np.log(1 - p))), rel=1e-5)
    assert accuracy == np.mean((p > 0.5) == Y)


@check("Model.evaluate", "batch_size")
def _(t):
    recorder = Recorder()
    compiled_model().evaluate(X, Y, batch_size=3, verbose=0, callbacks=[recorder])
    assert recorder.count("on_test_batch_end") == 3


@check("Model.evaluate", "verbose")
def _(t):
    compiled_model().evaluate(X, Y, verbose=0)
    assert t.capsys.readouterr().out == ""
    compiled_model().evaluate(X, Y, verbose=1)
    assert "1/1 [==============================]" in t.capsys.readouterr().out


@check("Model.evaluate", "steps")
def _(t):
    recorder = Recorder()
    compiled_model().evaluate(Batches(), steps=2, verbose=0, callbacks=[recorder])
    assert recorder.count("on_test_batch_end") == 2


@check("Model.evaluate", "callbacks")
def _(t):
    recorder = Recorder()
    compiled_model().evaluate(X, Y, verbose=0, callbacks=[recorder])
    assert recorder.count("on_test_begin") == 1 and recorder.count("on_test_end") == 1


@check("Model.evaluate", "return_dict")
def _(t):
    values = compiled_model().evaluate(X, Y, verbose=0, return_dict=True)
    assert list(values) == ["loss", "accuracy"]


@check("Model.predict", "x")
def _(t):
    model = tiny_model()
    np.testing.assert_allclose(model.predict(X), model(X), rtol=1e-6)


@check("Model.predict", "batch_size")
def _(t):
    recorder = Recorder()
    tiny_model().predict(X, batch_size=3, callbacks=[recorder])
    assert recorder.count("on_predict_batch_end") == 3


@check("Model.predict", "verbose")
def _(t):
    tiny_model().predict(X, batch_size=4, verbose=1)
    assert "2/2 [==============================]" in t.capsys.readouterr().out


@check("Model.predict", "steps")
def _(t):
    assert tiny_model().predict(Batches(with_labels=False), steps=2).shape == (4, 1)


@check("Model.predict", "callbacks")
def _(t):
    recorder = Recorder()
    tiny_model().predict(X, callbacks=[recorder])
    assert recorder.count("on_predict_begin") == 1 and recorder.count("on_predict_end") == 1


GENERATOR_FORMS = {
    "fit_generator": ("fit", {"steps_per_epoch": 3, "epochs": 2, "verbose": 2, "callbacks": [Callback()],
                              "validation_data": (X, Y), "validation_steps": 2, "validation_freq": 2,
                              "class_weight": {0: 1.0}, "max_queue_size": 3, "workers": 2,
                              "use_multiprocessing": True, "shuffle": False, "initial_epoch": 1}),
    "evaluate_generator": ("evaluate", {"steps": 2, "callbacks": [Callback()], "max_queue_size": 3, "workers": 2,
                                        "use_multiprocessing": True, "verbose": 1}),
    "predict_generator": ("predict", {"steps": 2, "callbacks": [Callback()], "max_queue_size": 3, "workers": 2,
                                      "use_multiprocessing": True, "verbose": 1}),
}


def passes_on(t, form, parameter):
    """``Model.<form>`` gives ``parameter`` to fit/evaluate/predict (checked above) unchanged."""
    target, values = GENERATOR_FORMS[form]
    seen = spy_method(t.monkeypatch, Model, target)
    generator = endless_batches()
    arguments = {} if parameter == "generator" else {parameter: values[parameter]}
    assert getattr(tiny_model(), form)(generator, **arguments) == "recorded"
    assert seen["x"] is generator
    if parameter != "generator":
        assert seen[parameter] == values[parameter]


for form, (_, values) in GENERATOR_FORMS.items():
    for parameter in ["generator", *values]:
        check(f"Model.{form}", parameter)(functools.partial(passes_on, form=form, parameter=parameter))


@check("Model.train_on_batch", "x", "y")
def _(t):
    model = compiled_model()
    before = model.get_weights()[0]
    loss, _ = model.train_on_batch(X, Y)
    assert not np.array_equal(model.get_weights()[0], before)
    assert loss == pytest.approx(compiled_model_loss(before, model), rel=1e-5)


def compiled_model_loss(kernel, model):
    """The binary cross-entropy of ``model`` with ``kernel`` and its bias before the step (0)."""
    p = np.clip(1 / (1 + np.exp(-(X @ kernel)[:, 0])), 1e-7, 1 - 1e-7)
    return np.mean(-(Y * np.log(p) + (1 - Y) * np.log(1 - p)))


@check("Model.test_on_batch", "x", "y")
def _(t):
    model = compiled_model()
    before = model.get_weights()[0]
    loss, _ = model.test_on_batch(X, Y)
    np.testing.assert_array_equal(model.get_weights()[0], before)
    assert loss == pytest.approx(compiled_model_loss(before, model), rel=1e-5)


@check("Model.train_on_batch", "sample_weight", "class_weight")
@check("Model.test_on_batch", "sample_weight")
def _(t):
    method = t.name.split(".")[1]
    with not_implemented(method, "sample_weight", [1.0, 2.0]):
        getattr(compiled_model(), method)(X[:2], Y[:2], sample_weight=[1.0, 2.0])
    if method == "train_on_batch":
        with not_implemented(method, "class_weight", {0: 2.0}):
            compiled_model().train_on_batch(X, Y, class_weight={0: 2.0})


@check("Model.train_on_batch", "reset_metrics")
@check("Model.test_on_batch", "reset_metrics")
def _(t):
    model = compiled_model(learning_rate=0.0)
    right = (model.predict(X)[:, 0] > 0.5).astype("float32")
    method = getattr(model, t.name.split(".")[1])
    method(X, right)                                                  # accuracy 1
    assert method(X, 1 - right, reset_metrics=False)[1] == 0.5          # counted with the batch before
    assert method(X, 1 - right)[1] == 0.0


@check("Model.train_on_batch", "return_dict")
@check("Model.test_on_batch", "return_dict")
def _(t):
    result = getattr(compiled_model(), t.name.split(".")[1])(X, Y, return_dict=True)
    assert list(result) == ["loss", "accuracy"]


@check("Model.predict_on_batch", "x")
def _(t):
    model = tiny_model()
    np.testing.assert_allclose(model.predict_on_batch(X), model.predict(X), rtol=1e-6)


@check("Model.save", "filepath", "include_optimizer")
def _(t):
    model = compiled_model()
    model.save(t.tmp_path / "with.h5")
    model.save(t.tmp_path / "without.h5", include_optimizer=False)
    assert isinstance(load_model(t.tmp_path / "with.h5").optimizer, SGD)
    assert load_model(t.tmp_path / "without.h5").optimizer is None


@check("Model.save_weights", "filepath")
def _(t):
    model = tiny_model()
    model.save_weights(t.tmp_path / "w.h5")
    other = tiny_model()
    other.load_weights(t.tmp_path / "w.h5")
    np.testing.assert_array_equal(other.get_weights()[0], model.get_weights()[0])


@check("Model.save", "overwrite")
@check("Model.save_weights", "overwrite")
def _(t):
    path = t.tmp_path / "model.h5"
    path.write_bytes(b"keep me")
    answers = iter(["n"])
    t.monkeypatch.setattr("builtins.input", lambda prompt: next(answers))
    getattr(tiny_model(), t.name.split(".")[1])(path, overwrite=False)
    assert path.read_bytes() == b"keep me"                              # asked, answered no


@check("Model.load_weights", "filepath")
def _(t):
    source = tiny_model()
    source.save_weights(t.tmp_path / "w.h5")
    target = tiny_model()
    target.load_weights(t.tmp_path / "w.h5")
    np.testing.assert_array_equal(target.predict(X), source.predict(X))


@check("Model.load_weights", "by_name")
def _(t):
    named_model(3).save_weights(t.tmp_path / "w.h5")                   # one layer 'd0', kernel of ones
    target = named_model(3, 3)
    target.layers[1].kernel.value[:] = 5.0
    target.load_weights(t.tmp_path / "w.h5", by_name=True)             # by order it would not fit
    np.testing.assert_array_equal(target.get_layer("d0").kernel.value, 1.0)
    np.testing.assert_array_equal(target.get_layer("d1").kernel.value, 2.0)


@check("Model.load_weights", "skip_mismatch")
def _(t):
    named_model(3, 3).save_weights(t.tmp_path / "w.h5")
    target = named_model(3, 4)                                          # 'd1' has another shape
    with pytest.raises(ValueError, match="d1"):
        target.load_weights(t.tmp_path / "w.h5", by_name=True)
    with pytest.warns(UserWarning, match="Skipping loading of weights for layer 'd1'"):
        target.load_weights(t.tmp_path / "w.h5", by_name=True, skip_mismatch=True)
    np.testing.assert_array_equal(target.get_layer("d0").kernel.value, 1.0)
