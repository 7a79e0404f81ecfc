"""One layer's config, from minidl to Keras 3 and back.

In a ``.keras`` file (``minidl/models/keras_archive.py``) every layer is described by
Keras 3's serialisation of an object::

    {"module": "keras.layers", "class_name": "Conv2D", "registered_name": null,
     "config": {"name": "conv2d_3", "trainable": true, "dtype": "float32", "filters": 32,
                "kernel_size": [3, 3], "strides": [2, 2], "padding": "valid",
                "data_format": "channels_last", "dilation_rate": [1, 1], "groups": 1,
                "activation": "linear", "use_bias": false,
                "kernel_initializer": {"module": "keras.initializers", "class_name": "GlorotUniform",
                                       "config": {"seed": null}, "registered_name": null}, ...}}

minidl's own configs (``layer.get_config()``) hold the same arguments under Keras 2's
names. :func:`to_keras` adds what Keras 3 expects (``data_format``, ``groups``, the
regularizers as null, initializers as objects); :func:`from_keras` keeps what minidl's
constructors take and refuses, naming the layer, what minidl cannot compute.

minidl writes the keys every Keras 3 release reads (a subset of what Keras 3.15 writes:
newer keys such as ``quantization_config`` would break older readers) and writes the
dtype as the string ``"float32"``, which every Keras 3 reads.

Example::

    to_keras(Dense(4, activation="relu", name="d"))["config"]["activation"]   # 'relu'
    from_keras({"class_name": "Dense", "config": {...}})   # {"class_name": "Dense", "config": {...}}
"""
import warnings

# Keras's initializer classes <-> minidl's initializer names.
INITIALIZERS = {"zeros": "Zeros", "ones": "Ones", "glorot_uniform": "GlorotUniform",
                "glorot_normal": "GlorotNormal", "he_normal": "HeNormal", "he_uniform": "HeUniform"}
_INITIALIZER_NAMES = {keras: minidl for minidl, keras in INITIALIZERS.items()}

# Every layer class minidl has, with the arguments both sides share (beyond name,
# trainable and dtype), and the arguments Keras 3 adds with their only value minidl knows.
SHARED_ARGUMENTS = {
    "Dense": ["units", "activation", "use_bias", "kernel_initializer", "bias_initializer"],
    "Conv2D": ["filters", "kernel_size", "strides", "padding", "activation", "use_bias",
               "kernel_initializer", "bias_initializer"],
    "BatchNormalization": ["axis", "momentum", "epsilon", "center", "scale", "beta_initializer",
                           "gamma_initializer", "moving_mean_initializer", "moving_variance_initializer"],
    "Activation": ["activation"],
    "Dropout": ["rate", "noise_shape", "seed"],
    "Flatten": [],
    "MaxPooling2D": ["pool_size", "strides", "padding"],
    "AveragePooling2D": ["pool_size", "strides", "padding"],
    "GlobalAveragePooling2D": ["keepdims"],
    "GlobalMaxPooling2D": ["keepdims"],
    "Concatenate": ["axis"],
}
_NO_REGULARIZERS = {"kernel_regularizer": None, "bias_regularizer": None,
                    "kernel_constraint": None, "bias_constraint": None}
KERAS_ONLY_ARGUMENTS = {
    "Dense": _NO_REGULARIZERS,
    "Conv2D": {"data_format": "channels_last", "dilation_rate": [1, 1], "groups": 1,
               "activity_regularizer": None, **_NO_REGULARIZERS},
    "BatchNormalization": {"beta_regularizer": None, "gamma_regularizer": None,
                           "beta_constraint": None, "gamma_constraint": None},
    "Flatten": {"data_format": "channels_last"},
    "MaxPooling2D": {"data_format": "channels_last"},
    "AveragePooling2D": {"data_format": "channels_last"},
    "GlobalAveragePooling2D": {"data_format": "channels_last"},
    "GlobalMaxPooling2D": {"data_format": "channels_last"},
}
# Keras layers that record a build shape in the file (``build_config``); the others build on call.
RECORDS_BUILD_SHAPE = {"Dense", "Conv2D", "BatchNormalization", "Concatenate", "Flatten"}


class UnsupportedKerasLayer(ValueError):
    """A layer in a Keras file that minidl does not have, or an argument minidl cannot honour."""


def keras_object(module, class_name, config):
    """Keras 3's serialised form of a built-in object (``registered_name`` is null for those)."""
    return {"module": module, "class_name": class_name, "config": config, "registered_name": None}


# ---------------------------------------------------------------------------
# minidl -> Keras 3
# ---------------------------------------------------------------------------
def _initializer_to_keras(name):
    class_name = INITIALIZERS.get(name)
    if class_name is None:
        raise ValueError(f"initializer {name!r} has no Keras 3 counterpart minidl knows")
    return keras_object("keras.initializers", class_name, {} if name in ("zeros", "ones") else {"seed": None})


def _argument_to_keras(key, value):
    if key.endswith("_initializer"):
        return _initializer_to_keras(value)
    if isinstance(value, tuple):
        return list(value)
    return value


