"""The engine's backward walk for a training step: ``Model.backward``, with less memory and work.

``train_on_batch`` runs the model's backward pass through :func:`backward` on the numba
path (through ``Model.backward`` on the reference path). It visits the same nodes in the
same order and computes the same parameter gradients, but:

* **Only where it matters** (``gradient_plan.py``): a node no gradient passes through is
  not visited at all -- a frozen base under a trainable head costs nothing here; the
  deepest visited node computes no input gradient (``without_input_gradient``: a
  convolution then skips its col2im), and a frozen layer among visited ones computes no
  weight gradient (``without_weight_gradient``: a convolution skips its kernel's product).
  No gradient is made for the model's inputs either; the walk returns None for them
  (a nested model's walk returns its input gradients when the outer walk needs them).
* **Saved arrays are freed as the walk goes.** A layer's saved arrays (its inputs, its
  output...) are dropped as soon as its backward has run, not when the whole walk ends.
  The model's saved values are used up: a second backward needs a new forward pass.
* **Fan-out sums in place.** Where several layers read one tensor, their gradients are
  added into an array the walk allocated itself, instead of a new array per addition.

What each is worth: ``benchmarks/README.md``.

Example::

    plan = gradient_plan(model)
    outputs = forward.run_training(model, x, plan)
    backward(model, loss_gradient, plan)       # every trainable Parameter.grad is set
"""
from contextlib import ExitStack

import numpy as np

from minidl.engine.gradient_plan import gradient_plan
from minidl.kernels.fast.conv import without_input_gradient, without_weight_gradient


def backward(model, grad_output, plan):
    """Fill the trainable parameters' gradients of ``model`` from dL/doutput(s).

    Returns the gradients of the model's inputs when ``plan.inputs_need_grad``, else None
    (one per input for a model with several).
    """
    (saved,) = model.saved
    model.saved = None                         # this walk uses the saved values up
    grads = dict(zip(model._output_ids, [grad_output] if model._single_output else grad_output))
    own_sums = set()       # sums this walk allocated: later fan-out branches add into them in place
    shared_layer_grads = {}
    for node in reversed(model._nodes):
        wants = plan.wants.get(node)
        if wants is None:
            continue                           # not walked: frozen, or a model input
        grad = grads.pop(id(node.output_tensors[0]), None)
        if grad is None:
            continue                           # does not influence the outputs
        layer = node.layer
        layer.saved = saved.pop(node)
        input_grads = _layer_backward(layer, grad, wants)
        layer.saved = None                     # free this layer's saved arrays now
        del grad
        if model._uses[layer] > 1:
            model._sum_parameter_grads_over_uses(layer, shared_layer_grads)
        if wants[1]:
            for tensor, input_grad in zip(node.input_tensors, input_grads if isinstance(input_grads, list)
                                          else [input_grads]):
                if plan.carries_gradient(tensor):
                    _add_gradient(grads, own_sums, tensor, input_grad)
    if not plan.inputs_need_grad:
        return None if model._single_input else [None] * len(model.inputs)
    result = [grads.get(key) for key in model._input_ids]
    return result[0] if model._single_input else result


def _layer_backward(layer, grad, wants):
    """One layer's backward, asking only for the gradients the plan wants."""
    weights, inputs = wants
    if hasattr(layer, "walk_layers"):          # a nested model: its own walk and plan
        return backward(layer, grad, gradient_plan(layer, inputs))
    with ExitStack() as scope:
        if not inputs:
            scope.enter_context(without_input_gradient())
        if not weights:
            scope.enter_context(without_weight_gradient())
        return layer.backward(grad)


def _add_gradient(grads, own_sums, tensor, gradient):
    """grads[tensor] += gradient: in place into a sum the walk owns, else into a new array."""
    key = id(tensor)
    if gradient is None:
        return
    if key not in grads:
        grads[key] = gradient
    elif key in own_sums and grads[key].dtype == np.result_type(grads[key], gradient):
        grads[key] += gradient
    else:
        grads[key] = grads[key] + gradient
        own_sums.add(key)
