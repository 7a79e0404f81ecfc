"""Keras's training API on top of forward/backward: compile, fit, evaluate, predict.

One training step (``train_on_batch``), in the order Keras performs it
(minidl/keras_semantics.md §6.1)::

    outputs = model.forward(x, training=True)     # BN uses batch statistics, dropout on
    loss    = mean over the batch of loss(y, outputs)
    model.backward(dL/doutputs)                   # fills every Parameter.grad
    optimizer.apply_gradients(trainable weights)
    metrics.update(y, outputs)                    # from the pre-update forward pass

``predict`` runs ``model.forward(x, training=False)`` batch by batch. Both go through
``minidl/engine/``: on the reference path it calls exactly these ``Model`` methods; on
the numba path it runs the same graph with less memory traffic, for the same numbers.

When the model ends in a sigmoid (softmax) and the loss is binary
(categorical) cross-entropy, the loss is computed from the last layer's
logits z and backward starts from dL/dz = (sigmoid(z) - y) / B, as tf.keras
does: no log(0), no vanishing gradient when the sigmoid saturates.

An epoch's ``loss`` is the batch-size-weighted mean of the step losses; its
``accuracy`` is correct / seen over the epoch; validation runs afterwards in
inference mode (minidl/keras_semantics.md §6.2).
"""
import warnings
from contextlib import contextmanager

import numpy as np

from minidl import engine
from minidl import losses as losses_module
from minidl import metrics as metrics_module
from minidl import optimizers as optimizers_module
from minidl.models import data as data_module


