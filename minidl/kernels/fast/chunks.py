"""A convolution's work in chunks, and the chunks shared out between the cores.

Why chunks. ``cols`` (im2col's matrix) is KH*KW times larger than the convolution's input.
Built whole, im2col writes it to main memory and the matrix product reads it back. Its
rows are independent, so the engine builds it one chunk of *output rows* at a time (an
output row is a flattened (n, oh) index and owns OW rows of ``cols``) into one small
reused buffer, and uses each chunk at once, while it is still in cache. Winograd's
convolutions work in chunks of tile rows the same way (``winograd.py``).

Why share them. Run one after the other, every step of a chunk (im2col, product, the
epilogue) is split over all cores: Numba's threads for im2col, OpenBLAS's threads for the
product, so every step wakes a thread pool and waits for it -- hundreds of times per image
-- and each chunk is cut in pieces that travel between the cores' caches. Here the cores
take *whole chunks* instead: ``numba.get_num_threads()`` threads (the caller and helper
threads) each take the next chunk nobody has taken and run all of its steps alone, with a
single-threaded im2col and product. Chunks write disjoint rows of the output, so no locks
are needed, and each chunk's numbers do not depend on which thread ran it, so results
are the same from run to run and on every machine.

A layer shares its chunks only when it has at least ``MIN_CHUNKS_PER_THREAD`` per thread:
with fewer, the threads cannot balance (with 3 chunks on 2 threads one does two) and the
chunks run in turn, each product on every core. Measured: ``benchmarks/README.md``.

Sharing is used when it can be: the Numba path, more than one Numba thread, a Numba
threading layer that may be entered from several threads at once (OpenMP or TBB, not
workqueue), and an OpenBLAS whose thread count minidl can set (``process_settings.py``).
Otherwise, or with ``MINIDL_SHARE_CHUNKS=0``, the chunks run one after the other.
Backward shares one thing: the kernel gradient, a *sum* over the chunks
(:func:`sum_over_chunks`): each core sums one contiguous run of them into an array of its
own, and the runs' sums are added in order -- the same numbers from run to run, since
which chunk goes into which sum does not depend on timing. col2im's chunks run in turn
(their rows of grad_x overlap). :func:`on_every_core` lends the helper threads to an
Inception block's branches (``minidl/engine/branches.py``).

Example::

    chunks = equal_chunks(0, total_rows, 16)          # [(first_row, row_count), ...]
    def process(chunk, buffer):                       # runs on any of the threads
        ...
    for_each_chunk(chunks, lambda: np.empty(size, dtype), process)
    total = sum_over_chunks(chunks, lambda run: ...)  # each run's sum, added in order
"""
import itertools
import threading
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np

from minidl import config
from minidl.kernels.fast import process_settings

MIN_CHUNKS_PER_THREAD = 4      # fewer run in turn (measured: see benchmarks/README.md)
_helpers = []                  # [ThreadPoolExecutor], made on first use
_helpers_lock = threading.Lock()
_one_region_at_a_time = threading.Lock()


