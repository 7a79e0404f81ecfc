"""``ImageDataGenerator``: random augmentation and standardisation, keras-preprocessing 1.1.2.

Per image the order is (minidl/keras_semantics.md §1.5): affine warp at the 0..255 scale -> channel
shift -> horizontal flip (column axis) -> vertical flip (row axis) ->
brightness (through PIL) -> ``standardize``: ``preprocessing_function``, then
``x *= rescale`` (in place, float32), then sample-wise and feature-wise
centring / std normalisation (epsilon 1e-6), then ZCA.

Random parameters come from NumPy's **global legacy RNG** (``np.random.*``) in
Keras's fixed order, so a seeded run reproduces Keras's parameters (minidl/keras_semantics.md §1.2):
theta, tx, ty, shear, (zx, zy), flip_h, flip_v, channel shift, brightness.
Only the two flip draws are always consumed.

Example (the workshop's training generator)::

    datagen = ImageDataGenerator(rescale=1. / 255, shear_range=0.2, zoom_range=0.2,
                                 rotation_range=20, width_shift_range=0.2,
                                 height_shift_range=0.2, horizontal_flip=True)
    train = datagen.flow_from_directory("TRAIN", target_size=(299, 299),
                                        batch_size=5, class_mode="binary")
"""
import warnings

import numpy as np

from minidl.preprocessing.image.affine import (apply_affine_transform, apply_brightness_shift,
                                               apply_channel_shift, flip_axis)

_FILL_MODES = ("nearest", "constant", "reflect", "wrap")


def _check_shift_range(name, value):
    """Keras accepts a float, an int, or a 1-D array-like of allowed shifts."""
    if isinstance(value, (float, int, np.floating, np.integer)) and not isinstance(value, bool):
        return value
    try:
        array = np.asarray(value)
    except Exception:  # noqa: BLE001
        array = None
    if array is None or array.ndim != 1 or array.size == 0 or not np.issubdtype(array.dtype, np.number):
        raise ValueError(f"ImageDataGenerator: {name} must be a float, an int or a 1-D "
                         f"array-like of numbers, got {value!r}")
    return value


def _is_set(shift_range):
    """Keras's ``if shift_range:`` guard; a list/array counts if it is non-empty."""
    if isinstance(shift_range, (list, tuple, np.ndarray)):
        return len(shift_range) > 0
    return bool(shift_range)


