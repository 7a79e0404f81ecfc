"""minidl.memory: large arrays are served from malloc's heap (reused), not fresh mmaps."""
import os
import subprocess
import sys

import pytest

from minidl import memory

pytestmark = pytest.mark.skipif(memory._glibc() is None, reason="needs glibc (Linux)")

# Bytes malloc holds in mmap'd blocks (mallinfo2().hblkhd), before and while a 64 MB
# NumPy array is alive: with memory kept, the array comes from the heap, not an mmap.
_PROBE = """
import ctypes, json, numpy as np
import minidl

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
        "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = MallInfo2
before = libc.mallinfo2().hblkhd
array = np.ones(16 * 2**20, dtype=np.float32)   # 64 MB
during = libc.mallinfo2().hblkhd
print(json.dumps({"keeping": minidl.memory.is_keeping_freed_memory(),
                  "mmapped_growth": during - before}))
"""


def _probe(setting):
    env = dict(os.environ, MINIDL_KEEP_FREED_MEMORY=setting)
    completed = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True,
                               env=env, check=True)
    import json
    return json.loads(completed.stdout.strip().splitlines()[-1])


def _has_mallinfo2():
    return hasattr(memory._glibc(), "mallinfo2")


@pytest.mark.skipif(not _has_mallinfo2(), reason="mallinfo2 needs glibc >= 2.33")
def test_large_arrays_come_from_the_heap_once_minidl_is_imported():
    result = _probe("1")
    assert result["keeping"] is True
    assert result["mmapped_growth"] < 2**20   # not the 64 MB array


@pytest.mark.skipif(not _has_mallinfo2(), reason="mallinfo2 needs glibc >= 2.33")
def test_opting_out_leaves_malloc_alone():
    result = _probe("0")
    assert result["keeping"] is False
    assert result["mmapped_growth"] >= 64 * 2**20   # glibc's default: its own mmap


def test_keep_freed_memory_reports_success_on_glibc():
    assert memory.keep_freed_memory() is True
    assert memory.is_keeping_freed_memory() is True
