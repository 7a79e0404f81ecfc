"""Check an exercise: the same checks run on your function and on minidl's own.

Usage::

    python examples/exercises/check.py max_pool_backward            # checks YOUR function
    python examples/exercises/check.py max_pool_backward --minidl   # the same checks on minidl's solution
    python examples/exercises/check.py all

Your function is read from the file next to this checker (``max_pool_backward.py`` for
``max_pool_backward``), wherever you copied the folder to. Each check compares it with
the reference solution (``minidl.kernels.max_pool_backward``, ...) and/or with finite
differences, and prints ``pass`` or ``FAIL`` with the reason:

* a difference is shown with the tolerance the check allows, in scientific notation,
  and with both values written with enough digits to see that they differ;
* when your output equals that of a common wrong solution (``known_mistakes.py``, which
  holds spoilers), the checker names the mistake and prints a hint.

Exit status 0 when every check passes.
"""
import argparse
import copy
import importlib.util
import sys
import traceback
from pathlib import Path

import numpy as np

from known_mistakes import ADAM_MISTAKES, BATCHNORM_MISTAKES, MAX_POOL_MISTAKES
from minidl import Parameter, kernels
from minidl.gradcheck import numerical_gradient
from minidl.optimizers import Adam

HERE = Path(__file__).resolve().parent      # the learner's files sit next to this checker
EXERCISES = ("max_pool_backward", "batchnorm_backward", "adam_update")


class CheckFailed(AssertionError):
    """A failed check: the message says what differs; ``mistake`` is the KnownMistake it
    looks like, or None when it looks like none of them."""

    def __init__(self, message, mistake=None):
        super().__init__(message)
        self.mistake = mistake


# ---------------------------------------------------------------- comparing numbers
def tell_apart(expected, got):
    """Format two numbers with just enough significant digits (at least 6) to look different.

    ``0.53410000 vs 0.53410000`` hides a difference of 1e-10; this gives
    ``0.5341 vs 0.5341000001``.
    """
    for digits in range(6, 18):
        expected_text, got_text = f"{expected:.{digits}g}", f"{got:.{digits}g}"
        if expected_text != got_text:
            break
    return expected_text, got_text


def expect_close(what, got, expected, rtol, atol):
    """Raise CheckFailed unless ``|got - expected| <= atol + rtol * |expected|`` everywhere
    (the test of ``np.allclose``).

    The message shows the entry furthest outside its tolerance: both values, the
    difference and the tolerance there.
    """
    got, expected = np.asarray(got), np.asarray(expected)
    if got.shape != expected.shape:
        raise CheckFailed(f"{what}: expected shape {expected.shape}, got {got.shape}")
    if np.allclose(got, expected, rtol=rtol, atol=atol):
        return
    difference = np.abs(got.astype(np.float64) - expected)
    tolerance = atol + rtol * np.abs(expected.astype(np.float64))
    with np.errstate(divide="ignore", invalid="ignore"):
        how_far_outside = np.where(np.isnan(difference), np.inf, difference / tolerance)
    worst = np.unravel_index(np.argmax(how_far_outside), got.shape)
    outside = np.count_nonzero(~np.isclose(got, expected, rtol=rtol, atol=atol))
    expected_text, got_text = tell_apart(float(expected[worst]), float(got[worst]))
    raise CheckFailed(
        f"{what}: {outside} of {got.size} entries differ by more than atol + rtol * |expected| "
        f"(atol {atol:.0e}, rtol {rtol:.0e})\n"
        f"worst at index {tuple(int(i) for i in worst)}: expected {expected_text}, got {got_text}\n"
        f"|difference| {difference[worst]:.2e} > tolerance {tolerance[worst]:.2e}")


def as_outputs(names, result):
    """The solution's result as a tuple with one entry per name in ``names``."""
    if result is None:
        raise CheckFailed("your function returned None -- is a `return` missing?")
    if len(names) == 1:
        return (result,)
    if not isinstance(result, (tuple, list)) or len(result) != len(names):
        raise CheckFailed(f"return a tuple ({', '.join(names)}), got {type(result).__name__}")
    return tuple(result)


