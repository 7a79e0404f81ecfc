"""Winograd convolution: the same stride-1 convolution with fewer multiplications.

A convolution's output pixel costs KH*KW*C multiply-adds per filter. Winograd's minimal
filtering algorithm F(m, r) (Winograd 1980; Lavin & Gray, "Fast Algorithms for
Convolutional Neural Networks", 2016) computes m neighbouring outputs of an r-tap filter
with m + r - 1 multiplications instead of m * r. In one dimension, with an input tile d of
length A = m + r - 1 and a filter g of length r:

    y = AT @ ((G @ g) * (BT @ d))          y[i] = sum_j d[i + j] g[j],  i < m

AT (m x A), G (A x r) and BT (A x A) are fixed matrices (``winograd_matrices`` builds
them). Nested on both axes of an image, F(4x4, 3x3) makes 4x4 outputs of a 3x3 kernel from
a 6x6 input tile with 36 multiplications instead of 144, for every (input channel, filter)
pair. Those element-wise products summed over the input channels are matrix products: for
each of the A_h*A_w positions (a, b) of a tile,

    U[a, b] = (BT_h d BT_w^T)[a, b]   for every tile and channel:        (tiles, C)
    V[a, b] = (G_h g G_w^T)[a, b]     for every channel and filter:      (C, F)
    M[a, b] = U[a, b] @ V[a, b]                                          (tiles, F)
    y_tile  = AT_h M AT_w^T           for every tile and filter           (m_h x m_w pixels)

minidl uses F(4, 3), F(4, 5) and F(4, 7) on each axis that has a kernel length of 3, 5 or
7, and nothing (F(1, 1)) on an axis of length 1. The products then do 4x fewer
multiply-adds than im2col's for a 3x3 kernel, 6.25x fewer for a 5x5 (8x8 tiles), 2.8x fewer
for InceptionV3's 1x7 and 7x1 kernels and 2x fewer for its 1x3 and 3x1. The transforms cost
additions and memory traffic, so thin layers lose (see ``_MIN_CHANNELS``).

The numbers are not the same bit for bit as im2col's: the sums run in another order and the
transforms round, more so the larger the tile (entries of BT up to 17 for F(4, 7)). In
float32 a layer's output differs from im2col's by about 1e-5 of its largest value (im2col's
own float32 error is about 5e-7); in float64 by about 1e-14. The engine's conv2d_forward
(``conv.py``) uses it in training too (the kernel is then transformed again after every
step), for a stride-1 layer's input gradient, a convolution of grad_y with the kernel
turned around, and for the kernel gradient of the layers whose forward it runs
(:func:`winograd_kernel_gradient`: the forward's steps walked back).
``minidl.config.set_winograd(False)`` or ``MINIDL_WINOGRAD=0`` switches it off: every
convolution is then im2col's, bit for bit.

Work goes in chunks of tile rows, like ``conv.py``'s chunks of output rows: the input
transform of a chunk, its A_h*A_w products, the output transform and the epilogue (batch
norm + ReLU, applied by the output transform itself as it writes each pixel when it is a
fused inference batch norm), while the chunk's U and M are in cache. A layer whose U and M
fit in the L3 cache is one chunk, whose products the cores share position by position; a
larger one has many chunks, which go to every core (``chunks.py``). Why each threshold below
is where it is, and what Winograd saves: ``benchmarks/README.md``
(``benchmarks/winograd_layers.py`` measures it).

Example::

    plan = winograd_plan(x.shape, kernel.shape, (1, 1), pads)      # None if it does not apply
    y = winograd_conv2d_forward(x, transform_kernel(kernel, plan), plan)
    # y equals conv2d_forward(x, kernel, (1, 1), pads) up to float rounding
"""
import weakref
from dataclasses import dataclass
from fractions import Fraction
from functools import cache

import numpy as np

from minidl.kernels.fast import winograd_numba
from minidl.kernels.fast.batchnorm_numba import InferenceEpilogue
from minidl.kernels.fast.chunks import (
    equal_chunks,
    for_each_chunk,
    output_rows,
    sum_of_products,
    sum_over_chunks,
)
from minidl.kernels.geometry import padded_output_size

