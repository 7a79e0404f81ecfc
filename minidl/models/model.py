"""Model: a graph of layers that is itself a layer.

``Model(inputs, outputs)`` (the functional API) holds the graph that calling
layers on symbolic tensors recorded. It offers the layer protocol --
``forward``, ``backward``, ``weights``, ``get_weights``/``set_weights`` -- so a
model can be called inside another model (the workshop puts a ``Sequential``
head on top of InceptionV3), and Keras's training API from
:mod:`minidl.models.training` (``compile``, ``fit``, ``evaluate``,
``predict``...).

Forward stores each layer call's cache per node, so a layer used twice in one
graph still gets the right cache back in backward, and its parameter
gradients are summed over its uses.

Example::

    inputs = Input(shape=(32, 32, 3))
    x = Conv2D(8, 3, activation="relu")(inputs)
    outputs = Dense(1, activation="sigmoid")(GlobalAveragePooling2D()(x))
    model = Model(inputs, outputs)
    model.summary()
"""
import numpy as np

from minidl import config
from minidl.layers.base import Layer, SymbolicTensor, _describe_shape, is_recording
from minidl.layers.input_layer import InputLayer
from minidl.models.graph import check_connected, map_graph
from minidl.models.inference_fusion import plan_fusions
from minidl.models.training import TrainingMixin


def _as_list(value):
    return list(value) if isinstance(value, (list, tuple)) else [value]


