"""A whole model's ``config.json`` and weight paths, from minidl to Keras 3 and back.

Keras 3 describes a functional model as its layers in ``model.layers`` order, each
with the calls that feed it (``inbound_nodes``); every tensor passed to a call names
the layer call that made it (``keras_history = [layer name, node index, tensor index]``)::

    {"module": "keras.src.models.functional", "class_name": "Functional",
     "registered_name": "Functional", "build_config": {"input_shape": null},
     "config": {"name": "model", "trainable": true,
                "layers": [{... "class_name": "InputLayer", "name": "input_1", "inbound_nodes": []},
                           {... "class_name": "Conv2D", "name": "conv2d_1", "build_config": {...},
                            "inbound_nodes": [{"args": [{"class_name": "__keras_tensor__",
                                                         "config": {"shape": [null, 299, 299, 3],
                                                                    "dtype": "float32",
                                                                    "keras_history": ["input_1", 0, 0]}}],
                                               "kwargs": {}}]}, ...],
                "input_layers": ["input_1", 0, 0], "output_layers": ["sequential", 0, 0]}}

A Concatenate's call passes a list of tensors (``"args": [[t1, t2, t3, t4]]``). A
Sequential lists its layers after an InputLayer, with no calls. A nested model is an
entry like any layer, holding its own config. minidl's ``model.layers`` order is
Keras's (``minidl/models/graph.py``), so the layer order -- and with it the weight
paths of ``minidl/models/keras_archive.py`` -- is the one Keras computes when it
rebuilds the graph.

:func:`model_to_keras` gives the config and the variables of a minidl model;
:func:`model_from_keras` turns a Keras 3 config into minidl's own config (the one
``minidl.models.serialization.model_from_config`` rebuilds), and :func:`weight_paths`
says where each layer's weights are in the file.
"""
from minidl.models import keras_layers
from minidl.models.keras_archive import VariableGroup, group_names
from minidl.models.serialization import config_class_name

FUNCTIONAL_MODULE = "keras.src.models.functional"
MODEL_CLASS_NAMES = ("Functional", "Model", "Sequential")

# The keyword arguments Keras 3 records for a layer call built from symbolic tensors.
_CALL_KEYWORDS = {"BatchNormalization": {"mask": None}, "Dropout": {"training": False},
                  "Functional": {"mask": None}, "Sequential": {"mask": None}}


def keras_class_name(layer):
    """The class name Keras 3 gives the layer: a functional minidl Model is a 'Functional'."""
    class_name = config_class_name(layer)
    return "Functional" if class_name == "Model" else class_name


def _is_model(layer):
    return keras_class_name(layer) in MODEL_CLASS_NAMES


def _shape(tensor):
    return list(tensor.shape)


# ---------------------------------------------------------------------------
# minidl -> Keras 3
# ---------------------------------------------------------------------------
class _NodeNumbers:
    """Keras numbers a layer's calls inside one model 0, 1, ... in the order they were made."""

    def __init__(self, model):
        self.nodes = set(model._nodes)

    def number(self, node):
        own = [each for each in node.layer._inbound_nodes if each in self.nodes]
        return next(index for index, each in enumerate(own) if each is node)

    def history(self, tensor):
        node = tensor.node
        tensor_index = next(index for index, each in enumerate(node.output_tensors) if each is tensor)
        return [node.layer.name, self.number(node), tensor_index]

    def keras_tensor(self, tensor):
        return {"class_name": "__keras_tensor__",
                "config": {"shape": _shape(tensor), "dtype": tensor.dtype.name,
                           "keras_history": self.history(tensor)}}


def _build_config(layer, class_name, input_tensors):
    """``{"input_shape": ...}`` for the layers whose Keras class records it, else None."""
    if class_name == "Functional":
        return {"input_shape": None}
    if class_name == "Sequential":
        return {"input_shape": _shape(layer.inputs[0])}
    if class_name in keras_layers.RECORDS_BUILD_SHAPE and input_tensors:
        shapes = [_shape(tensor) for tensor in input_tensors]
        return {"input_shape": shapes if len(shapes) > 1 else shapes[0]}
    return None


def _layer_entry(layer, input_tensors):
    """One layer or nested model as Keras 3 serialises it (without its calls)."""
    class_name = keras_class_name(layer)
    if class_name == "Functional":
        entry = {"module": FUNCTIONAL_MODULE, "class_name": "Functional",
                 "config": _functional_config(layer), "registered_name": "Functional"}
    elif class_name == "Sequential":
        entry = keras_layers.keras_object("keras", "Sequential", _sequential_config(layer))
    else:
        entry = keras_layers.to_keras(layer, class_name)
    build_config = _build_config(layer, class_name, input_tensors)
    if build_config is not None:
        entry["build_config"] = build_config
    return entry


