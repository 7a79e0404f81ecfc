"""History (what ``fit`` returns) and ProgbarLogger (the progress bar).

``history.history`` maps each logged name to one value per epoch, e.g.
``{'loss': [...], 'accuracy': [...], 'val_loss': [...], 'val_accuracy': [...]}``
with the metric names as the user wrote them in ``compile``;
``history.epoch`` lists the epoch indices.
"""
from minidl.callbacks.base import Callback
from minidl.callbacks.progbar import Progbar


class History(Callback):
    def __init__(self):
        super().__init__()
        self.epoch = []
        self.history = {}

    def on_train_begin(self, logs=None):
        self.epoch = []
        self.history = {}

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for name, value in (logs or {}).items():
            self.history.setdefault(name, []).append(value)


class ProgbarLogger(Callback):
    """Prints ``Epoch i/n`` and the Keras progress bar."""

    def __init__(self, verbose=1):
        super().__init__()
        self.verbose = verbose
        self.progbar = None

    def on_epoch_begin(self, epoch, logs=None):
        print(f"Epoch {epoch + 1}/{self.params['epochs']}", flush=True)
        stateful = [n for n in self.params.get("metrics", []) if n not in ("loss", "val_loss")]
        self.progbar = Progbar(self.params["steps"], verbose=self.verbose, stateful_metrics=stateful)
        self.seen = 0

    def on_train_batch_end(self, batch, logs=None):
        self.seen = batch + 1
        values = [(k, v) for k, v in (logs or {}).items() if k not in ("batch", "size")]
        if self.seen < self.params["steps"]:
            self.progbar.update(self.seen, values)
        else:
            self._last_values = values

    def on_epoch_end(self, epoch, logs=None):
        values = [(k, v) for k, v in (logs or {}).items()]
        # The final line shows the epoch's values (loss already weighted by batch size).
        self.progbar.stateful_metrics.update(k for k, _ in values)
        self.progbar.update(self.seen, values, finalize=True)
