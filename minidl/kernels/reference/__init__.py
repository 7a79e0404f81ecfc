"""The reference backend: every operation in plain whole-array NumPy (``MINIDL_KERNELS=reference``).

This is the textbook the README's reading order walks: one obvious function per
operation, no chunks, no Winograd, no threads, no process settings, and no Numba import.
The engine (``minidl/kernels/fast/``) computes the same operations fast; tests prove the
two agree.

* ``conv.py``       -- im2col, col2im, and the convolution as ``cols @ K`` (forward, backward)
* ``pooling.py``    -- max and average pooling with TensorFlow's window rules
* ``batchnorm.py``  -- batch normalization, its backward derived step by step
* ``relu.py``       -- max(0, z) and its gradient
* ``adam.py``       -- one Adam update with Keras's epsilon placement
* ``sgd.py``        -- one SGD update with momentum (classical or Nesterov)
* ``warp.py``       -- the bilinear affine warp behind ImageDataGenerator's augmentation
"""
from minidl.kernels.reference.adam import adam_update
from minidl.kernels.reference.batchnorm import batchnorm_backward, batchnorm_inference, batchnorm_train_forward
from minidl.kernels.reference.conv import col2im, conv2d_backward, conv2d_forward, im2col
from minidl.kernels.reference.pooling import avg_pool_backward, avg_pool_forward, max_pool_backward, max_pool_forward
from minidl.kernels.reference.relu import relu_backward, relu_forward
from minidl.kernels.reference.sgd import sgd_momentum_update
from minidl.kernels.reference.warp import affine_warp

NAME = "reference"
