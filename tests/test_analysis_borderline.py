"""analysis.borderline: the groups' rule, the head after each of the last blocks, and models
that lack the blocks asked for."""

import numpy as np
import pytest
import tensorflow as tf

import keras_resnets
from analysis.borderline import (GROUPS, LAST_BLOCKS, borderline_sums, check_last_blocks,
                                 example_groups)
from analysis.measures import correct, crossentropy, entropy

SHAPE = (8, 8, 3)


def logits_of(probabilities):
    return tf.math.log(tf.constant(probabilities, tf.float32))


def test_the_rule_is_a_probability_gap_under_ten_points_either_way():
    probabilities = [[0.50, 0.45, 0.05],   # right, 0.05 ahead: borderline
                     [0.45, 0.50, 0.05],   # wrong, 0.05 behind: borderline
                     [0.80, 0.15, 0.05],   # right by 0.65: correct
                     [0.15, 0.80, 0.05],   # wrong by 0.65: neither
                     [0.40, 0.31, 0.29],   # right by 0.09 (the runner-up counts): borderline
                     [0.30, 0.20, 0.50]]   # label 1, 0.3 behind the best: neither
    labels = tf.constant([0, 0, 0, 0, 0, 1])
    groups = example_groups(labels, logits_of(probabilities)).numpy()
    assert GROUPS == ("borderline", "correct", "all")
    np.testing.assert_array_equal(groups, [[1, 1, 0, 0, 1, 0],
                                           [0, 0, 1, 0, 0, 0],
                                           [1, 1, 1, 1, 1, 1]])


@pytest.fixture(scope="module")
def single():
    """A single-representation net of 6 blocks: the head reads every block's output."""
    model = keras_resnets.build("j18-single", input_shape=SHAPE, blocks=6, filters=4)
    return keras_resnets.ResidualChain(model)


def test_the_head_after_each_of_the_last_blocks_per_group(single):
    images = tf.random.stateless_normal((8, *SHAPE), seed=[4, 1])
    logits = single.model(images)
    ranked = tf.argsort(logits, direction="DESCENDING")
    labels = tf.concat([ranked[:4, 0], ranked[4:, 1]], axis=0)  # half right, half runner-up
    sums = borderline_sums(single, images, labels, blocks=LAST_BLOCKS)
    assert sums["correct"].shape == sums["loss"].shape == (len(GROUPS), LAST_BLOCKS)
    groups = example_groups(labels, logits)
    np.testing.assert_allclose(sums["examples"], tf.reduce_sum(groups, axis=1))
    _, parts, _ = single.hidden_states(images)
    for column, j in enumerate(range(1, 6)):  # blocks 1..5 of 6: the last five
        head = single.head(single.blocks[j].unit.merge(parts[j]))
        for name, values in (("correct", correct(labels, head)),
                             ("loss", crossentropy(labels, head)), ("entropy", entropy(head))):
            np.testing.assert_allclose(sums[name][:, column],
                                       tf.reduce_sum(groups * values[tf.newaxis], axis=1),
                                       rtol=1e-5, atol=1e-6)
    # The last column is the model's own prediction: "correct" examples are all right there.
    everyone, right = GROUPS.index("all"), GROUPS.index("correct")
    assert float(sums["correct"][right, -1]) == float(sums["examples"][right])
    assert float(sums["loss"][everyone, -1]) == pytest.approx(
        float(tf.reduce_sum(crossentropy(labels, logits))), rel=1e-5)


def test_last_blocks_are_the_papers_five_or_what_the_head_can_read(single):
    assert check_last_blocks(single, None) == 5
    assert check_last_blocks(single, 6) == 6
    small = keras_resnets.ResidualChain(keras_resnets.build("resnet14", input_shape=SHAPE))
    assert check_last_blocks(small, None) == 2  # 2 blocks after the last downsampling
    with pytest.raises(ValueError, match=r"'resnet14' has 2 block.*asked for; accepted: 1 to 2"):
        check_last_blocks(small, 5)
    for bad in (0, -1, 1.5):
        with pytest.raises(ValueError, match="positive integer"):
            check_last_blocks(small, bad)
