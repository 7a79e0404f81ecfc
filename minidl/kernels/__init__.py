"""The operations minidl's layers, activations and optimizers call: the engine boundary.

A layer never computes a convolution itself: ``Conv2D.forward`` calls
``kernels.conv2d_forward(x, kernel, strides, pads)``, as a Keras layer calls ``ops.conv``.
Each operation below exists twice, with one signature and one result:

* ``minidl/kernels/reference/`` -- plain whole-array NumPy, the version to read
  (``cols = im2col(x); y = cols @ K``). ``MINIDL_KERNELS=reference`` runs it: no Numba is
  imported, no thread is started, nothing in the process changes;
* ``minidl/kernels/fast/`` -- the engine (the default, ``MINIDL_KERNELS=numba``): the same
  operations compiled with Numba, in chunks, on every core, with Winograd's algorithm.

======================================================  =========================================
operation                                               returns
======================================================  =========================================
conv2d_forward(x, kernel, strides, pads)                y (N, OH, OW, F)
conv2d_backward(grad_y, x, kernel, strides, pads)       (grad_x, grad_kernel)
im2col(x, kernel_size, strides, pads)                   cols (N*OH*OW, KH*KW*C)
col2im(cols, input_shape, kernel_size, strides, pads)   its adjoint, (N, H, W, C)
max_pool_forward(x, pool_size, strides, pads)           (y, argmax)
max_pool_backward(grad_y, argmax, input_shape)          grad_x
avg_pool_forward(x, pool_size, strides, pads)           y
avg_pool_backward(grad_y, input_shape, pool_size, ...)  grad_x
batchnorm_train_forward(x, gamma, beta, epsilon)        (y, mean, variance, inv_std)
batchnorm_backward(grad_y, x, mean, inv_std, gamma)     (grad_x, grad_gamma, grad_beta)
batchnorm_inference(x, moving_mean, moving_variance,    y
                    gamma, beta, epsilon)
relu_forward(z) / relu_backward(grad_a, a)              a / grad_z
adam_update(value, grad, m, v, beta_1, beta_2,          None: updates value, m, v in place
            epsilon, alpha)
sgd_momentum_update(value, grad, velocity, momentum,    None: updates value, velocity in place
                    learning_rate, nesterov)
affine_warp(image, matrix, offset, fill_mode, cval)     the warped (H, W, C) image
======================================================  =========================================

All arrays are NHWC; float32 in gives float32 out. ``pads`` is ``((top, bottom), (left,
right))`` from :func:`conv_geometry` (``geometry.py``: TensorFlow's 'same' padding).

How the switch works: each name above is, at any moment, the active backend's function --
so a debugger's "step into" on ``kernels.conv2d_forward(...)`` lands in
``reference/conv.py`` (or in the engine's ``fast/conv.py``), with nothing in between.
:func:`minidl.config.set_kernel_path` re-points them at once. The engine is imported
when an operation first runs on the numba path (that is when its process settings are
applied, see ``fast/process_settings.py``), not when minidl is imported. Call the
operations as ``kernels.<name>(...)``: a name copied with ``from minidl.kernels import
...`` does not follow a later switch.

Example::

    from minidl import kernels
    out_h, out_w, pads = kernels.conv_geometry(x.shape, (3, 3), (1, 1), "same")
    y = kernels.conv2d_forward(x, kernel, (1, 1), pads)
"""
import sys

from minidl import config
from minidl.kernels import reference
from minidl.kernels.geometry import conv_geometry, output_size_and_padding, padded_output_size
from minidl.kernels.reference import (adam_update, affine_warp, avg_pool_backward, avg_pool_forward,  # noqa: F401
                                      batchnorm_backward, batchnorm_inference, batchnorm_train_forward,
                                      col2im, conv2d_backward, conv2d_forward, im2col, max_pool_backward,
                                      max_pool_forward, relu_backward, relu_forward, sgd_momentum_update)

OPERATIONS = ("conv2d_forward", "conv2d_backward", "im2col", "col2im", "max_pool_forward",
              "max_pool_backward", "avg_pool_forward", "avg_pool_backward", "batchnorm_train_forward",
              "batchnorm_backward", "batchnorm_inference", "relu_forward", "relu_backward",
              "adam_update", "sgd_momentum_update", "affine_warp")


def _point_operations_at(backend):
    """Make every name in OPERATIONS the function of that name in ``backend``."""
    for name in OPERATIONS:
        globals()[name] = getattr(backend, name)


def _engine_on_first_call(name):
    """A stand-in for the engine's ``name``: its first call imports the engine, points every
    operation at it, and runs the engine's ``name``."""
    def load_engine_then_call(*args, **kwargs):
        from minidl.kernels import fast
        if config.kernel_path() == "numba":
            _point_operations_at(fast)
        return getattr(fast, name)(*args, **kwargs)

    load_engine_then_call.__name__ = load_engine_then_call.__qualname__ = name
    return load_engine_then_call


def _use_path(path):
    """Point the operations at the backend of ``path`` ('reference' or 'numba')."""
    if path == "reference":
        _point_operations_at(reference)
        return
    fast = sys.modules.get("minidl.kernels.fast")      # the engine, if it has run already
    if fast is not None:
        _point_operations_at(fast)
    else:
        for name in OPERATIONS:
            globals()[name] = _engine_on_first_call(name)


_use_path(config.kernel_path())
config.when_kernel_path_changes(_use_path)

__all__ = ["conv_geometry", "output_size_and_padding", "padded_output_size", *OPERATIONS]
