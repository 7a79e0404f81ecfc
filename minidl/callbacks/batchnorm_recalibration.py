"""RecalibrateBatchNorm: re-estimate batch norm's moving statistics before each validation.

Training from random weights, Keras's moving averages (momentum 0.99) still hold 0.99^k of
their initial values (0 and 1) after k steps -- 7% after the workshop's 260 -- while a
layer's real variance can be 100x smaller: inference then predicts one class for every
image. This callback replaces them, before every validation, by the statistics of the
given (unaugmented) training images (``minidl/layers/batchnorm_recalibration.py``).
Training itself is unchanged: it normalises with batch statistics. Not part of Keras.

Example::

    batches = ImageDataGenerator(rescale=1 / 255).flow_from_directory(
        train_dir, target_size=(299, 299), batch_size=5, class_mode=None, shuffle=False)
    model.fit(train_generator, validation_data=validation_generator,
              callbacks=[RecalibrateBatchNorm(batches)])
"""
from minidl.callbacks.base import Callback
from minidl.layers.batchnorm_recalibration import recalibrate_batch_norm


class RecalibrateBatchNorm(Callback):
    def __init__(self, batches):
        super().__init__()
        self.batches = batches          # a Sequence of (unaugmented) training inputs

    def on_test_begin(self, logs=None):
        recalibrate_batch_norm(self.model, (self.batches[i] for i in range(len(self.batches))))
