"""Reading and writing images: ``load_img``, ``img_to_array``, ``array_to_img``, ``save_img``.

Semantics of keras-preprocessing 1.1.2 (``minidl/keras_semantics.md`` §3):

* colour: 'rgb' converts anything that is not RGB with Pillow (L is replicated
  into 3 channels, RGBA drops alpha, a palette goes through the palette,
  16-bit 'I;16'/'I' images are **clipped** to 0..255 -- 256 and 1000 both
  become 255); 'grayscale' converts to L unless the image already is
  'L', 'I;16' or 'I' (16-bit stays 16-bit); 'rgba' converts to RGBA.
* resize: only if the size differs, with Pillow's **NEAREST** by default
  (the Keras default; 'bilinear', 'bicubic', 'lanczos', 'box', 'hamming' on request).
  Pillow's nearest source index for output i is ``int(x_i)`` with
  ``x_0 = s/2, x_{i+1} = x_i + s`` and ``s = in/out`` (minidl/keras_semantics.md §3.1).
* ``img_to_array`` gives float32 (H, W, C) in 0..255, no scaling; L gives (H, W, 1).

minidl-only additions:

* ``sixteen_bit='clip'`` (default, as Keras) | ``'rescale'`` (divide by 257, so
  0..65535 maps onto 0..255) | ``'minmax'`` (stretch the image's own min..max
  onto 0..255). X-rays are often 16-bit PNGs holding 10-12 significant bits:
  Keras's clipping turns nearly all of such an image white.
* ``.dcm`` files are read through :mod:`minidl.preprocessing.image.dicom`
  (needs ``pip install minidl[dicom]``).
* a file that cannot be decoded raises :class:`UnreadableImageError` naming it.

Example::

    img = load_img("chest.png", target_size=(299, 299))   # PIL image, RGB
    x = img_to_array(img)                                  # (299, 299, 3) float32, 0..255
"""
import io
import os
import warnings

import numpy as np
from PIL import Image as pil_image
from PIL import UnidentifiedImageError

from minidl.preprocessing.image.errors import UnreadableImageError

_PIL_INTERPOLATION_METHODS = {
    "nearest": pil_image.NEAREST,
    "bilinear": pil_image.BILINEAR,
    "bicubic": pil_image.BICUBIC,
    "hamming": pil_image.HAMMING,
    "box": pil_image.BOX,
    "lanczos": pil_image.LANCZOS,
}
_SIXTEEN_BIT_OPTIONS = ("clip", "rescale", "minmax")
_HIGH_BIT_DEPTH_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")
_COLOR_MODES = ("grayscale", "rgb", "rgba")


def check_target_size(target_size, where="load_img"):
    """Return ``target_size`` as a (height, width) tuple of positive ints, or raise ValueError."""
    if target_size is None:
        return None
    try:
        values = tuple(target_size)
    except TypeError:
        values = None
    if (values is None or len(values) != 2
            or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool)
                       and v > 0 for v in values)):
        raise ValueError(
            f"{where}: target_size must be two positive integers (height, width), "
            f"got {target_size!r}")
    return (int(values[0]), int(values[1]))


def _to_eight_bit(img, sixteen_bit):
    """Turn a 16/32-bit single-channel image into 8-bit L ('rescale' or 'minmax')."""
    values = np.asarray(img, dtype=np.float64)
    if sixteen_bit == "rescale":
        scaled = values / 257.0
    else:  # 'minmax'
        low, high = values.min(), values.max()
        scaled = (values - low) * (255.0 / (high - low)) if high > low else values * 0.0
    return pil_image.fromarray(np.clip(np.round(scaled), 0, 255).astype(np.uint8), "L")


def _open_image(path):
    """Open ``path`` (str, PathLike or file object) as a PIL image fully loaded in memory."""
    name = os.fspath(path) if isinstance(path, (str, os.PathLike)) else repr(path)
    if isinstance(path, (str, os.PathLike)) and name.lower().endswith(".dcm"):
        from minidl.preprocessing.image.dicom import load_dicom_image
        return load_dicom_image(name)
    try:
        if isinstance(path, (str, os.PathLike)):
            with open(name, "rb") as handle:  # read the bytes, as keras-preprocessing 1.1.2
                data = io.BytesIO(handle.read())
        else:
            data = path
        img = pil_image.open(data)
        img.load()  # decode now, so a truncated file fails here and names itself
    except FileNotFoundError:
        raise FileNotFoundError(f"load_img: no such image file: '{name}'") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise UnreadableImageError(
            f"load_img: cannot read image file '{name}' "
            f"(corrupt, truncated or not an image): {error}") from error
    return img


