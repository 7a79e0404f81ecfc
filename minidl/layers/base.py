"""The layer protocol every minidl layer follows -- and every layer you write.

A layer is a small object with two methods a learner can read side by side:

* ``forward(inputs, training=False)`` computes the outputs from the inputs and keeps,
  with ``self.save_for_backward(...)``, exactly what ``backward`` will need;
* ``backward(grad_output)`` receives dLoss/dOutput, reads ``self.saved``, stores
  dLoss/dParameter with ``self.store_grad(parameter, grad)`` and returns dLoss/dInput
  (a list for layers with several inputs).

Around them sit Keras's conventions: ``build(input_shape)`` creates the weights with
``self.add_weight(...)`` once the input shape is known (the batch dimension is included
and may be ``None``), ``compute_output_shape(input_shape)``, ``input_spec`` (what the
layer accepts, checked on every call), ``weights`` / ``trainable_weights`` /
``non_trainable_weights``, ``get_weights()`` / ``set_weights()``, ``get_config()``,
automatic names such as ``conv2d_1``. ``self.value_of(parameter, like=inputs)`` reads a
weight in the dtype of the inputs, so a float64 gradient check stays float64.

Calling a layer (``layer(x)``) does one of two things:

* on a :class:`SymbolicTensor` (what ``Input(shape)`` returns) it builds the layer if
  needed, records a :class:`Node` of a graph and returns a new symbolic tensor -- this is
  how the functional API builds models without computing anything;
* on a NumPy array it builds the layer if needed, checks the input against
  ``input_spec`` and runs ``forward``.

A model runs its layers' ``forward`` and ``backward`` itself (``minidl/models/model.py``).

Example::

    from minidl.layers import Dense
    layer = Dense(3)
    y = layer(np.ones((2, 4), np.float32))        # builds, checks, then forward
    grad_input = layer.backward(np.ones_like(y))   # fills layer.kernel.grad
"""
import re
from collections import defaultdict
from contextlib import contextmanager

import numpy as np

from minidl import initializers
from minidl.parameter import Parameter

_name_counters = defaultdict(int)
_recording = [True]


def clear_session():
    """Reset automatic layer names, so the next Conv2D is ``conv2d_1`` again."""
    _name_counters.clear()


def unique_name(prefix):
    """Keras 2 naming: the n-th layer of a kind is ``<prefix>_<n>``, n from 1."""
    _name_counters[prefix] += 1
    return f"{prefix}_{_name_counters[prefix]}"


def reserve_name(name):
    """Advance the counter behind an explicit ``<prefix>_<n>`` name, so later
    automatic names do not collide with it."""
    match = re.fullmatch(r"(.+)_(\d+)", name)
    if match:
        prefix, number = match.group(1), int(match.group(2))
        _name_counters[prefix] = max(_name_counters[prefix], number)


