"""analysis.unroll: re-applying the last block with a scaled update."""

import numpy as np
import pytest
import tensorflow as tf

import keras_resnets
from analysis.measures import crossentropy, entropy
from analysis.unroll import check_unroll_options, check_unrollable, unroll_sums

SHAPE = (8, 8, 3)


def test_each_step_applies_the_scaled_update_of_the_last_block():
    model = keras_resnets.build("preact14", input_shape=SHAPE)
    chain = keras_resnets.ResidualChain(model)
    images = tf.random.stateless_normal((6, *SHAPE), seed=[2, 1])
    labels = tf.constant([0, 1, 2, 3, 4, 5])
    sums = unroll_sums(chain, images, labels, alphas=(1.0, 0.5), steps=2)
    assert sums["loss"].shape == sums["entropy"].shape == (2, 3)

    block = chain.blocks[-1].unit
    _, parts, _ = chain.hidden_states(images)
    h = block.merge(parts[-1])
    expected = {(1.0, 0): h, (1.0, 2): block(block(h)),
                (0.5, 1): h + 0.5 * (block(h) - h)}
    for (alpha, k), state in expected.items():
        logits = chain.head(state)
        row = (1.0, 0.5).index(alpha)
        assert float(sums["loss"][row, k]) == pytest.approx(
            float(tf.reduce_sum(crossentropy(labels, logits))), rel=1e-5)
        assert float(sums["entropy"][row, k]) == pytest.approx(
            float(tf.reduce_sum(entropy(logits))), rel=1e-5)
    np.testing.assert_allclose(sums["loss"][:, 0], float(tf.reduce_sum(
        crossentropy(labels, model(images)))), rtol=1e-5)  # k = 0 is the model


def test_unrolling_options_are_checked():
    assert check_unroll_options([1, 0.25], 20) == ((1.0, 0.25), 20)
    with pytest.raises(ValueError, match="non-negative integer"):
        check_unroll_options((1.0,), -1)
    chain = keras_resnets.ResidualChain(keras_resnets.build("wrn10-2", input_shape=SHAPE))
    with pytest.raises(ValueError, match=r"strides 2, 64 -> 128 channels"):
        check_unrollable(chain)
