"""``needs_sharing``: skip a test on a machine where the engine cannot share the cores.

Sharing (chunks on every core, ``minidl/kernels/fast/chunks.py``; an Inception block's
branches at once, ``minidl/engine/branches.py``) needs 2+ Numba threads, Numba's OpenMP or
TBB threading layer and an OpenBLAS whose thread count minidl can set.
"""
import numpy as np
import pytest

from minidl.kernels import fast
from minidl.kernels.fast import chunks


def sharing_possible():
    fast.relu_forward(np.zeros(2, np.float32))    # a parallel kernel starts Numba's threading layer
    return chunks.sharing_threads() > 1


needs_sharing = pytest.mark.skipif(
    not sharing_possible(),
    reason="sharing the cores needs 2+ Numba threads, the OpenMP/TBB layer and a settable OpenBLAS")
