"""Check an exercise: the same checks run on your function and on minidl's own.

Usage::

    python examples/exercises/check.py max_pool_backward            # checks YOUR function
    python examples/exercises/check.py max_pool_backward --minidl   # the same checks on minidl's solution
    python examples/exercises/check.py all

Each check compares against minidl's implementation (the reference solution,
``minidl.kernels.max_pool_backward`` etc.) and/or against finite
differences, and prints ``pass`` or ``FAIL`` with the reason. Exit status 0
when every check passes.
"""
import argparse
import importlib
import sys
import traceback
from pathlib import Path

import numpy as np

from minidl import kernels
from minidl.kernels.geometry import conv_geometry
from minidl.optimizers import Adam
from minidl.parameter import Parameter
from minidl.gradcheck import numerical_gradient

HERE = Path(__file__).resolve().parent
EXERCISES = ("max_pool_backward", "batchnorm_backward", "adam_update")


class CheckFailed(AssertionError):
    pass


def expect_close(what, got, expected, rtol=1e-7, atol=1e-10):
    got = np.asarray(got)
    expected = np.asarray(expected)
    if got.shape != expected.shape:
        raise CheckFailed(f"{what}: expected shape {expected.shape}, got {got.shape}")
    if not np.allclose(got, expected, rtol=rtol, atol=atol):
        worst = np.unravel_index(np.argmax(np.abs(got - expected)), got.shape)
        raise CheckFailed(f"{what}: largest difference at index {tuple(int(i) for i in worst)}: "
                          f"expected {expected[worst]:.10g}, got {got[worst]:.10g} "
                          f"(difference {got[worst] - expected[worst]:.3g})")



# ---------------------------------------------------------------- max pooling
def _pool(x, pool_size, strides, padding):
    _, _, pads = conv_geometry(x.shape, pool_size, strides, padding)
    return kernels.max_pool_forward(x, pool_size, strides, pads)


def max_pool_checks(candidate):
    rng = np.random.default_rng(1)

    def against_minidl(pool_size, strides, padding, shape, dtype=np.float64):
        x = rng.standard_normal(shape).astype(dtype)
        y, argmax = _pool(x, pool_size, strides, padding)
        grad_y = rng.standard_normal(y.shape).astype(dtype)
        got = candidate(grad_y, argmax, x.shape)
        expected = kernels.max_pool_backward(grad_y, argmax, x.shape)
        expect_close("dL/dx", got, expected)
        return got

    def shape_and_dtype():
        got = against_minidl((2, 2), (2, 2), "valid", (2, 4, 4, 3), np.float32)
        if np.asarray(got).dtype != np.float32:
            raise CheckFailed(f"float32 in must give float32 out, got {np.asarray(got).dtype}")

    def finite_differences():
        x = rng.standard_normal((2, 5, 5, 2))
        y, argmax = _pool(x, (3, 3), (2, 2), "valid")
        grad_y = rng.standard_normal(y.shape)       # random upstream gradient, never all ones
        got = candidate(grad_y, argmax, x.shape)
        numeric = numerical_gradient(lambda: float(np.sum(grad_y * _pool(x, (3, 3), (2, 2), "valid")[0])), x)
        expect_close("dL/dx vs finite differences", got, numeric, rtol=1e-5, atol=1e-6)

    def ties_go_to_first_maximum():
        x = np.ones((1, 4, 4, 1))                    # every cell ties: the first in row-major order wins
        y, argmax = _pool(x, (2, 2), (2, 2), "valid")
        grad_y = np.arange(1.0, 5.0).reshape(y.shape)
        got = candidate(grad_y, argmax, x.shape)
        expect_close("dL/dx with ties", got, kernels.max_pool_backward(grad_y, argmax, x.shape))

    return [
        ("2x2 stride 2 'valid', float32: shape and dtype", shape_and_dtype),
        ("3x3 stride 2 'valid' (InceptionV3's stem) matches minidl",
         lambda: against_minidl((3, 3), (2, 2), "valid", (2, 7, 7, 3))),
        ("3x3 stride 1 'same': overlapping windows add up",
         lambda: against_minidl((3, 3), (1, 1), "same", (2, 5, 6, 2))),
        ("2x2 'same' on an odd size (padded cells never win)",
         lambda: against_minidl((2, 2), (2, 2), "same", (1, 5, 5, 2))),
        ("agrees with finite differences (random upstream gradient)", finite_differences),
        ("ties: the gradient follows argmax", ties_go_to_first_maximum),
    ]


