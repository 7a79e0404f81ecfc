"""Callbacks: code that ``fit`` calls at fixed moments of training.

Override any of these hooks (all optional; ``logs`` is a dict of the current
values such as ``loss`` or ``val_accuracy``)::

    on_train_begin / on_train_end
    on_epoch_begin(epoch) / on_epoch_end(epoch, logs)
    on_train_batch_begin(batch) / on_train_batch_end(batch, logs)   (also on_batch_*)
    on_test_begin / on_test_end                 (around evaluate, and validation inside fit)
    on_test_batch_begin(batch) / on_test_batch_end(batch, logs)
    on_predict_begin / on_predict_end           (around predict)
    on_predict_batch_begin(batch) / on_predict_batch_end(batch, logs)   (logs["outputs"])

``self.model`` is the model being trained and ``self.params`` holds
``epochs``, ``steps`` and ``verbose``. Set ``self.model.stop_training = True``
to stop after the current batch.

Example::

    class PrintLoss(Callback):
        def on_epoch_end(self, epoch, logs=None):
            print(epoch, logs["loss"])
"""


class Callback:
    def __init__(self):
        self.model = None
        self.params = {}

    def set_model(self, model):
        self.model = model

    def set_params(self, params):
        self.params = params

    def on_train_begin(self, logs=None): pass
    def on_train_end(self, logs=None): pass
    def on_epoch_begin(self, epoch, logs=None): pass
    def on_epoch_end(self, epoch, logs=None): pass
    def on_batch_begin(self, batch, logs=None): pass
    def on_batch_end(self, batch, logs=None): pass

    def on_train_batch_begin(self, batch, logs=None):
        self.on_batch_begin(batch, logs)

    def on_train_batch_end(self, batch, logs=None):
        self.on_batch_end(batch, logs)

    def on_test_begin(self, logs=None): pass
    def on_test_end(self, logs=None): pass
    def on_test_batch_begin(self, batch, logs=None): pass
    def on_test_batch_end(self, batch, logs=None): pass
    def on_predict_begin(self, logs=None): pass
    def on_predict_end(self, logs=None): pass
    def on_predict_batch_begin(self, batch, logs=None): pass
    def on_predict_batch_end(self, batch, logs=None): pass


class CallbackList:
    """Calls the same hook on every callback, in order."""

    def __init__(self, callbacks, model, params):
        self.callbacks = list(callbacks)
        for callback in self.callbacks:
            if not isinstance(callback, Callback):
                raise TypeError(f"callbacks must be minidl.callbacks.Callback instances, got {type(callback).__name__}")
            callback.set_model(model)
            callback.set_params(params)

    def _call(self, hook, *args):
        for callback in self.callbacks:
            getattr(callback, hook)(*args)

    def on_train_begin(self, logs=None): self._call("on_train_begin", logs or {})
    def on_train_end(self, logs=None): self._call("on_train_end", logs or {})
    def on_epoch_begin(self, epoch, logs=None): self._call("on_epoch_begin", epoch, logs or {})
    def on_epoch_end(self, epoch, logs=None): self._call("on_epoch_end", epoch, logs or {})
    def on_train_batch_begin(self, batch, logs=None): self._call("on_train_batch_begin", batch, logs or {})
    def on_train_batch_end(self, batch, logs=None): self._call("on_train_batch_end", batch, logs or {})
    def on_test_begin(self, logs=None): self._call("on_test_begin", logs or {})
    def on_test_end(self, logs=None): self._call("on_test_end", logs or {})
    def on_test_batch_begin(self, batch, logs=None): self._call("on_test_batch_begin", batch, logs or {})
    def on_test_batch_end(self, batch, logs=None): self._call("on_test_batch_end", batch, logs or {})
    def on_predict_begin(self, logs=None): self._call("on_predict_begin", logs or {})
    def on_predict_end(self, logs=None): self._call("on_predict_end", logs or {})
    def on_predict_batch_begin(self, batch, logs=None): self._call("on_predict_batch_begin", batch, logs or {})
    def on_predict_batch_end(self, batch, logs=None): self._call("on_predict_batch_end", batch, logs or {})
