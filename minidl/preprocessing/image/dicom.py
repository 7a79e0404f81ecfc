"""DICOM (``.dcm``) reading for ``load_img`` and ``flow_from_directory`` (optional pydicom).

Keras has no DICOM support; this is a minidl addition. The pixel data becomes
an 8-bit PIL image and then follows exactly the colour/resize path of any PNG:

1. modality LUT: ``value * RescaleSlope + RescaleIntercept`` (e.g. CT -> Hounsfield units);
2. VOI: a VOI LUT sequence if present, else the first WindowCenter/WindowWidth with
   the DICOM linear formula (PS3.3 C.11.2.1.2), else the image's own min..max;
3. MONOCHROME1 (white = low values) is inverted so that bone is bright as usual;
4. the result is scaled to 0..255 and rounded to uint8 ('L'; RGB data stays 'RGB').

Without pydicom a ``.dcm`` file raises ImportError saying ``pip install minidl[dicom]``.

Example::

    img = load_img("CT_small.dcm", target_size=(299, 299))   # RGB PIL image
"""
import numpy as np
from PIL import Image as pil_image

from minidl.preprocessing.image.errors import UnreadableImageError

INSTALL_HINT = "pip install minidl[dicom]"


def pydicom_available():
    """True if pydicom can be imported (then '.dcm' joins the file white-list)."""
    try:
        import pydicom  # noqa: F401
    except ImportError:
        return False
    return True


def _first(value):
    """DICOM multi-valued attributes (e.g. several windows): take the first."""
    try:
        return float(value[0])
    except (TypeError, IndexError):
        return float(value)


def window_to_unit_range(values, center, width):
    """DICOM linear VOI window (PS3.3 C.11.2.1.2) mapping onto [0, 1]."""
    if width <= 1:  # degenerate window: a threshold at the centre
        return (values > center - 0.5).astype(np.float64)
    scaled = (values - (center - 0.5)) / (width - 1) + 0.5
    return np.clip(scaled, 0.0, 1.0)


def dicom_to_array(dataset):
    """pydicom dataset -> uint8 array (H, W) or (H, W, 3), display-ready."""
    pixels = dataset.pixel_array
    photometric = str(getattr(dataset, "PhotometricInterpretation", "MONOCHROME2")).upper()
    samples = int(getattr(dataset, "SamplesPerPixel", 1))
    if samples == 1 and pixels.ndim == 3:
        pixels = pixels[0]  # multi-frame: take the first frame
    if samples == 3:
        if pixels.ndim == 4:
            pixels = pixels[0]
        if photometric.startswith("YBR"):
            from pydicom.pixels import convert_color_space
            pixels = convert_color_space(pixels, photometric, "RGB")
        values = pixels.astype(np.float64)
        bits = int(getattr(dataset, "BitsStored", 8))
        if bits > 8:  # colour deeper than 8 bits: map the full range onto 0..255
            values = values * (255.0 / (2 ** bits - 1))
        return np.clip(np.round(values), 0, 255).astype(np.uint8)
    values = pixels.astype(np.float64)
    slope = float(getattr(dataset, "RescaleSlope", 1) or 1)
    intercept = float(getattr(dataset, "RescaleIntercept", 0) or 0)
    values = values * slope + intercept
    if "VOILUTSequence" in dataset:
        from pydicom.pixels import apply_voi_lut
        lut_values = apply_voi_lut(pixels, dataset).astype(np.float64)
        low, high = lut_values.min(), lut_values.max()
        unit = (lut_values - low) / (high - low) if high > low else lut_values * 0.0
    elif "WindowCenter" in dataset and "WindowWidth" in dataset:
        unit = window_to_unit_range(values, _first(dataset.WindowCenter),
                                    _first(dataset.WindowWidth))
    else:
        low, high = values.min(), values.max()
        unit = (values - low) / (high - low) if high > low else values * 0.0
    if photometric == "MONOCHROME1":
        unit = 1.0 - unit
    return np.round(unit * 255.0).astype(np.uint8)


def load_dicom_image(path):
    """Read a DICOM file into an 8-bit PIL image ('L' or 'RGB')."""
    try:
        import pydicom
    except ImportError:
        raise ImportError(
            f"Reading the DICOM file '{path}' needs the optional dependency pydicom: "
            f"{INSTALL_HINT}") from None
    try:
        dataset = pydicom.dcmread(path)
        array = dicom_to_array(dataset)
    except FileNotFoundError:
        raise FileNotFoundError(f"load_img: no such DICOM file: '{path}'") from None
    except Exception as error:  # pydicom raises many types for bad files
        raise UnreadableImageError(
            f"load_img: cannot read DICOM file '{path}': {error}") from error
    return pil_image.fromarray(array, "RGB" if array.ndim == 3 else "L")