class Model(TrainingMixin, Layer):
    """A functional model: ``Model(inputs=..., outputs=...)``."""

    def __init__(self, inputs=None, outputs=None, name=None, trainable=True, **kwargs):
        super().__init__(name=name, trainable=trainable, **kwargs)
        self._graph_ready = False
        self._fusion_plan = None
        self._init_training_state()
        if inputs is not None or outputs is not None:
            if inputs is None or outputs is None:
                raise ValueError(f"Model '{self.name}' needs both `inputs` and `outputs`")
            self._init_graph(inputs, outputs)

    # ------------------------------------------------------------------ graph
    def _init_graph(self, inputs, outputs):
        self._single_input = not isinstance(inputs, (list, tuple))
        self._single_output = not isinstance(outputs, (list, tuple))
        self.inputs = _as_list(inputs)
        self.outputs = _as_list(outputs)
        for tensor in self.inputs + self.outputs:
            if not isinstance(tensor, SymbolicTensor):
                raise TypeError(
                    f"Model '{self.name}': inputs and outputs must be symbolic tensors "
                    f"(from Input(...) and layer calls), got {type(tensor).__name__}")
        self._nodes, self._layers, _ = map_graph(self.inputs, self.outputs)
        self._fusion_plan = None          # planned again from these nodes when first needed
        check_connected(self.inputs, self._nodes)
        self._input_ids = [id(t) for t in self.inputs]
        self._input_ids_set = set(self._input_ids)
        self._uses = {}
        for node in self._nodes:
            self._uses[node.layer] = self._uses.get(node.layer, 0) + 1
        self._consumers = {}
        for node in self._nodes:
            for tensor in node.input_tensors:
                self._consumers[id(tensor)] = self._consumers.get(id(tensor), 0) + 1
        self.built = True
        self._graph_ready = True

    def _require_graph(self):
        if not self._graph_ready:
            raise RuntimeError(
                f"Model '{self.name}' has not been built yet: give the first layer an `input_shape`, "
                f"call model.build(input_shape), or call the model on data first")

    @property
    def layers(self):
        self._require_graph()
        return list(self._layers)

    def get_layer(self, name=None, index=None):
        """A layer by name or by position in ``model.layers``."""
        layers = self.layers
        if index is not None:
            if not -len(layers) <= index < len(layers):
                raise ValueError(f"Model '{self.name}' has {len(layers)} layers; index {index} is out of range")
            return layers[index]
        for layer in layers:
            if layer.name == name:
                return layer
        raise ValueError(f"No such layer: '{name}' in model '{self.name}' "
                         f"(layers: {', '.join(l.name for l in layers[:8])}{', ...' if len(layers) > 8 else ''})")

    @property
    def input(self):
        self._require_graph()
        return self.inputs[0] if self._single_input else self.inputs

    @property
    def output(self):
        self._require_graph()
        return self.outputs[0] if self._single_output else self.outputs

    @property
    def input_shape(self):
        shapes = [t.shape for t in self.inputs] if self._graph_ready else None
        if shapes is None:
            self._require_graph()
        return shapes[0] if self._single_input else shapes

    @property
    def output_shape(self):
        self._require_graph()
        shapes = [t.shape for t in self.outputs]
        return shapes[0] if self._single_output else shapes

    def compute_output_shape(self, input_shape):
        return self.output_shape

    def build(self, input_shape=None):
        self._require_graph()

    # ------------------------------------------------------------------ weights
    @property
    def trainable(self):
        return self._trainable

    @trainable.setter
    def trainable(self, value):
        # As in tf.keras: freezing a model freezes every layer inside it.
        self._trainable = bool(value)
        if getattr(self, "_graph_ready", False):
            for layer in self._layers:
                layer.trainable = value

    def _unique_layers(self):
        return [layer for layer in self._layers if not isinstance(layer, InputLayer)] if self._graph_ready else []

    @property
    def trainable_weights(self):
        if not self.trainable:
            return []
        return _unique_params(p for layer in self._unique_layers() for p in layer.trainable_weights)

    @property
    def non_trainable_weights(self):
        layers = self._unique_layers()
        if not self.trainable:
            return _unique_params(p for layer in layers for p in layer.weights)
        return _unique_params(p for layer in layers for p in layer.non_trainable_weights)

    def count_params(self):
        return int(sum(p.value.size for p in self.weights))

    # ------------------------------------------------------------------ compute
    def forward(self, inputs, training=False):
        """Run every node, deepest first; return the output array(s).

        At inference with no backward to follow (``predict``, ``evaluate``), each Conv2D ->
        BatchNormalization -> ReLU chain runs as one fused step: same numbers, less memory
        traffic (``minidl/models/inference_fusion.py``).
        """
        self._ensure_graph_for(inputs)
        arrays = _as_list(inputs)
        if len(arrays) != len(self.inputs):
            raise ValueError(f"Model '{self.name}' expects {len(self.inputs)} input(s), got {len(arrays)}")
        values = {}
        for tensor, array in zip(self.inputs, arrays):
            self._check_input_array(tensor, array)
            values[id(tensor)] = array
        remaining = dict(self._consumers)
        keep = {id(t) for t in self.outputs}
        node_caches = {} if is_recording() else None
        fused = self._fused_steps() if not training and node_caches is None else {}
        buffers = {}                                # outputs that fused steps write in place
        for node in self._nodes:
            if all(id(t) in values for t in node.output_tensors):
                continue
            if node in fused:
                step = fused[node]
                if step is None:
                    continue                        # run by its convolution's fused step
                values[id(step.output_tensor)] = step.run(values, buffers)
            else:
                layer = node.layer
                node_inputs = [values[id(t)] for t in node.input_tensors]
                output = layer.forward(node_inputs if len(node_inputs) > 1 else node_inputs[0],
                                       training=training)
                values[id(node.output_tensors[0])] = output
                if node_caches is not None:
                    node_caches[node] = layer._cache
            for tensor in node.input_tensors:       # free arrays nobody needs any more
                remaining[id(tensor)] -= 1
                if remaining[id(tensor)] == 0 and id(tensor) not in keep:
                    values.pop(id(tensor), None)
        self._keep(node_caches)
        outputs = [values[id(t)] for t in self.outputs]
        return outputs[0] if self._single_output else outputs

    def _fused_steps(self):
        """Inference: this graph's Conv2D -> BatchNormalization -> ReLU chains, found once
        (see ``minidl/models/inference_fusion.py``); {} when fusion is switched off."""
        if not config.inference_fusion():
            return {}
        if self._fusion_plan is None:
            self._fusion_plan = plan_fusions(self._nodes, self._input_ids, [id(t) for t in self.outputs])
        return self._fusion_plan

    def _ensure_graph_for(self, inputs):
        if not self._graph_ready:
            self._require_graph()

    def _check_input_array(self, tensor, array):
        expected = tensor.shape
        shape = np.shape(array)
        if len(shape) != len(expected) or any(e is not None and e != s for e, s in zip(expected[1:], shape[1:])):
            raise ValueError(
                f"Model '{self.name}' expects input '{tensor.name}' of shape {_describe_shape(expected)}, "
                f"got an array of shape {tuple(shape)}")

    def backward(self, grad_output, training_step=False):
        """Walk the nodes in reverse; return dL/dinput(s).

        ``training_step=True`` (what ``train_on_batch`` passes) trades re-use for memory
        and time: each layer's cache is dropped as soon as its backward has run (the
        activations it held are freed during the walk, not after it), and a layer fed
        only by the model's inputs is asked not to compute its input gradient (the first
        convolution's col2im), so the model's input gradients come back as None.
        """
        node_caches = self._require_cache()
        grads = {}
        for tensor, grad in zip(self.outputs, _as_list(grad_output) if not self._single_output else [grad_output]):
            grads[id(tensor)] = grad
        accumulated = {}
        # Sums this walk allocated itself: nobody else holds them, so later branches of a
        # fan-out (4 per Inception block) add into them in place instead of allocating.
        own_sums = set()
        for node in reversed(self._nodes):
            if node not in node_caches:
                continue                                   # a model input: nothing to do
            grad = grads.pop(id(node.output_tensors[0]), None)
            if grad is None:
                continue                                   # does not influence the outputs
            layer = node.layer
            layer._cache = node_caches[node]
            shared = self._uses[layer] > 1
            skip_input_grad = training_step and hasattr(layer, "need_input_grad") and all(
                id(t) in self._input_ids_set for t in node.input_tensors)
            if skip_input_grad:
                layer.need_input_grad = False
            try:
                input_grads = layer.backward(grad)
            finally:
                if skip_input_grad:
                    layer.need_input_grad = True
            del grad
            if training_step:
                layer._cache = None                        # free this layer's activations now
                del node_caches[node]
            if shared:
                _accumulate_parameter_grads(layer, accumulated)
            input_grads = input_grads if isinstance(input_grads, list) else [input_grads]
            for tensor, input_grad in zip(node.input_tensors, input_grads):
                if input_grad is None:
                    continue
                key = id(tensor)
                if key not in grads:
                    grads[key] = input_grad
                elif key in own_sums and grads[key].dtype == np.result_type(grads[key], input_grad):
                    grads[key] += input_grad                      # fan-out: add, in place
                else:
                    grads[key] = grads[key] + input_grad          # fan-out: add (a new array)
                    own_sums.add(key)
        result = [grads.get(id(t)) for t in self.inputs]
        return result[0] if self._single_input else result

    # ------------------------------------------------------------------ display
    def summary(self, line_length=98, print_fn=print):
        """Print Keras's table: layer, output shape, parameters, inputs."""
        self._require_graph()
        widths = [int(line_length * f) for f in (0.33, 0.55, 0.67, 1.0)]
        header = ["Layer (type)", "Output Shape", "Param #", "Connected to"]

        def row(fields):
            line = ""
            for field, stop in zip(fields, widths):
                line = (line + str(field))[:stop].ljust(stop)
            return line.rstrip()

        print_fn(f'Model: "{self.name}"')
        print_fn("_" * line_length)
        print_fn(row(header))
        print_fn("=" * line_length)
        for layer in self.layers:
            shapes = [n.output_tensors[0].shape for n in layer._inbound_nodes if n in self._nodes]
            shape = _describe_shape(shapes[0]) if shapes else "multiple"
            sources = [t.layer.name for n in layer._inbound_nodes if n in self._nodes for t in n.input_tensors
                       if t.layer is not None]
            print_fn(row([f"{layer.name} ({type(layer).__name__})", shape, f"{layer.count_params():,}",
                          ", ".join(sources)]))
        print_fn("=" * line_length)
        trainable = sum(p.value.size for p in self.trainable_weights)
        total = self.count_params()
        print_fn(f"Total params: {total:,}")
        print_fn(f"Trainable params: {trainable:,}")
        print_fn(f"Non-trainable params: {total - trainable:,}")
        print_fn("_" * line_length)

    # ------------------------------------------------------------------ config
    def get_config(self):
        """A JSON-able description of the graph (see ``minidl/models/serialization.py``)."""
        from minidl.models.serialization import graph_config
        return graph_config(self)

    @classmethod
    def from_config(cls, config, custom_objects=None):
        from minidl.models.serialization import model_from_config
        return model_from_config({"class_name": cls.__name__, "config": config}, custom_objects)


def _unique_params(params):
    seen, result = set(), []
    for parameter in params:
        if id(parameter) not in seen:
            seen.add(id(parameter))
            result.append(parameter)
    return result


def _accumulate_parameter_grads(layer, accumulated):
    """For a layer used several times, add this use's gradients to the earlier ones."""
    for parameter in layer.trainable_weights:
        if parameter.grad is None:
            continue
        key = id(parameter)
        if key in accumulated:
            accumulated[key] = accumulated[key] + parameter.grad
        else:
            accumulated[key] = parameter.grad
        parameter.grad = accumulated[key]
