"""Write your own layer: LeakyReLU and DepthwiseConv2D, from scratch, then check them.

A minidl layer is a subclass of ``minidl.layers.Layer`` with five methods
(see ``minidl/layers/base.py``):

* ``build(input_shape)``             create the weights with ``self.add_weight`` once the shape is known;
* ``compute_output_shape(shape)``    so the functional API can build a graph without data;
* ``forward(inputs, training)``      compute the output; keep what backward needs with
                                     ``self.save_for_backward(...)``;
* ``backward(grad_output)``          read ``self.saved``, store dL/dparameter with
                                     ``self.store_grad(parameter, grad)``, return dL/dinput;
* ``get_config()``                   the constructor arguments, so a saved model can be rebuilt.

Calling the layer (``layer(x)``, or a model calling it) builds it on first use and
checks its input against ``self.input_spec`` (an ``InputSpec``: rank, channels). Read a
weight with ``self.value_of(parameter, like=inputs)``: it comes in the input's dtype, so a
float64 gradient check stays float64. ``store_grad`` refuses a gradient of the wrong
shape, naming the layer and the parameter.

Then the most important step: ``minidl.check_gradients(layer, x)`` compares
your backward with finite differences. Do it before you train anything.

Run:  python examples/custom_layer.py
"""
import sys
from pathlib import Path

import numpy as np

import minidl
from minidl.kernels import conv_geometry
from minidl.layers import Conv2D, Dense, GlobalAveragePooling2D, Input, InputSpec, Layer
from minidl.models import Model
from minidl.optimizers import Adam


class LeakyReLU(Layer):
    """y = x if x > 0 else alpha * x.  Backward: dL/dx = dL/dy * (1 if x > 0 else alpha).

    Shapes: any -> same. No weights.
    """

    def __init__(self, alpha=0.3, **kwargs):       # 0.3 is Keras's default
        super().__init__(**kwargs)
        self.alpha = float(alpha)

    def forward(self, inputs, training=False):
        positive = inputs > 0
        self.save_for_backward(positive)             # all backward needs: where x was positive
        return np.where(positive, inputs, inputs.dtype.type(self.alpha) * inputs)

    def backward(self, grad_output):
        (positive,) = self.saved
        return np.where(positive, grad_output, grad_output.dtype.type(self.alpha) * grad_output)

    def get_config(self):
        config = super().get_config()
        config["alpha"] = self.alpha
        return config


class DepthwiseConv2D(Layer):
    """A convolution that filters each channel on its own (depth multiplier 1).

    Shapes: input (N, H, W, C) -> output (N, OH, OW, C); kernel (KH, KW, C), bias (C,).
    OH, OW and the padding are those of Conv2D (``minidl/kernels/geometry.py``).

    Forward, with xp the zero-padded input::

        y[n, i, j, c] = sum_{kh, kw} xp[n, i*S + kh, j*S + kw, c] * K[kh, kw, c] + b[c]

    Backward, with g = dL/dy::

        dL/dK[kh, kw, c] = sum_{n, i, j} g[n, i, j, c] * xp[n, i*S + kh, j*S + kw, c]
        dL/db[c]         = sum_{n, i, j} g[n, i, j, c]
        dL/dxp[n, i*S + kh, j*S + kw, c] += g[n, i, j, c] * K[kh, kw, c]     (then drop the padding)

    As in ``minidl/kernels/reference/conv.py`` we loop over the KH*KW kernel
    offsets; for one offset, the cells read by all windows form one strided slice.
    """

    def __init__(self, kernel_size=3, strides=1, padding="valid", use_bias=True, **kwargs):
        super().__init__(**kwargs)
        self.kernel_size = (kernel_size, kernel_size) if isinstance(kernel_size, int) else tuple(kernel_size)
        self.strides = (strides, strides) if isinstance(strides, int) else tuple(strides)
        self.padding = padding
        self.use_bias = use_bias
        self.input_spec = InputSpec(ndim=4)            # NHWC: calling it on anything else is an error

    def build(self, input_shape):
        channels = input_shape[-1]
        self.input_spec = InputSpec(ndim=4, axes={-1: channels})   # now also these channels
        self.kernel = self.add_weight("depthwise_kernel", self.kernel_size + (channels,), "glorot_uniform")
        self.bias = self.add_weight("bias", (channels,), "zeros") if self.use_bias else None
        self.built = True

    def compute_output_shape(self, input_shape):
        if input_shape[1] is None or input_shape[2] is None:
            return (input_shape[0], None, None, input_shape[3])
        out_h, out_w, _ = conv_geometry(input_shape, self.kernel_size, self.strides, self.padding)
        return (input_shape[0], out_h, out_w, input_shape[3])

    def window(self, offset_h, offset_w, out_h, out_w):
        """The cells that kernel offset (offset_h, offset_w) reads, for every output pixel."""
        stride_h, stride_w = self.strides
        return (slice(None),
                slice(offset_h, offset_h + stride_h * (out_h - 1) + 1, stride_h),
                slice(offset_w, offset_w + stride_w * (out_w - 1) + 1, stride_w),
                slice(None))

    def forward(self, inputs, training=False):
        out_h, out_w, pads = conv_geometry(inputs.shape, self.kernel_size, self.strides, self.padding)
        padded = np.pad(inputs, ((0, 0), pads[0], pads[1], (0, 0)))
        kernel = self.value_of(self.kernel, like=inputs)
        output = np.zeros((inputs.shape[0], out_h, out_w, inputs.shape[3]), dtype=inputs.dtype)
        for kh in range(self.kernel_size[0]):
            for kw in range(self.kernel_size[1]):
                output += padded[self.window(kh, kw, out_h, out_w)] * kernel[kh, kw]
        if self.use_bias:
            output += self.value_of(self.bias, like=inputs)
        self.save_for_backward(padded, inputs.shape, pads)
        return output

    def backward(self, grad_output):
        padded, input_shape, pads = self.saved
        _, out_h, out_w, _ = grad_output.shape
        kernel = self.value_of(self.kernel, like=grad_output)
        grad_kernel = np.zeros(kernel.shape, dtype=grad_output.dtype)
        grad_padded = np.zeros_like(padded, dtype=grad_output.dtype)
        for kh in range(self.kernel_size[0]):
            for kw in range(self.kernel_size[1]):
                window = self.window(kh, kw, out_h, out_w)
                grad_kernel[kh, kw] = np.sum(grad_output * padded[window], axis=(0, 1, 2))
                grad_padded[window] += grad_output * kernel[kh, kw]
        self.store_grad(self.kernel, grad_kernel)
        if self.use_bias:
            self.store_grad(self.bias, grad_output.sum(axis=(0, 1, 2)))
        (top, _), (left, _) = pads
        height, width = input_shape[1:3]
        return grad_padded[:, top:top + height, left:left + width, :]   # padding gets no gradient

    def get_config(self):
        config = super().get_config()
        config.update(kernel_size=list(self.kernel_size), strides=list(self.strides),
                      padding=self.padding, use_bias=self.use_bias)
        return config


