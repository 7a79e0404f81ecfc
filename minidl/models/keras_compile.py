"""How a model was compiled, and its optimizer's state, in Keras 3's ``.keras`` form.

A compiled Keras 3 model stores ``compile_config`` in ``config.json``::

    "compile_config": {"optimizer": {"module": "keras.optimizers", "class_name": "Adam",
                                     "config": {"name": "adam", "learning_rate": 0.0001,
                                                "beta_1": 0.9, ...}, "registered_name": null},
                       "loss": "binary_crossentropy", "metrics": ["accuracy"], ...}

and the optimizer's variables in ``model.weights.h5`` under ``optimizer/vars``::

    0   iteration (int64)            the number of updates done
    1   learning_rate (float32)      absent when the rate is a schedule
    2.. one slot per trainable weight, in ``model.trainable_weights`` order:
        Adam     m_0, v_0, m_1, v_1, ...     (interleaved per weight), then with
                 amsgrad=True vhat_0, vhat_1, ... (the largest v so far)
        SGD      velocity_0, velocity_1, ... (only with momentum > 0)
        RMSprop  velocity_0, velocity_1, ... (minidl's ``accumulator``)

minidl's optimizers keep the same arrays (``optimizer.get_state()``) and apply the same
updates: Adam and SGD exactly; RMSprop adds epsilon outside the square root as Keras 2
did (Keras 3 adds it inside: a difference of order epsilon = 1e-7). Keras 2's ``decay``
becomes Keras 3's ``InverseTimeDecay(lr, decay_steps=1, decay_rate=decay)``, the same
rate lr / (1 + decay * iterations).

Example::

    compile_config, optimizer_group = compile_to_keras(model)   # (None, None) if not compiled
    arguments = compile_arguments_from_keras(compile_config)    # for model.compile(**arguments)
"""
import warnings

import numpy as np

from minidl import optimizers
from minidl.models.keras_archive import VariableGroup
from minidl.models.keras_layers import keras_object

# minidl optimizer class -> (Keras 3 default name, the slot names of one weight, in Keras's order)
OPTIMIZERS = {"Adam": ("adam", ["m", "v"]), "SGD": ("SGD", ["velocity"]), "RMSprop": ("rmsprop", ["accumulator"])}
_KERAS_BASE_DEFAULTS = {"weight_decay": None, "clipnorm": None, "global_clipnorm": None, "clipvalue": None,
                        "use_ema": False, "ema_momentum": 0.99, "ema_overwrite_frequency": None}
_LOSS_CLASSES = {"binary_crossentropy": "BinaryCrossentropy", "categorical_crossentropy": "CategoricalCrossentropy",
                 "mean_squared_error": "MeanSquaredError"}


# ---------------------------------------------------------------------------
# minidl -> Keras 3
# ---------------------------------------------------------------------------
def _learning_rate_to_keras(optimizer):
    if not optimizer.decay:
        return optimizer.learning_rate
    return keras_object("keras.optimizers.schedules", "InverseTimeDecay",
                        {"initial_learning_rate": optimizer.learning_rate, "decay_steps": 1,
                         "decay_rate": optimizer.decay, "staircase": False, "name": "InverseTimeDecay"})


def optimizer_to_keras(optimizer):
    """Keras 3's serialised optimizer for a minidl Adam, SGD or RMSprop."""
    class_name = type(optimizer).__name__
    if class_name not in OPTIMIZERS:
        raise ValueError(f"optimizer {class_name} has no Keras 3 counterpart minidl can write")
    config = {"name": OPTIMIZERS[class_name][0], "learning_rate": _learning_rate_to_keras(optimizer),
              **_KERAS_BASE_DEFAULTS, "clipnorm": optimizer.clipnorm, "clipvalue": optimizer.clipvalue}
    if class_name == "Adam":
        config.update(beta_1=optimizer.beta_1, beta_2=optimizer.beta_2, epsilon=optimizer.epsilon,
                      amsgrad=optimizer.amsgrad)
    elif class_name == "SGD":
        config.update(momentum=optimizer.momentum, nesterov=optimizer.nesterov)
    else:
        config.update(rho=optimizer.rho, momentum=0.0, epsilon=optimizer.epsilon, centered=False)
    return keras_object("keras.optimizers", class_name, config)


def _loss_to_keras(loss):
    """A loss name stays a string (Keras 3 reads it); a loss with options becomes its class."""
    if isinstance(loss, dict):
        name, options = loss.get("name"), {key: value for key, value in loss.items() if key != "name"}
        if not any(options.values()):
            return name
        return keras_object("keras.losses", _LOSS_CLASSES.get(name, name), options)
    return loss


def _slot_layout(optimizer):
    """``(slot names interleaved per weight, slot names that follow for all weights)``."""
    if type(optimizer).__name__ == "SGD" and not optimizer.momentum:
        return [], []
    trailing = ["vhat"] if getattr(optimizer, "amsgrad", False) else []
    return OPTIMIZERS[type(optimizer).__name__][1], trailing


def _slots_in_keras_order(optimizer, parameters):
    """Keras's slot arrays for ``parameters``: minidl's state where it has one, else zeros."""
    interleaved, trailing = _slot_layout(optimizer)
    saved = optimizer.get_state().get("slots", [])
    shapes_match = len(saved) == len(parameters) and all(
        all(name in slots and slots[name].shape == parameter.shape for name in interleaved + trailing)
        for slots, parameter in zip(saved, parameters))

    def slot(index, name):
        return saved[index][name] if shapes_match else np.zeros_like(parameters[index].value)

    arrays = [slot(index, name) for index in range(len(parameters)) for name in interleaved]
    return arrays + [slot(index, name) for name in trailing for index in range(len(parameters))]


