"""Run-time configuration: every switch minidl reads, in one place.

Which implementation of the operations runs (``minidl/kernels/__init__.py`` lists them)::

    MINIDL_KERNELS=reference   plain whole-array NumPy, the textbook a learner reads and
                               steps through in a debugger: no Numba, no threads, no
                               process settings, one obvious function per operation
    MINIDL_KERNELS=numba       the engine (the default): the same operations compiled with
                               Numba, worked in pieces on every core, plus the whole-model
                               speed-ups of ``minidl/engine/``

The engine's own switches (each is on by default; they have no effect on the reference path)::

    MINIDL_FUSE_INFERENCE=0    predict/evaluate (and a training step's frozen part) run every
                               layer on its own, and a training step's batch norm and ReLU
                               run apart (``minidl/engine/fusion.py``)
    MINIDL_WINOGRAD=0          every convolution is im2col's (``minidl/kernels/fast/winograd.py``)
    MINIDL_SHARE_CHUNKS=0      a convolution's pieces run one after the other, not one per
                               core (``minidl/kernels/fast/chunks.py``)
    MINIDL_HAND_OVER_CORES=0   leave OpenMP's and OpenBLAS's waiting policies alone
    MINIDL_KEEP_FREED_MEMORY=0 leave glibc's malloc alone
                               (both: ``minidl/kernels/fast/process_settings.py``, applied when
                               the engine first runs, never at ``import minidl``)

Every flag is read by :func:`env_flag`: ``0``/``false``/``no``/``off`` switch it off,
``1``/``true``/``yes``/``on`` on (any case); anything else is an error naming the flag.
The first three can also be changed at run time, below.

Example::

    import minidl
    minidl.config.set_kernel_path("reference")        # or: with minidl.config.using_kernel_path(...)
    minidl.config.set_inference_fusion(False)
    minidl.config.set_winograd(False)
"""
import os
from contextlib import contextmanager

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")
KERNEL_PATHS = ("numba", "reference")


def env_flag(name, default=True):
    """The boolean environment flag ``name`` (``default`` when unset or empty)."""
    text = os.environ.get(name, "").strip().lower()
    if not text:
        return default
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"{name} must be one of {_TRUE + _FALSE}, got {os.environ[name]!r}")


def _kernel_path_from_environment():
    path = os.environ.get("MINIDL_KERNELS", "").strip().lower() or "numba"
    if path not in KERNEL_PATHS:
        raise ValueError(f"MINIDL_KERNELS must be one of {KERNEL_PATHS}, got {os.environ['MINIDL_KERNELS']!r}")
    return path


_kernel_path = _kernel_path_from_environment()
_kernel_path_listeners = []       # minidl.kernels re-binds its operations when the path changes
_inference_fusion = env_flag("MINIDL_FUSE_INFERENCE")
_winograd = env_flag("MINIDL_WINOGRAD")


def kernel_path():
    """The active path: 'numba' (the engine, default) or 'reference' (plain NumPy)."""
    return _kernel_path


def set_kernel_path(path):
    """Switch between the engine ('numba') and plain NumPy ('reference'); takes effect at once."""
    global _kernel_path
    if path not in KERNEL_PATHS:
        raise ValueError(f"kernel path must be one of {KERNEL_PATHS}, got {path!r}")
    _kernel_path = path
    for listener in _kernel_path_listeners:
        listener(path)


def when_kernel_path_changes(listener):
    """Call ``listener(path)`` after every :func:`set_kernel_path` (used by ``minidl.kernels``)."""
    _kernel_path_listeners.append(listener)


@contextmanager
def using_kernel_path(path):
    """Run a block on one kernel path, then restore the previous one.

    Example::

        with minidl.config.using_kernel_path("reference"):
            y = layer(x)          # plain NumPy
    """
    previous = kernel_path()
    set_kernel_path(path)
    try:
        yield
    finally:
        set_kernel_path(previous)


def inference_fusion():
    """True when the engine fuses Conv2D -> BatchNormalization -> ReLU at inference, and a
    training step's BatchNormalization -> ReLU (default)."""
    return _inference_fusion


def set_inference_fusion(enabled):
    """Fuse (True) or run every layer on its own (False) at inference; takes effect at once."""
    global _inference_fusion
    _inference_fusion = _true_or_false("set_inference_fusion", enabled)


def winograd():
    """True when the engine may run a convolution's forward pass as Winograd's (default)."""
    return _winograd


def set_winograd(enabled):
    """Allow (True) or forbid (False) Winograd convolutions; takes effect at once."""
    global _winograd
    _winograd = _true_or_false("set_winograd", enabled)


def _true_or_false(setter, enabled):
    if not isinstance(enabled, bool):
        raise TypeError(f"{setter} expects True or False, got {enabled!r}")
    return enabled
