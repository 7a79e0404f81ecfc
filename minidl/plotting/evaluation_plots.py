"""Figures for an honest evaluation: ROC curve, confusion matrix, Grad-CAM overlays.

* :func:`plot_roc_curve` -- sensitivity against 1 - specificity for every
  threshold, with the AUC in the legend and the diagonal of a coin toss.
* :func:`plot_confusion_matrix` -- the counts of (true class, predicted class).
* :func:`plot_gradcam` -- the image, and the same image with the Grad-CAM
  heatmap on top (what the network looked at).

Example::

    fpr, tpr, _ = roc_curve(labels, scores)
    plot_roc_curve(fpr, tpr, auc(fpr, tpr)).savefig("roc_curve.png")
    plot_confusion_matrix(matrix, ["Chest X-ray", "Abd X-ray"]).savefig("confusion_matrix.png")
"""
import numpy as np


def plot_roc_curve(fpr, tpr, auc_value=None, title="ROC curve (validation set)", figsize=(5, 5)):
    """Draw a ROC curve; return the Figure."""
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=figsize)
    label = "ROC curve" if auc_value is None else f"ROC curve (AUC = {auc_value:.3f})"
    axis.plot(fpr, tpr, color="darkorange", lw=2, marker="o", markersize=3, label=label)
    axis.plot([0, 1], [0, 1], color="grey", lw=1, linestyle="--", label="Chance")
    axis.set_xlim(-0.02, 1.02)
    axis.set_ylim(-0.02, 1.02)
    axis.set_xlabel("False-positive rate (1 - specificity)")
    axis.set_ylabel("True-positive rate (sensitivity)")
    axis.set_title(title)
    axis.set_aspect("equal")
    axis.legend(loc="lower right")
    figure.tight_layout()
    return figure


def plot_confusion_matrix(matrix, class_names, title="Confusion matrix (validation set)", figsize=(5, 4.5)):
    """Draw a confusion matrix (rows = true class, columns = predicted class); return the Figure."""
    import matplotlib.pyplot as plt

    matrix = np.asarray(matrix)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or matrix.shape[0] != len(class_names):
        raise ValueError(f"plot_confusion_matrix: expected a square matrix of size {len(class_names)} "
                         f"(one row per class name), got shape {matrix.shape}")
    figure, axis = plt.subplots(figsize=figsize)
    image = axis.imshow(matrix, cmap="Blues", vmin=0)
    figure.colorbar(image, ax=axis, fraction=0.046, pad=0.04)
    ticks = np.arange(len(class_names))
    axis.set_xticks(ticks)
    axis.set_xticklabels(class_names)
    axis.set_yticks(ticks)
    axis.set_yticklabels(class_names)
    axis.set_xlabel("Predicted class")
    axis.set_ylabel("True class")
    axis.set_title(title)
    threshold = matrix.max() / 2.0 if matrix.size else 0
    for row in range(matrix.shape[0]):
        for column in range(matrix.shape[1]):
            axis.text(column, row, str(matrix[row, column]), ha="center", va="center", fontsize=14,
                      color="white" if matrix[row, column] > threshold else "black")
    figure.tight_layout()
    return figure


def plot_gradcam(image, heatmap, title=None, alpha=0.4, figsize=(8, 4)):
    """Side by side: the image and the image with its Grad-CAM heatmap; return the Figure."""
    import matplotlib.pyplot as plt
    from minidl.visualization.gradcam import overlay_heatmap

    image = np.asarray(image, dtype=np.float32)
    shown = image / 255.0 if image.max() > 1.0 else image
    figure, axes = plt.subplots(1, 2, figsize=figsize)
    axes[0].imshow(np.clip(shown, 0, 1), cmap="gray")
    axes[0].set_title("Image")
    axes[1].imshow(overlay_heatmap(image, heatmap, alpha=alpha))
    axes[1].set_title("Grad-CAM (red = looked at)")
    for axis in axes:
        axis.axis("off")
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    return figure
