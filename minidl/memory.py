"""Keep freed memory for reuse: why a training step should not ask the OS for new pages.

A training step of InceptionV3 at batch 5 allocates and frees several GB of large arrays:
activations and gradients of up to 28 MB each, and conv buffers. glibc's ``malloc``
serves every block above 32 MB (and, by default, above a few hundred kB) with a fresh
``mmap`` and gives it back with ``munmap`` when NumPy frees it. The next array of the
same size then starts on untouched pages, and the kernel must fault in and zero each page
on first write. On the 2-core VMs this project runs on that is slow: filling a fresh
124 MB array took 75 ms against 10 ms for a reused one. Measured A/B in one process,
switching only this setting (``benchmarks/README.md``): a training step took 3.55 s
against 2.69 s before convolutions worked in chunks, and 2.61 s against 2.20 s after.

Deep-learning frameworks avoid this with caching allocators of their own (TensorFlow's
BFC allocator, for one). minidl gets the same effect by telling glibc's ``malloc``, once,
to keep freed blocks on its heap for the next allocation::

    mallopt(M_MMAP_MAX, 0)              # never serve a block with its own mmap
    mallopt(M_TRIM_THRESHOLD, 2**31-1)  # never return the heap's free top to the OS

The cost: the process keeps its peak memory until it exits (the resident size does not
shrink after training), which is what a training script wants anyway.

:func:`keep_freed_memory` runs when minidl is imported (from :mod:`minidl.config`) unless
the environment variable ``MINIDL_KEEP_FREED_MEMORY=0`` is set. On systems without glibc
(macOS, Windows, musl) it does nothing and returns False.

Example::

    import minidl
    minidl.memory.is_keeping_freed_memory()   # True on Linux with glibc
"""
import ctypes
import ctypes.util
import os
import sys

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


def keep_freed_memory_unless_disabled():
    """Apply :func:`keep_freed_memory` unless ``MINIDL_KEEP_FREED_MEMORY`` is 0/false/no/off."""
    setting = os.environ.get("MINIDL_KEEP_FREED_MEMORY", "1").strip().lower()
    if setting in ("0", "false", "no", "off"):
        return False
    return keep_freed_memory()
