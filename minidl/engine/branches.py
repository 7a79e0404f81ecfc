"""An Inception block's branches run at once, one per core.

An Inception block reads one tensor (the block before's output) in three or four
*branches* -- chains of convolutions and a pooling -- and concatenates what they make::

             x ──┬── 1x1 ─────────────────────┐
                 ├── 1x1 ── 5x5 ──────────────┤
                 ├── 1x1 ── 3x3 ── 3x3 ───────┼── concatenate
                 └── avgpool ── 1x1 ──────────┘

The branches do not read each other's outputs, so they can run at the same time. Run one
after the other, each convolution is split between the cores (OpenBLAS's threads, Numba's
threads, or chunks shared out by ``minidl/kernels/fast/chunks.py``), and each split costs
waking the other core, waiting for it and cutting the work in smaller pieces: measured,
two cores run an InceptionV3 block's steps about 1.7x faster than one, not 2x. Here
each core takes a whole step (a fused Conv2D -> BatchNormalization -> ReLU, a pooling,
an inner concatenation) and runs it alone, single-threaded; when it is done it takes the
next step whose inputs are ready, the one with the longest chain of work still behind it
first. Both cores are then busy 93-97% of a block's time.

A *region* is the run of nodes between a fork (a tensor read by two or more of them) and
the node that joins them: every node in it reads only the fork or other nodes in it, and
only nodes in it or the join read it. The regions are found once per graph and setting
(:func:`find_regions`). Its steps are fused steps (at inference, or a training step's batch
norm and ReLU) and plain convolutions, batch norms,
activations, poolings and concatenations (no Dropout: its random masks would depend on
which thread draws first; no nested model), each either running as at inference or, in a
training step, walked backward: those keep what their backward needs as in turn
(``Region.keeps``; each layer keeps its own, and ``forward.py`` collects them after the
region). A region runs this way only when no chain of its steps is most of its work (see
``_LONGEST_CHAIN_SHARE``).

The numbers. A step's numbers do not depend on which core runs it, so ``predict`` gives
the same numbers bit for bit from run to run. They can differ in the last bits from
running the steps in turn: a product computed on one thread may be summed in another
order than the same product split between two (OpenBLAS does so for some depths, e.g.
the 5x5 layers' 25 * 48 = 1,200), about 1e-7 of a float32 output. Fusion does not change
the regions (``forward.py`` plans the same ones with fusion on or off), so fused and
unfused inference still agree bit for bit. ``MINIDL_PARALLEL_BRANCHES=0`` runs the
regions' steps in turn. A training step's backward walk runs the keeping regions' layers
at once too (``training_walk.py``), with the scheduler here (:func:`run_at_once`). What it
saves (predict, the frozen and top-two-blocks steps, the full fine-tune):
``benchmarks/README.md``.

Example::

    regions = find_regions(nodes, steps, eligible)       # {first node: Region}
    if run_region(regions[node], values, buffers, training):   # False: run them in turn
        ...
"""
import heapq
import threading
from dataclasses import dataclass

import numpy as np

from minidl import config
from minidl.engine.fusion import (
    BatchNormReLUTraining,
    ConcatenateInPlace,
    ConvBatchNormReLU,
)
from minidl.kernels.fast import chunks
from minidl.layers.activation import Activation
from minidl.layers.conv import Conv2D
from minidl.layers.merge import Concatenate
from minidl.layers.normalization import BatchNormalization
from minidl.layers.pooling import AveragePooling2D, MaxPooling2D

# A region whose longest chain of steps has more than this share of its work (InceptionV3's
# grid reductions mixed3 and mixed8: 0.72 and 0.73; its other blocks 0.47 to 0.59) runs in
# turn: one core would run that chain alone while the other waits, and the region measured
# slower at once than in turn (benchmarks/README.md).
_LONGEST_CHAIN_SHARE = 2 / 3
INFERENCE, KEPT = "inference", "kept"     # how a node runs: see find_regions
_LAYERS_THAT_MAY_RUN_AT_ONCE = (Conv2D, BatchNormalization, Activation, MaxPooling2D, AveragePooling2D,
                                Concatenate)


