"""The exercises' checker (examples/exercises/check.py) tells right from wrong, and says why.

The wrong solutions below are written here, independently of ``known_mistakes.py``, the way
a learner would write them: the checker must recognise each one and print ITS hint (and no
other), a correct solution must pass every check without a hint, the unmodified stubs must
be reported as "not implemented yet", and a copied exercise folder must name its own files.
"""
import importlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import minidl

ROOT = Path(__file__).resolve().parents[1]
EXERCISES_DIR = ROOT / "examples" / "exercises"
EXERCISES = ("max_pool_backward", "batchnorm_backward", "adam_update")


def checker():
    sys.path.insert(0, str(EXERCISES_DIR))
    try:
        return importlib.import_module("check")
    finally:
        sys.path.remove(str(EXERCISES_DIR))


def known_mistakes_by_name():
    """Every KnownMistake of examples/exercises/known_mistakes.py, by name."""
    checker()                                   # imports known_mistakes from the exercises folder
    known = importlib.import_module("known_mistakes")
    mistakes = known.MAX_POOL_MISTAKES + known.BATCHNORM_MISTAKES + known.ADAM_MISTAKES
    return {mistake.name: mistake for mistake in mistakes}


def run_checker_script(check_py, *args, cwd):
    """Run a check.py in a fresh process, with the minidl these tests import."""
    env = dict(os.environ)
    minidl_parent = str(Path(minidl.__file__).resolve().parents[1])
    env["PYTHONPATH"] = minidl_parent + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, str(check_py), *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def checker_output(exercise, solution, capsys):
    """(failure count, printed text) of the checker run in this process on ``solution``."""
    failures = checker().run_checks(exercise, solution, "under test")
    return failures, capsys.readouterr().out


# ------------------------------------------------------------------ solutions a learner might write
def max_pool_backward_loop(grad_output, argmax, input_shape, assign=False):
    """A learner's loop; ``assign=True`` writes '=' where '+=' belongs."""
    grad_input = np.zeros(input_shape, dtype=grad_output.dtype)
    width = input_shape[2]
    for n, i, j, c in np.ndindex(grad_output.shape):
        h, w = divmod(int(argmax[n, i, j, c]), width)
        if assign:
            grad_input[n, h, w, c] = grad_output[n, i, j, c]
        else:
            grad_input[n, h, w, c] += grad_output[n, i, j, c]
    return grad_input


def max_pool_backward_fancy_index_add(grad_output, argmax, input_shape):
    """Vectorised with ``a[index] += values``: repeated indices are written once, not summed."""
    batch, height, width, channels = input_shape
    grad_input = np.zeros((batch, height * width, channels), dtype=grad_output.dtype)
    n, _, _, c = np.indices(grad_output.shape)
    grad_input[n, argmax, c] += grad_output
    return grad_input.reshape(input_shape)


def max_pool_backward_starting_from_ones(grad_output, argmax, input_shape):
    grad_input = np.ones(input_shape, dtype=grad_output.dtype)
    return grad_input + max_pool_backward_loop(grad_output, argmax, input_shape)


def max_pool_backward_in_float64(grad_output, argmax, input_shape):
    return max_pool_backward_loop(grad_output, argmax, input_shape).astype(np.float64)


def batchnorm_backward_step_by_step(grad_output, x, mean, inv_std, gamma, through_mean=True,
                                    through_variance=True, use_gamma=True, n_is_batch_size=False,
                                    gamma_gradient_from_x=False):
    """The chain rule one node at a time (as in CS231n); each flag leaves one thing out."""
    axes = tuple(range(x.ndim - 1))
    n = x.shape[0] if n_is_batch_size else x.size // x.shape[-1]
    centered = x - mean
    x_hat = centered * inv_std
    grad_beta = grad_output.sum(axis=axes)
    grad_gamma = (grad_output * (x if gamma_gradient_from_x else x_hat)).sum(axis=axes)
    grad_x_hat = grad_output * gamma if (use_gamma and gamma is not None) else grad_output
    grad_variance = (grad_x_hat * centered).sum(axis=axes) * -0.5 * inv_std ** 3 if through_variance else 0
    grad_mean = -(grad_x_hat * inv_std).sum(axis=axes) if through_mean else 0
    grad_x = grad_x_hat * inv_std + grad_variance * 2 * centered / n + grad_mean / n
    return grad_x.astype(x.dtype), grad_gamma.astype(x.dtype), grad_beta.astype(x.dtype)


