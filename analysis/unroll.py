"""Unrolling the last block (Jastrzebski et al. 2018, Figure 7: "unrolling").

If the top blocks refine a representation iteratively, applying the last block ``k`` more
times should keep the prediction roughly where it is. Naive unrolling explodes, so the paper
puts "a scaling factor on the output" without giving its value; this module sweeps it. Two
updates from the block's step ``d(h) = block(h) - h`` (``F(h)`` for an identity block; it
includes the after-addition activation of post-activation units):

- ``scaled``: ``h <- h + alpha * d(h)``; ``alpha = 1`` re-applies the block as it is.
- ``norm``: ``h <- h + alpha * ||h|| * d(h) / ||d(h)||`` per example, a step of a fixed size,
  ``alpha`` of the representation's norm, whatever the block's own l2 ratio.

At each step ``k = 0..steps`` (``k = 0`` is the model's own prediction) the head on ``h_k``
gives accuracy, loss and entropy, and the block at ``h_k`` its cosine ``cos(d(h_k),
dL/dh_k)`` (negative: the next step lowers the loss) and l2 ratio ``||d(h_k)|| / ||h_k||``
(the block's own, before the scaling); each per group of ``analysis.borderline`` (borderline,
correct, all), the groups fixed by the model's prediction.
"""

import math

import tensorflow as tf

from analysis.borderline import example_groups, group_totals
from analysis.measures import (correct, cosine_per_example, crossentropy, entropy,
                               l2_ratio_per_example, prepare)
from analysis.options import DEFAULT_ALPHAS, DEFAULT_STEPS, DEFAULT_UPDATES

QUANTITIES = ("correct", "loss", "entropy", "cosine", "l2_ratio")


def _scaled_step(h, step, alpha):
    return h + alpha * step


def _norm_step(h, step, alpha):
    scale = alpha * l2_ratio_per_example(h, step)  # ||h|| / ||d(h)||, 0 where d(h) = 0
    return h + tf.reshape(tf.cast(scale, h.dtype), [-1] + [1] * (h.shape.rank - 1)) * step


UPDATES = {"scaled": _scaled_step, "norm": _norm_step}


def check_unrollable(chain) -> None:
    """Refuse a last block that changes the shape: it cannot be applied to its own output."""
    unit = chain.blocks[-1].unit
    if unit.changes_shape:
        raise ValueError(
            f"Cannot unroll {chain.model.name!r}: its last block changes the shape "
            f"(strides {unit.strides}, {unit.in_filters} -> {unit.filters} channels), so it "
            "cannot be applied to its own output. Use a model with >= 2 units per stage.")


def check_unroll_options(alphas, steps) -> tuple[tuple[float, ...], int]:
    """Validated ``(alphas, steps)``: distinct alphas in (0, 1], steps a non-negative
    integer."""
    alphas = tuple(float(a) for a in alphas)
    if not alphas or any(not 0.0 < a <= 1.0 for a in alphas):
        raise ValueError(f"Unrolling alphas must be in (0, 1]; got {alphas}.")
    if len(set(alphas)) != len(alphas):
        raise ValueError(f"Unrolling alphas must be distinct; got {alphas}.")
    if not (isinstance(steps, (int, float)) and math.isfinite(steps) and int(steps) == steps
            and steps >= 0):
        raise ValueError(f"Unrolling steps must be a non-negative integer; got {steps}.")
    return alphas, int(steps)


def check_updates(updates) -> tuple[str, ...]:
    """Validated, distinct update names (keys of ``UPDATES``)."""
    updates = tuple(dict.fromkeys(updates))
    unknown = [u for u in updates if u not in UPDATES]
    if unknown or not updates:
        raise ValueError(f"Unknown unrolling updates {unknown or list(updates)}; accepted: one "
                         f"or more of {', '.join(UPDATES)}.")
    return updates


def _probe(chain, unit, labels, h):
    """Per-example quantities of ``QUANTITIES`` at ``h``, and the block's step ``d(h)``."""
    with tf.GradientTape(watch_accessed_variables=False) as tape:
        tape.watch(h)
        logits = chain.head(h, training=False)
        losses = crossentropy(labels, logits)
    gradient = tape.gradient(losses, h)  # of the summed loss: each example's own gradient
    step = unit(h, training=False) - h
    return {"correct": correct(labels, logits), "loss": losses, "entropy": entropy(logits),
            "cosine": cosine_per_example(step, gradient),
            "l2_ratio": l2_ratio_per_example(step, h)}, step


def _unroll(chain, labels, groups, start, update, alpha, steps) -> dict:
    """``QUANTITIES`` summed per group at ``k = 0..steps``: ``[len(GROUPS), steps + 1]``."""
    unit, h = chain.blocks[-1].unit, start
    columns = {name: [] for name in QUANTITIES}
    for k in range(steps + 1):
        values, step = _probe(chain, unit, labels, h)
        for name, value in values.items():
            columns[name].append(group_totals(groups, value))
        if k < steps:
            h = UPDATES[update](h, step, alpha)
    return {name: tf.stack(values, axis=1) for name, values in columns.items()}


def unroll_sums(chain, images, labels, alphas=DEFAULT_ALPHAS, steps=DEFAULT_STEPS,
                updates=DEFAULT_UPDATES) -> dict:
    """Sums over the batch of ``QUANTITIES`` after ``k = 0..steps`` extra applications of the
    last block, shape ``[len(updates) * len(alphas), len(GROUPS), steps + 1]`` (rows: every
    alpha of the first update, then of the next); plus ``examples`` per group."""
    images, labels = prepare(images, labels)
    _, parts, logits = chain.hidden_states(images, training=False)
    groups = example_groups(labels, logits)
    start = chain.blocks[-1].unit.merge(parts[-1], training=False)
    rows = [_unroll(chain, labels, groups, start, update, alpha, steps)
            for update in updates for alpha in alphas]
    sums = {name: tf.stack([row[name] for row in rows]) for name in QUANTITIES}
    sums["examples"] = tf.reduce_sum(groups, axis=1)
    return sums
