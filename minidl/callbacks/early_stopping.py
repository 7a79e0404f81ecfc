"""EarlyStopping: stop when a monitored value has stopped improving.

After ``patience`` epochs without an improvement larger than ``min_delta``,
training stops; with ``restore_best_weights=True`` the weights of the best
epoch are put back.

Example::

    EarlyStopping(monitor="val_loss", patience=3, restore_best_weights=True)
"""
import warnings

from minidl.callbacks.base import Callback
from minidl.callbacks.checkpoint import improvement_test


class EarlyStopping(Callback):
    def __init__(self, monitor="val_loss", min_delta=0.0, patience=0, verbose=0, mode="auto",
                 baseline=None, restore_best_weights=False):
        super().__init__()
        self.monitor = monitor
        self.min_delta = abs(min_delta)
        self.patience = int(patience)
        self.verbose = verbose
        self.baseline = baseline
        self.restore_best_weights = restore_best_weights
        self.mode = mode

    def on_train_begin(self, logs=None):
        self.is_better, self.best = improvement_test(self.monitor, self.mode, self.min_delta)
        if self.baseline is not None:
            self.best = self.baseline
        self.wait = 0
        self.stopped_epoch = 0
        self.best_weights = None

    def on_epoch_end(self, epoch, logs=None):
        current = (logs or {}).get(self.monitor)
        if current is None:
            warnings.warn(f"EarlyStopping: '{self.monitor}' is not among the logged values {sorted(logs or {})}")
            return
        if self.is_better(current, self.best):
            self.best = current
            self.wait = 0
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = epoch
            self.model.stop_training = True
            if self.restore_best_weights and self.best_weights is not None:
                if self.verbose:
                    print("Restoring model weights from the end of the best epoch.")
                self.model.set_weights(self.best_weights)

    def on_train_end(self, logs=None):
        if self.stopped_epoch and self.verbose:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping")
