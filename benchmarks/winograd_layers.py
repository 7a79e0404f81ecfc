"""Winograd or im2col, layer by layer, inside whole InceptionV3 inference passes.

Runs the workshop model's predict (batch 5, 299x299) many times, alternating
``minidl.config.set_winograd(True)`` and ``(False)`` pass by pass, and times every
convolution that Winograd could take (``winograd.winograd_plan``) inside its fused
Conv2D -> BN -> ReLU step (``minidl/engine/fusion.py``). Prints, per layer shape, the
median times of both and the difference, then the totals. This is how
``minidl/kernels/fast/winograd.py``'s settings were
chosen; the tuning flags below change them for one run.

Usage::

    PYTHONPATH=. python benchmarks/winograd_layers.py --passes 16
    PYTHONPATH=. python benchmarks/winograd_layers.py --min-channels 1      # also the thin 149x149 layers
    PYTHONPATH=. python benchmarks/winograd_layers.py --whole-layer-mb 8 --chunk-mb 2
"""
import argparse
import collections
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from paired_ab import build_workshop_model, workshop_batch  # noqa: E402

from minidl import config  # noqa: E402
from minidl.engine.fusion import ConvBatchNormReLU  # noqa: E402
from minidl.kernels.fast import winograd  # noqa: E402


def time_each_convolution(times):
    """Wrap the engine's fused steps: append each call's seconds to
    times[(layer, kernel shape, input shape)][winograd on?] when Winograd could take the layer."""
    original = ConvBatchNormReLU.run

    def timed(self, values, buffers):
        inputs = values[id(self.input_tensor)]
        start = time.perf_counter()
        result = original(self, values, buffers)
        seconds = time.perf_counter() - start
        conv = self.conv
        pads = conv.padding_for(inputs.shape)
        if winograd.winograd_plan(inputs.shape, conv.kernel.value.shape, conv.strides, pads) is not None:
            times[conv.name, conv.kernel.value.shape, inputs.shape[1:]][config.winograd()].append(seconds)
        return result

    ConvBatchNormReLU.run = timed


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--passes", type=int, default=16, help="inference passes of each kind")
    parser.add_argument("--min-channels", type=int, help=f"default {winograd._MIN_CHANNELS}")
    parser.add_argument("--whole-layer-mb", type=float,
                        help=f"default {winograd._WHOLE_LAYER_BYTES / 2**20:g}")
    parser.add_argument("--chunk-mb", type=float, help=f"default {winograd._CHUNK_BYTES / 2**20:g}")
    args = parser.parse_args()
    if args.min_channels is not None:
        winograd._MIN_CHANNELS = args.min_channels
    if args.whole_layer_mb is not None:
        winograd._WHOLE_LAYER_BYTES = int(args.whole_layer_mb * 2**20)
    if args.chunk_mb is not None:
        winograd._CHUNK_BYTES = int(args.chunk_mb * 2**20)
    config.set_inference_fusion(True)

    model = build_workshop_model()
    x, _ = workshop_batch()
    times = collections.defaultdict(lambda: {True: [], False: []})
    for setting in (True, False):                   # warm-up: JIT load, transformed kernels
        config.set_winograd(setting)
        model.predict_on_batch(x)
    time_each_convolution(times)
    for index in range(args.passes):
        for setting in ((True, False) if index % 2 == 0 else (False, True)):
            config.set_winograd(setting)
            model.predict_on_batch(x)

    by_shape = collections.defaultdict(lambda: [0, 0.0, 0.0])   # count, Winograd s, im2col s
    for (_, kernel_shape, input_shape), seconds in times.items():
        entry = by_shape[kernel_shape, input_shape]
        entry[0] += 1
        entry[1] += statistics.median(seconds[True])
        entry[2] += statistics.median(seconds[False])
    print(f"{'input':>14} {'kernel':>18} {'layers':>6} {'Winograd ms':>12} {'im2col ms':>10} {'saved ms':>9}")
    for (kernel_shape, input_shape), (count, fast, plain) in sorted(by_shape.items(), key=lambda item: -item[1][2]):
        print(f"{str(input_shape):>14} {str(kernel_shape):>18} {count:>6} {fast * 1e3:>12.2f} "
              f"{plain * 1e3:>10.2f} {(plain - fast) * 1e3:>+9.2f}")
    total_fast = sum(entry[1] for entry in by_shape.values())
    total_plain = sum(entry[2] for entry in by_shape.values())
    print(f"all {sum(entry[0] for entry in by_shape.values())} layers: Winograd {total_fast * 1e3:.1f} ms, "
          f"im2col {total_plain * 1e3:.1f} ms, saved {(total_plain - total_fast) * 1e3:+.1f} ms per pass "
          f"(medians of {args.passes} passes each)")


if __name__ == "__main__":
    main()
