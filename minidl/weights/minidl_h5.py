"""minidl's own HDF5 weights format: simple, self-describing, documented.

Keras's legacy layout (:mod:`minidl.weights.keras_h5`) works but is full of
history: byte strings, attributes split into chunks, dataset names that repeat
the layer name. minidl's format keeps one idea per level, so that
``h5dump -A`` or ``h5py`` tells a learner everything (see ``weights/README.md``)::

    /                       attrs: format         = 'minidl-weights'
                                   format_version = 1
                                   minidl_version = '0.1.0'
                                   layer_names    = ['input_1', 'conv2d_1', ...]  (model.layers order)
                                   source_md5     = md5 of the Keras file it was converted from, or ''
                                   source_file    = that file's name, or ''
                                   architecture   = model config as JSON (optional)
    /weights/conv2d_1       attrs: weight_names = ['kernel']       (order of layer.weights)
    /weights/conv2d_1/kernel                     dataset (3, 3, 3, 32) float32
    /weights/batch_normalization_1/beta, .../moving_mean, .../moving_variance

Strings are HDF5 variable-length UTF-8 strings, so no attribute ever needs
splitting. Weight names are the parameter names without the layer prefix and
the ``:0`` suffix (``conv2d_1/kernel:0`` -> ``kernel``); a nested model's
weights keep their sub-layer prefix (``sequential_1`` -> ``dense_1/kernel``).

Example::

    write_minidl_h5("w.h5", [LayerWeights("dense_1", [("kernel", k), ("bias", b)])])
    read_minidl_h5("w.h5")[0].weight_names   # ['kernel', 'bias']
"""
import json
import re
import sys
from pathlib import Path

import h5py
import numpy as np

from minidl.utils.files import atomic_write
from minidl.weights.keras_h5 import (LayerWeights, WeightsFileError, open_hdf5, read_layer_group,
                                     translating_read_errors)

FORMAT_NAME = "minidl-weights"
FORMAT_VERSION = 1
_STRING = h5py.string_dtype("utf-8")


def minidl_version():
    """The version of the running minidl (``minidl.__version__``), or 'unknown'.

    Read from the package object Python already imported (a package is always
    imported before its submodules, so this module's parent is loaded) rather
    than with ``import minidl``: ``minidl/__init__.py`` imports the models, and
    the file formats must not depend on the models, not even through the root.
    """
    package = sys.modules.get("minidl")
    version = getattr(package, "__version__", None)
    return str(version) if version else "unknown"


def short_weight_names(layer_name, weight_names):
    """Drop the ``<layer_name>/`` prefix and the ``:0`` suffix of each weight name.

    ``['conv2d_1/kernel:0']`` in layer ``conv2d_1`` -> ``['kernel']``. If two
    names would collide (``a:0`` and ``a:1``), the full names are kept.
    """
    shortened = []
    for name in weight_names:
        short = re.sub(r":\d+$", "", name)
        if short.startswith(layer_name + "/"):
            short = short[len(layer_name) + 1:]
        shortened.append(short or name)
    if len(set(shortened)) != len(shortened):
        return list(weight_names)
    return shortened


def _string_array(values):
    return np.array([str(value) for value in values], dtype=_STRING)


def is_minidl_group(group):
    """True when ``group`` carries the root attribute ``format='minidl-weights'``."""
    value = group.attrs.get("format")
    if isinstance(value, (bytes, np.bytes_)):
        value = value.decode("utf8")
    return value == FORMAT_NAME


