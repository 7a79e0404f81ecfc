"""Batch-norm layers that really act, for tests that compare two ways of running a model."""
from minidl.layers import BatchNormalization


def randomize_batch_norms(model, rng):
    """Moving statistics far from (0, 1) and gamma/beta far from (1, 0): BN really acts."""
    for layer in model.layers:
        if isinstance(layer, BatchNormalization):
            channels = layer.moving_mean.value.shape
            layer.moving_mean.value = rng.normal(0, 0.5, channels).astype(layer.moving_mean.dtype)
            layer.moving_variance.value = rng.uniform(0.2, 3, channels).astype(layer.moving_variance.dtype)
            if layer.gamma is not None:
                layer.gamma.value = rng.uniform(-2, 2, channels).astype(layer.gamma.dtype)
            if layer.beta is not None:
                layer.beta.value = rng.normal(0, 1, channels).astype(layer.beta.dtype)
