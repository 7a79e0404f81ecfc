"""Optimizers: behaviour the older tests left open, found by mutation testing (tests/README.md,
"Mutation testing"). Every expected value is computed by hand from Keras's update rules
(minidl/optimizers.py's docstring, minidl/keras_semantics.md §5.6)."""
import numpy as np
import pytest

from minidl import optimizers
from minidl.parameter import Parameter


def steps(optimizer, start, gradients, dtype=np.float64):
    """Apply ``gradients`` one after the other to one parameter; return its value."""
    parameter = Parameter("p", np.array(start, dtype=dtype))
    for gradient in gradients:
        parameter.grad = np.array(gradient, dtype=dtype)
        optimizer.apply_gradients([parameter])
    return parameter.value


# ----------------------------------------------------------------- SGD
def test_plain_sgd_defaults_to_learning_rate_0_01_without_momentum():
    """Keras's SGD(): lr 0.01, momentum 0 -- value -= lr * g, and no velocity to keep."""
    sgd = optimizers.SGD()
    np.testing.assert_allclose(steps(sgd, [1.0, -1.0], [[2.0, 4.0], [2.0, 4.0]]), [1 - 0.04, -1 - 0.08])
    assert sgd.get_state()["slots"] == [{}]


def test_sgd_nesterov_matches_hand_computation():
    """nesterov: v = mu v - lr g; p += mu v - lr g. g = 1, lr = 0.1, mu = 0.9:
    step 1: v = -0.1, p += -0.09 - 0.1 = -0.19; step 2: v = -0.19, p += -0.171 - 0.1 = -0.271."""
    sgd = optimizers.SGD(learning_rate=0.1, momentum=0.9, nesterov=True)
    np.testing.assert_allclose(steps(sgd, [1.0], [[1.0], [1.0]]), [1 - 0.19 - 0.271])


def test_sgd_refuses_a_negative_momentum_with_the_value():
    with pytest.raises(ValueError, match=r"^SGD: momentum must be >= 0, got -0\.5$"):
        optimizers.SGD(momentum=-0.5)


def test_time_based_decay_shrinks_every_step():
    """Keras 2's decay: step k (from 0) uses lr / (1 + decay * k)."""
    sgd = optimizers.SGD(learning_rate=0.1, decay=0.5)
    np.testing.assert_allclose(steps(sgd, [1.0], [[1.0]] * 3), [1 - 0.1 - 0.1 / 1.5 - 0.1 / 2.0])
    assert sgd.current_learning_rate() == pytest.approx(0.1 / 2.5)
    rmsprop = optimizers.RMSprop(learning_rate=0.1, decay=1.0)       # the decay reaches RMSprop too
    rmsprop.iterations = 3
    assert rmsprop.current_learning_rate() == pytest.approx(0.1 / 4)


# ----------------------------------------------------------------- clipping
def test_clipvalue_clips_each_gradient_entry():
    sgd = optimizers.SGD(learning_rate=1.0, clipvalue=0.5)
    np.testing.assert_allclose(steps(sgd, [0.0, 0.0, 0.0], [[2.0, -3.0, 0.1]]), [-0.5, 0.5, -0.1])


def test_clipnorm_rescales_each_gradient_whose_norm_is_larger():
    """tf.keras's clipnorm: g * clipnorm / ||g|| per parameter when ||g|| > clipnorm."""
    sgd = optimizers.SGD(learning_rate=1.0, clipnorm=1.0)
    first, second = Parameter("a", np.zeros(2)), Parameter("b", np.zeros(2))
    first.grad, second.grad = np.array([3.0, -4.0]), np.array([0.3, -0.4])     # norms 5 and 0.5
    sgd.apply_gradients([first, second])
    np.testing.assert_allclose(first.value, [-0.6, 0.8])
    np.testing.assert_allclose(second.value, [-0.3, 0.4])                      # below clipnorm: as it is
    adam = optimizers.Adam(learning_rate=0.1, clipnorm=1.0)                   # through the base class too
    unclipped = optimizers.Adam(learning_rate=0.1)
    np.testing.assert_allclose(steps(adam, [0.0, 0.0], [[3.0, -4.0], [0.0, 8.0]]),
                               steps(unclipped, [0.0, 0.0], [[0.6, -0.8], [0.0, 1.0]]), rtol=1e-12)


