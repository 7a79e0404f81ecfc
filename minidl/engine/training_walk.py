"""The engine's backward walk for a training step: ``Model.backward``, with less memory and work.

``train_on_batch`` runs the model's backward pass through :func:`backward` on the numba
path (through ``Model.backward`` on the reference path). It walks the same nodes in the
same order and computes the same parameter gradients; it differs in three ways, each
measured worth it (``benchmarks/README.md``):

* **Saved arrays are freed as the walk goes.** A layer's saved arrays (its inputs, its
  output...) are dropped as soon as its backward has run, not when the whole walk ends:
  the activations of the deepest layers are gone before the first layers are reached.
  The model's saved values are used up: a second backward needs a new forward pass.
* **No gradient for the model's inputs.** Nobody needs dL/dx of the images during
  training, so a layer that reads only the model's inputs runs its backward inside
  ``without_input_gradient()`` (the first convolution then skips its col2im), and the
  walk returns None for every model input. Not a nested model: the layers inside it need
  their input gradients to reach the layers before them.
* **Fan-out sums in place.** Where several layers read one tensor, their gradients are
  added into an array the walk allocated itself, instead of a new array per addition.

Example::

    outputs = model.forward(x, training=True)
    backward(model, loss_gradient)       # every trainable Parameter.grad is set
"""
import numpy as np

from minidl.kernels.fast.conv import without_input_gradient


def backward(model, grad_output):
    """Fill the parameter gradients of ``model`` from dL/doutput(s); returns None per input."""
    (saved,) = model.saved
    model.saved = None                         # this walk uses the saved values up
    outputs = model.outputs
    grads = dict(zip((id(t) for t in outputs), [grad_output] if model._single_output else grad_output))
    input_ids = {id(t) for t in model.inputs}
    own_sums = set()       # sums this walk allocated: later fan-out branches add into them in place
    shared_layer_grads = {}
    for node in reversed(model._nodes):
        if node not in saved:
            continue                                   # a model input: nothing to do
        grad = grads.pop(id(node.output_tensors[0]), None)
        if grad is None:
            continue                                   # does not influence the outputs
        layer = node.layer
        layer.saved = saved.pop(node)
        nested_model = hasattr(layer, "walk_layers")
        if not nested_model and all(id(t) in input_ids for t in node.input_tensors):
            with without_input_gradient():
                input_grads = layer.backward(grad)
        else:
            input_grads = layer.backward(grad)
        layer.saved = None                             # free this layer's saved arrays now
        del grad
        if model._uses[layer] > 1:
            model._sum_parameter_grads_over_uses(layer, shared_layer_grads)
        for tensor, input_grad in zip(node.input_tensors, input_grads if isinstance(input_grads, list)
                                      else [input_grads]):
            _add_gradient(grads, own_sums, tensor, input_grad, input_ids)
    return None if model._single_input else [None] * len(model.inputs)


def _add_gradient(grads, own_sums, tensor, gradient, input_ids):
    """grads[tensor] += gradient: in place into a sum the walk owns, else into a new array."""
    key = id(tensor)
    if gradient is None or key in input_ids:
        return
    if key not in grads:
        grads[key] = gradient
    elif key in own_sums and grads[key].dtype == np.result_type(grads[key], gradient):
        grads[key] += gradient
    else:
        grads[key] = grads[key] + gradient
        own_sums.add(key)
