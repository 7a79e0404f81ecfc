"""Weight files: Keras's legacy HDF5, minidl's own format, the whole-model file,
conversion, download.

This package reads and writes *files* from plain data -- lists of
:class:`LayerWeights` (a layer's name and its ``(weight_name, array)`` pairs),
JSON configs, optimizer state -- and never imports the model classes. Saving
and loading a *model* is ``minidl/models/saving.py``, which turns a model into
that data and back; the ``Model`` methods call it.

=============================================  ===========================================
function                                       what it does
=============================================  ===========================================
``read_weights_file(path)``                    any supported file -> ``(format, layers)``
``detect_format(path)``                        ``'minidl'`` or ``'keras'`` (minidl/keras_semantics.md §7)
``read_minidl_h5`` / ``write_minidl_h5``       minidl's format (``model.save_weights``)
``read_keras_h5`` / ``write_keras_h5``         Keras's legacy HDF5 layout
``read_model_file`` / ``write_model_file``     the whole-model file (``model.save``)
``match_layers(model_layers, file_layers,      which file arrays go into which model
by_name=False, skip_mismatch=False)``          layer, every shape checked (minidl/keras_semantics.md §7.2-7.3)
``convert(src, dst, expected_md5=None,         Keras file -> minidl file, md5 checked,
architecture=None)``                           and shapes if given a :class:`ModelLayout`
``fetch_weights(name, include_top, ...)``      cache, download, verify, convert
=============================================  ===========================================

The model-level functions live next to the models:

=============================================  ===========================================
``model.save_weights(path)``                   ``minidl.models.saving.save_weights``
``model.load_weights(path, by_name=False,      ``minidl.models.saving.load_weights``
skip_mismatch=False)``
``model.save(path)``                           ``minidl.models.saving.save_model``
``minidl.models.load_model(path)``             ``minidl.models.saving.load_model``
export for ``keras_model.load_weights``        ``minidl.models.saving.save_keras_h5(model, path)``
=============================================  ===========================================

Every write goes through :func:`minidl.utils.atomic_write`, so an
interrupted save never leaves a half-written file. The formats are described
in ``weights/README.md``; the command line is ``python -m minidl.weights``.

Example::

    from minidl.weights import read_weights_file
    file_format, layers = read_weights_file("my_weights.h5")
    [(layer.name, [array.shape for array in layer.arrays]) for layer in layers if layer.weights]
"""
from minidl.weights.convert import (
    OFFICIAL_FILES,
    ConversionResult,
    ModelLayout,
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
from minidl.weights.matching import match_layers
from minidl.weights.minidl_h5 import read_minidl_h5, read_minidl_h5_attributes, write_minidl_h5
from minidl.weights.model_file import ModelFile, read_model_file, write_model_file
from minidl.weights.reading import detect_format, read_weights_file

__all__ = [
    "ConversionResult", "DEFAULT_BASE_URLS", "LayerWeights", "ModelFile", "ModelLayout",
    "OFFICIAL_FILES", "OfficialFile", "WeightsChecksumError", "WeightsFileError",
    "WeightsUnavailableError", "convert", "detect_format", "fetch_weights", "match_layers",
    "read_keras_h5", "read_minidl_h5", "read_minidl_h5_attributes", "read_model_file",
    "read_weights_file", "weights_cache_dir", "write_keras_h5", "write_minidl_h5",
    "write_model_file",
]
