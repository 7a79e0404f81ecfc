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

Measured on the project's 2-core VM, InceptionV3 at batch 5, inside whole inference
passes (forward + batch norm + ReLU per layer, medians over 16 passes alternating shared
and in-turn; ``chunks`` = the layer's chunk count):

    149x149x32 -> 32, 3x3 (63 chunks):   29.5 -> 23.9 ms
    147x147x32 -> 64, 3x3 (62 chunks):   43.4 -> 38.8 ms
    35x35x48 -> 64, 5x5 (15 chunks):      3 layers 32.1 -> 27.5 ms
    35x35x96 -> 96, 3x3 (11 chunks):      3 layers 30.3 -> 27.7 ms
    35x35x64 -> 96, 3x3 (7 chunks):       4 layers 27.3 -> 28.0 ms
    17x17x160 -> 160, 1x7 (3 chunks):     4 layers 20.9 -> 22.7 ms

With few chunks the two threads cannot balance (3 chunks: one thread does two), so a
layer shares its chunks only from ``MIN_CHUNKS`` = 8 on; with fewer they run in turn,
each product on both cores. Backward always runs its chunks in turn: splitting them
between the cores measured no faster for a whole training step (paired A/B, 16 rounds:
median ratio 0.99, faster in 8 of 16).

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

import numba

from minidl import config, threads

MIN_CHUNKS = 8          # fewer chunks run in turn (measured: see above)
_helper = []            # [ThreadPoolExecutor with one thread], made on first use
_helper_lock = threading.Lock()
_one_region_at_a_time = threading.Lock()


def sharing_available():
    """True when chunks can run on two threads at once (see the module docstring)."""
    if os.environ.get("MINIDL_SHARE_CHUNKS", "1").strip() == "0":
        return False
    if config.kernel_path() != "numba":
        return False
    if numba.get_num_threads() < 2 or not threads.can_set_blas_threads():
        return False
    try:
        layer = numba.threading_layer()
    except ValueError:           # no parallel kernel has run yet: the layer is not chosen
        return False
    return layer in ("omp", "tbb")


def for_each_chunk(chunks, make_buffer, process):
    """Call ``process(chunk, buffer)`` for every chunk, each thread with its own buffer.

    With ``MIN_CHUNKS`` or more chunks and sharing available, the caller and a helper
    thread take chunks in turn; otherwise the caller runs them in order. Returns when all
    are done; an exception in either thread is raised here.
    """
    # One shared region at a time (OpenBLAS's thread count is one setting for the whole
    # process): a second caller -- another thread of the user's -- runs its chunks in turn.
    if len(chunks) < MIN_CHUNKS or not sharing_available() or not _one_region_at_a_time.acquire(blocking=False):
        buffer = make_buffer()
        for chunk in chunks:
            process(chunk, buffer)
        return
    try:
        _share(chunks, make_buffer, process)
    finally:
        _one_region_at_a_time.release()


def _share(chunks, make_buffer, process):
    """The caller and the helper thread take the chunks in turn."""
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


def _on_two_threads(caller_work, helper_work):
    """Run both at once, each thread with single-threaded BLAS and Numba loops."""
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
            _helper.append(ThreadPoolExecutor(max_workers=1, thread_name_prefix="minidl-chunks",
                                              initializer=numba.set_num_threads, initargs=(1,)))
        return _helper[0]
