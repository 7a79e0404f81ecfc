"""SPOILERS: the common wrong solutions that ``check.py`` recognises, one small function each.

Read this file after your own version passes (or when a hint leaves you stuck): every
function below is a *complete* solution with exactly one thing wrong, so together they
also show the right answer.

How the checker uses them. When one of your outputs differs from the reference, the
checker calls each wrong solution below with the same arguments. If your output agrees
with one of them (within the check's tolerance), you almost certainly made that mistake,
and the checker prints its hint. Each mistake changes the output in a different way, so
each one gets its own hint; a correct solution never sees any of them.

Each exercise has a list of :class:`KnownMistake` at the end of its section:
``MAX_POOL_MISTAKES``, ``BATCHNORM_MISTAKES`` and ``ADAM_MISTAKES``.
"""
from typing import Callable, NamedTuple

import numpy as np


class KnownMistake(NamedTuple):
    """A common mistake: a short name, the hint to print, and a solution that makes it."""

    name: str
    hint: str
    wrong_solution: Callable


# ---------------------------------------------------------------- max pooling
def max_pool_backward_with_assignment(grad_output, argmax, input_shape):
    """'=' instead of '+=': where windows overlap, a cell keeps only the LAST window's gradient.

    ``grad[idx] += values`` with repeated indices behaves the same way in NumPy (each
    repeated index is written once, not summed); ``np.add.at`` is the summing version.
    """
    batch, height, width, channels = input_shape
    grad_input = np.zeros((batch, height * width, channels), dtype=grad_output.dtype)
    for n, i, j, c in np.ndindex(grad_output.shape):
        grad_input[n, argmax[n, i, j, c], c] = grad_output[n, i, j, c]     # should be +=
    return grad_input.reshape(input_shape)


MAX_POOL_MISTAKES = [
    KnownMistake(
        "'=' instead of '+='",
        "a cell that wins several overlapping windows must receive the SUM of their gradients: "
        "write `+=`, not `=`. (A vectorised `grad[index] += values` has the same bug when an "
        "index repeats; `np.add.at(grad, index, values)` adds them all.)",
        max_pool_backward_with_assignment),
]


# ---------------------------------------------------------------- batch normalization
def _per_channel(grad_output, x, mean, inv_std):
    """The (n, C) views used by every batch-norm solution: g, x_hat and n."""
    channels = x.shape[-1]
    g = grad_output.reshape(-1, channels)
    x_hat = (x.reshape(-1, channels) - mean) * inv_std
    return g, x_hat, g.shape[0]


def _parameter_gradients(g, x_hat):
    """dL/dgamma = sum_k g_k x_hat_k and dL/dbeta = sum_k g_k (right in every mistake below
    except :func:`batchnorm_backward_gamma_gradient_from_x`)."""
    return (g * x_hat).sum(axis=0), g.sum(axis=0)


def _as_results(grad_input_rows, grad_gamma, grad_beta, x):
    """``(grad_input, grad_gamma, grad_beta)`` in x's shape and dtype."""
    return (grad_input_rows.reshape(x.shape).astype(x.dtype),
            grad_gamma.astype(x.dtype), grad_beta.astype(x.dtype))


def _gamma_or_one(gamma):
    return 1.0 if gamma is None else gamma


def batchnorm_backward_without_mean_term(grad_output, x, mean, inv_std, gamma):
    """Forgets that x_k moves the mean: drops ``- sum_j g_j``."""
    g, x_hat, n = _per_channel(grad_output, x, mean, inv_std)
    grad_gamma, grad_beta = _parameter_gradients(g, x_hat)
    grad_input = (_gamma_or_one(gamma) * inv_std / n) * (n * g - x_hat * grad_gamma)
    return _as_results(grad_input, grad_gamma, grad_beta, x)


