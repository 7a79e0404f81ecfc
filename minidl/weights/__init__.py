"""Weight files: Keras's legacy HDF5, minidl's own format, conversion, download.

The public functions, and who calls them:

==========================================  ===========================================
``save_weights(model, path)``               ``Model.save_weights``: minidl's format
``load_weights(model, path, by_name=False,  ``Model.load_weights``: minidl or Keras legacy
skip_mismatch=False)``                      HDF5, detected from the file (spec §7)
``save_keras_h5(model, path)``              export for ``keras_model.load_weights(path)``
``save_model(model, path)``                 ``Model.save``: architecture + weights + optimizer
``load_model(path, custom_objects=None)``   ``minidl.models.load_model``
``convert(src, dst, expected_md5=None,      Keras file -> minidl file, md5 and shapes checked
architecture=None)``
``fetch_weights(name, include_top, ...)``   ``weights='imagenet'``: cache, download, convert
==========================================  ===========================================

Every write goes through :func:`minidl.utils.atomic_write`, so an
interrupted save never leaves a half-written file. The formats are described
in ``weights/README.md``; the command line is ``python -m minidl.weights``.

Example::

    from minidl.weights import save_weights, load_weights
    save_weights(model, "my_weights.h5")
    load_weights(model, "my_weights.h5")
"""
from minidl.weights.convert import (
    OFFICIAL_FILES,
    ConversionResult,
    OfficialFile,
    WeightsChecksumError,
    convert,
)
from minidl.weights.download import (
    DEFAULT_BASE_URLS,
    WeightsUnavailableError,
    fetch_weights,
    weights_cache_dir,
)
from minidl.weights.keras_h5 import LayerWeights, WeightsFileError, read_keras_h5, write_keras_h5
from minidl.weights.minidl_h5 import read_minidl_h5, read_minidl_h5_attributes, write_minidl_h5
from minidl.weights.model_file import load_model, save_model
from minidl.weights.model_io import (
    detect_format,
    load_layer_weights,
    load_weights,
    read_weights_file,
    save_keras_h5,
    save_weights,
)

__all__ = [
    "ConversionResult", "DEFAULT_BASE_URLS", "LayerWeights", "OFFICIAL_FILES", "OfficialFile",
    "WeightsChecksumError", "WeightsFileError", "WeightsUnavailableError", "convert",
    "detect_format", "fetch_weights", "load_layer_weights", "load_model", "load_weights",
    "read_keras_h5", "read_minidl_h5", "read_minidl_h5_attributes", "read_weights_file",
    "save_keras_h5", "save_model", "save_weights", "weights_cache_dir", "write_keras_h5",
    "write_minidl_h5",
]