def _functional_config(model):
    numbers = _NodeNumbers(model)
    layers = []
    for layer in model.layers:
        nodes = [node for node in layer._inbound_nodes if node in numbers.nodes and node.input_tensors]
        entry = _layer_entry(layer, nodes[0].input_tensors if nodes else [])
        entry["name"] = layer.name
        entry["inbound_nodes"] = []
        for node in nodes:
            tensors = [numbers.keras_tensor(tensor) for tensor in node.input_tensors]
            entry["inbound_nodes"].append({
                "args": [tensors if len(tensors) > 1 else tensors[0]],
                "kwargs": dict(_CALL_KEYWORDS.get(keras_class_name(layer), {})),
            })
        layers.append(entry)
    inputs = [numbers.history(tensor) for tensor in model.inputs]
    outputs = [numbers.history(tensor) for tensor in model.outputs]
    return {"name": model.name, "trainable": model.trainable, "layers": layers,
            "input_layers": inputs[0] if model._single_input else inputs,
            "output_layers": outputs[0] if model._single_output else outputs}


def _sequential_config(model):
    if not model._graph_ready:
        raise ValueError(f"Sequential '{model.name}' has no input shape yet: build it (give the first "
                         f"layer input_shape=..., or call it on data) before saving it as .keras")
    input_layer = model.inputs[0].node.layer
    layers = [keras_layers.to_keras(input_layer, "InputLayer")]
    own_nodes = set(model._nodes)
    for layer in model.layers:
        node = next(node for node in layer._inbound_nodes if node in own_nodes)
        layers.append(_layer_entry(layer, node.input_tensors))
    return {"name": model.name, "trainable": model.trainable, "dtype": "float32", "layers": layers,
            "build_input_shape": _shape(model.inputs[0])}


def model_to_keras(model):
    """``(config, variables)`` of a minidl model: config.json's model entry (without
    ``compile_config``) and the ``{path: VariableGroup}`` of ``model.weights.h5``."""
    if not _is_model(model):
        raise TypeError(f"expected a minidl Model or Sequential, got {type(model).__name__}")
    entry = _layer_entry(model, [])
    return entry, model_variables(model)


def model_variables(model):
    """Every layer's weights under Keras 3's path (see ``keras_archive.py``), nested models too."""
    variables = {"": VariableGroup(model.name, [])}
    pending = [("", model)]
    while pending:
        prefix, current = pending.pop()
        layers = current.layers
        for layer, group in zip(layers, group_names([keras_class_name(layer) for layer in layers])):
            path = f"{prefix}/layers/{group}" if prefix else f"layers/{group}"
            if _is_model(layer):
                variables[path] = VariableGroup(layer.name, [])
                pending.append((path, layer))
            else:
                variables[path] = VariableGroup(layer.name, [parameter.value for parameter in layer.weights])
    return variables


# ---------------------------------------------------------------------------
# Keras 3 -> minidl
# ---------------------------------------------------------------------------
def _is_history(value):
    return isinstance(value, list) and len(value) == 3 and isinstance(value[0], str)


def _call_inputs(node_data, where):
    """The ``[layer, node, tensor]`` keys one recorded call read, in order."""
    if isinstance(node_data, list):                          # Keras 2.x's form: [[name, node, tensor, kwargs]]
        return [list(item[:3]) for item in node_data]
    arguments = node_data.get("args", [])
    first = arguments[0] if arguments else []
    tensors = first if isinstance(first, list) else [first]
    keys = []
    for tensor in tensors:
        if not (isinstance(tensor, dict) and tensor.get("class_name") == "__keras_tensor__"):
            raise keras_layers.UnsupportedKerasLayer(f"{where} is called on {tensor!r}, not on tensors")
        keys.append(list(tensor["config"]["keras_history"]))
    if len(arguments) > 1 or any(isinstance(value, dict) for value in node_data.get("kwargs", {}).values()):
        raise keras_layers.UnsupportedKerasLayer(f"{where} is called with extra tensor arguments "
                                                 f"({node_data}), which minidl's layers do not take")
    return keys


