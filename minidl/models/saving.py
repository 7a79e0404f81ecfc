"""Save and load models: weights (by order or by name), whole models, Keras exports.

This is the glue between a model and the file formats of :mod:`minidl.weights`.
It turns a model into plain data -- its layers' arrays as
:class:`~minidl.weights.LayerWeights`, its config as JSON, its compile
arguments and optimizer state -- for the writers, and puts what the readers
return back into a model. The formats never see a model class; this module
never opens an HDF5 file itself.

===================================================  ============================================
function                                             called by
===================================================  ============================================
``save_weights(model, path)``                        ``Model.save_weights``: minidl's format
``load_weights(model, path, by_name=False,           ``Model.load_weights``: minidl or Keras
skip_mismatch=False)``                               legacy HDF5, detected from the file
``save_model(model, path, include_optimizer=True)``  ``Model.save``: ``.keras`` -> Keras 3's zip,
                                                     any other name -> minidl's HDF5 model file
``load_model(path, custom_objects=None,              ``minidl.models.load_model``: either file,
compile=True)``                                      told apart by its content
``export_model(model, path, format="onnx")``         ``Model.export``: an ONNX graph for serving
``save_keras_h5(model, path)``                       you: export for ``keras_model.load_weights``
``model_layout(model)``                              you: ``convert(..., architecture=...)``;
                                                     ``imagenet_weights``' shape check
===================================================  ============================================

It takes the model as an argument and imports neither ``model.py`` nor
``sequential.py`` (rebuilding goes through :mod:`minidl.models.serialization`),
so ``Model.save`` can call it without an import cycle.

Example::

    from minidl.models import saving
    saving.save_weights(model, "w.h5")                  # what model.save_weights("w.h5") does
    saving.load_weights(other_model, "w.h5")            # by order, every shape checked first
    saving.save_keras_h5(model, "for_keras.h5")         # keras_model.load_weights reads it
    saving.save_model(model, "model.keras")             # keras.saving.load_model reads it
"""
import json
import re
import warnings
from pathlib import Path

from minidl import optimizers
from minidl.models import keras_compile, keras_config, keras_layers, serialization
from minidl.models.keras_archive import VariableGroup, is_keras_archive, read_keras_archive, write_keras_archive
from minidl.weights.convert import ModelLayout
from minidl.weights.keras_h5 import LayerWeights, write_keras_h5
from minidl.weights.matching import match_layers
from minidl.weights.minidl_h5 import short_weight_names, write_minidl_h5
from minidl.weights.model_file import read_model_file, write_model_file
from minidl.weights.reading import read_weights_file


# ---------------------------------------------------------------------------
# a model as plain data
# ---------------------------------------------------------------------------
def _keras_weight_name(layer_name, parameter_name):
    """``conv2d_1/kernel:0`` stays; a bare ``kernel`` becomes ``layer/kernel:0``."""
    name = parameter_name if "/" in parameter_name else f"{layer_name}/{parameter_name}"
    return name if re.search(r":\d+$", name) else name + ":0"


def model_layer_weights(model, naming="minidl"):
    """Every layer of ``model.layers`` as :class:`~minidl.weights.LayerWeights`, in order.

    The arrays are the parameters' own arrays (no copy). ``naming='keras'``
    gives full Keras names (``conv2d_1/kernel:0``); ``naming='minidl'`` short
    ones (``kernel``), as minidl's format stores them.
    """
    if naming not in ("minidl", "keras"):
        raise ValueError(f"naming must be 'minidl' or 'keras', got {naming!r}")
    layers = []
    for layer in model.layers:
        parameters = list(layer.weights)
        if naming == "keras":
            names = [_keras_weight_name(layer.name, parameter.name) for parameter in parameters]
        else:
            names = short_weight_names(layer.name, [parameter.name for parameter in parameters])
        layers.append(LayerWeights(layer.name, [(name, parameter.value)
                                                for name, parameter in zip(names, parameters)]))
    return layers


def model_architecture_json(model):
    """``{"class_name": ..., "config": model.get_config()}`` as JSON, or None if the
    model cannot describe itself (a subclassed model, a custom layer)."""
    try:
        return json.dumps(serialization.layer_config(model))
    except (AttributeError, NotImplementedError, TypeError, ValueError, KeyError, RuntimeError):
        return None