# ---------------------------------------------------------------- batch normalization
def batchnorm_checks(candidate):
    rng = np.random.default_rng(2)

    def inputs(shape, with_gamma=True, dtype=np.float64):
        x = (rng.standard_normal(shape) * 2 + 1).astype(dtype)
        channels = shape[-1]
        gamma = rng.uniform(0.5, 1.5, channels).astype(dtype) if with_gamma else None
        beta = rng.standard_normal(channels).astype(dtype)
        y, mean, _, inv_std = kernels.batchnorm_train_forward(x, gamma, beta, 1e-3)
        grad_y = rng.standard_normal(y.shape).astype(dtype)
        return x, gamma, beta, mean, inv_std, grad_y

    def against_minidl(shape, with_gamma=True, dtype=np.float64):
        x, gamma, _, mean, inv_std, grad_y = inputs(shape, with_gamma, dtype)
        got = candidate(grad_y, x, mean, inv_std, gamma)
        if not isinstance(got, tuple) or len(got) != 3:
            raise CheckFailed("return a tuple (grad_input, grad_gamma, grad_beta)")
        expected = kernels.batchnorm_backward(grad_y, x, mean, inv_std, gamma)
        tolerance = dict(rtol=1e-4, atol=1e-5) if dtype == np.float32 else {}
        for name, g, e in zip(("grad_input", "grad_gamma", "grad_beta"), got, expected):
            expect_close(name, g, e, **tolerance)
        return got

    def dtype_kept():
        got = against_minidl((4, 3, 3, 2), dtype=np.float32)
        if np.asarray(got[0]).dtype != np.float32:
            raise CheckFailed(f"float32 in must give float32 grad_input, got {np.asarray(got[0]).dtype}")

    def finite_differences():
        x, gamma, beta, mean, inv_std, grad_y = inputs((3, 2, 2, 2))
        grad_x, grad_gamma, grad_beta = candidate(grad_y, x, mean, inv_std, gamma)

        def f():
            return float(np.sum(grad_y * kernels.batchnorm_train_forward(x, gamma, beta, 1e-3)[0]))
        expect_close("dL/dx vs finite differences", grad_x, numerical_gradient(f, x), rtol=1e-5, atol=1e-6)
        expect_close("dL/dgamma vs finite differences", grad_gamma, numerical_gradient(f, gamma),
                     rtol=1e-5, atol=1e-6)
        expect_close("dL/dbeta vs finite differences", grad_beta, numerical_gradient(f, beta),
                     rtol=1e-5, atol=1e-6)

    def sums_to_zero():
        got = against_minidl((6, 4))
        totals = np.asarray(got[0]).sum(axis=0)
        if not np.allclose(totals, 0, atol=1e-10):
            raise CheckFailed(f"shifting every x of a channel by the same amount changes nothing, so "
                              f"dL/dx must sum to 0 per channel; got sums {totals}")

    return [
        ("(N, H, W, C) with gamma matches minidl", lambda: against_minidl((4, 3, 3, 2))),
        ("(N, C) input (after a Dense layer) matches minidl", lambda: against_minidl((8, 3))),
        ("gamma=None (scale=False, as in InceptionV3) matches minidl",
         lambda: against_minidl((4, 2, 2, 3), with_gamma=False)),
        ("float32 in, float32 out", dtype_kept),
        ("dL/dx sums to zero over the batch (the mean's term is there)", sums_to_zero),
        ("agrees with finite differences for x, gamma and beta", finite_differences),
    ]


# ---------------------------------------------------------------- Adam
def minidl_adam_update(value, grad, m, v, t, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7):
    """The reference: one call of minidl's ``Adam.update`` on copies of the arrays."""
    optimizer = Adam(learning_rate=learning_rate, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon)
    optimizer.iterations = t - 1                    # Adam.update uses t = iterations + 1
    parameter = Parameter("exercise/p:0", np.array(value, copy=True))
    slots = {"m": np.array(m, copy=True), "v": np.array(v, copy=True)}
    optimizer.update(parameter, np.asarray(grad), slots, learning_rate)
    return parameter.value, slots["m"], slots["v"]


