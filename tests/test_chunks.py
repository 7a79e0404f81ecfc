"""Chunks shared between the cores (minidl/kernels/fast/chunks.py) and the BLAS switch.

* every chunk is processed exactly once, each thread with its own buffer, and -- when
  sharing is available -- by as many threads as Numba has, also more than the cores;
* it falls back to one thread in order when switched off, on the reference path, or for
  fewer than MIN_CHUNKS_PER_THREAD chunks per thread;
* an error in a chunk reaches the caller, and the thread settings (OpenBLAS's and
  Numba's) are back as they were, after success and after an error;
* a convolution computed with shared chunks equals the one computed chunk after chunk
  (a product on one thread may round differently from one on two: tight tolerance);
* ``process_settings.single_threaded_blas`` sets OpenBLAS to 1 thread inside and restores it;
* ``sum_over_chunks`` (a convolution's kernel gradient) sums one contiguous run of chunks
  per thread and adds the runs' sums in order: every chunk once, the same bits from run to
  run, one run on the caller when there are too few chunks, an error reaches the caller;
  a kernel gradient summed that way equals the one summed chunk after chunk.
"""
import json
import os
import subprocess
import sys
import threading

import numba
import numpy as np
import pytest
from sharing import needs_sharing

from minidl import config
from minidl.kernels.fast import chunks, process_settings
from minidl.kernels.fast import conv as conv_module
from minidl.kernels.geometry import conv_geometry


def _record_chunks(count, monkeypatch, share="1"):
    monkeypatch.setenv("MINIDL_SHARE_CHUNKS", share)
    seen, buffers, lock = [], {}, threading.Lock()

    def process(chunk, buffer):
        buffer[0] += 1                              # this thread's buffer, no one else's
        with lock:
            seen.append(chunk)
            buffers.setdefault(threading.get_ident(), buffer)
            assert buffers[threading.get_ident()] is buffer
        np.dot(np.ones((200, 200)), np.ones((200, 200)))   # some work that releases the GIL

    chunks.for_each_chunk(list(range(count)), lambda: np.zeros(1), process)
    return seen, buffers


@needs_sharing
def test_every_chunk_once_on_every_thread(monkeypatch):
    seen, buffers = _record_chunks(64, monkeypatch)
    assert sorted(seen) == list(range(64))
    assert len(buffers) == numba.get_num_threads()
    assert sum(int(b[0]) for b in buffers.values()) == 64


# Run in a fresh process with NUMBA_NUM_THREADS above the core count: every thread must take
# part (each waits at a barrier in its first chunk, so a missing thread times the test out),
# and a shared convolution must equal the one computed chunk after chunk.
_MORE_THREADS_THAN_CORES = """
import json, threading
import numba, numpy as np
from minidl.kernels import fast
from minidl.kernels.fast import chunks, conv
fast.relu_forward(np.zeros(2, np.float32))
threads = chunks.sharing_threads()
barrier, first_chunk, seen, lock = threading.Barrier(threads, timeout=60), threading.local(), [], threading.Lock()
def process(chunk, buffer):
    if not getattr(first_chunk, "done", False):
        first_chunk.done = True
        barrier.wait()
    with lock:
        seen.append((chunk, threading.get_ident()))
chunks.for_each_chunk(list(range(80)), lambda: None, process)
conv._CHUNK_BYTES = 8 * 1024
rng = np.random.default_rng(0)
x = rng.normal(size=(3, 31, 29, 8)).astype(np.float32)
kernel = rng.normal(size=(3, 3, 8, 12)).astype(np.float32)
shared = conv.conv2d_forward(x, kernel, (1, 1), ((1, 1), (1, 1)))
chunks.MIN_CHUNKS_PER_THREAD = 10**9          # now every convolution runs its chunks in turn
in_turn = conv.conv2d_forward(x, kernel, (1, 1), ((1, 1), (1, 1)))
print(json.dumps({"threads": threads, "cores": __import__("os").cpu_count(),
                  "chunks": sorted(c for c, _ in seen), "workers": len({t for _, t in seen}),
                  "difference": float(np.abs(shared - in_turn).max())}))
"""


@needs_sharing
def test_more_threads_than_cores_every_thread_takes_chunks_and_results_agree():
    threads = (os.cpu_count() or 2) + 3
    env = dict(os.environ, NUMBA_NUM_THREADS=str(threads), MINIDL_SHARE_CHUNKS="1")
    completed = subprocess.run([sys.executable, "-c", _MORE_THREADS_THAN_CORES], capture_output=True,
                               text=True, env=env, timeout=300)
    assert completed.returncode == 0, completed.stderr
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    assert result["threads"] == threads > result["cores"]
    assert result["chunks"] == list(range(80)) and result["workers"] == threads
    assert result["difference"] < 1e-4


