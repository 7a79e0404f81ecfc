"""Convert a Keras legacy HDF5 weights file into minidl's format.

What the converter guarantees, in order:

1. **The source is the file it claims to be.** If its name is one of Keras's
   official files (:data:`OFFICIAL_FILES`), or ``expected_md5`` is given, its
   MD5 must match -- a truncated or tampered download is rejected with both
   sums in the message.
2. **Every array fits the architecture**, when the caller describes the model
   the file is for (``architecture=``, a :class:`ModelLayout`: plain data, as
   ``minidl.models.saving.model_layout(model)`` makes it). The file's weighted
   layers are matched by order against the model's (minidl/keras_semantics.md §7.2) and every
   shape is compared; the model's config is stored in the output. This
   package never builds a model itself: ``InceptionV3(weights='imagenet')``
   passes the layout of a freshly built InceptionV3 when it converts the
   official file (``minidl/applications/inception_v3.py``).
3. **No half-written output.** The destination is written through
   :func:`minidl.utils.atomic_write`; an exception or Ctrl-C leaves no file.

Example::

    from minidl.weights import convert
    result = convert("inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5",
                     "inception_v3_notop.minidl.h5")
    print(result)   # 188 layers with weights, 376 arrays, 21,802,784 numbers, md5 verified ...

    # the same, checking every shape against a model first:
    from minidl.models.saving import model_layout
    convert(source, destination, architecture=model_layout(my_model))

or from a shell: ``python -m minidl.weights convert SRC.h5 DST.h5``.
"""
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from minidl.utils.files import md5_of_file
from minidl.weights.keras_h5 import LayerWeights, WeightsFileError, read_keras_h5
from minidl.weights.matching import match_by_order
from minidl.weights.minidl_h5 import short_weight_names, write_minidl_h5


@dataclass(frozen=True)
class OfficialFile:
    """A weights file Keras publishes, with its checksum (minidl/keras_semantics.md §4.6)."""

    model_name: str
    include_top: bool
    filename: str
    md5: str
    size: int = None  # bytes, when known

    @property
    def description(self):
        top = "with the 1000-class top" if self.include_top else "without the top (notop)"
        return f"{self.model_name} ImageNet weights {top}"


OFFICIAL_FILES = {
    official.filename: official
    for official in (
        OfficialFile(
            "inception_v3", False,
            "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5",
            "bcbd6486424b2319ff4ef7d526e38f63", 87_910_968,
        ),
        OfficialFile(
            "inception_v3", True,
            "inception_v3_weights_tf_dim_ordering_tf_kernels.h5",
            "9a0d58056eeedaa3f26cb7ebd46da564",
        ),
    )
}


class ModelLayout(NamedTuple):
    """A model described as plain data, for checking a weights file against it.

    ``minidl.models.saving.model_layout(model)`` builds one; this package never
    imports the model classes.

    description : str
        Names the model in messages, e.g. ``"Model 'inception_v3'"``.
    layers : list of LayerWeights
        Every layer of ``model.layers``, in order, with its current arrays
        (only their shapes are read); weightless layers with an empty list.
    config_json : str or None
        The model's ``{"class_name", "config"}`` as JSON, stored in the
        converted file; None if the model cannot describe itself.
    """

    description: str
    layers: list
    config_json: str = None


class WeightsChecksumError(WeightsFileError):
    """A file's MD5 differs from the published one (corrupted or truncated)."""


@dataclass
class ConversionResult:
    """What :func:`convert` did; ``str()`` gives a one-paragraph summary."""

    destination: Path
    source_md5: str
    md5_verified: bool
    architecture_checked: bool
    architecture_note: str
    weighted_layers: int
    arrays: int
    numbers: int

    def __str__(self):
        md5_text = "md5 verified" if self.md5_verified else "no published md5 to compare"
        return (
            f"wrote '{self.destination}': {self.weighted_layers} layers with weights, "
            f"{self.arrays} arrays, {self.numbers:,} numbers; source md5 {self.source_md5} "
            f"— {md5_text}; architecture: {self.architecture_note}"
        )


def verify_md5(path, expected_md5):
    """Return the file's MD5; raise :class:`WeightsChecksumError` if it is not ``expected_md5``."""
    actual_md5 = md5_of_file(path)
    if expected_md5 is not None and actual_md5 != expected_md5.lower():
        size = Path(path).stat().st_size
        raise WeightsChecksumError(
            f"'{path}' ({size:,} bytes) has md5 {actual_md5}, expected {expected_md5}: "
            f"the file is corrupted, truncated or not the official one. Delete it and "
            f"download it again."
        )
    return actual_md5


def convert(src, dst, expected_md5=None, architecture=None):
    """Convert the Keras legacy HDF5 file ``src`` into minidl's format at ``dst``.

    Parameters
    ----------
    src, dst : str or PathLike
    expected_md5 : str, optional
        Required MD5 of ``src``. Defaults to the published MD5 when ``src``'s
        file name is an official Keras file; otherwise no check.
    architecture : ModelLayout, optional
        The model the file is for: every array is checked against it (by
        order, minidl/keras_semantics.md §7.2) before anything is written, and its config is stored
        in the output. None (or False): no check.

    Returns
    -------
    ConversionResult

    Raises
    ------
    WeightsChecksumError
        The source's md5 differs from the expected one.
    ValueError
        A layer count or a shape differs from ``architecture``'s.
    """
    if architecture is False:  # what older code passed to skip the check
        architecture = None
    if architecture is not None and not isinstance(architecture, ModelLayout):
        raise TypeError(
            f"convert(architecture=...) takes a ModelLayout (plain data), got "
            f"{type(architecture).__name__}; describe a model with "
            f"minidl.models.saving.model_layout(model)"
        )
    src, dst = Path(src), Path(dst)
    if not src.exists():
        raise FileNotFoundError(f"source weights file '{src}' does not exist")
    official = OFFICIAL_FILES.get(src.name)
    if expected_md5 is None and official is not None:
        expected_md5 = official.md5
    source_md5 = verify_md5(src, expected_md5)
    file_layers = read_keras_h5(src)

    if architecture is not None:
        match_by_order(architecture.layers, file_layers, str(src))  # raises on any mismatch
        note = f"checked against {architecture.description}"
        architecture_json = architecture.config_json
    else:
        note = "not checked (no architecture given)"
        architecture_json = None

    layers = [
        LayerWeights(layer.name, list(zip(short_weight_names(layer.name, layer.weight_names), layer.arrays)))
        for layer in file_layers
    ]
    dst.parent.mkdir(parents=True, exist_ok=True)
    write_minidl_h5(dst, layers, architecture=architecture_json, source_md5=source_md5, source_file=src.name)
    weighted = [layer for layer in layers if layer.weights]
    return ConversionResult(
        destination=dst,
        source_md5=source_md5,
        md5_verified=expected_md5 is not None,
        architecture_checked=architecture is not None,
        architecture_note=note,
        weighted_layers=len(weighted),
        arrays=sum(len(layer.weights) for layer in weighted),
        numbers=sum(int(array.size) for layer in weighted for array in layer.arrays),
    )
