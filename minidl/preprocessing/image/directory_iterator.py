"""``DirectoryIterator`` (``flow_from_directory``): images from one sub-folder per class.

``minidl/keras_semantics.md`` §2 (keras-preprocessing 1.1.2):

* classes: ``sorted(os.listdir(directory))`` keeping directories (symlinks to
  directories count) -- plain code-point order, so 'openI_CXR' < 'openI_abd_xray'
  ('C' < 'a') and '10' < '2'. A given ``classes`` list is used in its own order.
* files: per class, ``sorted(os.walk(classdir, followlinks=follow_links))`` by root,
  then ``sorted(files)`` per root; nested folders included; a file is kept if its
  lower-cased name ends with a white-listed extension -- tested **without the dot**
  as 1.1.x does, so 'fooPNG' passes. '.dcm' joins the list when pydicom is installed.
* ``filenames`` are relative to ``directory``; ``classes`` is int32; prints
  ``Found N images belonging to K classes.``.
* labels: 'binary' and 'sparse' float32 (B,), 'categorical' one-hot float32,
  'input' the images, None no labels.

Bad input, decided by minidl (Keras itself does not check these):

* a missing directory raises FileNotFoundError; a directory without class
  folders, or class folders without any image, raises ValueError;
* ``class_mode='binary'`` with a number of classes other than 2 warns (labels
  would all be 0, or exceed 1); it still runs, as in Keras, because a
  one-folder 'binary' iterator is sometimes used for prediction;
* an unreadable image raises ``UnreadableImageError`` naming the file when its
  batch is built; with ``on_error='skip'`` every file is decoded once up front
  and unreadable ones are left out with a warning.

Example::

    it = ImageDataGenerator(rescale=1. / 255).flow_from_directory(
        "TRAIN", target_size=(299, 299), batch_size=5, class_mode="binary")
    # Found 65 images belonging to 2 classes.
    it.class_indices   # {'openI_CXR': 0, 'openI_abd_xray': 1}
"""
import os
import warnings

import numpy as np

from minidl.preprocessing.image.dicom import pydicom_available
from minidl.preprocessing.image.errors import UnreadableImageError
from minidl.preprocessing.image.iterator import Iterator
from minidl.preprocessing.image.loading import array_to_img, check_target_size, img_to_array, load_img

_CLASS_MODES = ("categorical", "binary", "sparse", "input", None)
_COLOR_MODE_CHANNELS = {"rgb": 3, "rgba": 4, "grayscale": 1}


def iter_valid_files(directory, white_list_formats, follow_links):
    """Yield (root, filename) of white-listed files under ``directory``, in Keras order."""
    walk = sorted(os.walk(directory, followlinks=follow_links), key=lambda entry: entry[0])
    for root, _, files in walk:
        for fname in sorted(files):
            if fname.lower().endswith(".tiff"):
                warnings.warn('Using ".tiff" files with multiple bands will cause distortion. '
                              "Please verify your output.")
            if fname.lower().endswith(white_list_formats):
                yield root, fname


def list_valid_filenames_in_directory(directory, white_list_formats, split, class_index,
                                      follow_links):
    """Return (labels, relative filenames) for one class folder, honouring ``split``."""
    dirname = os.path.basename(os.path.normpath(directory))
    valid_files = list(iter_valid_files(directory, white_list_formats, follow_links))
    if split:
        start, stop = int(split[0] * len(valid_files)), int(split[1] * len(valid_files))
        valid_files = valid_files[start:stop]
    filenames = [os.path.join(dirname, os.path.relpath(os.path.join(root, fname), directory))
                 for root, fname in valid_files]
    return [class_index] * len(filenames), filenames


