"""InceptionV3, built layer for layer as ``keras.applications.InceptionV3``.

The graph, the layer names and the order of ``model.layers`` are Keras 2's
(``minidl/keras_semantics.md`` §4 and §7.2), because Keras weight files are
loaded *by order*: a single branch built in a different order would load the
wrong weights into a layer of the same shape without any error.

The network (299x299 input, shapes per image)::

    stem      3x3/2 conv -> 3x3 conv -> 3x3 conv -> 3x3/2 max pool     73x73x64
              1x1 conv -> 3x3 conv -> 3x3/2 max pool                   35x35x192
    mixed0-2  four branches (1x1 | 5x5 | double 3x3 | avg pool)        35x35x256/288
    mixed3    grid reduction (3x3/2 | double 3x3 /2 | max pool)        17x17x768
    mixed4-7  four branches with factorised 1x7 / 7x1 convolutions     17x17x768
    mixed8    grid reduction                                           8x8x1280
    mixed9-10 four branches, two of them split into 1x3 | 3x1          8x8x2048

Every convolution is ``conv2d_bn`` (minidl/keras_semantics.md §4.1): Conv2D without bias, then
BatchNormalization(scale=False) (a learned shift beta, no scale), then ReLU.

Names: a fresh build is always named ``input_1``, ``conv2d_1..94``,
``batch_normalization_1..94``, ``activation_1..94``, ``max_pooling2d_1..4``,
``average_pooling2d_1..9``, ``mixed0..mixed10``, ``mixed9_0``, ``mixed9_1``,
``concatenate_1..2`` -- the names in Keras 2's official weight file -- whatever
was built before in the session. The names are given explicitly; the base
``Layer`` reserves them, so a ``Dense()`` created afterwards still gets a
fresh automatic name.

Example::

    from minidl import applications
    base = applications.InceptionV3(weights=None, include_top=False, input_shape=(299, 299, 3))
    base.output_shape          # (None, 8, 8, 2048)
    len(base.layers)           # 311
"""
import os
from collections import defaultdict

import numpy as np

from minidl.layers.base import SymbolicTensor
from minidl.layers.input_layer import Input, InputLayer
from minidl.layers.conv import Conv2D
from minidl.layers.normalization import BatchNormalization
from minidl.layers.activation import Activation
from minidl.layers.pooling import MaxPooling2D, AveragePooling2D
from minidl.layers.global_pooling import GlobalAveragePooling2D
from minidl.layers.dense import Dense
from minidl.layers.merge import concatenate
from minidl.models import saving
from minidl.models.model import Model
# Named weight_files because `weights` is InceptionV3's argument.
from minidl import weights as weight_files

DEFAULT_SIZE = 299
MIN_SIZE = 75


class _KerasNames:
    """Keras 2's automatic names (``conv2d_1``, ``conv2d_2``...) counted for one model.

    Keras numbers layers with session-wide counters; we count per build so
    that the names match the official weight file even when other layers
    were created earlier in the session.
    """

    def __init__(self):
        self.counters = defaultdict(int)

    def __call__(self, prefix):
        self.counters[prefix] += 1
        return f"{prefix}_{self.counters[prefix]}"


def conv2d_bn(x, filters, num_row, num_col, names, padding="same", strides=(1, 1)):
    """Conv2D(use_bias=False) -> BatchNormalization(scale=False) -> ReLU (minidl/keras_semantics.md §4.1).

    ``num_row x num_col`` is the kernel (rows, columns): "1x7" is one row, seven columns.
    """
    x = Conv2D(filters, (num_row, num_col), strides=strides, padding=padding, use_bias=False,
               name=names("conv2d"))(x)
    x = BatchNormalization(axis=3, scale=False, name=names("batch_normalization"))(x)
    return Activation("relu", name=names("activation"))(x)