def expect_each_output_close(names, got, expected, rtol, atol, context=""):
    """expect_close on each output that has an expected value (entries that are None are skipped)."""
    prefix = f"{context}, " if context else ""
    for name, got_array, expected_array in zip(names, got, expected):
        if expected_array is not None:
            expect_close(prefix + name, got_array, expected_array, rtol, atol)


def outputs_close(names, got, expected, rtol, atol):
    """True when :func:`expect_each_output_close` finds nothing to complain about."""
    try:
        expect_each_output_close(names, got, expected, rtol, atol)
    except CheckFailed:
        return False
    return True


# ---------------------------------------------------------------- recognising mistakes
def calling_with(*args, **kwargs):
    """Return ``call(solution)``, which runs any solution on fresh copies of these arguments
    (a solution that edits its inputs cannot change what the next one sees)."""
    def call(solution):
        return solution(*copy.deepcopy(args), **copy.deepcopy(kwargs))
    return call


def recognise_mistake(names, got, expected, call, known_mistakes, rtol, atol):
    """The known mistake that explains ``got``: its wrong solution, called the same way,
    fails this comparison too and gives the same outputs as yours. None if none does."""
    for mistake in known_mistakes:
        try:
            wrong = as_outputs(names, call(mistake.wrong_solution))
        except Exception:  # noqa: BLE001 -- a wrong solution that cannot run here explains nothing
            continue
        compared_wrong = [w if e is not None else None for w, e in zip(wrong, expected)]
        if (not outputs_close(names, wrong, expected, rtol, atol)
                and outputs_close(names, got, compared_wrong, rtol, atol)):
            return mistake
    return None


def expect_outputs_close(names, got, expected, rtol, atol, call, known_mistakes, context=""):
    """:func:`expect_each_output_close`, whose CheckFailed also names the known mistake
    that explains the difference, if one does."""
    try:
        expect_each_output_close(names, got, expected, rtol, atol, context)
    except CheckFailed as failure:
        failure.mistake = recognise_mistake(names, got, expected, call, known_mistakes, rtol, atol)
        raise


# ---------------------------------------------------------------- max pooling
MAX_POOL_OUTPUTS = ("dL/dx",)


def pool(x, pool_size, strides, padding):
    """minidl's max pooling forward pass: ``(y, argmax)``."""
    _, _, pads = kernels.conv_geometry(x.shape, pool_size, strides, padding)
    return kernels.max_pool_forward(x, pool_size, strides, pads)


