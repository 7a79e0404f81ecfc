"""Fused steps: Conv2D -> BatchNormalization -> ReLU as one pass over memory.

InceptionV3 is 94 times the same three layers (Keras's ``conv2d_bn``)::

    z = conv(x)          # Conv2D without bias or activation
    b = batchnorm(z)     # at inference: b = (z - moving_mean) * scale + beta, per channel
    a = relu(b)          # Activation('relu')

Run one after the other, each layer makes a full new array: the product writes z to
memory, batch norm reads it back and writes b, ReLU reads b back and writes a. When batch
norm uses its moving statistics (inference, or a frozen layer in training), batch norm
and ReLU act on every value on its own, so they can be applied to each chunk of z as soon
as the convolution's product has made it, while it is still in cache: the convolution's
``epilogue`` (``minidl/kernels/fast/conv.py``). z is written once, b and a never exist as
arrays of their own. The numbers are the same, bit for bit: the same convolution (im2col,
or Winograd where the engine picks it) and the same operations in the same order
(``tests/test_inference_fusion.py`` checks it).

When a chain is fused -- all of these hold, else its layers run one by one:

* a Conv2D without bias and with a linear activation, whose output goes only to a
  BatchNormalization (no other layer reads it, it is not a model output);
* then, if the batch norm's output goes only to an ``Activation('relu')``, that too;
* every node of the chain is *eligible* (``forward.py`` decides: at inference all are; in a
  training step only the frozen part's, which keeps nothing for backward).

Concatenation in place. An Inception block ends by concatenating its branches along the
channels (``mixed0`` ... ``mixed10``). When a fused step's output goes only to such a
Concatenate, the step writes straight into its channels of the concatenation's output
(``out=`` of the convolution), and the Concatenate only copies the inputs nobody wrote
in place (a pooling branch, an inner concatenation): one full copy of every block's
output less. What both save: ``benchmarks/README.md``.

In a training step the walked part's batch norms use the batch statistics, so no
convolution can take them as an epilogue; but a BatchNormalization -> ReLU pair still runs
as one step (:class:`BatchNormReLUTraining`, planned by
:func:`plan_batchnorm_relu_in_training`): relu(batchnorm(z)) in one pass once the statistics
are known, and one backward for both that recomputes the ReLU's mask from z -- b and
dL/db never exist. The same numbers, bit for bit (``tests/test_training_fusion.py``).

Example::

    steps = plan_fusions(model._nodes, input_ids, output_ids)
    # {conv node: ConvBatchNormReLU(...), its batch-norm node: None, its ReLU node: None,
    #  concatenate node: ConcatenateInPlace(...), ...}
    values[id(step.output_tensor)] = step.run(values, buffers)      # in forward.py
"""
import threading
from collections import defaultdict

import numpy as np

from minidl.kernels.fast import batchnorm_numba
from minidl.kernels.fast import conv as fast_conv
from minidl.layers.activation import Activation
from minidl.layers.conv import Conv2D
from minidl.layers.merge import Concatenate
from minidl.layers.normalization import BatchNormalization

_making_buffers = threading.Lock()


class ConvBatchNormReLU:
    """One fused step: a convolution node, the batch-norm node reading it, and maybe a ReLU."""

    def __init__(self, conv_node, norm_node, relu_node=None):
        self.conv = conv_node.layer
        self.norm = norm_node.layer
        self.relu = relu_node is not None
        self.nodes = [conv_node, norm_node] + ([relu_node] if self.relu else [])
        self.input_tensor = conv_node.input_tensors[0]
        self.output_tensor = self.nodes[-1].output_tensors[0]
        self.destination = None   # (ConcatenateInPlace, first channel) when it writes in place

    def run(self, values, buffers):
        """relu(batchnorm(conv(x))) with batch norm and ReLU applied chunk by chunk;
        ``values`` maps tensor ids to arrays, ``buffers`` holds this pass's in-place outputs."""
        x = values[id(self.input_tensor)]
        conv, norm = self.conv, self.norm
        affine = batchnorm_numba.batchnorm_inference_affine(
            norm.value_of(norm.moving_mean, like=x), norm.value_of(norm.moving_variance, like=x),
            None if norm.gamma is None else norm.value_of(norm.gamma, like=x),
            None if norm.beta is None else norm.value_of(norm.beta, like=x), norm.epsilon, conv.filters, x.dtype)
        batchnorm_then_relu = batchnorm_numba.InferenceEpilogue(affine, self.relu)
        out = None
        if self.destination is not None:
            concatenation, first_channel = self.destination
            output_shape = conv.compute_output_shape(x.shape)
            buffer = concatenation.buffer(buffers, output_shape[:-1], x.dtype)
            out = buffer[..., first_channel: first_channel + conv.filters]
        return fast_conv.conv2d_forward(x, conv.value_of(conv.kernel, like=x), conv.strides,
                                        conv.padding_for(x.shape), epilogue=batchnorm_then_relu, out=out)

    def __repr__(self):
        names = " -> ".join(node.layer.name for node in self.nodes)
        return f"ConvBatchNormReLU({names})"


