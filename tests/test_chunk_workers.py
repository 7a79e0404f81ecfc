"""Chunks shared between the cores (minidl/kernels/chunk_workers.py) and the BLAS switch.

* every chunk is processed exactly once, each thread with its own buffer, and -- when
  sharing is available -- by two threads;
* it falls back to one thread in order when switched off, on the reference path, or for
  a single chunk;
* an error in a chunk reaches the caller, and the thread settings (OpenBLAS's and
  Numba's) are back as they were, after success and after an error;
* a convolution computed with shared chunks equals the one computed chunk after chunk
  (a product on one thread may round differently from one on two: tight tolerance);
* ``threads.single_threaded_blas`` sets OpenBLAS to 1 thread inside and restores it.
"""
import threading

import numba
import numpy as np
import pytest

from minidl import config, kernels, threads
from minidl.kernels import chunk_workers



def _sharing_possible():
    kernels.relu_forward(np.zeros(2, np.float32))    # a parallel kernel starts Numba's threading layer
    return chunk_workers.sharing_available()


needs_sharing = pytest.mark.skipif(
    not _sharing_possible(),
    reason="chunk sharing needs 2+ Numba threads, the OpenMP/TBB layer and a settable OpenBLAS")


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

    chunk_workers.for_each_chunk(list(range(count)), lambda: np.zeros(1), process)
    return seen, buffers


@needs_sharing
def test_every_chunk_once_on_two_threads(monkeypatch):
    seen, buffers = _record_chunks(64, monkeypatch)
    assert sorted(seen) == list(range(64))
    assert len(buffers) == 2
    assert sum(int(b[0]) for b in buffers.values()) == 64


@pytest.mark.parametrize("how", ["switched off", "reference path", "one chunk"])
def test_falls_back_to_one_thread_in_order(monkeypatch, how):
    share, count = ("0", 8) if how == "switched off" else ("1", 1 if how == "one chunk" else 8)
    with config.using_kernel_path("reference" if how == "reference path" else "numba"):
        seen, buffers = _record_chunks(count, monkeypatch, share)
    assert seen == list(range(count))
    assert list(buffers) == [threading.get_ident()]


@needs_sharing
def test_an_error_reaches_the_caller_and_settings_come_back(monkeypatch):
    monkeypatch.setenv("MINIDL_SHARE_CHUNKS", "1")
    get_blas_threads = threads._thread_functions[0][0]
    before = (int(get_blas_threads()), numba.get_num_threads())

    def process(chunk, buffer):
        if chunk == 5:
            raise RuntimeError("chunk 5 failed")

    with pytest.raises(RuntimeError, match="chunk 5 failed"):
        chunk_workers.for_each_chunk(list(range(40)), lambda: None, process)
    assert (int(get_blas_threads()), numba.get_num_threads()) == before
    chunk_workers.for_each_chunk(list(range(40)), lambda: None, lambda chunk, buffer: None)
    assert (int(get_blas_threads()), numba.get_num_threads()) == before


@needs_sharing
def test_single_threaded_blas_inside_only():
    get_blas_threads = threads._thread_functions[0][0]
    before = int(get_blas_threads())
    assert before > 1
    with threads.single_threaded_blas():
        assert int(get_blas_threads()) == 1
    assert int(get_blas_threads()) == before