# ----------------------------------------------------------------- RMSprop
def test_rmsprop_defaults_are_keras_and_epsilon_none_means_1e_7():
    """RMSprop(): lr 0.001, rho 0.9, epsilon 1e-7 (Keras 2's epsilon=None is K.epsilon())."""
    g = np.array([0.5, -2.0])
    accumulator = 0.1 * g ** 2
    expected = 1.0 - 0.001 * g / (np.sqrt(accumulator) + 1e-7)
    np.testing.assert_allclose(steps(optimizers.RMSprop(), [1.0, 1.0], [g]), expected, rtol=1e-12)
    np.testing.assert_allclose(steps(optimizers.RMSprop(epsilon=None), [1.0, 1.0], [g]), expected, rtol=1e-12)
    tiny = np.array([1e-9])        # epsilon dominates sqrt(a) = 3.2e-10: the default must be 1e-7
    np.testing.assert_allclose(steps(optimizers.RMSprop(), [0.0], [tiny]),
                               -0.001 * tiny / (np.sqrt(0.1) * 1e-9 + 1e-7), rtol=1e-9)


def test_rmsprop_accepts_the_base_arguments():
    np.testing.assert_allclose(steps(optimizers.RMSprop(lr=0.01, clipvalue=0.1), [0.0], [[5.0]]),
                               -0.01 * 0.1 / (np.sqrt(0.1 * 0.01) + 1e-7), rtol=1e-12)


# ----------------------------------------------------------------- configs
@pytest.mark.parametrize("make_optimizer", [
    lambda: optimizers.SGD(learning_rate=0.3, momentum=0.5, nesterov=True, decay=0.1, clipnorm=2.0),
    lambda: optimizers.Adam(learning_rate=0.02, beta_1=0.8, beta_2=0.95, epsilon=1e-4, clipvalue=0.5),
    lambda: optimizers.RMSprop(learning_rate=0.05, rho=0.7, epsilon=1e-3, decay=0.2),
    lambda: optimizers.Adam(learning_rate=0.02, amsgrad=True),
], ids=["SGD", "Adam", "RMSprop", "Adam-amsgrad"])
def test_an_optimizer_rebuilt_from_its_config_updates_the_same_way(make_optimizer):
    """get_config -> optimizers.get: every hyperparameter survives (a saved model's compile)."""
    optimizer = make_optimizer()          # a fresh one each run: the steps below change its state
    rebuilt = optimizers.get(optimizer.get_config())
    assert type(rebuilt) is type(optimizer)
    assert rebuilt.get_config() == optimizer.get_config()
    gradients = [[3.0, -1.0], [0.01, 0.02], [-1.0, 0.25]]      # v shrinks at step 2: amsgrad shows
    np.testing.assert_array_equal(steps(rebuilt, [1.0, 2.0], gradients), steps(optimizer, [1.0, 2.0], gradients))
    fresh_default = optimizers.get({"name": optimizer.name})
    assert not np.array_equal(steps(fresh_default, [1.0, 2.0], gradients), steps(rebuilt, [1.0, 2.0], gradients))


# ----------------------------------------------------------------- state
def test_state_set_then_read_before_any_update_is_the_same_state():
    """A checkpoint written right after a resume must hold the resumed state, not an empty one."""
    adam = optimizers.Adam(learning_rate=0.01)
    steps(adam, [1.0, 2.0], [[0.5, -0.5], [0.1, 0.2]])
    state = adam.get_state()
    resumed = optimizers.Adam(learning_rate=0.01)
    resumed.set_state(state)
    again = resumed.get_state()
    assert again["iterations"] == 2
    assert [sorted(slots) for slots in again["slots"]] == [["m", "v"]]
    for key in ("m", "v"):
        np.testing.assert_array_equal(again["slots"][0][key], state["slots"][0][key])


