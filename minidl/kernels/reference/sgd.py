"""One SGD-with-momentum update of a parameter, in plain NumPy, in place (Keras 2's form).

With the gradient ``g``, the learning rate ``lr`` and the momentum ``mu``::

    velocity = mu * velocity - lr * g
    value   += velocity                          (classical momentum)
    value   += mu * velocity - lr * g            (nesterov=True: look one step ahead)

``velocity`` remembers the direction of the last steps: with ``mu = 0.9`` a gradient that
keeps its sign builds up to ten times the plain step ``lr * g``. Both ``value`` and
``velocity`` are updated in place (they are as large as the model).

Example::

    sgd_momentum_update(parameter.value, parameter.grad, velocity, 0.9, 1e-4, nesterov=False)
"""


def sgd_momentum_update(value, grad, velocity, momentum, learning_rate, nesterov):
    """Update ``velocity`` and then ``value`` in place; scalars act in ``value``'s dtype."""
    dtype = value.dtype.type
    mu, lr = dtype(momentum), dtype(learning_rate)
    velocity *= mu
    velocity -= lr * grad
    if nesterov:
        value += mu * velocity - lr * grad
    else:
        value += velocity
