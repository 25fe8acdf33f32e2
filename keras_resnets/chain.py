"""Any residual network seen as the chain of Jastrzebski et al. 2018: ``h_{j+1} = h_j + F_j(h_j)``.

``ResidualChain(model)`` splits a built model into the layers before each residual block (the
stem, or a transition such as average pooling), the blocks in order, and the head (final
BN-ReLU if any, pooling, dense). The rule that finds the blocks:

- a zoo model (one with ``ResidualUnit`` layers): each unit is a block, a weight-shared stack
  counting one block per step; where a block sits comes from what its unit records
  (``unit.stage``), never from layer names;
- any other Keras functional model: each ``keras.layers.Add`` of two inputs on the model's main
  path, the block input ``h_j`` being the tensor both inputs derive from
  (``keras_resnets.graph``: identity, projection, pooling or zero-padding shortcuts, either input
  order, an activation after the Add belonging to the block). Stages start at the first block
  and at every block that changes the shape or has layers before it.

Either way a block offers ``parts(h_j)`` (shortcut and ``F_j(h_j)``) and ``merge``, and analysis
code runs the same layers the model runs, so there is no second model definition and one
measurement code path: ``h_j`` is the input of block ``j``, ``block.parts(h_j).residual`` is
``F_j(h_j)``, dropping block ``j`` merges a zero branch, and the head can read any ``h_j`` of the
right width.
"""

from dataclasses import dataclass

from keras import layers, ops

from keras_resnets.graph import GraphBlock, model_graph
from keras_resnets.shared import SharedResidualStack
from keras_resnets.units import ResidualUnit, UnitParts, apply_layers


@dataclass(frozen=True)
class Block:
    """One residual block of the chain, with where it sits in the network."""

    unit: ResidualUnit | GraphBlock
    stage: int | None  # 1-based stage (None for a zoo unit built outside a zoo network)
    index: int  # 0-based position among all blocks
    index_in_stage: int  # 0-based position among the blocks of its stage
    # Non-block layers between the previous block and this one (stem, pooling), applied in
    # turn; for a model found from its graph, one functional model of its own layers.
    before: tuple


class ResidualChain:
    """The blocks of a residual model in order, and the stem and head around them (the rule of
    the module docstring); a ``ValueError`` before any data is read when there is none."""

    def __init__(self, model):
        self.model = model
        _check_logits(model)
        if any(_units_of(layer) for layer in model.layers):
            self.blocks, self.head_layers = _zoo_blocks(model)
        else:
            self.blocks, self.head_layers = _graph_blocks(model)
        if not self.blocks:
            raise ValueError(
                f"Model {model.name!r} has no residual block: no zoo ResidualUnit and no "
                "keras.layers.Add of a block input h_j and a branch F_j(h_j) on the path "
                "from its input to its output (a residual model nested as one layer is not "
                "looked into).")

    def __len__(self):
        """The number of blocks ``L`` (a shared stack counts one per step)."""
        return len(self.blocks)

    def block_input(self, j: int, h, training=False):
        """``h_j``: the output of block ``j-1`` (or the image, ``j=0``) through the layers
        that sit before block ``j``."""
        return apply_layers(self.blocks[j].before, h, training)

    def head(self, h, training=False):
        """The model's own classifier (final BN-ReLU if any, pooling, dense) on ``h``."""
        return apply_layers(self.head_layers, h, training)

    def run_block(self, j: int, h, training=False, drop=False):
        """Block ``j`` on its input ``h``; ``drop=True`` merges a zero branch (F_j = 0)."""
        unit = self.blocks[j].unit
        if not drop:
            return unit(h, training=training)
        parts = unit.parts(h, training=training)
        return unit.merge(parts._replace(residual=ops.zeros_like(parts.residual)), training)

    def run_from(self, j: int, h, training=False, drop: int | None = None):
        """Logits from ``h = h_j`` (the input of block ``j``) on, with block ``drop`` dropped:
        dropping block ``j`` re-runs only the blocks after it from a cached ``h_j``."""
        for k in range(j, len(self.blocks)):
            if k > j:
                h = self.block_input(k, h, training)
            h = self.run_block(k, h, training, drop=k == drop)
        return self.head(h, training)

    def forward(self, images, training=False, drop: int | None = None):
        """Logits for ``images``, with block ``drop`` dropped if given."""
        return self.run_from(0, self.block_input(0, images, training), training, drop)

    def hidden_states(self, images, training=False) -> tuple[list, list[UnitParts], object]:
        """One forward pass: every block input ``h_j``, its ``UnitParts`` and the logits."""
        inputs, parts, h = [], [], images
        for j, block in enumerate(self.blocks):
            h = self.block_input(j, h, training)
            inputs.append(h)
            parts.append(block.unit.parts(h, training=training))
            h = block.unit.merge(parts[-1], training)
        return inputs, parts, self.head(h, training)


def _zoo_blocks(model) -> tuple[list[Block], tuple]:
    """The units of a zoo model in layer order (a shared stack: one block per step), each with
    the non-unit layers before it, and the layers after the last unit (the head)."""
    blocks, pending = [], []
    for layer in model.layers[1:]:  # layers[0] is the InputLayer
        units = _units_of(layer)
        if not units:
            pending.append(layer)
            continue
        for unit in units:
            in_stage = sum(block.stage == unit.stage for block in blocks)
            blocks.append(Block(unit, unit.stage, len(blocks), in_stage, tuple(pending)))
            pending = []
    return blocks, tuple(pending)


def _graph_blocks(model) -> tuple[list[Block], tuple]:
    """The Add blocks of a functional model (``keras_resnets.graph``), numbered into stages:
    a stage starts at the first block and at every block that changes the shape or has layers
    (a transition) before it."""
    found, head = model_graph(model)
    blocks, stage, in_stage = [], 0, 0
    for index, item in enumerate(found):
        if index == 0 or item.block.changes_shape or item.before:
            stage, in_stage = stage + 1, 0
        blocks.append(Block(item.block, stage, index, in_stage, item.before))
        in_stage += 1
    return blocks, head


def _check_logits(model) -> None:
    """Refuse a model that ends in a softmax: every measure reads logits (the cross-entropy
    of Jastrzebski et al. 2018, Eq. 3)."""
    last = model.layers[-1] if model.layers else None
    softmax = (isinstance(last, layers.Softmax)
               or getattr(getattr(last, "activation", None), "__name__", "") == "softmax")
    if softmax:
        raise ValueError(
            f"Model {model.name!r} ends in a softmax ({last.name!r}); the analysis needs "
            "logits: build it without the final activation (keras.applications: "
            "classifier_activation=None).")


def _units_of(layer) -> list:
    """The residual units a model layer applies, in order (none for other layers)."""
    if isinstance(layer, ResidualUnit):
        return [layer]
    if isinstance(layer, SharedResidualStack):
        return layer.step_units
    return []
