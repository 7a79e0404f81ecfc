"""How close are minidl's convolutions to the bare matrix products inside them?

For all 94 InceptionV3 convolutions (batch 5, 299x299, float32), each round times:

* **bare**: the layer's matrix product alone, ``cols @ kernel`` on a ready-made im2col
  matrix (built before the clock starts) -- what OpenBLAS needs for the arithmetic;
* **fused**: the inference convolution as ``predict`` runs it -- im2col chunk by chunk, the
  products, batch norm + ReLU on each chunk (the engine's ``conv2d_forward`` with an epilogue).

The two alternate in every round, and the ratio fused / bare is taken per round, so the
drift of a shared machine cancels. A ratio near 1.0 means the convolution costs what its
products cost: only a faster product would make it faster.

Usage::

    PYTHONPATH=. python benchmarks/conv_floor.py --rounds 6
"""
import argparse
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_kernels import BATCH, inception_v3_convolutions  # noqa: E402

from minidl import kernels  # noqa: E402
from minidl.kernels.fast import batchnorm_numba  # noqa: E402
from minidl.kernels.fast import conv as fast_conv  # noqa: E402


def make_layers(rng):
    """(x, kernel, strides, pads, batch-norm affine) for every InceptionV3 convolution."""
    layers = []
    for size, kernel_size, stride, padding, channels_in, channels_out in inception_v3_convolutions():
        x = rng.random((BATCH, size, size, channels_in), dtype=np.float32)
        kernel = rng.random(kernel_size + (channels_in, channels_out), dtype=np.float32) - 0.5
        _, _, pads = kernels.conv_geometry(x.shape, kernel_size, (stride, stride), padding)
        affine = batchnorm_numba.batchnorm_inference_affine(
            rng.random(channels_out).astype(np.float32), rng.uniform(0.5, 2, channels_out).astype(np.float32),
            None, None, 1e-3, channels_out, np.float32)
        layers.append((x, kernel, (stride, stride), pads, affine))
    return layers


def bare_product_seconds(layer):
    x, kernel, strides, pads, _ = layer
    if kernel.shape[:2] == (1, 1) and strides == (1, 1):
        cols = x.reshape(-1, x.shape[3])
    else:
        cols = kernels.im2col(x, kernel.shape[:2], strides, pads)
    kernel_2d = kernel.reshape(-1, kernel.shape[3])
    out = np.empty((cols.shape[0], kernel_2d.shape[1]), dtype=np.float32)
    start = time.perf_counter()
    np.matmul(cols, kernel_2d, out=out)
    return time.perf_counter() - start


def fused_convolution_seconds(layer):
    x, kernel, strides, pads, affine = layer

    def batchnorm_then_relu(rows):
        batchnorm_numba.batchnorm_inference_rows(rows, affine, relu=True, out=rows)

    start = time.perf_counter()
    fast_conv.conv2d_forward(x, kernel, strides, pads, epilogue=batchnorm_then_relu)
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args()
    layers = make_layers(np.random.default_rng(0))
    for layer in layers:                       # warm-up: JIT load, first allocations
        bare_product_seconds(layer)
        fused_convolution_seconds(layer)
    bare, fused = [], []
    for _ in range(args.rounds):
        bare.append(sum(bare_product_seconds(layer) for layer in layers))
        fused.append(sum(fused_convolution_seconds(layer) for layer in layers))
    ratio = statistics.median(f / b for f, b in zip(fused, bare))
    print(f"94 InceptionV3 convolutions, batch {BATCH}: bare products {statistics.median(bare) * 1e3:.0f} ms, "
          f"fused convolutions (im2col + products + batch norm + ReLU) {statistics.median(fused) * 1e3:.0f} ms; "
          f"median ratio fused / bare {ratio:.3f}")


if __name__ == "__main__":
    main()
