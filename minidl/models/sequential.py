"""Sequential: a model that is a plain stack of layers, each feeding the next.

Give the first layer ``input_shape=`` (as Keras does) and the graph is built
as layers are added; otherwise it is built on the first call. Under the hood a
Sequential is a functional :class:`Model` from an ``Input`` through every
layer, so everything a Model does (fit, nesting, weights) works the same.
``model.layers`` does not list the hidden input layer, as in Keras.

Example::

    head = Sequential()
    head.add(GlobalAveragePooling2D(input_shape=(8, 8, 2048)))
    head.add(Dense(256, activation="relu"))
    head.add(Dropout(0.5))
    head.add(Dense(1, activation="sigmoid"))
"""
from minidl.layers.base import Layer, SymbolicTensor
from minidl.layers.input_layer import Input, InputLayer
from minidl.models.model import Model


class Sequential(Model):
    def __init__(self, layers=None, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self._stack = []
        for layer in layers or []:
            self.add(layer)

    def add(self, layer):
        """Append a layer (or a model) to the stack."""
        if isinstance(layer, SymbolicTensor) and isinstance(layer.layer, InputLayer):
            layer = layer.layer
        if not isinstance(layer, Layer):
            raise TypeError(f"Sequential '{self.name}'.add() expects a layer, got {type(layer).__name__}")
        self._stack.append(layer)
        input_given = any(isinstance(l, InputLayer) for l in self._stack)
        if input_given or self._graph_ready:
            self._build_graph(None)
        elif len(self._stack) == 1 and layer._batch_input_shape is not None:
            self._build_graph(layer._batch_input_shape)

    def pop(self):
        """Remove the last layer; the model's output is then the layer before it's (Keras's ``pop``)."""
        if not [layer for layer in self._stack if not isinstance(layer, InputLayer)]:
            raise TypeError(f"Sequential '{self.name}' has no layers to pop")
        self._stack.pop()
        if not [layer for layer in self._stack if not isinstance(layer, InputLayer)]:
            self._forget_graph()                    # nothing left to compute: unbuilt again
        elif self._graph_ready:
            self._build_graph(None)

    def _forget_graph(self):
        self._graph_ready = False
        self.built = False
        self.inputs, self.outputs, self._nodes, self._layers = [], [], [], []

    def _build_graph(self, batch_input_shape):
        stack = [l for l in self._stack if not isinstance(l, InputLayer)]
        given_input = next((l for l in self._stack if isinstance(l, InputLayer)), None)
        if given_input is not None:
            inputs = given_input._inbound_nodes[0].output_tensors[0]
        elif self._graph_ready:
            inputs = self.inputs[0]
        else:
            inputs = Input(batch_shape=tuple(batch_input_shape))
        if not stack:
            return
        x = inputs
        for layer in stack:
            x = self._output_after(layer, x)
        self._init_graph(inputs, x)

    @staticmethod
    def _output_after(layer, x):
        """Reuse the node made the last time this layer was called on x, else call it."""
        for node in layer._inbound_nodes:
            if node.input_tensors == [x]:
                return node.output_tensors[0]
        return layer(x)

    def build(self, input_shape=None):
        if input_shape is None:
            self._require_graph()
            return
        self._build_graph(tuple(input_shape))

    def _input_values(self, inputs):
        """As Model's; a Sequential without an input shape builds its graph on the first call."""
        if not self._graph_ready:
            if not self._stack:
                raise RuntimeError(f"Sequential '{self.name}' has no layers")
            shape = inputs.shape if hasattr(inputs, "shape") else None
            if shape is None:
                self._require_graph()
            self._build_graph((None,) + tuple(shape[1:]))
        return super()._input_values(inputs)

    def _call_symbolic(self, inputs):
        if not self._graph_ready:
            self._build_graph(inputs.shape)
        return super()._call_symbolic(inputs)

    def get_config(self):
        from minidl.models.serialization import sequential_config
        return sequential_config(self)

    @classmethod
    def from_config(cls, config, custom_objects=None):
        from minidl.models.serialization import model_from_config
        return model_from_config({"class_name": "Sequential", "config": config}, custom_objects)

    @property
    def layers(self):
        if not self._graph_ready:
            return [l for l in self._stack if not isinstance(l, InputLayer)]
        return [layer for layer in self._layers if not isinstance(layer, InputLayer)]
