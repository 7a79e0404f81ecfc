"""InputSpec: what a layer accepts as input, checked before every call (as in Keras).

A layer states its expectations once; ``Layer.__call__`` and the functional API check
every input against them and raise an error that names the layer, the expectation and
what arrived (``Conv2D 'conv2d_3' expects input with 32 channels, got 3 (input shape
(5, 147, 147, 3))``).

* ``ndim``      -- the exact rank, batch axis included (4 for an NHWC image batch);
* ``min_ndim``  -- the smallest rank (Dense works on (batch, ..., features));
* ``axes``      -- sizes of given axes, e.g. ``{-1: 32}`` once the channels are known.

Example::

    class MyConv(Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.input_spec = InputSpec(ndim=4)                     # any NHWC batch
        def build(self, input_shape):
            self.input_spec = InputSpec(ndim=4, axes={-1: input_shape[-1]})   # now these channels
"""


def describe_shape(shape):
    """(None, 8, 8, 3) as Keras prints it; one-dimensional shapes keep their comma."""
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + (",)" if len(shape) == 1 else ")")


class InputSpec:
    def __init__(self, ndim=None, min_ndim=None, axes=None):
        self.ndim = ndim
        self.min_ndim = min_ndim
        self.axes = dict(axes or {})

    def check(self, shape, owner):
        """Raise a ValueError naming ``owner`` when ``shape`` does not meet this spec."""
        shape = tuple(shape)
        if self.ndim is not None and len(shape) != self.ndim:
            raise ValueError(f"{owner} expects input of rank {self.ndim} (batch included), got rank "
                             f"{len(shape)} (input shape {describe_shape(shape)})")
        if self.min_ndim is not None and len(shape) < self.min_ndim:
            raise ValueError(f"{owner} expects input of rank >= {self.min_ndim}, got rank {len(shape)} "
                             f"(input shape {describe_shape(shape)})")
        for axis, size in self.axes.items():
            given = shape[axis] if -len(shape) <= axis < len(shape) else None
            if size is not None and given is not None and given != size:
                what = "channels" if axis == -1 else f"entries on axis {axis}"
                raise ValueError(f"{owner} expects input with {size} {what}, got {given} "
                                 f"(input shape {describe_shape(shape)})")

    def __repr__(self):
        return f"InputSpec(ndim={self.ndim}, min_ndim={self.min_ndim}, axes={self.axes})"
