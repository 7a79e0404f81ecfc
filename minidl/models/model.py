"""Model: a graph of layers that is itself a layer.

``Model(inputs, outputs)`` (the functional API) holds the graph that calling
layers on symbolic tensors recorded. It offers the layer protocol --
``forward``, ``backward``, ``weights``, ``get_weights``/``set_weights`` -- so a
model can be called inside another model (the workshop puts a ``Sequential``
head on top of InceptionV3), and Keras's training API from
:mod:`minidl.models.training` (``compile``, ``fit``, ``evaluate``,
``predict``...).

Forward runs the nodes in the order ``graph.py`` gives (every node after the
nodes it reads) and keeps what each layer call saved for backward, per node:
a layer used twice in one graph gets the right saved values back in backward,
and its parameter gradients are summed over its uses. Backward walks the same
nodes in reverse and adds up the gradients of a tensor that several layers read.

These two walks are the whole algorithm. ``predict`` and ``train_on_batch``
run them through ``minidl/engine/``, which runs the same graph with less
memory traffic (same numbers); ``MINIDL_KERNELS=reference`` runs exactly the
walks below.

Example::

    inputs = Input(shape=(32, 32, 3))
    x = Conv2D(8, 3, activation="relu")(inputs)
    outputs = Dense(1, activation="sigmoid")(GlobalAveragePooling2D()(x))
    model = Model(inputs, outputs)
    model.summary()
"""
import numpy as np

from minidl.layers.base import Layer, SymbolicTensor, is_recording
from minidl.layers.input_spec import describe_shape
from minidl.models.graph import check_connected, map_graph
from minidl.models.training import TrainingMixin


def _as_list(value):
    return list(value) if isinstance(value, (list, tuple)) else [value]


