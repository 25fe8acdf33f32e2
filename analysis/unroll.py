"""Unrolling the last block (Jastrzebski et al. 2018, Figure 7: "unrolling").

If the top blocks refine a representation iteratively, applying the last block ``k`` more
times should keep the prediction roughly where it is. The update is scaled to keep the steps
small, ``h <- h + alpha * (block(h) - h)``: ``alpha = 1`` re-applies the block as it is, a
smaller ``alpha`` takes a fraction of its step. ``block(h) - h`` is ``F(h)`` for an identity
block and includes the after-addition activation for post-activation units.
"""

import tensorflow as tf

from analysis.measures import (correct, crossentropy, entropy, input_width, prepare, total,
                               unit_changes_shape)

DEFAULT_ALPHAS = (1.0, 0.5)
DEFAULT_STEPS = 20


def check_unrollable(chain) -> None:
    """Refuse a last block that changes the shape: it cannot be applied to its own output."""
    unit = chain.blocks[-1].unit
    if unit_changes_shape(unit):
        raise ValueError(
            f"Cannot unroll {chain.model.name!r}: its last block changes the shape "
            f"(strides {unit.strides}, {input_width(unit)} -> {unit.filters} channels), so it "
            "cannot be applied to its own output. Use a model with >= 2 units per stage.")


def check_unroll_options(alphas, steps) -> tuple[tuple[float, ...], int]:
    """Validated ``(alphas, steps)``: alphas in (0, 1], steps a non-negative integer."""
    alphas = tuple(float(a) for a in alphas)
    if not alphas or any(not 0.0 < a <= 1.0 for a in alphas):
        raise ValueError(f"Unrolling alphas must be in (0, 1]; got {alphas}.")
    if int(steps) != steps or steps < 0:
        raise ValueError(f"Unrolling steps must be a non-negative integer; got {steps}.")
    return alphas, int(steps)


def unroll_sums(chain, images, labels, alphas=DEFAULT_ALPHAS, steps=DEFAULT_STEPS) -> dict:
    """Sums over the batch of ``correct``, ``loss`` and ``entropy`` after ``k = 0..steps`` extra
    applications of the last block, shape ``[len(alphas), steps + 1]``; plus ``count``.
    ``k = 0`` is the model's own prediction."""
    images, labels = prepare(images, labels)
    _, parts, _ = chain.hidden_states(images, training=False)
    unit = chain.blocks[-1].unit
    start = unit.merge(parts[-1], training=False)
    results = {"correct": [], "loss": [], "entropy": []}
    for alpha in alphas:
        rows, h = {key: [] for key in results}, start
        for k in range(steps + 1):
            logits = chain.head(h, training=False)
            rows["correct"].append(total(correct(labels, logits)))
            rows["loss"].append(total(crossentropy(labels, logits)))
            rows["entropy"].append(total(entropy(logits)))
            if k < steps:
                h = h + alpha * (unit(h, training=False) - h)
        for key, values in rows.items():
            results[key].append(tf.stack(values))
    sums = {key: tf.stack(values) for key, values in results.items()}
    sums["count"] = tf.cast(tf.shape(labels)[0], tf.float32)
    return sums
