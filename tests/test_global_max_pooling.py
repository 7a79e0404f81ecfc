"""GlobalMaxPooling2D (minidl/layers/global_max_pooling.py): values, ties, gradients."""
import numpy as np
import pytest

from minidl.gradcheck import check_gradients
from minidl.layers.global_max_pooling import GlobalMaxPooling2D


def test_forward_matches_numpy_max(rng):
    x = rng.normal(size=(3, 5, 4, 6)).astype(np.float32)
    layer = GlobalMaxPooling2D()
    out = layer(x)
    assert out.shape == (3, 6) and out.dtype == np.float32
    for n in range(3):
        for c in range(6):
            assert out[n, c] == max(x[n, h, w, c] for h in range(5) for w in range(4))
    assert GlobalMaxPooling2D(keepdims=True)(x).shape == (3, 1, 1, 6)
    assert layer.compute_output_shape((None, 5, 4, 6)) == (None, 6)


def test_backward_routes_to_the_maximum(rng):
    x = rng.normal(size=(2, 3, 3, 2))
    x[0, 1, 2, 0] = 10.0
    layer = GlobalMaxPooling2D()
    layer(x)
    grad_output = rng.normal(size=(2, 2))
    grad = layer.backward(grad_output)
    assert grad[0, 1, 2, 0] == grad_output[0, 0]
    assert np.count_nonzero(grad[0, :, :, 0]) == 1
    np.testing.assert_allclose(grad.sum(axis=(1, 2)), grad_output)


def test_ties_share_the_gradient_equally_as_tf_reduce_max():
    x = np.zeros((1, 2, 2, 1))
    x[0, 0, 1, 0] = x[0, 1, 0, 0] = 3.0
    layer = GlobalMaxPooling2D()
    layer(x)
    grad = layer.backward(np.array([[4.0]]))
    np.testing.assert_array_equal(grad[0, :, :, 0], [[0.0, 2.0], [2.0, 0.0]])


@pytest.mark.parametrize("keepdims", [False, True])
def test_gradient_check(rng, keepdims):
    # Distinct values: finite differences are only valid away from ties.
    x = rng.permutation(np.arange(2 * 4 * 3 * 5, dtype=np.float64)).reshape(2, 4, 3, 5) / 7.0
    report = check_gradients(GlobalMaxPooling2D(keepdims=keepdims), x, max_entries=200)
    assert report.max_error < 1e-7, str(report)


def test_wrong_rank_error():
    with pytest.raises(ValueError, match="GlobalMaxPooling2D 'global_max_pooling2d_1'.*rank 4"):
        GlobalMaxPooling2D()(np.zeros((2, 3, 4)))