class ConcatenateInPlace:
    """A channel concatenation whose output buffer its fused inputs write into directly."""

    def __init__(self, node, written_in_place):
        self.node = node
        self.nodes = [node]
        self.output_tensor = node.output_tensors[0]
        self.channels = self.output_tensor.shape[-1]
        self.written_in_place = written_in_place    # ids of the input tensors written in place

    def buffer(self, buffers, leading_shape, dtype):
        """This pass's output array, made by the first input that needs it."""
        with _making_buffers:      # the branches writing into it may run at once (branches.py)
            if self not in buffers:
                buffers[self] = np.empty(tuple(leading_shape) + (self.channels,), dtype=dtype)
            return buffers[self]

    def run(self, values, buffers):
        """Copy in the inputs not written in place; return the concatenation."""
        inputs = [values[id(t)] for t in self.node.input_tensors]
        output = buffers.pop(self, None)
        if output is None or any(x.dtype != output.dtype or x.shape[:-1] != output.shape[:-1] for x in inputs):
            # nothing written in place yet, mixed dtypes, or shapes that do not fit (the
            # layer itself then says what is wrong): the plain concatenation
            return self.node.layer.forward(inputs)
        first_channel = 0
        for tensor, x in zip(self.node.input_tensors, inputs):
            if id(tensor) not in self.written_in_place:
                output[..., first_channel: first_channel + x.shape[-1]] = x
            first_channel += x.shape[-1]
        return output

    def __repr__(self):
        return f"ConcatenateInPlace({self.node.layer.name})"


