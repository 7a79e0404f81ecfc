"""ModelCheckpoint: save the model (or its weights) after epochs.

``filepath`` may contain ``{epoch:02d}`` and any logged value, e.g.
``'best-{epoch:02d}-{val_loss:.3f}.h5'``. With ``save_best_only=True`` a file
is written only when ``monitor`` improves (lower for ``*loss``, higher for
``*acc*``, or as ``mode`` says). Every file is written to a temporary name and
renamed into place, so an interruption never leaves a half-written
checkpoint.

Example::

    ModelCheckpoint("best.h5", monitor="val_loss", save_best_only=True)
"""
import math
import warnings

from minidl.callbacks.base import Callback


def improvement_test(monitor, mode, min_delta=0.0):
    """Return (is_better(current, best), starting best) for a monitored quantity."""
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
    if mode == "auto":
        mode = "max" if ("acc" in monitor or "auc" in monitor) else "min"
    if mode == "min":
        return (lambda current, best: current < best - min_delta), math.inf
    return (lambda current, best: current > best + min_delta), -math.inf


class ModelCheckpoint(Callback):
    def __init__(self, filepath, monitor="val_loss", verbose=0, save_best_only=False,
                 save_weights_only=False, mode="auto", period=1, save_freq="epoch"):
        super().__init__()
        self.filepath = str(filepath)
        self.monitor = monitor
        self.verbose = verbose
        self.save_best_only = save_best_only
        self.save_weights_only = save_weights_only
        self.period = int(period)
        if save_freq != "epoch":
            # Keras 2.3.1 has no save_freq; tf.keras 2.0-2.1 counts samples, 2.2+ batches.
            raise NotImplementedError(f"ModelCheckpoint(save_freq={save_freq!r}) is not implemented in minidl: "
                                      "it saves after epochs (save_freq='epoch'), every `period` epochs")
        self.save_freq = save_freq
        self.is_better, self.best = improvement_test(monitor, mode)
        self.epochs_since_last_save = 0

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        # Keras counts the epochs of this run (so with initial_epoch=1 and period=2 it saves
        # after the 2nd epoch run, epoch 3), not the epoch number.
        self.epochs_since_last_save += 1
        if self.epochs_since_last_save < self.period:
            return
        self.epochs_since_last_save = 0
        path = self.filepath.format(epoch=epoch + 1, **logs)
        if self.save_best_only:
            current = logs.get(self.monitor)
            if current is None:
                warnings.warn(f"ModelCheckpoint: '{self.monitor}' is not among the logged values "
                              f"{sorted(logs)}; nothing saved")
                return
            if not self.is_better(current, self.best):
                if self.verbose:
                    print(f"\nEpoch {epoch + 1}: {self.monitor} did not improve from {self.best:.5f}")
                return
            if self.verbose:
                print(f"\nEpoch {epoch + 1}: {self.monitor} improved from {self.best:.5f} to {current:.5f}, "
                      f"saving model to {path}")
            self.best = current
        elif self.verbose:
            print(f"\nEpoch {epoch + 1}: saving model to {path}")
        if self.save_weights_only:
            self.model.save_weights(path)
        else:
            self.model.save(path)