def batchnorm_backward_without_variance_term(grad_output, x, mean, inv_std, gamma):
    """Forgets that x_k moves the variance: drops ``- x_hat_k * sum_j g_j x_hat_j``."""
    g, x_hat, n = _per_channel(grad_output, x, mean, inv_std)
    grad_gamma, grad_beta = _parameter_gradients(g, x_hat)
    grad_input = (_gamma_or_one(gamma) * inv_std / n) * (n * g - grad_beta)
    return _as_results(grad_input, grad_gamma, grad_beta, x)


def batchnorm_backward_with_constant_statistics(grad_output, x, mean, inv_std, gamma):
    """Treats mean and variance as constants: only the direct path, gamma * inv_std * g."""
    g, x_hat, _ = _per_channel(grad_output, x, mean, inv_std)
    grad_gamma, grad_beta = _parameter_gradients(g, x_hat)
    return _as_results(_gamma_or_one(gamma) * inv_std * g, grad_gamma, grad_beta, x)


def batchnorm_backward_without_gamma(grad_output, x, mean, inv_std, gamma):
    """Forgets that y = gamma * x_hat + beta, i.e. that dL/dx_hat = gamma * g."""
    g, x_hat, n = _per_channel(grad_output, x, mean, inv_std)
    grad_gamma, grad_beta = _parameter_gradients(g, x_hat)
    grad_input = (inv_std / n) * (n * g - grad_beta - x_hat * grad_gamma)
    return _as_results(grad_input, grad_gamma, grad_beta, x)


def batchnorm_backward_with_batch_size_as_n(grad_output, x, mean, inv_std, gamma):
    """Uses n = N (``x.shape[0]``) instead of the N*H*W values each channel is averaged over."""
    g, x_hat, _ = _per_channel(grad_output, x, mean, inv_std)
    n = x.shape[0]
    grad_gamma, grad_beta = _parameter_gradients(g, x_hat)
    grad_input = (_gamma_or_one(gamma) * inv_std / n) * (n * g - grad_beta - x_hat * grad_gamma)
    return _as_results(grad_input, grad_gamma, grad_beta, x)


def batchnorm_backward_gamma_gradient_from_x(grad_output, x, mean, inv_std, gamma):
    """Computes dL/dgamma as sum_k g_k * x_k: gamma multiplies x_hat, not x."""
    g, x_hat, n = _per_channel(grad_output, x, mean, inv_std)
    grad_gamma, grad_beta = _parameter_gradients(g, x_hat)
    grad_input = (_gamma_or_one(gamma) * inv_std / n) * (n * g - grad_beta - x_hat * grad_gamma)
    wrong_grad_gamma = (g * x.reshape(g.shape)).sum(axis=0)
    return _as_results(grad_input, wrong_grad_gamma, grad_beta, x)


BATCHNORM_MISTAKES = [
    KnownMistake(
        "the mean's term is missing",
        "x_k also moves the batch mean, and the mean shifts every x_hat: subtract sum_j g_j "
        "(the 'via mean' term). Without it dL/dx does not sum to 0 over a channel.",
        batchnorm_backward_without_mean_term),
    KnownMistake(
        "the variance's term is missing",
        "x_k also moves the batch variance, which rescales every x_hat: subtract "
        "x_hat_k * sum_j (g_j * x_hat_j) (the 'via variance' term).",
        batchnorm_backward_without_variance_term),
    KnownMistake(
        "mean and variance treated as constants",
        "both terms through the statistics are missing: the mean and the variance are computed "
        "from this batch, so every x_k reaches the loss through them too. Keep all three terms of "
        "the docstring's formula (direct, via mean, via variance).",
        batchnorm_backward_with_constant_statistics),
    KnownMistake(
        "gamma forgotten",
        "y = gamma * x_hat + beta, so dL/dx_hat = gamma * g: multiply dL/dx by gamma "
        "(and by 1 when gamma is None).",
        batchnorm_backward_without_gamma),
    KnownMistake(
        "n is the batch size",
        "n is the number of values each channel's mean is taken over: N*H*W for an (N, H, W, C) "
        "input, not N = x.shape[0]. View x as (n, C) rows first: x.reshape(-1, x.shape[-1]).",
        batchnorm_backward_with_batch_size_as_n),
    KnownMistake(
        "dL/dgamma computed from x",
        "gamma multiplies the normalised x_hat = (x - mean) * inv_std, so "
        "dL/dgamma = sum_k g_k * x_hat_k, not sum_k g_k * x_k.",
        batchnorm_backward_gamma_gradient_from_x),
]


