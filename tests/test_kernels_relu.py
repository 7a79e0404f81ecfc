"""The Numba ReLU kernels equal the NumPy reference bit for bit (NaN, -0.0, inf included)."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minidl.kernels.fast import relu_numba
from minidl.kernels.reference import relu as relu_reference

SPECIALS = np.array([np.nan, -0.0, 0.0, np.inf, -np.inf, 1e-30, -1e-30])


def _bits(array):
    """Compare floats exactly, NaN and the sign of zero included."""
    return array.view(np.uint32 if array.dtype == np.float32 else np.uint64)


def _sample(rng, size, dtype):
    values = rng.standard_normal(size)
    positions = rng.integers(0, max(size, 1), size=min(size, 20))
    values[positions] = rng.choice(SPECIALS, size=len(positions))
    return values.astype(dtype)


@settings(max_examples=40, deadline=None)
@given(size=st.integers(0, 70000), dtype=st.sampled_from([np.float32, np.float64]),
       seed=st.integers(0, 2**16))
def test_forward_and_backward_equal_the_reference(size, dtype, seed):
    rng = np.random.default_rng(seed)
    z = _sample(rng, size, dtype).reshape(-1, 1)
    grad = _sample(rng, size, dtype).reshape(-1, 1)
    a_fast, a_ref = relu_numba.relu_forward(z), relu_reference.relu_forward(z)
    assert a_fast.dtype == a_ref.dtype == dtype and a_fast.shape == z.shape
    np.testing.assert_array_equal(_bits(a_fast), _bits(a_ref))
    with np.errstate(invalid="ignore"):   # inf * 0 is NaN on both paths, on purpose
        g_fast, g_ref = relu_numba.relu_backward(grad, a_ref), relu_reference.relu_backward(grad, a_ref)
    assert g_fast.dtype == g_ref.dtype == dtype
    np.testing.assert_array_equal(_bits(g_fast), _bits(g_ref))


def test_nhwc_views_and_the_tf_convention_at_zero():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 7, 9, 8)).astype(np.float32)[:, ::2, :, 1:6]   # not contiguous
    a = relu_numba.relu_forward(x)
    np.testing.assert_array_equal(a, np.maximum(x, 0))
    grad = rng.standard_normal(a.shape).astype(np.float32)
    a[0, 0, 0, 0] = 0.0                      # exactly at the kink: TF passes no gradient
    expected = np.where(a > 0, grad, 0)
    np.testing.assert_array_equal(relu_numba.relu_backward(grad, a), expected)
    assert relu_numba.relu_backward(grad, a)[0, 0, 0, 0] == 0


def test_negative_zero_becomes_positive_zero_and_nan_stays():
    a = relu_numba.relu_forward(np.array([-0.0, np.nan, -3.0, 2.5], np.float32))
    assert not np.signbit(a[0]) and np.isnan(a[1]) and a[2] == 0 and a[3] == 2.5


def test_mismatched_shapes_name_the_kernel():
    with pytest.raises(ValueError, match=r"relu_backward.*\(2, 3\).*\(3, 2\)"):
        relu_numba.relu_backward(np.ones((2, 3)), np.ones((3, 2)))
