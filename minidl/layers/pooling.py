"""MaxPooling2D and AveragePooling2D: summarise each window of a feature map.

Shapes: (N, H, W, C) -> (N, OH, OW, C), OH/OW as for Conv2D ('valid' or
TensorFlow's 'same'). ``strides`` defaults to ``pool_size``.

Max pooling::

    y[n, i, j, c] = max over the window of x
    dL/dx: each dL/dy goes entirely to the window's maximum; on ties, to the
           first maximum in row-major order (TensorFlow's CPU kernel).

Average pooling::

    y[n, i, j, c] = (sum over the in-bounds cells of the window) / (their count)
    dL/dx: each dL/dy is spread evenly over those cells.

With 'same' padding the count excludes padded cells (4 at a corner of a 3x3
window, 6 on an edge, 9 inside), as TensorFlow does and PyTorch does not by
default. The operations: ``kernels.max_pool_forward`` and the others
(``minidl/kernels/reference/pooling.py``).

Example::

    y = MaxPooling2D((3, 3), strides=(2, 2))(np.random.rand(1, 147, 147, 64))  # (1, 73, 73, 64)
"""
from minidl import kernels
from minidl.kernels.geometry import conv_geometry
from minidl.layers.base import Layer
from minidl.layers.conv import check_data_format, normalize_padding, normalize_tuple
from minidl.layers.input_spec import InputSpec


class _Pooling2D(Layer):
    def __init__(self, pool_size=(2, 2), strides=None, padding="valid", data_format=None, **kwargs):
        super().__init__(**kwargs)
        owner = f"{type(self).__name__} '{self.name}'"
        self.pool_size = normalize_tuple(pool_size, 2, "pool_size", owner)
        self.strides = self.pool_size if strides is None else normalize_tuple(strides, 2, "strides", owner)
        self.padding = normalize_padding(padding, owner)
        check_data_format(data_format, type(self).__name__)
        self.input_spec = InputSpec(ndim=4)

    def compute_output_shape(self, input_shape):
        if input_shape[1] is None or input_shape[2] is None:
            return (input_shape[0], None, None, input_shape[3])
        try:
            out_h, out_w, _ = conv_geometry(input_shape, self.pool_size, self.strides, self.padding)
        except ValueError as error:
            raise ValueError(f"{type(self).__name__} '{self.name}': {error} (input shape {tuple(input_shape)})") from None
        return (input_shape[0], out_h, out_w, input_shape[3])

    def get_config(self):
        config = super().get_config()
        config.update(pool_size=list(self.pool_size), strides=list(self.strides), padding=self.padding)
        return config


class MaxPooling2D(_Pooling2D):
    def forward(self, inputs, training=False):
        _, _, pads = conv_geometry(inputs.shape, self.pool_size, self.strides, self.padding)
        output, argmax = kernels.max_pool_forward(inputs, self.pool_size, self.strides, pads)
        self.save_for_backward(argmax, inputs.shape)
        return output

    def backward(self, grad_output):
        argmax, input_shape = self.saved
        return kernels.max_pool_backward(grad_output, argmax, input_shape)


class AveragePooling2D(_Pooling2D):
    def forward(self, inputs, training=False):
        _, _, pads = conv_geometry(inputs.shape, self.pool_size, self.strides, self.padding)
        self.save_for_backward(inputs.shape, pads)
        return kernels.avg_pool_forward(inputs, self.pool_size, self.strides, pads)

    def backward(self, grad_output):
        input_shape, pads = self.saved
        return kernels.avg_pool_backward(grad_output, input_shape, self.pool_size, self.strides, pads)


MaxPool2D = MaxPooling2D
AvgPool2D = AveragePooling2D
