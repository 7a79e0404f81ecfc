"""The SGD-with-momentum update: the engine's loop equals the NumPy reference bit for bit,
and the reference equals the equations in its docstring, written out by hand."""
import numpy as np
import pytest

from minidl.kernels.fast import sgd_numba
from minidl.kernels.reference import sgd as reference_sgd


def state(rng, dtype, size):
    value, grad, velocity = (rng.normal(size=size).astype(dtype) for _ in range(3))
    return value, grad, velocity


@pytest.mark.parametrize("nesterov", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("size", [(7,), (3, 3, 4, 5), (1 << 20) + 3])     # serial and parallel builds
def test_engine_equals_reference_bit_for_bit(rng, dtype, nesterov, size):
    value, grad, velocity = state(rng, dtype, size)
    expected_value, expected_velocity = value.copy(), velocity.copy()
    for _ in range(3):                                   # a few steps, so velocity matters
        reference_sgd.sgd_momentum_update(expected_value, grad, expected_velocity, 0.9, 0.01, nesterov)
        sgd_numba.sgd_momentum_update(value, grad, velocity, 0.9, 0.01, nesterov)
    np.testing.assert_array_equal(value, expected_value)
    np.testing.assert_array_equal(velocity, expected_velocity)
    assert value.dtype == dtype and velocity.dtype == dtype


@pytest.mark.parametrize("nesterov", [False, True])
def test_reference_follows_the_equations(rng, nesterov):
    value, grad, velocity = state(rng, np.float64, (5,))
    new_velocity = 0.8 * velocity - 0.1 * grad
    new_value = value + (0.8 * new_velocity - 0.1 * grad if nesterov else new_velocity)
    reference_sgd.sgd_momentum_update(value, grad, velocity, 0.8, 0.1, nesterov)
    np.testing.assert_allclose(velocity, new_velocity, rtol=1e-15)
    np.testing.assert_allclose(value, new_value, rtol=1e-15)


def test_strided_or_mixed_arrays_take_the_reference_lines(rng):
    value, grad, velocity = state(rng, np.float32, (6, 4))
    expected_value, expected_velocity = value.copy(), velocity.copy()
    grad64 = grad.astype(np.float64)[:, ::-1]            # another dtype, not contiguous
    reference_sgd.sgd_momentum_update(expected_value, grad64, expected_velocity, 0.9, 0.01, False)
    sgd_numba.sgd_momentum_update(value, grad64, velocity, 0.9, 0.01, False)
    np.testing.assert_array_equal(value, expected_value)
