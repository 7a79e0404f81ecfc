"""Looking inside a trained network: Grad-CAM heatmaps.

Example::

    from minidl.visualization import grad_cam, overlay_heatmap
    heatmaps = grad_cam(model, x, "mixed10")
"""
from minidl.visualization.gradcam import feature_gradients, grad_cam, overlay_heatmap

__all__ = ["feature_gradients", "grad_cam", "overlay_heatmap"]
