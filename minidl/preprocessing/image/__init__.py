"""``minidl.preprocessing.image`` -- Keras 2's image pipeline (keras-preprocessing 1.1.2).

Reading order for learners: ``loading.py`` (files -> arrays), ``affine.py``
(the augmentation geometry) and ``minidl/kernels/warp_reference.py`` (the
resampling), ``generator.py`` (``ImageDataGenerator``), ``iterator.py``
(``Sequence`` semantics), ``directory_iterator.py`` / ``numpy_iterator.py``,
``prefetch.py`` (background batches), ``dicom.py``.

Example::

    from minidl.preprocessing.image import ImageDataGenerator, load_img, img_to_array
    x = img_to_array(load_img("chest2.png", target_size=(299, 299)))[None] / 255
"""
from minidl.preprocessing.image.affine import (apply_affine_transform, apply_brightness_shift,
                                               apply_channel_shift, flip_axis,
                                               transform_matrix_offset_center)
from minidl.preprocessing.image.directory_iterator import DirectoryIterator
from minidl.preprocessing.image.generator import ImageDataGenerator
from minidl.preprocessing.image.iterator import Iterator
from minidl.preprocessing.image.loading import (UnreadableImageError, array_to_img,
                                                img_to_array, load_img, save_img)
from minidl.preprocessing.image.numpy_iterator import NumpyArrayIterator
from minidl.preprocessing.image.prefetch import PrefetchIterator, prefetch

__all__ = [
    "ImageDataGenerator", "Iterator", "DirectoryIterator", "NumpyArrayIterator",
    "load_img", "img_to_array", "array_to_img", "save_img", "UnreadableImageError",
    "apply_affine_transform", "apply_brightness_shift", "apply_channel_shift", "flip_axis",
    "transform_matrix_offset_center", "prefetch", "PrefetchIterator",
]
