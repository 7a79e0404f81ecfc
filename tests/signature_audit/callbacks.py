"""Checks of the callbacks and the progress bar."""
import csv
import io
import re

import numpy as np
import pytest

from minidl import weights as weight_files
from minidl.callbacks import (CSVLogger, EarlyStopping, LearningRateScheduler, ModelCheckpoint, Progbar,
                              ProgbarLogger, RecalibrateBatchNorm)
from minidl.layers import BatchNormalization, Input
from minidl.models import Model
from signature_audit import Recorder, X, Y, check, compiled_model, not_implemented, tiny_model


def epoch_end_calls(callback, values, model=None, key="val_loss"):
    """Run ``callback`` over epochs whose logs hold ``{key: value}``; return (model, epochs run)."""
    model = model or tiny_model()
    model.stop_training = False
    callback.set_model(model)
    callback.on_train_begin({})
    run = 0
    for epoch, value in enumerate(values):
        run += 1
        callback.on_epoch_end(epoch, {key: value})
        if model.stop_training:
            break
    callback.on_train_end({})
    return model, run


@check("ModelCheckpoint", "filepath")
def _(t):
    epoch_end_calls(ModelCheckpoint(str(t.tmp_path / "m-{epoch:02d}-{val_loss:.1f}.h5")), [0.5, 0.25])
    assert sorted(p.name for p in t.tmp_path.iterdir()) == ["m-01-0.5.h5", "m-02-0.2.h5"]


@check("ModelCheckpoint", "monitor", "save_best_only")
def _(t):
    callback = ModelCheckpoint(str(t.tmp_path / "m-{epoch}.h5"), monitor="acc", save_best_only=True)
    epoch_end_calls(callback, [0.5, 0.4, 0.7], key="acc")                  # 'acc': higher is better
    assert sorted(p.name for p in t.tmp_path.iterdir()) == ["m-1.h5", "m-3.h5"]


@check("ModelCheckpoint", "verbose")
def _(t):
    epoch_end_calls(ModelCheckpoint(str(t.tmp_path / "m.h5"), verbose=1), [0.5])
    assert f"Epoch 1: saving model to {t.tmp_path / 'm.h5'}" in t.capsys.readouterr().out


@check("ModelCheckpoint", "save_weights_only")
def _(t):
    epoch_end_calls(ModelCheckpoint(str(t.tmp_path / "w.h5"), save_weights_only=True), [0.5])
    epoch_end_calls(ModelCheckpoint(str(t.tmp_path / "m.h5")), [0.5])
    assert weight_files.read_model_file(t.tmp_path / "m.h5").model_config
    with pytest.raises(Exception, match="model"):
        weight_files.read_model_file(t.tmp_path / "w.h5")                   # weights only
    tiny_model().load_weights(t.tmp_path / "w.h5")


@check("ModelCheckpoint", "mode")
def _(t):
    callback = ModelCheckpoint(str(t.tmp_path / "m-{epoch}.h5"), save_best_only=True, mode="max")
    epoch_end_calls(callback, [0.5, 0.4, 0.7])                            # val_loss, but higher is better
    assert sorted(p.name for p in t.tmp_path.iterdir()) == ["m-1.h5", "m-3.h5"]


@check("ModelCheckpoint", "period")
def _(t):
    callback = ModelCheckpoint(str(t.tmp_path / "m-{epoch}.h5"), period=2)
    model = tiny_model()
    callback.set_model(model)
    for epoch in (1, 2, 3, 4):                                            # a run with initial_epoch=1
        callback.on_epoch_end(epoch, {})
    assert sorted(p.name for p in t.tmp_path.iterdir()) == ["m-3.h5", "m-5.h5"]   # every 2nd epoch run


@check("ModelCheckpoint", "save_freq")
def _(t):
    assert ModelCheckpoint("m.h5", save_freq="epoch").save_freq == "epoch"
    with not_implemented("ModelCheckpoint", "save_freq", 5):
        ModelCheckpoint("m.h5", save_freq=5)


@check("EarlyStopping", "monitor")
def _(t):
    assert epoch_end_calls(EarlyStopping(monitor="val_acc"), [0.1, 0.2, 0.3], key="val_acc")[1] == 3
    assert epoch_end_calls(EarlyStopping(monitor="val_acc"), [0.3, 0.2, 0.1], key="val_acc")[1] == 2


@check("EarlyStopping", "min_delta")
def _(t):
    assert epoch_end_calls(EarlyStopping(), [1.0, 0.95, 0.9])[1] == 3
    assert epoch_end_calls(EarlyStopping(min_delta=0.1), [1.0, 0.95, 0.9])[1] == 2


@check("EarlyStopping", "patience")
def _(t):
    assert epoch_end_calls(EarlyStopping(patience=2), [1.0, 2.0, 0.5, 3.0, 4.0, 5.0])[1] == 5


@check("EarlyStopping", "verbose")
def _(t):
    epoch_end_calls(EarlyStopping(verbose=1), [1.0, 2.0, 3.0])
    assert "Epoch 2: early stopping" in t.capsys.readouterr().out


@check("EarlyStopping", "mode")
def _(t):
    assert epoch_end_calls(EarlyStopping(mode="max"), [1.0, 0.5, 0.25])[1] == 2


@check("EarlyStopping", "baseline")
def _(t):
    assert epoch_end_calls(EarlyStopping(baseline=0.5), [0.8, 0.7])[1] == 1
    assert epoch_end_calls(EarlyStopping(), [0.8, 0.7])[1] == 2