class TrainingMixin:
    """compile / fit / evaluate / predict for :class:`~minidl.models.model.Model`."""

    def _init_training_state(self):
        self._compiled_trainable = []
        self.optimizer = None
        self.loss = None
        self.compiled_metrics = []
        self.stop_training = False
        self.history = None
        self._compile_args = None

    # ------------------------------------------------------------------ compile
    def compile(self, optimizer="rmsprop", loss=None, metrics=None, loss_weights=None,
                sample_weight_mode=None, weighted_metrics=None, target_tensors=None):
        """Choose the optimizer, the loss and the metrics to report.

        Keras 2's other arguments are for models with several outputs or weighted
        samples; minidl trains one output with unweighted samples, so they must stay None.
        """
        _refuse_unless_none("compile", loss_weights=loss_weights, sample_weight_mode=sample_weight_mode,
                            weighted_metrics=weighted_metrics, target_tensors=target_tensors)
        self._require_graph()
        if len(self.outputs) != 1:
            raise NotImplementedError(f"Model '{self.name}': training supports models with one output")
        if loss is None:
            raise ValueError(f"Model '{self.name}'.compile() needs a loss, e.g. loss='binary_crossentropy'")
        self.optimizer = optimizers_module.get(optimizer)
        self.loss = losses_module.get(loss)
        output_units = self.outputs[0].shape[-1]
        self.compiled_metrics = [metrics_module.get(m, output_units, self.loss.name) for m in (metrics or [])]
        self._logit_layer = self._find_logit_layer()
        self._compile_args = {"loss": self.loss.get_config(), "metrics": list(metrics or [])}
        self._compiled_trainable = self._trainable_setting()
        self._warned_about_trainable = False

    def _trainable_setting(self):
        """Every layer's own ``trainable`` flag, nested models' layers included."""
        return [(layer, layer._trainable) for layer in [self, *self.walk_layers(recursive=True)]]

    @contextmanager
    def _trainable_as_compiled(self):
        """Run a training step with the ``trainable`` flags compile() saw, as Keras 2 does.

        Keras 2 fixes what trains when the model is compiled: setting ``layer.trainable``
        afterwards takes effect at the next ``compile()``. minidl does the same, and says
        so once when it sees a flag that changed since.
        """
        changed = [(layer, flag) for layer, flag in self._compiled_trainable if layer._trainable != flag]
        if changed and not self._warned_about_trainable:
            self._warned_about_trainable = True
            warnings.warn(
                f"Model '{self.name}': `trainable` changed after compile() for {len(changed)} layer(s) "
                f"(first: '{changed[0][0].name}'). As in Keras 2, the change takes effect when you call "
                f"compile() again; until then training uses the setting compile() saw.", UserWarning,
                stacklevel=3)
        for layer, flag in changed:
            layer._trainable = flag
        try:
            yield
        finally:
            for layer, flag in changed:               # back to the flags as the user set them
                layer._trainable = not flag

    def _find_logit_layer(self):
        """The layer producing the output, if its activation matches the loss's logits."""
        layer = self.output_layer()
        activation = getattr(getattr(layer, "activation", None), "name", None)
        if self.loss.logit_activation is not None and activation == self.loss.logit_activation:
            return layer
        return None

    def _require_compiled(self, what):
        if self.optimizer is None or self.loss is None:
            raise RuntimeError(f"Model '{self.name}' must be compiled before {what}(): call model.compile(...)")

    @property
    def metrics_names(self):
        return ["loss"] + [m.name for m in self.compiled_metrics]

    # ------------------------------------------------------------------ one step
    def _loss_and_output_grad(self, y, outputs):
        """Loss value and the gradient to start backward with (dL/dz on the logits path)."""
        if self._logit_layer is not None and self._logit_layer.logits is not None:
            return self.loss.value_and_grad_from_logits(y, self._logit_layer.logits) + (True,)
        return self.loss(y, outputs), self.loss.gradient(y, outputs), False

    def compute_gradients(self, x, y, training=True):
        """Forward, loss and backward without updating: returns (loss, outputs).

        Afterwards every trainable parameter's ``grad`` holds dLoss/dParameter.
        """
        self._require_compiled("compute_gradients")
        for parameter in self.trainable_weights:
            parameter.grad = None
        outputs = engine.forward_for_training(self, x, training)
        loss, grad, from_logits = self._loss_and_output_grad(y, outputs)
        logit_layer = self._logit_layer if from_logits else None
        if logit_layer is not None:
            previous, logit_layer.backward_from_logits = logit_layer.backward_from_logits, True
        try:
            engine.backward_for_training(self, grad)
        finally:
            if logit_layer is not None:
                logit_layer.backward_from_logits = previous
        return loss, outputs

    def train_on_batch(self, x, y=None, sample_weight=None, class_weight=None, reset_metrics=True,
                       return_dict=False):
        """One optimisation step; returns the loss (and metrics) of the pre-update forward pass."""
        self._require_compiled("train_on_batch")
        _refuse_unless_none("train_on_batch", sample_weight=sample_weight, class_weight=class_weight)
        if reset_metrics:
            self.reset_metrics()
        x, y = self._standardize_batch(x, y)
        with self._trainable_as_compiled():
            loss, outputs = self.compute_gradients(x, y, training=True)
            self.optimizer.apply_gradients(self.trainable_weights)
        for metric in self.compiled_metrics:
            metric.update(y, outputs)
        return self._step_result(loss, return_dict)

    def test_on_batch(self, x, y=None, sample_weight=None, reset_metrics=True, return_dict=False):
        """Loss (and metrics) of one batch in inference mode; nothing is updated."""
        self._require_compiled("test_on_batch")
        _refuse_unless_none("test_on_batch", sample_weight=sample_weight)
        if reset_metrics:
            self.reset_metrics()
        x, y = self._standardize_batch(x, y)
        loss = self._evaluate_batch(x, y)
        return self._step_result(loss, return_dict)

    def predict_on_batch(self, x):
        return engine.forward_for_inference(self, self._standardize_x(x))

    def _evaluate_batch(self, x, y):
        outputs = engine.forward_for_inference(self, x)
        loss, _, _ = self._loss_and_output_grad(y, outputs)
        for metric in self.compiled_metrics:
            metric.update(y, outputs)
        return loss

    def _step_result(self, loss, return_dict):
        values = [float(loss)] + [m.result() for m in self.compiled_metrics]
        if return_dict:
            return dict(zip(self.metrics_names, values))
        return values[0] if len(values) == 1 else values

    def reset_metrics(self):
        for metric in self.compiled_metrics:
            metric.reset()

    @staticmethod
    def _standardize_x(x):
        """x as float arrays (integers and booleans become float32), a list for several inputs."""
        arrays = [np.asarray(a) for a in x] if isinstance(x, (list, tuple)) else [np.asarray(x)]
        arrays = [a if a.dtype.kind == "f" else a.astype(np.float32) for a in arrays]
        return arrays if isinstance(x, (list, tuple)) else arrays[0]

    def _standardize_batch(self, x, y):
        if y is None:
            raise ValueError(f"Model '{self.name}': training needs labels y, got None")
        x = self._standardize_x(x)
        y = np.asarray(y)
        batch = len(x[0]) if isinstance(x, list) else len(x)
        if len(y) != batch:
            raise ValueError(f"Model '{self.name}': got {batch} inputs but {len(y)} labels in a batch")
        return x, y

    # ------------------------------------------------------------------ fit
    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose=1, callbacks=None,
            validation_split=0.0, validation_data=None, shuffle=True, initial_epoch=0,
            steps_per_epoch=None, validation_steps=None, validation_freq=1, class_weight=None,
            max_queue_size=10, workers=1, use_multiprocessing=False):
        """Train for ``epochs`` epochs; returns a :class:`~minidl.callbacks.History`."""
        from minidl.callbacks import CallbackList, History, ProgbarLogger
        self._require_compiled("fit")
        _refuse_unless_none("fit", class_weight=class_weight)
        if shuffle == "batch":
            raise NotImplementedError("fit(shuffle='batch') is not implemented in minidl (it is for HDF5 "
                                      "arrays); use shuffle=True")
        batch_size = 32 if batch_size is None else int(batch_size)
        if x is None:
            raise ValueError(f"Model '{self.name}'.fit() needs training data x")
        x, y, validation_data = self._split_validation(x, y, validation_split, validation_data)
        steps = data_module.steps_for(x, batch_size, steps_per_epoch, "steps_per_epoch")
        reading = {"max_queue_size": max_queue_size, "workers": workers, "use_multiprocessing": use_multiprocessing}
        stream = self._batch_stream("fit", x, y, batch_size, shuffle, **reading)
        validation = None
        if validation_data is not None:
            val_x, val_y = self._validation_arrays(validation_data)
            val_steps = data_module.steps_for(val_x, batch_size, validation_steps, "validation_steps")
            validation = (self._batch_stream("fit", val_x, val_y, batch_size, False, **reading), val_steps)

        self.history = History()
        # Keras 2's order: the progress bar, the user's callbacks, then History (so it
        # records what they add to the logs, such as LearningRateScheduler's lr).
        callback_list = list(callbacks or []) + [self.history]
        if verbose:
            callback_list.insert(0, ProgbarLogger(verbose=verbose))
        callback_list = CallbackList(callback_list, model=self,
                                     params={"epochs": epochs, "steps": steps, "verbose": verbose,
                                             "metrics": self.metrics_names + (
                                                 ["val_" + n for n in self.metrics_names] if validation else [])})
        self.stop_training = False
        try:
            callback_list.on_train_begin()
            for epoch in range(initial_epoch, epochs):
                logs = self._run_epoch(epoch, stream, steps, validation, validation_freq, callback_list)
                callback_list.on_epoch_end(epoch, logs)
                if self.stop_training:
                    break
            callback_list.on_train_end()
        finally:
            for s in (stream, validation[0] if validation else None):
                if hasattr(s, "close"):
                    s.close()
        return self.history

    def _run_epoch(self, epoch, stream, steps, validation, validation_freq, callback_list):
        callback_list.on_epoch_begin(epoch)
        self.reset_metrics()
        loss_sum, seen = 0.0, 0
        for step in range(steps):
            batch = next(stream, None)
            if batch is None:
                warnings.warn(f"The training data ran out after {step} of {steps} steps in epoch {epoch + 1}")
                self.stop_training = True
                break
            batch_x, batch_y = data_module.split_batch(batch)
            callback_list.on_train_batch_begin(step)
            batch_x, batch_y = self._standardize_batch(batch_x, batch_y)
            loss = self.train_on_batch(batch_x, batch_y, reset_metrics=False)
            loss = loss[0] if isinstance(loss, list) else loss
            size = len(batch_y)
            loss_sum += loss * size
            seen += size
            logs = {"batch": step, "size": size, "loss": loss}
            logs.update({m.name: m.result() for m in self.compiled_metrics})
            callback_list.on_train_batch_end(step, logs)
            if self.stop_training:
                break
        epoch_logs = {"loss": loss_sum / max(seen, 1)}
        epoch_logs.update({m.name: m.result() for m in self.compiled_metrics})
        if validation is not None and _validates_after(epoch, validation_freq):
            val_values = self._evaluate_stream(validation[0], validation[1], callback_list)
            epoch_logs.update({"val_" + k: v for k, v in val_values.items()})
        return epoch_logs

    def _split_validation(self, x, y, validation_split, validation_data):
        if not validation_split:
            return x, y, validation_data
        if data_module.is_sequence(x) or data_module.is_iterator(x):
            raise ValueError("validation_split works with arrays only; pass validation_data for generators")
        count = len(x)
        split = int(count * (1.0 - validation_split))
        return x[:split], y[:split], (x[split:], y[split:])

    @staticmethod
    def _validation_arrays(validation_data):
        if isinstance(validation_data, tuple) and len(validation_data) in (2, 3):
            if len(validation_data) == 3 and validation_data[2] is not None:
                raise NotImplementedError("fit(validation_data=(x, y, sample_weight)) is not implemented in "
                                          "minidl: sample weights are not supported; pass (x, y)")
            return validation_data[0], validation_data[1]
        return validation_data, None

    @staticmethod
    def _batch_stream(caller, x, y, batch_size, shuffle, max_queue_size=10, workers=1, use_multiprocessing=False):
        """The batches of ``x`` (and ``y``) as Keras 2 reads them.

        Arrays are cut into batches in the loop itself. A Sequence or a generator is read
        ahead by ``workers`` background threads that keep up to ``max_queue_size`` batches
        ready while the model computes (``workers=0``: read in the loop, one batch at a time).
        """
        if use_multiprocessing:
            raise NotImplementedError(f"{caller}(use_multiprocessing=True) is not implemented in minidl: it "
                                      f"reads batches in threads (Pillow, Numba and NumPy release the GIL); "
                                      f"use workers=N")
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
            raise ValueError(f"{caller}(workers={workers!r}): workers must be an integer >= 0")
        if workers == 0 or not data_module.is_generated(x):
            return data_module.make_stream(x, y, batch_size, shuffle)
        from minidl.utils.prefetch import prefetch
        shuffle = bool(shuffle) and data_module.is_sequence(x)
        return prefetch(x, max_queue_size=max_queue_size, workers=workers, shuffle=shuffle)

    # ------------------------------------------------------------------ evaluate / predict
    def _evaluate_stream(self, stream, steps, callback_list=None, progress=None):
        """Batch-size-weighted loss and the metrics over ``steps`` batches (inference mode)."""
        if callback_list is not None:
            callback_list.on_test_begin()
        self.reset_metrics()
        loss_sum, seen = 0.0, 0
        for step in range(steps):
            batch = next(stream, None)
            if batch is None:
                break
            batch_x, batch_y = self._standardize_batch(*data_module.split_batch(batch))
            if callback_list is not None:
                callback_list.on_test_batch_begin(step, {"batch": step, "size": len(batch_y)})
            loss = self._evaluate_batch(batch_x, batch_y)
            loss_sum += loss * len(batch_y)
            seen += len(batch_y)
            running = {"loss": loss_sum / seen, **{m.name: m.result() for m in self.compiled_metrics}}
            if callback_list is not None:
                callback_list.on_test_batch_end(step, {"batch": step, "size": len(batch_y), **running})
            if progress is not None:
                progress.update(step + 1, list(running.items()))
        values = {"loss": loss_sum / max(seen, 1)}
        values.update({m.name: m.result() for m in self.compiled_metrics})
        if callback_list is not None:
            callback_list.on_test_end(dict(values))
        return values

    def evaluate(self, x=None, y=None, batch_size=None, verbose=1, steps=None, callbacks=None,
                 max_queue_size=10, workers=1, use_multiprocessing=False, return_dict=False):
        """Loss (and metrics) in inference mode: batch-size-weighted means.

        ``verbose=1`` draws a progress bar with the running values, ``verbose=2`` one line
        at the end; ``callbacks`` get ``on_test_begin``/``on_test_batch_*``/``on_test_end``.
        """
        self._require_compiled("evaluate")
        batch_size = 32 if batch_size is None else int(batch_size)
        steps = data_module.steps_for(x, batch_size, steps, "steps")
        callback_list = self._callback_list(callbacks, {"epochs": 1, "steps": steps, "verbose": verbose})
        progress = self._progress_bar(steps, verbose, stateful=self.metrics_names)
        stream = self._batch_stream("evaluate", x, y, batch_size, False, max_queue_size, workers,
                                    use_multiprocessing)
        try:
            values = self._evaluate_stream(stream, steps, callback_list, progress)
        finally:
            if hasattr(stream, "close"):
                stream.close()
        if return_dict:
            return values
        result = [values[n] for n in self.metrics_names]
        return result[0] if len(result) == 1 else result

    def predict(self, x, batch_size=None, verbose=0, steps=None, callbacks=None,
                max_queue_size=10, workers=1, use_multiprocessing=False):
        """Outputs for every sample, in inference mode, concatenated over batches.

        ``verbose=1`` draws a progress bar over the batches; ``callbacks`` get
        ``on_predict_begin``, ``on_predict_batch_begin/end`` (``logs["outputs"]``) and
        ``on_predict_end``, as in Keras 2.
        """
        self._require_graph()
        batch_size = 32 if batch_size is None else int(batch_size)
        if not data_module.is_generated(x):
            x = self._standardize_x(x)
        steps = data_module.steps_for(x, batch_size, steps, "steps")
        callback_list = self._callback_list(callbacks, {"epochs": 1, "steps": steps, "verbose": verbose})
        progress = self._progress_bar(steps, verbose) if verbose == 1 else None
        stream = self._batch_stream("predict", x, None, batch_size, False, max_queue_size, workers,
                                    use_multiprocessing)
        callback_list.on_predict_begin()
        try:
            outputs = self._predict_stream(stream, steps, callback_list, progress)
        finally:
            if hasattr(stream, "close"):
                stream.close()
        callback_list.on_predict_end()
        if not outputs:
            raise ValueError(f"Model '{self.name}'.predict() received no data")
        if isinstance(outputs[0], list):
            return [np.concatenate(parts) for parts in zip(*outputs)]
        return np.concatenate(outputs)

    def _predict_stream(self, stream, steps, callback_list, progress):
        outputs = []
        for step in range(steps):
            batch = next(stream, None)
            if batch is None:
                break
            batch_x, _ = data_module.split_batch(batch)
            size = len(batch_x[0]) if isinstance(batch_x, (list, tuple)) else len(batch_x)
            callback_list.on_predict_batch_begin(step, {"batch": step, "size": size})
            outputs.append(self.predict_on_batch(batch_x))
            callback_list.on_predict_batch_end(step, {"batch": step, "size": size, "outputs": outputs[-1]})
            if progress is not None:
                progress.update(step + 1)
        return outputs

    def _callback_list(self, callbacks, params):
        from minidl.callbacks import CallbackList
        return CallbackList(list(callbacks or []), model=self, params=params)

    @staticmethod
    def _progress_bar(steps, verbose, stateful=()):
        """Keras's progress bar over ``steps`` batches (None when ``verbose`` is 0)."""
        from minidl.callbacks import Progbar
        return Progbar(target=steps, verbose=verbose, stateful_metrics=stateful) if verbose else None

    # ------------------------------------------------------------------ Keras 2 aliases
    def fit_generator(self, generator, steps_per_epoch=None, epochs=1, verbose=1, callbacks=None,
                      validation_data=None, validation_steps=None, validation_freq=1, class_weight=None,
                      max_queue_size=10, workers=1, use_multiprocessing=False, shuffle=True, initial_epoch=0):
        _deprecated("fit_generator", "fit")
        return self.fit(generator, steps_per_epoch=steps_per_epoch, epochs=epochs, verbose=verbose,
                        callbacks=callbacks, validation_data=validation_data, validation_steps=validation_steps,
                        validation_freq=validation_freq, class_weight=class_weight, max_queue_size=max_queue_size,
                        workers=workers, use_multiprocessing=use_multiprocessing, shuffle=shuffle,
                        initial_epoch=initial_epoch)

    def evaluate_generator(self, generator, steps=None, callbacks=None, max_queue_size=10, workers=1,
                           use_multiprocessing=False, verbose=0):
        _deprecated("evaluate_generator", "evaluate")
        return self.evaluate(generator, steps=steps, verbose=verbose, callbacks=callbacks,
                             max_queue_size=max_queue_size, workers=workers,
                             use_multiprocessing=use_multiprocessing)

    def predict_generator(self, generator, steps=None, callbacks=None, max_queue_size=10, workers=1,
                          use_multiprocessing=False, verbose=0):
        _deprecated("predict_generator", "predict")
        return self.predict(generator, steps=steps, verbose=verbose, callbacks=callbacks,
                            max_queue_size=max_queue_size, workers=workers,
                            use_multiprocessing=use_multiprocessing)

    # ------------------------------------------------------------------ files
    def save_weights(self, filepath, overwrite=True):
        """Write the weights in minidl's HDF5 format (atomically).

        ``overwrite=False`` asks before replacing an existing file, as Keras 2 does.
        """
        from minidl.models import saving
        from minidl.utils.files import may_overwrite
        if may_overwrite(filepath, overwrite):
            saving.save_weights(self, filepath)

    def load_weights(self, filepath, by_name=False, skip_mismatch=False):
        """Load a minidl or Keras (legacy HDF5) weights file, by order or by name."""
        from minidl.models import saving
        return saving.load_weights(self, filepath, by_name=by_name, skip_mismatch=skip_mismatch)

    def save(self, filepath, overwrite=True, include_optimizer=True):
        """Write architecture, weights and optimizer state, so training can resume.

        ``overwrite=False`` asks before replacing an existing file, as Keras 2 does.
        """
        from minidl.models import saving
        from minidl.utils.files import may_overwrite
        if may_overwrite(filepath, overwrite):
            saving.save_model(self, filepath, include_optimizer=include_optimizer)

    def export(self, filepath, format="tf_saved_model", verbose=True, **kwargs):
        """Write the model for serving outside minidl (Keras 3's ``export``): ``format="onnx"``."""
        from minidl.models import saving
        return saving.export_model(self, filepath, format=format, verbose=verbose, **kwargs)


def _validates_after(epoch, validation_freq):
    """Keras 2: an integer validates every ``validation_freq`` epochs, a container after
    the epochs it lists (1-based, e.g. ``[1, 5, 10]``)."""
    if isinstance(validation_freq, int) and not isinstance(validation_freq, bool):
        if validation_freq < 1:
            raise ValueError(f"fit(validation_freq={validation_freq!r}): must be >= 1")
        return (epoch + 1) % validation_freq == 0
    try:
        return epoch + 1 in validation_freq
    except TypeError:
        raise ValueError(f"fit(validation_freq={validation_freq!r}): expected an integer or a list of "
                         f"epochs") from None


def _refuse_unless_none(function, **arguments):
    """NotImplementedError naming the first argument that minidl does not implement and was given."""
    for name, value in arguments.items():
        if value is not None:
            shown = f"<array of shape {np.shape(value)}>" if hasattr(value, "shape") else repr(value)
            raise NotImplementedError(f"{function}({name}={shown}) is not implemented in minidl")


def _deprecated(old, new):
    warnings.warn(f"`Model.{old}` is deprecated and will be removed in a future version. "
                  f"Please use `Model.{new}`, which supports generators.", UserWarning, stacklevel=3)
