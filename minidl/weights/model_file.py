"""Save a whole model -- architecture, weights, optimizer state -- and load it back.

``model.save(path)`` / ``minidl.models.load_model(path)`` call these
functions. The file holds everything needed to resume training exactly where
it stopped (same weights, same Adam moments, same iteration count)::

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

    save_model(model, "model.h5")
    same_model = load_model("model.h5")
"""
import json

import h5py
import numpy as np

from minidl.utils.files import atomic_write
from minidl.weights.keras_h5 import WeightsFileError, open_hdf5
from minidl.weights.minidl_h5 import minidl_version, read_minidl_group, write_minidl_group
from minidl.weights.model_io import (
    MODEL_FORMAT_NAME,
    load_layer_weights,
    model_architecture_json,
    model_layer_weights,
)

MODEL_FORMAT_VERSION = 1


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
# compile arguments
# ---------------------------------------------------------------------------
def _serializable_name(value):
    """A loss or metric as JSON: its string, or the name of a function/object."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, (list, tuple)):
        return [_serializable_name(item) for item in value]
    if isinstance(value, dict):
        return {key: _serializable_name(item) for key, item in value.items()}
    name = getattr(value, "name", None) or getattr(value, "__name__", None)
    if name is None:
        raise TypeError(f"cannot save the compile argument {value!r}: give it as a string")
    return name


def training_config(model):
    """The compile arguments of ``model`` as a JSON-able dict, or None if not compiled.

    ``model._compile_args`` is what ``Model.compile`` recorded (loss config and
    the metrics as the user gave them); the optimizer is described by its
    class name and ``get_config()``.
    """
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None:
        return None
    compile_arguments = getattr(model, "_compile_args", None) or {}
    return {
        "optimizer": {"class_name": type(optimizer).__name__, "config": optimizer.get_config()},
        "loss": _serializable_name(compile_arguments.get("loss", getattr(model, "loss", None))),
        "metrics": _serializable_name(compile_arguments.get("metrics")),
        "loss_weights": _serializable_name(compile_arguments.get("loss_weights")),
    }


def _optimizer_from_training_config(optimizers, optimizer_entry):
    config = dict(optimizer_entry["config"])
    config.setdefault("name", optimizer_entry["class_name"])
    return optimizers.get(config)


# ---------------------------------------------------------------------------
# save / load
# ---------------------------------------------------------------------------
def save_model(model, path, include_optimizer=True):
    """Write architecture, weights and (if compiled) optimizer config and state, atomically."""
    architecture = model_architecture_json(model)
    if architecture is None:
        raise ValueError(
            f"cannot save model '{getattr(model, 'name', model)}' to '{path}': its "
            f"get_config() failed, so the architecture cannot be stored. Save only the "
            f"weights with model.save_weights(path) and rebuild the model in code."
        )
    config = training_config(model) if include_optimizer else None
    with atomic_write(path) as temp_path:
        with h5py.File(temp_path, "w") as h5file:
            h5file.attrs["format"] = MODEL_FORMAT_NAME
            h5file.attrs["format_version"] = MODEL_FORMAT_VERSION
            h5file.attrs["minidl_version"] = minidl_version()
            h5file.attrs["model_config"] = architecture
            if config is not None:
                h5file.attrs["training_config"] = json.dumps(config)
                _write_tree(h5file.create_group("optimizer_state"), model.optimizer.get_state())
            write_minidl_group(h5file.create_group("model_weights"), model_layer_weights(model, "minidl"))


def load_model(path, custom_objects=None, compile=True):
    """Rebuild a model saved by :func:`save_model`, with its weights and, when
    ``compile`` is true and the file has one, its compiled optimizer state."""
    from minidl import models, optimizers  # the model classes need this package, not vice versa

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
        model_config = json.loads(h5file.attrs["model_config"])
        layers = read_minidl_group(h5file["model_weights"], path)
        config = json.loads(h5file.attrs["training_config"]) if "training_config" in h5file.attrs else None
        state = _read_tree(h5file["optimizer_state"]) if "optimizer_state" in h5file else None

    if custom_objects:
        model = models.model_from_config(model_config, custom_objects=custom_objects)
    else:
        model = models.model_from_config(model_config)
    load_layer_weights(model, layers, source=str(path))
    if compile and config is not None:
        optimizer = _optimizer_from_training_config(optimizers, config["optimizer"])
        compile_kwargs = {"optimizer": optimizer, "loss": config["loss"]}
        if config.get("metrics") is not None:
            compile_kwargs["metrics"] = config["metrics"]
        if config.get("loss_weights") is not None:
            compile_kwargs["loss_weights"] = config["loss_weights"]
        model.compile(**compile_kwargs)
        if state is not None:
            model.optimizer.set_state(state)
    return model
