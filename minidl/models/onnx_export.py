"""Export a model to ONNX, so that onnxruntime (or any ONNX runtime) can serve it.

ONNX describes a network as a graph of standard operators (``Conv``, ``Relu``,
``Concat``, ...) with the weights stored next to it. :func:`export_onnx` walks the
model's layer calls in order (``model._nodes``, nested models inlined) and writes one
or a few operators per call:

===========================  ==============================================================
minidl layer                 ONNX operators
===========================  ==============================================================
InputLayer (4-D)             ``Transpose`` NHWC -> NCHW: ONNX's convolutions are channels-first
Conv2D                       ``Conv`` with the kernel as OIHW (``HWIO.transpose(3, 2, 0, 1)``)
                             and TensorFlow's 'same' padding written out: ``pads = [top,
                             left, bottom, right]``, the odd pixel at the bottom/right
BatchNormalization           ``BatchNormalization`` (inference form: the moving statistics)
Activation, ``activation=``  ``Relu``, ``Sigmoid``, ``Softmax`` (channel axis), ``Identity``
MaxPooling2D                 ``MaxPool`` (padding never wins a max)
AveragePooling2D             ``AveragePool`` with ``count_include_pad=0``: Keras averages
                             only the pixels inside the image
GlobalAverage/MaxPooling2D   ``GlobalAveragePool`` / ``GlobalMaxPool``, then ``Flatten``
Flatten                      ``Transpose`` back to NHWC first (Keras flattens h, w, c in
                             that order), then ``Flatten``
Dense                        ``Gemm`` (x W + b)
Dropout                      ``Identity`` (inference)
Concatenate                  ``Concat`` on the axis mapped from NHWC to NCHW
===========================  ==============================================================

Inside the graph every 4-D tensor is NCHW; the graph's inputs and outputs are NHWC, as
in minidl, with a free batch dimension (``"batch"``), so ``session.run`` takes the
arrays ``model.predict`` takes. The graph is checked with ``onnx.checker`` before it is
written (atomically).

Example::

    model.export("model.onnx", format="onnx")
    import onnxruntime
    session = onnxruntime.InferenceSession("model.onnx")
    probabilities = session.run(None, {session.get_inputs()[0].name: images})[0]
"""
from pathlib import Path

import numpy as np

from minidl.kernels.geometry import conv_geometry
from minidl.models.keras_config import keras_class_name
from minidl.utils.files import atomic_write

DEFAULT_OPSET = 13        # Softmax over one axis, Concat, AveragePool's count_include_pad: all there
IR_VERSION = 8            # the IR of opset 13: onnxruntime 1.10 and later read it
NHWC_TO_NCHW = [0, 3, 1, 2]
NCHW_TO_NHWC = [0, 2, 3, 1]


def import_onnx():
    """The ``onnx`` package, or an error that says how to install it."""
    try:
        import onnx
    except ImportError as error:
        raise ImportError("exporting to ONNX needs the onnx package: pip install -e '.[onnx]' "
                          "(or pip install onnx onnxruntime)") from error
    return onnx


def nchw_axis(axis, rank):
    """The NCHW axis of a 4-D tensor's NHWC ``axis`` (other ranks keep their axes)."""
    axis = axis % rank
    return NHWC_TO_NCHW.index(axis) if rank == 4 else axis


