"""``minidl.preprocessing.image`` -- Keras 2's image pipeline (keras-preprocessing 1.1.2).

Reading order for learners: ``loading.py`` (files -> arrays), ``affine.py``
(the augmentation geometry) and ``minidl/kernels/reference/warp.py`` (the
resampling), ``generator.py`` (``ImageDataGenerator``), ``iterator.py``
(``Sequence`` semantics), ``directory_iterator.py`` / ``numpy_iterator.py``,
``dicom.py``, ``errors.py``. Background batches (``prefetch``): ``minidl/utils/prefetch.py``,
which ``fit`` uses too.

Example::

    from minidl.preprocessing.image import ImageDataGenerator, load_img, img_to_array
    x = img_to_array(load_img("chest2.png", target_size=(299, 299)))[None] / 255
"""
from minidl.preprocessing.image.affine import (apply_affine_transform, apply_brightness_shift,
                                               apply_channel_shift, flip_axis,
                                               transform_matrix_offset_center)
from minidl.preprocessing.image.directory_iterator import DirectoryIterator
from minidl.preprocessing.image.errors import UnreadableImageError
from minidl.preprocessing.image.generator import ImageDataGenerator
from minidl.preprocessing.image.iterator import Iterator
from minidl.preprocessing.image.loading import array_to_img, img_to_array, load_img, save_img
from minidl.preprocessing.image.numpy_iterator import NumpyArrayIterator
# Through the module image/prefetch.py, so that it is loaded here, before the name `prefetch`
# is bound to the function: Python sets a package's attribute to a submodule when it first
# loads it, so a later first `import minidl.preprocessing.image.prefetch` would replace it.
from minidl.preprocessing.image.prefetch import PrefetchIterator, prefetch

__all__ = [
    "ImageDataGenerator", "Iterator", "DirectoryIterator", "NumpyArrayIterator",
    "load_img", "img_to_array", "array_to_img", "save_img", "UnreadableImageError",
    "apply_affine_transform", "apply_brightness_shift", "apply_channel_shift", "flip_axis",
    "transform_matrix_offset_center", "prefetch", "PrefetchIterator",
]