def test_state_without_slots_restores_the_step_count():
    """{'iterations': k} alone: fresh m and v, but Adam's bias correction continues at t = k + 1.
    One step with g from m = v = 0 at t = 3: alpha = lr sqrt(1 - b2^3) / (1 - b1^3),
    m = 0.1 g, v = 0.001 g^2, step = alpha m / (sqrt(v) + eps)."""
    adam = optimizers.Adam(learning_rate=0.01)
    adam.set_state({"iterations": 2})
    assert adam.get_state()["iterations"] == 2
    g = 0.5
    alpha = 0.01 * np.sqrt(1 - 0.999 ** 3) / (1 - 0.9 ** 3)
    expected = 1.0 - alpha * 0.1 * g / (np.sqrt(0.001 * g * g) + 1e-7)
    np.testing.assert_allclose(steps(adam, [1.0], [[g]]), [expected], rtol=1e-12)


def test_float64_slots_from_a_file_continue_a_float32_run_bit_for_bit():
    """Slots stored as float64 (as a weight file may hold them) are put back in the parameter's
    dtype, so the resumed float32 run is the uninterrupted one."""
    gradients = np.random.default_rng(3).standard_normal((4, 5)).astype(np.float32)
    straight = steps(optimizers.Adam(learning_rate=0.01), np.linspace(-1, 1, 5), gradients, np.float32)
    first = optimizers.Adam(learning_rate=0.01)
    parameter = Parameter("p", np.linspace(-1, 1, 5).astype(np.float32))
    for gradient in gradients[:2]:
        parameter.grad = gradient
        first.apply_gradients([parameter])
    state = first.get_state()
    state["slots"] = [{k: v.astype(np.float64) for k, v in slots.items()} for slots in state["slots"]]
    resumed = optimizers.Adam(learning_rate=0.01)
    resumed.set_state(state)
    for gradient in gradients[2:]:
        parameter.grad = gradient
        resumed.apply_gradients([parameter])
    assert parameter.value.dtype == np.float32
    np.testing.assert_array_equal(parameter.value, straight)
    assert {slot.dtype for slot in resumed.get_state()["slots"][0].values()} == {np.dtype(np.float32)}


def test_state_that_does_not_fit_the_model_is_a_clear_error():
    adam = optimizers.Adam()
    steps(adam, [1.0, 2.0], [[0.5, -0.5]])
    state = adam.get_state()
    two = optimizers.Adam()
    two.set_state(state)
    first, second = Parameter("a", np.zeros(2)), Parameter("b", np.zeros(2))
    first.grad = second.grad = np.ones(2)
    with pytest.raises(ValueError, match=r"^Adam: the saved optimizer state has 1 parameter slots, "
                                         r"but the model has 2 trainable parameters$"):
        two.apply_gradients([first, second])
    wrong_shape = optimizers.Adam()
    wrong_shape.set_state(state)
    parameter = Parameter("dense/kernel:0", np.zeros(3))
    parameter.grad = np.ones(3)
    with pytest.raises(ValueError, match=r"^Adam: saved slot 'm' of shape \(2,\) does not fit parameter "
                                         r"'dense/kernel:0' of shape \(3,\)$"):
        wrong_shape.apply_gradients([parameter])


def test_adam_defaults_are_keras_and_epsilon_none_means_1e_7():
    """Adam(): lr 0.001, beta_1 0.9, beta_2 0.999, epsilon 1e-7. A gradient of 1e-9 makes
    sqrt(v) = 3.2e-11 much smaller than epsilon, so the step shows epsilon itself.
    t = 1: alpha = lr sqrt(1 - b2) / (1 - b1); step = alpha * 0.1 g / (sqrt(0.001) g + eps)."""
    g = 1e-9
    alpha = 0.001 * np.sqrt(1 - 0.999) / (1 - 0.9)
    expected = -alpha * 0.1 * g / (np.sqrt(0.001) * g + 1e-7)
    np.testing.assert_allclose(steps(optimizers.Adam(), [0.0], [[g]]), [expected], rtol=1e-9)
    np.testing.assert_allclose(steps(optimizers.Adam(epsilon=None), [0.0], [[g]]), [expected], rtol=1e-9)


