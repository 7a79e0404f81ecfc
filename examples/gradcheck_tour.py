"""A tour of gradient checking: every layer's backward against finite differences.

For each layer we run ``minidl.check_gradients`` (see ``minidl/gradcheck.py``):
float64, central differences, a random upstream gradient G, every input and
every trainable parameter. A correct backward agrees to about 1e-9; we call
anything below 1e-6 a pass.

Then we break one backward on purpose -- batch normalization without the
terms that come from the batch mean and variance, the mistake almost everybody
makes the first time -- and watch the check catch it. The broken layer is a
subclass defined in this file; the library is not touched.

Run:  python examples/gradcheck_tour.py [--quick]
Exit status: 1 if a correct layer fails its check, 0 otherwise.
"""
import argparse
import sys

import numpy as np

import minidl
from minidl.gradcheck import relative_error
from minidl.layers import (Activation, AveragePooling2D, BatchNormalization, Concatenate, Conv2D, Dense,
                           Dropout, Flatten, GlobalAveragePooling2D, MaxPooling2D)
from minidl.losses import BinaryCrossentropy

TOLERANCE = 1e-6


def layer_cases(rng, quick):
    """(description, layer, input) for every layer kind, including the tricky settings."""
    size = 5 if quick else 7

    def image(channels=3, height=size, width=size):
        return rng.standard_normal((2, height, width, channels))

    cases = [
        ("Conv2D 3x3 'valid'", Conv2D(4, (3, 3)), image()),
        ("Conv2D 1x7 'same' (InceptionV3's factorised kernel)", Conv2D(3, (1, 7), padding="same"), image(2)),
        ("Conv2D 3x3 stride 2 'same' (asymmetric padding)", Conv2D(3, 3, strides=2, padding="same"), image(2, 6, 6)),
        ("Conv2D 1x1 + relu (the pointwise fast path)", Conv2D(5, 1, activation="relu"), image(4)),
        ("BatchNormalization, training mode", BatchNormalization(), image(3) * 2 + 1),
        ("BatchNormalization(scale=False), training", BatchNormalization(scale=False), image(3)),
        ("BatchNormalization, inference mode", BatchNormalization(), image(3)),
        ("MaxPooling2D 3x3 stride 2 'valid'", MaxPooling2D((3, 3), strides=(2, 2)), image()),
        ("MaxPooling2D 2x2 'same'", MaxPooling2D((2, 2), padding="same"), image(2)),
        ("AveragePooling2D 3x3 stride 1 'same'", AveragePooling2D((3, 3), strides=(1, 1), padding="same"), image()),
        ("GlobalAveragePooling2D", GlobalAveragePooling2D(), image(4)),
        ("Dense + sigmoid", Dense(3, activation="sigmoid"), rng.standard_normal((4, 6))),
        ("Activation relu", Activation("relu"), rng.standard_normal((4, 6))),
        ("Activation sigmoid", Activation("sigmoid"), rng.standard_normal((4, 6))),
        ("Activation softmax", Activation("softmax"), rng.standard_normal((4, 6))),
        ("Dropout(0.5), training (the mask is replayed)", Dropout(0.5, seed=1), rng.standard_normal((4, 6))),
        ("Flatten", Flatten(), image(2)),
        ("Concatenate of 2 inputs", Concatenate(), [image(2), image(3)]),
    ]
    if quick:   # the tricky ones stay; the plain ones are covered by their harder siblings
        keep = ("1x7", "stride 2", "training mode", "MaxPooling2D 3x3", "Dense", "Dropout", "Concatenate",
                "softmax", "GlobalAverage")
        cases = [case for case in cases if any(word in case[0] for word in keep)]
    return cases


def check_layer(layer, inputs, training=True):
    report = minidl.check_gradients(layer, inputs, training=training, max_entries=40, directions=3)
    return report.max_error, len(report.rows)