def model_layout(model):
    """``model`` as a :class:`~minidl.weights.ModelLayout`: what
    ``minidl.weights.convert(..., architecture=...)`` checks a file against.

    Example::

        convert("keras_file.h5", "converted.h5", architecture=model_layout(model))
    """
    return ModelLayout(
        description=f"{type(model).__name__} '{model.name}'",
        layers=model_layer_weights(model, "keras"),
        config_json=model_architecture_json(model),
    )


# ---------------------------------------------------------------------------
# weights only
# ---------------------------------------------------------------------------
def save_weights(model, path):
    """Save ``model``'s weights in minidl's format (atomic; see weights/README.md)."""
    return write_minidl_h5(path, model_layer_weights(model, "minidl"),
                           architecture=model_architecture_json(model))


def save_keras_h5(model, path):
    """Save ``model``'s weights in Keras's legacy HDF5 layout (atomic), so that
    ``keras_model.load_weights(path)`` loads them into the same architecture."""
    return write_keras_h5(path, model_layer_weights(model, "keras"))


def load_weights(model, path, by_name=False, skip_mismatch=False):
    """Load a minidl or Keras legacy HDF5 file into ``model`` (format detected).

    Raises ``ValueError`` naming the file, the file layer, the model layer and
    both shapes on any mismatch; nothing is assigned in that case.
    """
    _, file_layers = read_weights_file(path)
    load_layer_weights(model, file_layers, by_name, skip_mismatch, source=str(path))


def load_layer_weights(model, file_layers, by_name=False, skip_mismatch=False, source="<memory>"):
    """Assign a list of :class:`~minidl.weights.LayerWeights` to ``model``'s layers.

    :func:`minidl.weights.match_layers` decides which arrays go where and
    checks every shape first; only then is anything assigned.
    """
    model_layers = list(model.layers)
    described = model_layer_weights(model, "keras")
    for position, arrays in match_layers(described, file_layers, by_name, skip_mismatch, source):
        for parameter, array in zip(model_layers[position].weights, arrays):
            parameter.assign(array)


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
    }


def _compile_arguments(config):
    """The keyword arguments of ``model.compile`` that recreate a saved ``training_config``."""
    optimizer_config = dict(config["optimizer"]["config"])
    optimizer_config.setdefault("name", config["optimizer"]["class_name"])
    arguments = {"optimizer": optimizers.get(optimizer_config), "loss": config["loss"]}
    if config.get("metrics") is not None:
        arguments["metrics"] = config["metrics"]
    return arguments


# ---------------------------------------------------------------------------
# whole models
# ---------------------------------------------------------------------------
def save_model(model, path, include_optimizer=True):
    """Write architecture, weights and (if compiled) optimizer config and state, atomically.

    The name picks the format, as in Keras: ``.keras`` writes Keras 3's zip
    (:func:`save_keras`); any other name (``.h5``) minidl's HDF5 model file.
    """
    if Path(path).suffix.lower() == ".keras":
        return save_keras(model, path, include_optimizer=include_optimizer)
    architecture = model_architecture_json(model)
    if architecture is None:
        raise ValueError(
            f"cannot save model '{getattr(model, 'name', model)}' to '{path}': its "
            f"get_config() failed, so the architecture cannot be stored. Save only the "
            f"weights with model.save_weights(path) and rebuild the model in code."
        )
    config = training_config(model) if include_optimizer else None
    state = model.optimizer.get_state() if config is not None else None
    return write_model_file(path, architecture, model_layer_weights(model, "minidl"),
                            training_config=config, optimizer_state=state)


def load_model(path, custom_objects=None, compile=True):
    """Rebuild a model saved by :func:`save_model` -- or by Keras 3 as ``.keras`` --
    with its weights and, when ``compile`` is true and the file has one, its
    compiled optimizer state."""
    if is_keras_archive(path):
        return load_keras(path, custom_objects=custom_objects, compile=compile)
    saved = read_model_file(path)
    model = serialization.model_from_config(saved.model_config, custom_objects=custom_objects)
    load_layer_weights(model, saved.layers, source=str(path))
    if compile and saved.training_config is not None:
        model.compile(**_compile_arguments(saved.training_config))
        if saved.optimizer_state is not None:
            model.optimizer.set_state(saved.optimizer_state)
    return model


