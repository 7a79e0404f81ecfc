"""Every engine loop compiled twice (minidl/kernels/fast/compiled.py): the builds agree bit for bit.

* the serial and the parallel build of every loop give the same numbers, bit for bit, on
  float32 and float64 inputs of uneven sizes (so nothing depends on which build ran);
* small work runs the serial build and leaves the parallel one uncompiled; large work runs
  the parallel one, and from then on so does all work of that dtype;
* the first compilation of a run prints one line, a warm cache prints nothing.
"""
import os
import subprocess
import sys

import numpy as np
import pytest
from numba import prange

from minidl.kernels.fast import (adam_numba, batchnorm_numba, compiled, conv_numba, pooling_numba, relu_numba,
                                 sgd_numba)
from minidl.kernels.fast.compiled import TwoBuilds

RNG = np.random.default_rng(0)


def _arrays(dtype):
    """Arguments for every loop, as the engine's wrappers pass them (work excluded)."""
    x = RNG.normal(size=(3, 13, 11, 5)).astype(dtype)
    rows = x.reshape(-1, 5)
    grad_rows = RNG.normal(size=rows.shape).astype(dtype)
    channel = lambda: RNG.normal(size=5).astype(dtype)          # noqa: E731
    flat = RNG.normal(size=1001).astype(dtype)
    y, argmax = pooling_numba.max_pool_forward(x, (3, 3), (2, 2), ((0, 1), (0, 1)))
    cols = np.zeros((2 * 11, 9 * 5), dtype)
    return {
        "relu forward": (relu_numba._relu_forward_kernel, (flat, np.empty_like(flat))),
        "relu backward": (relu_numba._relu_backward_kernel, (flat, flat * 0.5, np.empty_like(flat))),
        "adam": (adam_numba._adam_kernel, (flat.copy(), flat * 0.1, flat * 0.01, np.abs(flat) * 0.02,
                                           *(dtype(v) for v in (0.9, 0.999, 0.1, 0.001, 1e-7, 1e-3)))),
        "sgd momentum": (sgd_numba._sgd_momentum_kernel, (flat.copy(), flat * 0.1, flat * 0.01, dtype(0.9),
                                                          dtype(1e-3), False)),
        "sgd nesterov": (sgd_numba._sgd_momentum_kernel, (flat.copy(), flat * 0.1, flat * 0.01, dtype(0.9),
                                                          dtype(1e-3), True)),
        "bn statistics": (batchnorm_numba._mean_and_variance, (rows,)),
        "bn scale and shift": (batchnorm_numba._scale_and_shift,
                               (rows, channel(), channel(), channel(), True, np.empty_like(rows))),
        "bn scale and shift in place": (batchnorm_numba._scale_and_shift_in_place,
                                        (np.concatenate([rows, rows], axis=1), 3, channel()[:2], channel()[:2],
                                         channel()[:2], True)),
        "bn gradient sums": (batchnorm_numba._gradient_sums, (grad_rows, rows, channel(), None)),
        "bn gradient sums through relu": (batchnorm_numba._gradient_sums,
                                          (grad_rows, rows, channel(), (channel(), channel(), channel()))),
        "bn input gradient": (batchnorm_numba._input_gradient,
                              (grad_rows, rows, channel(), channel(), channel(), channel(), None)),
        "bn input gradient through relu": (batchnorm_numba._input_gradient,
                                           (grad_rows, rows, channel(), channel(), channel(), channel(),
                                            (channel(), channel(), channel()))),
        "max pool forward": (pooling_numba._max_pool_forward_kernel, (x, 3, 3, 2, 2, 0, 0, 7, 6)),
        "max pool backward": (pooling_numba._max_pool_backward_kernel, (y, argmax, 13, 11)),
        "avg pool forward": (pooling_numba._avg_pool_forward_kernel, (x, 3, 3, 1, 1, 1, 1, 13, 11)),
        "avg pool backward": (pooling_numba._avg_pool_backward_kernel, (x, 13, 11, 3, 3, 1, 1, 1, 1)),
        "im2col rows": (conv_numba._im2col_rows_kernel, (x, 3, 3, 1, 1, 1, 1, 13, 11, 5, 2, cols)),
        "col2im rows": (conv_numba._col2im_rows_add_kernel,
                        (RNG.normal(size=cols.shape).astype(dtype), 5, 2, np.zeros((3, 13, 11 * 5), dtype), 5,
                         3, 3, 1, 1, 1, 1, 13, 11)),
    }


