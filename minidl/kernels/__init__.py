"""minidl's compute kernels: convolution (im2col + BLAS), pooling, batch normalization, ReLU.

Every hot kernel exists twice with one signature:

* ``<name>_reference.py`` -- plain NumPy, the version to read;
* ``<name>_numba.py``     -- the same computation compiled with Numba (the default).

The functions below dispatch **at call time** on :func:`minidl.config.kernel_path`, so
``minidl.config.set_kernel_path("reference")`` takes effect immediately, even after import.
All arrays are NHWC; float32 in gives float32 out (no silent upcast).

Example::

    from minidl import kernels
    out_h, out_w, pads = kernels.conv_geometry(x.shape, (3, 3), (1, 1), "same")
    y = kernels.conv2d_forward(x, kernel, (1, 1), pads)
"""
import importlib

from minidl import config

from .geometry import conv_geometry, output_size_and_padding, padded_output_size

# Kernels whose Numba version did not beat NumPy when measured (benchmarks/bench_kernels.py)
# would be listed here to run the reference module on the 'numba' path too.
_REFERENCE_ONLY = frozenset()


_modules = {}   # (family, path) -> module: found once (this runs ~1000 times per inference)


def _module(family):
    """Return the module implementing ``family`` ('conv', 'pooling', ...) on the active path."""
    path = config.kernel_path()
    if family in _REFERENCE_ONLY:
        path = "reference"
    module = _modules.get((family, path))
    if module is None:
        module = _modules[family, path] = importlib.import_module(f"{__name__}.{family}_{path}")
    return module


# --- convolution: im2col / col2im and their chunked forms (conv2d_* live in conv.py) ---
def im2col(x, kernel_size, strides, pads):
    """(N, H, W, C) -> cols (N*OH*OW, KH*KW*C), column order (kh, kw, c). See conv_reference.py."""
    return _module("conv").im2col(x, kernel_size, strides, pads)


def col2im(cols, input_shape, kernel_size, strides, pads):
    """Adjoint of im2col: cols -> (N, H, W, C), overlaps summed, padding dropped."""
    return _module("conv").col2im(cols, input_shape, kernel_size, strides, pads)


def im2col_rows(x, kernel_size, strides, pads, first_row, row_count, out):
    """Fill ``out`` with ``im2col(x)[first_row*OW:(first_row+row_count)*OW]``: one chunk of
    output rows (flattened (n, oh) indices), so conv.py never builds the whole matrix."""
    return _module("conv").im2col_rows(x, kernel_size, strides, pads, first_row, row_count, out)


def col2im_rows_add(grad_cols, first_row, grad_input, kernel_size, strides, pads):
    """Add col2im of one chunk of rows (output rows ``first_row ..``) into ``grad_input``."""
    return _module("conv").col2im_rows_add(grad_cols, first_row, grad_input, kernel_size, strides, pads)


# --- pooling ---
def max_pool_forward(x, pool_size, strides, pads):
    """-> (y, argmax); argmax holds h*W + w into the unpadded input. See pooling_reference.py."""
    return _module("pooling").max_pool_forward(x, pool_size, strides, pads)


def max_pool_backward(grad_output, argmax, input_shape):
    """Scatter-add grad_output to the argmax cells -> grad_input (N, H, W, C)."""
    return _module("pooling").max_pool_backward(grad_output, argmax, input_shape)


def avg_pool_forward(x, pool_size, strides, pads):
    """Window mean over in-bounds cells only (TF excludes padding)."""
    return _module("pooling").avg_pool_forward(x, pool_size, strides, pads)


def avg_pool_backward(grad_output, input_shape, pool_size, strides, pads):
    """Spread each output gradient evenly over its in-bounds cells."""
    return _module("pooling").avg_pool_backward(grad_output, input_shape, pool_size, strides, pads)


# --- batch normalization (channels last) ---
def batchnorm_train_forward(x, gamma, beta, epsilon):
    """-> (y, mean, variance, inv_std) with batch statistics. See batchnorm_reference.py."""
    return _module("batchnorm").batchnorm_train_forward(x, gamma, beta, epsilon)


def batchnorm_backward(grad_output, x, mean, inv_std, gamma):
    """-> (grad_input, grad_gamma, grad_beta) through the batch statistics."""
    return _module("batchnorm").batchnorm_backward(grad_output, x, mean, inv_std, gamma)


def batchnorm_inference(x, moving_mean, moving_variance, gamma, beta, epsilon):
    """y = gamma * (x - moving_mean) / sqrt(moving_variance + epsilon) + beta."""
    return _module("batchnorm").batchnorm_inference(
        x, moving_mean, moving_variance, gamma, beta, epsilon)


def batchnorm_inference_affine(moving_mean, moving_variance, gamma, beta, epsilon, channels, dtype):
    """The per-channel constants of inference batch norm, prepared once per call; pass them
    to :func:`batchnorm_inference_rows` (on the same kernel path)."""
    return _module("batchnorm").batchnorm_inference_affine(
        moving_mean, moving_variance, gamma, beta, epsilon, channels, dtype)


def batchnorm_inference_rows(rows, affine, relu=False, out=None):
    """Inference batch norm (then ReLU if ``relu``) of (n, C) ``rows`` into ``out``
    (default: in place). Equal, bit for bit, to batchnorm_inference then relu_forward."""
    return _module("batchnorm").batchnorm_inference_rows(rows, affine, relu, rows if out is None else out)


# --- Winograd convolution's transforms, one chunk of tile rows (see winograd.py) ---
def winograd_input_rows(x, transform_h, transform_w, tile_output, pads, tiles, first_tile_row,
                        tile_row_count, out):
    """U = BT_h d BT_w^T for every input tile d of the chunk -> ``out`` (A_h*A_w, tiles, C)."""
    return _module("winograd").winograd_input_rows(x, transform_h, transform_w, tile_output, pads, tiles,
                                                   first_tile_row, tile_row_count, out)


def winograd_output_rows(products, transform_h, transform_w, tiles, first_tile_row, tile_row_count,
                         out_size, y_rows):
    """Y = AT_h M AT_w^T for every tile of the chunk -> its output pixels ``y_rows`` (pixels, F)."""
    return _module("winograd").winograd_output_rows(products, transform_h, transform_w, tiles,
                                                    first_tile_row, tile_row_count, out_size, y_rows)


# --- ReLU (elementwise; the layer caches its output, so the backward reads a, not z) ---
def relu_forward(z):
    """a = max(0, z) (NaN stays NaN). See relu_reference.py."""
    return _module("relu").relu_forward(z)


def relu_backward(grad_output, output):
    """dL/dz = grad_output * (output > 0)."""
    return _module("relu").relu_backward(grad_output, output)


# Imported last: conv.py calls the dispatched im2col_rows / col2im_rows_add defined above.
from .conv import conv2d_backward, conv2d_forward  # noqa: E402

__all__ = [
    "output_size_and_padding", "conv_geometry", "padded_output_size",
    "im2col", "col2im", "im2col_rows", "col2im_rows_add", "conv2d_forward", "conv2d_backward",
    "max_pool_forward", "max_pool_backward", "avg_pool_forward", "avg_pool_backward",
    "batchnorm_train_forward", "batchnorm_backward", "batchnorm_inference",
    "batchnorm_inference_affine", "batchnorm_inference_rows",
    "relu_forward", "relu_backward",
]