# ---------------------------------------------------------------------------
# Keras 3's .keras files
# ---------------------------------------------------------------------------
def save_keras(model, path, include_optimizer=True):
    """Write ``model`` as Keras 3's ``.keras`` zip (atomic), which ``keras.saving.load_model``
    reads: config.json (the graph, and how it was compiled), metadata.json and
    model.weights.h5 (the weights and the optimizer's state). See ``keras_archive.py``."""
    config, variables = keras_config.model_to_keras(model)
    if include_optimizer:
        compile_config, optimizer_group = keras_compile.compile_to_keras(model)
        if compile_config is not None:
            config["compile_config"] = compile_config
            variables["optimizer"] = optimizer_group
    return write_keras_archive(path, config, variables)


def _assign_keras_variables(model, model_entry, variables, source):
    """Put every layer's arrays from ``model.weights.h5`` into ``model``; all counts and
    shapes are checked before anything is assigned."""
    assignments, problems = [], []
    for group_path, layer_names in keras_config.weight_paths(model_entry):
        layer = model
        for name in layer_names:
            layer = layer.get_layer(name)
        parameters = list(layer.weights)
        arrays = variables.get(group_path, VariableGroup(layer.name, [])).arrays
        shapes = [tuple(parameter.shape) for parameter in parameters]
        if [tuple(array.shape) for array in arrays] != shapes:
            problems.append(f"layer '{'/'.join(layer_names)}' needs weights of shapes {shapes}, "
                            f"'{group_path}/vars' holds {[tuple(array.shape) for array in arrays]}")
        assignments.extend(zip(parameters, arrays))
    if problems:
        raise ValueError(f"'{source}': the weights do not fit the architecture: " + "; ".join(problems[:5]))
    for parameter, array in assignments:
        parameter.assign(array)


def _compile_from_keras(model, compile_config, optimizer_group, source):
    """``model.compile`` as the file records it, then the optimizer's saved state."""
    try:
        model.compile(**keras_compile.compile_arguments_from_keras(compile_config))
    except (ValueError, TypeError, NotImplementedError) as error:
        warnings.warn(f"'{source}': the model is loaded uncompiled ({error}); call model.compile(...) "
                      f"yourself, or load with compile=False to silence this", stacklevel=3)
        return
    if optimizer_group is not None:
        state = keras_compile.optimizer_state_from_keras(model.optimizer, optimizer_group, model.trainable_weights)
        if state is None:
            warnings.warn(f"'{source}': the optimizer's saved state does not fit the model's trainable "
                          f"weights; the optimizer starts afresh", stacklevel=3)
        else:
            model.optimizer.set_state(state)


def load_keras(path, custom_objects=None, compile=True):
    """Rebuild a model from a ``.keras`` file written by Keras 3 (or by :func:`save_keras`).

    Raises :class:`~minidl.models.keras_layers.UnsupportedKerasLayer` naming the file
    and the first layer minidl does not have.
    """
    archive = read_keras_archive(path)
    try:
        minidl_entry = keras_config.model_from_keras(archive.config, custom_objects=custom_objects)
    except keras_layers.UnsupportedKerasLayer as error:
        raise keras_layers.UnsupportedKerasLayer(f"cannot load '{path}' into minidl: {error}") from None
    model = serialization.model_from_config(minidl_entry, custom_objects=custom_objects)
    _assign_keras_variables(model, archive.config, archive.variables, source=str(path))
    compile_config = archive.config.get("compile_config")
    if compile and compile_config:
        _compile_from_keras(model, compile_config, archive.variables.get("optimizer"), str(path))
    return model


# ---------------------------------------------------------------------------
# serving
# ---------------------------------------------------------------------------
EXPORT_FORMATS = ("onnx",)


def export_model(model, path, format="tf_saved_model", verbose=True, **kwargs):
    """Write ``model`` for serving outside minidl (``Model.export``).

    ``format="onnx"`` writes an ONNX graph (:mod:`minidl.models.onnx_export`, needs
    ``pip install -e '.[onnx]'``). Keras's other formats (``tf_saved_model``,
    ``openvino``, ...) need TensorFlow or their own runtimes and are not available.
    """
    if format == "onnx":
        from minidl.models import onnx_export   # imported on use: it imports the onnx package
        return onnx_export.export_onnx(model, path, verbose=verbose, **kwargs)
    raise NotImplementedError(f"Model.export(format={format!r}) is not available in minidl: it exports "
                              f"{', '.join(repr(name) for name in EXPORT_FORMATS)} only")
