"""Pair the layers of a weights file with the layers of a model, as Keras does (minidl/keras_semantics.md §7).

Both sides are plain data, lists of :class:`~minidl.weights.keras_h5.LayerWeights`,
so this module never sees a model: the caller (``minidl/models/saving.py``)
describes every layer of ``model.layers`` with its current arrays (only their
names and shapes are read) and assigns the arrays that come back.

**By order** (``by_name=False``, the default; how InceptionV3 loads its ImageNet
weights, minidl/keras_semantics.md §7.2). The model's layers *with weights*, in ``model.layers``
order, are zipped with the file's layers *with weights*, in the file's
``layer_names`` order. Names are ignored, so files written by tf.keras
(``conv2d``, ``conv2d_1``, ... one lower than Keras 2), by Keras 3 (weight names
such as ``kernel`` or ``vars/0``) or without the ``:0`` suffix load as long as
the order and the shapes agree::

    model layers with weights:  conv2d_1   batch_normalization_1   conv2d_2 ...
    file layers with weights:   conv2d_1   batch_normalization_1   conv2d_2 ...
                                (k-th with k-th; every array's shape is checked)

**By name** (``by_name=True``, minidl/keras_semantics.md §7.3). A file layer's arrays go into every
model layer with the same name; other model layers keep their values, other
file layers are ignored. With ``skip_mismatch=True`` a layer whose weight count
or shapes differ is skipped with a warning instead of raising.

Either way every shape is checked before anything is returned, so a file that
does not fit raises and the caller assigns nothing: the model stays as it was.

Example::

    model_layers = [LayerWeights("dense_1", [("dense_1/kernel:0", np.zeros((4, 2), np.float32))])]
    file_layers = [LayerWeights("dense_7", [("kernel", np.ones((4, 2), np.float32))])]
    match_layers(model_layers, file_layers)   # [(0, [array of ones (4, 2)])]
"""
import warnings
from collections import defaultdict


def match_layers(model_layers, file_layers, by_name=False, skip_mismatch=False, source="<memory>"):
    """Decide which file arrays go into which model layer; check every shape first.

    Parameters
    ----------
    model_layers : list of LayerWeights
        Every layer of ``model.layers``, in order, with its current arrays in
        ``layer.weights`` order (weightless layers with an empty list).
    file_layers : list of LayerWeights
        The layers of a weights file, in the file's order.
    by_name, skip_mismatch : bool
        As ``Model.load_weights`` (see the module docstring).
    source : str
        The file's path, named in every error message.

    Returns
    -------
    list of (int, list of arrays)
        ``(position, arrays)``: ``arrays`` go into the weights of
        ``model_layers[position]``, one array per weight, in order.

    Raises
    ------
    ValueError
        On any mismatch, naming the file, both layers and both shapes.
    """
    if skip_mismatch and not by_name:
        raise ValueError("skip_mismatch=True only makes sense with by_name=True (as in Keras)")
    if by_name:
        return match_by_name(model_layers, file_layers, skip_mismatch, source)
    return match_by_order(model_layers, file_layers, source)


def mismatch(position, model_layer, file_layer, source):
    """The error message for a model layer and a file layer that do not fit, or None if they do."""
    model_shapes = [tuple(array.shape) for array in model_layer.arrays]
    file_shapes = [tuple(array.shape) for array in file_layer.arrays]
    if len(model_shapes) != len(file_shapes):
        return (
            f"{position}model layer '{model_layer.name}' has {len(model_shapes)} weight(s) "
            f"{model_shapes}, but layer '{file_layer.name}' of '{source}' has "
            f"{len(file_shapes)} array(s) {file_shapes}"
        )
    for model_weight_name, model_shape, file_weight_name, file_shape in zip(
            model_layer.weight_names, model_shapes, file_layer.weight_names, file_shapes):
        if model_shape != file_shape:
            return (
                f"{position}shape mismatch: model layer '{model_layer.name}' weight "
                f"'{model_weight_name}' has shape {model_shape}, but layer "
                f"'{file_layer.name}' of '{source}' has '{file_weight_name}' with shape "
                f"{file_shape}"
            )
    return None


def match_by_order(model_layers, file_layers, source="<memory>"):
    """minidl/keras_semantics.md §7.2: zip the model's weighted layers with the file's weighted layers."""
    model_weighted = [(position, layer) for position, layer in enumerate(model_layers) if layer.weights]
    file_weighted = [layer for layer in file_layers if layer.weights]
    if len(model_weighted) != len(file_weighted):
        raise ValueError(
            f"You are trying to load a weight file containing {len(file_weighted)} layers "
            f"into a model with {len(model_weighted)} layers (counting layers with weights; "
            f"file '{source}'). First file layers: {[layer.name for layer in file_weighted[:5]]}; "
            f"first model layers: {[layer.name for _, layer in model_weighted[:5]]}."
        )
    matches = []
    for index, ((position, model_layer), file_layer) in enumerate(zip(model_weighted, file_weighted)):
        problem = mismatch(f"weighted layer #{index}: ", model_layer, file_layer, source)
        if problem:
            raise ValueError(problem + " (loading by order; layer names are not compared)")
        matches.append((position, file_layer.arrays))
    return matches


def match_by_name(model_layers, file_layers, skip_mismatch=False, source="<memory>"):
    """minidl/keras_semantics.md §7.3: each file layer goes into every model layer of the same name."""
    positions_by_name = defaultdict(list)
    for position, layer in enumerate(model_layers):
        positions_by_name[layer.name].append(position)
    matches = []
    for file_layer in file_layers:
        if not file_layer.weights:
            continue
        for position in positions_by_name.get(file_layer.name, []):
            model_layer = model_layers[position]
            problem = mismatch("", model_layer, file_layer, source)
            if problem and skip_mismatch:
                warnings.warn(f"Skipping loading of weights for layer '{model_layer.name}': {problem}")
                continue
            if problem:
                raise ValueError(problem + " (loading by name; pass skip_mismatch=True to skip it)")
            matches.append((position, file_layer.arrays))
    return matches