def max_pool_checks(candidate):
    rng = np.random.default_rng(1)

    def compare(got, expected, call, rtol=1e-7, atol=1e-10):
        expect_outputs_close(MAX_POOL_OUTPUTS, got, expected, rtol, atol, call, MAX_POOL_MISTAKES)

    def against_minidl(pool_size, strides, padding, shape, dtype=np.float64):
        x = rng.standard_normal(shape).astype(dtype)
        y, argmax = pool(x, pool_size, strides, padding)
        grad_y = rng.standard_normal(y.shape).astype(dtype)
        call = calling_with(grad_y, argmax, x.shape)
        got = as_outputs(MAX_POOL_OUTPUTS, call(candidate))
        compare(got, (call(kernels.max_pool_backward),), call)
        return got[0]

    def shape_and_dtype():
        got = np.asarray(against_minidl((2, 2), (2, 2), "valid", (2, 4, 4, 3), np.float32))
        if got.dtype != np.float32:
            raise CheckFailed(f"float32 in must give float32 out, got {got.dtype}: "
                              f"start from np.zeros(input_shape, dtype=grad_output.dtype)")

    def cells_that_never_win_get_zero():
        x = rng.standard_normal((1, 4, 4, 2))
        y, argmax = pool(x, (2, 2), (2, 2), "valid")        # 1 cell in 4 wins its window
        grad_y = rng.standard_normal(y.shape)
        got = np.asarray(candidate(grad_y, argmax, x.shape))
        winners = kernels.max_pool_backward(np.ones_like(grad_y), argmax, x.shape) > 0
        losers_with_gradient = np.argwhere(~winners & (got != 0))
        if len(losers_with_gradient):
            raise CheckFailed(f"{len(losers_with_gradient)} cells that won no window got a gradient, "
                              f"e.g. at index {tuple(int(i) for i in losers_with_gradient[0])}: every cell "
                              f"starts at 0 (np.zeros, not np.empty) and only winners receive anything")

    def finite_differences():
        x = rng.standard_normal((2, 5, 5, 2))
        y, argmax = pool(x, (3, 3), (2, 2), "valid")
        grad_y = rng.standard_normal(y.shape)       # random upstream gradient, never all ones
        call = calling_with(grad_y, argmax, x.shape)
        got = as_outputs(MAX_POOL_OUTPUTS, call(candidate))

        def loss():
            return float(np.sum(grad_y * pool(x, (3, 3), (2, 2), "valid")[0]))
        compare(got, (numerical_gradient(loss, x),), call, rtol=1e-5, atol=1e-6)

    return [
        ("2x2 stride 2 'valid', float32: shape and dtype", shape_and_dtype),
        ("cells that win no window get 0", cells_that_never_win_get_zero),
        ("3x3 stride 2 'valid' (InceptionV3's stem) matches minidl",
         lambda: against_minidl((3, 3), (2, 2), "valid", (2, 7, 7, 3))),
        ("3x3 stride 1 'same': overlapping windows add up",
         lambda: against_minidl((3, 3), (1, 1), "same", (2, 5, 6, 2))),
        ("2x2 'same' on an odd size (padded cells never win)",
         lambda: against_minidl((2, 2), (2, 2), "same", (1, 5, 5, 2))),
        ("agrees with finite differences (random upstream gradient)", finite_differences),
    ]


# ---------------------------------------------------------------- batch normalization
BATCHNORM_OUTPUTS = ("grad_input", "grad_gamma", "grad_beta")


def batchnorm_checks(candidate):
    rng = np.random.default_rng(2)

    def compare(got, expected, call, rtol=1e-7, atol=1e-10):
        expect_outputs_close(BATCHNORM_OUTPUTS, got, expected, rtol, atol, call, BATCHNORM_MISTAKES)

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
        call = calling_with(grad_y, x, mean, inv_std, gamma)
        got = as_outputs(BATCHNORM_OUTPUTS, call(candidate))
        tolerance = dict(rtol=1e-4, atol=1e-5) if dtype == np.float32 else {}
        compare(got, as_outputs(BATCHNORM_OUTPUTS, call(kernels.batchnorm_backward)), call, **tolerance)
        return got

    def dtype_kept():
        grad_input = np.asarray(against_minidl((4, 3, 3, 2), dtype=np.float32)[0])
        if grad_input.dtype != np.float32:
            raise CheckFailed(f"float32 in must give float32 grad_input, got {grad_input.dtype}")

    def sums_to_zero():
        # The property is tested first: comparing with minidl first would fail before this
        # check could say what the property means.
        x, gamma, _, mean, inv_std, grad_y = inputs((6, 4))
        call = calling_with(grad_y, x, mean, inv_std, gamma)
        got = as_outputs(BATCHNORM_OUTPUTS, call(candidate))
        totals = np.asarray(got[0]).sum(axis=0)
        if not np.all(np.abs(totals) <= 1e-10):
            expected = as_outputs(BATCHNORM_OUTPUTS, call(kernels.batchnorm_backward))
            raise CheckFailed(
                f"shifting every x of a channel by the same amount changes nothing, so dL/dx must "
                f"sum to 0 per channel; max |sum| {np.abs(totals).max():.2e} > tolerance 1.00e-10",
                recognise_mistake(BATCHNORM_OUTPUTS, got, expected, call, BATCHNORM_MISTAKES, 1e-7, 1e-10))

    def finite_differences():
        x, gamma, beta, mean, inv_std, grad_y = inputs((3, 2, 2, 2))
        call = calling_with(grad_y, x, mean, inv_std, gamma)
        got = as_outputs(BATCHNORM_OUTPUTS, call(candidate))

        def loss():
            return float(np.sum(grad_y * kernels.batchnorm_train_forward(x, gamma, beta, 1e-3)[0]))
        numeric = tuple(numerical_gradient(loss, array) for array in (x, gamma, beta))
        compare(got, numeric, call, rtol=1e-5, atol=1e-6)

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
ADAM_OUTPUTS = ("new value", "new m", "new v")


