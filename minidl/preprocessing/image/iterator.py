"""``Iterator``: the Keras ``Sequence`` behaviour shared by ``flow`` and ``flow_from_directory``.

``minidl/keras_semantics.md`` §2.5 (keras-preprocessing 1.1.2 ``Iterator``):

* ``len(it) = ceil(n / batch_size)``; the last batch may be partial.
* ``it[idx]``: ``idx >= len`` raises ValueError; if ``seed`` is set the global RNG
  is reseeded with ``seed + total_batches_seen``; ``total_batches_seen += 1``;
  the index array is created lazily (a permutation if ``shuffle``); the batch is
  ``index_array[bs*idx : bs*(idx+1)]``.
* ``on_epoch_end()`` draws a new permutation; ``reset()`` only zeroes ``batch_index``.
* ``next(it)``: reseed (if ``seed``), new permutation when ``batch_index == 0``,
  consecutive slices, the partial tail batch on its own, then wrap -- forever.

The seed therefore governs both the shuffling and the augmentation draws of a batch,
because everything uses NumPy's global RNG.

Example::

    it = datagen.flow(x, y, batch_size=5)
    len(it); batch_x, batch_y = it[0]; batch_x, batch_y = next(it)
"""
import threading

import numpy as np


class Iterator:
    """Base class: subclasses implement ``_get_batches_of_transformed_samples(index_array)``."""

    white_list_formats = ("png", "jpg", "jpeg", "bmp", "ppm", "tif", "tiff")

    def __init__(self, n, batch_size, shuffle, seed):
        if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"{type(self).__name__}: batch_size must be a positive integer, "
                             f"got {batch_size!r}")
        self.n = n
        self.batch_size = int(batch_size)
        self.seed = seed
        self.shuffle = shuffle
        self.batch_index = 0
        self.total_batches_seen = 0
        self.lock = threading.Lock()
        self.index_array = None
        self.index_generator = self._flow_index()

    def _set_index_array(self):
        self.index_array = np.arange(self.n)
        if self.shuffle:
            self.index_array = np.random.permutation(self.n)

    def __getitem__(self, idx):
        if idx >= len(self):
            raise ValueError(f"Asked to retrieve element {idx}, but the Sequence has length "
                             f"{len(self)}")
        if self.seed is not None:
            np.random.seed(self.seed + self.total_batches_seen)
        self.total_batches_seen += 1
        if self.index_array is None:
            self._set_index_array()
        index_array = self.index_array[self.batch_size * idx:self.batch_size * (idx + 1)]
        return self._get_batches_of_transformed_samples(index_array)

    def __len__(self):
        return (self.n + self.batch_size - 1) // self.batch_size  # round up

    def on_epoch_end(self):
        """Called after each full pass: reshuffle."""
        self._set_index_array()

    def reset(self):
        """Restart ``next()`` at the first batch (a new permutation is drawn then)."""
        self.batch_index = 0

    def _flow_index(self):
        self.reset()
        while True:
            if self.seed is not None:
                np.random.seed(self.seed + self.total_batches_seen)
            if self.batch_index == 0:
                self._set_index_array()
            current_index = 0 if self.n == 0 else (self.batch_index * self.batch_size) % self.n
            if self.n > current_index + self.batch_size:
                self.batch_index += 1
            else:
                self.batch_index = 0
            self.total_batches_seen += 1
            yield self.index_array[current_index:current_index + self.batch_size]

    def __iter__(self):
        return self

    def __next__(self):
        return self.next()

    def next(self):
        """The next batch of the infinite stream."""
        with self.lock:
            index_array = next(self.index_generator)
        return self._get_batches_of_transformed_samples(index_array)

    def _get_batches_of_transformed_samples(self, index_array):
        raise NotImplementedError
