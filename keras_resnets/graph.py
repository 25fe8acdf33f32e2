"""The residual blocks of any Keras functional model, found from its graph.

Jastrzebski et al. 2018 read a residual network as the chain ``h_{j+1} = h_j + F_j(h_j)``. In a
functional model such a block is a ``keras.layers.Add`` of two inputs on the model's main path
(every path from the input to the output passes through its output): one input is the shortcut,
the other the branch ``F_j(h_j)``, in either order. The block input ``h_j`` is the tensor both
inputs derive from:

- when one Add input is an ancestor of the other, it is ``h_j`` itself (identity shortcut) and
  the other is the branch;
- otherwise ``h_j`` is the two inputs' nearest common ancestor, and the input with the fewer
  operations since ``h_j`` is the shortcut (a 1x1 projection, pooling, zero-padding), the other
  the branch (as many operations: the one with fewer weights). A pre-activation block whose
  projection reads the pre-activated state (ResNet50V2) so has ``h_j`` after that BN-ReLU;
  those layers count as the transition before the block.

The graph cannot tell where a BN-ReLU shared by both paths belongs: the zoo counts the one of a
pre-activation net's first unit (He et al. 2016) inside unit 0, the graph before block 0, so
through the graph that block's ``h_0`` is the BN-ReLU's output (its cosine and l2 ratio differ;
every other number is the zoo path's, ``tests/test_analysis_foreign.py``).

An activation layer that is the Add output's only consumer (post-activation, ``x' = relu(h +
F)``) belongs to the block, as the zoo's after-addition activation does. ``model_graph(model)``
returns the model's blocks (``GraphBlock``, with the interface of a zoo ``ResidualUnit``:
``parts``, ``merge``, ``changes_shape``), the layers between them as small functional models of
the model's own layers, and its head; ``keras_resnets.chain.ResidualChain`` chains them.
"""

import math
from dataclasses import dataclass

import keras
from keras import layers

from keras_resnets.shared import SharedResidualStack
from keras_resnets.units import ResidualUnit, UnitParts, apply_layers

# Layers that may follow the Add inside a block: element-wise activations (post-activation).
ACTIVATIONS = (layers.Activation, layers.ReLU, layers.LeakyReLU, layers.ELU, layers.PReLU)


class GraphBlock:
    """One residual block of a functional model: ``after(add(shortcut(h), F(h)))``, run with the
    model's own layers. ``shortcut`` is ``None`` for the identity."""

    def __init__(self, add, branch, shortcut, after, branch_first, input_shape, output_shape):
        self.add, self.branch, self.shortcut, self.after = add, branch, shortcut, tuple(after)
        self.branch_first = branch_first  # the Add lists F(h) first
        self.name = add.name
        self.in_filters, self.filters = int(input_shape[-1]), int(output_shape[-1])
        self.changes_shape = tuple(input_shape) != tuple(output_shape)
        # Spatial subsampling of an image block (1 for a block on flat features).
        self.strides = input_shape[0] // output_shape[0] if len(input_shape) > 1 else 1

    def parts(self, inputs, training=None) -> UnitParts:
        """The shortcut ``h(x)`` (``x`` itself for the identity) and the branch ``F(x)``."""
        shortcut = inputs if self.shortcut is None else self.shortcut(inputs, training=training)
        return UnitParts(shortcut, self.branch(inputs, training=training))

    def merge(self, parts: UnitParts, training=None):
        """The model's Add of the two paths, in its own input order, then the block's
        post-activation if it has one."""
        pair = [parts.residual, parts.shortcut] if self.branch_first else [
            parts.shortcut, parts.residual]
        return apply_layers(self.after, self.add(pair), training)

    def __call__(self, inputs, training=None):
        """The block's output ``after(h(x) + F(x))``."""
        return self.merge(self.parts(inputs, training), training)


@dataclass(frozen=True)
class FoundBlock:
    """A block and the layers between the previous block's output (or the image) and its
    input: a functional model of the model's own layers, or none when they are the same."""

    block: GraphBlock
    before: tuple


@dataclass(frozen=True)
class _Node:
    """An operation of the model and the tensors it was called on."""

    operation: object
    input_tensors: tuple


