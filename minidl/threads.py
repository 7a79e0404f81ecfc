"""Two thread pools, one set of cores: make each hand the cores over as soon as it is done.

minidl's hot loop alternates two kinds of parallel work, many times per layer:

* matrix products in OpenBLAS (NumPy's ``@``), with OpenBLAS's own threads;
* Numba kernels (im2col, col2im, batch norm, ReLU, pooling), with Numba's OpenMP threads.

Both pools keep their threads *spinning* for a while after a call, waiting for more work.
On 2 cores a spinning thread of one pool takes a core from the other pool's next parallel
loop, which then runs at half speed. Measured on the project's 2-core VMs:

* OpenMP's default spin after each Numba loop made training steps 4x slower; passive
  waiting (``OMP_WAIT_POLICY=passive``) fixes it.
* OpenBLAS spins for 2**28 cycles (about 0.1 s) after each product. With convolutions
  working in chunks (im2col, product, im2col, product, ...), im2col ran at half speed:
  90-120 ms against 52-60 ms per inference pass of InceptionV3. Spinning 2**4 cycles
  (``OPENBLAS_THREAD_TIMEOUT=4``) gave A/B medians (fresh processes, alternated):
  predict 0.80 -> 0.70 s, training step 2.49 -> 2.39 s.

:func:`hand_over_cores_quickly` sets both, unless you set them yourself. NumPy has usually
started OpenBLAS before minidl is imported, so the OpenBLAS setting is also applied to the
running library: it re-reads its environment, and its threads restart with the new setting
on the next product. Where that is not possible (another BLAS, another OS), nothing changes.
The restart happens once, at ``import minidl``: import minidl at the top of a script, not
while another thread of yours is inside a NumPy matrix product.

:func:`single_threaded_blas` lets a block run OpenBLAS on the calling thread only, for
code that shares the cores out itself (``minidl/kernels/chunk_workers.py``).

Example::

    import minidl                       # calls hand_over_cores_quickly()
    minidl.threads.openblas_spin_setting()   # 4, or None if OpenBLAS is not found
    with minidl.threads.single_threaded_blas():
        y = a @ b                       # on this thread alone
"""
import ctypes
import functools
import os
import sys
from contextlib import contextmanager

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
