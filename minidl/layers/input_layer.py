"""``Input``: the entry point of a functional model.

``Input(shape=(299, 299, 3))`` returns a :class:`SymbolicTensor` of shape
``(None, 299, 299, 3)``; calling layers on it builds a graph, and
``Model(inputs, outputs)`` turns that graph into a model. The layer behind it,
:class:`InputLayer`, has no weights; its forward and backward pass arrays
through unchanged.

Example::

    x = Input(shape=(28, 28, 1))
    y = Dense(10)(Flatten()(x))
    model = Model(x, y)
"""
import numpy as np

from minidl.layers.base import Layer, Node, SymbolicTensor


class InputLayer(Layer):
    """Holds the shape of the model's input. Shapes: (batch, *shape) -> same."""

    def __init__(self, input_shape=None, batch_size=None, dtype=None, name=None,
                 batch_input_shape=None, **kwargs):
        if batch_input_shape is None:
            if input_shape is None:
                raise ValueError("InputLayer needs `input_shape` (without batch) or `batch_input_shape`")
            batch_input_shape = (batch_size,) + tuple(input_shape)
        for dim in batch_input_shape[1:]:
            if dim is not None and (not isinstance(dim, (int, np.integer)) or dim <= 0):
                raise ValueError(f"Input shape must hold positive integers or None, got {tuple(batch_input_shape[1:])}")
        if name is None:
            from minidl.layers.base import unique_name
            name = unique_name("input")
        super().__init__(name=name, dtype=dtype, batch_input_shape=batch_input_shape, **kwargs)
        self.built = True
        tensor = SymbolicTensor(self._batch_input_shape, self.dtype, node=None, name=self.name)
        node = Node(self, [], [tensor])
        tensor.node = node
        self._inbound_nodes.append(node)

    def forward(self, inputs, training=False):
        return inputs

    def backward(self, grad_output):
        return grad_output

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype.name,
                "batch_input_shape": list(self._batch_input_shape)}


def Input(shape=None, batch_size=None, name=None, dtype=None, batch_shape=None, tensor=None):
    """Create a symbolic input tensor; ``shape`` excludes the batch dimension."""
    if tensor is not None:
        return tensor
    if shape is None and batch_shape is None:
        raise ValueError("Input() needs `shape`, e.g. Input(shape=(299, 299, 3))")
    if isinstance(shape, int):
        shape = (shape,)
    layer = InputLayer(input_shape=shape, batch_size=batch_size, name=name, dtype=dtype,
                       batch_input_shape=batch_shape)
    return layer._inbound_nodes[0].output_tensors[0]
