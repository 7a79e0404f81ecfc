"""Read and write Keras's legacy HDF5 weights layout (minidl/keras_semantics.md §7.1).

This is the layout of every ``.h5`` weights file Keras 2 wrote with
``model.save_weights`` -- including the official ImageNet InceptionV3 file --
and that tf.keras and Keras 3 still read and write for ``.h5`` paths::

    /                                attrs: layer_names = [b'input_1', b'conv2d_1', ...]
                                            backend = 'tensorflow', keras_version = '2.3.1'
    /input_1                         attrs: weight_names = []   (weightless layer)
    /conv2d_1                        attrs: weight_names = [b'conv2d_1/kernel:0']
    /conv2d_1/conv2d_1/kernel:0      dataset (3, 3, 3, 32) float32
    /batch_normalization_1           attrs: weight_names = [b'batch_normalization_1/beta:0', ...]

A weight name contains ``/``, so h5py stores its dataset in a nested
subgroup: ``/conv2d_1/conv2d_1/kernel:0``. Full-model files (``model.save``)
hold the same tree under ``/model_weights``. Attributes larger than
64,512 bytes are split into ``layer_names0``, ``layer_names1``, ...

This module knows only files; :mod:`minidl.weights.matching` pairs their
layers with a model's, and ``minidl/models/saving.py`` puts the arrays in. The in-memory form of a weights file is a list of
:class:`LayerWeights`, one per layer, in file order::

    layers = read_keras_h5("weights.h5")
    layers[1]            # LayerWeights(name='conv2d_1', weights=[('conv2d_1/kernel:0', array(...))])
    write_keras_h5("copy.h5", layers)
"""
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

import h5py
import numpy as np

from minidl.utils.files import atomic_write

# HDF5 stores small attributes inside a 64 KiB object header; Keras keeps
# each attribute chunk below this many bytes (keras/engine/saving.py).
HDF5_OBJECT_HEADER_LIMIT = 64512


class WeightsFileError(OSError):
    """A weights file that cannot be read: not HDF5, truncated, or an unknown layout."""


class LayerWeights(NamedTuple):
    """The weights one layer has in a file.

    ``name`` is the layer's name; ``weights`` is a list of
    ``(weight_name, array)`` pairs in the order the file lists them (Keras's
    order: trainable weights first, e.g. a BatchNormalization's
    ``[gamma, beta, moving_mean, moving_variance]``).
    """

    name: str
    weights: list

    @property
    def weight_names(self):
        return [weight_name for weight_name, _ in self.weights]

    @property
    def arrays(self):
        return [array for _, array in self.weights]


# ---------------------------------------------------------------------------
# attributes
# ---------------------------------------------------------------------------
def _to_str(value):
    """h5py gives ``numpy.bytes_`` for fixed-length strings and ``str`` for
    variable-length ones; writers differ, so accept both (minidl/keras_semantics.md §7.1)."""
    if isinstance(value, (bytes, np.bytes_)):
        return value.decode("utf8")
    return str(value)


def load_attribute_list(group, name):
    """Read a list-of-strings attribute, joining ``name0, name1, ...`` chunks.

    An absent attribute, or Keras's empty float64 array for a weightless
    layer, reads as ``[]``.
    """
    if name in group.attrs:
        values = group.attrs[name]
        if isinstance(values, (bytes, str, np.bytes_)):  # a single scalar string
            return [_to_str(values)]
        return [_to_str(value) for value in np.asarray(values).ravel()]
    values = []
    chunk_id = 0
    while f"{name}{chunk_id}" in group.attrs:
        values.extend(_to_str(v) for v in np.asarray(group.attrs[f"{name}{chunk_id}"]).ravel())
        chunk_id += 1
    return values


def has_attribute_list(group, name):
    """True when ``name`` or its first chunk ``name0`` is an attribute of ``group``."""
    return name in group.attrs or f"{name}0" in group.attrs


def save_attribute_list(group, name, values):
    """Write a list of strings as Keras does: UTF-8 bytes, split into chunks
    ``name0, name1, ...`` when the array exceeds 64,512 bytes.

    An empty list is written as ``np.asarray([])`` (float64), exactly what
    Keras writes for a layer without weights.
    """
    encoded = [str(value).encode("utf8") for value in values]
    too_long = [value for value in encoded if len(value) > HDF5_OBJECT_HEADER_LIMIT]
    if too_long:
        raise ValueError(
            f"attribute '{name}' cannot be stored: {len(too_long)} value(s) are longer "
            f"than {HDF5_OBJECT_HEADER_LIMIT} bytes (first starts with {too_long[0][:60]!r})"
        )
    data = np.asarray(encoded)
    chunk_count = 1
    chunks = np.array_split(data, chunk_count)
    while any(chunk.nbytes > HDF5_OBJECT_HEADER_LIMIT for chunk in chunks):
        chunk_count += 1
        chunks = np.array_split(data, chunk_count)
    if chunk_count == 1:
        group.attrs[name] = data
    else:
        for chunk_id, chunk in enumerate(chunks):
            group.attrs[f"{name}{chunk_id}"] = chunk


# ---------------------------------------------------------------------------
# opening files with errors that name them
# ---------------------------------------------------------------------------
@contextmanager
def translating_read_errors(path):
    """Turn h5py's low-level errors while reading into a WeightsFileError naming the file."""
    try:
        yield
    except WeightsFileError:
        raise
    except (OSError, KeyError, RuntimeError) as error:
        raise WeightsFileError(
            f"cannot read the weights in '{path}': the file is truncated or "
            f"corrupted. h5py said: {error}"
        ) from error


