"""Put a weights file's arrays into a model's layers, and take them out again.

Two ways to match file layers with model layers, exactly as Keras (spec §7):

**Topological** (``by_name=False``, the default; how InceptionV3 loads its
ImageNet weights, spec §7.2). The layers *with weights* of the model, in
``model.layers`` order, are zipped with the layers *with weights* of the file,
in the file's ``layer_names`` order. Names are ignored, so files written by
tf.keras (``conv2d``, ``conv2d_1``, ... one lower than Keras 2), by Keras 3
(weight names such as ``kernel`` or ``vars/0``) or without the ``:0`` suffix
load as long as the order and the shapes agree::

    model layers with weights:  conv2d_1   batch_normalization_1   conv2d_2 ...
    file layers with weights:   conv2d_1   batch_normalization_1   conv2d_2 ...
                                (k-th with k-th; every array's shape is checked)

**By name** (``by_name=True``, spec §7.3). A file layer's arrays go into every
model layer with the same name; other model layers keep their values, other
file layers are ignored. With ``skip_mismatch=True`` a layer whose weight count
or shapes differ is skipped with a warning instead of raising.

Either way every shape is checked *before* anything is assigned, so a file
that does not fit leaves the model exactly as it was.

Example::

    save_weights(model, "w.h5")                  # minidl's format
    load_weights(model, "w.h5")                  # detects minidl or Keras legacy
    save_keras_h5(model, "for_keras.h5")         # keras_model.load_weights(...) reads it
"""
import json
import re
import warnings
from collections import defaultdict

from minidl.weights.keras_h5 import (
    LayerWeights,
    WeightsFileError,
    keras_weights_group,
    open_hdf5,
    read_layers_from_group,
    write_keras_h5,
)
from minidl.weights.minidl_h5 import (
    is_minidl_group,
    read_minidl_group,
    short_weight_names,
    write_minidl_h5,
)

MODEL_FORMAT_NAME = "minidl-model"  # root attribute of save_model files (model_file.py)


# ---------------------------------------------------------------------------
# reading any supported file
# ---------------------------------------------------------------------------
def _decoded_attr(group, name):
    value = group.attrs.get(name)
    if isinstance(value, bytes):
        return value.decode("utf8")
    return None if value is None else str(value)


def _weights_group_and_format(h5file, path):
    """Find the group holding the weights and say which layout it uses."""
    file_format = _decoded_attr(h5file, "format")
    if is_minidl_group(h5file):
        return h5file, "minidl"
    if file_format == MODEL_FORMAT_NAME and "model_weights" in h5file:
        return h5file["model_weights"], "minidl"
    keras_group = keras_weights_group(h5file)
    if keras_group is not None:
        return keras_group, "keras"
    hint = ""
    if "layers" in h5file or "vars" in h5file:
        hint = (
            " It looks like a Keras 3 native '.weights.h5' file, which minidl does not "
            "read; in Keras 3 save the model with model.save('model.h5') (legacy HDF5) instead."
        )
    raise WeightsFileError(
        f"'{path}' is an HDF5 file but not a weights file minidl knows: expected a root "
        f"attribute format='minidl-weights' (minidl) or 'layer_names' (Keras legacy "
        f"HDF5); found attributes {sorted(h5file.attrs.keys())} and groups "
        f"{sorted(h5file.keys())[:10]}.{hint}"
    )


def detect_format(path):
    """Return ``'minidl'`` or ``'keras'`` for a weights or model file; raise
    :class:`WeightsFileError` (naming the file) for anything else."""
    with open_hdf5(path) as h5file:
        return _weights_group_and_format(h5file, path)[1]


def read_weights_file(path):
    """Read any supported weights file: returns ``(format, [LayerWeights, ...])``."""
    with open_hdf5(path) as h5file:
        group, file_format = _weights_group_and_format(h5file, path)
        try:
            if file_format == "minidl":
                return file_format, read_minidl_group(group, path)
            return file_format, read_layers_from_group(group, path)
        except WeightsFileError:
            raise
        except (OSError, KeyError, RuntimeError, ValueError) as error:
            raise WeightsFileError(
                f"cannot read the weights in '{path}': the file is truncated or "
                f"corrupted. h5py said: {error}"
            ) from error


# ---------------------------------------------------------------------------
# a model's weights as LayerWeights
# ---------------------------------------------------------------------------
def _keras_weight_name(layer_name, parameter_name):
    """``conv2d_1/kernel:0`` stays; a bare ``kernel`` becomes ``layer/kernel:0``."""
    name = parameter_name if "/" in parameter_name else f"{layer_name}/{parameter_name}"
    return name if re.search(r":\d+$", name) else name + ":0"


def model_layer_weights(model, naming="minidl"):
    """Every layer of ``model.layers`` as :class:`LayerWeights`, in order.

    ``naming='keras'`` keeps full Keras names (``conv2d_1/kernel:0``);
    ``naming='minidl'`` uses short names (``kernel``).
    """
    layers = []
    for layer in model.layers:
        parameters = list(layer.weights)
        if naming == "keras":
            names = [_keras_weight_name(layer.name, p.name) for p in parameters]
        else:
            names = short_weight_names(layer.name, [p.name for p in parameters])
        layers.append(LayerWeights(layer.name, [(n, p.value) for n, p in zip(names, parameters)]))
    return layers