@dataclass
class Region:
    """The steps between a fork and its join, with what each one waits for."""
    nodes: list                   # the model's nodes in the region, in the model's order
    steps: list                   # fused steps and plain nodes: what runs
    waits_for: dict               # step -> how many steps of the region make its inputs
    feeds: dict                   # step -> the steps of the region that read its output
    priority: dict                # step -> work of the longest chain from it to the region's end
    stop: object                  # the join node: where the walk goes on
    keeps: bool = False           # its nodes keep what their backward needs (a training step)


def parallel_branches_enabled():
    """True unless ``MINIDL_PARALLEL_BRANCHES=0``."""
    return config.env_flag("MINIDL_PARALLEL_BRANCHES")


def find_regions(nodes, steps, kind_of):
    """{first node of a region: Region} for ``nodes`` (a model's nodes in order), ``steps``
    (``fusion.plan_fusions``' answer) and ``kind_of(node)``: INFERENCE (the node runs as at
    inference, keeping nothing), KEPT (it runs as in training, keeping what its backward
    needs) or None (it may not run apart). A region with a KEPT node keeps (its
    INFERENCE plain layers then keep their little too: nothing can switch keeping off for
    one thread only)."""
    units = _units(nodes, steps)
    positions = {node: index for index, node in enumerate(nodes)}
    reads = _read_counts(nodes)
    regions, index = {}, 0
    while index < len(nodes):
        region = _region_after(nodes, index, units, positions, reads, kind_of)
        if region is None:
            index += 1
            continue
        regions[region.nodes[0]] = region
        index = positions[region.stop]
    return regions


def _units(nodes, steps):
    """node -> the step that runs it: a fused step (for the nodes it absorbs too), or the
    node itself."""
    units = {}
    for node in nodes:
        step = steps.get(node, node)
        if step is not None:                       # None: absorbed, mapped with its fused step
            for member in getattr(step, "nodes", [node]):
                units[member] = step
    return units


def _read_counts(nodes):
    """id(tensor) -> how many times the nodes read it."""
    reads = {}
    for node in nodes:
        for tensor in node.input_tensors:
            reads[id(tensor)] = reads.get(id(tensor), 0) + 1
    return reads


_FUSED_STEPS = (ConvBatchNormReLU, ConcatenateInPlace, BatchNormReLUTraining)


def _inputs(step):
    if isinstance(step, (ConvBatchNormReLU, BatchNormReLUTraining)):
        return [step.input_tensor]
    node = step.node if isinstance(step, ConcatenateInPlace) else step
    return list(node.input_tensors)


def _output(step):
    if isinstance(step, _FUSED_STEPS):
        return step.output_tensor
    return step.output_tensors[0]


def _region_after(nodes, fork_index, units, positions, reads, kind_of):
    """The region whose fork is the output of ``nodes[fork_index]``, or None."""
    fork = id(nodes[fork_index].output_tensors[0])
    made_inside, inside, kind = {fork}, [], None
    reads_left = {fork: reads.get(fork, 0)}        # id(fork or a step's output) -> reads still to come
    for index in range(fork_index + 1, len(nodes)):
        node = nodes[index]
        step = units[node]
        if step in inside:
            continue                               # a node a fused step of the region absorbed
        if any(id(t) not in made_inside for t in _inputs(step)):
            return None                            # reads a tensor made before the fork
        if inside and _closes(step, reads_left):
            return _region(nodes[fork_index + 1: index], inside, node, kind)
        step_kind = _kind(step, kind_of)
        if step_kind is None or any(positions[member] < index for member in getattr(step, "nodes", [node])):
            return None
        kind = KEPT if KEPT in (kind, step_kind) else step_kind
        inside.append(step)
        for tensor in _inputs(step):
            if id(tensor) in reads_left:
                reads_left[id(tensor)] -= 1
        made_inside.add(id(_output(step)))
        reads_left[id(_output(step))] = reads.get(id(_output(step)), 0)
    return None


def _closes(step, reads_left):
    """True when ``step`` makes the last reads of the fork and of every output made inside
    the region."""
    left = dict(reads_left)
    for tensor in _inputs(step):
        if id(tensor) in left:
            left[id(tensor)] -= 1
    return all(count == 0 for count in left.values())