def _copies(arguments):
    return [a.copy() if isinstance(a, np.ndarray) else a for a in arguments]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", sorted(_arrays(np.float32)))
def test_the_serial_and_the_parallel_build_agree_bit_for_bit(name, dtype):
    kernel, arguments = _arrays(dtype)[name]
    serial_arguments, parallel_arguments = _copies(arguments), _copies(arguments)
    serial = kernel.serial(*serial_arguments)
    parallel = kernel.parallel(*parallel_arguments)
    results = [(serial, parallel)] if not isinstance(serial, tuple) else list(zip(serial, parallel))
    for a, b in results + list(zip(serial_arguments, parallel_arguments)):   # outputs and arrays written
        if isinstance(a, np.ndarray):
            assert a.dtype == b.dtype and np.array_equal(a, b, equal_nan=True), name
    assert any(isinstance(a, np.ndarray) and np.abs(a).max() > 0 for a in
               [r for pair in results for r in pair] + serial_arguments)


def test_each_call_picks_its_build_by_its_own_work(monkeypatch):
    def double(x, out):
        for i in range(x.size):
            out[i] = 2 * x[i]

    kernel = TwoBuilds(double)
    ran = []
    monkeypatch.setattr(kernel, "serial", lambda *a: ran.append("serial"))
    monkeypatch.setattr(kernel, "parallel", lambda *a: ran.append("parallel"))
    small, large = np.ones(10, np.float32), compiled.PARALLEL_WORK
    kernel(small.size, small, small)
    kernel(large, small, small)
    kernel(large - 1, small, small)            # small work after large: serial again (waking cores costs)
    kernel(small.size, small.astype(np.float64), small)
    assert ran == ["serial", "parallel", "serial", "serial"]


_FIRST_CALL = "import numpy as np; from minidl import kernels; kernels.relu_forward(np.ones(9, np.float32))"


def test_the_first_compilation_says_so_once_and_a_warm_cache_says_nothing(tmp_path):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path), MINIDL_KERNELS="numba")   # the engine compiles

    def first_run_output():
        completed = subprocess.run([sys.executable, "-c", _FIRST_CALL], capture_output=True, text=True,
                                   env=env, timeout=300)
        assert completed.returncode == 0, completed.stderr
        return completed.stderr

    cold = first_run_output()
    assert cold.count("minidl: compiling its kernels for this machine -- the first run only") == 1
    assert first_run_output() == ""


_USER_CODE_MADE_BY_EXEC = """
import numpy as np, numba
from minidl import kernels
kernels.relu_forward(np.ones(9, np.float32))            # the engine is running, its listener too
namespace = {}
exec("def twice(v):\\n    return 2 * v", namespace)     # a function without a module
print(numba.njit(namespace["twice"])(21))
"""


def test_compiling_a_users_function_made_by_exec_is_left_alone(tmp_path):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path), MINIDL_KERNELS="numba")
    completed = subprocess.run([sys.executable, "-c", _USER_CODE_MADE_BY_EXEC], capture_output=True, text=True,
                               env=env, timeout=300)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == "42"


def test_both_builds_divide_as_numpy_does():
    def divide(x, y, out):
        for i in prange(x.size):
            out[i] = x[i] / y[i]

    kernel = TwoBuilds(divide)
    x, y = np.array([1.0, -1.0, 0.0, 6.0], np.float32), np.array([0.0, 0.0, 0.0, 3.0], np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        expected = x / y
    for build in (kernel.serial, kernel.parallel):      # no ZeroDivisionError: inf, -inf, nan, 2
        out = np.empty_like(x)
        build(x, y, out)
        np.testing.assert_array_equal(out, expected)
