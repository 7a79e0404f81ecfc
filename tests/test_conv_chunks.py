"""The engine's convolution chunks of output rows compute exactly what one big im2col computes.

minidl/kernels/fast/conv.py never builds the whole im2col matrix of a big layer: it fills
one reused buffer with a chunk of output rows (``im2col_rows``), multiplies it, and adds the
chunk's input gradient back (``col2im_rows_add``). The reference path has no chunks: it is
the definition these tests compare with. They pin down:

* ``im2col_rows`` == the matching rows of the reference ``im2col``, for any chunking of the
  N*OH output rows (chunks crossing image boundaries, a shorter last chunk, asymmetric TF
  'same' padding, stride 2, 1x7 / 7x1 kernels), writing every element of its ``out``;
* ``col2im_rows_add`` *adds* into its target, and summed over a chunking equals ``col2im``;
* ``conv2d_forward`` / ``conv2d_backward`` forced into many chunks == im2col + GEMM on the
  whole matrix (float64, tight tolerance): the test that fails if the chunk bookkeeping
  (row offsets, the last partial chunk, the grad_kernel sum) is wrong;
* clear errors for a wrongly shaped ``out`` / ``grad_cols``.
"""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import minidl.kernels.fast.conv as conv_module
from minidl import kernels
from minidl.kernels.fast import conv_numba
from minidl.kernels.reference import conv as conv_reference

KERNEL_SIZES = [(3, 3), (1, 7), (7, 1), (2, 3), (1, 1), (5, 5), (3, 1)]
STRIDES = [(1, 1), (2, 2), (1, 2), (2, 1), (3, 3)]


@st.composite
def chunked_cases(draw, max_size=10):
    """A convolution geometry plus a random chunking of its N*OH output rows."""
    kernel_size = draw(st.sampled_from(KERNEL_SIZES))
    strides = draw(st.sampled_from(STRIDES))
    padding = draw(st.sampled_from(["same", "valid"]))
    low_h = kernel_size[0] if padding == "valid" else 1
    low_w = kernel_size[1] if padding == "valid" else 1
    shape = (draw(st.integers(1, 3)), draw(st.integers(low_h, max(low_h, max_size))),
             draw(st.integers(low_w, max(low_w, max_size))), draw(st.integers(1, 4)))
    out_h, out_w, pads = kernels.conv_geometry(shape, kernel_size, strides, padding)
    total_rows = shape[0] * out_h
    cuts = draw(st.sets(st.integers(1, max(1, total_rows - 1)), max_size=6)) if total_rows > 1 else set()
    bounds = [0] + sorted(cuts) + [total_rows]
    chunks = [(first, stop - first) for first, stop in zip(bounds[:-1], bounds[1:])]
    seed = draw(st.integers(0, 2**31 - 1))
    return shape, kernel_size, strides, pads, out_w, chunks, seed


# ---------------------------------------------------------------- the two chunk kernels
@settings(max_examples=40, deadline=None)
@given(case=chunked_cases(), dtype=st.sampled_from([np.float32, np.float64]))
def test_im2col_rows_equals_the_rows_of_im2col(case, dtype):
    shape, kernel_size, strides, pads, out_w, chunks, seed = case
    x = np.random.default_rng(seed).standard_normal(shape).astype(dtype)
    full = conv_reference.im2col(x, kernel_size, strides, pads)
    # One buffer for every chunk, as conv.py does; NaN shows any element left unwritten.
    buffer = np.full((max(count for _, count in chunks) * out_w, full.shape[1]), np.nan, dtype=dtype)
    for first_row, row_count in chunks:
        out = buffer[: row_count * out_w]
        returned = conv_numba.im2col_rows(x, kernel_size, strides, pads, first_row, row_count, out)
        assert returned is out
        np.testing.assert_array_equal(out, full[first_row * out_w: (first_row + row_count) * out_w])
        buffer.fill(np.nan)


