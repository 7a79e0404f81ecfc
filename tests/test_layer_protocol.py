"""The public layer protocol a custom layer is written with, and the errors that teach it.

* calling a layer on an array builds it (as ``minidl/layers/base.py`` says), then checks the
  input against its ``InputSpec`` on every call, naming the layer;
* ``save_for_backward`` / ``saved``: what forward keeps, nothing inside ``no_backward``, and a
  clear error for a backward without a forward -- also for a model whose saved values the
  training step's backward walk has used up;
* ``store_grad`` refuses a gradient of the wrong shape, naming the layer and the parameter,
  also when the layer is deep inside a model's training step;
* ``Model.walk_layers`` visits nested models' layers, in order.
"""
import numpy as np
import pytest

from minidl.layers import Dense, Input, InputSpec, Layer, no_backward
from minidl.models import Model, Sequential


class Scale(Layer):
    """y = x * w, one weight per channel; ``wrong_grad_shape`` breaks its backward on purpose."""

    def __init__(self, wrong_grad_shape=False, **kwargs):
        super().__init__(**kwargs)
        self.wrong_grad_shape = wrong_grad_shape
        self.input_spec = InputSpec(min_ndim=2)

    def build(self, input_shape):
        self.w = self.add_weight("w", (input_shape[-1],), "ones")
        self.input_spec = InputSpec(min_ndim=2, axes={-1: input_shape[-1]})

    def forward(self, inputs, training=False):
        self.save_for_backward(inputs)
        return inputs * self.value_of(self.w, like=inputs)

    def backward(self, grad_output):
        (inputs,) = self.saved
        grad_w = (grad_output * inputs).sum(axis=0)
        self.store_grad(self.w, grad_w[:-1] if self.wrong_grad_shape else grad_w)
        return grad_output * self.value_of(self.w, like=grad_output)


def test_calling_a_layer_on_an_array_builds_it_then_checks_every_input():
    layer = Scale(name="scale")
    assert not layer.built
    y = layer(np.full((2, 3), 2.0, np.float32))
    assert layer.built and layer.w.value.shape == (3,)
    np.testing.assert_array_equal(y, 2.0)
    with pytest.raises(ValueError, match=r"Scale 'scale' expects input with 3 channels, got 4"):
        layer(np.ones((2, 4), np.float32))
    with pytest.raises(ValueError, match=r"Scale 'scale' expects input of rank >= 2, got rank 1"):
        layer(np.ones(3, np.float32))


def test_saved_holds_what_forward_kept_and_nothing_inside_no_backward():
    layer = Scale(name="scale")
    x = np.arange(6.0).reshape(2, 3)
    layer(x)
    assert layer.saved[0] is x
    with no_backward():
        layer(x)
    with pytest.raises(RuntimeError, match=r"Scale 'scale': backward\(\) needs what forward\(\) saves"):
        layer.backward(np.ones((2, 3)))


def test_a_gradient_of_the_wrong_shape_names_the_layer_and_the_parameter():
    layer = Scale(wrong_grad_shape=True, name="broken")
    layer(np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"Scale 'broken': the gradient stored for 'broken/w:0' has shape "
                                         r"\(2,\), but the parameter has shape \(3,\)"):
        layer.backward(np.ones((2, 3)))


@pytest.mark.parametrize("path", ["numba", "reference"])
def test_the_wrong_shape_is_reported_from_inside_a_training_step(path):
    from minidl import config
    inputs = Input(shape=(3,))
    model = Model(inputs, Dense(1)(Scale(wrong_grad_shape=True, name="deep")(Dense(3)(inputs))))
    model.compile("sgd", "mean_squared_error")
    with config.using_kernel_path(path):
        with pytest.raises(ValueError, match=r"Scale 'deep': the gradient stored for 'deep/w:0'"):
            model.train_on_batch(np.ones((4, 3)), np.zeros((4, 1)))


@pytest.mark.parametrize("path", ["numba", "reference"])
def test_backward_after_a_training_step_is_an_error_not_a_silent_no_op(path):
    from minidl import config
    inputs = Input(shape=(3,))
    model = Model(inputs, Dense(1)(Dense(4, activation="relu")(inputs)))
    model.compile("sgd", "mean_squared_error")
    with config.using_kernel_path(path):
        model.compute_gradients(np.ones((4, 3)), np.zeros((4, 1)))
        if path == "numba":     # the engine's walk used the saved values up
            with pytest.raises(RuntimeError, match=r"backward\(\) needs what forward\(\) saves"):
                model.backward(np.ones((4, 1)))
        model.forward(np.ones((4, 3)), training=True)
        assert model.backward(np.ones((4, 1))).shape == (4, 3)    # after a new forward it works
        with no_backward():
            model.forward(np.ones((4, 3)), training=False)
        with pytest.raises(RuntimeError, match=r"Model '.*': backward\(\) needs what forward\(\) saves"):
            model.backward(np.ones((4, 1)))


def test_walk_layers_visits_nested_models_in_order():
    inner = Sequential([Dense(2, input_shape=(3,), name="inner_a"), Dense(2, name="inner_b")], name="inner")
    inputs = Input(shape=(3,), name="x")
    model = Model(inputs, Dense(1, name="top")(inner(inputs)), name="outer")
    assert [layer.name for layer in model.walk_layers()] == ["x", "inner", "inner_a", "inner_b", "top"]
    assert [layer.name for layer in model.walk_layers(recursive=False)] == ["x", "inner", "top"]
    assert model.output_layer().name == "top"
    assert Model(inputs, inner(inputs)).output_layer().name == "inner_b"    # looks inside nested models
