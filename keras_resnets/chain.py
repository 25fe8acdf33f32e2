"""A zoo model seen as the chain of Jastrzebski et al. 2018: ``h_{j+1} = h_j + F_j(h_j)``.

``ResidualChain(model)`` splits a built zoo model into the layers before each residual block
(the stem, or a transition such as average pooling), the blocks in order (a weight-shared stack
counts as one block per step), and the head (final BN-ReLU if any, pooling, dense). Analysis
code runs the same layers the model runs, so there is no second model definition: ``h_j`` is
the input of block ``j``, ``block.parts(h_j).residual`` is ``F_j(h_j)``, dropping block ``j``
merges a zero branch, and the head can read any ``h_j`` of the right width. Where a block sits
comes from what its unit records (``unit.stage``), never from layer names.
"""

from dataclasses import dataclass

from keras import ops

from keras_resnets.shared import SharedResidualStack
from keras_resnets.units import ResidualUnit, UnitParts, apply_layers


@dataclass(frozen=True)
class Block:
    """One residual block of the chain, with where it sits in the network."""

    unit: ResidualUnit
    stage: int | None  # 1-based stage, as the unit records it (None outside a zoo network)
    index: int  # 0-based position among all blocks
    index_in_stage: int  # 0-based position among the blocks of its stage
    before: tuple  # non-block layers between the previous block and this one (stem, pooling)


class ResidualChain:
    """The blocks of a zoo model in order, and the stem and head around them."""

    def __init__(self, model):
        self.model = model
        self.blocks: list[Block] = []
        pending = []
        for layer in model.layers[1:]:  # layers[0] is the InputLayer
            units = _units_of(layer)
            if not units:
                pending.append(layer)
                continue
            for unit in units:
                in_stage = sum(block.stage == unit.stage for block in self.blocks)
                self.blocks.append(Block(unit, unit.stage, len(self.blocks), in_stage,
                                         tuple(pending)))
                pending = []
        if not self.blocks:
            raise ValueError(f"Model {model.name!r} has no ResidualUnit: not a zoo model.")
        self.head_layers = tuple(pending)

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


def _units_of(layer) -> list:
    """The residual units a model layer applies, in order (none for other layers)."""
    if isinstance(layer, ResidualUnit):
        return [layer]
    if isinstance(layer, SharedResidualStack):
        return layer.step_units
    return []
