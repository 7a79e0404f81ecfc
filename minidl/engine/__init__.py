"""How ``predict`` and ``train_on_batch`` run a whole model: the textbook walks, or the engine's.

On the reference path (``MINIDL_KERNELS=reference``) both functions below call the walks
a learner reads in ``minidl/models/model.py``: ``Model.forward`` and ``Model.backward``.
On the numba path they run the same graph with less memory traffic and the same numbers:

* :func:`forward_for_inference` -- ``inference.py``: Conv2D -> BatchNormalization -> ReLU
  as one fused step, concatenations written in place, arrays freed as soon as read;
* :func:`backward_for_training` -- ``training_walk.py``: saved arrays freed during the walk,
  no gradient for the model's inputs, fan-out gradients summed in place.

Together with the fast operations in ``minidl/kernels/fast/`` this is the engine; tests
prove both paths give the same outputs and gradients.

Example::

    outputs = engine.forward_for_inference(model, x)        # what predict_on_batch does
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
    from minidl.engine import inference
    return inference.run(model, inputs)


def backward_for_training(model, grad_output):
    """``model.backward(grad_output)`` after ``model.forward(x, training=True)``: fills every
    trainable parameter's gradient. The engine's walk returns no input gradients."""
    if _on_reference_path[0]:
        return model.backward(grad_output)
    from minidl.engine import training_walk
    return training_walk.backward(model, grad_output)