class DirectoryIterator(Iterator):
    """Iterator over images read from a directory (see the module docstring)."""

    allowed_class_modes = set(_CLASS_MODES)

    def __init__(self, directory, image_data_generator, target_size=(256, 256),
                 color_mode="rgb", classes=None, class_mode="categorical", batch_size=32,
                 shuffle=True, seed=None, data_format="channels_last", save_to_dir=None,
                 save_prefix="", save_format="png", follow_links=False, subset=None,
                 interpolation="nearest", dtype="float32", on_error="raise",
                 sixteen_bit="clip"):
        directory = os.fspath(directory)
        dtype = dtype or "float32"                          # Keras 2: None = floatx()
        data_format = data_format or "channels_last"        # Keras 2: None = image_data_format()
        if target_size is None:  # a batch needs one common size
            raise ValueError("flow_from_directory: target_size must be two positive integers "
                             "(height, width), got None")
        self.target_size = check_target_size(target_size, "flow_from_directory")
        if color_mode not in _COLOR_MODE_CHANNELS:
            raise ValueError(f"flow_from_directory: invalid color_mode {color_mode!r}; "
                             'expected "rgb", "rgba", or "grayscale".')
        if class_mode not in _CLASS_MODES:
            raise ValueError(f"flow_from_directory: invalid class_mode {class_mode!r}; "
                             f"expected one of {_CLASS_MODES}")
        if on_error not in ("raise", "skip"):
            raise ValueError("flow_from_directory: on_error must be 'raise' or 'skip', "
                             f"got {on_error!r}")
        if not os.path.isdir(directory):
            raise FileNotFoundError(f"flow_from_directory: directory '{directory}' does not "
                                    "exist (or is not a directory)")
        self.directory = directory
        self.image_data_generator = image_data_generator
        self.color_mode = color_mode
        self.data_format = data_format
        channels = _COLOR_MODE_CHANNELS[color_mode]
        self.image_shape = (self.target_size + (channels,) if data_format == "channels_last"
                            else (channels,) + self.target_size)
        self.class_mode = class_mode
        self.save_to_dir = save_to_dir
        self.save_prefix = save_prefix
        self.save_format = save_format
        self.interpolation = interpolation
        self.dtype = dtype
        self.sixteen_bit = sixteen_bit
        self.sample_weight = None
        self.split = self._split_for_subset(subset, image_data_generator)
        self.subset = subset
        white_list = self.white_list_formats + (("dcm",) if pydicom_available() else ())
        self.white_list_formats = white_list

        if not classes:
            classes = [name for name in sorted(os.listdir(directory))
                       if os.path.isdir(os.path.join(directory, name))]
            if not classes:
                raise ValueError(
                    f"flow_from_directory: '{directory}' has no class sub-folders; expected "
                    "one folder per class, e.g. TRAIN/chest/*.png and TRAIN/abdomen/*.png")
        else:
            for name in classes:
                if not os.path.isdir(os.path.join(directory, name)):
                    warnings.warn(f"flow_from_directory: class folder "
                                  f"'{os.path.join(directory, name)}' does not exist; "
                                  "it will have no images")
        self.num_classes = len(classes)
        self.class_indices = dict(zip(classes, range(len(classes))))
        if class_mode == "binary" and self.num_classes != 2:
            warnings.warn(f"flow_from_directory: class_mode='binary' expects 2 classes, found "
                          f"{self.num_classes} ({list(classes)}) in '{directory}'; "
                          "the labels will be the class indices 0.." f"{self.num_classes - 1}")

        self.filenames, labels = [], []
        for name in classes:
            class_labels, class_files = list_valid_filenames_in_directory(
                os.path.join(directory, name), white_list, self.split,
                self.class_indices[name], follow_links)
            if not class_files and self.split is None:
                warnings.warn(f"flow_from_directory: class folder "
                              f"'{os.path.join(directory, name)}' has no image files "
                              f"(extensions {white_list})")
            self.filenames += class_files
            labels += class_labels
        if on_error == "skip":
            self.filenames, labels = self._drop_unreadable(self.filenames, labels)
        if not self.filenames and self.split is None:
            raise ValueError(f"flow_from_directory: no image files found in the class "
                             f"folders {list(classes)} of '{directory}' "
                             f"(white-listed extensions: {white_list})")
        self.samples = len(self.filenames)
        self.classes = np.array(labels, dtype="int32")
        print(f"Found {self.samples} images belonging to {self.num_classes} classes.")
        self._filepaths = [os.path.join(self.directory, fname) for fname in self.filenames]
        super().__init__(self.samples, batch_size, shuffle, seed)

    @staticmethod
    def _split_for_subset(subset, image_data_generator):
        if subset is None:
            return None
        validation_split = getattr(image_data_generator, "_validation_split", 0.0)
        if subset == "validation":
            return (0, validation_split)
        if subset == "training":
            return (validation_split, 1)
        raise ValueError(f"flow_from_directory: invalid subset name {subset!r}; expected "
                         '"training" or "validation"')

    def _drop_unreadable(self, filenames, labels):
        kept_files, kept_labels = [], []
        for fname, label in zip(filenames, labels):
            path = os.path.join(self.directory, fname)
            try:
                load_img(path, color_mode=self.color_mode).close()
            except (UnreadableImageError, ImportError) as error:
                warnings.warn(f"flow_from_directory: skipping unreadable file '{path}': {error}")
                continue
            kept_files.append(fname)
            kept_labels.append(label)
        return kept_files, kept_labels

    @property
    def filepaths(self):
        """Full paths of the files, in the order of ``filenames``."""
        return self._filepaths

    @property
    def labels(self):
        return self.classes

    def _get_batches_of_transformed_samples(self, index_array):
        """Load, augment and standardise the images ``index_array`` (minidl/keras_semantics.md §2.4)."""
        batch_x = np.zeros((len(index_array),) + self.image_shape, dtype=self.dtype)
        generator = self.image_data_generator
        for i, j in enumerate(index_array):
            img = load_img(self._filepaths[j], color_mode=self.color_mode,
                           target_size=self.target_size, interpolation=self.interpolation,
                           sixteen_bit=self.sixteen_bit)
            x = img_to_array(img, data_format=self.data_format)
            img.close()
            if generator:
                params = generator.get_random_transform(x.shape)
                x = generator.apply_transform(x, params)
                x = generator.standardize(x)
            batch_x[i] = x
        if self.save_to_dir:
            for i, j in enumerate(index_array):
                img = array_to_img(batch_x[i], self.data_format, scale=True)
                fname = (f"{self.save_prefix}_{j}_{np.random.randint(int(1e7))}."
                         f"{self.save_format}")
                img.save(os.path.join(self.save_to_dir, fname))
        if self.class_mode == "input":
            return batch_x, batch_x.copy()
        if self.class_mode in ("binary", "sparse"):
            return batch_x, self.classes[index_array].astype(self.dtype)
        if self.class_mode == "categorical":
            batch_y = np.zeros((len(batch_x), self.num_classes), dtype=self.dtype)
            batch_y[np.arange(len(batch_x)), self.classes[index_array]] = 1.
            return batch_x, batch_y
        return batch_x
