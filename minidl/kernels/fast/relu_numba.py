"""ReLU forward and backward compiled with Numba: one parallel pass each.

Same results as :mod:`minidl.kernels.reference.relu`, bit for bit (NaN and -0.0 included).
NumPy runs ``np.maximum`` on one core, and its backward ``g * (a > 0)`` makes two passes
and a boolean temporary; here both are one pass split over the cores. Each ``prange``
iteration owns one block of the flattened array, so no two threads write the same element.

The update is written as a select (``zero if z <= zero else z``) with an unconditional
store: an ``if`` around the store compiles to masked stores, which are slow on AMD CPUs.
Each block's loop runs over slices of its own (``z[start:stop]``), indexed from 0: Numba
then vectorises it (SIMD, 8 to 16 floats per instruction). Indexed as ``z[i]`` with ``i``
from ``start`` to ``stop`` the same loop stayed scalar, 8x slower (``benchmarks/README.md``).

Example::

    a = relu_forward(z)
    grad_z = relu_backward(grad_a, a)
"""
import numpy as np
from numba import prange

from minidl.kernels.fast.compiled import TwoBuilds

_BLOCK = 16384   # elements per parallel task: big enough to amortise the scheduling


@TwoBuilds
def _relu_forward_kernel(z, out):
    zero = z.dtype.type(0)
    blocks = (z.size + _BLOCK - 1) // _BLOCK
    for block in prange(blocks):
        start, stop = block * _BLOCK, min((block + 1) * _BLOCK, z.size)
        z_block, out_block = z[start:stop], out[start:stop]
        for i in range(z_block.size):
            value = z_block[i]
            # '<=' sends -0.0 to +0.0 and keeps NaN, exactly like np.maximum(z, 0).
            out_block[i] = zero if value <= zero else value


@TwoBuilds
def _relu_backward_kernel(grad_output, output, grad_input):
    zero = grad_output.dtype.type(0)
    one = grad_output.dtype.type(1)
    blocks = (output.size + _BLOCK - 1) // _BLOCK
    for block in prange(blocks):
        start, stop = block * _BLOCK, min((block + 1) * _BLOCK, output.size)
        grad_block, output_block, input_block = grad_output[start:stop], output[start:stop], grad_input[start:stop]
        for i in range(output_block.size):
            # g * 1 or g * 0, like NumPy's g * (a > 0): inf * 0 stays NaN.
            input_block[i] = grad_block[i] * (one if output_block[i] > zero else zero)


def relu_forward(z):
    """a = max(0, z), in z's dtype."""
    z = np.ascontiguousarray(z)
    out = np.empty_like(z)
    _relu_forward_kernel(z.size, z.reshape(-1), out.reshape(-1))
    return out


def relu_backward(grad_output, output):
    """dL/dz = grad_output where output > 0, else 0."""
    if grad_output.shape != output.shape:
        raise ValueError(
            "minidl/kernels/fast/relu_numba.py relu_backward: grad_output and output must have the "
            f"same shape, got {grad_output.shape} and {output.shape}")
    grad_output = np.ascontiguousarray(grad_output)
    output = np.ascontiguousarray(output)
    grad_input = np.empty_like(grad_output)
    _relu_backward_kernel(output.size, grad_output.reshape(-1), output.reshape(-1), grad_input.reshape(-1))
    return grad_input