class BatchNormReLUTraining:
    """A training step's BatchNormalization (batch statistics) -> ReLU, both walked backward,
    as one step: one pass over z after the statistics' instead of two (batch norm writes b,
    ReLU reads it and writes a), and one backward for both.

    The forward keeps what each layer's own forward keeps -- the batch norm its
    ``("train", z, mean, inv_std, gamma)`` and its moving statistics updated the same way --
    except that the ReLU keeps a :class:`ReLUAfterBatchNorm` instead of its output: the
    per-channel affine map that made b, from which the backward walk recomputes the ReLU's
    mask (``batchnorm_numba.batchnorm_relu_backward``). b and dL/db are never made. The
    numbers are the two layers' bit for bit (``tests/test_training_fusion.py``).
    """

    def __init__(self, norm_node, relu_node):
        self.norm = norm_node.layer
        self.relu = relu_node.layer
        self.nodes = [norm_node, relu_node]
        self.input_tensor = norm_node.input_tensors[0]
        self.output_tensor = relu_node.output_tensors[0]

    def run(self, values, buffers):
        """a = relu(batchnorm(z)) with the batch statistics; both layers keep for backward."""
        z = values[id(self.input_tensor)]
        norm = self.norm
        gamma = None if norm.gamma is None else norm.value_of(norm.gamma, like=z)
        beta = None if norm.beta is None else norm.value_of(norm.beta, like=z)
        a, mean, variance, inv_std, affine = batchnorm_numba.batchnorm_relu_train_forward(
            z, gamma, beta, norm.epsilon)
        norm._update_moving_statistics(mean, variance, z.size // z.shape[-1])
        norm.save_for_backward("train", z, mean, inv_std, gamma)
        self.relu.saved = ReLUAfterBatchNorm(affine)
        return a

    def __repr__(self):
        return f"BatchNormReLUTraining({self.norm.name} -> {self.relu.name})"


class ReLUAfterBatchNorm:
    """What the ReLU of a :class:`BatchNormReLUTraining` keeps: the batch norm's affine map.
    Its backward hands dL/da on unchanged, marked for the batch norm's backward to apply
    the ReLU's mask (:meth:`through`)."""

    def __init__(self, affine):
        self.affine = affine

    def through(self, grad_output):
        return GradientBeforeReLU(grad_output, self.affine)


class GradientBeforeReLU:
    """dL/da of a ReLU whose mask its batch norm's backward applies (see above)."""

    def __init__(self, gradient, affine):
        self.gradient = gradient
        self.affine = affine

    def batchnorm_backward(self, norm, kept, wants):
        """The batch norm's backward through the ReLU: its parameters' gradients stored if
        ``wants[0]``, dL/dz returned if ``wants[1]`` (else None)."""
        _, z, mean, inv_std, gamma = kept
        weights, inputs = wants
        grad_input, grad_gamma, grad_beta = batchnorm_numba.batchnorm_relu_backward(
            self.gradient, z, mean, inv_std, gamma, relu_affine=self.affine, input_gradient=inputs)
        if weights and norm.gamma is not None:
            norm.store_grad(norm.gamma, grad_gamma)
        if weights and norm.beta is not None:
            norm.store_grad(norm.beta, grad_beta)
        return grad_input


def plan_batchnorm_relu_in_training(nodes, input_ids, output_ids, fusable):
    """{batch-norm node: BatchNormReLUTraining, its ReLU node: None} for every
    BatchNormalization -> ReLU pair of ``nodes`` where ``fusable(node)`` holds for both
    (``forward.py``: walked backward, each layer used once, the batch norm trainable in a
    training step) and the ReLU is the only reader of the batch norm's output, which is
    neither a model input nor a model output."""
    readers = _readers(nodes)
    boundary = set(input_ids) | set(output_ids)
    steps = {}
    for node in nodes:
        if not isinstance(node.layer, BatchNormalization) or not fusable(node):
            continue
        output = id(node.output_tensors[0])
        if output in boundary or len(readers[output]) != 1:
            continue
        relu_node = readers[output][0]
        if _is_relu(relu_node.layer) and fusable(relu_node) and id(relu_node.output_tensors[0]) not in input_ids:
            steps[node] = BatchNormReLUTraining(node, relu_node)
            steps[relu_node] = None
    return steps


def _readers(nodes):
    """id(tensor) -> the nodes reading it, in order."""
    readers = defaultdict(list)
    for node in nodes:
        for tensor in node.input_tensors:
            readers[id(tensor)].append(node)
    return readers


def plan_fusions(nodes, input_ids, output_ids, eligible=None):
    """Find the fusable chains among ``nodes`` (a model's nodes in execution order).

    Returns a dict: each chain's convolution node maps to its :class:`ConvBatchNormReLU`,
    and the batch-norm and ReLU nodes it absorbs map to None (run by the step, skip them);
    a Concatenate node that fused steps write into maps to its :class:`ConcatenateInPlace`.
    ``input_ids`` / ``output_ids`` are the ids of the model's input and output tensors:
    neither can be skipped as an intermediate. ``eligible(node)``, if given, says which
    nodes may take part at all.
    """
    eligible = eligible or (lambda node: True)
    readers = _readers(nodes)
    model_inputs = set(input_ids)
    boundary = model_inputs | set(output_ids)

    def sole_reader(node):
        """The only node reading ``node``'s output, if it is an intermediate and eligible; else None."""
        tensor = node.output_tensors[0]
        if id(tensor) in boundary or len(readers[id(tensor)]) != 1 or not eligible(readers[id(tensor)][0]):
            return None
        return readers[id(tensor)][0]

    steps = {}
    for node in nodes:
        if (not eligible(node) or not _is_plain_convolution(node.layer)
                or id(node.output_tensors[0]) in boundary):
            continue
        norm_node = sole_reader(node)
        if norm_node is None or not isinstance(norm_node.layer, BatchNormalization):
            continue
        if id(norm_node.output_tensors[0]) in model_inputs:
            continue
        relu_node = sole_reader(norm_node)
        if relu_node is not None and (not _is_relu(relu_node.layer)
                                      or id(relu_node.output_tensors[0]) in model_inputs):
            relu_node = None
        step = ConvBatchNormReLU(node, norm_node, relu_node)
        steps[node] = step
        for absorbed in step.nodes[1:]:
            steps[absorbed] = None
    _plan_concatenations_in_place(nodes, steps, sole_reader)
    return steps


def _plan_concatenations_in_place(nodes, steps, sole_reader):
    """Let fused steps whose only reader is a channel Concatenate write into its output."""
    fused_outputs = {id(step.output_tensor): step for step in steps.values() if step is not None}
    for node in nodes:
        layer = node.layer
        if not isinstance(layer, Concatenate) or layer.axis not in (-1, len(node.output_tensors[0].shape) - 1):
            continue
        if node.output_tensors[0].shape[-1] is None:
            continue
        writers, first_channel = [], 0
        for tensor in node.input_tensors:
            step = fused_outputs.get(id(tensor))
            if (step is not None and step.destination is None and sole_reader(step.nodes[-1]) is node
                    and node.input_tensors.count(tensor) == 1):
                writers.append((step, first_channel))
            first_channel += tensor.shape[-1]
        if not writers:
            continue
        concatenation = ConcatenateInPlace(node, {id(step.output_tensor) for step, _ in writers})
        for step, channel in writers:
            step.destination = (concatenation, channel)
        steps[node] = concatenation


def _is_plain_convolution(layer):
    """A Conv2D that only convolves: no bias, no activation (Keras's conv2d_bn)."""
    return isinstance(layer, Conv2D) and not layer.use_bias and layer.activation.name == "linear"


def _is_relu(layer):
    return isinstance(layer, Activation) and layer.activation.name == "relu"
