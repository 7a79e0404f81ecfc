"""How a functional model orders its layers and runs them.

``Model(inputs, outputs)`` receives symbolic tensors; each one remembers the
layer call (:class:`~minidl.layers.base.Node`) that produced it, so walking
backwards from the outputs finds the whole graph. From that walk we derive,
exactly as Keras's ``_map_graph_network`` does (minidl/keras_semantics.md §7.2):

1. a **pre-order index** for every layer: the order in which a depth-first
   walk from the outputs, taking each node's inputs in list order, first meets
   it;
2. a **depth** for every node: the length of the longest path from it to an
   output (outputs have depth 0);
3. ``model.layers``: layers sorted by depth, deepest first, ties by pre-order
   index. Weight files written by Keras are loaded in this order, so it must
   match Keras to the letter.

Forward runs the nodes deepest first (every node's inputs are deeper than the
node, so they are ready). Backward runs them in the opposite order and *adds*
the gradients of a tensor that feeds several layers (an Inception block's
input feeds four branches):  dL/dx = sum over consumers of dL/dx through that
consumer.

A small example of the addition. If x feeds two branches, a = f(x) and
b = g(x), and the loss depends on both, the chain rule gives

    dL/dx = dL/da * da/dx + dL/db * db/dx

so backward runs both branches (in any order) and sums what each returns for
x. In an Inception block the four branch outputs are concatenated; the
Concatenate backward splits dL/d(mixed) into four slices, each branch turns its
slice into a gradient for the block's input, and the four are added before the
walk continues to the previous block. ``examples/concepts.ipynb`` (section 7)
shows the numbers.

Both walks are loops over lists -- no recursion -- because InceptionV3 has
311 layers and Python's recursion limit is 1000.
"""
from collections import defaultdict


def map_graph(input_tensors, output_tensors):
    """Return ``(nodes_in_execution_order, layers_in_keras_order, node_depths)``."""
    input_ids = {id(t) for t in input_tensors}
    post_order, layer_indices = _depth_first_walk(output_tensors, input_ids)
    node_depths, layer_depths = _node_depths(post_order, input_ids)

    layers_by_depth = defaultdict(list)
    for layer, depth in layer_depths.items():
        layers_by_depth[depth].append(layer)
    layers = []
    for depth in sorted(layers_by_depth, reverse=True):
        layers.extend(sorted(layers_by_depth[depth], key=lambda layer: layer_indices[layer]))

    # Deepest first; within a depth, keep the walk's (post-)order, which is stable.
    position = {node: i for i, node in enumerate(post_order)}
    nodes = sorted(post_order, key=lambda node: (-node_depths[node], position[node]))
    return nodes, layers, node_depths


def _inbound(node, input_ids):
    """The nodes feeding ``node``; a model input is a leaf even if it was produced by a layer."""
    if any(id(t) in input_ids for t in node.output_tensors):
        return []
    return [t.node for t in node.input_tensors]


def _depth_first_walk(output_tensors, input_ids):
    finished, in_progress = set(), set()
    post_order, layer_indices = [], {}

    def enter(node):
        layer_indices.setdefault(node.layer, len(layer_indices))
        in_progress.add(node)

    for tensor in output_tensors:
        root = tensor.node
        if root in finished:
            continue
        enter(root)
        stack = [(root, 0)]
        while stack:
            node, next_input = stack[-1]
            inbound = _inbound(node, input_ids)
            if next_input < len(inbound):
                stack[-1] = (node, next_input + 1)
                child = inbound[next_input]
                if child in finished:
                    continue
                if child in in_progress:
                    raise ValueError(f"The graph has a cycle through layer '{child.layer.name}'")
                enter(child)
                stack.append((child, 0))
            else:
                stack.pop()
                in_progress.discard(node)
                finished.add(node)
                post_order.append(node)
    return post_order, layer_indices


def _node_depths(post_order, input_ids):
    node_depths, layer_depths = {}, {}
    for node in reversed(post_order):
        depth = max(node_depths.setdefault(node, 0), layer_depths.get(node.layer, 0))
        layer_depths[node.layer] = depth
        node_depths[node] = depth
        for inbound in _inbound(node, input_ids):
            node_depths[inbound] = max(depth + 1, node_depths.get(inbound, 0))
    return node_depths, layer_depths


def check_connected(input_tensors, nodes):
    """Every tensor the graph reads must be a model input or computed by an earlier node."""
    available = {id(t) for t in input_tensors}
    for node in nodes:
        if all(id(t) in available for t in node.output_tensors):
            continue                      # a model input: its value is given
        if not node.input_tensors:
            raise ValueError(
                f"Graph disconnected: the model uses input '{node.layer.name}', which is not in "
                f"Model(inputs=...)")
        for tensor in node.input_tensors:
            if id(tensor) not in available:
                raise ValueError(
                    f"Graph disconnected: layer '{node.layer.name}' needs the output of "
                    f"'{tensor.layer.name if tensor.layer else '?'}', which the model cannot compute")
        available.update(id(t) for t in node.output_tensors)
