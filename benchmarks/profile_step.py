"""Where does a training step's time go?  Time per layer type within one workshop step.

The workshop's step (InceptionV3 without top at 299x299 + GAP -> Dense(256, relu) ->
Dropout -> Dense(1, sigmoid), batch 5, float32, Adam, ``train_on_batch``) is run with
timers wrapped around every layer's ``forward`` and ``backward``, the convolution's
helper kernels (im2col, col2im, ...) and the optimizer. Times are *exclusive*: a
Conv2D forward's own line is what remains after its im2col was counted on its own line,
i.e. the matrix product (GEMM) plus small bookkeeping.

Usage (``--clock cpu`` measures CPU time instead of wall time: use it, with one thread, to
compare two versions of a kernel while other jobs load the machine)::

    PYTHONPATH=. python benchmarks/profile_step.py             # 3 profiled steps, median
    PYTHONPATH=. python benchmarks/profile_step.py --steps 5
    PYTHONPATH=. python benchmarks/profile_step.py --predict   # inference instead
    PYTHONPATH=. python benchmarks/profile_step.py --phase top2   # layers[:249] frozen (or: frozen)
    MINIDL_KERNELS=reference PYTHONPATH=. python benchmarks/profile_step.py   # readable path
    NUMBA_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 PYTHONPATH=. python benchmarks/profile_step.py --clock cpu

Output: one row per (layer type, phase, kernel) sorted by time, the share of the step,
and an ``other`` row for what no timer covered (the graph walk, the loss, Python).

At inference each Conv2D -> BatchNormalization -> ReLU chain runs fused (one line, "Conv2D +
BatchNormalization + ReLU forward (fused)", ``minidl/engine/fusion.py``), and in a training
step each BatchNormalization -> ReLU (its forward and its backward lines "(fused, training)");
``MINIDL_FUSE_INFERENCE=0`` splits them. The per-layer timers need the layers to run one after
the other, so this script runs an Inception block's branches in turn
(``MINIDL_PARALLEL_BRANCHES=0``, ``minidl/engine/branches.py``) unless told otherwise. When the forward chunks are shared between the cores
(``minidl/kernels/fast/chunks.py``) their im2col, product and epilogue overlap on several
threads, so they are timed together on the convolution's line; ``MINIDL_SHARE_CHUNKS=0``
runs the chunks in turn and times each part. Convolutions that run as Winograd convolutions
(``minidl/kernels/fast/winograd.py``) get a line of their own; ``MINIDL_WINOGRAD=0`` turns
them off.
"""
import argparse
import collections
import os
import statistics
import sys
import time

import numpy as np

os.environ.setdefault("MINIDL_PARALLEL_BRANCHES", "0")   # timers nest on one thread (docstring)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_step import build_workshop_model, workshop_batch  # noqa: E402

import minidl  # noqa: E402
from minidl import kernels, layers, optimizers  # noqa: E402
from minidl.engine import fusion  # noqa: E402
from minidl.kernels.fast import batchnorm_numba, chunks, conv_numba, winograd, winograd_numba  # noqa: E402
from minidl.kernels.fast import conv as fast_conv  # noqa: E402
from minidl.models import Model  # noqa: E402


class ExclusiveTimer:
    """Nested timers: each label gets its own time minus the time of the timers inside it."""

    def __init__(self, clock=time.perf_counter):
        self.clock = clock
        self.totals = collections.defaultdict(float)
        self.calls = collections.defaultdict(int)
        self._stack = []   # [label, start, time spent in children]

    def wrap(self, function, label_of):
        timer = self

        def timed(*args, **kwargs):
            label = label_of(timer._stack[-1][0] if timer._stack else None)
            timer._stack.append([label, timer.clock(), 0.0])
            try:
                return function(*args, **kwargs)
            finally:
                label, start, children = timer._stack.pop()
                elapsed = timer.clock() - start
                timer.totals[label] += elapsed - children
                timer.calls[label] += 1
                if timer._stack:
                    timer._stack[-1][2] += elapsed

        timed.__wrapped__ = function
        return timed

    def reset(self):
        self.totals.clear()
        self.calls.clear()


def _leaf_layer_classes():
    """Every layer class exported by minidl.layers except models (they only dispatch)."""
    classes = set()
    for value in vars(layers).values():
        if isinstance(value, type) and issubclass(value, layers.Layer) and not issubclass(value, Model):
            classes.add(value)
    return classes


# The engine's kernels a convolution calls, each timed on its own line (parent line + name):
# (module, function name). Per-chunk kernels (the rows ones) run on several threads at once
# when chunks are shared between the cores (minidl/kernels/fast/chunks.py): they overlap, so
# they cannot get lines of their own, and the convolution's line then holds im2col +
# products (+ col2im, + batch norm + ReLU when fused).
KERNEL_HELPERS = ((conv_numba, "im2col"), (conv_numba, "col2im"))
CHUNK_KERNELS = ((conv_numba, "im2col_rows"), (conv_numba, "col2im_rows_add"),
                 (batchnorm_numba, "batchnorm_inference_rows"), (winograd_numba, "winograd_input_rows"),
                 (winograd_numba, "winograd_output_rows"))
PHASES = {"forward": "forward", "backward": "backward"}


def chunks_shared():
    """Will convolutions share their chunks between the cores (after one kernel has run)?"""
    kernels.relu_forward(np.zeros(4, np.float32))   # loads the engine, starts Numba's threading layer
    return chunks.sharing_threads() > 1