@settings(max_examples=40, deadline=None)
@given(case=chunked_cases(), dtype=st.sampled_from([np.float32, np.float64]))
def test_col2im_rows_add_summed_over_chunks_equals_col2im(case, dtype):
    shape, kernel_size, strides, pads, out_w, chunks, seed = case
    rng = np.random.default_rng(seed)
    depth = kernel_size[0] * kernel_size[1] * shape[3]
    grad_cols = rng.standard_normal((sum(count for _, count in chunks) * out_w, depth)).astype(dtype)
    already_there = rng.standard_normal(shape).astype(dtype)  # the kernel must add, not overwrite
    grad_input = already_there.copy()
    for first_row, row_count in chunks:
        chunk = np.ascontiguousarray(grad_cols[first_row * out_w: (first_row + row_count) * out_w])
        returned = conv_numba.col2im_rows_add(chunk, first_row, grad_input, kernel_size, strides, pads)
        assert returned is grad_input
    assert grad_input.dtype == dtype
    expected = already_there + conv_reference.col2im(grad_cols, shape, kernel_size, strides, pads)
    tolerance = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(grad_input, expected, rtol=tolerance, atol=tolerance)


def test_chunk_crossing_an_image_boundary_with_asymmetric_padding():
    # 6 rows, 3x3 stride 2 'same': OH = 3 with pads (0, 1) -- TF puts the extra row at the bottom.
    x = np.random.default_rng(3).standard_normal((3, 6, 5, 2))
    kernel_size, strides = (3, 3), (2, 2)
    out_h, out_w, pads = kernels.conv_geometry(x.shape, kernel_size, strides, "same")
    assert (out_h, pads[0]) == (3, (0, 1))
    first_row, row_count = 2, 5  # image 0's last row, all of image 1, image 2's first row
    out = np.empty((row_count * out_w, 9 * 2))
    conv_numba.im2col_rows(x, kernel_size, strides, pads, first_row, row_count, out)
    full = conv_reference.im2col(x, kernel_size, strides, pads)
    np.testing.assert_array_equal(out, full[2 * out_w: 7 * out_w])


def test_chunk_errors_name_the_function_and_the_expected_shape():
    x = np.zeros((2, 5, 5, 3))
    pads = ((1, 1), (1, 1))
    with pytest.raises(ValueError, match=r"im2col_rows: out must have shape \(row_count \* 5, 27\)"):
        conv_numba.im2col_rows(x, (3, 3), (1, 1), pads, 0, 2, np.empty((10, 26)))
    with pytest.raises(ValueError, match="out must have 10 rows for row_count=2"):
        conv_numba.im2col_rows(x, (3, 3), (1, 1), pads, 0, 2, np.empty((15, 27)))
    with pytest.raises(ValueError, match=r"output rows 9\.\.10 are outside the N\*OH = 10"):
        conv_numba.im2col_rows(x, (3, 3), (1, 1), pads, 9, 2, np.empty((10, 27)))
    with pytest.raises(ValueError, match="C-contiguous"):
        conv_numba.im2col_rows(x, (3, 3), (1, 1), pads, 0, 2, np.empty((27, 10)).T)
    with pytest.raises(ValueError, match=r"col2im_rows_add: grad_cols must have shape"):
        conv_numba.col2im_rows_add(np.zeros((7, 27)), 0, np.zeros(x.shape), (3, 3), (1, 1), pads)


# ---------------------------------------------------------------- the convolution, chunked
def whole_matrix_convolution(x, kernel, grad_output, strides, pads):
    """The unchunked definition: one im2col, one matrix product per equation."""
    kernel_h, kernel_w, channels, filters = kernel.shape
    kernel_2d = kernel.reshape(-1, filters)
    grad_2d = grad_output.reshape(-1, filters)
    cols = conv_reference.im2col(x, (kernel_h, kernel_w), strides, pads)
    y = (cols @ kernel_2d).reshape(grad_output.shape)
    grad_kernel = (cols.T @ grad_2d).reshape(kernel.shape)
    grad_input = conv_reference.col2im(grad_2d @ kernel_2d.T, x.shape, (kernel_h, kernel_w), strides, pads)
    return y, grad_input, grad_kernel


def force_rows_per_chunk(monkeypatch, rows_per_chunk, out_w, depth, itemsize):
    """Shrink the chunk budget so that each chunk holds exactly ``rows_per_chunk`` output rows."""
    monkeypatch.setattr(conv_module, "_CHUNK_BYTES", rows_per_chunk * out_w * depth * itemsize)
    monkeypatch.setattr(conv_module, "_KERNEL_MULTIPLE", 0)


