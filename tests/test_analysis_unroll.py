"""analysis.unroll: re-applying the last block with a scaled or norm-controlled update, per
group of examples, with the block's cosine and l2 ratio at every step."""

import numpy as np
import pytest
import tensorflow as tf

import keras_resnets
from analysis.borderline import GROUPS, example_groups
from analysis.measures import cosine_per_example, crossentropy, entropy
from analysis.unroll import (DEFAULT_ALPHAS, check_unroll_options, check_unrollable,
                             check_updates, unroll_sums)

SHAPE = (8, 8, 3)


def test_each_step_applies_the_scaled_update_of_the_last_block():
    model = keras_resnets.build("preact14", input_shape=SHAPE)
    chain = keras_resnets.ResidualChain(model)
    images = tf.random.stateless_normal((6, *SHAPE), seed=[2, 1])
    labels = tf.constant([0, 1, 2, 3, 4, 5])
    sums = unroll_sums(chain, images, labels, alphas=(1.0, 0.5), steps=2)
    assert sums["loss"].shape == sums["entropy"].shape == (2, len(GROUPS), 3)
    everyone = GROUPS.index("all")

    block = chain.blocks[-1].unit
    _, parts, _ = chain.hidden_states(images)
    h = block.merge(parts[-1])
    expected = {(1.0, 0): h, (1.0, 2): block(block(h)),
                (0.5, 1): h + 0.5 * (block(h) - h)}
    for (alpha, k), state in expected.items():
        logits = chain.head(state)
        row = (1.0, 0.5).index(alpha)
        assert float(sums["loss"][row, everyone, k]) == pytest.approx(
            float(tf.reduce_sum(crossentropy(labels, logits))), rel=1e-5)
        assert float(sums["entropy"][row, everyone, k]) == pytest.approx(
            float(tf.reduce_sum(entropy(logits))), rel=1e-5)
    np.testing.assert_allclose(sums["loss"][:, everyone, 0], float(tf.reduce_sum(
        crossentropy(labels, model(images)))), rtol=1e-5)  # k = 0 is the model


def test_cosine_l2_ratio_and_groups_at_each_step_and_the_norm_controlled_step():
    model = keras_resnets.build("preact14", input_shape=SHAPE)
    chain = keras_resnets.ResidualChain(model)
    images = tf.random.stateless_normal((6, *SHAPE), seed=[3, 1])
    logits = model(images)
    # Labels from the model's own ranking: two right, two second-best, two last.
    ranked = tf.argsort(logits, direction="DESCENDING")
    labels = tf.concat([ranked[:2, 0], ranked[2:4, 1], ranked[4:, -1]], axis=0)
    sums = unroll_sums(chain, images, labels, alphas=(0.1,), steps=1, updates=("norm",))
    groups = example_groups(labels, logits)
    np.testing.assert_allclose(sums["examples"], tf.reduce_sum(groups, axis=1))
    assert float(sums["examples"][GROUPS.index("all")]) == 6

    block = chain.blocks[-1].unit
    _, parts, _ = chain.hidden_states(images)
    h = block.merge(parts[-1])
    step = block(h) - h
    with tf.GradientTape() as tape:
        tape.watch(h)
        loss = crossentropy(labels, chain.head(h))
    cosine = cosine_per_example(step, tape.gradient(loss, h))
    for g in range(len(GROUPS)):  # k = 0: the block at the model's own last state
        assert float(sums["cosine"][0, g, 0]) == pytest.approx(
            float(tf.reduce_sum(groups[g] * cosine)), rel=1e-4, abs=1e-6)
    moved = h + 0.1 * tf.norm(tf.reshape(h, [6, -1]), axis=1)[:, None, None, None] * step / (
        tf.norm(tf.reshape(step, [6, -1]), axis=1)[:, None, None, None])
    everyone = GROUPS.index("all")
    assert float(sums["loss"][0, everyone, 1]) == pytest.approx(
        float(tf.reduce_sum(crossentropy(labels, chain.head(moved)))), rel=1e-5)
    ratio = tf.norm(tf.reshape(block(moved) - moved, [6, -1]), axis=1) / tf.norm(
        tf.reshape(moved, [6, -1]), axis=1)
    assert float(sums["l2_ratio"][0, everyone, 1]) == pytest.approx(
        float(tf.reduce_sum(ratio)), rel=1e-5)


def test_unrolling_options_are_checked():
    assert check_unroll_options([1, 0.25], 20) == ((1.0, 0.25), 20)
    assert DEFAULT_ALPHAS == (1.0, 0.5, 0.2, 0.1, 0.05, 0.02, 0.01)  # down to small scales
    with pytest.raises(ValueError, match="non-negative integer"):
        check_unroll_options((1.0,), -1)
    for steps in (1.5, float("nan"), float("inf"), "3"):
        with pytest.raises(ValueError, match="non-negative integer"):
            check_unroll_options((1.0,), steps)
    for alphas in ((), (0.0,), (-0.1,), (1.5,), (float("inf"),), (float("nan"),)):
        with pytest.raises(ValueError, match=r"alphas must be in \(0, 1\]"):
            check_unroll_options(alphas, 1)
    with pytest.raises(ValueError, match="distinct"):
        check_unroll_options((0.1, 0.1), 1)
    assert check_updates(["norm", "scaled", "norm"]) == ("norm", "scaled")
    with pytest.raises(ValueError, match="accepted: one or more of scaled, norm"):
        check_updates(["sgd"])
    chain = keras_resnets.ResidualChain(keras_resnets.build("wrn10-2", input_shape=SHAPE))
    with pytest.raises(ValueError, match=r"strides 2, 64 -> 128 channels"):
        check_unrollable(chain)
