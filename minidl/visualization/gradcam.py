"""Grad-CAM: which part of the image made the network say "chest" or "abdomen"?

Selvaraju et al., "Grad-CAM: Visual Explanations from Deep Networks via
Gradient-based Localization", ICCV 2017. For a convolutional feature map
A (shape H x W x K, e.g. InceptionV3's ``mixed10``: 8 x 8 x 2048 at 299x299)
and a class score y (the logit, before the sigmoid)::

    alpha_k = mean over (i, j) of  dy / dA[i, j, k]          one weight per channel
    cam     = ReLU( sum_k alpha_k * A[:, :, k] )              H x W
    heatmap = cam / max(cam), resized to the image            values in [0, 1]

A channel gets a large weight when increasing it raises the score; the ReLU
keeps only the regions that speak *for* the class.

How it is computed here, with minidl's own backward pass and nothing else:
the model is cut in two at the chosen layer. ``Model(model.input, layer.output)``
gives the features A; ``Model(layer.output, model.output)`` -- the "head", a
model whose input is an intermediate tensor -- is run forward in inference mode
and then *backward* from the score, which returns dy/dA.

Which score: for a single sigmoid output p = sigmoid(z) = P(class 1), class 1's
score is the logit z and class 0's is -z (the logit of 1 - p). Differentiating
the logit rather than p avoids sigmoid'(z) = p(1 - p), which underflows to 0 for
a confident prediction and would give an empty map. For a softmax output the
score of class c is its logit z_c.

Example::

    heatmaps = grad_cam(model, x, "mixed10")            # (N, 299, 299) in [0, 1]
    picture = overlay_heatmap(image_array, heatmaps[0])  # RGB uint8
"""
import numpy as np

from minidl import engine


def _split_model(model, layer_name):
    """(features model, head model) cut at the output of ``layer_name``."""
    from minidl.models.model import Model
    layer = model.get_layer(layer_name)
    features_model = Model(model.input, layer.output, name=f"gradcam_features_{layer_name}")
    head_model = Model(layer.output, model.output, name=f"gradcam_head_{layer_name}")
    return features_model, head_model


def _choose_classes(outputs, class_index):
    """One class per image: the given one, or the predicted one."""
    count = outputs.shape[0]
    if class_index is not None:
        return np.full(count, int(class_index))
    if outputs.shape[-1] == 1:
        return (outputs[:, 0] >= 0.5).astype(int)         # as the workshop: 'Chest X-ray' if score < 0.5
    return outputs.argmax(axis=-1)


def feature_gradients(model, image_batch, layer_name, class_index=None):
    """Features A of ``layer_name``, d score / dA, and the class each image was explained for.

    Parameters
    ----------
    model : minidl Model with one output (sigmoid of 1 unit, or softmax/linear of C units)
    image_batch : array (N, H, W, C), preprocessed exactly as for ``model.predict``
    layer_name : name of a layer whose output is a 4-D feature map (N, h, w, K)
    class_index : int or None -- None explains the predicted class of each image

    Returns ``(features, gradients, classes, outputs)``: features and gradients of shape
    (N, h, w, K), classes (N,), outputs = the model's predictions (N, units).
    """
    features_model, head_model = _split_model(model, layer_name)
    features = engine.forward_for_inference(features_model, np.asarray(image_batch))
    if features.ndim != 4:
        raise ValueError(f"grad_cam: layer '{layer_name}' outputs shape {features.shape}; "
                         f"Grad-CAM needs a 4-D feature map (batch, height, width, channels)")
    outputs = head_model.forward(features, training=False)     # saving: backward follows
    classes = _choose_classes(outputs, class_index)
    units = outputs.shape[-1]
    upstream = np.zeros_like(outputs)
    if units == 1:
        upstream[:, 0] = np.where(classes == 1, 1.0, -1.0)    # score = z for class 1, -z for class 0
    else:
        upstream[np.arange(len(classes)), classes] = 1.0
    output_layer = head_model.output_layer()
    activation = getattr(getattr(output_layer, "activation", None), "name", None)
    use_logits = activation in ("sigmoid", "softmax")
    if use_logits:                                            # the upstream gradient is d score / d z
        previous, output_layer.backward_from_logits = output_layer.backward_from_logits, True
    try:
        gradients = head_model.backward(upstream)
    finally:
        if use_logits:
            output_layer.backward_from_logits = previous
        for parameter in head_model.weights:                  # leave no stale gradients behind
            parameter.grad = None
    return features, gradients, classes, outputs


def _resize(heatmap, size):
    """Bilinear resize of a 2-D map in [0, 1] to (height, width) with Pillow."""
    from PIL import Image
    height, width = size
    picture = Image.fromarray(np.asarray(heatmap, dtype=np.float32), mode="F")
    return np.asarray(picture.resize((width, height), resample=Image.BILINEAR), dtype=np.float32)


def grad_cam(model, image_batch, layer_name, class_index=None, upsample=True, return_details=False):
    """Grad-CAM heatmaps for a batch of images.

    Returns an array (N, H, W) with values in [0, 1] -- the image size when
    ``upsample`` (default), else the feature map's (h, w). With
    ``return_details=True`` returns ``(heatmaps, details)`` where details holds
    ``weights`` (N, K) (the alpha_k), ``classes`` (N,) and ``outputs``.
    A map that is zero everywhere (nothing speaks for the class) stays zero.
    """
    image_batch = np.asarray(image_batch)
    features, gradients, classes, outputs = feature_gradients(model, image_batch, layer_name, class_index)
    weights = gradients.mean(axis=(1, 2))                                   # (N, K)
    cams = np.maximum(np.einsum("nhwk,nk->nhw", features.astype(np.float64), weights), 0.0)
    peaks = cams.max(axis=(1, 2), keepdims=True)
    cams = np.where(peaks > 0, cams / np.where(peaks > 0, peaks, 1.0), 0.0).astype(np.float32)
    if upsample:
        size = image_batch.shape[1:3]
        cams = np.stack([np.clip(_resize(cam, size), 0.0, 1.0) for cam in cams])
    if return_details:
        return cams, {"weights": weights, "classes": classes, "outputs": outputs}
    return cams


def overlay_heatmap(image, heatmap, alpha=0.4, colormap="jet"):
    """Blend a heatmap (h, w) in [0, 1] over an image; returns RGB uint8 (H, W, 3).

    ``image`` may be in [0, 1] or [0, 255], grey (H, W) or (H, W, 1/3); the
    heatmap is resized to the image if needed and coloured with a matplotlib
    colormap (red = where the network looked).
    """
    from matplotlib import colormaps
    image = np.asarray(image, dtype=np.float32)
    if image.ndim == 2:
        image = image[..., None]
    if image.shape[-1] == 1:
        image = np.repeat(image, 3, axis=-1)
    if image.max() > 1.0:
        image = image / 255.0
    heatmap = np.asarray(heatmap, dtype=np.float32)
    if heatmap.shape != image.shape[:2]:
        heatmap = np.clip(_resize(heatmap, image.shape[:2]), 0.0, 1.0)
    coloured = colormaps[colormap](heatmap)[..., :3]
    blended = (1.0 - alpha) * image[..., :3] + alpha * coloured
    return np.clip(np.round(blended * 255.0), 0, 255).astype(np.uint8)
