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
``save_model(model, path, include_optimizer=True)``  ``Model.save``
``load_model(path, custom_objects=None,              ``minidl.models.load_model``
compile=True)``
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
"""
import json
import re

from minidl import optimizers
from minidl.models import serialization
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
    """Write architecture, weights and (if compiled) optimizer config and state, atomically."""
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
    """Rebuild a model saved by :func:`save_model`, with its weights and, when
    ``compile`` is true and the file has one, its compiled optimizer state."""
    saved = read_model_file(path)
    model = serialization.model_from_config(saved.model_config, custom_objects=custom_objects)
    load_layer_weights(model, saved.layers, source=str(path))
    if compile and saved.training_config is not None:
        model.compile(**_compile_arguments(saved.training_config))
        if saved.optimizer_state is not None:
            model.optimizer.set_state(saved.optimizer_state)
    return model


def export_model(model, path, format="tf_saved_model", verbose=True, **kwargs):
    """Write ``model`` for serving outside minidl (``Model.export``)."""
    raise NotImplementedError(f"Model.export(format={format!r}) is not implemented in minidl yet")
