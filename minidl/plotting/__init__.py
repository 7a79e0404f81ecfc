"""``minidl.plotting`` -- figures for learners (matplotlib).

* :func:`show_augmentations` -- a grid of augmented versions of one image;
* :func:`plot_training_curves` -- the workshop's accuracy/loss per epoch;
* :func:`plot_roc_curve`, :func:`plot_confusion_matrix` -- how good the classifier is;
* :func:`plot_gradcam` -- where the network looked.
"""
from minidl.plotting.augmentations import show_augmentations
from minidl.plotting.training_curves import plot_training_curves
from minidl.plotting.evaluation_plots import plot_confusion_matrix, plot_gradcam, plot_roc_curve

__all__ = ["show_augmentations", "plot_training_curves", "plot_roc_curve", "plot_confusion_matrix", "plot_gradcam"]