def check_binary_crossentropy(rng):
    """The loss is not a layer: compare its gradients with central differences directly.

    Two paths, as in training: from probabilities p (clipped) and from logits z
    (what minidl uses when the model ends in a sigmoid).
    """
    labels = rng.integers(0, 2, (6, 1)).astype(np.float64)
    step = 1e-6
    results = []
    for from_logits in (False, True):
        loss = BinaryCrossentropy(from_logits=from_logits)
        values = rng.standard_normal((6, 1)) * 2 if from_logits else rng.uniform(0.05, 0.95, (6, 1))
        if from_logits:
            _, analytic = loss.value_and_grad_from_logits(labels, values)
        else:
            analytic = loss.gradient(labels, values)
        numeric = np.empty_like(values)
        for i in range(values.size):
            plus, minus = values.copy(), values.copy()
            plus.flat[i] += step
            minus.flat[i] -= step
            numeric.flat[i] = (loss(labels, plus) - loss(labels, minus)) / (2 * step)
        name = "binary_crossentropy from logits z" if from_logits else "binary_crossentropy from probabilities p"
        results.append((name, relative_error(analytic, numeric), 1))
    return results


class BatchNormalizationMissingTerms(BatchNormalization):
    """A WRONG batch norm backward: it treats the batch mean and variance as constants.

    The correct input gradient (``minidl/kernels/reference/batchnorm.py`` derives it) is

        dL/dx = gamma / (n sqrt(var + eps)) * (n g - sum g - x_hat * sum(g x_hat))

    This one keeps only the first term, ``g * gamma / sqrt(var + eps)`` --
    what you get if you forget that every x moves the mean and the variance too.
    """

    def backward(self, grad_output):
        _, _, _, inv_std, gamma = self.saved
        super().backward(grad_output)                        # keeps the parameter gradients right
        scale = inv_std if gamma is None else gamma * inv_std
        return grad_output * scale                           # the missing terms: - sum g - x_hat sum(g x_hat)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer, smaller cases (a few seconds)")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    minidl.initializers.seed(0)      # the same weights, hence the same table, on every run

    rows = []
    for description, layer, inputs in layer_cases(rng, args.quick):
        training = "inference" not in description
        error, arrays = check_layer(layer, inputs, training=training)
        rows.append((description, error, arrays))
    rows.extend(check_binary_crossentropy(rng))

    print(f"{'what is checked':<58}{'arrays':>7}  {'max rel. error':>14}  result")
    print("-" * 92)
    failures = 0
    for description, error, arrays in rows:
        passed = error < TOLERANCE
        failures += not passed
        print(f"{description:<58}{arrays:>7}  {error:>14.2e}  {'ok' if passed else 'FAIL'}")
    print(f"\n{len(rows) - failures}/{len(rows)} correct backward passes agree with finite differences "
          f"(tolerance {TOLERANCE:g}).")

    print("\nNow a deliberately broken backward: batch norm without the mean/variance terms.")
    broken = BatchNormalizationMissingTerms(name="broken_batch_norm")
    report = minidl.check_gradients(broken, rng.standard_normal((4, 3, 3, 2)) * 2 + 1, training=True)
    print(report)
    caught = not report.passed(TOLERANCE)
    print(f"-> {'CAUGHT' if caught else 'NOT caught'}: the input gradient is off by "
          f"{report.rows[0][3]:.2f} (relative), while gamma and beta, whose formulas are right, still agree.")
    print("   In inference mode the same formula is correct -- the statistics are constants there:")
    inference_report = minidl.check_gradients(broken, rng.standard_normal((4, 3, 3, 2)), training=False)
    print(f"   inference-mode max error {inference_report.max_error:.2e}")

    if failures:
        print(f"\n{failures} correct layer(s) FAILED their gradient check", file=sys.stderr)
        return 1
    if not caught:
        print("\nThe broken batch norm was not caught -- the check itself is broken", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