def to_keras(layer, class_name):
    """``{"module", "class_name", "config", "registered_name"}`` of one minidl layer.

    ``class_name`` is the layer's class as minidl's configs name it; an InputLayer
    gets Keras 3's ``batch_shape`` form.
    """
    config = layer.get_config()
    if class_name == "InputLayer":
        return keras_object("keras.layers", "InputLayer",
                            {"batch_shape": list(config["batch_input_shape"]), "dtype": config["dtype"],
                             "sparse": False, "name": config["name"]})
    if class_name not in SHARED_ARGUMENTS:
        raise UnsupportedKerasLayer(
            f"layer '{layer.name}' is a {type(layer).__name__}, which has no Keras 3 counterpart "
            f"minidl can write (it writes {', '.join(sorted(SHARED_ARGUMENTS))} and nested models)")
    keras_config = {"name": config["name"], "trainable": config["trainable"], "dtype": config["dtype"]}
    for key in SHARED_ARGUMENTS[class_name]:
        keras_config[key] = _argument_to_keras(key, config[key])
    keras_config.update(KERAS_ONLY_ARGUMENTS.get(class_name, {}))
    return keras_object("keras.layers", class_name, keras_config)


# ---------------------------------------------------------------------------
# Keras 3 -> minidl
# ---------------------------------------------------------------------------
def _dtype_name(dtype, where):
    """``"float32"`` or Keras 3's ``{"class_name": "DTypePolicy", "config": {"name": "float32"}}``."""
    if isinstance(dtype, dict):
        dtype = dtype.get("config", {}).get("name")
    if dtype not in (None, "float32", "float64"):
        raise UnsupportedKerasLayer(f"{where} uses the dtype policy {dtype!r}; minidl computes in float32 "
                                    f"(or float64)")
    return dtype or "float32"


def _initializer_from_keras(value, default):
    """A minidl initializer name. Initializers minidl lacks fall back to ``default``: they
    only matter before the weights are loaded, and the file holds the weights."""
    if isinstance(value, str):
        return value if value in INITIALIZERS else default
    if isinstance(value, dict):
        return _INITIALIZER_NAMES.get(value.get("class_name"), default)
    return default


def _check_keras_only_arguments(class_name, config, where):
    """Keras arguments minidl lacks must hold the value minidl implements (warn for penalties)."""
    for key, expected in KERAS_ONLY_ARGUMENTS.get(class_name, {}).items():
        value = config.get(key, expected)
        if isinstance(value, tuple):
            value = list(value)
        if value == expected or (key == "dilation_rate" and value in (1, [1, 1])):
            continue
        if key.endswith(("_regularizer", "_constraint")):
            warnings.warn(f"{where}: {key}={value!r} is ignored (minidl has no regularizers nor "
                          f"constraints); the weights load unchanged", stacklevel=4)
            continue
        raise UnsupportedKerasLayer(f"{where} has {key}={value!r}; minidl supports only {expected!r}")


def from_keras(entry, where="layer", custom_objects=None):
    """minidl's ``{"class_name", "config"}`` for one Keras 3 layer entry (not a model).

    A class named in ``custom_objects`` passes through unchanged: its ``from_config``
    receives Keras's config.
    """
    class_name, config = entry["class_name"], dict(entry.get("config", {}))
    if custom_objects and class_name in custom_objects:
        return {"class_name": class_name, "config": config}
    name = config.get("name")
    where = f"{where} '{name}' ({class_name})"
    if class_name == "InputLayer":
        shape = config.get("batch_shape") or config.get("batch_input_shape")
        if shape is None:
            shape = [config.get("batch_size")] + list(config["shape"])
        if config.get("sparse") or config.get("ragged"):
            raise UnsupportedKerasLayer(f"{where} takes sparse or ragged tensors; minidl takes dense arrays")
        return {"class_name": "InputLayer",
                "config": {"name": name, "dtype": _dtype_name(config.get("dtype"), where),
                           "batch_input_shape": list(shape)}}
    if class_name not in SHARED_ARGUMENTS:
        raise UnsupportedKerasLayer(
            f"{where}: minidl has no {class_name} layer (it has {', '.join(sorted(SHARED_ARGUMENTS))}, "
            f"InputLayer, Functional and Sequential models)")
    _check_keras_only_arguments(class_name, config, where)
    minidl_config = {"name": name, "trainable": config.get("trainable", True),
                     "dtype": _dtype_name(config.get("dtype"), where)}
    defaults = {"kernel_initializer": "glorot_uniform", "bias_initializer": "zeros",
                "beta_initializer": "zeros", "gamma_initializer": "ones",
                "moving_mean_initializer": "zeros", "moving_variance_initializer": "ones"}
    for key in SHARED_ARGUMENTS[class_name]:
        if key in defaults:
            minidl_config[key] = _initializer_from_keras(config.get(key), defaults[key])
        elif key in config:
            minidl_config[key] = config[key]
    if isinstance(minidl_config.get("activation"), dict):
        raise UnsupportedKerasLayer(f"{where} uses a custom activation {minidl_config['activation']!r}")
    return {"class_name": class_name, "config": minidl_config}
