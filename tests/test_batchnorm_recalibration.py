"""recalibrate_batch_norm sets moving statistics to the average batch statistics, changing nothing else."""
import numpy as np

from minidl.layers import BatchNormalization, Dense, Input
from minidl.layers.batchnorm_recalibration import batch_norm_layers, recalibrate_batch_norm
from minidl.models import Model, Sequential


def test_moving_statistics_become_the_mean_of_batch_statistics(rng):
    inputs = Input(shape=(3,))
    first = BatchNormalization()
    head = Sequential([Dense(2, input_shape=(3,)), BatchNormalization()])
    model = Model(inputs, head(first(inputs)))
    first.trainable = False                                   # frozen layers are recalibrated too
    batches = [rng.standard_normal((4, 3)) * 3 + 7 for _ in range(3)]
    weights_before = [p.value.copy() for p in model.trainable_weights]

    assert recalibrate_batch_norm(model, iter(batches)) == 3

    n = 4
    np.testing.assert_allclose(first.moving_mean.value, np.mean([b.mean(axis=0) for b in batches], axis=0),
                               rtol=1e-5)
    np.testing.assert_allclose(first.moving_variance.value,
                               np.mean([b.var(axis=0) * n / (n - 1) for b in batches], axis=0), rtol=1e-5)
    assert first.trainable is False and first.momentum == 0.99
    assert len(batch_norm_layers(model)) == 2
    for before, parameter in zip(weights_before, model.trainable_weights):
        np.testing.assert_array_equal(before, parameter.value)