def _average_pool_branch(x, filters, names):
    """3x3 average pool, stride 1, 'same' (padding not counted, minidl/keras_semantics.md §4.3) -> 1x1 conv."""
    pooled = AveragePooling2D((3, 3), strides=(1, 1), padding="same", name=names("average_pooling2d"))(x)
    return conv2d_bn(pooled, filters, 1, 1, names)


def _block_35x35(x, pool_filters, name, names):
    """mixed0-2: 1x1 | 1x1 -> 5x5 | 1x1 -> 3x3 -> 3x3 | avg pool -> 1x1."""
    branch1x1 = conv2d_bn(x, 64, 1, 1, names)

    branch5x5 = conv2d_bn(x, 48, 1, 1, names)
    branch5x5 = conv2d_bn(branch5x5, 64, 5, 5, names)

    branch3x3dbl = conv2d_bn(x, 64, 1, 1, names)
    branch3x3dbl = conv2d_bn(branch3x3dbl, 96, 3, 3, names)
    branch3x3dbl = conv2d_bn(branch3x3dbl, 96, 3, 3, names)

    branch_pool = _average_pool_branch(x, pool_filters, names)
    return concatenate([branch1x1, branch5x5, branch3x3dbl, branch_pool], axis=3, name=name)


def _reduction_35_to_17(x, names):
    """mixed3: 3x3/2 | 1x1 -> 3x3 -> 3x3/2 | 3x3/2 max pool."""
    branch3x3 = conv2d_bn(x, 384, 3, 3, names, strides=(2, 2), padding="valid")

    branch3x3dbl = conv2d_bn(x, 64, 1, 1, names)
    branch3x3dbl = conv2d_bn(branch3x3dbl, 96, 3, 3, names)
    branch3x3dbl = conv2d_bn(branch3x3dbl, 96, 3, 3, names, strides=(2, 2), padding="valid")

    branch_pool = MaxPooling2D((3, 3), strides=(2, 2), name=names("max_pooling2d"))(x)
    return concatenate([branch3x3, branch3x3dbl, branch_pool], axis=3, name="mixed3")


def _block_17x17(x, channels, name, names):
    """mixed4-7: 1x1 | 1x1 -> 1x7 -> 7x1 | 1x1 -> 7x1 -> 1x7 -> 7x1 -> 1x7 | avg pool -> 1x1."""
    branch1x1 = conv2d_bn(x, 192, 1, 1, names)

    branch7x7 = conv2d_bn(x, channels, 1, 1, names)
    branch7x7 = conv2d_bn(branch7x7, channels, 1, 7, names)
    branch7x7 = conv2d_bn(branch7x7, 192, 7, 1, names)

    branch7x7dbl = conv2d_bn(x, channels, 1, 1, names)
    branch7x7dbl = conv2d_bn(branch7x7dbl, channels, 7, 1, names)
    branch7x7dbl = conv2d_bn(branch7x7dbl, channels, 1, 7, names)
    branch7x7dbl = conv2d_bn(branch7x7dbl, channels, 7, 1, names)
    branch7x7dbl = conv2d_bn(branch7x7dbl, 192, 1, 7, names)

    branch_pool = _average_pool_branch(x, 192, names)
    return concatenate([branch1x1, branch7x7, branch7x7dbl, branch_pool], axis=3, name=name)


def _reduction_17_to_8(x, names):
    """mixed8: 1x1 -> 3x3/2 | 1x1 -> 1x7 -> 7x1 -> 3x3/2 | 3x3/2 max pool."""
    branch3x3 = conv2d_bn(x, 192, 1, 1, names)
    branch3x3 = conv2d_bn(branch3x3, 320, 3, 3, names, strides=(2, 2), padding="valid")

    branch7x7x3 = conv2d_bn(x, 192, 1, 1, names)
    branch7x7x3 = conv2d_bn(branch7x7x3, 192, 1, 7, names)
    branch7x7x3 = conv2d_bn(branch7x7x3, 192, 7, 1, names)
    branch7x7x3 = conv2d_bn(branch7x7x3, 192, 3, 3, names, strides=(2, 2), padding="valid")

    branch_pool = MaxPooling2D((3, 3), strides=(2, 2), name=names("max_pooling2d"))(x)
    return concatenate([branch3x3, branch7x7x3, branch_pool], axis=3, name="mixed8")


