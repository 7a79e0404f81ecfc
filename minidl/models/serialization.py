"""Describe a model as JSON-able data, and rebuild a model from that description.

A model's config lists its layers (class name + constructor arguments) and
its nodes in execution order (which tensors each layer call read), so
``model_from_config(model.get_config())`` rebuilds the same graph with the
same layer names. Nested models are described recursively. Weights are not
part of the config; ``minidl/models/saving.py`` stores them next to it.

Dependencies run one way: ``model.py`` and ``sequential.py`` use this module
(``get_config``/``from_config``), so this module must not import them. It
finds the model classes in :data:`MODEL_CLASSES` instead, which
``minidl/models/__init__.py`` fills with :func:`register_model_class` as soon as
``minidl.models`` is imported.

Example::

    clone = model_from_config({"class_name": "Model", "config": model.get_config()})
    clone.set_weights(model.get_weights())
"""
from minidl import layers as layers_module

LAYER_CLASSES = {
    name: getattr(layers_module, name)
    for name in ("InputLayer", "Dense", "Activation", "Dropout", "Flatten", "Conv2D", "BatchNormalization",
                 "MaxPooling2D", "AveragePooling2D", "GlobalAveragePooling2D", "GlobalMaxPooling2D", "Concatenate")
}


# The model classes a config can name, by class name: {"Model": Model, "Sequential": Sequential}.
MODEL_CLASSES = {}


def register_model_class(model_class):
    """Let configs name ``model_class`` (as ``"class_name": model_class.__name__``).

    Returns the class, so it also works as a class decorator.
    """
    MODEL_CLASSES[model_class.__name__] = model_class
    return model_class


def _model_class(class_name):
    if class_name not in MODEL_CLASSES:
        raise RuntimeError(
            f"the model class '{class_name}' is not registered: import minidl.models "
            f"(its __init__ registers Model and Sequential) before rebuilding a model "
            f"from its config (registered: {sorted(MODEL_CLASSES)})"
        )
    return MODEL_CLASSES[class_name]


def config_class_name(layer):
    """The class name a config records for ``layer``.

    A model is recorded as the registered model class it is or derives from
    (a subclass of ``Model`` is saved as ``'Model'``, as Keras does); any other
    layer by its own class name.
    """
    for cls in type(layer).__mro__:
        if MODEL_CLASSES.get(cls.__name__) is cls:
            return cls.__name__
    return type(layer).__name__


def layer_config(layer):
    """``{"class_name": ..., "config": layer.get_config()}`` of a layer or a nested model."""
    return {"class_name": config_class_name(layer), "config": layer.get_config()}


def sequential_config(model):
    """``Sequential.get_config()``: the stacked layers and, once built, the input shape."""
    config = {"name": model.name, "trainable": model.trainable, "layers": [layer_config(l) for l in model.layers]}
    if model._graph_ready:
        config["batch_input_shape"] = list(model.inputs[0].shape)
    return config


def graph_config(model):
    """``Model.get_config()``: every layer, and every layer call (node) with the tensors it read."""
    model._require_graph()
    node_keys = {}
    for node in model._nodes:
        index = sum(1 for key in node_keys.values() if key[0] == node.layer.name)
        node_keys[node] = (node.layer.name, index)
    tensor_keys = {id(t): list(node_keys[node]) + [i] for node in model._nodes
                   for i, t in enumerate(node.output_tensors)}
    nodes = [{"layer": node.layer.name,
              "inputs": [tensor_keys[id(t)] for t in node.input_tensors]}
             for node in model._nodes if node.input_tensors]
    layers = [layer_config(l) for l in model.layers]
    return {
        "name": model.name, "trainable": model.trainable, "layers": layers, "nodes": nodes,
        "input_layers": [tensor_keys[id(t)] for t in model.inputs],
        "output_layers": [tensor_keys[id(t)] for t in model.outputs],
        "single_input": model._single_input, "single_output": model._single_output,
    }


def _class_for(class_name, custom_objects):
    custom_objects = custom_objects or {}
    if class_name in custom_objects:
        return custom_objects[class_name]
    if class_name in LAYER_CLASSES:
        return LAYER_CLASSES[class_name]
    raise ValueError(f"Unknown layer class '{class_name}' in the model config; "
                     f"pass it in custom_objects={{'{class_name}': ...}}")


def layer_from_config(entry, custom_objects=None):
    """Rebuild one layer (or nested model) from ``{"class_name": ..., "config": ...}``."""
    class_name, config = entry["class_name"], entry["config"]
    if class_name in ("Model", "Sequential", "Functional"):
        return model_from_config(entry, custom_objects)
    cls = _class_for(class_name, custom_objects)
    return cls.from_config(config)


def model_from_config(entry, custom_objects=None):
    """Rebuild a Model or Sequential from ``{'class_name': ..., 'config': ...}``."""
    class_name, config = entry["class_name"], entry["config"]
    if class_name == "Sequential":
        model = _model_class("Sequential")(name=config["name"])
        if config.get("batch_input_shape") is not None:
            model.add(layers_module.InputLayer(batch_input_shape=tuple(config["batch_input_shape"])))
        for layer_entry in config["layers"]:
            model.add(layer_from_config(layer_entry, custom_objects))
        _restore_own_trainable_flag(model, config)
        return model
    layers = {e["config"]["name"]: layer_from_config(e, custom_objects) for e in config["layers"]}
    tensors = {}
    for name, layer in layers.items():
        if isinstance(layer, layers_module.InputLayer):
            tensors[(name, 0, 0)] = layer._inbound_nodes[0].output_tensors[0]
    node_counts = {}
    for node in config["nodes"]:
        layer = layers[node["layer"]]
        inputs = [tensors[tuple(key)] for key in node["inputs"]]
        output = layer(inputs if len(inputs) > 1 else inputs[0])
        index = node_counts.get(node["layer"], 0)
        node_counts[node["layer"]] = index + 1
        tensors[(node["layer"], index, 0)] = output
    inputs = [tensors[tuple(k)] for k in config["input_layers"]]
    outputs = [tensors[tuple(k)] for k in config["output_layers"]]
    model = _model_class("Model")(inputs=inputs[0] if config.get("single_input", True) else inputs,
                  outputs=outputs[0] if config.get("single_output", True) else outputs, name=config["name"])
    _restore_own_trainable_flag(model, config)
    return model


def _restore_own_trainable_flag(model, config):
    """The model's own ``trainable`` flag, without the setter's passing it on to every layer:
    each layer's flag came back with the layer's own config (a partly frozen model stays so)."""
    model._trainable = bool(config.get("trainable", True))
