"""Metrics: numbers reported during training that the optimizer does not use.

``'accuracy'`` (or ``'acc'``) means, as in Keras:

* binary accuracy for a single sigmoid unit (or a binary cross-entropy loss):
  a prediction counts as class 1 when p > 0.5 (so p = 0.5 is class 0);
* categorical accuracy otherwise: argmax of the prediction equals argmax of
  the one-hot label.

A metric accumulates over an epoch: ``update(y_true, y_pred)`` adds this
batch's correct count and sample count, ``result()`` returns
correct / seen, ``reset()`` starts again -- Keras's stateful mean.

Example::

    metric = BinaryAccuracy("accuracy")
    metric.update(np.array([1, 0]), np.array([[0.9], [0.7]]))
    metric.result()     # 0.5
"""
import numpy as np

from minidl.losses import align_labels


class MeanMetric:
    """Running mean of per-sample values over an epoch."""

    def __init__(self, name):
        self.name = name
        self.reset()

    def reset(self):
        self.total = 0.0
        self.count = 0

    def per_sample(self, y_true, y_pred):
        raise NotImplementedError

    def update(self, y_true, y_pred):
        y_pred = np.asarray(y_pred)
        values = self.per_sample(align_labels(y_true, y_pred, f"metric '{self.name}'"), y_pred)
        self.total += float(np.sum(values))
        self.count += int(values.size)

    def result(self):
        return self.total / self.count if self.count else 0.0


class BinaryAccuracy(MeanMetric):
    def __init__(self, name="binary_accuracy", threshold=0.5):
        self.threshold = threshold
        super().__init__(name)

    def per_sample(self, y_true, y_pred):
        predicted = (y_pred > self.threshold).astype(y_true.dtype)
        return np.mean(predicted == y_true, axis=-1)


class CategoricalAccuracy(MeanMetric):
    def __init__(self, name="categorical_accuracy"):
        super().__init__(name)

    def per_sample(self, y_true, y_pred):
        return (np.argmax(y_true, axis=-1) == np.argmax(y_pred, axis=-1)).astype(np.float64)


_EXPLICIT = {"binary_accuracy": BinaryAccuracy, "categorical_accuracy": CategoricalAccuracy}


def get(identifier, output_units, loss_name):
    """Build the metric a user named in ``compile(metrics=[...])``.

    ``'accuracy'``/``'acc'`` resolve to binary or categorical accuracy from the
    output width and the loss, as Keras does; the metric keeps the user's name
    so ``history.history`` has ``accuracy`` or ``acc`` as written.
    """
    if isinstance(identifier, MeanMetric):
        return identifier
    if identifier in ("accuracy", "acc"):
        if output_units == 1 or loss_name == "binary_crossentropy":
            return BinaryAccuracy(identifier)
        return CategoricalAccuracy(identifier)
    if identifier in _EXPLICIT:
        return _EXPLICIT[identifier](identifier)
    raise ValueError(
        f"Unknown metric {identifier!r}; expected 'accuracy', 'acc', {sorted(_EXPLICIT)} or a MeanMetric")