class _Graph:
    """The tensors of a single-input, single-output functional model, in topological order,
    with each one's parents, consumers and ancestors."""

    def __init__(self, model):
        inputs, outputs = getattr(model, "inputs", None), getattr(model, "outputs", None)
        if not inputs or not outputs or len(inputs) != 1 or len(outputs) != 1:
            raise ValueError(
                f"Model {model.name!r} is not a functional model with one input and one "
                "output (a subclassed model has no graph to read residual blocks from).")
        self.input, self.output = inputs[0], outputs[0]
        self.tensors, self.parents, self.nodes = {}, {}, {}
        self.producers = _producers(model)
        self.order = self._walk()
        self.consumers = {key: [] for key in self.order}
        for key in self.order:
            for parent in self.parents[key]:
                self.consumers[parent].append(key)
        self.ancestors = {}
        for key in self.order:
            self.ancestors[key] = set().union(*([{p} | self.ancestors[p]
                                                 for p in self.parents[key]] or [set()]))

    def _walk(self) -> list:
        """Every tensor the output depends on, parents first (depth-first, post-order)."""
        order, seen, stack = [], set(), [(self.output, False)]
        while stack:
            tensor, done = stack.pop()
            key = id(tensor)
            if done:
                order.append(key)
                continue
            if key in seen:
                continue
            seen.add(key)
            self.tensors[key] = tensor
            is_input = key == id(self.input)
            node = None if is_input else self._producer(tensor)
            self.nodes[key] = node
            parents = [] if is_input else list(node.input_tensors)
            self.parents[key] = [id(p) for p in parents]
            stack.append((tensor, True))
            stack.extend((p, False) for p in reversed(parents) if id(p) not in seen)
        return order

    def _producer(self, tensor) -> _Node:
        """The operation that made ``tensor``; a ``ValueError`` for a tensor no operation of
        the model made as first called (a layer called twice, a second model input)."""
        node = self.producers.get(id(tensor))
        if node is None:
            raise ValueError(
                f"Tensor {tensor.name!r} comes from a layer the model calls more than once, or "
                "from an input other than the model's: only single-input functional models "
                "whose layers are each called once can be read as a chain of residual blocks.")
        return node

    def is_cut(self, key) -> bool:
        """Whether every path from the input to the output passes through tensor ``key``."""
        seen, stack = {key}, [id(self.output)]
        while stack:
            current = stack.pop()
            if current == id(self.input):
                return current == key
            if current in seen:
                continue
            seen.add(current)
            stack.extend(self.parents[current])
        return True

    def path_size(self, start, end) -> tuple[int, int]:
        """``(operations, weights)`` on the paths from tensor ``start`` (excluded) to ``end``
        (included): how the shorter, lighter shortcut is told from the branch."""
        keys = (self.ancestors[end] - self.ancestors[start] - {start}) | {end}
        operations = {id(self.nodes[key].operation): self.nodes[key].operation for key in keys}
        weights = sum(math.prod(w.shape) for op in operations.values()
                      for w in getattr(op, "weights", ()))
        return len(keys), weights


def _producers(model) -> dict:
    """``id(tensor) -> _Node`` for every tensor an operation of ``model`` outputs, from the
    public ``operation.input``/``output`` (an operation as the model first called it; a
    ``Sequential`` model lists its ``layers``, a functional one every ``operations``)."""
    producers = {}
    for operation in getattr(model, "operations", model.layers):
        if isinstance(operation, layers.InputLayer):
            continue
        node = _Node(operation, tuple(keras.tree.flatten(operation.input)))
        for tensor in keras.tree.flatten(operation.output):
            producers[id(tensor)] = node
    return producers


def _submodel(graph: _Graph, start, end, what: str):
    """A functional model of the model's own layers from tensor ``start`` to ``end``; a clear
    error when ``end`` needs tensors other than ``start`` (not a chain of blocks)."""
    if end not in graph.ancestors or (start != end and start not in graph.ancestors[end]):
        raise ValueError(f"{what} does not derive from its input: not a chain of residual "
                         "blocks.")
    outside = _outside_inputs(graph, start, end)
    if outside:
        raise ValueError(f"{what} also reads {', '.join(outside)}, not only its input: the "
                         "model is not a chain of residual blocks h_{j+1} = h_j + F_j(h_j), "
                         "so its blocks cannot be measured one by one.")
    return keras.Model(graph.tensors[start], graph.tensors[end])


def _outside_inputs(graph: _Graph, start, end) -> list:
    """Names of the tensors ``end`` depends on through paths that avoid ``start``."""
    outside, seen, stack = [], {start}, [end]
    while stack:
        key = stack.pop()
        if key in seen:
            continue
        seen.add(key)
        if not graph.parents[key]:
            outside.append(graph.tensors[key].name)
        stack.extend(graph.parents[key])
    return outside


def _block_input(graph: _Graph, add_name: str, first, second) -> tuple:
    """``(h_j, shortcut, branch)`` tensor keys of the Add of ``first`` and ``second``: the
    rule of the module docstring (``shortcut`` is ``None`` for the identity)."""
    if first in graph.ancestors[second]:
        return first, None, second
    if second in graph.ancestors[first]:
        return second, None, first
    common = graph.ancestors[first] & graph.ancestors[second]
    forks = [key for key in common if common - {key} <= graph.ancestors[key]]
    if not forks:
        raise ValueError(f"The inputs of Add {add_name!r} share no single input: not a "
                         "residual block.")
    fork = forks[0]
    sizes = {key: graph.path_size(fork, key) for key in (first, second)}
    if sizes[first] == sizes[second]:
        raise ValueError(
            f"Cannot tell the shortcut from the branch of Add {add_name!r}: both paths from "
            f"its input have {sizes[first][0]} operation(s) and {sizes[first][1]} weights. The "
            "shortcut must be the shorter path, or as short and lighter.")
    shortcut, branch = sorted((first, second), key=sizes.get)
    return fork, shortcut, branch