def build_model(size=32):
    inputs = Input(shape=(size, size, 1))
    x = Conv2D(8, 3, padding="same")(inputs)
    x = DepthwiseConv2D(3, strides=2, padding="same")(x)
    x = LeakyReLU(0.1)(x)
    x = Conv2D(8, 1)(x)
    x = LeakyReLU(0.1)(x)
    x = GlobalAveragePooling2D()(x)
    outputs = Dense(1, activation="sigmoid")(x)
    return Model(inputs, outputs)


def main():
    rng = np.random.default_rng(0)
    minidl.initializers.seed(0)      # the same weights, hence the same printout, on every run
    np.random.seed(0)
    failures = 0

    print("1. Gradient checks of the new layers (float64, random upstream gradient):")
    cases = [
        (LeakyReLU(0.2), rng.standard_normal((3, 4, 5))),
        (DepthwiseConv2D(3, padding="valid"), rng.standard_normal((2, 6, 6, 3))),
        (DepthwiseConv2D((1, 5), strides=2, padding="same"), rng.standard_normal((2, 5, 7, 2))),
    ]
    for layer, x in cases:
        report = minidl.check_gradients(layer, x)
        print(report)
        print(f"   -> {'ok' if report.passed(1e-6) else 'FAIL'}\n")
        failures += not report.passed(1e-6)

    print("2. The layers inside a Model: the graph's backward reaches them, and the whole model checks out.")
    # A small copy for the check: fewer ReLU-like kinks for a finite difference to straddle.
    report = minidl.check_gradients(build_model(size=8), rng.standard_normal((2, 8, 8, 1)), max_entries=30)
    print(f"   whole-model gradient check: max relative error {report.max_error:.2e} over "
          f"{len(report.rows)} arrays -> {'ok' if report.passed(1e-6) else 'FAIL'}")
    failures += not report.passed(1e-6)

    model = build_model()
    model.summary()

    print("\n3. get_config() lets the model be rebuilt from its description:")
    clone = Model.from_config(model.get_config(),
                              custom_objects={"LeakyReLU": LeakyReLU, "DepthwiseConv2D": DepthwiseConv2D})
    clone.set_weights(model.get_weights())
    x = rng.standard_normal((3, 32, 32, 1)).astype("float32")
    same = np.allclose(clone.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)
    print(f"   rebuilt model gives the same predictions: {same}")
    failures += not same

    print("\n4. And it trains: the loss goes down on the quickstart's stripes task (3 short epochs):")
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from quickstart import make_stripes
    x_train, y_train = make_stripes(256, seed=0)
    x_val, y_val = make_stripes(64, seed=1)
    model.compile(optimizer=Adam(learning_rate=0.01), loss="binary_crossentropy", metrics=["accuracy"])
    model.fit(x_train, y_train, batch_size=32, epochs=3, validation_data=(x_val, y_val), verbose=2)

    if failures:
        print(f"\n{failures} check(s) FAILED", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
