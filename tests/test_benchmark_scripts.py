"""The benchmark scripts' own code runs (not their timings: benchmarks are not timed tests).

``bench_step.py``'s JIT report runs a snippet that calls every float32 kernel once, in a
fresh process with an empty Numba cache. A kernel whose calling rules change (Winograd
refusing a too-small input, say) must not break that report on the day of a side-by-side.
"""
import os
import sys

BENCHMARKS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks")


def test_the_jit_report_snippet_calls_every_kernel_without_error(capsys):
    sys.path.insert(0, BENCHMARKS)
    try:
        import bench_step
    finally:
        sys.path.remove(BENCHMARKS)
    exec(bench_step._EXERCISE_KERNELS, {})
    import_seconds, kernel_seconds = (float(value) for value in capsys.readouterr().out.split())
    assert import_seconds >= 0 and kernel_seconds > 0