@pytest.mark.parametrize("how", ["switched off", "reference path", "too few chunks"])
def test_falls_back_to_one_thread_in_order(monkeypatch, how):
    few = chunks.MIN_CHUNKS_PER_THREAD * numba.get_num_threads() - 1
    share, count = ("0", 16) if how == "switched off" else ("1", few if how == "too few chunks" else 16)
    with config.using_kernel_path("reference" if how == "reference path" else "numba"):
        seen, buffers = _record_chunks(count, monkeypatch, share)
    assert seen == list(range(count))
    assert list(buffers) == [threading.get_ident()]


@needs_sharing
def test_an_error_reaches_the_caller_and_settings_come_back(monkeypatch):
    monkeypatch.setenv("MINIDL_SHARE_CHUNKS", "1")
    get_blas_threads = process_settings._blas_thread_functions()[0]
    before = (int(get_blas_threads()), numba.get_num_threads())

    def process(chunk, buffer):
        if chunk == 5:
            raise RuntimeError("chunk 5 failed")

    with pytest.raises(RuntimeError, match="chunk 5 failed"):
        chunks.for_each_chunk(list(range(40)), lambda: None, process)
    assert (int(get_blas_threads()), numba.get_num_threads()) == before
    chunks.for_each_chunk(list(range(40)), lambda: None, lambda chunk, buffer: None)
    assert (int(get_blas_threads()), numba.get_num_threads()) == before


@needs_sharing
def test_single_threaded_blas_inside_only():
    get_blas_threads = process_settings._blas_thread_functions()[0]
    before = int(get_blas_threads())
    assert before > 1
    with process_settings.single_threaded_blas():
        assert int(get_blas_threads()) == 1
    assert int(get_blas_threads()) == before


