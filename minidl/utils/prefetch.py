"""``prefetch``: produce batches in background threads while the model trains.

It lives in ``minidl.utils`` because two layers that must not know each other
use it: ``Model.fit`` (``minidl/models/training.py``) prefetches its batch
stream, and the image pipeline (``minidl.preprocessing.image``) exports it for
its iterators. Like all of ``minidl.utils`` it imports nothing else of minidl.

Keras 2.3.1 ``fit_generator`` wraps a ``Sequence`` in an ``OrderedEnqueuer``
(minidl/keras_semantics.md §2.5): on each pass it optionally shuffles the *batch order* with Python's
``random.shuffle``, fetches every index from a pool of ``workers`` threads,
keeps up to ``max_queue_size`` batches ready, delivers them in the order they
were requested, and calls ``sequence.on_epoch_end()`` after the pass.
``prefetch`` does the same; plain iterators/generators (anything with
``next()``) are pulled by the worker threads instead.

Why threads work here: the expensive parts of a batch -- PNG decoding and
resizing in Pillow, the Numba warp, NumPy arithmetic -- release the GIL.

Guarantees:

* a worker's exception is re-raised in the consumer (with its traceback);
* ``close()`` (or leaving a ``with`` block) stops and joins every thread;
* a Sequence pass fetches every index exactly once, in the order of delivery.

Example::

    with prefetch(train_iterator, max_queue_size=10, workers=2) as batches:
        for step in range(len(train_iterator)):
            batch_x, batch_y = next(batches)
"""
import queue
import random
import threading
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import wait as wait_for_futures

_END = object()  # marks the end of a finite stream


class _Failure:
    """An exception raised in a worker, carried to the consumer."""

    def __init__(self, error):
        self.error = error


def _is_sequence(source):
    return hasattr(source, "__len__") and hasattr(source, "__getitem__")


class PrefetchIterator:
    """Iterator over batches produced in background threads (see :func:`prefetch`)."""

    def __init__(self, source, max_queue_size=10, workers=1, shuffle=False, passes=None,
                 use_multiprocessing=False):
        if not isinstance(workers, int) or workers < 1:
            raise ValueError(f"prefetch: workers must be a positive integer, got {workers!r}")
        if not isinstance(max_queue_size, int) or max_queue_size < 1:
            raise ValueError("prefetch: max_queue_size must be a positive integer, "
                             f"got {max_queue_size!r}")
        if use_multiprocessing:
            raise NotImplementedError("prefetch(use_multiprocessing=True) is not implemented in minidl: it "
                                      "reads batches in threads (Pillow, Numba and NumPy release the GIL)")
        if not _is_sequence(source):
            for name, value, default in (("shuffle", shuffle, False), ("passes", passes, None)):
                if value != default:
                    raise ValueError(f"prefetch({name}={value!r}) needs a Sequence (len() and [i]); a "
                                     f"generator is read as it comes, once")
            if not hasattr(source, "__next__"):
                source = iter(source)
        self.source = source
        self.workers = workers
        self.shuffle = shuffle
        self.passes = passes
        # A Sequence has one producer; an iterator has one per worker, and each says when it
        # found the end: the stream ends when all have (a batch another worker took before
        # the end is still on its way).
        self._producers_left = 1 if _is_sequence(source) else workers
        self._queue = queue.Queue(maxsize=max_queue_size)
        self._stop = threading.Event()
        self._closed = False
        self._executor = None
        self._threads = []
        if _is_sequence(source):
            self._executor = ThreadPoolExecutor(max_workers=workers,
                                                thread_name_prefix="minidl-prefetch")
            self._threads.append(threading.Thread(target=self._run_sequence, daemon=True,
                                                  name="minidl-prefetch-producer"))
        else:
            self._source_lock = threading.Lock()
            for number in range(workers):
                self._threads.append(threading.Thread(target=self._run_iterator, daemon=True,
                                                      name=f"minidl-prefetch-{number}"))
        for thread in self._threads:
            thread.start()

    # ------------------------------------------------------------------ producers
    def _put(self, item):
        """Blocking put that gives up when the iterator is closed."""
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def _run_sequence(self):
        done_passes = 0
        try:
            while not self._stop.is_set():
                order = list(range(len(self.source)))
                if not order:  # an empty Sequence: nothing to deliver, ever
                    self._put(_END)
                    return
                if self.shuffle:
                    random.shuffle(order)
                futures = []
                for index in order:
                    if self._stop.is_set():
                        return
                    future = self._executor.submit(self.source.__getitem__, index)
                    futures.append(future)
                    if not self._put(future):
                        return
                # The pass is complete only when every batch is built: on_epoch_end
                # reshuffles the index array that in-flight batches still read.
                wait_for_futures(futures)
                if any(future.exception() is not None for future in futures):
                    return  # the consumer re-raises it when it reaches that batch
                if hasattr(self.source, "on_epoch_end"):
                    self.source.on_epoch_end()
                done_passes += 1
                if self.passes is not None and done_passes >= self.passes:
                    self._put(_END)
                    return
        except BaseException as error:  # noqa: BLE001 - everything goes to the consumer
            self._put(_Failure(error))

    def _run_iterator(self):
        while not self._stop.is_set():
            try:
                with self._source_lock:
                    item = next(self.source)
            except StopIteration:
                self._put(_END)
                return
            except BaseException as error:  # noqa: BLE001
                self._put(_Failure(error))
                return
            if not self._put(item):
                return

    # ------------------------------------------------------------------ consumer
    def __iter__(self):
        return self

    def __next__(self):
        while True:
            if self._closed:
                raise StopIteration
            try:
                item = self._queue.get(timeout=0.05)
                break
            except queue.Empty:
                if not any(thread.is_alive() for thread in self._threads) and self._queue.empty():
                    self.close()
                    raise StopIteration from None
        if item is _END:
            self._producers_left -= 1
            if self._producers_left > 0:
                return self.__next__()
            self.close()
            raise StopIteration
        if isinstance(item, _Failure):
            self.close()
            raise item.error
        if hasattr(item, "result"):  # a future from the Sequence path
            try:
                return item.result()
            except BaseException:
                self.close()
                raise
        return item

    next = __next__

    def close(self):
        """Stop the producers and join every thread (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        # Free producers blocked on a full queue.
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        for thread in self._threads:
            thread.join(timeout=30)
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001 - never raise from a finaliser
            pass


def prefetch(source, max_queue_size=10, workers=1, shuffle=False, passes=None,
             use_multiprocessing=False):
    """Produce batches of ``source`` in background threads.

    Args:
        source: a Keras-style Sequence (``len``, ``__getitem__``, optional
            ``on_epoch_end``) -- e.g. ``flow_from_directory``'s iterator -- or any
            iterator/generator.
        max_queue_size: batches kept ready ahead of the consumer (Keras default 10).
        workers: number of threads fetching batches (Keras default 1).
        shuffle: Sequence only (an error for a generator) -- shuffle the batch order of
            every pass with ``random.shuffle``, as Keras's training enqueuer does.
        passes: Sequence only (an error for a generator) -- stop after this many passes
            (None: forever).
        use_multiprocessing: False (Keras's default); True raises NotImplementedError:
            minidl reads batches in threads.

    Returns:
        A :class:`PrefetchIterator`; use it as a context manager or call ``close()``.
    """
    return PrefetchIterator(source, max_queue_size=max_queue_size, workers=workers,
                            shuffle=shuffle, passes=passes,
                            use_multiprocessing=use_multiprocessing)