# F(m, r) for each kernel length r used: (m, interpolation points). The points are small
# numbers (0, +-1, +-2, +-1/2, +-3/2, and infinity, implicit), which keep the matrices'
# entries small and so the rounding small: with +-3 instead of +-3/2, F(4, 7)'s float32
# error was twice as large. m = 4 rather than 2: fewer multiplications for a little more
# rounding, measurably faster for InceptionV3's 3x3 and 1x7 / 7x1 layers.
_ALGORITHMS = {
    1: (1, ()),
    3: (4, (0, 1, -1, 2, -2)),
    5: (4, (0, 1, -1, 2, -2, Fraction(1, 2), Fraction(-1, 2))),
    7: (4, (0, 1, -1, 2, -2, Fraction(1, 2), Fraction(-1, 2), Fraction(3, 2), Fraction(-3, 2))),
}

# Chosen by measurement (all InceptionV3 layers Winograd applies to, batch 5;
# ``benchmarks/winograd_layers.py``, figures in ``benchmarks/README.md``):
# * fewer input channels than _MIN_CHANNELS: the A_h*A_w products are too thin to be
#   fast, and im2col wins -- unless there are at least _MIN_THIN_CHANNELS of them and
#   _MIN_THIN_FILTERS filters (the stem's 147x147x32 -> 64: 16.8 ms against im2col's
#   23 ms; 149x149x32 -> 32, once the transforms took a tile row's tiles in groups
#   (winograd_numba.py): forward 0.61-0.68 of im2col's time, backward 0.47-0.58);
# * a layer whose U + M fit in _WHOLE_LAYER_BYTES (in the L3 cache) runs as one chunk,
#   its products shared between the cores by position; smaller chunks made the products
#   too small to be fast.
#   A larger layer goes in chunks of about _CHUNK_BYTES, shared between the cores like
#   conv.py's; its kernel gradient in chunks of about _KERNEL_GRADIENT_CHUNK_BYTES, one
#   contiguous run of them per core (73x73x80 -> 192: 2 MB 23.3 ms, 4 MB 22.4, 8 MB
#   24.6, 16 MB 30.7 ms; im2col's 42-44 ms);
# * an output smaller than _MIN_OUTPUT_SIZE on a side: a few tiles per image, and the
#   products no faster than im2col's, while their transformed kernels take memory.
_MIN_CHANNELS = 48
_MIN_THIN_CHANNELS, _MIN_THIN_FILTERS = 32, 32
_MIN_OUTPUT_SIZE = 16
_WHOLE_LAYER_BYTES = 32 * 2**20
_CHUNK_BYTES = 2 * 2**20
_KERNEL_GRADIENT_CHUNK_BYTES = 4 * 2**20


@cache
def winograd_matrices(m, r, points):
    """(AT, G, BT) of F(m, r) as float64 arrays, shapes (m, A), (A, r), (A, A), A = m + r - 1.

    ``points`` are the A - 1 finite interpolation points p_k (Cook-Toom); infinity is the
    last one. AT[i, k] = p_k**i and G[k, j] = p_k**j / prod over l != k of (p_k - p_l),
    plus a last column/row for the point at infinity. BT is then the one matrix that makes
    ``AT ((G g) * (BT d))`` the correlation of d with g for every d and g: a linear system,
    solved here and checked.
    """
    if len(points) != m + r - 2 and m + r > 2:
        raise ValueError(f"minidl/kernels/fast/winograd.py: F({m}, {r}) needs {m + r - 2} points, got {len(points)}")
    alpha = m + r - 1
    if alpha == 1:
        return np.ones((1, 1)), np.ones((1, 1)), np.ones((1, 1))
    output_matrix = np.zeros((m, alpha))
    filter_matrix = np.zeros((alpha, r))
    for k, point in enumerate(points):
        output_matrix[:, k] = [float(point ** i) for i in range(m)]
        denominator = np.prod([float(point - other) for other in points if other != point])
        filter_matrix[k] = [float(point ** j) / denominator for j in range(r)]
    output_matrix[m - 1, alpha - 1] = 1.0         # the point at infinity
    filter_matrix[alpha - 1, r - 1] = 1.0
    # y[i] = sum_k AT[i,k] (G g)[k] (BT d)[k] must equal sum_j g[j] d[i+j]: for each input
    # position l, sum_k AT[i,k] G[k,j] BT[k,l] = 1 if l == i + j else 0.
    system = np.einsum("ik,kj->ijk", output_matrix, filter_matrix).reshape(m * r, alpha)
    wanted = np.zeros((m * r, alpha))
    for i in range(m):
        for j in range(r):
            wanted[i * r + j, i + j] = 1.0
    input_matrix = np.linalg.lstsq(system, wanted, rcond=None)[0]
    if not np.allclose(system @ input_matrix, wanted, atol=1e-9):
        raise ArithmeticError(f"minidl/kernels/fast/winograd.py: F({m}, {r}) has no input transform")
    input_matrix[np.abs(input_matrix) < 1e-12] = 0.0       # exact zeros: the kernels skip them
    return output_matrix, filter_matrix, input_matrix


