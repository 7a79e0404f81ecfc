"""Output size and padding of a sliding window, exactly as TensorFlow computes them.

minidl/keras_semantics.md §4.1: 'valid' output = floor((n - k) / s) + 1 with no padding;
'same' output = ceil(n / s), padded with ``total = max((out - 1)*s + k - n, 0)`` cells,
``total // 2`` before and the rest after. When ``total`` is odd the extra cell goes to
the bottom / right (TensorFlow's asymmetric SAME; PyTorch and Caffe differ here).

Worked examples from InceptionV3: 299 with a 3x3 'valid' window and stride 2
gives floor(296 / 2) + 1 = 149; 147 with a 3x3 'same' conv, stride 1, gives
147 with one cell of padding on each side; 4 with a 3x3 'same' window and
stride 2 gives ceil(4 / 2) = 2 and total = (2 - 1)*2 + 3 - 4 = 1 cell of
padding, all of it after (0 before, 1 after).

Example::

    >>> output_size_and_padding(4, kernel=3, stride=2, padding="same")
    (2, 0, 1)
    >>> conv_geometry((5, 299, 299, 3), (3, 3), (2, 2), "valid")
    (149, 149, ((0, 0), (0, 0)))
"""


def output_size_and_padding(in_size, kernel, stride, padding):
    """Return ``(out_size, pad_before, pad_after)`` for one spatial axis.

    in_size: input length n; kernel: window length k; stride: step s (>= 1);
    padding: 'valid' or 'same' (case-insensitive).
    """
    if not isinstance(padding, str) or padding.lower() not in ("valid", "same"):
        raise ValueError(f"minidl/kernels/geometry.py: padding must be 'valid' or 'same', got {padding!r}")
    padding = padding.lower()
    in_size, kernel, stride = int(in_size), int(kernel), int(stride)
    if kernel < 1 or stride < 1:
        raise ValueError(
            "minidl/kernels/geometry.py: kernel and stride must be >= 1, "
            f"got kernel={kernel}, stride={stride}"
        )
    if padding == "valid":
        out_size = (in_size - kernel) // stride + 1
        if in_size < kernel or out_size < 1:
            raise ValueError(
                f"minidl/kernels/geometry.py: 'valid' window of size {kernel} does not fit "
                f"in an input of size {in_size} (output size would be {out_size}; "
                f"the input must be at least {kernel})"
            )
        return out_size, 0, 0
    if in_size < 1:
        raise ValueError(
            f"minidl/kernels/geometry.py: input size must be >= 1 for 'same' padding, got {in_size}"
        )
    out_size = -(-in_size // stride)  # ceil(n / s) with integers only
    total = max((out_size - 1) * stride + kernel - in_size, 0)
    pad_before = total // 2
    return out_size, pad_before, total - pad_before


def conv_geometry(input_shape, kernel_size, strides, padding):
    """Return ``(out_h, out_w, ((top, bottom), (left, right)))`` for an NHWC input.

    input_shape: (N, H, W, C) (only H and W are used); kernel_size: (KH, KW);
    strides: (SH, SW); padding: 'valid' or 'same'.
    """
    if len(input_shape) != 4:
        raise ValueError(
            "minidl/kernels/geometry.py: conv_geometry expects an NHWC input shape "
            f"(N, H, W, C), got {tuple(input_shape)}"
        )
    kernel_h, kernel_w = kernel_size
    stride_h, stride_w = strides
    out_h, top, bottom = output_size_and_padding(input_shape[1], kernel_h, stride_h, padding)
    out_w, left, right = output_size_and_padding(input_shape[2], kernel_w, stride_w, padding)
    return out_h, out_w, ((top, bottom), (left, right))


def padded_output_size(input_shape, kernel_size, strides, pads, where="kernel"):
    """Return ``(out_h, out_w)`` of a window sliding over an NHWC input padded by ``pads``.

    This is the inverse bookkeeping used by every kernel: given explicit
    ``pads = ((top, bottom), (left, right))`` (as returned by :func:`conv_geometry`),
    ``out = (n + before + after - k) // s + 1`` on each axis. ``where`` names the caller
    in error messages.
    """
    if len(input_shape) != 4:
        raise ValueError(
            f"{where}: expected an NHWC array (N, H, W, C), got shape {tuple(input_shape)}"
        )
    (top, bottom), (left, right) = pads
    kernel_h, kernel_w = kernel_size
    stride_h, stride_w = strides
    out_h = (input_shape[1] + top + bottom - kernel_h) // stride_h + 1
    out_w = (input_shape[2] + left + right - kernel_w) // stride_w + 1
    if out_h < 1 or out_w < 1:
        raise ValueError(
            f"{where}: window {tuple(kernel_size)} with pads {tuple(map(tuple, pads))} does not "
            f"fit in input of shape {tuple(input_shape)} (output would be {out_h}x{out_w})"
        )
    return out_h, out_w