def open_hdf5(path):
    """Open ``path`` read-only, turning h5py's errors into ones that name the file."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"weights file '{path}' does not exist")
    if path.is_dir():
        raise WeightsFileError(f"weights file '{path}' is a folder, not an HDF5 file")
    try:
        return h5py.File(path, "r")
    except OSError as error:
        size = path.stat().st_size
        raise WeightsFileError(
            f"cannot read '{path}' ({size:,} bytes) as HDF5: it is not an HDF5 file, "
            f"or it is truncated or corrupted (an interrupted download?). "
            f"Delete it and download or save it again. h5py said: {error}"
        ) from error


def keras_weights_group(h5file):
    """The group that holds ``layer_names``: the root, or ``/model_weights`` in a
    full-model file (minidl/keras_semantics.md §7.1). ``None`` if neither has it."""
    if has_attribute_list(h5file, "layer_names"):
        return h5file
    if "model_weights" in h5file and has_attribute_list(h5file["model_weights"], "layer_names"):
        return h5file["model_weights"]
    return None


def read_layers_from_group(group, path="<file>"):
    """Read every layer of a Keras-layout group into a list of :class:`LayerWeights`."""
    layers = []
    for layer_name in load_attribute_list(group, "layer_names"):
        if layer_name not in group:
            raise WeightsFileError(
                f"'{path}' lists layer '{layer_name}' in layer_names but has no group "
                f"'/{layer_name}' (the file is damaged or was not written by Keras)"
            )
        layers.append(read_layer_group(group[layer_name], layer_name, path))
    return layers


def read_layer_group(layer_group, layer_name, path="<file>"):
    """One layer's weights, in its ``weight_names`` order (Keras and minidl files alike)."""
    weights = []
    for weight_name in load_attribute_list(layer_group, "weight_names"):
        if weight_name not in layer_group:
            raise WeightsFileError(
                f"'{path}': layer '{layer_name}' lists weight '{weight_name}' but the "
                f"dataset '{layer_group.name}/{weight_name}' is missing"
            )
        weights.append((weight_name, np.asarray(layer_group[weight_name])))
    return LayerWeights(layer_name, weights)


def read_keras_h5(path):
    """Read a Keras legacy HDF5 weights (or full-model) file.

    Returns
    -------
    list of LayerWeights
        Every layer in ``layer_names`` order, weightless layers included
        (with an empty ``weights`` list).
    """
    with open_hdf5(path) as h5file:
        with translating_read_errors(path):
            group = keras_weights_group(h5file)
            if group is None:
                raise WeightsFileError(
                    f"'{path}' is HDF5 but not a Keras weights file: it has no root "
                    f"attribute 'layer_names' and no '/model_weights' group"
                )
            return read_layers_from_group(group, path)


def read_keras_h5_attributes(path):
    """Return ``{'backend': ..., 'keras_version': ...}`` of a Keras file (as str, or None)."""
    with open_hdf5(path) as h5file:
        group = keras_weights_group(h5file)
        if group is None:
            return {}
        return {
            key: (_to_str(group.attrs[key]) if key in group.attrs else None)
            for key in ("backend", "keras_version")
        }


# ---------------------------------------------------------------------------
# writing
# ---------------------------------------------------------------------------
def write_layers_to_group(group, layers, backend="tensorflow", keras_version="2.3.1"):
    """Write layers in Keras's legacy layout into an open h5py group
    (``keras/engine/saving.py: save_weights_to_hdf5_group``)."""
    layer_names = [layer.name for layer in layers]
    duplicates = sorted({name for name in layer_names if layer_names.count(name) > 1})
    if duplicates:
        raise ValueError(f"layer names must be unique in a weights file, repeated: {duplicates}")
    save_attribute_list(group, "layer_names", layer_names)
    group.attrs["backend"] = backend.encode("utf8")
    group.attrs["keras_version"] = str(keras_version).encode("utf8")
    for layer in layers:
        layer_group = group.create_group(layer.name)
        weight_names = [weight_name for weight_name, _ in layer.weights]
        repeated = sorted({n for n in weight_names if weight_names.count(n) > 1})
        if repeated:
            raise ValueError(
                f"layer '{layer.name}' has repeated weight names {repeated}; "
                f"each weight needs its own dataset"
            )
        save_attribute_list(layer_group, "weight_names", weight_names)
        for weight_name, array in layer.weights:
            array = np.asarray(array)
            dataset = layer_group.create_dataset(weight_name, array.shape, dtype=array.dtype)
            dataset[()] = array


def write_keras_h5(path, layers, backend="tensorflow", keras_version="2.3.1"):
    """Write a list of :class:`LayerWeights` (or ``(name, [(weight_name, array)])``
    pairs) as a Keras legacy HDF5 weights file, atomically.

    ``keras_version`` defaults to '2.3.1', the Keras of the workshop; Keras
    only compares it to '1' (Keras-1 files get converted), so any 2.x works.
    """
    layers = [LayerWeights(name, list(weights)) for name, weights in layers]
    with atomic_write(path) as temp_path:
        with h5py.File(temp_path, "w") as h5file:
            write_layers_to_group(h5file, layers, backend, keras_version)
    return Path(path)