def _region(region_nodes, steps, join, kind):
    """The Region of ``steps``, or None if fewer than two of them read only the fork."""
    outputs = {id(_output(step)): step for step in steps}
    feeds = {step: [] for step in steps}
    waits_for = {step: 0 for step in steps}
    for step in steps:
        for tensor in _inputs(step):
            if id(tensor) in outputs:
                feeds[outputs[id(tensor)]].append(step)
                waits_for[step] += 1
    if sum(1 for step in steps if waits_for[step] == 0) < 2:
        return None                               # one branch: nothing to run at once
    priority = _longest_chains(steps, feeds)
    if max(priority.values()) > _LONGEST_CHAIN_SHARE * sum(work(step) for step in steps):
        return None                               # one branch is most of the work
    return Region(nodes=list(region_nodes), steps=steps, waits_for=waits_for, feeds=feeds,
                  priority=priority, stop=join, keeps=kind == KEPT)


def _kind(step, kind_of):
    """The step's kind (INFERENCE or KEPT), or None if it may not run apart."""
    if isinstance(step, _FUSED_STEPS):
        kinds = {kind_of(node) for node in step.nodes}       # INFERENCE, or KEPT for a training step
        return kinds.pop() if len(kinds) == 1 else None
    return kind_of(step) if isinstance(step.layer, _LAYERS_THAT_MAY_RUN_AT_ONCE) else None


def work(step):
    """A step's (or a plain node's) convolution multiply-adds per image (0 for other steps,
    which cost little): what orders the ready steps. The same whether a convolution runs
    fused or not."""
    layer = step.conv if isinstance(step, ConvBatchNormReLU) else getattr(step, "layer", None)
    if not isinstance(layer, Conv2D) or layer.kernel is None:
        return 0
    pixels = int(np.prod([d or 1 for d in layer.output_shape[1:-1]]))
    return pixels * int(np.prod(layer.kernel.shape))


def _longest_chains(steps, feeds):
    """step -> its work plus the most work any chain of steps reading it still has."""
    chain = {}
    for step in reversed(steps):           # steps are in the model's (topological) order
        chain[step] = work(step) + max((chain[reader] for reader in feeds[step]), default=0)
    return chain


def run_region(region, values, buffers, training):
    """Run the region's steps on every core at once, filling ``values``; False (nothing
    run) when the cores cannot be shared now."""
    if not parallel_branches_enabled():
        return False

    def run(step):
        result = _run_step(step, values, buffers, training)
        return lambda: values.__setitem__(id(_output(step)), result)    # recorded under the lock

    return run_at_once(region.steps, region.waits_for, region.feeds, region.priority, run)


def run_at_once(steps, waits_for, feeds, priority, run):
    """Run ``run(step)`` for every step on every core at once, each step once all the
    steps it waits for are done; False (nothing run) when the cores cannot be shared now.

    Every core runs the same loop: take the ready step with the highest ``priority``, run
    it alone, call what ``run`` returned (under the lock: record the result), mark the
    steps it ``feeds`` one wait less; wait while none is ready and some still run.
    ``waits_for[step]`` is how many of ``steps`` must be done before it.
    """
    waiting = dict(waits_for)
    order = {step: index for index, step in enumerate(steps)}
    ready = [(-priority[step], order[step], step) for step in steps if waiting[step] == 0]
    heapq.heapify(ready)
    progress = {"done": 0, "failed": False}
    changed = threading.Condition()

    def take_steps():
        while True:
            with changed:
                while not ready and not progress["failed"] and progress["done"] < len(steps):
                    changed.wait()
                if not ready or progress["failed"]:
                    return
                step = heapq.heappop(ready)[2]
            try:
                record = run(step)
            except BaseException:
                with changed:
                    progress["failed"] = True
                    changed.notify_all()
                raise
            with changed:
                record()
                for reader in feeds[step]:
                    waiting[reader] -= 1
                    if waiting[reader] == 0:
                        heapq.heappush(ready, (-priority[reader], order[reader], reader))
                progress["done"] += 1
                changed.notify_all()

    return chunks.on_every_core(take_steps)


def _run_step(step, values, buffers, training):
    if isinstance(step, _FUSED_STEPS):
        return step.run(values, buffers)
    node_inputs = [values[id(t)] for t in step.input_tensors]
    return step.layer.forward(node_inputs if len(node_inputs) > 1 else node_inputs[0], training=training)
