"""Benchmark InceptionV3 end to end: inference on 5 images, one training step of the workshop model.

* inference: ``InceptionV3(include_top=False)`` on a batch of 5 images at 299x299 (float32,
  ``predict``, batch statistics not used);
* training step: the workshop model (InceptionV3 base + GAP -> Dense(256, relu) ->
  Dropout(0.5) -> Dense(1, sigmoid) in a nested Sequential), compiled with
  Adam(lr=1e-4, epsilon=1e-8) and binary_crossentropy, one ``train_on_batch`` on 5 images:
  forward (BN in training mode), backward, Adam update of all 22.3 M parameters.

Each is run once to warm up (Numba compilation, memory), then N times; the median is
printed with GFLOP/s, counting 5.73 GMAC = 11.46 GFLOP per image forward and ~3x that
for a training step (forward + grad-input + grad-weight). Peak resident memory closes the
report. For reference (issue 3), on this project's 2-core machines TensorFlow 2.21 CPU takes
0.21 s for the inference and 0.84 s for the training step; PyTorch 2.13 CPU 0.53 s and 1.49 s.

Usage::

    PYTHONPATH=. python benchmarks/bench_inception.py             # 3 timed runs each
    PYTHONPATH=. python benchmarks/bench_inception.py --runs 5
"""
import argparse
import os
import platform
import resource
import sys
import statistics
import time

import numpy as np

import minidl
from minidl import applications

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_step import build_workshop_model  # noqa: E402  (one definition of the workshop model)

BATCH = 5
GMAC_PER_IMAGE = 5.73
FORWARD_GFLOP = 2 * GMAC_PER_IMAGE * BATCH          # one multiply-add = 2 floating-point operations
TRAINING_GFLOP = 3 * FORWARD_GFLOP



def timed(function, runs):
    function()                                       # warm-up: JIT compilation, allocations
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return times


def report(what, times, gflop):
    median = statistics.median(times)
    print(f"{what:<34} median {median:7.3f} s   (min {min(times):.3f}, max {max(times):.3f}, "
          f"{len(times)} runs)   {gflop / median:6.2f} GFLOP/s")


def peak_rss_mib():
    # ru_maxrss is in KiB on Linux, in bytes on macOS.
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if platform.system() == "Darwin" else peak / 1024


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="timed runs after the warm-up")
    arguments = parser.parse_args()

    print(f"minidl {minidl.__version__}, numpy {np.__version__}, {os.cpu_count()} CPUs, "
          f"{platform.processor() or platform.machine()}, kernels: {minidl.config.kernel_path()}")
    rng = np.random.default_rng(0)
    images = rng.random((BATCH, 299, 299, 3), dtype=np.float32)
    labels = rng.integers(0, 2, size=(BATCH, 1)).astype(np.float32)

    start = time.perf_counter()
    base = applications.InceptionV3(weights=None, include_top=False, input_shape=(299, 299, 3))
    print(f"build InceptionV3                  {time.perf_counter() - start:7.3f} s")

    times = timed(lambda: base.predict(images, batch_size=BATCH), arguments.runs)
    report(f"inference, batch {BATCH}", times, FORWARD_GFLOP)
    print(f"  peak RSS after inference: {peak_rss_mib():.0f} MiB")

    model = build_workshop_model(base)
    times = timed(lambda: model.train_on_batch(images, labels), arguments.runs)
    report(f"training step, batch {BATCH}", times, TRAINING_GFLOP)
    print(f"  peak RSS after training: {peak_rss_mib():.0f} MiB")
    print("reference (2 cores): TensorFlow 2.21 0.21 s / 0.84 s; PyTorch 2.13 0.53 s / 1.49 s")


if __name__ == "__main__":
    main()
