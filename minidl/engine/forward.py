"""The engine's forward pass over a model's graph: for ``predict``, and for a training step.

It walks the same nodes in the same order as ``Model.forward`` and gives the same numbers;
what it adds:

* **Inference** (:func:`run_inference`: ``predict``, ``evaluate``): nothing is kept for
  backward, every Conv2D -> BatchNormalization -> ReLU chain runs as one fused step
  (``fusion.py``), concatenations are written in place, every array is dropped as soon
  as the last layer that reads it has run, and an Inception block's branches run at once,
  one per core (``branches.py``).
* **A training step** (:func:`run_training`): only the nodes the step's backward walk will
  visit (``gradient_plan.py``) run as ``Model.forward`` runs them, keeping what their
  backward needs. The frozen part -- nodes that no gradient passes through -- runs as
  inference does: fused, keeping nothing, freeing arrays as it goes, so a frozen base costs
  about what ``predict`` costs. Keras 2's semantics hold there: a frozen BatchNormalization
  uses its moving statistics and leaves them unchanged, and a Dropout in a frozen part
  still drops (``training=True`` reaches every layer that runs on its own). In the walked
  part, each batch norm that uses the batch statistics and is read only by a ReLU runs
  with it as one step (``fusion.BatchNormReLUTraining``). An Inception block's branches
  run at once here too (``branches.py``), walked backward or not.

Nested models run through the same walk, with their own plan.

Example::

    outputs = run_inference(model, x)                  # what model.predict_on_batch(x) returns
    outputs = run_training(model, x, gradient_plan(model))   # then training_walk.backward(...)
"""
import contextlib
import weakref

from minidl import config
from minidl.engine import branches
from minidl.engine.fusion import plan_batchnorm_relu_in_training, plan_fusions
from minidl.engine.gradient_plan import gradient_plan
from minidl.layers.base import no_backward
from minidl.layers.normalization import BatchNormalization

_fusion_plans = weakref.WeakKeyDictionary()     # model -> {eligible nodes: (node list, fused steps)}


def run_inference(model, inputs):
    """``model``'s output(s) for ``inputs`` with ``training=False``, fused where it can be."""
    return _walk(model, inputs, training=False, plan=None)


def run_training(model, inputs, plan, training=True):
    """``model``'s output(s) for a training step: the nodes in ``plan`` keep what their backward
    needs (in the model's saved values, as ``Model.forward`` keeps them); the rest runs as
    inference."""
    return _walk(model, inputs, training=training, plan=plan)


def _walk(model, inputs, training, plan):
    values = model._input_values(inputs)
    readers_left = dict(model._readers)
    keep = set(model._output_ids)
    steps, regions = _planned(model, training, plan)
    saved, buffers = {}, {}                        # buffers: outputs that fused steps write in place
    resume_at = None                               # the join node after a region run at once
    for node in model._nodes:
        if resume_at is not None:
            if node is not resume_at:
                continue
            resume_at = None
        if id(node.output_tensors[0]) in values:
            continue                               # a model input: its value is given
        region = regions.get(node)
        if region is not None and _run_region(region, values, buffers, training):
            for region_node in region.nodes:
                if region.keeps and region_node in plan.wants:
                    saved[region_node] = region_node.layer.saved
                _free_inputs(region_node, values, readers_left, keep)
            resume_at = region.stop
            continue
        step = steps.get(node, node)
        if step is None:
            continue                               # run by the fused step of a node before it
        if step is not node:
            values[id(step.output_tensor)] = step.run(values, buffers)
            saved.update((member, member.layer.saved) for member in step.nodes
                         if plan is not None and member in plan.wants)
        elif plan is not None and node in plan.wants:
            values[id(node.output_tensors[0])] = _run_and_keep(node, values, training, plan)
            saved[node] = node.layer.saved
        else:
            values[id(node.output_tensors[0])] = _run_without_keeping(node, values, training, plan)
        _free_inputs(node, values, readers_left, keep)
    if plan is not None:
        model.save_for_backward(saved)
    outputs = [values[key] for key in model._output_ids]
    return outputs[0] if model._single_output else outputs


def _free_inputs(node, values, readers_left, keep):
    """Drop the arrays ``node`` read that no node still to run will read."""
    for tensor in node.input_tensors:
        readers_left[id(tensor)] -= 1
        if readers_left[id(tensor)] == 0 and id(tensor) not in keep:
            values.pop(id(tensor), None)