def adam_update_with_hats(value, grad, m, v, t, learning_rate=0.001, beta_1=0.9, beta_2=0.999,
                          epsilon=1e-7, correct_m=True, correct_v=True, t_offset=0, papers_epsilon=False):
    """Adam written with m_hat and v_hat; the flags make the usual mistakes."""
    m = beta_1 * m + (1 - beta_1) * grad
    v = beta_2 * v + (1 - beta_2) * grad * grad
    step = t + t_offset
    m_hat = m / (1 - beta_1 ** step) if correct_m else m
    v_hat = v / (1 - beta_2 ** step) if correct_v else v
    if papers_epsilon:
        return value - learning_rate * m_hat / (np.sqrt(v_hat) + epsilon), m, v
    # Keras's epsilon sits on sqrt(v), which is sqrt(v_hat) * sqrt(1 - beta_2^t).
    keras_epsilon = epsilon / np.sqrt(1 - beta_2 ** step) if correct_v else epsilon
    return value - learning_rate * m_hat / (np.sqrt(v_hat) + keras_epsilon), m, v


def flagged(solution, **flags):
    def with_flags(*args, **kwargs):
        return solution(*args, **kwargs, **flags)
    return with_flags


CORRECT_SOLUTIONS = {
    "max_pool_backward": max_pool_backward_loop,
    "batchnorm_backward": batchnorm_backward_step_by_step,
    "adam_update": adam_update_with_hats,
}

# (exercise, wrong solution, the name of the mistake the checker must recognise)
WRONG_SOLUTIONS = {
    "max-pool '=' in a loop":
        ("max_pool_backward", flagged(max_pool_backward_loop, assign=True), "'=' instead of '+='"),
    "max-pool fancy-index +=":
        ("max_pool_backward", max_pool_backward_fancy_index_add, "'=' instead of '+='"),
    "batch norm without the mean's path":
        ("batchnorm_backward", flagged(batchnorm_backward_step_by_step, through_mean=False),
         "the mean's term is missing"),
    "batch norm without the variance's path":
        ("batchnorm_backward", flagged(batchnorm_backward_step_by_step, through_variance=False),
         "the variance's term is missing"),
    "batch norm with constant statistics":
        ("batchnorm_backward",
         flagged(batchnorm_backward_step_by_step, through_mean=False, through_variance=False),
         "mean and variance treated as constants"),
    "batch norm without gamma":
        ("batchnorm_backward", flagged(batchnorm_backward_step_by_step, use_gamma=False), "gamma forgotten"),
    "batch norm with n = N":
        ("batchnorm_backward", flagged(batchnorm_backward_step_by_step, n_is_batch_size=True),
         "n is the batch size"),
    "batch norm's dL/dgamma from x":
        ("batchnorm_backward", flagged(batchnorm_backward_step_by_step, gamma_gradient_from_x=True),
         "dL/dgamma computed from x"),
    "Adam with the paper's epsilon":
        ("adam_update", flagged(adam_update_with_hats, papers_epsilon=True), "the paper's epsilon placement"),
    "Adam without bias correction":
        ("adam_update", flagged(adam_update_with_hats, correct_m=False, correct_v=False),
         "no bias correction"),
    "Adam correcting only m":
        ("adam_update", flagged(adam_update_with_hats, correct_v=False), "only m bias-corrected"),
    "Adam with t + 1":
        ("adam_update", flagged(adam_update_with_hats, t_offset=1), "t off by one"),
}


# ------------------------------------------------------------------ right and unwritten solutions
@pytest.mark.parametrize("exercise", EXERCISES)
def test_minidls_reference_solution_passes_every_check_without_a_hint(exercise, capsys):
    check = checker()
    failures, out = checker_output(exercise, check.REFERENCES[exercise], capsys)
    assert failures == 0, out
    assert "hint" not in out and out.count("  pass  ") == 6


@pytest.mark.parametrize("exercise", EXERCISES)
def test_a_learners_correct_solution_passes_every_check_without_a_hint(exercise, capsys):
    failures, out = checker_output(exercise, CORRECT_SOLUTIONS[exercise], capsys)
    assert failures == 0, out
    assert "hint" not in out


@pytest.mark.parametrize("exercise", EXERCISES)
def test_unmodified_stub_is_reported_as_not_implemented_not_as_a_crash(exercise):
    result = run_checker_script(EXERCISES_DIR / "check.py", exercise, cwd=ROOT)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    fails = [line for line in result.stdout.splitlines() if line.startswith("  FAIL")]
    assert len(fails) == 6 and all("not implemented yet" in line for line in fails), result.stdout
    assert "hint" not in result.stdout