@needs_sharing
@pytest.mark.parametrize("shape,kernel_size,strides,padding", [
    ((5, 41, 37, 8), (3, 3), (1, 1), "same"),
    ((3, 40, 40, 6), (3, 3), (2, 2), "valid"),
    ((4, 23, 23, 16), (1, 7), (1, 1), "same"),
])
def test_shared_convolution_equals_chunk_after_chunk(monkeypatch, shape, kernel_size, strides, padding):
    import minidl.kernels.conv as conv_module
    monkeypatch.setattr(conv_module, "_CHUNK_BYTES", 16 * 1024)   # many chunks
    rng = np.random.default_rng(0)
    x = rng.normal(size=shape).astype(np.float32)
    kernel = rng.normal(size=kernel_size + (shape[3], 24)).astype(np.float32)
    _, _, pads = kernels.conv_geometry(shape, kernel_size, strides, padding)
    monkeypatch.setenv("MINIDL_SHARE_CHUNKS", "0")
    in_turn = kernels.conv2d_forward(x, kernel, strides, pads)
    monkeypatch.setenv("MINIDL_SHARE_CHUNKS", "1")
    shared = kernels.conv2d_forward(x, kernel, strides, pads)
    np.testing.assert_allclose(shared, in_turn, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(kernels.conv2d_forward(x, kernel, strides, pads), shared)  # repeatable


@needs_sharing
@pytest.mark.parametrize("shape,kernel_size,strides,padding,chunk_bytes", [
    ((5, 41, 37, 8), (3, 3), (1, 1), "same", 16 * 1024),
    ((3, 40, 40, 6), (3, 3), (2, 2), "valid", 8 * 1024),
    ((4, 23, 23, 16), (7, 1), (1, 1), "same", 1),    # one output row per chunk: the second
    ((2, 19, 19, 4), (5, 5), (1, 1), "same", 1),     # half's first chunks overlap the first's
])
def test_shared_backward_equals_chunk_after_chunk(monkeypatch, shape, kernel_size, strides, padding,
                                                  chunk_bytes):
    import minidl.kernels.conv as conv_module
    monkeypatch.setattr(conv_module, "_CHUNK_BYTES", chunk_bytes)
    monkeypatch.setattr(conv_module, "_KERNEL_MULTIPLE", 0)
    rng = np.random.default_rng(1)
    x = rng.normal(size=shape)
    kernel = rng.normal(size=kernel_size + (shape[3], 5))
    _, _, pads = kernels.conv_geometry(shape, kernel_size, strides, padding)
    grad_y = rng.normal(size=kernels.conv2d_forward(x, kernel, strides, pads).shape)
    monkeypatch.setenv("MINIDL_SHARE_CHUNKS", "0")
    expected_x, expected_kernel = kernels.conv2d_backward(grad_y, x, kernel, strides, pads)
    monkeypatch.setenv("MINIDL_SHARE_CHUNKS", "1")
    for _ in range(3):      # a write race would show up as a wrong sum in some run
        grad_x, grad_kernel = kernels.conv2d_backward(grad_y, x, kernel, strides, pads)
        np.testing.assert_allclose(grad_x, expected_x, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(grad_kernel, expected_kernel, rtol=1e-12, atol=1e-12)


def test_input_rows_touched_matches_what_col2im_writes():
    import minidl.kernels.conv as conv_module
    rng = np.random.default_rng(3)
    for kernel_size, strides, padding in [((3, 3), (1, 1), "same"), ((7, 1), (1, 1), "same"),
                                          ((3, 3), (2, 2), "valid"), ((1, 7), (2, 1), "same")]:
        shape = (3, 13, 11, 2)
        out_h, out_w, pads = kernels.conv_geometry(shape, kernel_size, strides, padding)
        depth = kernel_size[0] * kernel_size[1] * 2
        for first_row in range(0, shape[0] * out_h, 2):
            row_count = min(3, shape[0] * out_h - first_row)
            grad_input = np.zeros(shape)
            kernels.col2im_rows_add(rng.uniform(1, 2, (row_count * out_w, depth)), first_row, grad_input,
                                    kernel_size, strides, pads)
            written = np.flatnonzero(grad_input.reshape(-1, shape[2] * shape[3]).any(axis=1))
            first, stop = conv_module._input_rows_touched((first_row, row_count), out_h, shape[1],
                                                          kernel_size[0], strides[0], pads[0][0])
            assert written.min() >= first and written.max() < stop
            assert written.min() == first and written.max() == stop - 1


@needs_sharing
def test_the_two_halves_never_write_the_same_input_rows_at_once(monkeypatch):
    """The race the deferral prevents is rare in time, so check the rows instead: while
    both threads run, no input row is written by both."""
    import minidl.kernels.conv as conv_module
    monkeypatch.setattr(conv_module, "_CHUNK_BYTES", 1)          # one output row per chunk
    monkeypatch.setattr(conv_module, "_KERNEL_MULTIPLE", 0)
    monkeypatch.setenv("MINIDL_SHARE_CHUNKS", "1")
    parallel = [False]
    written = {}                                                  # thread -> rows written in parallel
    original_two_threads, original_col2im = chunk_workers._on_two_threads, kernels.col2im_rows_add

    def on_two_threads(caller_work, helper_work):
        parallel[0] = True
        try:
            original_two_threads(caller_work, helper_work)
        finally:
            parallel[0] = False

    def col2im_rows_add(grad_cols, first_row, grad_input, kernel_size, strides, pads):
        original_col2im(grad_cols, first_row, grad_input, kernel_size, strides, pads)
        if parallel[0]:     # which rows did this call write? the same call on a private zero array
            alone = np.zeros_like(grad_input)
            original_col2im(grad_cols, first_row, alone, kernel_size, strides, pads)
            rows = np.flatnonzero(alone.reshape(-1, alone.shape[2] * alone.shape[3]).any(axis=1))
            written.setdefault(threading.get_ident(), set()).update(rows.tolist())

    monkeypatch.setattr(chunk_workers, "_on_two_threads", on_two_threads)
    monkeypatch.setattr(kernels, "col2im_rows_add", col2im_rows_add)
    rng = np.random.default_rng(4)
    x = rng.normal(size=(1, 30, 6, 3))             # one image: the halves meet inside it
    kernel = rng.normal(size=(7, 1, 3, 4))
    _, _, pads = kernels.conv_geometry(x.shape, (7, 1), (1, 1), "same")
    grad_y = rng.uniform(1, 2, size=(1, 30, 6, 4))
    kernels.conv2d_backward(grad_y, x, kernel, (1, 1), pads)
    assert len(written) == 2
    first, second = written.values()
    assert first and second and not first & second
