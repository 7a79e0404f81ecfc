"""Checks of the optimizers, losses, metrics and activations."""
import numpy as np
import pytest

from minidl import activations, losses, metrics, optimizers
from minidl.metrics import BinaryAccuracy, CategoricalAccuracy
from minidl.optimizers import SGD, Adam, RMSprop
from minidl.parameter import Parameter
from signature_audit import X, Y, check, tiny_model


def one_step(optimizer, grads, start=1.0):
    """Apply ``optimizer`` to one parameter for the successive gradients ``grads``; return its values."""
    parameter = Parameter("w", np.full(np.shape(grads[0]), start))
    values = []
    for grad in grads:
        parameter.grad = np.asarray(grad, dtype=np.float64)
        optimizer.apply_gradients([parameter])
        values.append(parameter.value.copy())
    return np.array(values)


@check("Optimizer", "learning_rate", "lr")
def _(t):
    assert one_step(SGD(learning_rate=0.5), [[2.0]])[-1] == pytest.approx([0.0])
    assert one_step(SGD(lr=0.25), [[2.0]])[-1] == pytest.approx([0.5])                 # Keras 2's alias


@check("Optimizer", "decay")
def _(t):
    values = one_step(SGD(0.5, decay=1.0), [[1.0], [1.0]])
    assert values[1] - values[0] == pytest.approx([-0.25])          # second step: 0.5 / (1 + 1 * 1)


@check("Optimizer", "clipnorm")
def _(t):
    assert one_step(SGD(1.0, clipnorm=1.0), [[3.0, 4.0]])[-1] == pytest.approx([0.4, 0.2])


@check("Optimizer", "clipvalue")
def _(t):
    assert one_step(SGD(1.0, clipvalue=0.5), [[3.0, -0.25]])[-1] == pytest.approx([0.5, 1.25])


@check("Optimizer", "**unknown")
def _(t):
    with pytest.raises(TypeError, match="momentum"):
        Adam(momentum=0.9)


@check("SGD", "learning_rate", "momentum")
def _(t):
    values = one_step(SGD(0.1, momentum=0.5), [[1.0], [1.0]])
    np.testing.assert_allclose(values, [[0.9], [0.75]])             # v = -0.1, then 0.5 * -0.1 - 0.1


@check("SGD", "nesterov")
def _(t):
    values = one_step(SGD(0.1, momentum=0.5, nesterov=True), [[1.0]])
    np.testing.assert_allclose(values, [[0.85]])                    # p + 0.5 * v - 0.1 g, v = -0.1


@check("SGD", "**kwargs")
@check("Adam", "**kwargs")
@check("RMSprop", "**kwargs")
def _(t):
    optimizer = getattr(optimizers, t.name)(lr=0.25, decay=0.5, clipnorm=1.0, clipvalue=2.0)
    assert (optimizer.learning_rate, optimizer.decay, optimizer.clipnorm, optimizer.clipvalue) == (0.25, 0.5, 1.0, 2.0)
    with pytest.raises(TypeError, match="bogus"):
        getattr(optimizers, t.name)(bogus=1)


def adam_reference(grads, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False):
    """Keras 2's Adam, written out (minidl/keras_semantics.md §5.6)."""
    p, m, v, vhat, values = 1.0, 0.0, 0.0, 0.0, []
    for step, g in enumerate(grads, start=1):
        m = beta_1 * m + (1 - beta_1) * g
        v = beta_2 * v + (1 - beta_2) * g * g
        vhat = max(vhat, v)
        alpha = learning_rate * np.sqrt(1 - beta_2 ** step) / (1 - beta_1 ** step)
        p -= alpha * m / (np.sqrt(vhat if amsgrad else v) + epsilon)
        values.append(p)
    return values


@check("Adam", "learning_rate", "beta_1", "beta_2", "epsilon")
def _(t):
    settings = dict(learning_rate=0.1, beta_1=0.5, beta_2=0.75, epsilon=0.5)
    values = one_step(Adam(**settings), [[1.0], [-2.0], [0.5]])
    np.testing.assert_allclose(values[:, 0], adam_reference([1.0, -2.0, 0.5], **settings), rtol=1e-6)


@check("Adam", "amsgrad")
def _(t):
    grads = [10.0, 0.1, 0.1]                                        # v shrinks after the first step
    amsgrad = one_step(Adam(0.1, beta_2=0.5, amsgrad=True), [[g] for g in grads])[:, 0]
    np.testing.assert_allclose(amsgrad, adam_reference(grads, 0.1, beta_2=0.5, amsgrad=True), rtol=1e-6)
    assert abs(amsgrad[-1] - adam_reference(grads, 0.1, beta_2=0.5)[-1]) > 0.01


@check("RMSprop", "learning_rate", "rho", "epsilon")
def _(t):
    values = one_step(RMSprop(learning_rate=0.1, rho=0.5, epsilon=0.5), [[2.0]])
    np.testing.assert_allclose(values, [[1.0 - 0.1 * 2.0 / (np.sqrt(0.5 * 4.0) + 0.5)]])


@check("optimizers.get", "identifier")
def _(t):
    assert isinstance(optimizers.get("adam"), Adam)
    assert optimizers.get({"name": "SGD", "learning_rate": 0.5}).learning_rate == 0.5
    with pytest.raises(ValueError, match="Unknown optimizer"):
        optimizers.get("adamw")


@check("BinaryCrossentropy", "from_logits")
def _(t):
    assert losses.BinaryCrossentropy(from_logits=True)(np.array([1.0]), np.array([[0.0]])) == pytest.approx(np.log(2))
    model = tiny_model()                                            # a sigmoid output, taken as logits
    model.compile(SGD(0.0), losses.BinaryCrossentropy(from_logits=True))
    sigmoid_outputs = model.predict(X)
    expected = losses.BinaryCrossentropy(from_logits=True)(Y, sigmoid_outputs)
    assert model.train_on_batch(X, Y) == pytest.approx(expected, rel=1e-5)


@check("losses.get", "identifier")
def _(t):
    assert isinstance(losses.get("mse"), losses.MeanSquaredError)
    assert losses.get({"name": "binary_crossentropy", "from_logits": True}).from_logits is True
    with pytest.raises(ValueError, match="Unknown loss"):
        losses.get("hinge")


@check("MeanMetric", "name")
@check("BinaryAccuracy", "name")
@check("CategoricalAccuracy", "name")
def _(t):
    metric = getattr(metrics, t.name)(name="hits")
    assert metric.name == "hits"


@check("BinaryAccuracy", "threshold")
def _(t):
    metric = BinaryAccuracy(threshold=0.8)
    metric.update(np.array([1.0, 0.0]), np.array([[0.7], [0.7]]))
    assert metric.result() == 0.5                                   # 0.7 is class 0 now


@check("metrics.get", "identifier", "output_units", "loss_name")
def _(t):
    assert isinstance(metrics.get("accuracy", 1, "mean_squared_error"), BinaryAccuracy)
    assert isinstance(metrics.get("accuracy", 3, "categorical_crossentropy"), CategoricalAccuracy)
    assert isinstance(metrics.get("acc", 3, "binary_crossentropy"), BinaryAccuracy)
    assert metrics.get("acc", 1, "binary_crossentropy").name == "acc"


@check("activations.get", "identifier")
def _(t):
    assert activations.get(None) is activations.linear and activations.get("ReLU") is activations.relu
    with pytest.raises(ValueError, match="Unknown activation"):
        activations.get("swish")