class ImageDataGenerator:
    """Generate batches of augmented image data (Keras 2 ``ImageDataGenerator``).

    Args (Keras names and defaults):
        featurewise_center, samplewise_center, featurewise_std_normalization,
        samplewise_std_normalization, zca_whitening: bools (feature-wise ones need ``fit``).
        zca_epsilon: 1e-6.
        rotation_range: degrees, theta ~ U(-r, r).
        width_shift_range, height_shift_range: float (< 1: fraction of the width/height,
            >= 1: pixels) drawn uniformly, or int / list: drawn from the values with a random sign.
        brightness_range: None or (lo, hi).
        shear_range: shear angle in DEGREES, ~ U(-s, s).
        zoom_range: float z -> [1 - z, 1 + z], or [lo, hi]; zx and zy drawn independently.
        channel_shift_range: float.
        fill_mode: 'nearest' | 'constant' | 'reflect' | 'wrap'. cval: float.
        horizontal_flip, vertical_flip: bools (p = 0.5 each).
        rescale: None/0 or a factor applied after the augmentation.
        preprocessing_function: called on each image (rank 3) before rescale.
        data_format: 'channels_last' (default; None means the same) or 'channels_first'.
        validation_split: fraction in (0, 1) held out for ``subset='validation'``.
        interpolation_order: 1 (bilinear; the only order implemented).
        dtype: 'float32' (default; None means the same).
    """

    def __init__(self, featurewise_center=False, samplewise_center=False,
                 featurewise_std_normalization=False, samplewise_std_normalization=False,
                 zca_whitening=False, zca_epsilon=1e-6, rotation_range=0,
                 width_shift_range=0., height_shift_range=0., brightness_range=None,
                 shear_range=0., zoom_range=0., channel_shift_range=0., fill_mode="nearest",
                 cval=0., horizontal_flip=False, vertical_flip=False, rescale=None,
                 preprocessing_function=None, data_format="channels_last",
                 validation_split=0.0, interpolation_order=1, dtype="float32"):
        self.featurewise_center = featurewise_center
        self.samplewise_center = samplewise_center
        self.featurewise_std_normalization = featurewise_std_normalization
        self.samplewise_std_normalization = samplewise_std_normalization
        self.zca_whitening = zca_whitening
        self.zca_epsilon = zca_epsilon
        self.rotation_range = rotation_range
        self.width_shift_range = _check_shift_range("width_shift_range", width_shift_range)
        self.height_shift_range = _check_shift_range("height_shift_range", height_shift_range)
        self.shear_range = shear_range
        self.channel_shift_range = channel_shift_range
        if fill_mode not in _FILL_MODES:
            raise ValueError(f"ImageDataGenerator: fill_mode must be one of {_FILL_MODES}, "
                             f"got {fill_mode!r}")
        self.fill_mode = fill_mode
        self.cval = cval
        self.horizontal_flip = horizontal_flip
        self.vertical_flip = vertical_flip
        self.rescale = rescale
        self.preprocessing_function = preprocessing_function
        self.dtype = "float32" if dtype is None else dtype            # Keras 2: None = floatx()
        if interpolation_order != 1:
            raise NotImplementedError(f"ImageDataGenerator(interpolation_order={interpolation_order!r}) is not "
                                      "implemented in minidl: only 1 (bilinear, the default) is")
        self.interpolation_order = interpolation_order
        if data_format is None:                                        # Keras 2: image_data_format()
            data_format = "channels_last"
        if data_format not in ("channels_last", "channels_first"):
            raise ValueError("ImageDataGenerator: data_format must be 'channels_last' or "
                             f"'channels_first', got {data_format!r}")
        self.data_format = data_format
        if data_format == "channels_first":
            self.channel_axis, self.row_axis, self.col_axis = 1, 2, 3
        else:
            self.channel_axis, self.row_axis, self.col_axis = 3, 1, 2
        if validation_split and not 0 < validation_split < 1:
            raise ValueError("ImageDataGenerator: validation_split must be strictly between "
                             f"0 and 1, got {validation_split}")
        self._validation_split = validation_split
        self.mean = None
        self.std = None
        self.principal_components = None

        if np.isscalar(zoom_range):
            self.zoom_range = [1 - zoom_range, 1 + zoom_range]
        elif len(zoom_range) == 2:
            self.zoom_range = [zoom_range[0], zoom_range[1]]
        else:
            raise ValueError("ImageDataGenerator: zoom_range should be a float or a tuple or "
                             f"list of two floats, got {zoom_range!r}")
        if brightness_range is not None:
            if (not isinstance(brightness_range, (tuple, list, np.ndarray))
                    or len(brightness_range) != 2):
                raise ValueError("ImageDataGenerator: brightness_range should be a tuple or "
                                 f"list of two floats, got {brightness_range!r}")
        self.brightness_range = brightness_range
        if zca_whitening and not featurewise_center:
            self.featurewise_center = True
            warnings.warn("This ImageDataGenerator specifies `zca_whitening`, which overrides "
                          "setting of `featurewise_center`.")
        if featurewise_std_normalization and not featurewise_center:
            self.featurewise_center = True
            warnings.warn("This ImageDataGenerator specifies `featurewise_std_normalization`, "
                          "which overrides setting of `featurewise_center`.")
        if samplewise_std_normalization and not samplewise_center:
            self.samplewise_center = True
            warnings.warn("This ImageDataGenerator specifies `samplewise_std_normalization`, "
                          "which overrides setting of `samplewise_center`.")

    # ------------------------------------------------------------------ iterators
    def flow(self, x, y=None, batch_size=32, shuffle=True, sample_weight=None, seed=None,
             save_to_dir=None, save_prefix="", save_format="png", subset=None):
        """Iterate over in-memory arrays ``x`` (N, H, W, C) and labels ``y``."""
        from minidl.preprocessing.image.numpy_iterator import NumpyArrayIterator
        return NumpyArrayIterator(x, y, self, batch_size=batch_size, shuffle=shuffle,
                                  sample_weight=sample_weight, seed=seed,
                                  data_format=self.data_format, save_to_dir=save_to_dir,
                                  save_prefix=save_prefix, save_format=save_format,
                                  subset=subset, dtype=self.dtype)

    def flow_from_directory(self, directory, target_size=(256, 256), color_mode="rgb",
                            classes=None, class_mode="categorical", batch_size=32,
                            shuffle=True, seed=None, save_to_dir=None, save_prefix="",
                            save_format="png", follow_links=False, subset=None,
                            interpolation="nearest", on_error="raise", sixteen_bit="clip"):
        """Iterate over images in class sub-folders of ``directory`` (minidl/keras_semantics.md §2).

        minidl-only: ``on_error='skip'`` checks every file once up front and leaves
        out unreadable ones with a warning; ``sixteen_bit`` as in ``load_img``.
        """
        from minidl.preprocessing.image.directory_iterator import DirectoryIterator
        return DirectoryIterator(directory, self, target_size=target_size,
                                 color_mode=color_mode, classes=classes,
                                 class_mode=class_mode, data_format=self.data_format,
                                 batch_size=batch_size, shuffle=shuffle, seed=seed,
                                 save_to_dir=save_to_dir, save_prefix=save_prefix,
                                 save_format=save_format, follow_links=follow_links,
                                 subset=subset, interpolation=interpolation,
                                 dtype=self.dtype, on_error=on_error, sixteen_bit=sixteen_bit)

    # ------------------------------------------------------------------ standardisation
    def standardize(self, x):
        """Apply the normalisation configuration in place to one image or a batch ``x``."""
        if self.preprocessing_function:
            x = self.preprocessing_function(x)
        if self.rescale:
            x *= self.rescale  # in place: float32 * python float keeps float32
        if self.samplewise_center:
            x -= np.mean(x, keepdims=True)
        if self.samplewise_std_normalization:
            x /= (np.std(x, keepdims=True) + 1e-6)
        if self.featurewise_center:
            if self.mean is not None:
                x -= self.mean
            else:
                warnings.warn("This ImageDataGenerator specifies `featurewise_center`, but it "
                              "hasn't been fit on any training data. Fit it first by calling "
                              "`.fit(numpy_data)`.")
        if self.featurewise_std_normalization:
            if self.std is not None:
                x /= (self.std + 1e-6)
            else:
                warnings.warn("This ImageDataGenerator specifies "
                              "`featurewise_std_normalization`, but it hasn't been fit on any "
                              "training data. Fit it first by calling `.fit(numpy_data)`.")
        if self.zca_whitening:
            if self.principal_components is not None:
                flat_x = np.reshape(x, (-1, np.prod(x.shape[-3:])))
                white_x = flat_x @ self.principal_components
                x = np.reshape(white_x, x.shape)
            else:
                warnings.warn("This ImageDataGenerator specifies `zca_whitening`, but it "
                              "hasn't been fit on any training data. Fit it first by calling "
                              "`.fit(numpy_data)`.")
        return x

    # ------------------------------------------------------------------ random transforms
    def _draw_shift(self, shift_range, size):
        """One shift draw: uniform for a float range, choice * random sign otherwise."""
        try:  # an int or a 1-D array-like
            shift = np.random.choice(shift_range)
            shift *= np.random.choice([-1, 1])
        except ValueError:  # a float: np.random.choice raises before drawing anything
            shift = np.random.uniform(-shift_range, shift_range)
        if np.max(shift_range) < 1:
            shift *= size
        return shift

    def get_random_transform(self, img_shape, seed=None):
        """Draw the random parameters for one image of shape ``img_shape`` (minidl/keras_semantics.md §1.2)."""
        img_row_axis = self.row_axis - 1
        img_col_axis = self.col_axis - 1
        if seed is not None:
            np.random.seed(seed)
        theta = np.random.uniform(-self.rotation_range, self.rotation_range) \
            if self.rotation_range else 0
        tx = self._draw_shift(self.height_shift_range, img_shape[img_row_axis]) \
            if _is_set(self.height_shift_range) else 0
        ty = self._draw_shift(self.width_shift_range, img_shape[img_col_axis]) \
            if _is_set(self.width_shift_range) else 0
        shear = np.random.uniform(-self.shear_range, self.shear_range) \
            if self.shear_range else 0
        if self.zoom_range[0] == 1 and self.zoom_range[1] == 1:
            zx, zy = 1, 1
        else:
            zx, zy = np.random.uniform(self.zoom_range[0], self.zoom_range[1], 2)
        flip_horizontal = (np.random.random() < 0.5) * self.horizontal_flip
        flip_vertical = (np.random.random() < 0.5) * self.vertical_flip
        channel_shift_intensity = None
        if self.channel_shift_range != 0:
            channel_shift_intensity = np.random.uniform(-self.channel_shift_range,
                                                        self.channel_shift_range)
        brightness = None
        if self.brightness_range is not None:
            brightness = np.random.uniform(self.brightness_range[0], self.brightness_range[1])
        return {"theta": theta, "tx": tx, "ty": ty, "shear": shear, "zx": zx, "zy": zy,
                "flip_horizontal": flip_horizontal, "flip_vertical": flip_vertical,
                "channel_shift_intensity": channel_shift_intensity, "brightness": brightness}

    def apply_transform(self, x, transform_parameters):
        """Apply the parameters from ``get_random_transform`` to one image (rank 3)."""
        img_row_axis = self.row_axis - 1
        img_col_axis = self.col_axis - 1
        img_channel_axis = self.channel_axis - 1
        x = apply_affine_transform(x, transform_parameters.get("theta", 0),
                                   transform_parameters.get("tx", 0),
                                   transform_parameters.get("ty", 0),
                                   transform_parameters.get("shear", 0),
                                   transform_parameters.get("zx", 1),
                                   transform_parameters.get("zy", 1),
                                   row_axis=img_row_axis, col_axis=img_col_axis,
                                   channel_axis=img_channel_axis, fill_mode=self.fill_mode,
                                   cval=self.cval, order=self.interpolation_order)
        if transform_parameters.get("channel_shift_intensity") is not None:
            x = apply_channel_shift(x, transform_parameters["channel_shift_intensity"],
                                    img_channel_axis)
        if transform_parameters.get("flip_horizontal", False):
            x = flip_axis(x, img_col_axis)
        if transform_parameters.get("flip_vertical", False):
            x = flip_axis(x, img_row_axis)
        if transform_parameters.get("brightness") is not None:
            x = apply_brightness_shift(x, transform_parameters["brightness"])
        return x

    def random_transform(self, x, seed=None):
        """Draw parameters and apply them to one image (rank 3)."""
        params = self.get_random_transform(x.shape, seed)
        return self.apply_transform(x, params)

    # ------------------------------------------------------------------ feature-wise stats
    def fit(self, x, augment=False, rounds=1, seed=None):
        """Compute the feature-wise mean/std (and ZCA matrix) from sample data (N, H, W, C)."""
        x = np.asarray(x, dtype=self.dtype)
        if x.ndim != 4:
            raise ValueError("ImageDataGenerator.fit: input should have rank 4 (N, H, W, C), "
                             f"got array with shape {x.shape}")
        if x.shape[self.channel_axis] not in {1, 3, 4}:
            warnings.warn(f"ImageDataGenerator.fit: expected 1, 3 or 4 channels on axis "
                          f"{self.channel_axis}, got {x.shape[self.channel_axis]} "
                          f"(input shape {x.shape})")
        if seed is not None:
            np.random.seed(seed)
        x = np.copy(x)
        if self.rescale:
            x *= self.rescale
        if augment:
            augmented = np.zeros((rounds * x.shape[0],) + x.shape[1:], dtype=self.dtype)
            for r in range(rounds):
                for i in range(x.shape[0]):
                    augmented[i + r * x.shape[0]] = self.random_transform(x[i])
            x = augmented
        broadcast_shape = [1, 1, 1]
        broadcast_shape[self.channel_axis - 1] = x.shape[self.channel_axis]
        if self.featurewise_center:
            self.mean = np.mean(x, axis=(0, self.row_axis, self.col_axis))
            self.mean = np.reshape(self.mean, broadcast_shape)
            x -= self.mean
        if self.featurewise_std_normalization:
            self.std = np.std(x, axis=(0, self.row_axis, self.col_axis))
            self.std = np.reshape(self.std, broadcast_shape)
            x /= (self.std + 1e-6)
        if self.zca_whitening:
            flat_x = np.reshape(x, (x.shape[0], -1))
            sigma = flat_x.T @ flat_x / flat_x.shape[0]
            u, s, _ = np.linalg.svd(sigma)
            s_inv = 1. / np.sqrt(s[np.newaxis] + self.zca_epsilon)
            self.principal_components = (u * s_inv) @ u.T