def write_minidl_group(group, layers, architecture=None, source_md5=None, source_file=None):
    """Write ``layers`` (list of :class:`LayerWeights`, every model layer in
    order, weightless ones with an empty list) into an open h5py group."""
    layer_names = [name for name, _ in layers]
    duplicates = sorted({name for name in layer_names if layer_names.count(name) > 1})
    if duplicates:
        raise ValueError(f"layer names must be unique in a weights file, repeated: {duplicates}")
    group.attrs["format"] = FORMAT_NAME
    group.attrs["format_version"] = FORMAT_VERSION
    group.attrs["minidl_version"] = minidl_version()
    group.attrs["layer_names"] = _string_array(layer_names)
    group.attrs["source_md5"] = source_md5 or ""
    group.attrs["source_file"] = source_file or ""
    if architecture is not None:
        if not isinstance(architecture, str):
            architecture = json.dumps(architecture)
        group.attrs["architecture"] = architecture
    weights_group = group.create_group("weights")
    for layer_name, weights in layers:
        layer_group = weights_group.create_group(layer_name)
        names = [weight_name for weight_name, _ in weights]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"layer '{layer_name}' has repeated weight names {repeated}")
        layer_group.attrs["weight_names"] = _string_array(names)
        for weight_name, array in weights:
            layer_group.create_dataset(weight_name, data=np.asarray(array))


def read_minidl_group(group, path="<file>"):
    """Read a minidl-format group into a list of :class:`LayerWeights`."""
    version = int(group.attrs.get("format_version", 0))
    if version > FORMAT_VERSION:
        raise WeightsFileError(
            f"'{path}' uses minidl weights format version {version}, but this minidl "
            f"reads versions up to {FORMAT_VERSION}: upgrade minidl"
        )
    layers = []
    for layer_name in group.attrs["layer_names"]:
        layer_name = _decode(layer_name)
        layer_group = group["weights"].get(layer_name)
        if layer_group is None:
            raise WeightsFileError(
                f"'{path}' lists layer '{layer_name}' but has no group '/weights/{layer_name}'"
            )
        layers.append(read_layer_group(layer_group, layer_name, path))
    return layers


def read_minidl_attributes(group):
    """The root attributes as a dict; ``architecture`` is parsed from JSON (or None)."""
    architecture = group.attrs.get("architecture")
    return {
        "format": FORMAT_NAME,
        "format_version": int(group.attrs.get("format_version", 0)),
        "minidl_version": _decode(group.attrs.get("minidl_version", "unknown")),
        "layer_names": [_decode(name) for name in group.attrs["layer_names"]],
        "source_md5": _decode(group.attrs.get("source_md5", "")),
        "source_file": _decode(group.attrs.get("source_file", "")),
        "architecture": json.loads(_decode(architecture)) if architecture is not None else None,
    }


def _decode(value):
    return value.decode("utf8") if isinstance(value, (bytes, np.bytes_)) else str(value)


def write_minidl_h5(path, layers, architecture=None, source_md5=None, source_file=None):
    """Write a minidl-format weights file atomically (never a half-written file).

    Parameters
    ----------
    path : str or PathLike
    layers : list of LayerWeights or (layer_name, [(weight_name, array), ...])
        Every layer in ``model.layers`` order; weightless layers with ``[]``.
    architecture : dict or str, optional
        The model's config (``model.get_config()``), stored as JSON.
    source_md5, source_file : str, optional
        Provenance when the weights were converted from a Keras file.
    """
    layers = [LayerWeights(name, list(weights)) for name, weights in layers]
    with atomic_write(path) as temp_path:
        with h5py.File(temp_path, "w") as h5file:
            write_minidl_group(h5file, layers, architecture, source_md5, source_file)
    return Path(path)


def read_minidl_h5(path):
    """Read a minidl-format weights file into a list of :class:`LayerWeights`."""
    with open_hdf5(path) as h5file:
        if not is_minidl_group(h5file):
            raise WeightsFileError(
                f"'{path}' is not a minidl weights file (root attribute format is "
                f"{h5file.attrs.get('format')!r}, expected '{FORMAT_NAME}')"
            )
        with translating_read_errors(path):
            return read_minidl_group(h5file, path)


def read_minidl_h5_attributes(path):
    """Root attributes of a minidl weights file (see :func:`read_minidl_attributes`)."""
    with open_hdf5(path) as h5file:
        if not is_minidl_group(h5file):
            raise WeightsFileError(f"'{path}' is not a minidl weights file")
        return read_minidl_attributes(h5file)
