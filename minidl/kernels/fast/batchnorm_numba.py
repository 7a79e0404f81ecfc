"""Batch normalization compiled with Numba: the fast path.

Same equations and contract as :mod:`minidl.kernels.reference.batchnorm` (read it first).
x is viewed as ``rows`` of shape (n, C) (one row per pixel).

Parallelism without write races: the n rows are cut into a fixed number of blocks; each
``prange`` iteration sums its own block into its own row of ``partial`` (float64), and the
blocks are then reduced serially. The block count does not depend on the thread count, so
results are identical on every machine. Elementwise passes run ``prange`` over rows.

Compared with NumPy, a training forward reads x twice (statistics in one pass, then the
output) and writes y once, with no temporaries of x's size.

The inference epilogue of a fused convolution (``batchnorm_inference_rows`` with
``out=rows``) runs in place through a kernel of its own that reads and writes one array:
given two arguments that are the same memory, the compiled loop finds at run time that
they overlap and falls back to one float at a time (4x slower). Rows that are a column
slice of a concatenation's output reach it as ``(parent, first_column)``
(``layout.py``), so that it runs vectorised there too.

A training step's batch norm and the ReLU after it (``minidl/engine/fusion.py``) run through
:func:`batchnorm_relu_train_forward` (the ReLU applied in the same pass as the batch norm)
and :func:`batchnorm_relu_backward` (the ReLU's mask recomputed from x, the forward's very
operations, inside both backward passes): the same bits as the two layers one by one.

Example::

    y, mean, variance, inv_std = batchnorm_train_forward(x, None, beta, 1e-3)
"""
import numpy as np
from numba import njit, prange

from minidl.kernels.fast.compiled import TwoBuilds
from minidl.kernels.fast.layout import column_block

_BLOCKS = 64  # row blocks for the parallel reductions (fixed => deterministic results)


@njit(cache=True)
def _block_bounds(block, blocks, count):
    return block * count // blocks, (block + 1) * count // blocks


@TwoBuilds
def _mean_and_variance(rows):
    """Per-channel mean and biased variance in float64, reading x once.

    Sums of d = x - shift and d² with shift = the first row: a shift by a value
    from the data keeps E[d²] - E[d]² free of cancellation (the textbook one-pass
    E[x²] - E[x]² would lose digits when |mean| >> std), and float64 sums keep the
    rest exact to ~1e-12, so this matches the reference's two passes.
    """
    count, channels = rows.shape
    blocks = min(_BLOCKS, count)
    shift = rows[0].astype(np.float64)
    # Each block accumulates straight into its own row of the partial sums. (Allocating
    # per-block accumulators inside the prange body cost more per call than the
    # sums themselves on InceptionV3's 17x17 and 8x8 maps.)
    partial_sum = np.zeros((blocks, channels))
    partial_squares = np.zeros((blocks, channels))
    for block in prange(blocks):
        start, stop = _block_bounds(block, blocks, count)
        for i in range(start, stop):
            for c in range(channels):
                deviation = rows[i, c] - shift[c]
                partial_sum[block, c] += deviation
                partial_squares[block, c] += deviation * deviation
    shifted_mean = partial_sum.sum(axis=0) / count
    mean_square = partial_squares.sum(axis=0) / count
    variance = np.maximum(mean_square - shifted_mean * shifted_mean, 0.0)
    return shift + shifted_mean, variance


@TwoBuilds      # nogil, as every build: a convolution's epilogue may run on several threads
def _scale_and_shift(rows, center, scale, shift, relu, out):
    """out[i, c] = (rows[i, c] - center[c]) * scale[c] + shift[c], then max(0, .) if relu.

    ``out`` may be ``rows`` itself (each element is read before it is written).
    """
    count, channels = rows.shape
    zero = rows.dtype.type(0)
    for i in prange(count):
        for c in range(channels):
            value = (rows[i, c] - center[c]) * scale[c] + shift[c]
            # '<=' sends -0.0 to +0.0 and keeps NaN, exactly like relu_forward.
            out[i, c] = zero if relu and value <= zero else value


@TwoBuilds
def _scale_and_shift_in_place(parent, first_column, center, scale, shift, relu):
    """_scale_and_shift of ``parent[:, first_column:first_column + C]`` into itself (C = center.size)."""
    count = parent.shape[0]
    channels = center.size
    zero = parent.dtype.type(0)
    for i in prange(count):
        row = parent[i][first_column:first_column + channels]
        for c in range(channels):
            value = (row[c] - center[c]) * scale[c] + shift[c]
            row[c] = zero if relu and value <= zero else value