@dataclass(frozen=True)
class WinogradPlan:
    """How one convolution runs as Winograd: tile sizes, tile counts, padding, sizes."""
    tile_output: tuple      # (m_h, m_w): output pixels per tile
    kernel_size: tuple      # (r_h, r_w)
    tiles: tuple            # (tiles_h, tiles_w) per image
    pads: tuple             # (top, left)
    in_size: tuple          # (H, W)
    out_size: tuple         # (OH, OW)
    batch: int
    channels: int
    filters: int

    def matrices(self, dtype):
        """((AT_h, AT_w), (G_h, G_w), (BT_h, BT_w)) in ``dtype``."""
        return _matrices(self.tile_output, self.kernel_size, np.dtype(dtype).str)


@cache
def _matrices(tile_output, kernel_size, dtype):
    per_axis = [winograd_matrices(m, r, _ALGORITHMS[r][1]) for m, r in zip(tile_output, kernel_size)]
    return tuple(tuple(np.ascontiguousarray(axis[which], dtype=dtype) for axis in per_axis)
                 for which in range(3))


def winograd_plan(x_shape, kernel_shape, strides, pads):
    """A :class:`WinogradPlan` for this convolution, or None if Winograd does not apply.

    It applies to stride 1 with kernel lengths 1, 3, 5 or 7 (not 1x1: that is one product
    already), at least ``_MIN_CHANNELS`` input channels (or ``_MIN_THIN_CHANNELS`` with
    ``_MIN_THIN_FILTERS`` filters) and an output of at least
    ``_MIN_OUTPUT_SIZE`` on each side. ``pads`` as from :func:`minidl.kernels.conv_geometry`.
    """
    kernel_h, kernel_w, channels, filters = kernel_shape
    wide_enough = channels >= _MIN_CHANNELS or (channels >= _MIN_THIN_CHANNELS and filters >= _MIN_THIN_FILTERS)
    if tuple(strides) != (1, 1) or (kernel_h, kernel_w) == (1, 1) or not wide_enough:
        return None
    if kernel_h not in _ALGORITHMS or kernel_w not in _ALGORITHMS:
        return None
    out_h, out_w = padded_output_size(x_shape, (kernel_h, kernel_w), strides, pads,
                                      where="minidl/kernels/fast/winograd.py winograd_plan")
    if min(out_h, out_w) < _MIN_OUTPUT_SIZE:
        return None
    tile_output = (_ALGORITHMS[kernel_h][0], _ALGORITHMS[kernel_w][0])
    tiles = (-(-out_h // tile_output[0]), -(-out_w // tile_output[1]))
    return WinogradPlan(tile_output, (kernel_h, kernel_w), tiles, (pads[0][0], pads[1][0]),
                        tuple(x_shape[1:3]), (out_h, out_w), x_shape[0], channels, filters)


def transform_kernel(kernel, plan):
    """V (A_h*A_w, C, F) = G_h g G_w^T for every (channel, filter) of HWIO ``kernel``."""
    _, (g_h, g_w), _ = plan.matrices(kernel.dtype)
    kernel_h, kernel_w, channels, filters = kernel.shape
    transformed = kernel.reshape(kernel_h, kernel_w, channels * filters)
    if kernel_h > 1:          # an axis of length 1 has G = [[1]]: nothing to do
        transformed = np.tensordot(g_h, transformed, axes=(1, 0))        # (A_h, KW, C*F)
    if kernel_w > 1:
        transformed = np.matmul(g_w, transformed)                         # (A_h, A_w, C*F)
    return np.ascontiguousarray(transformed).reshape(-1, channels, filters)


class TransformedKernels:
    """Each kernel's V, transformed once and again only when the kernel's values change.

    Kept per kernel array: a layer's float32 kernel is the same array from call to call
    (an optimizer updates it in place), so ``predict`` transforms each kernel once and
    later only compares it with the copy kept here (comparing costs far less than
    transforming; figures in ``benchmarks/README.md``). In training every step changes
    the kernels, so both are paid there. An entry goes when its kernel array is freed.
    """

    def __init__(self):
        self._kept = {}       # id(kernel) -> (weak reference, kernel copy, algorithm, V)

    def get(self, kernel, plan):
        """V for ``kernel`` (HWIO) as ``plan`` tiles it."""
        key = id(kernel)
        algorithm = (plan.tile_output, plan.kernel_size)     # V does not depend on the image size
        kept = self._kept.get(key)
        if (kept is None or kept[0]() is not kernel or algorithm != kept[2]
                or kernel.dtype != kept[1].dtype or not np.array_equal(kernel, kept[1])):
            reference = weakref.ref(kernel, lambda _, key=key: self._kept.pop(key, None))
            kept = self._kept[key] = (reference, kernel.copy(), algorithm, transform_kernel(kernel, plan))
        return kept[3]


def winograd_conv2d_forward(x, transformed_kernel, plan, epilogue=None, out=None):
    """y (N, OH, OW, F) of the convolution ``plan`` describes, from V = ``transform_kernel(...)``.

    ``epilogue`` and ``out`` work as in :func:`minidl.kernels.fast.conv.conv2d_forward`.
    """
    (out_h, out_w), tiles_w = plan.out_size, plan.tiles[1]
    expected = (plan.batch,) + plan.in_size + (plan.channels,)
    if x.shape != expected:
        raise ValueError(f"minidl/kernels/fast/winograd.py: x has shape {x.shape}, the plan was made for "
                         f"inputs of shape {expected}")
    x = np.ascontiguousarray(x)
    dtype = np.result_type(x.dtype, transformed_kernel.dtype)
    y_2d = output_rows(out, (plan.batch, out_h, out_w, plan.filters), dtype,
                       "minidl/kernels/fast/winograd.py winograd_conv2d_forward")
    (output_h, output_w), _, (input_h, input_w) = plan.matrices(x.dtype)
    positions = input_h.shape[0] * input_w.shape[0]
    chunks = forward_chunks(plan, x.dtype.itemsize)
    most_tiles = max(count for _, count in chunks) * tiles_w

    def make_buffers():
        return (np.empty(positions * most_tiles * plan.channels, dtype=x.dtype),
                np.empty(positions * most_tiles * plan.filters, dtype=dtype))

    def convolve_chunk(chunk, buffers):
        first_tile_row, tile_row_count = chunk
        tile_count = tile_row_count * tiles_w
        # The start of each flat buffer, shaped for this chunk: contiguous even when the
        # chunk is smaller than the largest (Numba vectorises the transforms on those).
        tiles_in = buffers[0][:positions * tile_count * plan.channels].reshape(positions, tile_count, -1)
        products = buffers[1][:positions * tile_count * plan.filters].reshape(positions, tile_count, -1)
        winograd_numba.winograd_input_rows(x, input_h, input_w, plan.tile_output, plan.pads, plan.tiles,
                                    first_tile_row, tile_row_count, tiles_in)
        if len(chunks) == 1:
            _products_shared_by_position(tiles_in, transformed_kernel, products)
        else:          # the chunks are shared between the cores already
            np.matmul(tiles_in, transformed_kernel, out=products)
        first_pixel, last_pixel = (_first_pixel(plan, row) for row in (first_tile_row,
                                                                       first_tile_row + tile_row_count))
        pixels = y_2d[first_pixel:last_pixel]
        if isinstance(epilogue, InferenceEpilogue):     # applied pixel by pixel as it is written
            winograd_numba.winograd_output_rows(products, output_h, output_w, plan.tiles, first_tile_row,
                                                tile_row_count, plan.out_size, pixels, batchnorm=epilogue)
            return
        winograd_numba.winograd_output_rows(products, output_h, output_w, plan.tiles, first_tile_row,
                                            tile_row_count, plan.out_size, pixels)
        if epilogue is not None:
            epilogue(pixels)

    for_each_chunk(chunks, make_buffers, convolve_chunk)
    return y_2d.reshape(plan.batch, out_h, out_w, plan.filters) if out is None else out


def forward_chunks(plan, itemsize):
    """The forward's chunks, (first tile row, tile rows) each: the whole layer when its U + M
    fit in ``_WHOLE_LAYER_BYTES``, else chunks of about ``_CHUNK_BYTES``."""
    positions = (plan.tile_output[0] + plan.kernel_size[0] - 1) * (plan.tile_output[1] + plan.kernel_size[1] - 1)
    tile_row_bytes = positions * plan.tiles[1] * (plan.channels + plan.filters) * itemsize
    tile_rows = plan.batch * plan.tiles[0]
    chunk_bytes = _CHUNK_BYTES if tile_rows * tile_row_bytes > _WHOLE_LAYER_BYTES else _WHOLE_LAYER_BYTES
    return equal_chunks(0, tile_rows, -(-tile_rows // max(1, chunk_bytes // tile_row_bytes)))


def winograd_kernel_gradient(x, grad_y, plan):
    """dL/dK (KH, KW, C, F) of y = the convolution ``plan`` describes, from x and dL/dy.

    The forward's steps walked back (module docstring), for every tile and position (a, b):

        dM      = AT_h^T dY_tile AT_w     dY_tile: the tile's m_h x m_w pixels of dL/dy,
                                          zeros past the image's edge       (tiles, F)
        dV[a,b] = U[a,b]^T @ dM[a,b]      summed over all the tiles          (C, F)
        dK      = G_h^T dV G_w            the kernel transform's adjoint

    U is the forward's input transform of x, made again here chunk by chunk, and dM the
    same kernel run on dL/dy with AT^T in place of BT (it reads m x m pixels per tile).
    The products do A_h*A_w*C*F multiply-adds per tile where im2col's cols^T @ G does
    m_h*m_w*KH*KW*C*F: 2.25x fewer for F(4x4, 3x3), 1.6x for F(4, 7). The numbers equal
    im2col's up to float rounding (``tests/test_winograd.py``).
    """
    expected_y = (plan.batch,) + plan.out_size + (plan.filters,)
    if x.shape != (plan.batch,) + plan.in_size + (plan.channels,) or grad_y.shape != expected_y:
        raise ValueError(f"minidl/kernels/fast/winograd.py winograd_kernel_gradient: x {x.shape} and "
                         f"grad_y {grad_y.shape} do not fit the plan's (input {plan.in_size}, output {expected_y})")
    dtype = np.result_type(x.dtype, grad_y.dtype)
    x, grad_y = np.ascontiguousarray(x, dtype=dtype), np.ascontiguousarray(grad_y, dtype=dtype)
    (output_h, output_w), (filter_h, filter_w), (input_h, input_w) = plan.matrices(dtype)
    gradient_h, gradient_w = (np.ascontiguousarray(matrix.T) for matrix in (output_h, output_w))
    positions = input_h.shape[0] * input_w.shape[0]
    tiles_w = plan.tiles[1]
    tile_row_bytes = positions * tiles_w * (plan.channels + plan.filters) * dtype.itemsize
    tile_rows = plan.batch * plan.tiles[0]
    layer_bytes = tile_rows * tile_row_bytes
    chunk_bytes = _KERNEL_GRADIENT_CHUNK_BYTES if layer_bytes > _WHOLE_LAYER_BYTES else _WHOLE_LAYER_BYTES
    chunks = equal_chunks(0, tile_rows, -(-layer_bytes // chunk_bytes))
    most_tiles = max(count for _, count in chunks) * tiles_w

    def transformed(chunk, buffers):
        """(U, dM) of one chunk's tiles, in the starts of the flat ``buffers``."""
        first_tile_row, tile_row_count = chunk
        tile_count = tile_row_count * tiles_w
        tiles_in = buffers[0][:positions * tile_count * plan.channels].reshape(positions, tile_count, -1)
        grads = buffers[1][:positions * tile_count * plan.filters].reshape(positions, tile_count, -1)
        winograd_numba.winograd_input_rows(x, input_h, input_w, plan.tile_output,
                                           plan.pads, plan.tiles, first_tile_row, tile_row_count, tiles_in)
        winograd_numba.winograd_input_rows(grad_y, gradient_h, gradient_w,
                                           plan.tile_output, (0, 0), plan.tiles, first_tile_row,
                                           tile_row_count, grads)
        return tiles_in, grads

    def make_buffers():
        return (np.empty(positions * most_tiles * plan.channels, dtype=dtype),
                np.empty(positions * most_tiles * plan.filters, dtype=dtype))

    if len(chunks) == 1:      # the cores share the products, position by position
        tiles_in, grads = transformed(chunks[0], make_buffers())
        grad_v = np.empty((positions, plan.channels, plan.filters), dtype=dtype)
        _products_shared_by_position(tiles_in.transpose(0, 2, 1), grads, grad_v)
    else:
        def sum_in_order(run):
            buffers = make_buffers()
            return sum_of_products((tiles_in.transpose(0, 2, 1), grads)
                                   for tiles_in, grads in (transformed(chunk, buffers) for chunk in run))

        grad_v = sum_over_chunks(chunks, sum_in_order)
    return _kernel_transform_adjoint(grad_v, filter_h, filter_w, plan)


def _kernel_transform_adjoint(grad_v, filter_h, filter_w, plan):
    """dK (KH, KW, C, F) = G_h^T dV G_w for every (channel, filter): ``transform_kernel`` walked back."""
    alpha_h, alpha_w = filter_h.shape[0], filter_w.shape[0]
    kernel_h, kernel_w = plan.kernel_size
    along_h = (filter_h.T @ grad_v.reshape(alpha_h, -1)).reshape(kernel_h, alpha_w, -1)
    return np.matmul(filter_w.T, along_h).reshape(kernel_h, kernel_w, plan.channels, plan.filters)


def _products_shared_by_position(lefts, rights, products):
    """products[p] = lefts[p] @ rights[p] for every tile position p, the cores taking whole
    positions in turn (``chunks.py``), each product on one core. The forward's M = U @ V
    and the kernel gradient's dV = U^T @ dM.

    A layer that runs as one chunk has A_h*A_w small products (35x35 layers: (405 x 96) @
    (96 x 96)); one ``np.matmul`` over all of them splits each small product between the
    cores, which then wait for each other 36 times. Whole positions per core ran the
    products of InceptionV3's 35x35 layers 1.5 to 2x faster (``benchmarks/README.md``).
    """
    def one_position(position, _):
        index = position[0]
        np.matmul(lefts[index], rights[index], out=products[index])

    for_each_chunk([(index, 1) for index in range(len(products))], lambda: None, one_position)


def _first_pixel(plan, tile_row):
    """Index in y_2d of the first output pixel of ``tile_row`` (or the end, past the last)."""
    (out_h, out_w), tiles_h, tile_h = plan.out_size, plan.tiles[0], plan.tile_output[0]
    image, row_in_image = divmod(tile_row, tiles_h)
    return (image * out_h + min(row_in_image * tile_h, out_h)) * out_w