def _schedule_calls(layer_entries, where):
    """minidl's ``nodes``: every call, ordered so that each one's inputs exist before it
    runs (layers are listed deepest first, but a shared layer's calls may lie deeper)."""
    pending = {entry["name"]: [_call_inputs(data, f"{where}: layer '{entry['name']}'")
                               for data in entry.get("inbound_nodes", [])] for entry in layer_entries}
    ready = {(entry["name"], 0, 0) for entry in layer_entries if not entry.get("inbound_nodes")}
    made, nodes = {}, []
    while any(pending.values()):
        progress = False
        for entry in layer_entries:
            calls = pending[entry["name"]]
            while calls and all(tuple(key) in ready for key in calls[0]):
                inputs = calls.pop(0)
                index = made.get(entry["name"], 0)
                made[entry["name"]] = index + 1
                nodes.append({"layer": entry["name"], "inputs": inputs})
                ready.add((entry["name"], index, 0))
                progress = True
        if not progress:
            stuck = sorted(name for name, calls in pending.items() if calls)
            raise ValueError(f"{where}: the calls of {stuck} read tensors no layer makes (a damaged config?)")
    return nodes


def _functional_from_keras(config, where, custom_objects):
    where = f"{where} '{config.get('name')}'"
    layer_entries = [dict(entry, name=entry.get("name", entry["config"].get("name")))
                     for entry in config["layers"]]
    layers = [layer_from_keras(entry, where, custom_objects) for entry in layer_entries]
    single_input, single_output = _is_history(config["input_layers"]), _is_history(config["output_layers"])
    inputs = [config["input_layers"]] if single_input else config["input_layers"]
    outputs = [config["output_layers"]] if single_output else config["output_layers"]
    return {"name": config.get("name"), "trainable": config.get("trainable", True), "layers": layers,
            "nodes": _schedule_calls(layer_entries, where),
            "input_layers": [list(key) for key in inputs], "output_layers": [list(key) for key in outputs],
            "single_input": single_input, "single_output": single_output}


def _sequential_from_keras(config, where, custom_objects):
    where = f"{where} '{config.get('name')}'"
    entries = list(config["layers"])
    batch_shape = config.get("build_input_shape")
    if entries and entries[0]["class_name"] == "InputLayer":
        batch_shape = keras_layers.from_keras(entries.pop(0), where)["config"]["batch_input_shape"]
    return {"name": config.get("name"), "trainable": config.get("trainable", True),
            "layers": [layer_from_keras(entry, where, custom_objects) for entry in entries],
            "batch_input_shape": batch_shape}


def layer_from_keras(entry, where="the model", custom_objects=None):
    """minidl's ``{"class_name", "config"}`` for a Keras 3 layer or model entry."""
    class_name = entry.get("class_name")
    if class_name in ("Functional", "Model"):
        return {"class_name": "Model", "config": _functional_from_keras(entry["config"], where, custom_objects)}
    if class_name == "Sequential":
        return {"class_name": "Sequential", "config": _sequential_from_keras(entry["config"], where, custom_objects)}
    return keras_layers.from_keras(entry, where, custom_objects)


def model_from_keras(entry, custom_objects=None):
    """minidl's config of the model a Keras 3 ``config.json`` describes.

    Raises :class:`~minidl.models.keras_layers.UnsupportedKerasLayer` naming the first
    layer minidl does not have (depth first, in the file's order).
    """
    if entry.get("class_name") not in MODEL_CLASS_NAMES:
        raise keras_layers.UnsupportedKerasLayer(
            f"the file holds a {entry.get('class_name')!r} (registered as {entry.get('registered_name')!r}), "
            f"not a functional or Sequential model: a subclassed Keras model has no config minidl can rebuild")
    return layer_from_keras(entry, custom_objects=custom_objects)


def weight_paths(entry):
    """``[(path in model.weights.h5, (layer names from the outer model inward)), ...]`` for
    every layer of a Keras 3 model config, nested models' layers included."""
    paths = []
    pending = [("", (), entry)]
    while pending:
        prefix, names, current = pending.pop()
        layer_entries = current["config"]["layers"]
        if current["class_name"] == "Sequential":
            layer_entries = [each for each in layer_entries if each["class_name"] != "InputLayer"]
        groups = group_names([each["class_name"] for each in layer_entries])
        for layer_entry, group in zip(layer_entries, groups):
            path = f"{prefix}/layers/{group}" if prefix else f"layers/{group}"
            layer_names = names + (layer_entry.get("name", layer_entry["config"].get("name")),)
            if layer_entry["class_name"] in MODEL_CLASS_NAMES:
                pending.append((path, layer_names, layer_entry))
            else:
                paths.append((path, layer_names))
    return paths
