"""``show_augmentations``: a grid of augmented versions of one image (the workshop's slide).

Example::

    import matplotlib
    matplotlib.use("Agg")
    fig = show_augmentations(train_datagen, load_img("chest.png", target_size=(299, 299)),
                             n=9, seed=0)
    fig.savefig("augmentations.png")
"""
import math

import numpy as np


def _as_image_array(image):
    """PIL image or array (H, W[, C]) -> float32 (H, W, C) array at its own scale."""
    from minidl.preprocessing.image.loading import img_to_array
    if hasattr(image, "mode"):  # a PIL image
        return img_to_array(image)
    array = np.asarray(image, dtype=np.float32)
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim == 4 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 3:
        raise ValueError("show_augmentations: image must be a PIL image or an array of shape "
                         f"(H, W), (H, W, C) or (1, H, W, C), got shape {array.shape}")
    return array


def _displayable(x):
    """Scale an augmented image to [0, 1] for imshow (whatever rescale was used)."""
    x = np.asarray(x, dtype=np.float64)
    low, high = x.min(), x.max()
    if 0.0 <= low and high <= 1.0:
        shown = x
    elif 0.0 <= low and high <= 255.0:
        shown = x / 255.0
    else:  # standardised data: min-max for display
        shown = (x - low) / (high - low) if high > low else np.zeros_like(x)
    return shown[..., 0] if shown.shape[-1] == 1 else shown


def show_augmentations(generator_or_datagen, image, n=9, seed=None, columns=None,
                       figsize=None, title="Augmented versions"):
    """Draw ``n`` augmented versions of ``image`` in a grid; return the matplotlib Figure.

    Args:
        generator_or_datagen: an ``ImageDataGenerator``, or an iterator made by one
            (``flow``/``flow_from_directory``; its ``image_data_generator`` is used).
        image: PIL image or array (H, W, C) at the 0..255 scale.
        n: number of panels. seed: seeds NumPy's global RNG first (reproducible).
        columns: grid width (default ceil(sqrt(n))).
    """
    import matplotlib.pyplot as plt

    datagen = getattr(generator_or_datagen, "image_data_generator", generator_or_datagen)
    if not hasattr(datagen, "random_transform"):
        raise TypeError("show_augmentations: expected an ImageDataGenerator or an iterator "
                        f"made by one, got {type(generator_or_datagen).__name__}")
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"show_augmentations: n must be a positive integer, got {n!r}")
    x = _as_image_array(image)
    if seed is not None:
        np.random.seed(seed)
    columns = columns or int(math.ceil(math.sqrt(n)))
    rows = int(math.ceil(n / columns))
    figure, axes = plt.subplots(rows, columns, figsize=figsize or (2.5 * columns, 2.5 * rows),
                                squeeze=False)
    for panel, axis in enumerate(axes.flat):
        axis.axis("off")
        if panel >= n:
            continue
        augmented = datagen.random_transform(x.copy())
        augmented = datagen.standardize(np.array(augmented, dtype=np.float32))
        axis.imshow(_displayable(augmented), cmap="gray", vmin=0, vmax=1)
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    return figure
