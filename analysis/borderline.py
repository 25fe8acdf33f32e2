"""Borderline examples over the last blocks (Jastrzebski et al. 2018, Figure 6).

The paper's borderline examples "need less than a 10% probability change to flip their
prediction to or from the correct class". The rule used here, on the softmax ``p`` of the
model's own logits, with ``y`` the label and ``q = max_{c != y} p_c`` the strongest other
class: an example is **borderline** when ``|p_y - q| < 0.1``, the correct class and its
strongest rival are less than 0.1 of probability apart, whichever of them is ahead (so the
group holds right and wrong predictions). The other groups: **correct**, predicted right and
not borderline (the examples that are already correct), and **all**. The groups are fixed by
the model's final prediction, so that the same examples are followed through the last blocks
and through unrolling (Figure 7). The final classifier is applied after each of the last
``blocks`` blocks (5 in the paper), as the intermediate-accuracy measure does.
"""

import tensorflow as tf

from analysis.measures import correct, crossentropy, entropy, prepare, readable_blocks

MARGIN = 0.1  # "less than a 10% probability change"
LAST_BLOCKS = 5  # "the last 5 blocks" of ResNet-110
GROUPS = ("borderline", "correct", "all")


def example_groups(labels, logits, margin: float = MARGIN):
    """``[len(GROUPS), batch]`` float masks: borderline, correct (and not borderline), all."""
    probabilities = tf.nn.softmax(tf.cast(logits, tf.float32))
    true = tf.gather(probabilities, labels, batch_dims=1)
    others = tf.where(tf.one_hot(labels, tf.shape(probabilities)[-1]) > 0, -1.0, probabilities)
    borderline = tf.cast(tf.abs(true - tf.reduce_max(others, axis=-1)) < margin, tf.float32)
    return tf.stack([borderline, correct(labels, logits) * (1.0 - borderline),
                     tf.ones_like(borderline)])


def group_totals(groups, values):
    """Sum of a per-example quantity over each group: ``[len(GROUPS)]``."""
    return tf.reduce_sum(groups * tf.cast(values, tf.float32)[tf.newaxis], axis=1)


def check_last_blocks(chain, blocks: int | None) -> int:
    """The number of last blocks to follow: ``blocks``, or ``None`` for the paper's 5 when
    the model has them (fewer otherwise). The head must read every one of their outputs."""
    readable = readable_blocks(chain)
    if blocks is None:
        return min(LAST_BLOCKS, readable)
    if int(blocks) != blocks or blocks < 1:
        raise ValueError(f"The number of last blocks must be a positive integer; got {blocks}.")
    if blocks > readable:
        raise ValueError(
            f"{chain.model.name!r} has {readable} block(s) whose output its head can read "
            f"(after its last downsampling or pooling), fewer than the {blocks} last blocks "
            f"asked for; accepted: 1 to {readable}.")
    return int(blocks)


def borderline_sums(chain, images, labels, blocks: int) -> dict:
    """Per group (``GROUPS``) and per last block, sums over the batch of ``correct``, ``loss``
    and ``entropy`` of the head on the block's output, ``[len(GROUPS), blocks]``; and
    ``examples`` per group. The last column is the model's own prediction."""
    images, labels = prepare(images, labels)
    _, parts, logits = chain.hidden_states(images, training=False)
    groups = example_groups(labels, logits)
    columns = {"correct": [], "loss": [], "entropy": []}
    for block, part in zip(chain.blocks[-blocks:], parts[-blocks:]):
        head = chain.head(block.unit.merge(part, training=False), training=False)
        for name, values in (("correct", correct(labels, head)),
                             ("loss", crossentropy(labels, head)), ("entropy", entropy(head))):
            columns[name].append(group_totals(groups, values))
    sums = {name: tf.stack(values, axis=1) for name, values in columns.items()}
    sums["examples"] = tf.reduce_sum(groups, axis=1)
    return sums