def _block_8x8(x, index, names):
    """mixed9/10: 1x1 | 1x1 -> [1x3 | 3x1] | 1x1 -> 3x3 -> [1x3 | 3x1] | avg pool -> 1x1."""
    branch1x1 = conv2d_bn(x, 320, 1, 1, names)

    branch3x3 = conv2d_bn(x, 384, 1, 1, names)
    branch3x3_1 = conv2d_bn(branch3x3, 384, 1, 3, names)
    branch3x3_2 = conv2d_bn(branch3x3, 384, 3, 1, names)
    # Keras names this one 'mixed9_0' / 'mixed9_1' (even inside mixed10).
    branch3x3 = concatenate([branch3x3_1, branch3x3_2], axis=3, name=f"mixed9_{index}")

    branch3x3dbl = conv2d_bn(x, 448, 1, 1, names)
    branch3x3dbl = conv2d_bn(branch3x3dbl, 384, 3, 3, names)
    branch3x3dbl_1 = conv2d_bn(branch3x3dbl, 384, 1, 3, names)
    branch3x3dbl_2 = conv2d_bn(branch3x3dbl, 384, 3, 1, names)
    # ... and leaves this one unnamed: 'concatenate_1' / 'concatenate_2'.
    branch3x3dbl = concatenate([branch3x3dbl_1, branch3x3dbl_2], axis=3, name=names("concatenate"))

    branch_pool = _average_pool_branch(x, 192, names)
    return concatenate([branch1x1, branch3x3, branch3x3dbl, branch_pool], axis=3, name=f"mixed{9 + index}")


def obtain_input_shape(input_shape, include_top, weights):
    """Keras's ``_obtain_input_shape`` for channels_last (default 299, minimum 75).

    * ``include_top=True`` with ImageNet weights: the shape must be (299, 299, 3).
    * ``include_top=True`` otherwise: default (299, 299, 3); the shape must be static.
    * ``include_top=False`` and no shape: (None, None, 3), any image size >= 75.
    * ImageNet weights need 3 channels; height and width must be >= 75.
    """
    if weights != "imagenet" and input_shape is not None and len(input_shape) == 3:
        default_shape = (DEFAULT_SIZE, DEFAULT_SIZE, input_shape[-1])
    else:
        default_shape = (DEFAULT_SIZE, DEFAULT_SIZE, 3)
    if weights == "imagenet" and include_top:
        if input_shape is not None and tuple(input_shape) != default_shape:
            raise ValueError(
                f"InceptionV3: with include_top=True and weights='imagenet', `input_shape` must be "
                f"{default_shape}; got input_shape={tuple(input_shape)}")
        return default_shape
    if input_shape is not None:
        input_shape = tuple(input_shape)
        if len(input_shape) != 3:
            raise ValueError(
                f"InceptionV3: `input_shape` must be a tuple of three integers (height, width, channels); "
                f"got input_shape={input_shape}")
        if input_shape[-1] != 3 and weights == "imagenet":
            raise ValueError(
                f"InceptionV3: the ImageNet weights need 3 input channels; got input_shape={input_shape}")
        if any(size is not None and size < MIN_SIZE for size in input_shape[:2]):
            raise ValueError(
                f"InceptionV3: input size must be at least {MIN_SIZE}x{MIN_SIZE}; got input_shape={input_shape}")
    elif include_top:
        input_shape = default_shape
    else:
        input_shape = (None, None, 3)
    if include_top and None in input_shape:
        raise ValueError(
            f"InceptionV3: with include_top=True, `input_shape` must be static; got input_shape={input_shape}")
    return input_shape


