"""The engine's backend: the reference operations, fast (``MINIDL_KERNELS=numba``, the default).

Every function here has the signature and the result of its namesake in
``minidl/kernels/reference/`` (tests prove they agree); only the way it is computed
differs:

* ``conv.py``, ``chunks.py``, ``winograd*.py`` -- convolutions in chunks that stay in
  cache, shared between every core, and Winograd's algorithm where it pays;
* ``*_numba.py`` -- the element loops compiled with Numba, serially for small work and in
  parallel for large (``compiled.py``: each build compiled only when first needed);
* ``process_settings.py`` -- thread-pool and allocator settings, applied once when this
  package is first imported (that is, when the engine first runs: ``minidl.kernels``
  imports it on the first operation called on the numba path).

``minidl/engine/`` builds on these to run whole models faster (fused inference steps, a
backward walk that frees memory as it goes).
"""
from minidl.kernels.fast import process_settings

process_settings.apply_once()     # before any Numba kernel starts its OpenMP threads

from minidl.kernels.fast import compiled  # noqa: E402

compiled.announce_compilation()   # one line when the first compilation starts (a cold cache)

from minidl.kernels.fast.adam_numba import adam_update  # noqa: E402
from minidl.kernels.fast.batchnorm_numba import (batchnorm_backward, batchnorm_inference,  # noqa: E402
                                                 batchnorm_train_forward)
from minidl.kernels.fast.conv import conv2d_backward, conv2d_forward  # noqa: E402
from minidl.kernels.fast.conv_numba import col2im, im2col  # noqa: E402
from minidl.kernels.fast.pooling_numba import (avg_pool_backward, avg_pool_forward,  # noqa: E402
                                               max_pool_backward, max_pool_forward)
from minidl.kernels.fast.relu_numba import relu_backward, relu_forward  # noqa: E402
from minidl.kernels.fast.sgd_numba import sgd_momentum_update  # noqa: E402
from minidl.kernels.fast.warp_numba import affine_warp  # noqa: E402

NAME = "numba"
