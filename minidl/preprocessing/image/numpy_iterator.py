"""``NumpyArrayIterator`` (``ImageDataGenerator.flow``): batches from in-memory arrays.

Same ``Sequence`` semantics as every Keras iterator (see ``iterator.py``). Each
image is copied, augmented (``get_random_transform`` + ``apply_transform``) and
standardised; labels are passed through unchanged.

Example::

    it = ImageDataGenerator(horizontal_flip=True).flow(x, y, batch_size=5, seed=1)
    batch_x, batch_y = it[0]
"""
import os

import numpy as np

from minidl.preprocessing.image.iterator import Iterator
from minidl.preprocessing.image.loading import array_to_img


class NumpyArrayIterator(Iterator):
    """Iterator over ``x`` (N, H, W, C) with optional labels ``y`` (N, ...)."""

    def __init__(self, x, y, image_data_generator, batch_size=32, shuffle=False,
                 sample_weight=None, seed=None, data_format="channels_last", save_to_dir=None,
                 save_prefix="", save_format="png", subset=None, dtype="float32"):
        self.dtype = dtype or "float32"                     # Keras 2: None = floatx()
        data_format = data_format or "channels_last"        # Keras 2: None = image_data_format()
        x = np.asarray(x, dtype=self.dtype)
        if x.ndim != 4:
            raise ValueError("flow: input data x should have rank 4 (N, H, W, C), got array "
                             f"with shape {x.shape}")
        if y is not None and len(x) != len(y):
            raise ValueError("flow: x (images tensor) and y (labels) should have the same "
                             f"length, got x.shape = {x.shape}, len(y) = {len(y)}")
        if sample_weight is not None and len(x) != len(sample_weight):
            raise ValueError("flow: x and sample_weight should have the same length, got "
                             f"{len(x)} and {len(sample_weight)}")
        if subset is not None:
            if subset not in ("training", "validation"):
                raise ValueError(f"flow: invalid subset name {subset!r}; expected "
                                 '"training" or "validation"')
            split = getattr(image_data_generator, "_validation_split", 0.0)
            split_idx = int(len(x) * split)
            if subset == "validation":
                x = x[:split_idx]
                y = None if y is None else np.asarray(y)[:split_idx]
                sample_weight = None if sample_weight is None else sample_weight[:split_idx]
            else:
                x = x[split_idx:]
                y = None if y is None else np.asarray(y)[split_idx:]
                sample_weight = None if sample_weight is None else sample_weight[split_idx:]
        self.x = x
        self.y = None if y is None else np.asarray(y)
        self.sample_weight = None if sample_weight is None else np.asarray(sample_weight)
        self.image_data_generator = image_data_generator
        self.data_format = data_format
        self.save_to_dir = save_to_dir
        self.save_prefix = save_prefix
        self.save_format = save_format
        super().__init__(x.shape[0], batch_size, shuffle, seed)

    def _get_batches_of_transformed_samples(self, index_array):
        batch_x = np.zeros((len(index_array),) + self.x.shape[1:], dtype=self.dtype)
        generator = self.image_data_generator
        for i, j in enumerate(index_array):
            x = self.x[j].copy()  # never modify the caller's data in place
            if generator:
                params = generator.get_random_transform(x.shape)
                x = generator.apply_transform(x.astype(self.dtype), params)
                x = generator.standardize(x)
            batch_x[i] = x
        if self.save_to_dir:
            for i, j in enumerate(index_array):
                img = array_to_img(batch_x[i], self.data_format, scale=True)
                fname = (f"{self.save_prefix}_{j}_{np.random.randint(int(1e4))}."
                         f"{self.save_format}")
                img.save(os.path.join(self.save_to_dir, fname))
        if self.y is None:
            return batch_x
        output = (batch_x, self.y[index_array])
        if self.sample_weight is not None:
            output += (self.sample_weight[index_array],)
        return output
