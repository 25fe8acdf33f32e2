"""Weight-shared stacks (Jastrzebski et al. 2018, Fig. 8): naive and with per-step BN."""

import keras
import numpy as np

import keras_resnets
from keras_resnets import ResidualChain, SharedResidualStack, count_parameters


def stack_of(model):
    return next(layer for layer in model.layers if isinstance(layer, SharedResidualStack))


def test_naive_sharing_reuses_one_unit():
    model = keras_resnets.build("resnet20-shared", shared_blocks=2, input_shape=(8, 8, 3))
    steps = stack_of(model).step_units
    assert len(steps) == 2 and steps[0] is steps[1]
    # Per stage: 1 unshared unit + 1 shared unit -> the parameters of resnet14 (2 units/stage),
    # with the 1x1 projections that Jastrzebski et al.'s shared nets keep.
    plain = keras_resnets.build("resnet14", input_shape=(8, 8, 3), projection="conv")
    assert count_parameters(model) == count_parameters(plain)


def test_per_step_batchnorm_shares_convolutions_only():
    model = keras_resnets.build("resnet20-shared-bn", shared_blocks=2, input_shape=(8, 8, 3))
    first, second = stack_of(model).step_units
    assert first is not second
    for a, b in zip(first.convolutions(), second.convolutions()):
        assert a is b
    bns = [[layer for layer in unit.branch_layers
            if isinstance(layer, keras.layers.BatchNormalization)] for unit in (first, second)]
    assert all(a is not b for a, b in zip(*bns))
    naive = keras_resnets.build("resnet20-shared", shared_blocks=2, input_shape=(8, 8, 3))
    extra_bn = 2 * 2 * (16 + 32 + 64)  # one more step's two BNs (scale, shift) per stage
    assert count_parameters(model) - count_parameters(naive) == extra_bn


def test_shared_blocks_count_as_one_block_per_step():
    model = keras_resnets.build("resnet110-shared-bn", input_shape=(8, 8, 3))
    chain = ResidualChain(model)
    assert len(chain) == 54
    assert [b.stage for b in chain.blocks].count(2) == 18


def test_shared_kernel_gradient_sums_over_steps():
    """A shared conv is one variable: its gradient collects every step's contribution."""
    import tensorflow as tf

    model = keras_resnets.build("resnet20-shared-bn", shared_blocks=2, input_shape=(8, 8, 3))
    kernel = stack_of(model).step_units[0].convolutions()[0].kernel
    matches = [w for w in model.trainable_weights if w is kernel]
    assert len(matches) == 1
    images = tf.constant(np.random.default_rng(0).normal(size=(2, 8, 8, 3)), tf.float32)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(model(images, training=True) ** 2)
    assert np.abs(tape.gradient(loss, kernel).numpy()).sum() > 0