# ---------------------------------------------------------------- Adam
def _moments(grad, m, v, beta_1, beta_2):
    """The two running means, right in every mistake below."""
    return beta_1 * m + (1 - beta_1) * grad, beta_2 * v + (1 - beta_2) * grad ** 2


def adam_update_with_papers_epsilon(value, grad, m, v, t, learning_rate=0.001, beta_1=0.9,
                                    beta_2=0.999, epsilon=1e-7):
    """Kingma & Ba's formula: epsilon added to sqrt of the CORRECTED v_hat."""
    m, v = _moments(grad, m, v, beta_1, beta_2)
    m_hat, v_hat = m / (1 - beta_1 ** t), v / (1 - beta_2 ** t)
    return value - learning_rate * m_hat / (np.sqrt(v_hat) + epsilon), m, v


def adam_update_without_bias_correction(value, grad, m, v, t, learning_rate=0.001, beta_1=0.9,
                                        beta_2=0.999, epsilon=1e-7):
    """Uses m and v as they are, although both start at 0 and are too small early on."""
    m, v = _moments(grad, m, v, beta_1, beta_2)
    return value - learning_rate * m / (np.sqrt(v) + epsilon), m, v


def adam_update_correcting_only_m(value, grad, m, v, t, learning_rate=0.001, beta_1=0.9,
                                  beta_2=0.999, epsilon=1e-7):
    """Divides m by (1 - beta_1^t) but forgets v's correction sqrt(1 - beta_2^t)."""
    m, v = _moments(grad, m, v, beta_1, beta_2)
    alpha = learning_rate / (1 - beta_1 ** t)
    return value - alpha * m / (np.sqrt(v) + epsilon), m, v


def adam_update_one_step_ahead(value, grad, m, v, t, learning_rate=0.001, beta_1=0.9,
                               beta_2=0.999, epsilon=1e-7):
    """Counts t from 0 and adds 1 (beta^(t+1)), although t is already 1 for the first update."""
    m, v = _moments(grad, m, v, beta_1, beta_2)
    alpha = learning_rate * np.sqrt(1 - beta_2 ** (t + 1)) / (1 - beta_1 ** (t + 1))
    return value - alpha * m / (np.sqrt(v) + epsilon), m, v


ADAM_MISTAKES = [
    KnownMistake(
        "the paper's epsilon placement",
        "Keras adds epsilon to sqrt(v) of the UNcorrected v; the paper adds it to sqrt(v_hat). "
        "Fold both corrections into alpha_t = lr * sqrt(1 - beta_2^t) / (1 - beta_1^t) and "
        "step by alpha_t * m / (sqrt(v) + epsilon). The two differ most in the first steps "
        "and when gradients are tiny.",
        adam_update_with_papers_epsilon),
    KnownMistake(
        "no bias correction",
        "m and v start at 0, so for small t they are far too small: scale the step by "
        "sqrt(1 - beta_2^t) / (1 - beta_1^t) (that is alpha_t). Without it the first step is "
        "lr * (1 - beta_1) / sqrt(1 - beta_2), about 3.2 lr instead of lr.",
        adam_update_without_bias_correction),
    KnownMistake(
        "only m bias-corrected",
        "v needs its correction too: alpha_t = lr * sqrt(1 - beta_2^t) / (1 - beta_1^t) has "
        "sqrt(1 - beta_2^t) in the numerator.",
        adam_update_correcting_only_m),
    KnownMistake(
        "t off by one",
        "t is already the number of this update (t = 1 for the first): use beta_1^t and "
        "beta_2^t, not beta^(t + 1).",
        adam_update_one_step_ahead),
]
