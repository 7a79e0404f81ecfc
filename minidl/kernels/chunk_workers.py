"""Share a convolution's chunks between the cores: each chunk start to finish on one core.

A convolution works in chunks of output rows (``minidl/kernels/conv.py``): im2col of the
chunk, its matrix product, and at inference batch norm + ReLU on the result (the
epilogue). Run one chunk after the other, each of those steps is split over both cores:
Numba's threads for im2col, OpenBLAS's threads for the product. So every step wakes a
thread pool and waits for it at the end -- hundreds of times per image -- and each chunk
is cut in halves that travel between the two cores' caches.

Here the cores take *whole chunks* instead. Two threads (the caller and one helper
thread) each take the next chunk that nobody has taken and run all of its steps alone:
a single-threaded im2col, a single-threaded product, the epilogue. The chunk stays in
that core's cache and nobody waits between steps. Chunks write disjoint rows of the
output, so no locks are needed; and each chunk's numbers do not depend on which thread
ran it, so results are the same from run to run.

Measured on the project's 2-core VM, InceptionV3 shapes at batch 5 (forward + batch norm
+ ReLU, medians of 21 alternated runs; both ways chunked):

    147x147x32 -> 64, 3x3:   42.4 -> 33.3 ms
    149x149x32 -> 32, 3x3:   25.0 -> 19.7 ms
    71x71 (73 valid) 80 -> 192, 3x3:  52.7 -> 47.0 ms
    35x35x64 -> 96, 3x3:      6.2 ->  5.4 ms

A layer with a single chunk (the 8x8 layers) keeps one multi-threaded product: one
thread alone would leave the other core idle.

Backward (:func:`for_each_half`) splits a layer's rows in two fixed halves instead, one
per thread, because its sums must come out the same every run (see conv.py for the rows
both halves touch). Only layers with 4 or more chunks are split; with fewer, one half
waits for the other's single long product (17x17x160, 1x7: 10.6 -> 15.7 ms when split
anyway, before the halves were chunked on their own). InceptionV3's training step, A/B
in one process, 12 alternated rounds: 2.236 -> 2.094 s with the backward split (forward
sharing alone changed the training step by less than the noise: 2.111 -> 2.095 s).

It is used when it can be: the Numba kernel path, more than one Numba thread, a Numba
threading layer that may be entered from two threads at once (OpenMP or TBB, not
workqueue), and an OpenBLAS whose thread count minidl can set (``minidl/threads.py``).
Otherwise, or with ``MINIDL_SHARE_CHUNKS=0``, the chunks run one after the other.

Example::

    def process(chunk, buffer):             # runs on either thread
        ...
    for_each_chunk(chunks, lambda: np.empty(size, dtype), process)
"""
import itertools
import os
import threading
from concurrent.futures import ThreadPoolExecutor

from minidl import config, threads

_helper = []            # [ThreadPoolExecutor with one thread], made on first use
_helper_lock = threading.Lock()


def sharing_available():
    """True when chunks can run on two threads at once (see the module docstring)."""
    if os.environ.get("MINIDL_SHARE_CHUNKS", "1").strip() == "0":
        return False
    if config.kernel_path() != "numba":
        return False
    import numba
    if numba.get_num_threads() < 2 or not threads.can_set_blas_threads():
        return False
    try:
        layer = numba.threading_layer()
    except ValueError:           # no parallel kernel has run yet: the layer is not chosen
        return False
    return layer in ("omp", "tbb")


def for_each_chunk(chunks, make_buffer, process):
    """Call ``process(chunk, buffer)`` for every chunk, each thread with its own buffer.

    With two or more chunks and sharing available, the caller and a helper thread take
    chunks in turn; otherwise the caller runs them in order. Returns when all are done;
    an exception in either thread is raised here.
    """
    if len(chunks) < 2 or not sharing_available():
        buffer = make_buffer()
        for chunk in chunks:
            process(chunk, buffer)
        return
    next_index = itertools.count()   # next() on it is atomic under the GIL
    failed = threading.Event()

    def take_chunks():
        buffer = make_buffer()
        while not failed.is_set():
            index = next(next_index)
            if index >= len(chunks):
                return
            try:
                process(chunks[index], buffer)
            except BaseException:
                failed.set()
                raise

    _on_two_threads(take_chunks, take_chunks)


def for_each_half(chunks, middle, process_half):
    """Run ``process_half(half, previous)`` on ``chunks[:middle]`` (the caller) and on
    ``chunks[middle:]`` (a helper thread) at the same time.

    ``previous`` is the chunk just before the half (None for the first), so that a half can
    tell which of its chunks touch the same memory as the other half's last chunk (the
    convolution's backward adds overlapping input rows). Returns the list of the halves'
    results, in order; a single result, of all chunks in turn (previous None), when
    ``middle`` is None or sharing is not available. Unlike :func:`for_each_chunk` the split
    is fixed, so sums made per half are added in the same order every run.
    """
    if middle is None or not 0 < middle < len(chunks) or not sharing_available():
        return [process_half(chunks, None)]
    results = [None, None]

    def first_half():
        results[0] = process_half(chunks[:middle], None)

    def second_half():
        results[1] = process_half(chunks[middle:], chunks[middle - 1])

    _on_two_threads(first_half, second_half)
    return results


def _on_two_threads(caller_work, helper_work):
    """Run both at once, each thread with single-threaded BLAS and Numba loops."""
    import numba
    caller_threads = numba.get_num_threads()
    with threads.single_threaded_blas():
        numba.set_num_threads(1)     # this thread's Numba loops only (the setting is per thread)
        try:
            helper = _helper_thread().submit(helper_work)
            try:
                caller_work()
            finally:
                helper.result()      # wait for it, and raise its error if it had one
        finally:
            numba.set_num_threads(caller_threads)


def _helper_thread():
    with _helper_lock:
        if not _helper:
            import numba
            _helper.append(ThreadPoolExecutor(max_workers=1, thread_name_prefix="minidl-chunks",
                                              initializer=numba.set_num_threads, initargs=(1,)))
        return _helper[0]