def equal_chunks(first_row, total_rows, count):
    """Rows first_row .. first_row + total_rows - 1 in ``count`` chunks of equal sizes (+-1)
    (fewer if there are fewer rows: a chunk has at least one)."""
    count = max(1, min(count, total_rows))
    bounds = [first_row + total_rows * i // count for i in range(count + 1)]
    return [(start, stop - start) for start, stop in zip(bounds, bounds[1:])]


def output_rows(out, shape, dtype, where):
    """A convolution's output y as a (pixels, F) matrix: a new one, or a view of ``out``.

    ``out`` (checked) lets a convolution write into a slice of a larger array, e.g. its
    channels of a concatenation's output (``minidl/engine/fusion.py``).
    """
    if out is None:
        return np.empty((shape[0] * shape[1] * shape[2], shape[3]), dtype=dtype)
    if out.shape != shape or out.dtype != dtype:
        raise ValueError(f"{where}: out must have shape {shape} and dtype {dtype}, got {out.shape} {out.dtype}")
    rows = out.reshape(-1, shape[3])
    if not np.may_share_memory(rows, out):     # reshape had to copy: out's pixels are not evenly spaced
        raise ValueError(f"{where}: out must be an array or a slice of its last axis "
                         "(pixels evenly spaced in memory)")
    return rows


def sharing_threads():
    """How many threads can share chunks now: ``numba.get_num_threads()``, or 1 when sharing
    is not possible (see the module docstring)."""
    if not config.env_flag("MINIDL_SHARE_CHUNKS") or config.kernel_path() != "numba":
        return 1
    threads = numba.get_num_threads()
    if threads < 2 or not process_settings.can_set_blas_threads():
        return 1
    try:
        layer = numba.threading_layer()
    except ValueError:           # no parallel kernel has run yet: the layer is not chosen
        return 1
    return threads if layer in ("omp", "tbb") else 1


def for_each_chunk(chunks, make_buffer, process):
    """Call ``process(chunk, buffer)`` for every chunk, each thread with its own buffer.

    With at least ``MIN_CHUNKS_PER_THREAD`` chunks per thread and sharing available, the
    caller and helper threads take chunks in turn; otherwise the caller runs them in
    order. Returns when all are done; an exception in any thread is raised here.
    """
    threads = sharing_threads()
    # One shared region at a time (OpenBLAS's thread count is one setting for the whole
    # process): a second caller -- another thread of the user's -- runs its chunks in turn.
    if (threads < 2 or len(chunks) < MIN_CHUNKS_PER_THREAD * threads
            or not _one_region_at_a_time.acquire(blocking=False)):
        buffer = make_buffer()
        for chunk in chunks:
            process(chunk, buffer)
        return
    try:
        _share(chunks, make_buffer, process, threads)
    finally:
        _one_region_at_a_time.release()


def sum_over_chunks(chunks, sum_in_order):
    """The sum over ``chunks`` of what ``sum_in_order(run)`` returns for runs of them,
    every core summing a run of its own at once when possible; the same numbers from run to
    run.

    ``sum_in_order(run)`` sums its chunks in order into a new array and returns it. With
    at least ``MIN_CHUNKS_PER_THREAD`` chunks per thread and sharing available, the chunks
    are cut in one contiguous run per thread (not taken as they come: which chunk goes into
    which partial sum is fixed, so is the rounding), the runs are summed at once and their
    sums added in order; otherwise the caller sums all the chunks as one run.
    """
    threads = sharing_threads()
    if threads < 2 or len(chunks) < MIN_CHUNKS_PER_THREAD * threads:
        return sum_in_order(chunks)
    runs = [chunks[start: start + count] for start, count in equal_chunks(0, len(chunks), threads)]
    sums = [None] * len(runs)
    next_run = itertools.count()

    def sum_next_run():
        index = next(next_run)
        sums[index] = sum_in_order(runs[index])

    if not on_every_core(sum_next_run):          # another region holds the cores
        return sum_in_order(chunks)
    total = sums[0]
    for partial in sums[1:]:
        total += partial
    return total


def sum_of_products(pairs):
    """The sum of ``left @ right`` over the (left, right) pairs, added in order: the first
    product starts the sum, each later one is made in one reused buffer and added to it.
    The sum of one run of :func:`sum_over_chunks` (a kernel gradient's chunks); None when
    there are no pairs."""
    total = product = None
    for left, right in pairs:
        if total is None:
            total = np.matmul(left, right)
        else:
            product = np.matmul(left, right, out=product)
            total += product
    return total


def on_every_core(work):
    """Run ``work()`` on this thread and on every helper thread at once, each with
    single-threaded products and Numba loops, and return True; or return False, running
    nothing, when sharing is not possible now (see :func:`for_each_chunk`).

    ``work`` takes its tasks from a queue its copies share (the engine's branches,
    ``minidl/engine/branches.py``). Chunked kernels called inside it run their chunks in
    turn on the calling thread: only one shared region runs at a time.
    """
    threads = sharing_threads()
    if threads < 2 or not _one_region_at_a_time.acquire(blocking=False):
        return False
    try:
        _on_threads(work, threads)
    finally:
        _one_region_at_a_time.release()
    return True


def _share(chunks, make_buffer, process, threads):
    """The caller and ``threads - 1`` helper threads take the chunks in turn."""
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

    _on_threads(take_chunks, threads)


def _on_threads(work, threads):
    """Run ``work`` on this thread and ``threads - 1`` helpers at once, every one of them
    with single-threaded BLAS products and Numba loops."""
    caller_threads = numba.get_num_threads()
    with process_settings.single_threaded_blas():
        numba.set_num_threads(1)     # this thread's Numba loops only (the setting is per thread)
        try:
            helpers = [_helper_pool().submit(work) for _ in range(threads - 1)]
            try:
                work()
            finally:
                helper_errors = [helper.exception() for helper in helpers]   # waits for every helper
        finally:
            numba.set_num_threads(caller_threads)
    for error in helper_errors:
        if error is not None:
            raise error


def _helper_pool():
    """Helper threads, made on first use: as many as Numba may use, less the caller."""
    with _helpers_lock:
        if not _helpers:
            _helpers.append(ThreadPoolExecutor(max_workers=max(1, numba.config.NUMBA_NUM_THREADS - 1),
                                               thread_name_prefix="minidl-chunks",
                                               initializer=numba.set_num_threads, initargs=(1,)))
        return _helpers[0]
