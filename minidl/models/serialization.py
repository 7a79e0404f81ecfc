"""Describe a model as JSON-able data, and rebuild a model from that description.

A model's config lists its layers (class name + constructor arguments) and
its nodes in execution order (which tensors each layer call read), so
``model_from_config(model.get_config())`` rebuilds the same graph with the
same layer names. Nested models are described recursively. Weights are not
part of the config; ``minidl.weights`` stores them.

Example::

    clone = model_from_config(model.get_config())
    clone.set_weights(model.get_weights())
"""
from minidl import layers as layers_module

LAYER_CLASSES = {
    name: getattr(layers_module, name)
    for name in ("InputLayer", "Dense", "Activation", "Dropout", "Flatten", "Conv2D", "BatchNormalization",
                 "MaxPooling2D", "AveragePooling2D", "GlobalAveragePooling2D", "GlobalMaxPooling2D", "Concatenate")
}


def layer_config(layer):
    from minidl.models.model import Model
    from minidl.models.sequential import Sequential
    if isinstance(layer, Sequential):
        return {"class_name": "Sequential", "config": sequential_config(layer)}
    if isinstance(layer, Model):
        return {"class_name": "Model", "config": graph_config(layer)}
    return {"class_name": type(layer).__name__, "config": layer.get_config()}


def sequential_config(model):
    config = {"name": model.name, "trainable": model.trainable, "layers": [layer_config(l) for l in model.layers]}
    if model._graph_ready:
        config["batch_input_shape"] = list(model.inputs[0].shape)
    return config


def graph_config(model):
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
    class_name, config = entry["class_name"], entry["config"]
    if class_name in ("Model", "Sequential", "Functional"):
        return model_from_config(entry, custom_objects)
    cls = _class_for(class_name, custom_objects)
    return cls.from_config(config)


def model_from_config(entry, custom_objects=None):
    """Rebuild a Model or Sequential from ``{'class_name': ..., 'config': ...}``."""
    from minidl.models.model import Model
    from minidl.models.sequential import Sequential
    class_name, config = entry["class_name"], entry["config"]
    if class_name == "Sequential":
        model = Sequential(name=config["name"])
        if config.get("batch_input_shape") is not None:
            model.add(layers_module.InputLayer(batch_input_shape=tuple(config["batch_input_shape"])))
        for layer_entry in config["layers"]:
            model.add(layer_from_config(layer_entry, custom_objects))
        model.trainable = config.get("trainable", True)
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
    model = Model(inputs=inputs[0] if config.get("single_input", True) else inputs,
                  outputs=outputs[0] if config.get("single_output", True) else outputs, name=config["name"])
    model.trainable = config.get("trainable", True)
    return model