def keras_adam_update(value, grad, m, v, t, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7):
    """The reference the Adam checks compare with: one update of Keras 2's Adam, in NumPy."""
    m = beta_1 * m + (1 - beta_1) * grad
    v = beta_2 * v + (1 - beta_2) * grad ** 2
    alpha_t = learning_rate * np.sqrt(1 - beta_2 ** t) / (1 - beta_1 ** t)
    return value - alpha_t * m / (np.sqrt(v) + epsilon), m, v


def minidl_adam_update(value, grad, m, v, t, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7):
    """minidl's ``Adam`` doing the t-th update of one parameter, through its public API:
    restore the state after t - 1 updates, apply the gradient, read the new state."""
    optimizer = Adam(learning_rate=learning_rate, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon)
    parameter = Parameter("exercise/p:0", np.array(value, copy=True))
    parameter.grad = np.asarray(grad)
    slots_after_t_minus_1_updates = {"m": np.array(m, copy=True), "v": np.array(v, copy=True)}
    optimizer.set_state({"iterations": t - 1, "slots": [slots_after_t_minus_1_updates]})
    optimizer.apply_gradients([parameter])
    slots = optimizer.get_state()["slots"][0]
    return parameter.value, slots["m"], slots["v"]


def adam_checks(candidate):
    rng = np.random.default_rng(3)

    def compare(got, expected, call, rtol, atol, context=""):
        expect_outputs_close(ADAM_OUTPUTS, got, expected, rtol, atol, call, ADAM_MISTAKES, context)

    def run(steps, grad_scale=1.0, **hyper):
        """``steps`` updates, each checked on its own: every step starts from the reference's state."""
        value = rng.standard_normal((3, 4))
        m, v = np.zeros_like(value), np.zeros_like(value)
        for t in range(1, steps + 1):
            grad = rng.standard_normal(value.shape) * grad_scale
            call = calling_with(value, grad, m, v, t, **hyper)
            got = as_outputs(ADAM_OUTPUTS, call(candidate))
            expected = call(keras_adam_update)
            # atol 0: with tiny gradients v is ~1e-19, so any absolute tolerance would hide it.
            compare(got, expected, call, rtol=1e-9, atol=0, context=f"step {t}")
            value, m, v = expected

    def first_step_is_about_lr():
        value, grad = np.zeros(5), np.array([3.0, -2.0, 0.5, -0.1, 10.0])
        call = calling_with(value, grad, np.zeros(5), np.zeros(5), 1, learning_rate=0.01)
        got = as_outputs(ADAM_OUTPUTS, call(candidate))
        compare(got, (-0.01 * np.sign(grad), None, None), call, rtol=1e-4, atol=0,
                context="first step from m = v = 0 with lr = 0.01")

    def inputs_untouched():
        value, grad, m, v = (rng.standard_normal(4) for _ in range(4))
        v = np.abs(v)
        copies = [a.copy() for a in (value, grad, m, v)]
        candidate(value, grad, m, v, 3)
        for name, before, after in zip(("value", "grad", "m", "v"), copies, (value, grad, m, v)):
            if not np.array_equal(before, after):
                raise CheckFailed(f"adam_update changed its input `{name}`; return new arrays instead")

    return [
        ("first update (t=1) matches Keras's Adam", lambda: run(1)),
        ("the first step moves each weight by about lr", first_step_is_about_lr),
        ("20 updates with decreasing bias correction match Keras's Adam",
         lambda: run(20, learning_rate=0.01)),
        ("tiny gradients (1e-8): epsilon is added to sqrt(v), Keras's placement",
         lambda: run(5, grad_scale=1e-8, epsilon=1e-7)),
        ("the workshop's settings (lr=1e-4, epsilon=1e-8)", lambda: run(5, learning_rate=1e-4, epsilon=1e-8)),
        ("inputs are not modified", inputs_untouched),
    ]


