"""CSVLogger, TerminateOnNaN and LearningRateScheduler.

* ``CSVLogger('history.csv')`` writes one row per epoch (``epoch`` then the
  logged values), flushing after each row so a crash keeps what was done.
* ``TerminateOnNaN()`` stops training when a batch loss is NaN or infinite.
* ``LearningRateScheduler(schedule)`` sets ``optimizer.learning_rate =
  schedule(epoch, current_lr)`` at the start of every epoch.
"""
import csv
import math
import os

from minidl.callbacks.base import Callback


class CSVLogger(Callback):
    def __init__(self, filename, separator=",", append=False):
        super().__init__()
        self.filename = str(filename)
        self.separator = separator
        self.append = append
        self.file = None
        self.writer = None
        self.keys = None

    def on_train_begin(self, logs=None):
        exists = self.append and os.path.exists(self.filename) and os.path.getsize(self.filename) > 0
        self.file = open(self.filename, "a" if self.append else "w", newline="")
        self.writer = None
        self.keys = None
        self._has_header = exists

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.keys is None:
            self.keys = sorted(logs)
            self.writer = csv.DictWriter(self.file, fieldnames=["epoch"] + self.keys, delimiter=self.separator)
            if not self._has_header:
                self.writer.writeheader()
        self.writer.writerow({"epoch": epoch, **{k: logs.get(k, "NA") for k in self.keys}})
        self.file.flush()

    def on_train_end(self, logs=None):
        if self.file is not None:
            self.file.close()
            self.file = None


class TerminateOnNaN(Callback):
    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and (math.isnan(loss) or math.isinf(loss)):
            print(f"Batch {batch}: invalid loss, terminating training")
            self.model.stop_training = True


class LearningRateScheduler(Callback):
    def __init__(self, schedule, verbose=0):
        super().__init__()
        self.schedule = schedule
        self.verbose = verbose

    def on_epoch_begin(self, epoch, logs=None):
        optimizer = self.model.optimizer
        try:
            new_rate = self.schedule(epoch, optimizer.learning_rate)
        except TypeError:
            new_rate = self.schedule(epoch)
        optimizer.learning_rate = float(new_rate)
        if self.verbose:
            print(f"\nEpoch {epoch + 1}: LearningRateScheduler setting learning rate to {new_rate}.")

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["lr"] = self.model.optimizer.learning_rate
