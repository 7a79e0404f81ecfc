"""Quickstart: train a small CNN on a synthetic two-class image task in under a minute.

The task: 32x32 grey images that contain either horizontal or vertical
stripes (random spacing, phase and noise). A convolution can see the
orientation, a single pixel cannot -- so the network has to learn filters.

The model is the workshop's recipe in miniature:
Conv2D -> BatchNormalization -> ReLU -> MaxPooling2D (twice) ->
GlobalAveragePooling2D -> Dense -> sigmoid, trained with Adam on binary
cross-entropy.

Run:  python examples/quickstart.py
"""
import argparse
import time

import numpy as np

from minidl.layers import Activation, BatchNormalization, Conv2D, Dense, GlobalAveragePooling2D, Input, MaxPooling2D
from minidl.models import Model
from minidl.optimizers import Adam


def make_stripes(count, size=32, seed=0):
    """Images (count, size, size, 1) in [0, 1] and labels: 0 = horizontal, 1 = vertical stripes."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, count)
    rows = np.arange(size)[:, None] * np.ones((1, size))
    images = np.empty((count, size, size, 1), np.float32)
    for i, label in enumerate(labels):
        period = rng.uniform(4, 10)
        phase = rng.uniform(0, 2 * np.pi)
        coordinate = rows.T if label else rows
        image = 0.5 + 0.5 * np.sin(2 * np.pi * coordinate / period + phase)
        images[i, :, :, 0] = np.clip(image + rng.normal(0, 0.3, (size, size)), 0, 1)
    return images, labels.astype(np.float32)


def conv_block(x, filters):
    x = Conv2D(filters, (3, 3), padding="same", use_bias=False)(x)
    x = BatchNormalization()(x)
    x = Activation("relu")(x)
    return MaxPooling2D((2, 2))(x)


def build_model():
    inputs = Input(shape=(32, 32, 1))
    x = conv_block(inputs, 8)
    x = conv_block(x, 16)
    x = GlobalAveragePooling2D()(x)
    outputs = Dense(1, activation="sigmoid")(x)
    return Model(inputs, outputs)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    np.random.seed(args.seed)
    import minidl.initializers
    minidl.initializers.seed(args.seed)
    x_train, y_train = make_stripes(512, seed=args.seed)
    x_val, y_val = make_stripes(128, seed=args.seed + 1)

    model = build_model()
    model.compile(optimizer=Adam(learning_rate=0.01), loss="binary_crossentropy", metrics=["accuracy"])
    model.summary()
    start = time.time()
    history = model.fit(x_train, y_train, batch_size=32, epochs=args.epochs, validation_data=(x_val, y_val))
    val_loss, val_accuracy = model.evaluate(x_val, y_val, verbose=0)
    print(f"Final validation accuracy: {val_accuracy:.4f} (loss {val_loss:.4f}) "
          f"after {time.time() - start:.1f} s of training")
    return history, val_accuracy


if __name__ == "__main__":
    main()
