"""ModelCheckpoint writes only improving epochs, atomically, and the file reloads into the same model."""
import numpy as np
import pytest

from minidl import optimizers
from minidl.callbacks import Callback, ModelCheckpoint
from minidl.layers import Dense, Input
from minidl.models import Model, load_model


def model_and_data(rng):
    x = rng.standard_normal((20, 3)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.float32)
    inputs = Input(shape=(3,))
    model = Model(inputs, Dense(1, activation="sigmoid")(Dense(4, activation="relu")(inputs)))
    model.compile(optimizers.Adam(learning_rate=0.05), "binary_crossentropy", ["accuracy"])
    return model, x, y


def test_save_best_only_keeps_the_best_epoch(rng, tmp_path):
    model, x, y = model_and_data(rng)
    path = tmp_path / "best.h5"
    saved_at = []

    class WatchFile(Callback):
        def on_epoch_end(self, epoch, logs=None):
            if path.exists():
                saved_at.append((epoch, path.stat().st_mtime_ns, logs["val_loss"]))

    checkpoint = ModelCheckpoint(str(path), monitor="val_loss", save_best_only=True)
    history = model.fit(x, y, epochs=6, batch_size=5, validation_data=(x, y), verbose=0,
                        callbacks=[checkpoint, WatchFile()])
    best_epoch = int(np.argmin(history.history["val_loss"]))
    assert checkpoint.best == pytest.approx(min(history.history["val_loss"]))
    restored = load_model(path)
    # the file holds the weights of the best epoch: its validation loss is the best one
    loss, _ = restored.evaluate(x, y, verbose=0)
    assert loss == pytest.approx(history.history["val_loss"][best_epoch], rel=1e-5)
    assert not list(tmp_path.glob("*.tmp*")), "a temporary file was left behind"


def test_filepath_formatting_and_weights_only(rng, tmp_path):
    model, x, y = model_and_data(rng)
    model.fit(x, y, epochs=2, batch_size=10, verbose=0,
              callbacks=[ModelCheckpoint(str(tmp_path / "w-{epoch:02d}-{loss:.2f}.h5"), monitor="loss",
                                         save_weights_only=True)])
    names = sorted(p.name for p in tmp_path.glob("w-*.h5"))
    assert len(names) == 2 and names[0].startswith("w-01-") and names[1].startswith("w-02-")
    other, _, _ = model_and_data(rng)
    other.load_weights(tmp_path / names[1])
    for a, b in zip(other.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)
