"""Which nodes a training step must walk backward, and what each must compute there.

Transfer learning freezes most of a network: with ``base.trainable = False`` only the new
head learns. ``Model.backward`` still walks every node (the textbook walk); the engine
walks only the nodes that matter. A node needs a backward pass only if a trainable
parameter sits in it or upstream of it -- upstream meaning on a path from the model's
inputs to it -- because only then does a gradient have somewhere to go::

    weights  = the node's layer has trainable weights            (dL/dweights wanted)
    inputs   = one of its inputs carries a gradient              (dL/dinputs wanted)
    backward = weights or inputs;  its output then carries a gradient

A model input carries no gradient (nobody needs dL/dimages) unless the model is nested
inside another and the outer model needs its input's gradient. So, for a frozen base
under a trainable head, no base node is walked; for ``layers[:249]`` frozen, only the
last two Inception blocks and the head are; the deepest walked node (``inputs`` False)
computes no input gradient, and a frozen layer among walked ones (``weights`` False)
computes no weight gradient. Nodes that are not walked keep nothing for backward and
run as inference (``forward.py``).

The plan is made once per graph and trainable setting, and again when a ``trainable``
flag changes.

Example::

    plan = gradient_plan(model, inputs_need_grad=False)
    plan.wants[node]          # (weights, inputs), for the nodes to walk; absent: not walked
    plan.carries_gradient(tensor)
"""
import weakref

_plans = weakref.WeakKeyDictionary()       # model -> {(flags, inputs_need_grad): (nodes, GradientPlan)}


class GradientPlan:
    """The walked nodes of one model for one trainable setting (see the module docstring)."""

    def __init__(self, model, inputs_need_grad):
        self.inputs_need_grad = inputs_need_grad
        input_ids = {id(t) for t in model.inputs}
        self._carrying = set(input_ids) if inputs_need_grad else set()
        self.wants = {}
        for node in model._nodes:
            output_id = id(node.output_tensors[0])
            if output_id in input_ids:
                continue                                   # a model input
            weights = bool(node.layer.trainable_weights)
            inputs = any(id(t) in self._carrying for t in node.input_tensors)
            if weights or inputs:
                self.wants[node] = (weights, inputs)
                self._carrying.add(output_id)

    def carries_gradient(self, tensor):
        """True when a gradient flows back through ``tensor`` in this plan."""
        return id(tensor) in self._carrying


def trainable_flags(model):
    """Every layer's ``trainable`` flag, nested models included: the plan's key."""
    return tuple(layer.trainable for layer in model.walk_layers(recursive=True))


def gradient_plan(model, inputs_need_grad=False):
    """The :class:`GradientPlan` of ``model`` for its current trainable flags (kept per setting)."""
    key = (trainable_flags(model), inputs_need_grad)
    plans = _plans.setdefault(model, {})
    planned = plans.get(key)
    if planned is None or planned[0] is not model._nodes:    # new setting, or the graph was rebuilt
        if len(plans) > 8:                                   # a few settings a model switches between
            plans.clear()
        planned = plans[key] = (model._nodes, GradientPlan(model, inputs_need_grad))
    return planned[1]
