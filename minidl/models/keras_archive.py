"""Keras 3's ``.keras`` file, as plain data: a zip of three members.

``model.save("model.keras")`` in Keras 3 writes a zip archive (stored, not
compressed) holding::

    metadata.json      {"keras_version": "3.15.1", "date_saved": "2025-01-01@12:00:00"}
    config.json        the model's architecture: {"module", "class_name", "config",
                       "registered_name", "build_config", "compile_config"}
                       (``minidl/models/keras_config.py`` reads and writes it)
    model.weights.h5   every variable, in a tree that follows the model's attributes:

        /vars                                   attrs: name = 'tiny_workshop'   (the model)
        /layers/input_layer/vars                attrs: name = 'image'           (no datasets)
        /layers/conv2d/vars/0                   the first Conv2D's kernel
        /layers/conv2d_1/vars/0, .../1          the second Conv2D's kernel and bias
        /layers/batch_normalization/vars/0..3   gamma, beta, moving_mean, moving_variance
        /layers/sequential/layers/dense/vars/0  a layer inside a nested Sequential
        /optimizer/vars/0, 1, 2, ...            iteration, learning_rate, then Adam's m, v per weight

A layer's group is named after its *class*, not its name: the snake-case class
name (``BatchNormalization`` -> ``batch_normalization``), with ``_1``, ``_2``, ...
for the second, third, ... layer of that class in ``model.layers`` order. The
layer's own name is only an attribute of its ``vars`` group. Inside ``vars`` the
variables are numbered in the layer's weight order (trainable ones first).

This module only reads and writes that file; it never sees a model. The
variables travel as a dict ``{group path: VariableGroup(name, arrays)}``, with
``""`` for the model's own group. Example::

    write_keras_archive("m.keras", config, {"": VariableGroup("m", []),
                                            "layers/dense": VariableGroup("dense", [kernel, bias])})
    archive = read_keras_archive("m.keras")
    archive.variables["layers/dense"].arrays[0].shape
"""
import io
import json
import re
import zipfile
from datetime import datetime
from pathlib import Path
from typing import NamedTuple

import h5py
import numpy as np

from minidl.utils.files import atomic_write

CONFIG_MEMBER = "config.json"
METADATA_MEMBER = "metadata.json"
WEIGHTS_MEMBER = "model.weights.h5"

# What minidl writes into metadata.json as "keras_version": the Keras 3 release whose
# files minidl's were checked against (tests/fixtures/make_keras3_fixture.py).
KERAS_VERSION_WRITTEN = "3.15.1"


class KerasArchiveError(OSError):
    """A file that is not a readable ``.keras`` archive."""


class VariableGroup(NamedTuple):
    """One ``vars`` group of ``model.weights.h5``: the object's name and its arrays in order."""

    name: str
    arrays: list


class KerasArchive(NamedTuple):
    """What :func:`read_keras_archive` returns."""

    config: dict        # config.json
    metadata: dict      # metadata.json ({} if absent)
    variables: dict     # {"layers/conv2d": VariableGroup(...), ...}