def model_architecture_json(model):
    """``{"class_name": ..., "config": model.get_config()}`` as JSON, or None if the
    model cannot describe itself (a subclassed model, a custom layer)."""
    try:
        try:
            # minidl's own serializer picks the right class_name/config pair
            # (Sequential vs functional Model, nested models).
            from minidl.models.serialization import layer_config
        except ImportError:
            entry = {"class_name": type(model).__name__, "config": model.get_config()}
        else:
            entry = layer_config(model)
        return json.dumps(entry)
    except (AttributeError, NotImplementedError, TypeError, ValueError, KeyError, RuntimeError):
        return None


def save_weights(model, path):
    """Save ``model``'s weights in minidl's format (atomic; see weights/README.md)."""
    return write_minidl_h5(
        path, model_layer_weights(model, "minidl"), architecture=model_architecture_json(model)
    )


def save_keras_h5(model, path):
    """Save ``model``'s weights in Keras's legacy HDF5 layout (atomic), so that
    ``keras_model.load_weights(path)`` loads them into the same architecture."""
    return write_keras_h5(path, model_layer_weights(model, "keras"))


# ---------------------------------------------------------------------------
# loading
# ---------------------------------------------------------------------------
def load_weights(model, path, by_name=False, skip_mismatch=False):
    """Load a minidl or Keras legacy HDF5 file into ``model`` (format detected).

    Raises ``ValueError`` naming the file layer, the model layer and both
    shapes on any mismatch; nothing is assigned in that case.
    """
    _, file_layers = read_weights_file(path)
    load_layer_weights(model, file_layers, by_name, skip_mismatch, source=str(path))


def load_layer_weights(model, file_layers, by_name=False, skip_mismatch=False, source="<memory>"):
    """Assign a list of :class:`LayerWeights` to ``model`` (see module docstring)."""
    if skip_mismatch and not by_name:
        raise ValueError("skip_mismatch=True only makes sense with by_name=True (as in Keras)")
    if by_name:
        assignments = _match_by_name(model, file_layers, skip_mismatch, source)
    else:
        assignments = _match_by_order(model, file_layers, source)
    for parameter, array in assignments:  # all checks passed: now assign
        parameter.assign(array)


def _check_layer(position, model_layer, file_layer, source):
    """Return the error message for a mismatching pair, or None if they fit."""
    parameters = list(model_layer.weights)
    if len(parameters) != len(file_layer.weights):
        return (
            f"{position}model layer '{model_layer.name}' has {len(parameters)} weight(s) "
            f"{[tuple(p.shape) for p in parameters]}, but layer '{file_layer.name}' of "
            f"'{source}' has {len(file_layer.weights)} array(s) "
            f"{[tuple(a.shape) for a in file_layer.arrays]}"
        )
    for parameter, (weight_name, array) in zip(parameters, file_layer.weights):
        if tuple(parameter.shape) != tuple(array.shape):
            return (
                f"{position}shape mismatch: model layer '{model_layer.name}' weight "
                f"'{parameter.name}' has shape {tuple(parameter.shape)}, but layer "
                f"'{file_layer.name}' of '{source}' has '{weight_name}' with shape "
                f"{tuple(array.shape)}"
            )
    return None


def _match_by_order(model, file_layers, source):
    """Spec §7.2: zip weighted model layers with weighted file layers."""
    model_weighted = [layer for layer in model.layers if len(layer.weights) > 0]
    file_weighted = [layer for layer in file_layers if len(layer.weights) > 0]
    if len(model_weighted) != len(file_weighted):
        raise ValueError(
            f"You are trying to load a weight file containing {len(file_weighted)} layers "
            f"into a model with {len(model_weighted)} layers (counting layers with weights; "
            f"file '{source}'). First file layers: {[l.name for l in file_weighted[:5]]}; "
            f"first model layers: {[l.name for l in model_weighted[:5]]}."
        )
    assignments = []
    for index, (model_layer, file_layer) in enumerate(zip(model_weighted, file_weighted)):
        problem = _check_layer(f"weighted layer #{index}: ", model_layer, file_layer, source)
        if problem:
            raise ValueError(problem + " (loading by order; layer names are not compared)")
        assignments.extend(zip(model_layer.weights, file_layer.arrays))
    return assignments


def _match_by_name(model, file_layers, skip_mismatch, source):
    """Spec §7.3: each file layer goes into every model layer of the same name."""
    model_layers_by_name = defaultdict(list)
    for layer in model.layers:
        model_layers_by_name[layer.name].append(layer)
    assignments = []
    for file_layer in file_layers:
        if not file_layer.weights:
            continue
        for model_layer in model_layers_by_name.get(file_layer.name, []):
            problem = _check_layer("", model_layer, file_layer, source)
            if problem and skip_mismatch:
                warnings.warn(f"Skipping loading of weights for layer '{model_layer.name}': {problem}")
                continue
            if problem:
                raise ValueError(problem + " (loading by name; pass skip_mismatch=True to skip it)")
            assignments.extend(zip(model_layer.weights, file_layer.arrays))
    return assignments