# ---------------------------------------------------------------- driver
CHECKS = {"max_pool_backward": max_pool_checks, "batchnorm_backward": batchnorm_checks,
          "adam_update": adam_checks}
REFERENCES = {"max_pool_backward": kernels.max_pool_backward,
              "batchnorm_backward": kernels.batchnorm_backward,
              "adam_update": minidl_adam_update}


def shown_path(path):
    """``path`` relative to the current folder when it is inside it, else absolute."""
    path = Path(path).resolve()
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def learner_file(exercise):
    """The learner's file: next to this checker, wherever the folder was copied to."""
    return HERE / f"{exercise}.py"


def load_function(path, name):
    """Run the file ``path`` itself (not a same-named module found elsewhere on sys.path)
    and return its function ``name``."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, name)


def where_it_broke(error, candidate):
    """'file, line n: code' of the deepest frame in the candidate's own file (else the deepest)."""
    frames = traceback.extract_tb(error.__traceback__)
    source = getattr(getattr(candidate, "__code__", None), "co_filename", None)
    own = [frame for frame in frames if frame.filename == source]
    frame = (own or frames)[-1]
    return f"{shown_path(frame.filename)}, line {frame.lineno}: {frame.line}"


def run_check(description, check, candidate, hints_shown):
    """Run one check and print its verdict; return True when it passed."""
    try:
        check()
    except NotImplementedError as error:
        print(f"  FAIL  {description}: not implemented yet ({error})")
        return False
    except CheckFailed as failure:
        first_line, *more_lines = str(failure).splitlines()
        print(f"  FAIL  {description}: {first_line}")
        for line in more_lines:
            print(f"        {line}")
        print_hint(failure.mistake, hints_shown)
        return False
    except Exception as error:  # noqa: BLE001 -- a learner's bug is a failed check, not a crash
        print(f"  FAIL  {description}: {type(error).__name__}: {error}")
        print(f"        at {where_it_broke(error, candidate)}")
        return False
    print(f"  pass  {description}")
    return True


def print_hint(mistake, hints_shown):
    """Print the mistake's hint the first time it is recognised, its name after that."""
    if mistake is None:
        return
    if mistake.name in hints_shown:
        print(f"        hint: {mistake.name} (see above)")
    else:
        hints_shown.add(mistake.name)
        print(f"        hint: {mistake.name}: {mistake.hint}")


def run_checks(exercise, candidate, label):
    """Run every check of ``exercise`` on ``candidate``, print their verdicts, return the failure count."""
    print(f"{exercise} ({label})")
    checks = CHECKS[exercise](candidate)
    hints_shown = set()
    passed = sum(run_check(description, check, candidate, hints_shown) for description, check in checks)
    print(f"  {passed}/{len(checks)} checks passed\n")
    return len(checks) - passed


def check_learner_file(exercise):
    """Run the checks on the learner's file; a file that does not even load counts as one failure."""
    path = learner_file(exercise)
    label = f"your function in {shown_path(path)}"
    try:
        function = load_function(path, exercise)
    except Exception as error:  # noqa: BLE001 -- a typo in the learner's file is a failure, not a crash
        print(f"{exercise} ({label})\n  FAIL  the file does not load: {type(error).__name__}: {error}\n")
        return 1
    return run_checks(exercise, function, label)


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
            failures += check_learner_file(name)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