@njit(cache=True, nogil=True, inline="always")
def _through_relu(grad, x, c, relu, zero):
    """The gradient g at element x of channel c: ``grad`` itself, or, when ``relu`` holds the
    forward's (center, scale, shift), ``grad`` where that forward's ReLU let x through and 0
    where it did not -- the forward's value recomputed, the same operations, the same bits."""
    if relu is None:
        return grad
    center, scale, shift = relu
    value = (x - center[c]) * scale[c] + shift[c]
    return grad if value > zero else grad * zero     # g * 0, as relu_backward: inf and NaN give NaN


@TwoBuilds
def _gradient_sums(grad_rows, rows, mean, relu):
    """Σ g and Σ g * (x - mean) per channel, in float64 (blocks as in _mean_and_variance);
    g through the ReLU that followed (see _through_relu) when ``relu`` is not None."""
    count, channels = rows.shape
    blocks = min(_BLOCKS, count)
    partial_g = np.zeros((blocks, channels))
    partial_gx = np.zeros((blocks, channels))
    zero = rows.dtype.type(0)
    for block in prange(blocks):
        start, stop = _block_bounds(block, blocks, count)
        for i in range(start, stop):
            for c in range(channels):
                g = _through_relu(grad_rows[i, c], rows[i, c], c, relu, zero)
                partial_g[block, c] += g
                partial_gx[block, c] += g * (rows[i, c] - mean[c])
    return partial_g.sum(axis=0), partial_gx.sum(axis=0)


@TwoBuilds
def _input_gradient(grad_rows, rows, mean, grad_scale, grad_offset, x_scale, relu):
    """grad_input[i, c] = grad_scale[c]*g - grad_offset[c] - x_scale[c]*(x - mean[c]),
    g through the ReLU that followed when ``relu`` is not None (see _through_relu)."""
    count, channels = rows.shape
    grad_input = np.empty_like(rows)
    zero = rows.dtype.type(0)
    for i in prange(count):
        for c in range(channels):
            g = _through_relu(grad_rows[i, c], rows[i, c], c, relu, zero)
            grad_input[i, c] = (grad_scale[c] * g - grad_offset[c] - x_scale[c] * (rows[i, c] - mean[c]))
    return grad_input


def _as_rows(x, where):
    if x.ndim < 2:
        raise ValueError(
            f"minidl/kernels/fast/batchnorm_numba.py {where}: x must have a batch axis and a "
            f"channel axis (e.g. (N, C) or (N, H, W, C)), got shape {x.shape}"
        )
    return np.ascontiguousarray(x).reshape(-1, x.shape[-1])


def _per_channel(values, default, channels, dtype):
    """gamma/beta/statistics as a contiguous (C,) array of ``dtype`` (None -> default)."""
    if values is None:
        return np.full(channels, default, dtype=dtype)
    values = np.asarray(values, dtype=dtype)
    if values.shape == (channels,) and values.flags.c_contiguous:
        return values                       # the usual case, without broadcast_to's cost
    return np.ascontiguousarray(np.broadcast_to(values, (channels,)))


def batchnorm_train_forward(x, gamma, beta, epsilon):
    """Return ``(y, mean, variance, inv_std)`` using the batch statistics."""
    y, mean, variance, inv_std, _ = _train_forward(x, gamma, beta, epsilon, False, "batchnorm_train_forward")
    return y, mean, variance, inv_std


def batchnorm_relu_train_forward(x, gamma, beta, epsilon):
    """relu(batchnorm(x)) with the batch statistics in one pass over x after the statistics'.
    Returns ``(y, mean, variance, inv_std, affine)``: what :func:`batchnorm_train_forward`
    returns, and the per-channel (center, scale, shift) that made y = (x - center) * scale +
    shift (then ReLU), for :func:`batchnorm_relu_backward`. The same numbers, bit for bit, as
    batch norm then ``relu_forward``."""
    return _train_forward(x, gamma, beta, epsilon, True, "batchnorm_relu_train_forward")


def _train_forward(x, gamma, beta, epsilon, relu, where):
    rows = _as_rows(x, where)
    channels = rows.shape[1]
    mean, variance = _mean_and_variance(rows.size, rows)
    inv_std = 1.0 / np.sqrt(variance + epsilon)
    scale = _per_channel(gamma, 1.0, channels, np.float64) * inv_std
    affine = (mean.astype(x.dtype), scale.astype(x.dtype), _per_channel(beta, 0.0, channels, x.dtype))
    y = np.empty_like(rows)
    _scale_and_shift(rows.size, rows, *affine, bool(relu), y)
    return (y.reshape(x.shape), mean.astype(x.dtype), variance.astype(x.dtype), inv_std.astype(x.dtype),
            affine)


def batchnorm_backward(grad_output, x, mean, inv_std, gamma):
    """Return ``(grad_input, grad_gamma, grad_beta)`` (gradients through mean and variance)."""
    return _backward(grad_output, x, mean, inv_std, gamma, None, True, "batchnorm_backward")