def count_chunk_calls(monkeypatch):
    calls = {"im2col_rows": [], "col2im_rows_add": []}
    for name in calls:
        original = getattr(conv_numba, name)

        def spy(*args, _original=original, _name=name, **kwargs):
            calls[_name].append(args)
            return _original(*args, **kwargs)
        monkeypatch.setattr(conv_numba, name, spy)
    return calls


@settings(max_examples=30, deadline=None)
@given(case=chunked_cases(max_size=9), rows_per_chunk=st.integers(1, 4), filters=st.integers(1, 3))
def test_conv2d_in_many_chunks_equals_the_whole_matrix(case, rows_per_chunk, filters):
    shape, kernel_size, strides, pads, out_w, _, seed = case
    if kernel_size == (1, 1) and strides == (1, 1):
        return  # the pointwise fast path has no chunks
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)
    kernel = rng.standard_normal(kernel_size + (shape[3], filters))
    out_h, _ = kernels.padded_output_size(shape, kernel_size, strides, pads)
    grad_output = rng.standard_normal((shape[0], out_h, out_w, filters))  # random upstream
    expected_y, expected_grad_input, expected_grad_kernel = whole_matrix_convolution(
        x, kernel, grad_output, strides, pads)
    with pytest.MonkeyPatch.context() as monkeypatch:
        depth = kernel_size[0] * kernel_size[1] * shape[3]
        force_rows_per_chunk(monkeypatch, rows_per_chunk, out_w, depth, 8)
        calls = count_chunk_calls(monkeypatch)
        y = conv_module.conv2d_forward(x, kernel, strides, pads)
        grad_input, grad_kernel = conv_module.conv2d_backward(grad_output, x, kernel, strides, pads)
        with conv_module.without_input_gradient():
            none, kernel_only = conv_module.conv2d_backward(grad_output, x, kernel, strides, pads)
    chunk_count = -(-shape[0] * out_h // rows_per_chunk)
    assert len(calls["im2col_rows"]) == 3 * chunk_count  # forward, backward, backward without dx
    assert len(calls["col2im_rows_add"]) == chunk_count  # only when the input gradient is wanted
    assert none is None
    np.testing.assert_allclose(y, expected_y, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(grad_input, expected_grad_input, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(grad_kernel, expected_grad_kernel, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(kernel_only, expected_grad_kernel, rtol=1e-12, atol=1e-12)


def test_chunked_float32_stays_float32_and_matches_float64(monkeypatch):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 9, 8, 3))
    kernel = rng.standard_normal((3, 3, 3, 4))
    out_h, out_w, pads = kernels.conv_geometry(x.shape, (3, 3), (2, 2), "same")
    grad_output = rng.standard_normal((2, out_h, out_w, 4))
    expected = whole_matrix_convolution(x, kernel, grad_output, (2, 2), pads)
    force_rows_per_chunk(monkeypatch, 2, out_w, 27, 4)  # 2*5 = 10 output rows in 5 chunks
    x32, kernel32, grad32 = (array.astype(np.float32) for array in (x, kernel, grad_output))
    y = conv_module.conv2d_forward(x32, kernel32, (2, 2), pads)
    grad_input, grad_kernel = conv_module.conv2d_backward(grad32, x32, kernel32, (2, 2), pads)
    for received, wanted in zip((y, grad_input, grad_kernel), expected):
        assert received.dtype == np.float32
        np.testing.assert_allclose(received, wanted, rtol=1e-4, atol=1e-4)


def test_row_chunks_cover_every_row_once_and_small_layers_take_one_chunk():
    rows_per_chunk, chunks = conv_module._row_chunks(745, 147, 288, 32, 4)  # 149x149x32 layer
    assert rows_per_chunk > 1 and len(chunks) > 1
    covered = [row for first, count in chunks for row in range(first, first + count)]
    assert covered == list(range(745))
    assert max(count for _, count in chunks) == rows_per_chunk
    assert max(count for _, count in chunks) - min(count for _, count in chunks) <= 1   # equal sizes
    # 8x8x448 -> 384 (1.3 MB of cols, a 6 MB kernel): one chunk, as without chunking.
    assert conv_module._row_chunks(40, 8, 3 * 3 * 448, 384, 4) == (40, [(0, 40)])

