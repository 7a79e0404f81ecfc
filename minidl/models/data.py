"""Turn what ``fit``/``evaluate``/``predict`` receive into a stream of batches.

Three kinds of data, as in Keras:

* NumPy arrays ``x`` (and ``y``): cut into batches of ``batch_size``,
  reshuffled every epoch when ``shuffle=True``; the last batch may be smaller;
* a **Sequence** -- anything with ``len()`` and ``[i]`` such as the iterator
  ``flow_from_directory`` returns: one pass fetches every batch once (in a
  random batch order when ``shuffle=True``, like Keras's ``OrderedEnqueuer``),
  then calls ``on_epoch_end()``; passes follow each other forever;
* a plain **iterator/generator** yielding ``(x, y)`` (or ``x``): ``next()``
  is called once per step.

The stream is infinite and independent of epochs: ``steps_per_epoch`` only
says how many batches make an epoch (minidl/keras_semantics.md §2.5).
"""
import math
import random

import numpy as np


def is_sequence(data):
    return hasattr(data, "__len__") and hasattr(data, "__getitem__") and not isinstance(
        data, (np.ndarray, list, tuple, dict))


def is_iterator(data):
    return hasattr(data, "__next__") or (hasattr(data, "__iter__") and not isinstance(
        data, (np.ndarray, list, tuple, dict)) and not is_sequence(data))


def is_generated(data):
    """True for Sequences and iterators, whose batches cost time to produce."""
    return is_sequence(data) or is_iterator(data)


def array_batches(x, y, batch_size, shuffle):
    """Infinite stream of (x_batch, y_batch) over arrays, one permutation per pass."""
    count = _num_samples(x)
    while True:
        order = np.random.permutation(count) if shuffle else np.arange(count)
        for start in range(0, count, batch_size):
            index = order[start:start + batch_size]
            yield _take(x, index), (None if y is None else _take(y, index))


def sequence_batches(sequence, shuffle):
    """Infinite stream over a Sequence: every batch once per pass, then on_epoch_end()."""
    while True:
        order = list(range(len(sequence)))
        if shuffle:
            random.shuffle(order)
        for index in order:
            yield sequence[index]
        if hasattr(sequence, "on_epoch_end"):
            sequence.on_epoch_end()


def iterator_batches(iterator):
    iterator = iter(iterator)
    while True:
        try:
            yield next(iterator)
        except StopIteration:
            return


def split_batch(batch):
    """A generator may yield ``x``, ``(x,)``, ``(x, y)`` or ``(x, y, None)``.

    Keras 2 also accepts ``(x, y, sample_weight)``; minidl does not weight samples, so
    a batch that carries weights is an error rather than weights quietly ignored.
    """
    if isinstance(batch, tuple):
        if len(batch) == 1:
            return batch[0], None
        if len(batch) == 3 and batch[2] is not None:
            raise NotImplementedError("a batch (x, y, sample_weight) is not supported in minidl: sample "
                                      "weights are not implemented; yield (x, y)")
        if len(batch) in (2, 3):
            return batch[0], batch[1]
        raise ValueError(f"a batch must be x, (x,), (x, y) or (x, y, sample_weight); got a tuple of {len(batch)}")
    return batch, None


def _num_samples(x):
    if isinstance(x, (list, tuple)):
        return len(x[0])
    return len(x)


def _take(x, index):
    if isinstance(x, (list, tuple)):
        return [np.asarray(a)[index] for a in x]
    return np.asarray(x)[index]


def steps_for(data, batch_size, steps, what):
    """How many batches make one epoch of ``data``."""
    if steps is not None:
        if int(steps) <= 0:
            raise ValueError(f"{what} must be a positive integer, got {steps!r}")
        return int(steps)
    if is_sequence(data):
        return len(data)
    if is_iterator(data):
        raise ValueError(f"{what} is required when the data is a generator or iterator (it has no length)")
    return math.ceil(_num_samples(data) / batch_size)


def make_stream(x, y, batch_size, shuffle):
    """Choose the right batch stream for ``x`` (arrays, Sequence or iterator)."""
    if is_sequence(x):
        return sequence_batches(x, shuffle)
    if is_iterator(x):
        return iterator_batches(x)
    if y is not None and _num_samples(x) != _num_samples(y):
        raise ValueError(f"x has {_num_samples(x)} samples but y has {_num_samples(y)}; they must match")
    return array_batches(x, y, batch_size, shuffle)
