"""Re-estimate BatchNormalization's moving statistics from data ("precise BN").

During training each BatchNormalization layer keeps an exponential moving
average of the batch statistics (momentum 0.99): after k steps the value it
started from still has weight 0.99^k. With pretrained (ImageNet) statistics
that is what you want. From random initial weights it is not: the initial
moving variance of 1 can be 10-100x the real variance of a layer's output,
and after the workshop's 260 steps it still weighs 0.99^260 = 7%. Inference
then normalises with statistics that fit no data, and the error compounds
through InceptionV3's 94 BN layers -- the network predicts one class for
everything even though training accuracy is high.

``recalibrate_batch_norm(model, batches)`` replaces every moving statistic by
the plain average of the batch statistics over ``batches``, computed with the
current weights (Wu & Johnson, "Rethinking 'Batch' in BatchNorm", 2021):
for the k-th batch (k = 0, 1, ...) it uses momentum k/(k+1), so the result is
the cumulative mean. Nothing else changes: no weight is trained.

This is NOT part of Keras; minidl's workshop uses it only when training from
scratch and says so.

Example::

    recalibrate_batch_norm(model, (x for x, _ in islice(train_batches, 13)))
"""
from minidl.layers.base import no_backward
from minidl.layers.normalization import BatchNormalization


def batch_norm_layers(model):
    """Every BatchNormalization inside ``model``, nested models included."""
    return [layer for layer in model.walk_layers(recursive=True) if isinstance(layer, BatchNormalization)]


def recalibrate_batch_norm(model, batches):
    """Set each BN's moving mean/variance to the average over ``batches`` (arrays of inputs).

    Returns the number of batches used.
    """
    layers = batch_norm_layers(model)
    saved = [(layer, layer.momentum, layer.trainable) for layer in layers]
    count = 0
    try:
        for layer in layers:
            layer.trainable = True          # a frozen BN would run in inference mode
        for count, batch in enumerate(batches):
            for layer in layers:
                layer.momentum = count / (count + 1.0)     # cumulative mean over batches
            with no_backward():
                model.forward(batch, training=True)
        return count + 1 if layers else 0
    finally:
        for layer, momentum, trainable in saved:
            layer.momentum = momentum
            layer.trainable = trainable