def to_snake_case(class_name):
    """``BatchNormalization`` -> ``batch_normalization``, ``Conv2D`` -> ``conv2d``."""
    intermediate = re.sub(r"(.)([A-Z][a-z0-9]+)", r"\1_\2", class_name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", intermediate).lower()


def is_recording():
    """True when layers must keep what backward needs (the default)."""
    return _recording[0]


@contextmanager
def no_backward():
    """Within this block ``save_for_backward`` keeps nothing: inference saves memory.

    ``predict`` and ``evaluate`` run inside it; a ``backward`` call after a
    forward pass made here raises a clear error.
    """
    previous = _recording[0]
    _recording[0] = False
    try:
        yield
    finally:
        _recording[0] = previous


class SymbolicTensor:
    """A placeholder for an array flowing through a graph that is being built.

    It knows its shape (batch dimension ``None``), its dtype, and which layer
    call (``node``) produced it.
    """

    def __init__(self, shape, dtype="float32", node=None, index=0, name=None):
        self.shape = tuple(shape)
        self.dtype = np.dtype(dtype)
        self.node = node
        self.index = index
        self.name = name

    @property
    def layer(self):
        return self.node.layer if self.node is not None else None

    def __repr__(self):
        origin = f" from '{self.node.layer.name}'" if self.node is not None else ""
        return f"<SymbolicTensor shape={self.shape} dtype={self.dtype.name}{origin}>"


class Node:
    """One call of a layer inside a graph: which tensors went in and came out."""

    def __init__(self, layer, input_tensors, output_tensors):
        self.layer = layer
        self.input_tensors = list(input_tensors)
        self.output_tensors = list(output_tensors)

    @property
    def inbound_nodes(self):
        return [t.node for t in self.input_tensors if t.node is not None]

    def __repr__(self):
        return f"<Node of '{self.layer.name}'>"


def _is_symbolic(inputs):
    if isinstance(inputs, SymbolicTensor):
        return True
    return isinstance(inputs, (list, tuple)) and len(inputs) > 0 and all(
        isinstance(t, SymbolicTensor) for t in inputs
    )


class Layer:
    """Base class: naming, weights, building, calling, input checks, the backward protocol.

    Subclasses override ``build``, ``compute_output_shape``, ``forward``, ``backward``
    and ``get_config``, and may set ``self.input_spec`` (an :class:`InputSpec`).
    """

    def __init__(self, name=None, trainable=True, dtype=None, input_shape=None,
                 batch_input_shape=None, batch_size=None, input_dim=None, weights=None, **unknown):
        """Keras 2's keyword arguments of every layer.

        ``dtype`` is the dtype of the weights (float32 by default); a layer computes in the
        dtype of its input. ``input_shape`` (or ``input_dim=n``, the same as
        ``input_shape=(n,)``), ``batch_size`` and ``batch_input_shape`` give the first layer
        of a ``Sequential`` its input. ``weights`` is a list of arrays given to
        ``set_weights`` as soon as the layer is built.
        """
        if unknown:
            raise TypeError(
                f"{type(self).__name__}: unknown keyword argument(s) "
                f"{', '.join(repr(k) for k in unknown)}"
            )
        if input_dim is not None and input_shape is None:
            input_shape = (input_dim,)              # Keras's alias: Dense(32, input_dim=784)
        if name is None:
            name = unique_name(to_snake_case(type(self).__name__))
        else:
            reserve_name(name)
        self.name = name
        self._trainable = bool(trainable)
        self.dtype = np.dtype(dtype or "float32")
        self.built = False
        self.input_spec = None
        self._params = []
        self._saved = None
        self._inbound_nodes = []
        self._outbound_nodes = []
        if batch_input_shape is not None:
            self._batch_input_shape = tuple(batch_input_shape)
        elif input_shape is not None:
            self._batch_input_shape = (batch_size,) + tuple(input_shape)
        else:
            self._batch_input_shape = None
        self._initial_weights = None if weights is None else list(weights)

    # ------------------------------------------------------------------ weights
    @property
    def trainable(self):
        return self._trainable

    @trainable.setter
    def trainable(self, value):
        self._trainable = bool(value)

    def add_weight(self, name, shape, initializer="zeros", trainable=True, dtype=None):
        """Create a :class:`Parameter` named ``<layer>/<name>:0`` and register it."""
        init = initializers.get(initializer)
        value = np.asarray(init(tuple(shape), dtype or self.dtype))
        parameter = Parameter(f"{self.name}/{name}:0", value, trainable=trainable)
        self._params.append(parameter)
        return parameter

    @property
    def weights(self):
        """All parameters in Keras's order (trainable ones first, as created)."""
        return self.trainable_weights + self.non_trainable_weights

    @property
    def trainable_weights(self):
        if not self.trainable:
            return []
        return [p for p in self._params if p.trainable]

    @property
    def non_trainable_weights(self):
        if not self.trainable:
            return [p for p in self._params if p.trainable] + [p for p in self._params if not p.trainable]
        return [p for p in self._params if not p.trainable]

    def get_weights(self):
        """Copies of the weight arrays, in ``weights`` order."""
        return [p.value.copy() for p in self.weights]

    def set_weights(self, arrays):
        """Assign arrays to ``weights`` in order; count and shapes must match."""
        params = self.weights
        arrays = list(arrays)
        if len(arrays) != len(params):
            raise ValueError(
                f"Layer '{self.name}' expects {len(params)} weight arrays "
                f"({[p.name for p in params]}), got {len(arrays)}"
            )
        for parameter, array in zip(params, arrays):
            if np.shape(array) != parameter.shape:
                raise ValueError(
                    f"Layer '{self.name}': weight '{parameter.name}' has shape "
                    f"{parameter.shape}, got an array of shape {np.shape(array)}"
                )
        for parameter, array in zip(params, arrays):
            parameter.assign(array)

    def count_params(self):
        return int(sum(p.value.size for p in self.weights))

    def value_of(self, parameter, like):
        """The parameter's value in the dtype of the array ``like`` (the layer's inputs).

        A float32 layer given float64 inputs -- a gradient check -- then computes in float64.
        """
        value = parameter.value
        return value if value.dtype == like.dtype else value.astype(like.dtype)

    # ------------------------------------------------------------------ building
    def build(self, input_shape):
        """Create the weights for this input shape (batch dimension included)."""
        self.built = True

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def _check_input_shape(self, input_shape):
        """Raise a clear error when the input does not meet ``input_spec``."""
        if self.input_spec is not None:
            self.input_spec.check(input_shape, f"{type(self).__name__} '{self.name}'")

    def _build_for(self, input_shape):
        """Build on the first call (after checking what build relies on), check every call."""
        single = not isinstance(input_shape, list)        # a list: one shape per input
        if not self.built:
            if single:
                self._check_input_shape(input_shape)    # the rank, before build needs it
            self.build(input_shape)
            self.built = True
            if self._initial_weights is not None:       # Keras's weights=[...] argument
                self.set_weights(self._initial_weights)
                self._initial_weights = None
        if single:
            self._check_input_shape(input_shape)        # the channels, which build fixed

    # ------------------------------------------------------------------ backward protocol
    def save_for_backward(self, *values):
        """Keep ``values`` for ``backward`` (read them back as ``self.saved``).

        Inside :func:`no_backward` (predict, evaluate) nothing is kept: no backward follows.
        """
        self._saved = values if _recording[0] else None        # see no_backward()

    @property
    def saved(self):
        """The tuple the last ``forward`` passed to ``save_for_backward``; an error if there is none."""
        if self._saved is None:
            raise RuntimeError(
                f"{type(self).__name__} '{self.name}': backward() needs what forward() saves with "
                "save_for_backward(); call forward() first, outside minidl.layers.no_backward() "
                "(which predict and evaluate use), and backward() once per forward()")
        return self._saved

    @saved.setter
    def saved(self, values):
        self._saved = values

    def store_grad(self, parameter, grad):
        """Set ``parameter.grad`` = dLoss/dparameter, in the parameter's dtype.

        The gradient must have the parameter's shape: anything else is an error naming the
        layer and the parameter (a wrong shape would otherwise surface much later, deep in
        the optimizer). ``None`` means no gradient was computed (a frozen weight).
        """
        if grad is None:
            parameter.grad = None
            return
        expected = parameter.value.shape
        if np.shape(grad) != expected:
            raise ValueError(f"{type(self).__name__} '{self.name}': the gradient stored for "
                             f"'{parameter.name}' has shape {np.shape(grad)}, but the parameter has "
                             f"shape {expected}")
        parameter.grad = grad if grad.dtype == parameter.value.dtype else grad.astype(parameter.value.dtype)

    # ------------------------------------------------------------------ compute
    def forward(self, inputs, training=False):
        raise NotImplementedError(f"{type(self).__name__} must implement forward()")

    def backward(self, grad_output):
        raise NotImplementedError(f"{type(self).__name__} must implement backward()")

    def __call__(self, inputs, training=False, **kwargs):
        if kwargs:
            raise TypeError(f"{type(self).__name__} '{self.name}': unknown call argument(s) {sorted(kwargs)}")
        if _is_symbolic(inputs):
            return self._call_symbolic(inputs)
        if isinstance(inputs, (list, tuple)):
            inputs = [np.asarray(x) for x in inputs]
            self._build_for([tuple(x.shape) for x in inputs])
        else:
            inputs = np.asarray(inputs)
            if inputs.dtype.kind in "iub":
                inputs = inputs.astype(self.dtype)
            self._build_for(inputs.shape)
        return self.forward(inputs, training=bool(training))

    def _call_symbolic(self, inputs):
        single = isinstance(inputs, SymbolicTensor)
        input_list = [inputs] if single else list(inputs)
        self._build_for(inputs.shape if single else [t.shape for t in input_list])
        output_shape = self.compute_output_shape(inputs.shape if single else [t.shape for t in input_list])
        node = Node(self, input_list, [])
        output = SymbolicTensor(output_shape, input_list[0].dtype, node=node, index=0, name=self.name)
        node.output_tensors = [output]
        self._inbound_nodes.append(node)
        for tensor in input_list:
            if tensor.layer is not None:
                tensor.layer._outbound_nodes.append(node)
        return output

    # ------------------------------------------------------------------ graph info
    @property
    def input(self):
        self._require_node("input")
        tensors = self._inbound_nodes[0].input_tensors
        return tensors[0] if len(tensors) == 1 else tensors

    @property
    def output(self):
        self._require_node("output")
        return self._inbound_nodes[0].output_tensors[0]

    @property
    def input_shape(self):
        inputs = self.input
        return [t.shape for t in inputs] if isinstance(inputs, list) else inputs.shape

    @property
    def output_shape(self):
        return self.output.shape

    def _require_node(self, what):
        if not self._inbound_nodes:
            raise AttributeError(
                f"Layer '{self.name}' has not been called on a symbolic tensor yet, so it has no {what}"
            )

    # ------------------------------------------------------------------ config
    def get_config(self):
        config = {"name": self.name, "trainable": self.trainable, "dtype": self.dtype.name}
        if self._batch_input_shape is not None:
            config["batch_input_shape"] = list(self._batch_input_shape)
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if "batch_input_shape" in config and config["batch_input_shape"] is not None:
            config["batch_input_shape"] = tuple(config["batch_input_shape"])
        return cls(**config)

    def __repr__(self):
        return f"<{type(self).__name__} '{self.name}'>"