def _wrap_attribute(timer, owner, name, label_of):
    setattr(owner, name, timer.wrap(getattr(owner, name), label_of))


def instrument(timer):
    for cls in _leaf_layer_classes():
        for phase, words in PHASES.items():
            if phase in cls.__dict__:
                label = f"{cls.__name__} {words}"
                setattr(cls, phase, timer.wrap(cls.__dict__[phase], lambda parent, label=label: label))
    fusion.ConvBatchNormReLU.run = timer.wrap(
        fusion.ConvBatchNormReLU.run, lambda parent: "Conv2D + BatchNormalization + ReLU forward (fused)")
    fusion.BatchNormReLUTraining.run = timer.wrap(
        fusion.BatchNormReLUTraining.run, lambda parent: "BatchNormalization + ReLU forward (fused, training)")
    fusion.GradientBeforeReLU.batchnorm_backward = timer.wrap(
        fusion.GradientBeforeReLU.batchnorm_backward,
        lambda parent: "BatchNormalization + ReLU backward (fused, training)")
    sharing = chunks_shared()
    for module, name in KERNEL_HELPERS + (() if sharing else CHUNK_KERNELS):
        _wrap_attribute(timer, module, name, lambda parent, name=name: f"{(parent or '?').split(':')[0]}: {name}")
    # Whatever conv2d_forward/backward do besides im2col/col2im: the GEMMs. The layers call
    # them through minidl.kernels, the fused steps through the engine's conv module.
    products = "im2col + GEMM (+ col2im, epilogue)" if sharing else "GEMM (+ reshapes)"
    for owner in (kernels, fast_conv):
        for name in ("conv2d_forward", "conv2d_backward"):
            _wrap_attribute(timer, owner, name, lambda parent: f"{parent or '?'}: {products}")
    # Winograd convolutions: their own line under the convolution's.
    parts = "Winograd transforms + products (+ epilogue)" if sharing else "Winograd products (+ reshapes)"
    winograd.winograd_conv2d_forward = timer.wrap(winograd.winograd_conv2d_forward,
                                                  lambda parent: f"{parent or '?'}: {parts}")
    optimizers.Optimizer.apply_gradients = timer.wrap(optimizers.Optimizer.apply_gradients,
                                                      lambda parent: "optimizer (Adam) update")


def table_rows(step_times, per_step, calls):
    """The table's rows, (label, seconds, calls), longest first: each timer's median over
    the steps, and "other", the median over the steps of what no timer covered in that step.

    "Other" is taken step by step: the rows' medians come from different steps, and the
    step's median minus their sum was noise (-30 to +40 ms of a 0.45 s step on a busy VM).
    """
    labels = set().union(*per_step)
    rows = [(label, statistics.median(times.get(label, 0.0) for times in per_step), calls.get(label, 0))
            for label in labels]
    uncovered = [total - sum(times.values()) for total, times in zip(step_times, per_step)]
    rows.append(("other (graph walk, loss, Python)", max(statistics.median(uncovered), 0.0), 0))
    rows.sort(key=lambda row: row[1], reverse=True)
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3, help="profiled steps (median per row)")
    parser.add_argument("--batch", type=int, default=5)
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="cpu = process CPU time of all threads: steadier when other jobs "
                             "load the machine (best with NUMBA_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1)")
    parser.add_argument("--predict", action="store_true",
                        help="profile inference (model.predict on the batch) instead of a training step")
    parser.add_argument("--phase", choices=("train", "frozen", "top2"), default="train",
                        help="which training step: the full fine-tune, the base frozen, or the top "
                             "two Inception blocks trainable (bench_step.py's phases)")
    args = parser.parse_args()

    model = build_workshop_model(phase=args.phase)
    x, y = workshop_batch(args.batch)
    if args.predict:
        def step_function():
            model.predict(x, batch_size=args.batch)
    else:
        def step_function():
            model.train_on_batch(x, y)
    step_function()                     # warm-up: JIT load, first allocations, Adam slots

    clock = time.perf_counter if args.clock == "wall" else time.process_time
    timer = ExclusiveTimer(clock)
    instrument(timer)
    per_step, step_times = [], []
    for _ in range(args.steps):
        timer.reset()
        start = clock()
        step_function()
        step_times.append(clock() - start)
        per_step.append(dict(timer.totals))
        calls = dict(timer.calls)
    step = statistics.median(step_times)
    rows = table_rows(step_times, per_step, calls)

    print(f"minidl {getattr(minidl, '__version__', '?')}, kernel path "
          f"{minidl.config.kernel_path()}, batch {args.batch}, {args.steps} profiled steps, "
          f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    what = "predict on the batch" if args.predict else f"training step ({args.phase})"
    print(f"{what} (median, with timers, {args.clock} clock): {step * 1e3:.0f} ms")
    width = max(52, max(len(label) for label, _, _ in rows))
    print(f"{'where (exclusive time)':{width}s} {'calls':>6s} {'ms':>8s} {'share':>6s}")
    print("-" * (width + 23))
    for label, seconds, count in rows:
        print(f"{label:{width}s} {count:6d} {seconds * 1e3:8.1f} {seconds / step:6.1%}")
    conv = sum(t for label, t, _ in rows if label.startswith("Conv2D"))
    print("-" * (width + 23))
    print(f"Conv2D in total: {conv * 1e3:.0f} ms ({conv / step:.0%}); "
          f"everything else: {(step - conv) * 1e3:.0f} ms ({1 - conv / step:.0%})")


if __name__ == "__main__":
    np.random.seed(0)
    main()
