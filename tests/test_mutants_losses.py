"""Losses, metrics and activations: behaviour the older tests left open, found by mutation
testing (tests/README.md, "Mutation testing"). Each test says which behaviour it pins and why
that is the right value (hand-computed, finite differences, or Keras's documented rule)."""
import warnings

import numpy as np
import pytest

from minidl import activations, losses, metrics

EPSILON = 1e-7          # Keras's backend epsilon: the clip of every probability


def finite_differences(function, x, step=1e-6):
    """Central differences of the scalar ``function`` at every element of ``x``."""
    numeric = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        delta = np.zeros_like(x)
        delta[index] = step
        numeric[index] = (function(x + delta) - function(x - delta)) / (2 * step)
    return numeric


def bce_by_hand(y, p):
    p = np.clip(p, EPSILON, 1 - EPSILON)
    return -(y * np.log(p) + (1 - y) * np.log(1 - p))


def bce_from_logits_by_hand(y, z):
    p = 1 / (1 + np.exp(-z))
    return -(y * np.log(p) + (1 - y) * np.log(1 - p))


# ----------------------------------------------------------------- rank-3 outputs, (B, T, K)
# Keras's losses reduce the LAST axis per sample and then average what is left: a (B, T, K)
# output has B*T per-sample losses. These tests use T = 3 where only the value is involved,
# and T = 1 for gradients (see test_rank_3_gradients_are_divided_by_every_averaged_axis for T > 1).
def test_per_sample_reduces_only_the_last_axis_of_a_rank_3_output(rng):
    p = rng.uniform(0.05, 0.95, (2, 3, 4))
    z = rng.standard_normal((2, 3, 4))
    y = (rng.random((2, 3, 4)) > 0.5).astype(float)
    one_hot = np.eye(4)[rng.integers(0, 4, (2, 3))]
    expected = {
        "bce": bce_by_hand(y, p).mean(axis=-1),
        "bce_logits": bce_from_logits_by_hand(y, z).mean(axis=-1),
        "mse": ((p - y) ** 2).mean(axis=-1),
        "cce": -(one_hot * np.log(p / p.sum(axis=-1, keepdims=True))).sum(axis=-1),
    }
    got = {
        "bce": losses.BinaryCrossentropy().per_sample(y, p),
        "bce_logits": losses.BinaryCrossentropy(from_logits=True).per_sample(y, z),
        "mse": losses.MeanSquaredError().per_sample(y, p),
        "cce": losses.CategoricalCrossentropy().per_sample(one_hot, p),
    }
    for name in expected:
        assert got[name].shape == (2, 3), name
        np.testing.assert_allclose(got[name], expected[name], rtol=1e-12, err_msg=name)
    # the loss is the mean of the B*T per-sample values
    assert losses.CategoricalCrossentropy()(one_hot, p) == pytest.approx(expected["cce"].mean(), rel=1e-12)
    assert losses.BinaryCrossentropy(from_logits=True)(y, z) == pytest.approx(expected["bce_logits"].mean(),
                                                                              rel=1e-12)


@pytest.mark.parametrize("make_loss", [losses.BinaryCrossentropy, lambda: losses.BinaryCrossentropy(from_logits=True),
                                       losses.MeanSquaredError, losses.CategoricalCrossentropy],
                         ids=["bce", "bce_logits", "mse", "cce"])
def test_gradient_is_the_derivative_of_the_value_on_a_b_1_k_output(rng, make_loss):
    """(B, 1, K): the gradient must be divided by B*1*K (B*1 for CCE), not by B*K*K or B*1."""
    loss = make_loss()
    p = rng.uniform(0.05, 0.95, (3, 1, 4))
    if isinstance(loss, losses.CategoricalCrossentropy):
        y = np.eye(4)[rng.integers(0, 4, (3, 1))]
    else:
        y = (rng.random((3, 1, 4)) > 0.5).astype(float)
    numeric = finite_differences(lambda q: loss(y, q), p)
    np.testing.assert_allclose(loss.gradient(y, p), numeric, rtol=1e-6, atol=1e-10)


@pytest.mark.parametrize("loss_name", ["binary_crossentropy", "categorical_crossentropy"])
def test_logits_path_on_a_b_1_k_output_is_value_and_derivative(rng, loss_name):
    loss = losses.get(loss_name)
    z = 3 * rng.standard_normal((3, 1, 4))
    y = (np.eye(4)[rng.integers(0, 4, (3, 1))] if loss_name == "categorical_crossentropy"
         else (rng.random((3, 1, 4)) > 0.5).astype(float))
    value, grad = loss.value_and_grad_from_logits(y, z)
    if loss_name == "categorical_crossentropy":
        log_softmax = z - np.log(np.exp(z).sum(axis=-1, keepdims=True))
        expected = -(y * log_softmax).sum(axis=-1).mean()
    else:
        expected = bce_from_logits_by_hand(y, z).mean()
    assert value == pytest.approx(expected, rel=1e-12)
    numeric = finite_differences(lambda q: loss.value_and_grad_from_logits(y, q)[0], z)
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-10)