def test_an_optimizer_config_without_a_name_is_an_unknown_optimizer():
    with pytest.raises(ValueError, match=r"^Unknown optimizer \{'learning_rate': 0\.1\}"):
        optimizers.get({"learning_rate": 0.1})


def test_bad_constructor_arguments_are_errors_that_name_the_optimizer():
    with pytest.raises(ValueError, match=r"^Adam: learning_rate must be >= 0, got -0\.1$"):
        optimizers.Adam(learning_rate=-0.1)
    with pytest.raises(ValueError, match=r"^RMSprop: learning_rate must be >= 0, got None$"):
        optimizers.RMSprop(learning_rate=None)
    with pytest.raises(TypeError, match=r"^SGD: unknown argument\(s\) \['foo', 'moment'\]$"):
        optimizers.SGD(moment=0.9, foo=1)


def test_clipnorm_tames_an_exploding_float32_gradient():
    """The norm is taken in float64: the squares of a float32 gradient (3e19, 4e19) overflow
    float32, yet the clipped gradient is (0.6, 0.8) * clipnorm, as the gradient's direction says."""
    sgd = optimizers.SGD(learning_rate=1.0, clipnorm=2.0)
    np.testing.assert_allclose(steps(sgd, [0.0, 0.0], [[3e19, 4e19]], dtype=np.float32), [-1.2, -1.6], rtol=1e-6)


def test_amsgrad_divides_by_the_largest_v_so_far():
    """Keras's amsgrad=True: vhat = max(vhat, v); p -= alpha_t m / (sqrt(vhat) + eps). The gradients
    shrink (1, 0.01, 0.01), so v falls below its first value and vhat keeps the largest, then grow
    (2), so v passes it again; the
    expected values follow the equations step by step (minidl/optimizers.py)."""
    lr, b1, b2, eps = 0.01, 0.9, 0.999, 1e-7
    gradients = [1.0, 0.01, 0.01, 2.0]
    m = v = vhat = 0.0
    expected = 1.0
    for t, g in enumerate(gradients, start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        vhat = max(vhat, v)
        expected -= lr * np.sqrt(1 - b2 ** t) / (1 - b1 ** t) * m / (np.sqrt(vhat) + eps)
    amsgrad = steps(optimizers.Adam(learning_rate=lr, amsgrad=True), [1.0], [[g] for g in gradients])
    np.testing.assert_allclose(amsgrad, [expected], rtol=1e-12)
    plain = steps(optimizers.Adam(learning_rate=lr), [1.0], [[g] for g in gradients])
    assert abs(plain[0] - expected) > 1e-6            # vhat made a difference
    tiny = steps(optimizers.Adam(learning_rate=lr, amsgrad=True), [0.0], [[1e-9]])     # epsilon shows
    np.testing.assert_allclose(tiny, [-lr * np.sqrt(1 - b2) / (1 - b1) * 1e-10 / (np.sqrt(1e-3) * 1e-9 + eps)],
                               rtol=1e-9)


def test_state_set_on_a_used_optimizer_reads_back_before_the_next_update():
    adam = optimizers.Adam()
    parameter = Parameter("p", np.ones(2))
    parameter.grad = np.ones(2)
    adam.apply_gradients([parameter])
    state = adam.get_state()
    adam.apply_gradients([parameter])
    adam.set_state(state)
    again = adam.get_state()
    assert again["iterations"] == 1
    np.testing.assert_array_equal(again["slots"][0]["m"], state["slots"][0]["m"])
