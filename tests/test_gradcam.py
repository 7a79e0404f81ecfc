"""Grad-CAM through minidl's own backward pass, checked against finite differences."""
import numpy as np
import pytest

from minidl.layers import Conv2D, Dense, GlobalAveragePooling2D, Input, Activation, Dropout
from minidl.models import Model, Sequential
from minidl.visualization import feature_gradients, grad_cam, overlay_heatmap


def tiny_model(rng, units=1, activation="sigmoid", dtype=np.float64):
    """Input 6x6x2 -> conv 'features' (4 ch) -> relu -> nested Sequential head."""
    inputs = Input(shape=(6, 6, 2))
    features = Conv2D(4, 3, padding="same", name="features")(inputs)
    x = Activation("relu")(features)
    head = Sequential()
    head.add(GlobalAveragePooling2D(input_shape=(6, 6, 4)))
    head.add(Dense(5, activation="relu"))
    head.add(Dropout(0.5))
    head.add(Dense(units, activation=activation))
    model = Model(inputs, head(x))
    for parameter in model.weights:
        parameter.value = rng.normal(0, 0.7, parameter.value.shape).astype(dtype)
    return model


def score_from_features(model, features, image_index, class_index):
    """The logit explained by Grad-CAM, as a function of the feature map (via a head model)."""
    layer = model.get_layer("features")
    head = Model(layer.output, model.output)
    head.forward(features, training=False)
    output_layer = head.layers[-1].layers[-1]
    logits = output_layer.logits[image_index]
    if logits.shape[-1] == 1:
        return logits[0] if class_index == 1 else -logits[0]
    return logits[class_index]


@pytest.mark.parametrize("class_index", [0, 1, None])
def test_weights_are_mean_of_finite_difference_gradient(rng, class_index):
    model = tiny_model(rng)
    images = rng.normal(size=(2, 6, 6, 2))
    features, gradients, classes, outputs = feature_gradients(model, images, "features", class_index)
    heatmaps, details = grad_cam(model, images, "features", class_index, upsample=False, return_details=True)
    if class_index is None:
        np.testing.assert_array_equal(classes, (outputs[:, 0] >= 0.5).astype(int))
    step = 1e-6
    for n in range(2):
        numeric = np.zeros(features.shape[1:])
        for index in np.ndindex(*features.shape[1:]):
            plus, minus = features.copy(), features.copy()
            plus[(n,) + index] += step
            minus[(n,) + index] -= step
            numeric[index] = (score_from_features(model, plus, n, classes[n])
                              - score_from_features(model, minus, n, classes[n])) / (2 * step)
        np.testing.assert_allclose(gradients[n], numeric, rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(details["weights"][n], numeric.mean(axis=(0, 1)), rtol=1e-6, atol=1e-9)
        cam = np.maximum((features[n] * numeric.mean(axis=(0, 1))).sum(-1), 0)
        expected = cam / cam.max() if cam.max() > 0 else cam
        np.testing.assert_allclose(heatmaps[n], expected, rtol=1e-5, atol=1e-6)


def test_softmax_model_and_no_stale_gradients(rng):
    model = tiny_model(rng, units=3, activation="softmax")
    images = rng.normal(size=(1, 6, 6, 2))
    features, gradients, classes, outputs = feature_gradients(model, images, "features", class_index=2)
    assert classes.tolist() == [2]
    numeric = np.zeros(features.shape[1:])
    for index in np.ndindex(*features.shape[1:]):
        plus, minus = features.copy(), features.copy()
        plus[(0,) + index] += 1e-6
        minus[(0,) + index] -= 1e-6
        numeric[index] = (score_from_features(model, plus, 0, 2) - score_from_features(model, minus, 0, 2)) / 2e-6
    np.testing.assert_allclose(gradients[0], numeric, rtol=1e-6, atol=1e-9)
    assert all(p.grad is None for p in model.weights)
    assert all(not getattr(l, "backward_from_logits", False) for l in model.layers[-1].layers)


def test_upsampled_heatmap_and_overlay(rng):
    model = tiny_model(rng, dtype=np.float32)
    images = rng.random((3, 6, 6, 2)).astype(np.float32)
    heatmaps = grad_cam(model, images, "features")
    assert heatmaps.shape == (3, 6, 6) and heatmaps.dtype == np.float32
    assert heatmaps.min() >= 0 and heatmaps.max() <= 1
    picture = overlay_heatmap(rng.random((12, 10)) * 255, rng.random((3, 2)), alpha=0.5)
    assert picture.shape == (12, 10, 3) and picture.dtype == np.uint8
    # alpha 0 leaves the image unchanged
    grey = np.full((4, 4, 3), 0.5)
    np.testing.assert_array_equal(overlay_heatmap(grey, np.ones((4, 4)), alpha=0.0), np.full((4, 4, 3), 128))


def test_unknown_layer_name_is_refused(rng):
    model = tiny_model(rng)
    with pytest.raises(ValueError, match="No such layer: 'not_a_layer'"):
        grad_cam(model, rng.normal(size=(1, 6, 6, 2)), "not_a_layer")


def test_non_spatial_layer_is_refused(rng):
    inputs = Input(shape=(6, 6, 2))
    features = Conv2D(4, 3, padding="same", name="features")(inputs)
    pooled = GlobalAveragePooling2D(name="pooled")(features)
    model = Model(inputs, Dense(1, activation="sigmoid")(pooled))
    with pytest.raises(ValueError, match=r"layer 'pooled' outputs shape \(1, 4\).*4-D feature map"):
        grad_cam(model, rng.normal(size=(1, 6, 6, 2)), "pooled")