def snake_case(class_name):
    """Keras's ``to_snake_case``: ``'BatchNormalization'`` -> ``'batch_normalization'``,
    ``'Conv2D'`` -> ``'conv2d'``, ``'GlobalAveragePooling2D'`` -> ``'global_average_pooling2d'``."""
    name = re.sub(r"\W+", "", class_name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def group_names(class_names):
    """The group name of each object of a list, as Keras numbers them: the snake-case
    class name, then ``_1``, ``_2``, ... for the later objects of the same class.

    Example: ``['Conv2D', 'Conv2D', 'Dense']`` -> ``['conv2d', 'conv2d_1', 'dense']``.
    """
    seen, names = {}, []
    for class_name in class_names:
        base = snake_case(class_name)
        if base in seen:
            seen[base] += 1
            names.append(f"{base}_{seen[base]}")
        else:
            seen[base] = 0
            names.append(base)
    return names


# ---------------------------------------------------------------------------
# writing
# ---------------------------------------------------------------------------
def keras_metadata():
    """metadata.json as Keras writes it (minidl's name is added: Keras ignores extra keys)."""
    return {"keras_version": KERAS_VERSION_WRITTEN,
            "date_saved": datetime.now().strftime("%Y-%m-%d@%H:%M:%S"),
            "written_by": "minidl"}


def _weights_file_bytes(variables):
    """``model.weights.h5`` in memory: one ``<path>/vars`` group per entry, parents first."""
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as h5file:
        for path in sorted(variables, key=lambda p: (p.count("/"), p)):
            group = h5file.require_group(f"{path}/vars" if path else "vars")
            group.attrs["name"] = variables[path].name
            for index, array in enumerate(variables[path].arrays):
                group.create_dataset(str(index), data=np.asarray(array))
    return buffer.getvalue()


def write_keras_archive(path, config, variables, metadata=None):
    """Write a ``.keras`` file atomically (an error or Ctrl-C leaves no file behind).

    ``config`` is config.json as a dict, ``variables`` a ``{path: VariableGroup}``
    dict (see the module docstring). The members are stored uncompressed, in Keras's
    order: metadata, config, weights.
    """
    weights = _weights_file_bytes(variables)
    with atomic_write(path) as temporary_path:
        with zipfile.ZipFile(temporary_path, "w", compression=zipfile.ZIP_STORED) as archive:
            archive.writestr(METADATA_MEMBER, json.dumps(metadata or keras_metadata()))
            archive.writestr(CONFIG_MEMBER, json.dumps(config))
            archive.writestr(WEIGHTS_MEMBER, weights)
    return Path(path)


# ---------------------------------------------------------------------------
# reading
# ---------------------------------------------------------------------------
def is_keras_archive(path):
    """True if ``path`` is a zip file with a ``config.json`` (what Keras 3 writes)."""
    try:
        with zipfile.ZipFile(path) as archive:
            return CONFIG_MEMBER in archive.namelist()
    except (OSError, zipfile.BadZipFile):
        return False


def _read_variables(h5file):
    """Every ``.../vars`` group as ``{parent path: VariableGroup}``, datasets in number order.

    Keras 2.13-2.15 wrote ``_layer_checkpoint_dependencies`` where Keras 3 writes
    ``layers``; such paths are renamed to Keras 3's.
    """
    variables = {}

    def visit(name, node):
        if isinstance(node, h5py.Group) and name.split("/")[-1] == "vars":
            parent = name[: -len("vars")].rstrip("/").replace("_layer_checkpoint_dependencies", "layers")
            keys = sorted(node.keys(), key=lambda key: int(key) if key.isdigit() else key)
            name_attribute = node.attrs.get("name", "")
            if isinstance(name_attribute, bytes):
                name_attribute = name_attribute.decode("utf8")
            variables[parent] = VariableGroup(str(name_attribute), [np.asarray(node[key]) for key in keys])

    h5file.visititems(visit)
    return variables


def read_keras_archive(path):
    """Read a ``.keras`` file written by Keras 3 (or by minidl) into a :class:`KerasArchive`."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"model file '{path}' does not exist")
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.namelist()
            if CONFIG_MEMBER not in members:
                raise KerasArchiveError(f"'{path}' is a zip file but not a .keras model: it has no "
                                        f"{CONFIG_MEMBER} (members: {members[:5]})")
            config = json.loads(archive.read(CONFIG_MEMBER))
            metadata = json.loads(archive.read(METADATA_MEMBER)) if METADATA_MEMBER in members else {}
            if WEIGHTS_MEMBER not in members:
                raise KerasArchiveError(
                    f"'{path}' has no {WEIGHTS_MEMBER} (members: {members}); minidl reads the HDF5 "
                    f"weights Keras writes by default, not model.save(..., weights_format='npz') "
                    f"nor sharded weights")
            with h5py.File(io.BytesIO(archive.read(WEIGHTS_MEMBER)), "r") as h5file:
                variables = _read_variables(h5file)
    except zipfile.BadZipFile as error:
        raise KerasArchiveError(f"cannot read '{path}' as a .keras file: it is not a zip archive "
                                f"(truncated, or not written by model.save?): {error}") from error
    except (OSError, KeyError, ValueError) as error:
        if isinstance(error, (KerasArchiveError, FileNotFoundError)):
            raise
        raise KerasArchiveError(f"cannot read '{path}' as a .keras file: {error}") from error
    return KerasArchive(config, metadata, variables)
