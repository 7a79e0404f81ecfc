"""The whole-model file: architecture, weights and optimizer state in one HDF5 file.

This module reads and writes the file from plain data -- a config dict, a list
of :class:`~minidl.weights.keras_h5.LayerWeights`, the optimizer's state -- and
never sees a model. ``model.save(path)`` and ``minidl.models.load_model(path)``
(``minidl/models/saving.py``) turn a model into that data and back. The file
holds everything needed to resume training exactly where it stopped (same
weights, same Adam moments, same iteration count)::

    /                     attrs: format          = 'minidl-model'
                                 format_version  = 1
                                 minidl_version  = '0.1.0'
                                 model_config    = JSON {"class_name": ..., "config": model.get_config()}
                                 training_config = JSON {"optimizer": {"class_name", "config"},
                                                         "loss": ..., "metrics": [...]}   (if compiled)
    /model_weights        the weights, in minidl's weights format (weights/README.md)
    /optimizer_state      optimizer.get_state(), stored as a tree (see below)

The optimizer state is whatever ``optimizer.get_state()`` returns: dicts,
lists, arrays and scalars, nested. It is stored as a tree of groups that
remember their kind (``kind='dict'`` with JSON keys, or ``kind='list'``) and
datasets named ``0, 1, 2, ...``, so any key (even ``dense_1/kernel:0``) and
any nesting round-trip exactly.

Example::

    write_model_file("model.h5", {"class_name": "Sequential", "config": config}, layers,
                     training_config={"optimizer": ..., "loss": "mse"}, optimizer_state=state)
    saved = read_model_file("model.h5")
    saved.model_config["class_name"]    # 'Sequential'
"""
import json
from pathlib import Path
from typing import NamedTuple

import h5py
import numpy as np

from minidl.utils.files import atomic_write
from minidl.weights.keras_h5 import LayerWeights, WeightsFileError, open_hdf5, translating_read_errors
from minidl.weights.minidl_h5 import minidl_version, read_minidl_group, write_minidl_group

MODEL_FORMAT_NAME = "minidl-model"  # the root attribute ``format`` of a whole-model file
MODEL_FORMAT_VERSION = 1


class ModelFile(NamedTuple):
    """What a whole-model file holds, as :func:`read_model_file` returns it."""

    model_config: dict      # {"class_name": ..., "config": model.get_config()}
    layers: list            # LayerWeights of every layer, in model.layers order
    training_config: dict   # the compile arguments, or None if the model was not compiled
    optimizer_state: object  # optimizer.get_state() (nested dicts/lists/arrays), or None


# ---------------------------------------------------------------------------
# nested state <-> HDF5 tree
# ---------------------------------------------------------------------------
def _write_tree(group, value):
    """Store a nested dict/list/array/scalar structure under ``group``."""
    if isinstance(value, dict):
        group.attrs["kind"] = "dict"
        group.attrs["keys"] = json.dumps(list(value.keys()))
        items = list(value.values())
    elif isinstance(value, (list, tuple)):
        group.attrs["kind"] = "list" if isinstance(value, list) else "tuple"
        items = list(value)
    else:
        raise TypeError(f"_write_tree expects a dict or a list, got {type(value).__name__}")
    for index, item in enumerate(items):
        key = str(index)
        if isinstance(item, (dict, list, tuple)):
            _write_tree(group.create_group(key), item)
        elif item is None:
            group.create_dataset(key, data=h5py.Empty("f"))
        elif isinstance(item, str):
            group.create_dataset(key, data=item, dtype=h5py.string_dtype("utf-8"))
        else:
            array = np.asarray(item)
            if array.dtype == object:
                raise TypeError(f"cannot store optimizer state entry of type {type(item).__name__}")
            dataset = group.create_dataset(key, data=array)
            # Remember Python scalars so that ``iterations`` comes back as an int.
            if not isinstance(item, np.ndarray):
                dataset.attrs["python_scalar"] = True


def _read_tree(group):
    """Inverse of :func:`_write_tree`."""
    items = []
    for index in range(len(group)):
        node = group[str(index)]
        if isinstance(node, h5py.Group):
            items.append(_read_tree(node))
        elif node.shape is None:  # h5py.Empty -> None
            items.append(None)
        elif node.dtype.kind == "O":
            value = node[()]
            items.append(value.decode("utf8") if isinstance(value, bytes) else value)
        elif node.attrs.get("python_scalar", False):
            items.append(node[()].item())
        else:
            items.append(np.asarray(node))
    kind = group.attrs["kind"]
    if kind == "dict":
        return dict(zip(json.loads(group.attrs["keys"]), items))
    return items if kind == "list" else tuple(items)


# ---------------------------------------------------------------------------
# the file
# ---------------------------------------------------------------------------
def write_model_file(path, model_config, layers, training_config=None, optimizer_state=None):
    """Write a whole-model file atomically: an error or Ctrl-C leaves no file.

    Parameters
    ----------
    path : str or PathLike
    model_config : dict or str
        ``{"class_name": ..., "config": ...}`` (or that as JSON).
    layers : list of LayerWeights or (layer_name, [(weight_name, array), ...])
        Every layer in ``model.layers`` order; weightless layers with ``[]``.
    training_config : dict, optional
        The compile arguments (optimizer class and config, loss, metrics, ...).
    optimizer_state : dict or list, optional
        ``optimizer.get_state()``; stored only with a ``training_config``.
    """
    if not isinstance(model_config, str):
        model_config = json.dumps(model_config)
    layers = [LayerWeights(name, list(weights)) for name, weights in layers]
    with atomic_write(path) as temp_path:
        with h5py.File(temp_path, "w") as h5file:
            h5file.attrs["format"] = MODEL_FORMAT_NAME
            h5file.attrs["format_version"] = MODEL_FORMAT_VERSION
            h5file.attrs["minidl_version"] = minidl_version()
            h5file.attrs["model_config"] = model_config
            if training_config is not None:
                h5file.attrs["training_config"] = json.dumps(training_config)
                if optimizer_state is not None:
                    _write_tree(h5file.create_group("optimizer_state"), optimizer_state)
            write_minidl_group(h5file.create_group("model_weights"), layers)
    return Path(path)


def read_model_file(path):
    """Read a file written by :func:`write_model_file` into a :class:`ModelFile`.

    Raises :class:`WeightsFileError` naming the file if it is not a minidl model
    file (a weights-only file, for example) or was written by a newer minidl.
    """
    with open_hdf5(path) as h5file:
        file_format = h5file.attrs.get("format")
        if file_format != MODEL_FORMAT_NAME:
            raise WeightsFileError(
                f"'{path}' is not a minidl model file (root attribute format is "
                f"{file_format!r}, expected '{MODEL_FORMAT_NAME}'). A weights-only file "
                f"loads with model.load_weights(path) into a model built in code."
            )
        version = int(h5file.attrs.get("format_version", 0))
        if version > MODEL_FORMAT_VERSION:
            raise WeightsFileError(
                f"'{path}' uses minidl model format version {version}; this minidl reads "
                f"up to {MODEL_FORMAT_VERSION}: upgrade minidl"
            )
        with translating_read_errors(path):
            attributes = h5file.attrs
            return ModelFile(
                model_config=json.loads(attributes["model_config"]),
                layers=read_minidl_group(h5file["model_weights"], path),
                training_config=(json.loads(attributes["training_config"])
                                 if "training_config" in attributes else None),
                optimizer_state=(_read_tree(h5file["optimizer_state"])
                                 if "optimizer_state" in h5file else None),
            )