@needs_sharing
@pytest.mark.parametrize("shape,kernel_size,strides,padding", [
    ((5, 41, 37, 8), (3, 3), (1, 1), "same"),
    ((3, 40, 40, 6), (3, 3), (2, 2), "valid"),
    ((4, 23, 23, 16), (1, 7), (1, 1), "same"),
])
def test_shared_convolution_equals_chunk_after_chunk(monkeypatch, shape, kernel_size, strides, padding):
    monkeypatch.setattr(conv_module, "_CHUNK_BYTES", 16 * 1024)   # many chunks
    rng = np.random.default_rng(0)
    x = rng.normal(size=shape).astype(np.float32)
    kernel = rng.normal(size=kernel_size + (shape[3], 24)).astype(np.float32)
    _, _, pads = conv_geometry(shape, kernel_size, strides, padding)
    monkeypatch.setenv("MINIDL_SHARE_CHUNKS", "0")
    in_turn = conv_module.conv2d_forward(x, kernel, strides, pads)
    monkeypatch.setenv("MINIDL_SHARE_CHUNKS", "1")
    shared = conv_module.conv2d_forward(x, kernel, strides, pads)
    np.testing.assert_allclose(shared, in_turn, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(conv_module.conv2d_forward(x, kernel, strides, pads), shared)  # repeatable



@needs_sharing
def test_two_callers_at_once_leave_the_thread_settings_as_they_were(monkeypatch):
    """A second thread of the user's convolving at the same time runs its chunks in turn
    (OpenBLAS's thread count is one setting for the process): both get the right result
    and OpenBLAS ends with its thread count back."""
    monkeypatch.setattr(conv_module, "_CHUNK_BYTES", 16 * 1024)
    monkeypatch.setenv("MINIDL_SHARE_CHUNKS", "1")
    get_blas_threads = process_settings._blas_thread_functions()[0]
    before = int(get_blas_threads())
    rng = np.random.default_rng(2)
    x = rng.normal(size=(4, 33, 29, 8)).astype(np.float32)
    kernel = rng.normal(size=(3, 3, 8, 16)).astype(np.float32)
    _, _, pads = conv_geometry(x.shape, (3, 3), (1, 1), "same")
    expected = conv_module.conv2d_forward(x, kernel, (1, 1), pads)
    results, errors = [], []

    def convolve_many_times():
        try:
            for _ in range(20):
                results.append(conv_module.conv2d_forward(x, kernel, (1, 1), pads))
        except BaseException as error:      # reported below, on the test's thread
            errors.append(error)

    workers = [threading.Thread(target=convolve_many_times) for _ in range(2)]
    for worker in workers:
        worker.start()
    convolve_many_times()
    for worker in workers:
        worker.join()
    assert not errors and len(results) == 60
    for result in results:
        np.testing.assert_allclose(result, expected, rtol=1e-5, atol=1e-5)
    assert int(get_blas_threads()) == before


def _summing_runs(values, monkeypatch, share="1"):
    """sum_over_chunks over the chunk indices of ``values``; the runs seen, and who summed them."""
    monkeypatch.setenv("MINIDL_SHARE_CHUNKS", share)
    runs, lock = [], threading.Lock()

    def sum_in_order(run):
        total = np.zeros(1, values.dtype)
        for index in run:
            total += values[index]
            np.dot(np.ones((100, 100)), np.ones((100, 100)))   # work that releases the GIL
        with lock:
            runs.append((list(run), threading.get_ident()))
        return total

    return chunks.sum_over_chunks(list(range(len(values))), sum_in_order), runs


@needs_sharing
def test_sum_over_chunks_one_run_per_thread_the_same_bits_every_time(monkeypatch):
    values = (np.random.default_rng(0).normal(size=64) * 10.0 ** np.arange(-8, 8, 0.25)).astype(np.float32)
    threads = chunks.sharing_threads()
    results = []
    for _ in range(5):
        total, runs = _summing_runs(values, monkeypatch)
        results.append(total)
        assert sorted(index for run, _ in runs for index in run) == list(range(64))
        assert all(run == list(range(run[0], run[-1] + 1)) for run, _ in runs)     # contiguous
        assert len(runs) == threads == len({thread for _, thread in runs})
    expected = np.zeros(1, np.float32)
    for start, count in chunks.equal_chunks(0, 64, threads):
        run_sum = np.zeros(1, np.float32)
        for index in range(start, start + count):
            run_sum += values[index]
        expected += run_sum
    for total in results:
        np.testing.assert_array_equal(total, expected)


def test_sum_over_chunks_too_few_chunks_or_switched_off_one_run_on_the_caller(monkeypatch):
    values = np.arange(1.0, 17.0)
    few = values[: chunks.MIN_CHUNKS_PER_THREAD * numba.get_num_threads() - 1]
    for data, share in ((few, "1"), (values, "0")):
        total, runs = _summing_runs(data, monkeypatch, share)
        assert runs == [(list(range(len(data))), threading.get_ident())]
        assert total[0] == data.sum()


@needs_sharing
def test_sum_over_chunks_an_error_reaches_the_caller(monkeypatch):
    monkeypatch.setenv("MINIDL_SHARE_CHUNKS", "1")

    def failing(run):
        if 40 in run:
            raise ValueError("run with chunk 40")
        return np.zeros(1)

    with pytest.raises(ValueError, match="chunk 40"):
        chunks.sum_over_chunks(list(range(64)), failing)
    assert chunks._one_region_at_a_time.acquire(blocking=False)
    chunks._one_region_at_a_time.release()


@needs_sharing
def test_a_kernel_gradient_summed_per_thread_equals_chunk_after_chunk(monkeypatch):
    rng = np.random.default_rng(4)
    x = rng.normal(size=(3, 31, 29, 8))
    kernel = rng.normal(size=(3, 3, 8, 12))
    _, _, pads = conv_geometry(x.shape, (3, 3), (1, 1), "same")
    grad_y = rng.normal(size=(3, 31, 29, 12))
    monkeypatch.setattr(conv_module, "_CHUNK_BYTES", 8 * 1024)
    monkeypatch.setattr(conv_module, "_KERNEL_MULTIPLE", 0)
    monkeypatch.setenv("MINIDL_SHARE_CHUNKS", "1")
    runs = []
    original = chunks.sum_over_chunks
    monkeypatch.setattr(conv_module, "sum_over_chunks",
                        lambda chunk_list, sum_in_order: runs.append(len(chunk_list)) or original(chunk_list,
                                                                                                   sum_in_order))
    shared = conv_module.conv2d_backward(grad_y, x, kernel, (1, 1), pads)[1]
    monkeypatch.setenv("MINIDL_SHARE_CHUNKS", "0")
    in_turn = conv_module.conv2d_backward(grad_y, x, kernel, (1, 1), pads)[1]
    assert runs[0] >= chunks.MIN_CHUNKS_PER_THREAD * chunks.sharing_threads()
    np.testing.assert_allclose(shared, in_turn, rtol=0, atol=1e-12 * np.abs(in_turn).max())



def test_sum_of_products_adds_each_product_in_order():
    """left @ right summed pair after pair: the same bits as writing the sum out in order,
    float32 (where the order shows), the buffer reused without touching the total."""
    from minidl.kernels.fast.chunks import sum_of_products
    rng = np.random.default_rng(11)
    pairs = [(rng.normal(size=(7, 40)).astype(np.float32), rng.normal(size=(40, 3)).astype(np.float32))
             for _ in range(4)]
    expected = pairs[0][0] @ pairs[0][1]
    for left, right in pairs[1:]:
        expected = expected + left @ right
    np.testing.assert_array_equal(sum_of_products(iter(pairs)), expected)
    np.testing.assert_array_equal(sum_of_products(pairs[:1]), pairs[0][0] @ pairs[0][1])
    assert sum_of_products([]) is None