def _source_inputs(tensor):
    """The Input tensors a symbolic tensor was computed from (Keras's ``get_source_inputs``)."""
    found, seen, stack = [], set(), [tensor]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if current.node is None or isinstance(current.node.layer, InputLayer):
            found.append(current)
        else:
            stack.extend(reversed(current.node.input_tensors))
    return found[0] if len(found) == 1 else found


def _check_weights_argument(weights, include_top, classes):
    if not (weights in ("imagenet", None) or (isinstance(weights, (str, os.PathLike)) and os.path.exists(weights))):
        raise ValueError(
            "InceptionV3: the `weights` argument should be either None (random initialization), "
            f"'imagenet' (pre-training on ImageNet), or the path to an existing weights file; got {weights!r}")
    if weights == "imagenet" and include_top and classes != 1000:
        raise ValueError(
            f"InceptionV3: with weights='imagenet' and include_top=True, `classes` must be 1000; got classes={classes}")


def _global_max_pooling():
    from minidl.layers.global_max_pooling import GlobalMaxPooling2D
    return GlobalMaxPooling2D()


def InceptionV3(include_top=True, weights="imagenet", input_tensor=None, input_shape=None,
                pooling=None, classes=1000):
    """Build InceptionV3 exactly as ``keras.applications.InceptionV3`` (minidl/keras_semantics.md §4).

    Parameters
    ----------
    include_top : bool
        Add ``avg_pool`` (GlobalAveragePooling2D) and ``predictions`` (Dense(classes, softmax)).
    weights : None, 'imagenet' or a path
        None: random initialisation. 'imagenet': the official Keras weights, from minidl's
        cache (:func:`imagenet_weights` downloads, checks and converts them if needed).
        A path: a Keras legacy HDF5 weights file or a minidl one (the loader detects which);
        loaded in ``model.layers`` order, as Keras does (minidl/keras_semantics.md §7.2).
    input_tensor : SymbolicTensor, optional
        Build the network on this tensor (e.g. from ``Input``) instead of a new Input.
    input_shape : tuple, optional
        (height, width, channels), height and width >= 75. Default (299, 299, 3) with the
        top; (None, None, 3) without it (any image size), as in Keras.
    pooling : None, 'avg' or 'max'
        Only without the top: None keeps the 4-D feature map (8x8x2048 for 299x299);
        'avg' / 'max' add a global average / max pooling -> (batch, 2048).
    classes : int
        Size of the top classifier (1000 with ImageNet weights).

    Returns a :class:`minidl.models.Model` named 'inception_v3'.
    """
    _check_weights_argument(weights, include_top, classes)
    if pooling not in (None, "avg", "max"):
        raise ValueError(f"InceptionV3: `pooling` must be None, 'avg' or 'max'; got pooling={pooling!r}")
    input_shape = obtain_input_shape(input_shape, include_top, weights)

    names = _KerasNames()
    if input_tensor is None:
        img_input = Input(shape=input_shape, name=names("input"))
    elif isinstance(input_tensor, SymbolicTensor):
        img_input = input_tensor
    else:
        raise TypeError(
            "InceptionV3: `input_tensor` must be a symbolic tensor from minidl.layers.Input(...) "
            f"or a layer call; got {type(input_tensor).__name__}")

    x = conv2d_bn(img_input, 32, 3, 3, names, strides=(2, 2), padding="valid")
    x = conv2d_bn(x, 32, 3, 3, names, padding="valid")
    x = conv2d_bn(x, 64, 3, 3, names)
    x = MaxPooling2D((3, 3), strides=(2, 2), name=names("max_pooling2d"))(x)

    x = conv2d_bn(x, 80, 1, 1, names, padding="valid")
    x = conv2d_bn(x, 192, 3, 3, names, padding="valid")
    x = MaxPooling2D((3, 3), strides=(2, 2), name=names("max_pooling2d"))(x)

    x = _block_35x35(x, 32, "mixed0", names)
    x = _block_35x35(x, 64, "mixed1", names)
    x = _block_35x35(x, 64, "mixed2", names)
    x = _reduction_35_to_17(x, names)
    x = _block_17x17(x, 128, "mixed4", names)
    x = _block_17x17(x, 160, "mixed5", names)
    x = _block_17x17(x, 160, "mixed6", names)
    x = _block_17x17(x, 192, "mixed7", names)
    x = _reduction_17_to_8(x, names)
    x = _block_8x8(x, 0, names)
    x = _block_8x8(x, 1, names)

    if include_top:
        x = GlobalAveragePooling2D(name="avg_pool")(x)
        x = Dense(classes, activation="softmax", name="predictions")(x)
    elif pooling == "avg":
        x = GlobalAveragePooling2D()(x)
    elif pooling == "max":
        x = _global_max_pooling()(x)

    inputs = _source_inputs(input_tensor) if input_tensor is not None else img_input
    model = Model(inputs, x, name="inception_v3")

    if weights == "imagenet":
        model.load_weights(str(imagenet_weights(include_top=include_top)))
    elif weights is not None:
        model.load_weights(os.fspath(weights))
    return model