@check("EarlyStopping", "restore_best_weights")
def _(t):
    model = tiny_model()
    callback = EarlyStopping(patience=1, restore_best_weights=True)
    callback.set_model(model)
    callback.on_train_begin({})
    for epoch, loss in enumerate([1.0, 0.5, 0.7]):
        model.get_layer("out").kernel.value[:] = epoch                    # the weights of this epoch
        callback.on_epoch_end(epoch, {"val_loss": loss})
    assert model.stop_training
    np.testing.assert_array_equal(model.get_layer("out").kernel.value, 1.0)  # epoch 1, the best


def csv_rows(path, separator=","):
    with open(path, newline="") as handle:
        return list(csv.reader(handle, delimiter=separator))


@check("CSVLogger", "filename")
def _(t):
    epoch_end_calls(CSVLogger(t.tmp_path / "log.csv"), [0.5, 0.25], key="loss")
    assert csv_rows(t.tmp_path / "log.csv") == [["epoch", "loss"], ["0", "0.5"], ["1", "0.25"]]


@check("CSVLogger", "separator")
def _(t):
    epoch_end_calls(CSVLogger(t.tmp_path / "log.csv", separator=";"), [0.5], key="loss")
    assert (t.tmp_path / "log.csv").read_text().splitlines() == ["epoch;loss", "0;0.5"]


@check("CSVLogger", "append")
def _(t):
    epoch_end_calls(CSVLogger(t.tmp_path / "log.csv"), [0.5], key="loss")
    epoch_end_calls(CSVLogger(t.tmp_path / "log.csv", append=True), [0.25], key="loss")
    assert csv_rows(t.tmp_path / "log.csv") == [["epoch", "loss"], ["0", "0.5"], ["0", "0.25"]]
    epoch_end_calls(CSVLogger(t.tmp_path / "log.csv"), [0.75], key="loss")
    assert csv_rows(t.tmp_path / "log.csv") == [["epoch", "loss"], ["0", "0.75"]]


@check("LearningRateScheduler", "schedule")
def _(t):
    model, recorder = compiled_model(), Recorder()
    model.fit(X, Y, epochs=2, verbose=0,
              callbacks=[LearningRateScheduler(lambda epoch, rate: rate / 10), recorder])
    assert [call[2]["lr"] for call in recorder.calls if call[0] == "on_epoch_end"] == pytest.approx([0.01, 0.001])
    model.fit(X, Y, verbose=0, callbacks=[LearningRateScheduler(lambda epoch: 0.5)])      # one argument
    assert model.optimizer.learning_rate == 0.5


@check("LearningRateScheduler", "verbose")
def _(t):
    compiled_model().fit(X, Y, verbose=0, callbacks=[LearningRateScheduler(lambda epoch: 0.25, verbose=1)])
    assert "Epoch 1: LearningRateScheduler setting learning rate to 0.25." in t.capsys.readouterr().out


@check("ProgbarLogger", "verbose")
def _(t):
    compiled_model().fit(X, Y, verbose=0, callbacks=[ProgbarLogger(verbose=2)])
    out = t.capsys.readouterr().out
    assert out.startswith("Epoch 1/1\n1/1 - ") and "[" not in out


class Terminal(io.StringIO):
    def isatty(self):
        return True


@check("Progbar", "target", "stream")
def _(t):
    stream = io.StringIO()
    Progbar(4, stream=stream).update(4)
    assert stream.getvalue().startswith("4/4 [==============================] - ")
    stream = io.StringIO()
    Progbar(None, stream=stream).update(3, finalize=True)
    assert stream.getvalue().startswith("      3/Unknown - ")
    assert t.capsys.readouterr().out == ""


@check("Progbar", "width")
def _(t):
    stream = io.StringIO()
    Progbar(4, width=10, stream=stream).update(4)
    assert stream.getvalue().startswith("4/4 [==========] - ")


@check("Progbar", "verbose")
def _(t):
    stream = io.StringIO()
    Progbar(4, verbose=2, stream=stream).update(4, [("loss", 0.5)])
    assert re.fullmatch(r"4/4 - 0s \d+us/step - loss: 0.5000\n", stream.getvalue())


@check("Progbar", "interval")
def _(t):
    counts = []
    for interval in (0.0, 100.0):
        stream = Terminal()
        bar = Progbar(10, interval=interval, stream=stream)
        for step in (1, 2, 3):
            bar.update(step)
        counts.append(stream.getvalue().count("\r"))
    assert counts == [3, 1]                                   # every update, or only the first


@check("Progbar", "stateful_metrics")
def _(t):
    shown = []
    for stateful in (None, ["acc"]):
        stream = io.StringIO()
        bar = Progbar(2, stateful_metrics=stateful, stream=stream)
        bar.update(1, [("acc", 1.0)])
        bar.update(2, [("acc", 0.0)])
        shown.append(stream.getvalue().split("acc: ")[1].strip())
    assert shown == ["0.5000", "0.0000e+00"]                   # averaged, or shown as given


@check("Progbar.update", "current", "values", "finalize")
def _(t):
    stream = io.StringIO()
    bar = Progbar(4, stream=stream)
    bar.update(1, [("loss", 1.0)])
    assert stream.getvalue() == ""                             # not a terminal: only final lines
    bar.update(2, [("loss", 0.5)], finalize=True)
    assert stream.getvalue().startswith("2/4 [==============>...............] - 0s")
    assert stream.getvalue().endswith(" - loss: 0.7500\n")


@check("RecalibrateBatchNorm", "batches")
def _(t):
    inputs = Input(shape=(3,))
    model = Model(inputs, BatchNormalization()(inputs))
    batches = [X[:4], X[4:]]
    callback = RecalibrateBatchNorm(batches)
    callback.set_model(model)
    callback.on_test_begin({})
    np.testing.assert_allclose(model.layers[1].moving_mean.value, X.mean(axis=0), rtol=1e-5, atol=1e-7)
