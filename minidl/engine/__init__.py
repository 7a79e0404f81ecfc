"""How ``predict`` and ``train_on_batch`` run a whole model: the textbook walks, or the engine's.

On the reference path (``MINIDL_KERNELS=reference``) the functions below call the walks a
learner reads in ``minidl/models/model.py``: ``Model.forward`` and ``Model.backward``. On
the numba path they run the same graph with less memory traffic and work, for the same
numbers:

* :func:`forward_for_inference` -- ``forward.py``: Conv2D -> BatchNormalization -> ReLU as one
  fused step (``fusion.py``), concatenations written in place, arrays freed as soon as read,
  an Inception block's branches at once on the cores (``branches.py``);
* :func:`forward_for_training` -- ``forward.py`` again: only the nodes the backward walk will
  visit keep what backward needs (``gradient_plan.py``); a frozen part runs as inference;
* :func:`backward_for_training` -- ``training_walk.py``: only those nodes, each computing only
  the gradients wanted, saved arrays freed during the walk, fan-out gradients summed in place.

Together with the fast operations in ``minidl/kernels/fast/`` this is the engine; tests
prove both paths give the same outputs and gradients.

Example::

    outputs = engine.forward_for_inference(model, x)        # what predict_on_batch does
    outputs = engine.forward_for_training(model, x)         # what a training step does ...
    engine.backward_for_training(model, loss_gradient)      # ... then this
"""
from minidl import config
from minidl.layers.base import no_backward

_on_reference_path = [config.kernel_path() == "reference"]
config.when_kernel_path_changes(lambda path: _on_reference_path.__setitem__(0, path == "reference"))


def forward_for_inference(model, inputs):
    """``model``'s output(s) at inference (``training=False``), keeping nothing for backward."""
    if _on_reference_path[0]:
        with no_backward():
            return model.forward(inputs, training=False)
    from minidl.engine import forward
    return forward.run_inference(model, inputs)


def forward_for_training(model, inputs, training=True):
    """``model.forward(inputs, training)`` for a training step, keeping what
    :func:`backward_for_training` needs."""
    if _on_reference_path[0]:
        return model.forward(inputs, training=training)
    from minidl.engine import forward, gradient_plan
    return forward.run_training(model, inputs, gradient_plan.gradient_plan(model), training)


def backward_for_training(model, grad_output):
    """``model.backward(grad_output)`` after :func:`forward_for_training`: fills every trainable
    parameter's gradient. The engine's walk returns no input gradients."""
    if _on_reference_path[0]:
        return model.backward(grad_output)
    from minidl.engine import gradient_plan, training_walk
    return training_walk.backward(model, grad_output, gradient_plan.gradient_plan(model))
