"""Winograd's input and output transforms alone, on every InceptionV3 layer Winograd takes.

For each distinct layer shape (batch 5, 299x299, float32) the Numba transforms of
``minidl/kernels/fast/winograd_numba.py`` run over the whole layer chunk by chunk, as
``winograd.py`` cuts it: the input transform (x -> U), the output transform with the
inference batch norm + ReLU (M -> y). With ``--against PATH`` the same file of another
checkout (a ``git worktree`` of an older commit, say) runs too, the two alternating call
by call in this one process: a paired comparison of two versions of the kernels, per layer
and in total, weighted by how many layers of each shape InceptionV3 has.

Usage::

    PYTHONPATH=. python benchmarks/winograd_transforms.py
    git worktree add /tmp/before HEAD~1
    PYTHONPATH=. python benchmarks/winograd_transforms.py --against /tmp/before --repeats 15
"""
import argparse
import collections
import importlib.util
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_step import build_workshop_model

from minidl import kernels
from minidl.kernels.fast import winograd, winograd_numba
from minidl.kernels.fast.batchnorm_numba import (
    InferenceEpilogue,
    batchnorm_inference_affine,
)


def winograd_layers():
    """{(input shape, kernel shape, pads): how many InceptionV3 layers} for the layers Winograd takes."""
    model = build_workshop_model(phase="train")
    shapes = collections.Counter()
    for layer in model.walk_layers(recursive=True):
        if type(layer).__name__ != "Conv2D":
            continue
        x_shape = (5,) + tuple(layer.input_shape[1:])
        pads = kernels.conv_geometry(x_shape, layer.kernel.shape[:2], layer.strides, layer.padding)[2]
        if winograd.winograd_plan(x_shape, layer.kernel.shape, layer.strides, pads) is not None:
            shapes[(x_shape, tuple(layer.kernel.shape), pads)] += 1
    return shapes


def load_kernels_from(checkout):
    """``minidl/kernels/fast/winograd_numba.py`` of another checkout, as a module of its own."""
    path = os.path.join(checkout, "minidl", "kernels", "fast", "winograd_numba.py")
    spec = importlib.util.spec_from_file_location("winograd_numba_against", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def transform_calls(module, x_shape, kernel_shape, pads, rng):
    """(input transform, output transform) of the whole layer, each a function of no arguments."""
    plan = winograd.winograd_plan(x_shape, kernel_shape, (1, 1), pads)
    (output_h, output_w), _, (input_h, input_w) = plan.matrices(np.float32)
    positions = input_h.shape[0] * input_w.shape[0]
    tiles_w = plan.tiles[1]
    chunks = winograd.forward_chunks(plan, 4)             # as the engine's forward cuts the layer
    x = rng.standard_normal(x_shape).astype(np.float32)
    y = np.empty((plan.batch * plan.out_size[0] * plan.out_size[1], plan.filters), np.float32)
    tiles = {count: np.empty((positions, count * tiles_w, plan.channels), np.float32) for _, count in chunks}
    products = {count: rng.standard_normal((positions, count * tiles_w, plan.filters)).astype(np.float32)
                for _, count in chunks}
    affine = batchnorm_inference_affine(*(rng.uniform(0.5, 1.5, plan.filters).astype(np.float32) for _ in range(4)),
                                        1e-3, plan.filters, np.float32)
    epilogue = InferenceEpilogue(affine, relu=True)

    def input_transform():
        for first, count in chunks:
            module.winograd_input_rows(x, input_h, input_w, plan.tile_output, plan.pads, plan.tiles,
                                       first, count, tiles[count])

    def output_transform():
        for first, count in chunks:
            pixels = y[winograd._first_pixel(plan, first):winograd._first_pixel(plan, first + count)]
            module.winograd_output_rows(products[count], output_h, output_w, plan.tiles, first, count,
                                        plan.out_size, pixels, batchnorm=epilogue)

    return input_transform, output_transform


def median_seconds(function, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", metavar="CHECKOUT", help="another checkout's transforms, timed alternately")
    parser.add_argument("--repeats", type=int, default=9, help="calls per version and layer (median)")
    args = parser.parse_args()
    versions = {"this": winograd_numba}
    if args.against:
        versions["against"] = load_kernels_from(args.against)
    rng = np.random.default_rng(0)
    totals = collections.defaultdict(float)
    print(f"{'layer (x, kernel)':42s} {'n':>2s}  " + "  ".join(f"{name + ' in/out ms':>22s}" for name in versions))
    for (x_shape, kernel_shape, pads), count in winograd_layers().items():
        calls = {name: transform_calls(module, x_shape, kernel_shape, pads, rng) for name, module in versions.items()}
        for pair in calls.values():            # compile or load, first touch of the buffers
            for call in pair:
                call()
        times = {name: [[], []] for name in versions}
        for _ in range(args.repeats):          # the versions alternate call by call
            for name, pair in calls.items():
                for which, call in enumerate(pair):
                    times[name][which].append(median_seconds(call, 1))
        row = []
        for name in versions:
            seconds = [statistics.median(t) for t in times[name]]
            totals[name, 0] += count * seconds[0]
            totals[name, 1] += count * seconds[1]
            row.append(f"{seconds[0] * 1e3:10.2f} {seconds[1] * 1e3:10.2f}")
        label = f"{x_shape[1:]} {kernel_shape}"
        print(f"{label:42s} {count:2d}  " + "  ".join(f"{cell:>22s}" for cell in row))
    line = "  ".join(f"{totals[name, 0] * 1e3:10.2f} {totals[name, 1] * 1e3:10.2f}" for name in versions)
    print(f"{'all layers (x n)':42s} {'':2s}  {line}")
    if args.against:
        for which, part in enumerate(("input", "output")):
            print(f"{part} transforms, this / against: {totals['this', which] / totals['against', which]:.3f}")


if __name__ == "__main__":
    main()