def _run_region(region, values, buffers, training):
    """A region's steps on every core at once (``branches.py``), keeping what backward needs
    if its nodes are walked backward, else nothing; False when that is not possible now
    (the walk then runs them in turn)."""
    with contextlib.nullcontext() if region.keeps else no_backward():
        return branches.run_region(region, values, buffers, training)


def _layer_inputs(node, values):
    node_inputs = [values[id(t)] for t in node.input_tensors]
    return node_inputs if len(node_inputs) > 1 else node_inputs[0]


def _is_model(layer):
    return hasattr(layer, "walk_layers")


def _run_and_keep(node, values, training, plan):
    """A node the backward walk visits: its forward, keeping what its backward needs."""
    layer = node.layer
    if _is_model(layer):          # a nested model, with a plan of its own
        _, inputs_needed = plan.wants[node]
        return run_training(layer, _layer_inputs(node, values), gradient_plan(layer, inputs_needed), training)
    return layer.forward(_layer_inputs(node, values), training=training)


def _run_without_keeping(node, values, training, plan):
    """A node no gradient passes through: its forward, keeping nothing."""
    layer = node.layer
    if _is_model(layer):          # frozen inside too (nothing in it is walked), or plain inference
        return _walk(layer, _layer_inputs(node, values), training, None if plan is None else gradient_plan(layer))
    with no_backward():
        return layer.forward(_layer_inputs(node, values), training=training)


def _fused_steps(model, training, plan):
    """The model's fused steps among the nodes that may be fused; {} when fusion is switched off."""
    return _planned(model, training, plan)[0]


def planned_regions(model, plan):
    """The regions of a training step's forward for ``plan`` (``branches.py``): what
    ``training_walk.py`` walks backward at once."""
    return _planned(model, True, plan)[1]


def _planned(model, training, plan):
    """The model's fused steps among the nodes that may be fused ({} when fusion is switched
    off), and the regions whose branches may run at once (``branches.py``), planned once
    per graph and setting.

    The regions are the same with fusion on or off, so that both run every convolution's
    product on the same number of threads and give the same numbers bit for bit.
    """
    fuse = config.inference_fusion()
    eligible = frozenset(node for node in model._nodes if _may_fuse(node, training, plan))
    wants = {} if plan is None else plan.wants
    key = (eligible, plan, training, fuse)       # a plan is made once per trainable setting
    plans = _fusion_plans.setdefault(model, {})
    planned = plans.get(key)
    if planned is None or planned[0] is not model._nodes:
        if len(plans) > 8:
            plans.clear()
        steps = {}
        if fuse:
            steps = plan_fusions(model._nodes, model._input_ids, model._output_ids, eligible.__contains__)
            steps.update(plan_batchnorm_relu_in_training(
                model._nodes, model._input_ids, model._output_ids,
                lambda node: _may_fuse_in_training(model, node, training, wants)))
        regions = branches.find_regions(model._nodes, steps, lambda node: _kind(model, node, eligible, wants))
        planned = plans[key] = (model._nodes, steps, regions)
    return planned[1], planned[2]


def _kind(model, node, eligible, wants):
    """How ``node`` may run in a region whose branches run at once: as at inference, as
    walked backward (a plain layer, not a nested model), or not apart (None). A layer the
    model calls more than once does not run apart: its calls could run at the same time,
    and a layer keeps what its last call saved (which forward.py collects per node after
    the region)."""
    if model._uses[node.layer] > 1:
        return None
    if node in eligible:
        return branches.INFERENCE
    if node in wants and not _is_model(node.layer):
        return branches.KEPT
    return None


def _may_fuse_in_training(model, node, training, wants):
    """A node walked backward may join a BatchNormReLUTraining (``fusion.py``): a plain layer
    used once in the model, and a batch norm only where it uses the batch statistics."""
    layer = node.layer
    if node not in wants or model._uses[layer] != 1:
        return False
    return not isinstance(layer, BatchNormalization) or (training and layer.trainable)


def _may_fuse(node, training, plan):
    """At inference every node; in training only frozen ones that behave as at inference:
    not walked backward, and no batch norm that uses batch statistics."""
    if plan is not None and node in plan.wants:
        return False
    return not (training and isinstance(node.layer, BatchNormalization) and node.layer.trainable)
