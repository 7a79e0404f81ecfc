"""Read any weights file minidl knows, whatever wrote it: the format is detected from the file.

=====================================================  ===================================
what the file has                                       format
=====================================================  ===================================
root attribute ``format = 'minidl-weights'``             ``'minidl'`` (``model.save_weights``)
root attribute ``format = 'minidl-model'`` and
a ``/model_weights`` group                               ``'minidl'`` (``model.save``)
root attribute ``layer_names`` (or ``/model_weights``
holding it)                                              ``'keras'`` (Keras legacy HDF5)
=====================================================  ===================================

Anything else -- a text file, a truncated download, a Keras 3 native
``.weights.h5`` -- is refused with a :class:`WeightsFileError` that names the file.

Example::

    detect_format("inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5")   # 'keras'
    file_format, layers = read_weights_file("w.h5")                               # ('minidl', [...])
    layers[1].name, layers[1].weight_names                                        # ('conv2d_1', ['kernel'])
"""
from minidl.weights.keras_h5 import WeightsFileError, keras_weights_group, open_hdf5, read_layers_from_group
from minidl.weights.minidl_h5 import is_minidl_group, read_minidl_group
from minidl.weights.model_file import MODEL_FORMAT_NAME


def _decoded_attr(group, name):
    value = group.attrs.get(name)
    if isinstance(value, bytes):
        return value.decode("utf8")
    return None if value is None else str(value)


def _weights_group_and_format(h5file, path):
    """Find the group holding the weights and say which layout it uses."""
    if is_minidl_group(h5file):
        return h5file, "minidl"
    if _decoded_attr(h5file, "format") == MODEL_FORMAT_NAME and "model_weights" in h5file:
        return h5file["model_weights"], "minidl"
    keras_group = keras_weights_group(h5file)
    if keras_group is not None:
        return keras_group, "keras"
    hint = ""
    if "layers" in h5file or "vars" in h5file:
        hint = (
            " It looks like a Keras 3 native '.weights.h5' file, which minidl does not "
            "read; in Keras 3 save the model with model.save('model.h5') (legacy HDF5) instead."
        )
    raise WeightsFileError(
        f"'{path}' is an HDF5 file but not a weights file minidl knows: expected a root "
        f"attribute format='minidl-weights' (minidl) or 'layer_names' (Keras legacy "
        f"HDF5); found attributes {sorted(h5file.attrs.keys())} and groups "
        f"{sorted(h5file.keys())[:10]}.{hint}"
    )


def detect_format(path):
    """Return ``'minidl'`` or ``'keras'`` for a weights or model file; raise
    :class:`WeightsFileError` (naming the file) for anything else."""
    with open_hdf5(path) as h5file:
        return _weights_group_and_format(h5file, path)[1]


def read_weights_file(path):
    """Read any supported weights or model file: returns ``(format, [LayerWeights, ...])``,
    every layer in the file's order (weightless layers with an empty list)."""
    with open_hdf5(path) as h5file:
        group, file_format = _weights_group_and_format(h5file, path)
        try:
            if file_format == "minidl":
                return file_format, read_minidl_group(group, path)
            return file_format, read_layers_from_group(group, path)
        except WeightsFileError:
            raise
        except (OSError, KeyError, RuntimeError, ValueError) as error:
            raise WeightsFileError(
                f"cannot read the weights in '{path}': the file is truncated or "
                f"corrupted. h5py said: {error}"
            ) from error
