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


def _import_profile_step(monkeypatch):
    """profile_step.py, imported without keeping the MINIDL_PARALLEL_BRANCHES=0 it sets."""
    monkeypatch.setenv("MINIDL_PARALLEL_BRANCHES", os.environ.get("MINIDL_PARALLEL_BRANCHES", ""))
    monkeypatch.syspath_prepend(BENCHMARKS)
    import profile_step
    return profile_step


def test_profile_step_other_is_what_no_timer_covered_step_by_step(monkeypatch):
    profile_step = _import_profile_step(monkeypatch)
    # Three steps whose timers moved a lot: the rows' medians (conv 0.30, pool 0.05) come
    # from different steps; each step left 0.01 s uncovered.
    step_times = [0.41, 0.36, 0.51]
    per_step = [{"conv": 0.30, "pool": 0.10}, {"conv": 0.30, "pool": 0.05}, {"conv": 0.45, "pool": 0.05}]
    rows = profile_step.table_rows(step_times, per_step, {"conv": 94, "pool": 13})
    assert [label for label, _, _ in rows] == ["conv", "pool", "other (graph walk, loss, Python)"]
    seconds = {label: value for label, value, _ in rows}
    assert abs(seconds["conv"] - 0.30) < 1e-12 and abs(seconds["pool"] - 0.05) < 1e-12
    # The old way (the step's median 0.41 minus the medians' sum 0.35) said 0.06.
    assert abs(seconds["other (graph walk, loss, Python)"] - 0.01) < 1e-12
    assert {label: count for label, _, count in rows}["conv"] == 94


def test_profile_step_timers_count_exclusive_time(monkeypatch):
    profile_step = _import_profile_step(monkeypatch)
    now = [0.0]
    timer = profile_step.ExclusiveTimer(clock=lambda: now[0])

    def inner():
        now[0] += 2.0

    timed_inner = timer.wrap(inner, lambda parent: f"{parent}: inner")

    def outer():
        now[0] += 1.0
        timed_inner()
        now[0] += 3.0

    timer.wrap(outer, lambda parent: "outer")()
    assert dict(timer.totals) == {"outer": 4.0, "outer: inner": 2.0}
    assert dict(timer.calls) == {"outer": 1, "outer: inner": 1}