class GraphBuilder:
    """Collects ONNX nodes and weights, and hands out unique tensor names."""

    def __init__(self, onnx):
        self.onnx = onnx
        self.nodes, self.initializers, self.used_names = [], [], set()

    def unique(self, name):
        candidate, count = name, 0
        while candidate in self.used_names:
            count += 1
            candidate = f"{name}_{count}"
        self.used_names.add(candidate)
        return candidate

    def weight(self, array, name):
        """Store ``array`` (as float32 unless integer) in the file; return its name."""
        array = np.asarray(array)
        if array.dtype.kind == "f":
            array = array.astype(np.float32)
        name = self.unique(name)
        self.initializers.append(self.onnx.numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def node(self, op_type, inputs, name, **attributes):
        """Add one operator; return the name of its output."""
        output = self.unique(name)
        self.nodes.append(self.onnx.helper.make_node(op_type, list(inputs), [output], name=output, **attributes))
        return output


# ---------------------------------------------------------------------------
# one function per layer kind: (builder, layer, input names, input ranks) -> output name
# ---------------------------------------------------------------------------
def _activation(builder, name, tensor, activation_name, rank):
    if activation_name == "linear":
        return tensor
    if activation_name == "relu":
        return builder.node("Relu", [tensor], f"{name}/relu")
    if activation_name == "sigmoid":
        return builder.node("Sigmoid", [tensor], f"{name}/sigmoid")
    if activation_name == "softmax":
        return builder.node("Softmax", [tensor], f"{name}/softmax", axis=nchw_axis(-1, rank))
    raise NotImplementedError(f"layer '{name}': no ONNX operator for activation '{activation_name}'")


def _pads(layer, input_shape):
    """ONNX ``pads`` ([top, left, bottom, right]) of a Conv2D or pooling layer."""
    if layer.padding == "valid":
        return [0, 0, 0, 0]
    if input_shape[1] is None or input_shape[2] is None:
        raise NotImplementedError(f"layer '{layer.name}': 'same' padding needs a known image size to "
                                  f"export, got input shape {input_shape}")
    kernel = getattr(layer, "kernel_size", None) or layer.pool_size
    (top, bottom), (left, right) = conv_geometry(input_shape, kernel, layer.strides, layer.padding)[2]
    return [top, left, bottom, right]


def _conv2d(builder, layer, inputs, shapes):
    kernel = builder.weight(layer.kernel.value.transpose(3, 2, 0, 1), f"{layer.name}/kernel")
    operands = [inputs[0], kernel]
    if layer.use_bias:
        operands.append(builder.weight(layer.bias.value, f"{layer.name}/bias"))
    output = builder.node("Conv", operands, layer.name, kernel_shape=list(layer.kernel_size),
                          strides=list(layer.strides), pads=_pads(layer, shapes[0]))
    return _activation(builder, layer.name, output, layer.activation.name, 4)


def _batch_normalization(builder, layer, inputs, shapes):
    channels = shapes[0][-1]
    gamma = layer.gamma.value if layer.gamma is not None else np.ones(channels)
    beta = layer.beta.value if layer.beta is not None else np.zeros(channels)
    operands = [inputs[0], builder.weight(gamma, f"{layer.name}/gamma"), builder.weight(beta, f"{layer.name}/beta"),
                builder.weight(layer.moving_mean.value, f"{layer.name}/moving_mean"),
                builder.weight(layer.moving_variance.value, f"{layer.name}/moving_variance")]
    return builder.node("BatchNormalization", operands, layer.name, epsilon=float(layer.epsilon))


def _activation_layer(builder, layer, inputs, shapes):
    if layer.activation.name == "linear":
        return builder.node("Identity", inputs, layer.name)
    return _activation(builder, layer.name, inputs[0], layer.activation.name, len(shapes[0]))


def _max_pooling(builder, layer, inputs, shapes):
    return builder.node("MaxPool", inputs, layer.name, kernel_shape=list(layer.pool_size),
                        strides=list(layer.strides), pads=_pads(layer, shapes[0]))


def _average_pooling(builder, layer, inputs, shapes):
    return builder.node("AveragePool", inputs, layer.name, kernel_shape=list(layer.pool_size),
                        strides=list(layer.strides), pads=_pads(layer, shapes[0]), count_include_pad=0)


def _global_pooling(op_type):
    def convert(builder, layer, inputs, shapes):
        pooled = builder.node(op_type, inputs, layer.name)                 # (N, C, 1, 1)
        if layer.keepdims:
            return pooled
        return builder.node("Flatten", [pooled], f"{layer.name}/flatten", axis=1)
    return convert


def _flatten(builder, layer, inputs, shapes):
    tensor = inputs[0]
    if len(shapes[0]) == 4:                       # NCHW inside: back to Keras's h, w, c order first
        tensor = builder.node("Transpose", [tensor], f"{layer.name}/to_nhwc", perm=NCHW_TO_NHWC)
    return builder.node("Flatten", [tensor], layer.name, axis=1)


def _dense(builder, layer, inputs, shapes):
    if len(shapes[0]) != 2:
        raise NotImplementedError(f"Dense '{layer.name}' on a {len(shapes[0])}-D input: only 2-D inputs "
                                  f"(after Flatten or global pooling) export to ONNX")
    operands = [inputs[0], builder.weight(layer.kernel.value, f"{layer.name}/kernel")]
    if layer.use_bias:
        operands.append(builder.weight(layer.bias.value, f"{layer.name}/bias"))
    output = builder.node("Gemm", operands, layer.name)
    return _activation(builder, layer.name, output, layer.activation.name, 2)


def _dropout(builder, layer, inputs, shapes):
    return builder.node("Identity", inputs, layer.name)


def _concatenate(builder, layer, inputs, shapes):
    return builder.node("Concat", inputs, layer.name, axis=nchw_axis(layer.axis, len(shapes[0])))


CONVERTERS = {
    "Conv2D": _conv2d, "BatchNormalization": _batch_normalization, "Activation": _activation_layer,
    "MaxPooling2D": _max_pooling, "AveragePooling2D": _average_pooling,
    "GlobalAveragePooling2D": _global_pooling("GlobalAveragePool"),
    "GlobalMaxPooling2D": _global_pooling("GlobalMaxPool"),
    "Flatten": _flatten, "Dense": _dense, "Dropout": _dropout, "Concatenate": _concatenate,
}


# ---------------------------------------------------------------------------
# the graph
# ---------------------------------------------------------------------------
def _convert_model(builder, model, input_names):
    """Add every layer call of ``model`` (nested models inlined); return its output names.

    ``input_names`` are the ONNX names of the model's inputs, already in the graph's layout.
    """
    names = dict(zip((id(tensor) for tensor in model.inputs), input_names))
    for node in model._nodes:
        if all(id(tensor) in names for tensor in node.output_tensors):
            continue                                            # a model input: given
        layer = node.layer
        inputs = [names[id(tensor)] for tensor in node.input_tensors]
        shapes = [tensor.shape for tensor in node.input_tensors]
        class_name = keras_class_name(layer)
        if class_name in ("Functional", "Sequential"):
            outputs = _convert_model(builder, layer, inputs)
        elif class_name in CONVERTERS:
            outputs = [CONVERTERS[class_name](builder, layer, inputs, shapes)]
        else:
            raise NotImplementedError(
                f"layer '{layer.name}' ({type(layer).__name__}) has no ONNX export (minidl exports "
                f"{', '.join(sorted(CONVERTERS))} and nested models)")
        for tensor, output in zip(node.output_tensors, outputs):
            names[id(tensor)] = output
    return [names[id(tensor)] for tensor in model.outputs]


def _value_info(onnx, name, shape):
    dims = ["batch"] + [dim if dim is not None else f"{name}_dim{index}" for index, dim in enumerate(shape[1:], 1)]
    return onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, dims)