def load_img(path, grayscale=False, color_mode="rgb", target_size=None,
             interpolation="nearest", sixteen_bit="clip"):
    """Load an image file into a PIL image (keras-preprocessing 1.1.2, minidl/keras_semantics.md §3.1).

    Args:
        path: file path (or file object) of a PNG/JPEG/BMP/PPM/TIFF, or a ``.dcm``.
        grayscale: deprecated alias of ``color_mode='grayscale'``.
        color_mode: 'rgb' (default), 'grayscale' or 'rgba'.
        target_size: None or (height, width).
        interpolation: 'nearest' (default), 'bilinear', 'bicubic', 'lanczos', 'box', 'hamming'.
        sixteen_bit: minidl-only. 'clip' (Keras), 'rescale' (/257) or 'minmax'.

    Returns:
        A PIL image.
    """
    if grayscale is True:
        warnings.warn('grayscale is deprecated. Please use color_mode = "grayscale"')
        color_mode = "grayscale"
    if color_mode not in _COLOR_MODES:
        raise ValueError(f'load_img: color_mode must be "grayscale", "rgb", or "rgba", '
                         f"got {color_mode!r}")
    if sixteen_bit not in _SIXTEEN_BIT_OPTIONS:
        raise ValueError(f"load_img: sixteen_bit must be one of {_SIXTEEN_BIT_OPTIONS}, "
                         f"got {sixteen_bit!r}")
    target_size = check_target_size(target_size)
    img = _open_image(path)
    if sixteen_bit != "clip" and img.mode in _HIGH_BIT_DEPTH_MODES:
        img = _to_eight_bit(img, sixteen_bit)
    if color_mode == "grayscale":
        if img.mode not in ("L", "I;16", "I"):
            img = img.convert("L")
    elif color_mode == "rgba":
        if img.mode != "RGBA":
            img = img.convert("RGBA")
    elif img.mode != "RGB":
        img = img.convert("RGB")  # Pillow clips 16-bit values to 255 here (Keras behaviour)
    if target_size is not None:
        width_height = (target_size[1], target_size[0])
        if img.size != width_height:
            if interpolation not in _PIL_INTERPOLATION_METHODS:
                raise ValueError(
                    f"load_img: invalid interpolation method {interpolation!r}; supported "
                    f"methods are {', '.join(_PIL_INTERPOLATION_METHODS)}")
            img = img.resize(width_height, _PIL_INTERPOLATION_METHODS[interpolation])
    return img


def _defaults(data_format, dtype):
    """Keras 2's None defaults: ``image_data_format()`` and ``floatx()``."""
    return data_format or "channels_last", dtype or "float32"


def img_to_array(img, data_format="channels_last", dtype="float32"):
    """PIL image -> array (H, W, C) of ``dtype``, values unchanged (0..255 for 8-bit)."""
    data_format, dtype = _defaults(data_format, dtype)
    if data_format not in ("channels_first", "channels_last"):
        raise ValueError(f"img_to_array: unknown data_format {data_format!r}")
    x = np.asarray(img, dtype=dtype)
    if x.ndim == 3:
        if data_format == "channels_first":
            x = x.transpose(2, 0, 1)
    elif x.ndim == 2:
        x = x.reshape((1,) + x.shape if data_format == "channels_first" else x.shape + (1,))
    else:
        raise ValueError(f"img_to_array: unsupported image shape {x.shape}")
    return x


def array_to_img(x, data_format="channels_last", scale=True, dtype="float32"):
    """Array (H, W, C) with C in {1, 3, 4} -> PIL image (L, RGB or RGBA).

    With ``scale=True`` (Keras default) the array is shifted up if it has
    negative values, then divided by its maximum and multiplied by 255.
    """
    data_format, dtype = _defaults(data_format, dtype)
    x = np.asarray(x, dtype=dtype)
    if x.ndim != 3:
        raise ValueError("array_to_img: expected image array to have rank 3 (single image), "
                         f"got array with shape {x.shape}")
    if data_format not in ("channels_first", "channels_last"):
        raise ValueError(f"array_to_img: invalid data_format {data_format!r}")
    if data_format == "channels_first":
        x = x.transpose(1, 2, 0)
    if scale:
        x = x + max(-np.min(x), 0)
        x_max = np.max(x)
        if x_max != 0:
            x /= x_max
        x *= 255
    channels = x.shape[2]
    if channels == 4:
        return pil_image.fromarray(x.astype("uint8"), "RGBA")
    if channels == 3:
        return pil_image.fromarray(x.astype("uint8"), "RGB")
    if channels == 1:
        if np.max(x) > 255:  # 32-bit integer grayscale (mode "I")
            return pil_image.fromarray(x[:, :, 0].astype("int32"), "I")
        return pil_image.fromarray(x[:, :, 0].astype("uint8"), "L")
    raise ValueError(f"array_to_img: unsupported channel number {channels} "
                     f"(expected 1, 3 or 4; array shape {x.shape})")


def save_img(path, x, data_format="channels_last", file_format=None, scale=True, **kwargs):
    """Save an array (H, W, C) as an image file (format from the extension or ``file_format``)."""
    img = array_to_img(x, data_format=data_format, scale=scale)
    if img.mode == "RGBA" and file_format in ("jpg", "jpeg"):
        warnings.warn("The JPG format does not support RGBA images, converting to RGB.")
        img = img.convert("RGB")
    img.save(path, format=file_format, **kwargs)