def batchnorm_relu_backward(grad_output, x, mean, inv_std, gamma, relu_affine, input_gradient=True):
    """:func:`batchnorm_backward` of relu(batchnorm(x)) from dL/d(relu's output), given the
    forward's ``relu_affine`` (:func:`batchnorm_relu_train_forward`): the ReLU's mask is
    recomputed from x as the forward computed it, so neither the ReLU's gradient nor its
    output is read or made. The same numbers, bit
    for bit, as ``relu_backward`` then :func:`batchnorm_backward`.
    ``input_gradient=False`` returns None for dL/dx and skips its pass."""
    return _backward(grad_output, x, mean, inv_std, gamma, relu_affine, input_gradient, "batchnorm_relu_backward")


def _backward(grad_output, x, mean, inv_std, gamma, relu_affine, input_gradient, where):
    rows = _as_rows(x, where)
    count, channels = rows.shape
    grad_rows = np.ascontiguousarray(grad_output, dtype=x.dtype).reshape(rows.shape)
    mean_x = _per_channel(mean, 0.0, channels, x.dtype)
    inv_std = _per_channel(inv_std, 1.0, channels, np.float64)
    gamma = _per_channel(gamma, 1.0, channels, np.float64)
    sum_g, sum_g_centered = _gradient_sums(rows.size, grad_rows, rows, mean_x, relu_affine)
    grad_beta = sum_g
    grad_gamma = sum_g_centered * inv_std              # Σ g * x_hat
    grad_input = None
    if input_gradient:
        # (gamma*inv_std/n) * (n*g - Σg - x_hat*Σ(g*x_hat)), expanded per channel:
        scale = gamma * inv_std
        grad_input = _input_gradient(
            rows.size, grad_rows, rows, mean_x, scale.astype(x.dtype), (scale * sum_g / count).astype(x.dtype),
            (scale * grad_gamma * inv_std / count).astype(x.dtype), relu_affine).reshape(x.shape)
    return grad_input, grad_gamma.astype(x.dtype), grad_beta.astype(x.dtype)


def batchnorm_inference(x, moving_mean, moving_variance, gamma, beta, epsilon):
    """y = gamma * (x - moving_mean) / sqrt(moving_variance + epsilon) + beta."""
    rows = _as_rows(x, "batchnorm_inference")
    affine = batchnorm_inference_affine(moving_mean, moving_variance, gamma, beta, epsilon,
                                        rows.shape[1], x.dtype)
    return batchnorm_inference_rows(rows, affine, relu=False, out=np.empty_like(rows)).reshape(x.shape)


def batchnorm_inference_affine(moving_mean, moving_variance, gamma, beta, epsilon, channels, dtype):
    """The per-channel ``(center, scale, shift)`` that inference applies, in ``dtype``:
    y = (x - center) * scale + shift, with scale = gamma / sqrt(moving_variance + epsilon)."""
    variance = _per_channel(moving_variance, 1.0, channels, np.float64)
    scale = _per_channel(gamma, 1.0, channels, np.float64) / np.sqrt(variance + epsilon)
    return (_per_channel(moving_mean, 0.0, channels, dtype), scale.astype(dtype),
            _per_channel(beta, 0.0, channels, dtype))


class InferenceEpilogue:
    """Batch norm at inference (+ ReLU) as a convolution's epilogue: ``epilogue(rows)`` applies
    it in place. A kernel that makes the rows itself may instead apply ``affine`` and ``relu``
    to each pixel as it writes it (Winograd's output transform does), with the same numbers."""

    def __init__(self, affine, relu):
        self.affine = affine          # (center, scale, shift), from batchnorm_inference_affine
        self.relu = bool(relu)

    def __call__(self, rows):
        batchnorm_inference_rows(rows, self.affine, relu=self.relu, out=rows)


def batchnorm_inference_rows(rows, affine, relu, out):
    """Apply ``affine`` (from :func:`batchnorm_inference_affine`) to (n, C) ``rows``, then
    ReLU if ``relu``; writes ``out`` (which may be ``rows``: in place) and returns it."""
    _check_rows_and_out(rows, out, "batchnorm_inference_rows")
    center, scale, shift = affine
    block = column_block(rows) if out is rows else None
    if block is not None:
        _scale_and_shift_in_place(rows.size, *block, center, scale, shift, bool(relu))
    else:
        _scale_and_shift(rows.size, rows, center, scale, shift, bool(relu), out)
    return out


def _check_rows_and_out(rows, out, where):
    if rows.ndim != 2 or out.shape != rows.shape or out.dtype != rows.dtype:
        raise ValueError(
            f"minidl/kernels/fast/batchnorm_numba.py {where}: rows must be 2-D (n, C) and out the same "
            f"shape and dtype; got rows {rows.shape} {rows.dtype}, out {out.shape} {out.dtype}")
