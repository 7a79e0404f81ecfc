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
* **Batch norm and ReLU as one** (``fusion.BatchNormReLUTraining``): where the forward ran
  them as one step, the ReLU hands dL/da on unchanged (:func:`_node_backward`) and the batch
  norm's backward applies the ReLU's mask, recomputed from its input.
* **An Inception block's branches at once** (``branches.py``): where the forward ran a
  block as a keeping region, the walk runs its layers' backward on every core at once,
  each layer once the layers reading its output are done (:func:`_walk_region_at_once`).

What each is worth: ``benchmarks/README.md``.

Example::

    plan = gradient_plan(model)
    outputs = forward.run_training(model, x, plan)
    backward(model, loss_gradient, plan)       # every trainable Parameter.grad is set
"""
from contextlib import ExitStack

import numpy as np

from minidl.engine import branches, forward
from minidl.engine.fusion import GradientBeforeReLU, ReLUAfterBatchNorm
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
    regions = _regions_walked_at_once(model, plan)
    walked_at_once = set()
    for node in reversed(model._nodes):
        if node in walked_at_once:
            continue
        region = regions.get(node)
        if region is not None and _walk_region_at_once(region, model, plan, saved, grads, own_sums):
            walked_at_once.update(region.nodes)
            continue
        wants = plan.wants.get(node)
        if wants is None:
            continue                           # not walked: frozen, or a model input
        grad = grads.pop(id(node.output_tensors[0]), None)
        if grad is None:
            continue                           # does not influence the outputs
        layer = node.layer
        input_grads = _node_backward(node, saved.pop(node), grad, wants)
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


def _node_backward(node, kept, grad, wants):
    """The backward of ``node`` from what its forward ``kept``, asking only for the gradients
    the plan wants; the layer's saved arrays are freed as soon as it is done. A batch norm
    and ReLU that ran as one training step (``fusion.BatchNormReLUTraining``) run as one
    here too: the ReLU hands dL/da on unchanged and the batch norm's backward applies the
    ReLU's mask."""
    layer = node.layer
    if isinstance(kept, ReLUAfterBatchNorm):
        input_grads = kept.through(grad)
    elif isinstance(grad, GradientBeforeReLU):
        input_grads = grad.batchnorm_backward(layer, kept, wants)
    else:
        layer.saved = kept
        input_grads = _layer_backward(layer, grad, wants)
    layer.saved = None                         # free this layer's saved arrays now
    return input_grads


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


def _regions_walked_at_once(model, plan):
    """{last node: region} of the forward's keeping regions (``branches.py``) whose walked
    layers each run once in the model: their backward can run at once too."""
    if not branches.parallel_branches_enabled():
        return {}
    regions = forward.planned_regions(model, plan)
    return {region.nodes[-1]: region for region in regions.values()
            if region.keeps and all(model._uses[node.layer] == 1 for node in region.nodes)}


def _walk_region_at_once(region, model, plan, saved, grads, own_sums):
    """The backward of a region's walked nodes on every core at once; False (nothing done)
    when the cores cannot be shared now.

    A node runs when every walked node of the region that reads its output has given its
    gradient; it sums those gradients in the order the walk in turn would (the join's
    first, then the readers from the last node back); the gradients the region gives the
    fork are added after it, in that order too. So the numbers differ from the walk in
    turn's only where a product summed on one thread rounds otherwise than on two
    (``branches.py``).
    """
    walked = [node for node in region.nodes if node in plan.wants]
    position = {node: index for index, node in enumerate(region.nodes)}
    made_by = {id(node.output_tensors[0]): node for node in walked}
    feeds = {node: [] for node in walked}            # node -> the walked nodes making its inputs
    waits_for = {node: 0 for node in walked}
    for node in walked:
        if plan.wants[node][1]:
            for tensor in node.input_tensors:
                maker = made_by.get(id(tensor))
                if maker is not None and plan.carries_gradient(tensor):
                    feeds[node].append(maker)
                    waits_for[maker] += 1
    from_join = {key: grads[key] for key in made_by if key in grads}
    given = {}                                       # id(tensor) -> [(reader's position, tensor, gradient)]

    def run(node):
        key = id(node.output_tensors[0])
        parts = ([from_join[key]] if key in from_join else []) + [
            gradient for _, _, gradient in sorted(given.get(key, []), key=lambda part: -part[0])]
        grad = _summed_in_order(parts)
        contributions = []
        if grad is not None:
            input_grads = _node_backward(node, saved.pop(node), grad, plan.wants[node])
            if plan.wants[node][1]:
                for tensor, input_grad in zip(node.input_tensors, input_grads if isinstance(input_grads, list)
                                              else [input_grads]):
                    if plan.carries_gradient(tensor) and input_grad is not None:
                        contributions.append((position[node], tensor, input_grad))
        else:
            saved.pop(node, None)
        return lambda: [given.setdefault(id(part[1]), []).append(part) for part in contributions]

    priority = _backward_chains(walked, feeds)
    if not branches.run_at_once(walked, waits_for, feeds, priority, run):
        return False
    for key in from_join:
        grads.pop(key, None)
    for key, parts in given.items():
        if key not in made_by:                       # the fork (or a tensor made before it)
            for _, tensor, gradient in sorted(parts, key=lambda part: -part[0]):
                _add_gradient(grads, own_sums, tensor, gradient)
    return True


def _summed_in_order(parts):
    """parts[0] + parts[1] + ... as the walk in turn sums them (_add_gradient): the first
    as it is, the second into a new array, the others added into that one."""
    total, owned = None, False
    for part in parts:
        if total is None:
            total = part
        elif owned and total.dtype == np.result_type(total, part):
            total += part
        else:
            total, owned = total + part, True
    return total


def _backward_chains(walked, feeds):
    """node -> its convolution work plus the most work of the nodes its gradient feeds."""
    chain = {}
    for node in walked:                              # the model's order: a node's makers come first
        chain[node] = branches.work(node) + max((chain[maker] for maker in feeds[node]), default=0)
    return chain