def adam_checks(candidate):
    rng = np.random.default_rng(3)

    def run(steps, grad_scale=1.0, **hyper):
        value = rng.standard_normal((3, 4))
        states = {"yours": (value.copy(), np.zeros_like(value), np.zeros_like(value)),
                  "minidl": (value.copy(), np.zeros_like(value), np.zeros_like(value))}
        for t in range(1, steps + 1):
            grad = rng.standard_normal(value.shape) * grad_scale
            states["yours"] = candidate(*states["yours"][:1], grad, *states["yours"][1:], t, **hyper)
            states["minidl"] = minidl_adam_update(*states["minidl"][:1], grad, *states["minidl"][1:], t, **hyper)
            for name, got, expected in zip(("value", "m", "v"), states["yours"], states["minidl"]):
                expect_close(f"step {t}: {name}", got, expected, rtol=1e-9, atol=1e-15)

    def first_step_is_about_lr():
        value, grad = np.zeros(5), np.array([3.0, -2.0, 0.5, -0.1, 10.0])
        new_value, _, _ = candidate(value, grad, np.zeros(5), np.zeros(5), 1, learning_rate=0.01)
        expect_close("first step = -lr * sign(g) (bias correction at t=1)", new_value,
                     -0.01 * np.sign(grad), rtol=1e-4)

    def inputs_untouched():
        value, grad, m, v = (rng.standard_normal(4) for _ in range(4))
        v = np.abs(v)
        copies = [a.copy() for a in (value, grad, m, v)]
        candidate(value, grad, m, v, 3)
        for name, before, after in zip(("value", "grad", "m", "v"), copies, (value, grad, m, v)):
            if not np.array_equal(before, after):
                raise CheckFailed(f"adam_update changed its input `{name}`; return new arrays instead")

    return [
        ("first update (t=1) matches minidl", lambda: run(1)),
        ("the first step moves each weight by about lr", first_step_is_about_lr),
        ("20 updates with decreasing bias correction match minidl", lambda: run(20, learning_rate=0.01)),
        ("tiny gradients (1e-8): epsilon is added to sqrt(v), Keras's placement",
         lambda: run(5, grad_scale=1e-8, epsilon=1e-7)),
        ("the workshop's settings (lr=1e-4, epsilon=1e-8)", lambda: run(5, learning_rate=1e-4, epsilon=1e-8)),
        ("inputs are not modified", inputs_untouched),
    ]


# ---------------------------------------------------------------- driver
CHECKS = {"max_pool_backward": max_pool_checks, "batchnorm_backward": batchnorm_checks,
          "adam_update": adam_checks}
REFERENCES = {"max_pool_backward": kernels.max_pool_backward, "batchnorm_backward": kernels.batchnorm_backward,
              "adam_update": minidl_adam_update}


def learner_function(exercise):
    sys.path.insert(0, str(HERE))
    module = importlib.import_module(exercise)
    return getattr(module, exercise)


def run_checks(exercise, candidate, label):
    """Run every check of ``exercise`` on ``candidate``; print one line each; return the failure count."""
    print(f"{exercise} ({label})")
    failures = 0
    for description, check in CHECKS[exercise](candidate):
        try:
            check()
            print(f"  pass  {description}")
        except NotImplementedError as error:
            failures += 1
            print(f"  FAIL  {description}: not implemented yet ({error})")
        except CheckFailed as error:
            failures += 1
            print(f"  FAIL  {description}: {error}")
        except Exception as error:  # noqa: BLE001 -- a learner's bug is a failed check, not a crash
            failures += 1
            where = traceback.extract_tb(error.__traceback__)[-1]
            print(f"  FAIL  {description}: {type(error).__name__}: {error} "
                  f"({Path(where.filename).name}, line {where.lineno})")
    total = len(CHECKS[exercise](candidate))
    print(f"  {total - failures}/{total} checks passed\n")
    return failures


def main(argv=None):
    parser = argparse.ArgumentParser(description="Check an exercise against minidl's reference solution.")
    parser.add_argument("exercise", choices=EXERCISES + ("all",))
    parser.add_argument("--minidl", action="store_true",
                        help="run the checks on minidl's own implementation (the reference solution)")
    args = parser.parse_args(argv)
    names = EXERCISES if args.exercise == "all" else (args.exercise,)
    failures = 0
    for name in names:
        if args.minidl:
            failures += run_checks(name, REFERENCES[name], "minidl's reference solution")
        else:
            failures += run_checks(name, learner_function(name), f"your function in examples/exercises/{name}.py")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
