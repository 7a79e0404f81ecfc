"""prefetch: background batch production (Keras OrderedEnqueuer-like), no thread leaks."""
import threading
import time
import traceback

import numpy as np
import pytest

from minidl.preprocessing.image import ImageDataGenerator, prefetch


class RecordingSequence:
    """A Keras-style Sequence that records fetches and epoch ends."""

    def __init__(self, n_batches, delay=0.0, fail_at=None):
        self.n_batches = n_batches
        self.delay = delay
        self.fail_at = fail_at
        self.fetched = []
        self.epoch_ends = 0
        self.lock = threading.Lock()

    def __len__(self):
        return self.n_batches

    def __getitem__(self, index):
        if self.delay:
            time.sleep(self.delay * ((index * 7) % 3))  # uneven work: tests ordering
        if index == self.fail_at:
            raise_in_worker(index)
        with self.lock:
            self.fetched.append(index)
        return ("batch", self.epoch_ends, index)

    def on_epoch_end(self):
        self.epoch_ends += 1


def raise_in_worker(index):
    raise RuntimeError(f"broken batch {index}")


def _prefetch_threads():
    return [t for t in threading.enumerate() if t.name.startswith("minidl-prefetch")]


def test_sequence_passes_in_order_with_epoch_end():
    seq = RecordingSequence(5, delay=0.002)
    with prefetch(seq, max_queue_size=3, workers=3, passes=2) as batches:
        delivered = list(batches)
    assert [item[2] for item in delivered] == [0, 1, 2, 3, 4] * 2
    assert [item[1] for item in delivered[5:]] == [1] * 5  # second pass after on_epoch_end
    assert seq.epoch_ends == 2
    assert sorted(seq.fetched) == sorted(list(range(5)) * 2)


def test_shuffled_batch_order_covers_every_index_each_pass():
    import random
    random.seed(0)
    seq = RecordingSequence(8)
    with prefetch(seq, shuffle=True, passes=3) as batches:
        indices = [item[2] for item in batches]
    passes = [indices[i * 8:(i + 1) * 8] for i in range(3)]
    assert all(sorted(p) == list(range(8)) for p in passes)
    assert any(p != list(range(8)) for p in passes)


def test_plain_generator_source_and_end_of_stream():
    def generate():
        for i in range(6):
            yield i * i

    with prefetch(generate(), max_queue_size=2) as batches:
        assert list(batches) == [0, 1, 4, 9, 16, 25]


def test_worker_exception_is_reraised_with_traceback():
    seq = RecordingSequence(4, fail_at=2)
    batches = prefetch(seq, workers=2)
    assert next(batches)[2] == 0 and next(batches)[2] == 1
    with pytest.raises(RuntimeError, match="broken batch 2") as info:
        next(batches)
    assert "raise_in_worker" in "".join(traceback.format_tb(info.value.__traceback__))
    time.sleep(0.05)
    assert not _prefetch_threads()

    def failing_generator():
        yield 1
        raise_in_worker(99)

    with prefetch(failing_generator()) as batches:
        assert next(batches) == 1
        with pytest.raises(RuntimeError, match="broken batch 99"):
            next(batches)


def test_close_stops_threads_and_bounds_the_queue():
    before = len(_prefetch_threads())
    seq = RecordingSequence(1000)
    batches = prefetch(seq, max_queue_size=4, workers=2)
    next(batches)
    time.sleep(0.1)
    # production stays bounded by the queue: never the whole (infinite) stream
    assert len(seq.fetched) <= 1 + 4 + 2
    batches.close()
    assert len(_prefetch_threads()) == before == 0
    with pytest.raises(StopIteration):
        next(batches)
    batches.close()  # idempotent


def test_context_manager_and_infinite_stream_do_not_leak():
    for _ in range(3):
        with prefetch(RecordingSequence(3), workers=2) as batches:
            for _ in range(7):  # more than one pass: wraps forever until closed
                next(batches)
    assert not _prefetch_threads()


def test_invalid_arguments():
    with pytest.raises(ValueError, match="workers"):
        prefetch(RecordingSequence(2), workers=0)
    with pytest.raises(ValueError, match="max_queue_size"):
        prefetch(RecordingSequence(2), max_queue_size=0)


def test_prefetching_a_flow_iterator_gives_the_same_batches():
    x = np.arange(10 * 4 * 4 * 1, dtype=np.float32).reshape(10, 4, 4, 1)
    gen = ImageDataGenerator(rescale=0.5)
    direct = gen.flow(x, np.arange(10), batch_size=4, shuffle=False)
    expected = [direct[i][1].tolist() for i in range(len(direct))]
    with prefetch(gen.flow(x, np.arange(10), batch_size=4, shuffle=False), passes=1) as batches:
        got = [batch[1].tolist() for batch in batches]
    assert got == expected


def test_prefetch_lives_in_utils_and_keeps_its_image_pipeline_names():
    """fit() and the image pipeline share one prefetch (minidl/utils/prefetch.py); importing
    the old module path neither fails nor replaces the package's `prefetch` function."""
    import importlib

    import minidl.preprocessing.image as image
    from minidl.utils import prefetch as shared

    old_module = importlib.import_module("minidl.preprocessing.image.prefetch")
    assert image.prefetch is shared.prefetch and callable(image.prefetch)
    assert image.PrefetchIterator is shared.PrefetchIterator
    assert old_module.prefetch is shared.prefetch
