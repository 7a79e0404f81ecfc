"""Compare two versions of minidl (two source trees), paired: both back to back in every round.

A change to a hot path is measured before and after *in one run*: on a shared VM a step's
time drifts by +-20% from minute to minute, more than most changes are worth. Each version
runs in its own long-lived worker process (``PYTHONPATH`` = its tree), which builds the
workshop's model once and then times one call per request. Rounds alternate the order (A then
B, B then A, ...), and the median of the per-round ratios B/A cancels the drift: both halves
of a pair see the same machine. Only one worker computes at a time.

Usage (make the "before" tree with ``git worktree add /tmp/minidl_before <commit>``)::

    python benchmarks/paired_versions.py /tmp/minidl_before . --phase train --rounds 12
    python benchmarks/paired_versions.py /tmp/minidl_before . --phase predict --rounds 20
    python benchmarks/paired_versions.py /tmp/minidl_before . --phase top2 --rounds 12
    python benchmarks/paired_versions.py . . --env-b MINIDL_WINOGRAD=0     # a setting, same tree

Either side may also be TensorFlow instead of a tree (the word ``tensorflow``: Keras 3's
InceptionV3 with the same head and freezing, ``bench_step.py``'s model), run by another
interpreter: the same paired rounds then compare minidl with TensorFlow, which one run of
``bench_step.py`` (each framework in turn) cannot do as reliably on a noisy machine::

    python benchmarks/paired_versions.py tensorflow . --python-a /tmp/tfenv/bin/python --phase top2 --rounds 30

Output: both medians, the median ratio B/A (> 1: A is faster) and in how many rounds A was
faster.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))

_MINIDL_MODEL = """
import json, sys, time
sys.path.insert(0, {benchmarks!r})
from bench_step import build_workshop_model, workshop_batch
model = build_workshop_model(phase="train" if {phase!r} == "predict" else {phase!r})
"""

_KERAS_MODEL = """
import json, os, sys, time
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, {benchmarks!r})
import keras
from bench_step import _keras3_model, workshop_batch
model = _keras3_model(keras, "train" if {phase!r} == "predict" else {phase!r})
"""

_TIMING_LOOP = """
x, y = workshop_batch()
call = (lambda: model.predict_on_batch(x)) if {phase!r} == "predict" else (lambda: model.train_on_batch(x, y))
for _ in range(2):                  # warm-up: JIT load, first allocations, optimizer slots
    call()
print("ready", flush=True)
for line in sys.stdin:
    start = time.perf_counter()
    call()
    print(json.dumps(time.perf_counter() - start), flush=True)
"""


def start_worker(tree, phase, extra_env, python=None):
    """A long-lived worker timing one call per request: minidl from ``tree``, or Keras 3 on
    TensorFlow when ``tree`` is the word 'tensorflow' (``python``: the interpreter to use)."""
    keras = tree == "tensorflow"
    env = dict(os.environ) if keras else dict(os.environ, PYTHONPATH=os.path.abspath(tree))
    env.update(extra_env)
    code = ((_KERAS_MODEL if keras else _MINIDL_MODEL) + _TIMING_LOOP).format(benchmarks=HERE, phase=phase)
    worker = subprocess.Popen([python or sys.executable, "-c", code],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
                              cwd=HERE if keras else os.path.abspath(tree))
    if worker.stdout.readline().strip() != "ready":
        raise SystemExit(f"paired_versions.py: the worker for {tree} did not start (see its errors above)")
    return worker


def timed_call(worker, pause=0.0):
    """One timed call in ``worker``, after ``pause`` seconds of quiet (another process's thread
    pool may still be spinning after its own call)."""
    time.sleep(pause)
    worker.stdin.write("go\n")
    worker.stdin.flush()
    return json.loads(worker.stdout.readline())


def parse_env(settings):
    """['NAME=value', ...] -> {'NAME': 'value'}."""
    pairs = dict(setting.split("=", 1) for setting in settings)
    return pairs


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a", help="source tree A (e.g. the 'before' worktree), or 'tensorflow'")
    parser.add_argument("b", help="source tree B (e.g. '.')")
    parser.add_argument("--phase", choices=("predict", "train", "frozen", "top2"), default="train",
                        help="train: full fine-tune (Adam); frozen: base frozen; top2: the top two "
                             "Inception blocks and the head, SGD with momentum (bench_step.py's phases)")
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--env-a", nargs="*", default=[], help="NAME=value settings for A's worker")
    parser.add_argument("--env-b", nargs="*", default=[], help="NAME=value settings for B's worker")
    parser.add_argument("--python-a", help="the interpreter for A (e.g. a venv with TensorFlow)")
    parser.add_argument("--python-b", help="the interpreter for B")
    parser.add_argument("--calls", type=int, default=1,
                        help="timed calls per turn, back to back; the turn counts their median (a fit loop's "
                             "steps follow each other: with 3, the other process's last call has left the "
                             "caches and the thread pools as a training loop finds them)")
    parser.add_argument("--pause", type=float, default=0.0,
                        help="seconds of quiet before each timed call (use 0.5 against TensorFlow, whose "
                             "threads spin for a while after each of its calls)")
    args = parser.parse_args()
    workers = {"A": start_worker(args.a, args.phase, parse_env(args.env_a), args.python_a),
               "B": start_worker(args.b, args.phase, parse_env(args.env_b), args.python_b)}
    times = {"A": [], "B": []}
    try:
        for round_index in range(args.rounds):
            for name in ("AB" if round_index % 2 == 0 else "BA"):
                calls = [timed_call(workers[name], args.pause if call == 0 else 0.0) for call in range(args.calls)]
                times[name].append(statistics.median(calls))
    finally:
        for worker in workers.values():
            worker.stdin.close()
            worker.wait()
    ratios = [b / a for a, b in zip(times["A"], times["B"])]
    print(f"{args.phase}: A ({args.a} {' '.join(args.env_a)}) median {statistics.median(times['A']):.3f} s, "
          f"B ({args.b} {' '.join(args.env_b)}) median {statistics.median(times['B']):.3f} s; "
          f"median B/A {statistics.median(ratios):.3f}, A faster in {sum(r > 1 for r in ratios)} "
          f"of {args.rounds} rounds")


if __name__ == "__main__":
    main()