@pytest.mark.parametrize("loss_name", ["binary_crossentropy", "mse", "categorical_crossentropy"])
def test_rank_3_gradients_are_divided_by_every_averaged_axis(rng, loss_name):
    loss = losses.get(loss_name)
    p = rng.uniform(0.05, 0.95, (2, 3, 4))
    y = (np.eye(4)[rng.integers(0, 4, (2, 3))] if loss_name == "categorical_crossentropy"
         else (rng.random((2, 3, 4)) > 0.5).astype(float))
    numeric = finite_differences(lambda q: loss(y, q), p)
    np.testing.assert_allclose(loss.gradient(y, p), numeric, rtol=1e-6, atol=1e-10)


# ----------------------------------------------------------------- binary cross-entropy
def test_bce_from_logits_instance_value_and_gradient():
    """BinaryCrossentropy(from_logits=True): the model outputs logits; worked example of
    minidl/keras_semantics.md §5.4 (z = 2, -1, 0, 30 with y = 1, 1, 0, 0)."""
    z = np.array([[2.0], [-1.0], [0.0], [30.0]])
    y = np.array([1.0, 1.0, 0.0, 0.0])
    loss = losses.BinaryCrossentropy(from_logits=True)
    assert loss(y, z) == pytest.approx(np.mean([0.126928, 1.313262, 0.693147, 30.0]), abs=1e-6)
    sigmoid = 1 / (1 + np.exp(-z))
    np.testing.assert_allclose(loss.gradient(y, z), (sigmoid - y[:, None]) / 4, rtol=1e-12)
    np.testing.assert_allclose(loss.gradient(y, z), finite_differences(lambda q: loss(y, q), z), rtol=1e-6)


def test_bce_clips_both_ends_and_a_clipped_probability_gets_no_gradient():
    """p = 0 for a positive and p = 1 for a negative: Keras clips to [1e-7, 1 - 1e-7], so each
    costs -log(1e-7) = 16.118 (not infinity), and the clip's gradient there is 0 (not nan)."""
    y = np.array([1.0, 0.0, 1.0])
    p = np.array([[0.0], [1.0], [0.25]])
    loss = losses.BinaryCrossentropy()
    clipped_cost = -np.log(EPSILON)
    assert loss(y, p) == pytest.approx((2 * clipped_cost - np.log(0.25)) / 3, rel=1e-9)
    with warnings.catch_warnings():
        warnings.simplefilter("error")          # no division by zero on the way either
        grad = loss.gradient(y, p)
    assert grad[0, 0] == 0.0 and grad[1, 0] == 0.0
    assert grad[2, 0] == pytest.approx((0.25 - 1) / (0.25 * 0.75) / 3, rel=1e-12)


@pytest.mark.parametrize("p_value,y_value", [(EPSILON, 1.0), (1 - EPSILON, 0.0)])
def test_bce_gradient_passes_at_the_clip_bounds_like_tensorflow(p_value, y_value):
    grad = losses.BinaryCrossentropy().gradient(np.array([y_value]), np.array([[p_value]]))
    assert grad[0, 0] == pytest.approx((p_value - y_value) / (p_value * (1 - p_value)), rel=1e-9)


