"""The engine's process-wide settings: what they are, why, and how to keep them off.

minidl changes nothing process-wide when it is imported, nor ever on the reference path
(``MINIDL_KERNELS=reference``). The engine applies two settings once, when it first runs
(:func:`apply_once`, called by ``minidl.kernels`` before the first fast operation; call
it yourself to apply them earlier). Each has an off switch, read by
``minidl.config.env_flag``.

1. **Hand the cores over quickly** (off: ``MINIDL_HAND_OVER_CORES=0``). The engine
   alternates two kinds of parallel work many times per layer: matrix products in
   OpenBLAS (NumPy's ``@``) with OpenBLAS's threads, and Numba kernels (im2col, batch
   norm, ReLU, pooling) with Numba's OpenMP threads. Both pools keep their threads
   *spinning* for a while after a call, waiting for more work, and on few cores a
   spinning thread of one pool takes a core from the other pool's next parallel loop,
   which then runs at half speed. So the engine sets ``OMP_WAIT_POLICY=passive`` (read
   when Numba's OpenMP starts: OpenMP's default spin made training steps several times
   slower) and ``OPENBLAS_THREAD_TIMEOUT=4`` (OpenBLAS spins 2**4 cycles, its minimum,
   instead of about 0.1 s), each unless you set it yourself. NumPy has usually started
   OpenBLAS already, so the OpenBLAS setting is also applied to the running library: it
   re-reads its environment and its threads restart with the new setting on the next
   product (nothing changes with another BLAS or OS). Do not let the engine's first run
   happen while another thread of yours is inside a NumPy matrix product.
2. **Keep freed memory for reuse** (off: ``MINIDL_KEEP_FREED_MEMORY=0``). A training step
   of InceptionV3 allocates and frees several GB of large arrays. glibc's ``malloc``
   serves each large block with a fresh ``mmap`` and gives it back to the OS when freed,
   so the next array of that size starts on untouched pages that the kernel must fault
   in and zero on first write -- slow on small VMs. Deep-learning frameworks avoid this
   with caching allocators of their own (TensorFlow's BFC allocator, for one); the engine
   asks glibc to keep freed blocks on its heap instead::

       mallopt(M_MMAP_MAX, 0)              # never serve a block with its own mmap
       mallopt(M_TRIM_THRESHOLD, 2**31-1)  # never return the heap's free top to the OS

   The cost: the process keeps its peak memory until it exits. Without glibc (macOS,
   Windows, musl) nothing changes.

How much each is worth on the project's machines: ``benchmarks/README.md``.

:func:`single_threaded_blas` lets a block run OpenBLAS on the calling thread only, for
code that shares the cores out itself (``chunks.py``).

Example::

    from minidl.kernels.fast import process_settings
    process_settings.apply_once()            # what the engine's first call does
    process_settings.openblas_spin_setting() # 4, or None if OpenBLAS is not found
    with process_settings.single_threaded_blas():
        y = a @ b                            # on this thread alone
"""
import ctypes
import ctypes.util
import functools
import os
import sys
from contextlib import contextmanager

from minidl import config

QUICK_OPENBLAS_TIMEOUT = "4"   # OpenBLAS spins 2**4 cycles, then sleeps (its minimum)


def _loaded_openblas():
    """The OpenBLAS library this process has loaded, as ctypes, or None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if "openblas" in line.lower() and "/" in line}
    except OSError:
        return None
    for path in sorted(paths):
        try:
            library = ctypes.CDLL(path)     # already loaded: the same handle, no new copy
        except OSError:
            continue
        if all(hasattr(library, name) for name in
               ("openblas_read_env", "openblas_thread_timeout", "blas_thread_shutdown_")):
            return library
    return None


def openblas_spin_setting():
    """OpenBLAS's current OPENBLAS_THREAD_TIMEOUT as it reads it (0 = its default), or None."""
    library = _loaded_openblas()
    return None if library is None else int(library.openblas_thread_timeout())


def hand_over_cores_quickly():
    """Passive OpenMP waiting and a short OpenBLAS spin, unless the user chose otherwise."""
    os.environ.setdefault("OMP_WAIT_POLICY", "passive")   # read when Numba's OpenMP loads
    if "OPENBLAS_THREAD_TIMEOUT" in os.environ:
        return
    os.environ["OPENBLAS_THREAD_TIMEOUT"] = QUICK_OPENBLAS_TIMEOUT
    library = _loaded_openblas()
    if library is not None:
        library.openblas_read_env()       # picks up the new value...
        library.blas_thread_shutdown_()   # ...which its threads read when they restart


# OpenBLAS's thread-count functions; NumPy's wheels ship it with prefixed names.
_SET_THREADS = ("openblas_set_num_threads", "scipy_openblas_set_num_threads64_",
                "scipy_openblas_set_num_threads")
_GET_THREADS = ("openblas_get_num_threads", "scipy_openblas_get_num_threads64_",
                "scipy_openblas_get_num_threads")


@functools.cache
def _blas_thread_functions():
    """(get, set) for the loaded OpenBLAS's thread count, or None; looked up once."""
    library = _loaded_openblas()
    if library is None:
        return None
    get = next((getattr(library, name) for name in _GET_THREADS if hasattr(library, name)), None)
    set_ = next((getattr(library, name) for name in _SET_THREADS if hasattr(library, name)), None)
    return None if get is None or set_ is None else (get, set_)


def can_set_blas_threads():
    """True when minidl found the running OpenBLAS's thread-count functions."""
    return _blas_thread_functions() is not None


@contextmanager
def single_threaded_blas():
    """Within the block OpenBLAS runs each product on its calling thread alone.

    The setting is process-wide (OpenBLAS has one), so use it from one thread at a time;
    the previous thread count comes back at the end. Without a settable OpenBLAS
    (see :func:`can_set_blas_threads`) it changes nothing.
    """
    if not can_set_blas_threads():
        yield
        return
    get, set_ = _blas_thread_functions()
    previous = int(get())
    set_(1)
    try:
        yield
    finally:
        set_(previous)


# mallopt() parameter numbers from glibc's <malloc.h>.
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_LARGEST_TRIM_THRESHOLD = 2**31 - 1   # mallopt takes an int

_keeping = False


def _glibc():
    """glibc as a ctypes library, or None on other C libraries."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.gnu_get_libc_version  # only glibc has it (musl does not)
        libc.mallopt
    except (OSError, AttributeError):
        return None
    return libc


def keep_freed_memory():
    """Make glibc's malloc recycle freed blocks instead of unmapping them. True if applied."""
    global _keeping
    libc = _glibc()
    if libc is None:
        return False
    # mallopt returns 1 on success, 0 on error.
    _keeping = bool(libc.mallopt(_M_MMAP_MAX, 0)) and bool(
        libc.mallopt(_M_TRIM_THRESHOLD, _LARGEST_TRIM_THRESHOLD))
    return _keeping


def is_keeping_freed_memory():
    """True once :func:`keep_freed_memory` took effect in this process."""
    return _keeping


_applied = []     # [True] once apply_once has run


def apply_once():
    """Apply the settings above that are not switched off; later calls do nothing."""
    if _applied:
        return
    _applied.append(True)
    if config.env_flag("MINIDL_HAND_OVER_CORES"):
        hand_over_cores_quickly()
    if config.env_flag("MINIDL_KEEP_FREED_MEMORY"):
        keep_freed_memory()


def applied():
    """True once :func:`apply_once` has run in this process."""
    return bool(_applied)