def test_minidl_flag_runs_every_exercise_on_the_reference_and_exits_0():
    result = run_checker_script(EXERCISES_DIR / "check.py", "all", "--minidl", cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("6/6 checks passed") == 3, result.stdout


# ------------------------------------------------------------------ each mistake gets its own hint
@pytest.mark.parametrize("case", WRONG_SOLUTIONS)
def test_each_common_mistake_fails_and_prints_its_own_hint_only(case, capsys):
    exercise, wrong_solution, mistake_name = WRONG_SOLUTIONS[case]
    known = known_mistakes_by_name()
    failures, out = checker_output(exercise, wrong_solution, capsys)
    assert failures > 0, out
    assert f"hint: {mistake_name}: {known[mistake_name].hint}" in out, out
    for other in set(known) - {mistake_name}:
        assert f"hint: {other}" not in out, out


def test_every_known_mistake_is_made_by_one_of_the_wrong_solutions_here():
    assert set(known_mistakes_by_name()) == {name for _, _, name in WRONG_SOLUTIONS.values()}


def test_a_mistake_whose_output_would_pass_the_check_explains_nothing():
    """Within rtol 1e-9, 1 + 0.8e-9 is close to both 1 (so it passes) and 1 + 1.6e-9 (which fails):
    it cannot be why 1 + 1.6e-9 failed."""
    check = checker()
    known = importlib.import_module("known_mistakes")
    expected = (np.array([1.0]),)
    got = (np.array([1.0 + 1.6e-9]),)
    nearly_right = known.KnownMistake("nearly right", "", lambda: np.array([1.0 + 0.8e-9]))
    assert check.recognise_mistake(("x",), got, expected, lambda solution: solution(), [nearly_right],
                                   rtol=1e-9, atol=0) is None


def test_a_hint_prints_once_then_is_referred_to(capsys):
    _, out = checker_output("batchnorm_backward",
                            flagged(batchnorm_backward_step_by_step, through_variance=False), capsys)
    assert out.count("hint: the variance's term is missing: ") == 1
    assert out.count("hint: the variance's term is missing (see above)") >= 2, out


def test_missing_mean_term_fails_the_sum_to_zero_check_with_its_meaning_and_hint(capsys):
    _, out = checker_output("batchnorm_backward",
                            flagged(batchnorm_backward_step_by_step, through_mean=False), capsys)
    line = next(line for line in out.splitlines() if "sums to zero" in line)
    assert line.startswith("  FAIL") and "must sum to 0 per channel" in line, out
    following = out.split(line)[1].splitlines()[1]
    assert following.startswith("        hint: the mean's term is missing"), out


def test_cells_that_never_win_and_the_dtype_have_their_own_messages(capsys):
    _, out = checker_output("max_pool_backward", max_pool_backward_starting_from_ones, capsys)
    assert re.search(r"FAIL  cells that win no window get 0: \d+ cells that won no window got a gradient",
                     out), out
    _, out = checker_output("max_pool_backward", max_pool_backward_in_float64, capsys)
    assert "float32 in must give float32 out, got float64: start from np.zeros(" in out, out


def test_an_adam_that_edits_its_inputs_is_told_so(capsys):
    def adam_in_place(value, grad, m, v, t, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7):
        m *= beta_1
        m += (1 - beta_1) * grad
        v *= beta_2
        v += (1 - beta_2) * grad ** 2
        alpha_t = learning_rate * np.sqrt(1 - beta_2 ** t) / (1 - beta_1 ** t)
        value -= alpha_t * m / (np.sqrt(v) + epsilon)
        return value, m, v

    failures, out = checker_output("adam_update", adam_in_place, capsys)
    assert failures == 1, out
    assert "adam_update changed its input `value`; return new arrays instead" in out


# ------------------------------------------------------------------ numbers shown at the check's precision
def test_a_tiny_difference_is_shown_with_its_size_the_tolerance_and_distinct_values():
    check = checker()
    expected = np.array([0.25, 0.5341, -1.0])
    got = expected + np.array([0, 1e-10, 0])
    with pytest.raises(check.CheckFailed) as failure:
        check.expect_close("new value", got, expected, rtol=1e-11, atol=0)
    message = str(failure.value)
    assert "1 of 3 entries differ" in message
    assert "atol 0e+00, rtol 1e-11" in message
    assert "worst at index (1,): expected 0.5341, got 0.5341000001" in message
    assert "|difference| 1.00e-10 > tolerance 5.34e-12" in message


def test_tell_apart_adds_digits_until_the_numbers_differ():
    check = checker()
    assert check.tell_apart(1.5, 2.5) == ("1.5", "2.5")
    assert check.tell_apart(0.123456789, 0.123456790) == ("0.123456789", "0.12345679")
    assert check.tell_apart(1.0, 1.0 + 2 ** -52) == ("1", "1.0000000000000002")


def test_an_adam_step_off_by_1e_10_prints_values_that_visibly_differ(capsys):
    def adam_slightly_off(*args, **kwargs):
        value, m, v = adam_update_with_hats(*args, **kwargs)
        return value + 1e-10, m, v

    _, out = checker_output("adam_update", adam_slightly_off, capsys)
    worst = re.search(r"expected (\S+), got (\S+)", out)
    assert worst and float(worst[1]) != float(worst[2]), out
    assert worst[1] != worst[2]
    assert re.search(r"\|difference\| 1\.0\de-10 > tolerance \d\.\d\de-1\d", out), out
    assert "hint" not in out                 # not one of the known mistakes


def test_the_readmes_sample_failure_is_what_the_checker_prints(capsys):
    readme = (EXERCISES_DIR / "README.md").read_text()
    sample = readme.split("A difference is shown")[1].split("```")[1].strip("\n").splitlines()
    _, out = checker_output("adam_update", WRONG_SOLUTIONS["Adam with the paper's epsilon"][1], capsys)
    assert len(sample) == 4
    for line in sample:
        assert line.removesuffix("...") in out, line


# ------------------------------------------------------------------ a copied folder names its own files
BROKEN_BATCHNORM = '''
import numpy as np


def batchnorm_backward(grad_output, x, mean, inv_std, gamma):
    """Treats the batch statistics as constants."""
    rows = grad_output.reshape(-1, x.shape[-1])
    x_hat = (x.reshape(rows.shape) - mean) * inv_std
    scale = inv_std if gamma is None else gamma * inv_std
    return grad_output * scale, (rows * x_hat).sum(axis=0), rows.sum(axis=0)
'''

CRASHING_MAX_POOL = '''
import numpy as np


def max_pool_backward(grad_output, argmax, input_shape):
    grad_input = np.zeros(input_shape, dtype=grad_output.dtype)
    return grad_input[argmax]        # indexes with the wrong array
'''


@pytest.fixture
def copied_exercises(tmp_path):
    """examples/exercises copied to <tmp>/my_exercises, as a learner would."""
    copy = tmp_path / "my_exercises"
    shutil.copytree(EXERCISES_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def test_a_copied_folder_checks_and_names_its_own_file(copied_exercises):
    (copied_exercises / "batchnorm_backward.py").write_text(BROKEN_BATCHNORM)
    result = run_checker_script(copied_exercises / "check.py", "batchnorm_backward",
                                cwd=copied_exercises.parent)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "batchnorm_backward (your function in my_exercises/batchnorm_backward.py)" in result.stdout
    assert "examples/exercises" not in result.stdout
    assert "hint: mean and variance treated as constants: " in result.stdout, result.stdout


def test_a_copied_folder_run_from_elsewhere_shows_the_absolute_path(copied_exercises, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = run_checker_script(copied_exercises / "check.py", "adam_update", cwd=elsewhere)
    label = f"adam_update (your function in {copied_exercises / 'adam_update.py'})"
    assert label in result.stdout, result.stdout


def test_a_crash_names_the_line_in_the_copied_file(copied_exercises):
    (copied_exercises / "max_pool_backward.py").write_text(CRASHING_MAX_POOL)
    result = run_checker_script(copied_exercises / "check.py", "max_pool_backward",
                                cwd=copied_exercises.parent)
    assert result.returncode == 1 and "Traceback" not in result.stdout + result.stderr, result.stderr
    where = "at my_exercises/max_pool_backward.py, line 7: return grad_input[argmax]"
    assert where in result.stdout, result.stdout


def test_a_file_that_does_not_load_is_a_failure_not_a_traceback(copied_exercises):
    (copied_exercises / "adam_update.py").write_text("def adam_update(value, grad, m, v, t:\n    pass\n")
    result = run_checker_script(copied_exercises / "check.py", "adam_update", cwd=copied_exercises.parent)
    assert result.returncode == 1 and "Traceback" not in result.stdout + result.stderr, result.stderr
    assert "FAIL  the file does not load: SyntaxError:" in result.stdout, result.stdout
    assert "adam_update.py, line 1)" in result.stdout, result.stdout


def test_the_minidl_files_the_exercises_name_exist():
    named = set()
    for path in EXERCISES_DIR.iterdir():
        if path.suffix in (".py", ".md"):
            named |= set(re.findall(r"minidl/[\w/]+\.py", path.read_text()))
    assert named
    for name in named:
        assert (ROOT / name).is_file(), name