# ----------------------------------------------------------------- categorical cross-entropy
def test_cce_gradient_passes_at_the_clip_bounds_and_warns_about_nothing():
    """TF's clip_by_value passes the gradient where the value sits exactly on a bound; a zero
    prediction is clipped (no gradient) without a division-by-zero warning."""
    loss = losses.CategoricalCrossentropy()
    p = np.array([[EPSILON, 1 - EPSILON],       # sums to 1: the true class sits on the lower bound
                  [0.0, 1.0],                   # true class exactly 0: clipped
                  [1 - EPSILON, EPSILON]])      # the true class on the upper bound
    y = np.array([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        grad = loss.gradient(y, p)
    # row 0: d/dp_j of -log(p_0 / (p_0 + p_1)) at p_0 = eps, p_1 = 1 - eps, over B = 3
    np.testing.assert_allclose(grad[0], [-(1 / EPSILON - 1) / 3, 1 / 3], rtol=1e-6)
    np.testing.assert_array_equal(grad[1], [0.0, 0.0])
    # row 2: g_0 = -1/(1 - eps), sum_k g_k p_k = -1: grad = (-1/(1 - eps) + 1, 0 + 1) / 3
    np.testing.assert_allclose(grad[2], [(1 - 1 / (1 - EPSILON)) / 3, 1 / 3], rtol=1e-6)


def test_cce_gradient_keeps_float32():
    p = np.array([[0.2, 0.8], [0.6, 0.4]], dtype=np.float32)
    y = np.array([[0, 1], [1, 0]], dtype=np.float32)
    assert losses.CategoricalCrossentropy().gradient(y, p).dtype == np.float32


def test_cce_from_logits_survives_huge_logits_in_every_row():
    """The softmax is shifted by each row's own maximum: logits of 1000 must not overflow, and a
    row of small logits next to a row of huge ones must not underflow to log(0)."""
    loss = losses.CategoricalCrossentropy()
    z = np.array([[1000.0, 999.0, 998.0],
                  [1.0, 2.0, 3.0]])
    y = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    value, grad = loss.value_and_grad_from_logits(y, z)
    log_softmax_row = np.array([0.0, -1.0, -2.0]) - np.log(1 + np.exp(-1) + np.exp(-2))
    assert value == pytest.approx(-log_softmax_row[0], rel=1e-12)       # both rows cost the same
    softmax_row = np.exp(log_softmax_row)
    np.testing.assert_allclose(grad, (np.array([softmax_row, softmax_row[::-1]]) - y) / 2, rtol=1e-12)
    value_3d, _ = loss.value_and_grad_from_logits(y[:, None, :], z[:, None, :])    # (B, 1, K)
    assert value_3d == pytest.approx(value, rel=1e-12)


# ----------------------------------------------------------------- messages that teach
@pytest.mark.parametrize("loss", [losses.BinaryCrossentropy(), losses.CategoricalCrossentropy(),
                                  losses.MeanSquaredError()], ids=lambda loss: loss.name)
def test_label_shape_errors_name_the_loss_in_value_and_gradient(loss):
    p = np.full((3, 2), 0.5)
    y = np.zeros((3, 3))
    message = rf"{loss.name}: labels of shape \(3, 3\) do not match the model output of shape \(3, 2\)"
    with pytest.raises(ValueError, match=message):
        loss(y, p)
    with pytest.raises(ValueError, match=message):
        loss.gradient(y, p)
    if loss.logit_activation is not None:
        with pytest.raises(ValueError, match=message):
            loss.value_and_grad_from_logits(y, p)


def test_a_loss_config_without_a_name_is_an_unknown_loss():
    with pytest.raises(ValueError, match=r"^Unknown loss \{'from_logits': True\}"):
        losses.get({"from_logits": True})


def test_a_loss_without_a_logits_path_says_so():
    with pytest.raises(NotImplementedError, match="^mean_squared_error has no logits path$"):
        losses.MeanSquaredError().value_and_grad_from_logits(np.zeros((2, 1)), np.zeros((2, 1)))


def test_metric_label_errors_name_the_metric():
    metric = metrics.get("accuracy", 1, "binary_crossentropy")
    with pytest.raises(ValueError, match=r"^metric 'accuracy': labels of shape \(2, 2\)"):
        metric.update(np.zeros((2, 2)), np.zeros((2, 1)))


# ----------------------------------------------------------------- metrics
def test_a_metric_with_nothing_seen_reports_zero():
    """Keras's stateful Mean divides with div_no_nan: an epoch with no batch reports 0.0."""
    for metric in (metrics.BinaryAccuracy(), metrics.CategoricalAccuracy()):
        assert metric.result() == 0.0
        metric.update(np.array([[0.0, 1.0]]), np.array([[0.2, 0.8]]))
        metric.reset()
        assert metric.result() == 0.0


def test_categorical_accuracy_compares_argmaxes_per_sample_and_per_step():
    metric = metrics.CategoricalAccuracy()
    y = np.array([[0, 0, 1], [1, 0, 0], [0, 1, 0], [0, 1, 0]])      # classes 2, 0, 1, 1
    p = np.array([[0.1, 0.2, 0.7], [0.5, 0.4, 0.1], [0.2, 0.6, 0.2], [0.5, 0.4, 0.1]])   # 2, 0, 1, 0
    metric.update(y, p)
    assert metric.result() == pytest.approx(3 / 4)
    # (B, T, K): one prediction per step, B*T of them
    metric.reset()
    y3 = np.stack([y[:2], y[2:]])            # (2, 2, 3)
    p3 = np.stack([p[:2], p[2:]])
    metric.update(y3, p3)
    assert metric.count == 4 and metric.result() == pytest.approx(3 / 4)


def test_binary_accuracy_of_a_rank_3_output_averages_every_unit():
    """(B, T, K) = (2, 3, 2): B*T = 6 samples seen, each the mean over its K units."""
    metric = metrics.BinaryAccuracy()
    y = np.array([[[1, 0], [0, 0], [1, 1]], [[1, 1], [0, 1], [0, 0]]], dtype=float)
    p = np.array([[[0.9, 0.2], [0.6, 0.1], [0.7, 0.8]], [[0.4, 0.7], [0.3, 0.8], [0.6, 0.9]]])
    metric.update(y, p)          # correct per step: 2/2, 1/2, 2/2 and 1/2, 2/2, 0/2
    assert metric.count == 6 and metric.result() == pytest.approx(8 / 12)


def test_binary_accuracy_threshold_is_used():
    metric = metrics.BinaryAccuracy(threshold=0.8)
    metric.update(np.array([1.0, 0.0]), np.array([[0.7], [0.7]]))       # 0.7 is class 0 at 0.8
    assert metric.result() == pytest.approx(0.5)


def test_accuracy_resolves_like_keras_and_keeps_the_name_as_written():
    """'accuracy' is binary for one output unit or a binary cross-entropy loss (multi-label),
    categorical otherwise; the explicit names give their own class; every metric keeps the
    name it was asked by (history.history's key)."""
    cases = [(("accuracy", 1, "mean_squared_error"), metrics.BinaryAccuracy),
             (("acc", 3, "binary_crossentropy"), metrics.BinaryAccuracy),
             (("accuracy", 3, "categorical_crossentropy"), metrics.CategoricalAccuracy),
             (("acc", 2, "mean_squared_error"), metrics.CategoricalAccuracy),
             (("binary_accuracy", 3, "categorical_crossentropy"), metrics.BinaryAccuracy),
             (("categorical_accuracy", 1, "binary_crossentropy"), metrics.CategoricalAccuracy)]
    for (name, units, loss_name), expected_class in cases:
        metric = metrics.get(name, units, loss_name)
        assert type(metric) is expected_class, (name, units, loss_name)
        assert metric.name == name
    assert metrics.BinaryAccuracy().name == "binary_accuracy"
    assert metrics.CategoricalAccuracy().name == "categorical_accuracy"


# ----------------------------------------------------------------- activations
def test_calling_an_activation_accepts_a_list():
    """``activation(z)`` converts its input, as keras.activations.relu([...]) does."""
    np.testing.assert_array_equal(activations.get("relu")([-1.0, 2.0]), [0.0, 2.0])
    np.testing.assert_allclose(activations.get("sigmoid")([0.0]), [0.5])


def test_softmax_shifts_each_row_by_its_own_maximum():
    """Same result as exp(z) / sum exp(z), without overflow (z = 1000) and without a row of small
    values underflowing to 0/0 next to a row of large ones."""
    z = np.array([[1000.0, 999.0], [1.0, 2.0]])
    expected_row = np.exp([0.0, -1.0]) / (1 + np.exp(-1.0))
    np.testing.assert_allclose(activations.softmax.forward(z), [expected_row, expected_row[::-1]], rtol=1e-12)


def test_labels_of_a_b_t_1_output_may_drop_the_last_axis(rng):
    """Keras accepts labels (B, T) for a (B, T, 1) output, as (B,) for (B, 1)."""
    p = rng.uniform(0.1, 0.9, (2, 3, 1))
    y = (rng.random((2, 3)) > 0.5).astype(float)
    loss = losses.BinaryCrossentropy()
    assert loss(y, p) == pytest.approx(bce_by_hand(y[..., None], p).mean(), rel=1e-12)


@pytest.mark.parametrize("loss", [losses.BinaryCrossentropy(), losses.MeanSquaredError(),
                                  losses.BinaryCrossentropy(from_logits=True)], ids=["bce", "mse", "bce_logits"])
def test_integer_labels_keep_a_float32_gradient(loss):
    """Labels take the predictions' dtype (align_labels): a float32 model gets float32 gradients."""
    p = np.array([[0.2], [0.7]], dtype=np.float32)
    y = np.array([0, 1])                    # int64 labels, as a generator yields them
    assert loss.gradient(y, p).dtype == np.float32
    if loss.logit_activation == "sigmoid":
        assert loss.value_and_grad_from_logits(y, p)[1].dtype == np.float32