def imagenet_weights(include_top=False, **fetch_options):
    """The path of Keras's official ImageNet weights for InceptionV3, in minidl's format.

    The first call downloads the official file (or takes the copy you put in the
    cache folder), verifies its md5 and converts it, checking every array against
    a freshly built ``InceptionV3(weights=None, include_top=include_top)``; later
    calls return the cached file at once (``minidl.weights.fetch_weights``, see
    weights/README.md). ``fetch_options`` go to ``fetch_weights`` (``cache_dir``,
    ``progress``, ``base_urls``, ...).

    Raises ``minidl.weights.WeightsUnavailableError`` (saying which file to put
    where) when the file cannot be obtained, and ``ValueError`` if it does not fit
    the architecture.
    """
    def reference_architecture():
        return saving.model_layout(InceptionV3(weights=None, include_top=include_top))

    return weight_files.fetch_weights("inception_v3", include_top=include_top,
                                      build_architecture=reference_architecture, **fetch_options)


def preprocess_input(x, data_format=None):
    """Scale pixels from [0, 255] to [-1, 1]: ``x / 127.5 - 1`` (Keras's mode 'tf', minidl/keras_semantics.md §4.5).

    This is what the ImageNet weights were trained with. The workshop does *not*
    use it (it feeds [0, 1] images, rescale=1/255); minidl does not insert it for you.
    Integer arrays are converted to float32; float arrays keep their dtype. ``data_format``
    ('channels_last', 'channels_first' or None) changes nothing: the same scaling applies to
    every channel (Keras checks the value, then ignores it too, for this network's mode 'tf').
    Unlike Keras, minidl returns a new array and leaves a float input unchanged.
    """
    if data_format not in (None, "channels_last", "channels_first"):
        raise ValueError(f"preprocess_input: unknown data_format {data_format!r}")
    x = np.asarray(x)
    if x.dtype.kind != "f":
        x = x.astype(np.float32)
    return x / x.dtype.type(127.5) - x.dtype.type(1.0)


def decode_predictions(preds, top=5):
    """The ``top`` most likely classes of each row of ``preds`` (batch, classes).

    Keras returns ``(wordnet_id, class_name, score)`` triples read from an
    ImageNet index file it downloads. minidl downloads nothing here, so each
    entry is ``(class_index, score)``, best first; map indices to names with
    your own list if you have one.

    Example::

        decode_predictions(np.array([[0.1, 0.7, 0.2]]), top=2)   # [[(1, 0.7), (2, 0.2)]]
    """
    preds = np.asarray(preds)
    if preds.ndim != 2:
        raise ValueError(
            f"decode_predictions expects a batch of predictions of shape (samples, classes); "
            f"got an array of shape {preds.shape}")
    top = min(int(top), preds.shape[1])
    results = []
    for row in preds:
        # A stable sort on the negated scores keeps the lower index first on ties.
        best = np.argsort(-row, kind="stable")[:top]
        results.append([(int(index), float(row[index])) for index in best])
    return results
