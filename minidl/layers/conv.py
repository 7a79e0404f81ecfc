"""Conv2D: a 2-D convolution (TensorFlow's cross-correlation, NHWC, HWIO kernels).

Shapes: input (N, H, W, C) -> output (N, OH, OW, F), with kernel (KH, KW, C, F).
'valid': OH = floor((H - KH) / SH) + 1. 'same': OH = ceil(H / SH), padding
max((OH-1)*SH + KH - H, 0) rows split top = total//2, bottom = the rest (TF's
asymmetric SAME: the extra row goes to the bottom, the extra column right).

Forward (im2col turns every KHxKWxC window into one row of a matrix, so the
convolution becomes one matrix product)::

    cols = im2col(x)                    # (N*OH*OW, KH*KW*C)
    z    = cols @ K.reshape(KH*KW*C, F) + b
    a    = activation(z)

Backward, given g = dL/da and G = dL/dz = g * activation'(z), where activation' is
written from the output a (``minidl/activations.py``), as a matrix (N*OH*OW, F)::

    dL/dK = cols^T G                    (reshaped to (KH, KW, C, F))
    dL/db = sum over N, OH, OW of G
    dL/dx = col2im(G K^T)               # col2im adds each window back in place

``kernels.conv2d_forward`` / ``conv2d_backward`` compute the products with im2col and
col2im: read them in ``minidl/kernels/reference/conv.py``.

Example::

    conv = Conv2D(32, (3, 3), strides=2, padding="valid", activation="relu")
    y = conv(np.random.rand(1, 299, 299, 3).astype("float32"))   # (1, 149, 149, 32)
"""
import numpy as np

from minidl import initializers, kernels
from minidl.kernels.geometry import conv_geometry
from minidl.layers.activation import ActivationMixin
from minidl.layers.base import Layer
from minidl.layers.input_spec import InputSpec


def normalize_tuple(value, n, name, owner):
    """3 -> (3, 3); (1, 7) stays; anything else is a clear error."""
    if isinstance(value, (int, np.integer)):
        value = (int(value),) * n
    value = tuple(value)
    if len(value) != n or not all(isinstance(v, (int, np.integer)) and v > 0 for v in value):
        raise ValueError(f"{owner}: `{name}` must be a positive integer or a tuple of {n} of them, got {value!r}")
    return tuple(int(v) for v in value)


def normalize_padding(padding, owner):
    padding = str(padding).lower()
    if padding not in ("valid", "same"):
        raise ValueError(f"{owner}: padding must be 'valid' or 'same', got {padding!r}")
    return padding


def check_data_format(data_format, owner):
    """None and 'channels_last' (NHWC) work; 'channels_first' (NCHW) is Keras's but not minidl's."""
    if data_format == "channels_first":
        raise NotImplementedError(f"{owner}(data_format='channels_first') is not implemented in minidl: "
                                  "minidl works on NHWC arrays (data_format='channels_last' or None)")
    if data_format not in (None, "channels_last"):
        raise ValueError(f"{owner}: data_format must be 'channels_last', 'channels_first' or None, "
                         f"got {data_format!r}")


class Conv2D(ActivationMixin, Layer):
    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid", data_format=None,
                 dilation_rate=(1, 1), activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros", **kwargs):
        super().__init__(**kwargs)
        owner = f"Conv2D '{self.name}'"
        if not isinstance(filters, (int, np.integer)) or filters <= 0:
            raise ValueError(f"{owner}: filters must be a positive integer, got {filters!r}")
        self.filters = int(filters)
        self.kernel_size = normalize_tuple(kernel_size, 2, "kernel_size", owner)
        self.strides = normalize_tuple(strides, 2, "strides", owner)
        self.padding = normalize_padding(padding, owner)
        check_data_format(data_format, "Conv2D")
        if normalize_tuple(dilation_rate, 2, "dilation_rate", owner) != (1, 1):
            raise NotImplementedError(f"Conv2D(dilation_rate={dilation_rate!r}) is not implemented in minidl")
        self._set_activation(activation)
        self.use_bias = bool(use_bias)
        self._kernel_initializer_name = kernel_initializer
        self._bias_initializer_name = bias_initializer
        self.input_spec = InputSpec(ndim=4)

    def build(self, input_shape):
        channels = input_shape[-1]
        if channels is None:
            raise ValueError(f"Conv2D '{self.name}': the channel dimension must be known, got {input_shape}")
        self.input_spec = InputSpec(ndim=4, axes={-1: channels})
        self.kernel = self.add_weight("kernel", self.kernel_size + (channels, self.filters),
                                      self._kernel_initializer_name)
        self.bias = self.add_weight("bias", (self.filters,), self._bias_initializer_name) if self.use_bias else None
        self.built = True

    def padding_for(self, input_shape):
        """``((top, bottom), (left, right))``: this layer's padding for an input of that shape."""
        return conv_geometry(input_shape, self.kernel_size, self.strides, self.padding)[2]

    def compute_output_shape(self, input_shape):
        if input_shape[1] is None or input_shape[2] is None:
            return (input_shape[0], None, None, self.filters)
        try:
            out_h, out_w, _ = conv_geometry(input_shape, self.kernel_size, self.strides, self.padding)
        except ValueError as error:
            raise ValueError(f"Conv2D '{self.name}': {error} (input shape {tuple(input_shape)})") from None
        return (input_shape[0], out_h, out_w, self.filters)

    def forward(self, inputs, training=False):
        pads = self.padding_for(inputs.shape)
        z = kernels.conv2d_forward(inputs, self.value_of(self.kernel, like=inputs), self.strides, pads)
        if self.use_bias:
            z += self.value_of(self.bias, like=inputs)
        output = self._activate(z)
        self.save_for_backward(inputs, output, pads)
        return output

    def backward(self, grad_output):
        inputs, output, pads = self.saved
        grad_z = self._activation_backward(grad_output, output)
        kernel = self.value_of(self.kernel, like=inputs)
        grad_input, grad_kernel = kernels.conv2d_backward(grad_z, inputs, kernel, self.strides, pads)
        self.store_grad(self.kernel, grad_kernel)
        if self.use_bias:
            self.store_grad(self.bias, grad_z.sum(axis=(0, 1, 2)))
        return grad_input

    def get_config(self):
        config = super().get_config()
        config.update(filters=self.filters, kernel_size=list(self.kernel_size), strides=list(self.strides),
                      padding=self.padding, activation=self.activation.name, use_bias=self.use_bias,
                      kernel_initializer=initializers.serialize(self._kernel_initializer_name),
                      bias_initializer=initializers.serialize(self._bias_initializer_name))
        return config