def build_onnx_model(model, opset_version=DEFAULT_OPSET):
    """The ONNX ``ModelProto`` of ``model`` (checked with ``onnx.checker``), not yet written."""
    onnx = import_onnx()
    builder = GraphBuilder(onnx)
    graph_inputs, converted_inputs = [], []
    for tensor in model.inputs:
        name = builder.unique(tensor.name or "input")
        graph_inputs.append(_value_info(onnx, name, tensor.shape))
        if len(tensor.shape) == 4:
            name = builder.node("Transpose", [name], f"{name}/to_nchw", perm=NHWC_TO_NCHW)
        converted_inputs.append(name)
    outputs = _convert_model(builder, model, converted_inputs)
    graph_outputs = []
    for tensor, name in zip(model.outputs, outputs):
        final = builder.unique(f"{tensor.node.layer.name}_output")
        operator = ("Transpose", {"perm": NCHW_TO_NHWC}) if len(tensor.shape) == 4 else ("Identity", {})
        builder.nodes.append(onnx.helper.make_node(operator[0], [name], [final], name=final, **operator[1]))
        graph_outputs.append(_value_info(onnx, final, tensor.shape))
    graph = onnx.helper.make_graph(builder.nodes, model.name, graph_inputs, graph_outputs, builder.initializers)
    proto = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", opset_version)],
                                   producer_name="minidl")
    proto.ir_version = IR_VERSION
    onnx.checker.check_model(proto, full_check=True)
    return proto


def export_onnx(model, path, verbose=True, opset_version=DEFAULT_OPSET):
    """Write ``model`` as an ONNX file (atomically); return the path.

    Inputs and outputs are NHWC with a free batch dimension, as ``model.predict``
    takes and returns them.
    """
    onnx = import_onnx()
    proto = build_onnx_model(model, opset_version=opset_version)
    with atomic_write(path) as temporary_path:
        onnx.save(proto, str(temporary_path))
    if verbose:
        print(f"Saved the ONNX graph of '{model.name}' to '{path}': {len(proto.graph.node)} operators, "
              f"opset {opset_version}, input(s) {[each.name for each in proto.graph.input]} "
              f"(NHWC, any batch size)")
    return Path(path)