class Model(TrainingMixin, Layer):
    """A functional model: ``Model(inputs=..., outputs=...)``."""

    def __init__(self, inputs=None, outputs=None, name=None, trainable=True, **kwargs):
        # A model's input comes from its Input tensors, its weights from its layers: the
        # layer arguments that would set them mean nothing here (tf.keras rejects them too).
        for argument in ("input_shape", "batch_input_shape", "batch_size", "input_dim", "weights"):
            if argument in kwargs:
                raise TypeError(f"{type(self).__name__}: unknown keyword argument '{argument}' (give the "
                                f"model's input shape to Input(shape=...) or to its first layer)")
        if kwargs.get("dtype") not in (None, "float32"):
            raise NotImplementedError(f"{type(self).__name__}(dtype={kwargs['dtype']!r}) is not implemented in "
                                      "minidl: a model computes in the dtype of its layers' weights and inputs")
        super().__init__(name=name, trainable=trainable, **kwargs)
        self._graph_ready = False
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
        check_connected(self.inputs, self._nodes)
        self._input_ids = [id(t) for t in self.inputs]
        self._output_ids = [id(t) for t in self.outputs]
        self._uses = {}                   # layer -> how many nodes call it
        self._readers = {}                # id(tensor) -> how many nodes read it
        for node in self._nodes:
            self._uses[node.layer] = self._uses.get(node.layer, 0) + 1
            for tensor in node.input_tensors:
                self._readers[id(tensor)] = self._readers.get(id(tensor), 0) + 1
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
        """A layer by name or by position in ``model.layers`` (the index wins if both are given)."""
        layers = self.layers
        if name is None and index is None:
            raise ValueError(f"Model '{self.name}'.get_layer() needs a layer name or an index")
        if index is not None:
            if not -len(layers) <= index < len(layers):
                raise ValueError(f"Model '{self.name}' has {len(layers)} layers; index {index} is out of range")
            return layers[index]
        for layer in layers:
            if layer.name == name:
                return layer
        raise ValueError(f"No such layer: '{name}' in model '{self.name}' "
                         f"(layers: {', '.join(l.name for l in layers[:8])}{', ...' if len(layers) > 8 else ''})")

    def walk_layers(self, recursive=True):
        """Every layer in ``model.layers`` order; with ``recursive``, each nested model's
        layers follow right after it, at any depth (a loop, not recursion).

        Example::

            batch_norms = [l for l in model.walk_layers() if isinstance(l, BatchNormalization)]
        """
        pending = list(reversed(self.layers))
        while pending:
            layer = pending.pop()
            yield layer
            if recursive and isinstance(layer, Model):
                pending.extend(reversed(layer.layers))

    def output_layer(self):
        """The layer that computes the (first) output, looking inside nested models."""
        layer = self.outputs[0].node.layer
        while isinstance(layer, Model):
            layer = layer.outputs[0].node.layer
        return layer

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

    def _build_for(self, input_shape):
        """A model checks the arrays it is called on itself (``_input_values``)."""

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

    def _weights_of_layers(self, which):
        """The layers' ``which`` weights ('trainable_weights' or 'weights'), each parameter
        once (a layer used twice, or shared with another model, lists it once)."""
        seen, parameters = set(), []
        for layer in self._layers if self._graph_ready else []:
            for parameter in getattr(layer, which):
                if id(parameter) not in seen:
                    seen.add(id(parameter))
                    parameters.append(parameter)
        return parameters

    @property
    def trainable_weights(self):
        return self._weights_of_layers("trainable_weights") if self.trainable else []

    @property
    def non_trainable_weights(self):
        if not self.trainable:
            return self._weights_of_layers("weights")
        trainable = {id(p) for p in self.trainable_weights}
        return [p for p in self._weights_of_layers("weights") if id(p) not in trainable]

    def count_params(self):
        return int(sum(p.value.size for p in self.weights))

    # ------------------------------------------------------------------ compute
    def forward(self, inputs, training=False):
        """Run every node, in the graph's order; return the output array(s).

        Each layer's saved values are kept per node (read back by :meth:`backward`), and an
        array no later node reads is dropped as soon as its last reader has run.
        """
        values = self._input_values(inputs)
        readers_left = dict(self._readers)
        saved = {}
        for node in self._nodes:
            if id(node.output_tensors[0]) in values:
                continue                                   # a model input: its value is given
            layer = node.layer
            node_inputs = [values[id(t)] for t in node.input_tensors]
            output = layer.forward(node_inputs if len(node_inputs) > 1 else node_inputs[0], training=training)
            values[id(node.output_tensors[0])] = output
            if is_recording():
                saved[node] = layer.saved
            for tensor in node.input_tensors:
                readers_left[id(tensor)] -= 1
                if readers_left[id(tensor)] == 0 and id(tensor) not in self._output_ids:
                    del values[id(tensor)]
        self.save_for_backward(saved)
        outputs = [values[key] for key in self._output_ids]
        return outputs[0] if self._single_output else outputs

    def _input_values(self, inputs):
        """{id(input tensor): array}, after checking the arrays against the model's inputs."""
        if not self._graph_ready:
            self._require_graph()
        arrays = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
        if len(arrays) != len(self.inputs):
            raise ValueError(f"Model '{self.name}' expects {len(self.inputs)} input(s), got {len(arrays)}")
        for tensor, array in zip(self.inputs, arrays):
            expected, shape = tensor.shape, np.shape(array)
            fits = len(shape) == len(expected)
            for wanted, given in zip(expected[1:], shape[1:]):       # the batch size may be anything
                fits = fits and wanted in (None, given)
            if not fits:
                raise ValueError(
                    f"Model '{self.name}' expects input '{tensor.name}' of shape {describe_shape(expected)}, "
                    f"got an array of shape {tuple(shape)}")
        return dict(zip(self._input_ids, arrays))

    def backward(self, grad_output):
        """Walk the nodes in reverse; return dL/dinput(s) (a list for several inputs).

        A tensor read by several layers (an Inception block's input feeds four branches)
        gets the sum of their gradients -- the chain rule through every path::

            dL/dx = sum over the layers reading x of (dL/dx through that layer)
        """
        (saved,) = self.saved
        grads = dict(zip(self._output_ids, [grad_output] if self._single_output else grad_output))
        shared_layer_grads = {}
        for node in reversed(self._nodes):
            if node not in saved:
                continue                                   # a model input: nothing to do
            grad = grads.pop(id(node.output_tensors[0]), None)
            if grad is None:
                continue                                   # does not influence the outputs
            layer = node.layer
            layer.saved = saved[node]
            input_grads = layer.backward(grad)
            if self._uses[layer] > 1:
                self._sum_parameter_grads_over_uses(layer, shared_layer_grads)
            for tensor, input_grad in zip(node.input_tensors, input_grads if isinstance(input_grads, list)
                                          else [input_grads]):
                if input_grad is not None:
                    key = id(tensor)
                    grads[key] = input_grad if key not in grads else grads[key] + input_grad
        result = [grads.get(key) for key in self._input_ids]
        return result[0] if self._single_input else result

    @staticmethod
    def _sum_parameter_grads_over_uses(layer, sums):
        """For a layer used several times, add this use's gradients to the earlier uses'
        (``sums`` maps id(parameter) to the sum so far)."""
        for parameter in layer.trainable_weights:
            if parameter.grad is not None:
                key = id(parameter)
                sums[key] = parameter.grad if key not in sums else sums[key] + parameter.grad
                parameter.grad = sums[key]

    # ------------------------------------------------------------------ display
    def summary(self, line_length=None, positions=None, print_fn=None):
        """Print Keras's table: layer, output shape, parameters, inputs.

        As in Keras: ``line_length`` is the width of a line (98 by default), ``positions``
        where each of the four columns ends -- fractions of the line (the default
        ``[0.33, 0.55, 0.67, 1.0]``) or character counts -- and ``print_fn`` the function that
        prints each line (``print`` by default).
        """
        self._require_graph()
        line_length = line_length or 98
        positions = positions or [0.33, 0.55, 0.67, 1.0]
        print_fn = print_fn or print
        if positions[-1] <= 1:
            widths = [int(line_length * p) for p in positions]
        else:
            widths = [int(p) for p in positions]
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
            shape = describe_shape(shapes[0]) if shapes else "multiple"
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