def compile_to_keras(model):
    """``(compile_config, VariableGroup of the optimizer)``, or ``(None, None)`` if the model
    was not compiled (or with an optimizer Keras 3 cannot take: then with a warning)."""
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None:
        return None, None
    if type(optimizer).__name__ not in OPTIMIZERS:
        warnings.warn(f"model '{model.name}' is saved without its compile settings: Keras 3 has no "
                      f"counterpart of minidl's {type(optimizer).__name__}", stacklevel=3)
        return None, None
    arguments = getattr(model, "_compile_args", None) or {}
    metrics = [metric if isinstance(metric, str) else getattr(metric, "name", type(metric).__name__)
               for metric in arguments.get("metrics") or []]
    compile_config = {"optimizer": optimizer_to_keras(optimizer), "loss": _loss_to_keras(arguments.get("loss")),
                      "loss_weights": None, "metrics": metrics or None,
                      "weighted_metrics": None, "run_eagerly": False, "steps_per_execution": 1,
                      "jit_compile": False}
    arrays = [np.asarray(optimizer.iterations, dtype=np.int64)]
    if not optimizer.decay:
        arrays.append(np.asarray(optimizer.learning_rate, dtype=np.float32))
    arrays += _slots_in_keras_order(optimizer, model.trainable_weights)
    return compile_config, VariableGroup(OPTIMIZERS[type(optimizer).__name__][0], arrays)


# ---------------------------------------------------------------------------
# Keras 3 -> minidl
# ---------------------------------------------------------------------------
def _learning_rate_from_keras(value):
    """``(learning_rate, decay)`` from a number or an InverseTimeDecay schedule with one step."""
    if not isinstance(value, dict):
        return float(value), 0.0
    config = value.get("config", {})
    if value.get("class_name") == "InverseTimeDecay" and config.get("decay_steps") == 1 \
            and not config.get("staircase"):
        return float(config["initial_learning_rate"]), float(config["decay_rate"])
    raise ValueError(f"the learning-rate schedule {value.get('class_name')} has no minidl counterpart")


def optimizer_from_keras(entry):
    """A minidl optimizer from Keras 3's serialised Adam, SGD or RMSprop."""
    class_name, config = entry.get("class_name"), dict(entry.get("config", {}))
    if class_name not in OPTIMIZERS:
        raise ValueError(f"minidl has no {class_name} optimizer (it has {', '.join(OPTIMIZERS)})")
    unsupported = {key: config[key] for key in ("weight_decay", "global_clipnorm", "centered") if config.get(key)}
    if config.get("use_ema") or unsupported or (class_name == "RMSprop" and config.get("momentum")):
        raise ValueError(f"{class_name} with {unsupported or 'use_ema/momentum'} has no minidl counterpart")
    learning_rate, decay = _learning_rate_from_keras(config.get("learning_rate", 0.001))
    arguments = {"learning_rate": learning_rate, "decay": decay,
                 "clipnorm": config.get("clipnorm"), "clipvalue": config.get("clipvalue")}
    names = {"Adam": ("beta_1", "beta_2", "epsilon", "amsgrad"), "SGD": ("momentum", "nesterov"),
             "RMSprop": ("rho", "epsilon")}
    arguments.update({key: config[key] for key in names[class_name] if key in config})
    return getattr(optimizers, class_name)(**arguments)


def _loss_from_keras(loss):
    if isinstance(loss, dict):
        config = dict(loss.get("config", {}))
        names = {keras_name: minidl_name for minidl_name, keras_name in _LOSS_CLASSES.items()}
        result = {"name": names.get(loss.get("class_name"), loss.get("class_name"))}
        if config.get("from_logits"):
            result["from_logits"] = True
        return result
    return loss


def compile_arguments_from_keras(compile_config):
    """The keyword arguments of ``model.compile`` that Keras 3's ``compile_config`` records."""
    return {"optimizer": optimizer_from_keras(compile_config["optimizer"]),
            "loss": _loss_from_keras(compile_config.get("loss")),
            "metrics": compile_config.get("metrics")}


def optimizer_state_from_keras(optimizer, group, parameters):
    """minidl's ``optimizer.set_state`` argument from Keras 3's optimizer variables, or None
    when they do not fit ``parameters`` (the model's trainable weights)."""
    arrays = list(group.arrays)
    if not arrays:
        return None
    iterations = int(np.asarray(arrays.pop(0)))
    if not optimizer.decay and arrays:
        optimizer.learning_rate = float(np.asarray(arrays.pop(0)))   # a callback may have changed it
    interleaved, trailing = _slot_layout(optimizer)
    count = len(parameters)
    if len(arrays) != (len(interleaved) + len(trailing)) * count:
        return None
    after = len(interleaved) * count                        # where the trailing slots start
    slots = []
    for index, parameter in enumerate(parameters):
        values = dict(zip(interleaved, arrays[index * len(interleaved):(index + 1) * len(interleaved)]))
        values.update({name: arrays[after + position * count + index] for position, name in enumerate(trailing)})
        if any(np.shape(value) != parameter.shape for value in values.values()):
            return None
        slots.append({name: np.array(value, dtype=parameter.value.dtype) for name, value in values.items()})
    return {"iterations": iterations, "slots": slots}
