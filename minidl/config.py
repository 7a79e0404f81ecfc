"""Run-time configuration: which kernel implementation runs, inference fusion, Winograd.

minidl has two implementations of every hot kernel (convolution, pooling,
batch normalization, the augmentation warp):

* ``reference`` -- plain NumPy that a learner can read line by line;
* ``numba``     -- the same computation compiled with Numba (the default).

Set the environment variable ``MINIDL_KERNELS=reference`` before importing
minidl, or call :func:`set_kernel_path` at run time, to run everything on the
reference path. Tests use this switch to prove the two agree.

At inference a model runs each Conv2D -> BatchNormalization -> ReLU chain as one pass
(``minidl/models/inference_fusion.py``; same numbers, less memory traffic).
``MINIDL_FUSE_INFERENCE=0`` or :func:`set_inference_fusion` turns that off.

Conv2D's forward pass runs stride-1 3x3, 1x7, 7x1, 1x3 and 3x1 convolutions on wide
enough inputs with Winograd's algorithm (``minidl/kernels/winograd.py``): fewer
multiplications, the same numbers up to float rounding. ``MINIDL_WINOGRAD=0`` or
:func:`set_winograd` turns that off (every convolution im2col's, bit for bit).

Example::

    import minidl
    minidl.config.set_kernel_path("reference")
    minidl.config.set_inference_fusion(False)
    minidl.config.set_winograd(False)
"""
import os
from contextlib import contextmanager

from minidl import memory, threads

# Numba's OpenMP threads and OpenBLAS's threads take turns on the same cores: each pool
# must hand them over at once instead of spinning (training steps were 4x slower with
# OpenMP's default spin). See minidl/threads.py; values the user set are kept.
threads.hand_over_cores_quickly()

# Recycle freed large arrays instead of faulting in fresh pages for every new one
# (a training step 1.2-1.3x faster; see minidl/memory.py). MINIDL_KEEP_FREED_MEMORY=0 opts out.
memory.keep_freed_memory_unless_disabled()

_VALID_PATHS = ("numba", "reference")
_kernel_path = os.environ.get("MINIDL_KERNELS", "numba").strip().lower() or "numba"
if _kernel_path not in _VALID_PATHS:
    raise ValueError(
        f"MINIDL_KERNELS must be one of {_VALID_PATHS}, got {_kernel_path!r}"
    )

_inference_fusion = os.environ.get("MINIDL_FUSE_INFERENCE", "1").strip() != "0"
_winograd = os.environ.get("MINIDL_WINOGRAD", "1").strip() != "0"


def kernel_path():
    """Return the active kernel path: 'numba' or 'reference'."""
    return _kernel_path


def use_reference_kernels():
    """True when the readable NumPy reference kernels should run."""
    return _kernel_path == "reference"


def set_kernel_path(path):
    """Switch between the 'numba' and 'reference' kernels at run time."""
    global _kernel_path
    if path not in _VALID_PATHS:
        raise ValueError(f"kernel path must be one of {_VALID_PATHS}, got {path!r}")
    _kernel_path = path


@contextmanager
def using_kernel_path(path):
    """Run a block on one kernel path, then restore the previous one.

    Example::

        with minidl.config.using_kernel_path("reference"):
            y = layer(x)          # the readable NumPy kernels
    """
    previous = kernel_path()
    set_kernel_path(path)
    try:
        yield
    finally:
        set_kernel_path(previous)


def inference_fusion():
    """True when models fuse Conv2D -> BatchNormalization -> ReLU at inference (the default)."""
    return _inference_fusion


def set_inference_fusion(enabled):
    """Fuse (True) or run every layer on its own (False) at inference; takes effect at once."""
    global _inference_fusion
    _inference_fusion = _true_or_false("set_inference_fusion", enabled)


def winograd():
    """True when Conv2D's forward pass may use Winograd's algorithm (the default)."""
    return _winograd


def set_winograd(enabled):
    """Allow (True) or forbid (False) Winograd convolutions; takes effect at once."""
    global _winograd
    _winograd = _true_or_false("set_winograd", enabled)


def _true_or_false(setter, enabled):
    if not isinstance(enabled, bool):
        raise TypeError(f"{setter} expects True or False, got {enabled!r}")
    return enabled