def _block_output(graph: _Graph, add_key) -> tuple:
    """``(output key, post-activation layers)``: the Add output, through the activation
    layers that are each the only consumer of the tensor before them."""
    key, after = add_key, []
    while len(graph.consumers[key]) == 1:
        child = graph.consumers[key][0]
        node = graph.nodes[child]
        if not isinstance(node.operation, ACTIVATIONS) or len(graph.parents[child]) != 1:
            break
        key = child
        after.append(node.operation)
    return key, after


def _static_shape(graph: _Graph, key, what: str) -> tuple:
    shape = tuple(graph.tensors[key].shape[1:])
    if any(size is None for size in shape):
        raise ValueError(f"{what} has the shape {shape} with unknown sizes: build the model "
                         "with a fixed input shape (keras.applications: input_shape=(32, 32, "
                         "3)) so that blocks that change the shape can be told apart.")
    return shape


def model_graph(model) -> tuple[list[FoundBlock], tuple]:
    """The residual blocks of a functional ``model`` in order (the module docstring's rule),
    each with the layers before it, and the head: ``(blocks, head layers)``. ``blocks`` is
    empty when the model has none."""
    graph = _Graph(model)
    found, previous, bypassed = [], id(graph.input), []
    for key in graph.order:
        node = graph.nodes[key]
        if (node is None or not isinstance(node.operation, layers.Add)
                or len(graph.parents[key]) != 2):
            continue
        if not graph.is_cut(key):
            bypassed.append(node.operation.name)
            continue
        add = node.operation
        first, second = graph.parents[key]
        start, shortcut, branch = _block_input(graph, add.name, first, second)
        end, after = _block_output(graph, key)
        what = f"Residual block {add.name!r}"
        block = GraphBlock(
            add, _submodel(graph, start, branch, f"The branch of {what}"),
            None if shortcut is None else _submodel(graph, start, shortcut,
                                                    f"The shortcut of {what}"),
            after, branch_first=branch == first,
            input_shape=_static_shape(graph, start, f"The input of {what}"),
            output_shape=_static_shape(graph, branch, f"The branch of {what}"))
        before = () if start == previous else (
            _submodel(graph, previous, start, f"The layers before {what}"),)
        found.append(FoundBlock(block, before))
        previous = end
    if not found and bypassed:
        raise ValueError(
            f"Model {model.name!r} is not a chain of residual blocks h_{{j+1}} = h_j + "
            "F_j(h_j): some path from its input to its output bypasses each of its Add "
            f"layers ({', '.join(bypassed)}).")
    if not found:
        return [], ()
    head = () if previous == id(graph.output) else (
        _submodel(graph, previous, id(graph.output), "The head after the last block"),)
    return found, head


def functional_twin(model):
    """A zoo model rebuilt as a plain functional graph of copies of its layers (same configs,
    same weights): each ``ResidualUnit`` unpacked into its paths merged by
    ``keras.layers.Add``, as a foreign model presents a residual block. The graph rule must
    find the units' blocks in it and the analysis give the zoo path's numbers (tests,
    ``benchmarks/foreign_analysis_speed.py``). Copies, because the graph is read through each
    layer's first call. Units whose merge is not a plain sum (gates, scales) and shared stacks
    are refused."""
    inputs = keras.Input(model.inputs[0].shape[1:])
    x = inputs
    for layer in model.layers[1:]:  # layers[0] is the InputLayer
        if isinstance(layer, SharedResidualStack):
            raise ValueError(f"{layer.name} is a weight-shared stack: the zoo path measures it.")
        if not isinstance(layer, ResidualUnit):
            x = _copy_of(layer, x)
            continue
        if layer.shortcut not in ("identity", "conv") or layer.gate_layer is not None:
            raise ValueError(f"{layer.name} merges its paths with {layer.shortcut!r}, not a "
                             "plain sum: no Add layer can stand for it.")
        pre = _copies_of(layer.preactivation_layers, x)
        pair = [_copies_of(layer.shortcut_layers, pre), _copies_of(layer.branch_layers, pre)]
        x = _copies_of(layer.after_add_layers, layers.Add(name=f"{layer.name}_add")(pair))
    return keras.Model(inputs, x, name=f"{model.name}_functional")


def _copy_of(layer, x):
    """A new layer of ``layer``'s config and weights, called on ``x``."""
    copy = type(layer).from_config(layer.get_config())
    outputs = copy(x)
    copy.set_weights(layer.get_weights())
    return outputs


def _copies_of(sequence, x):
    """``x`` through copies of the layers of ``sequence`` in turn."""
    for layer in sequence:
        x = _copy_of(layer, x)
    return x
