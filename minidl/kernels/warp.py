"""The augmentation warp, dispatched at call time to the Numba or the reference kernel.

``minidl.config.kernel_path()`` decides: 'numba' (default) runs
``warp_numba.affine_warp``; 'reference' runs the readable NumPy version in
``warp_reference.py``. Both have the same signature and give the same numbers.

Example::

    from minidl.kernels.warp import affine_warp
    out = affine_warp(image_hwc, matrix_2x2, offset_2, fill_mode="nearest", cval=0.0)
"""
from minidl import config
from minidl.kernels import warp_reference
from minidl.kernels.warp_reference import FILL_MODES  # noqa: F401  (re-exported)


def affine_warp(image, matrix, offset, fill_mode="nearest", cval=0.0):
    """Warp a (H, W, C) image; see ``warp_reference.affine_warp`` for the exact rules."""
    if config.kernel_path() == "reference":
        return warp_reference.affine_warp(image, matrix, offset, fill_mode, cval)
    from minidl.kernels import warp_numba  # imported lazily: compiling costs time
    return warp_numba.affine_warp(image, matrix, offset, fill_mode, cval)
