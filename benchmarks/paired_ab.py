"""Compare two run-time settings of minidl, paired: both back to back in every round.

On a shared VM a step's time drifts by +-20% from minute to minute, more than most changes
are worth. Alternating two settings in *pairs* -- A then B, then B then A, ... within one
process -- and taking the median of the per-round ratios B/A cancels the drift: both
halves of a pair see the same machine. It also says in how many rounds A was faster.

Settings (joined with '+'; unset ones keep minidl's default):

* ``fuse=0|1``  -- inference fusion of Conv2D -> BatchNormalization -> ReLU (and
  concatenation in place), ``minidl.config.set_inference_fusion``;
* ``share=0|1`` -- convolution chunks shared between the cores, ``MINIDL_SHARE_CHUNKS``.
* ``winograd=0|1`` -- Winograd convolutions in Conv2D's forward passes
  (``minidl.config.set_winograd``);
* ``branches=0|1`` -- an Inception block's branches run at once, one per core
  (``MINIDL_PARALLEL_BRANCHES``, ``minidl/engine/branches.py``).

Phases: ``predict``; ``train`` (the full fine-tune); ``frozen`` and ``top2`` (a training
step with the base frozen, or all but its top two Inception blocks, as in ``bench_step.py``).

Usage::

    PYTHONPATH=. python benchmarks/paired_ab.py --phase predict --rounds 30 fuse=1 fuse=0
    PYTHONPATH=. python benchmarks/paired_ab.py --phase train --rounds 16 share=1 share=0
    PYTHONPATH=. python benchmarks/paired_ab.py --phase frozen --rounds 20 branches=0 branches=1

Output: one line with both medians, the median ratio B/A (> 1: A is faster) and the count
of rounds in which A was faster.
"""
import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_step import build_workshop_model, workshop_batch  # noqa: E402

from minidl import config  # noqa: E402

SETTINGS = {
    "fuse": lambda value: config.set_inference_fusion(value == "1"),
    "share": lambda value: os.environ.__setitem__("MINIDL_SHARE_CHUNKS", value),
    "winograd": lambda value: config.set_winograd(value == "1"),
    "branches": lambda value: os.environ.__setitem__("MINIDL_PARALLEL_BRANCHES", value),
}


def parse_setting(text):
    """'fuse=1+share=0' -> {'fuse': '1', 'share': '0'}, with a clear error for anything else."""
    setting = {}
    for part in text.split("+"):
        name, _, value = part.partition("=")
        if name not in SETTINGS or value not in ("0", "1"):
            raise SystemExit(f"paired_ab.py: unknown setting {part!r} in {text!r}; "
                             f"use {', '.join(n + '=0|1' for n in SETTINGS)} joined with '+'")
        setting[name] = value
    return setting


def apply(setting):
    for name, value in setting.items():
        SETTINGS[name](value)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--phase", choices=("predict", "train", "frozen", "top2"), default="predict")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("a", help="setting A, e.g. fuse=1")
    parser.add_argument("b", help="setting B, e.g. fuse=0")
    args = parser.parse_args()
    settings = {"A": parse_setting(args.a), "B": parse_setting(args.b)}

    model = build_workshop_model(phase="train" if args.phase == "predict" else args.phase)
    x, y = workshop_batch()

    def one_call():
        start = time.perf_counter()
        if args.phase == "predict":
            model.predict_on_batch(x)
        else:
            model.train_on_batch(x, y)
        return time.perf_counter() - start

    for name in "AB":                 # warm-up: JIT load, first allocations, Adam slots
        apply(settings[name])
        one_call()
    times = {"A": [], "B": []}
    for round_index in range(args.rounds):
        for name in ("AB" if round_index % 2 == 0 else "BA"):
            apply(settings[name])
            times[name].append(one_call())
    ratios = [b / a for a, b in zip(times["A"], times["B"])]
    wins = sum(ratio > 1 for ratio in ratios)
    print(f"{args.phase}: A ({args.a}) median {statistics.median(times['A']):.3f} s, "
          f"B ({args.b}) median {statistics.median(times['B']):.3f} s; median B/A "
          f"{statistics.median(ratios):.3f}, A faster in {wins} of {args.rounds} rounds")


if __name__ == "__main__":
    main()
