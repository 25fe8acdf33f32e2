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


def test_unshared_bn_is_the_papers_remedy():
    """share_batchnorm=False: shared convs; per-step statistics, gamma, beta; gamma = 0.1."""
    model = keras_resnets.build("preact20-shared-bn", shared_blocks=2, input_shape=(8, 8, 3))
    stack = stack_of(model)
    assert (stack.unshared_statistics, stack.unshared_affine, stack.gamma_init) == (
        True, True, 0.1)
    first, second = stack.step_units
    for a, b in zip(first.convolutions(), second.convolutions()):
        assert a is b and a.kernel is b.kernel
    pairs = list(zip(first.batchnorms(), second.batchnorms(), strict=True))
    assert len(pairs) == 2
    for a, b in pairs:
        for name in ("gamma", "beta", "moving_mean", "moving_variance"):
            assert getattr(a, name) is not getattr(b, name)
        np.testing.assert_allclose(a.gamma.numpy(), 0.1)
        np.testing.assert_allclose(b.gamma.numpy(), 0.1)
    # The unshared units outside the stack keep Keras's gamma = 1.
    unit = model.get_layer("stage1_unit1")
    np.testing.assert_allclose(unit.batchnorms()[-1].gamma.numpy(), 1.0)


def test_naive_sharing_shares_batchnorm_too():
    model = keras_resnets.build("preact20-shared", shared_blocks=2, input_shape=(8, 8, 3))
    stack = stack_of(model)
    first, second = stack.step_units
    assert first is second and len(stack.units) == 1
    assert (stack.unshared_statistics, stack.unshared_affine, stack.gamma_init) == (
        False, False, 1.0)
    np.testing.assert_allclose(first.batchnorms()[0].gamma.numpy(), 1.0)


ABLATIONS = {  # Fig. 9: each part of the remedy turned off alone
    "shared-bn-shared-stats": ("moving_mean", "moving_variance"),
    "shared-bn-shared-affine": ("gamma", "beta"),
    "shared-bn-gamma1": (),
}


def test_fig9_ablations_turn_off_one_part_each():
    for variant, tied in ABLATIONS.items():
        model = keras_resnets.build(f"preact20-{variant}", shared_blocks=2,
                                    input_shape=(8, 8, 3))
        first, second = stack_of(model).step_units
        assert first is not second, variant
        assert first.convolutions()[0] is second.convolutions()[0]
        gamma = 1.0 if variant == "shared-bn-gamma1" else 0.1
        for a, b in zip(first.batchnorms(), second.batchnorms(), strict=True):
            for name in ("gamma", "beta", "moving_mean", "moving_variance"):
                same = getattr(a, name) is getattr(b, name)
                assert same == (name in tied), (variant, name)
            np.testing.assert_allclose(b.gamma.numpy(), gamma)
        model(np.zeros((2, 8, 8, 3), "float32"), training=True)  # runs, tied or not


def test_shared_affine_is_counted_once_and_gets_one_gradient():
    import tensorflow as tf

    remedy = keras_resnets.build("preact20-shared-bn", shared_blocks=2, input_shape=(8, 8, 3))
    tied = keras_resnets.build("preact20-shared-bn-shared-affine", shared_blocks=2,
                               input_shape=(8, 8, 3))
    # One step's two BNs fewer per stage (gamma and beta each).
    assert count_parameters(remedy) - count_parameters(tied) == 2 * 2 * (16 + 32 + 64)
    first = stack_of(tied).step_units[0]
    gamma = first.batchnorms()[0].gamma
    assert sum(w is gamma for w in tied.trainable_weights) == 1
    images = tf.constant(np.random.default_rng(0).normal(size=(2, 8, 8, 3)), tf.float32)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tied(images, training=True) ** 2)
    assert np.abs(tape.gradient(loss, gamma).numpy()).sum() > 0


def test_switches_override_the_shorthand_and_round_trip():
    from keras_resnets.shared import batchnorm_mode

    assert batchnorm_mode(False) == {"unshared_statistics": True, "unshared_affine": True,
                                     "gamma_init": 0.1}
    assert batchnorm_mode(True, gamma_init=0.5)["gamma_init"] == 0.5
    assert batchnorm_mode({"unshared_affine": False})["unshared_affine"] is False
    import pytest

    with pytest.raises(ValueError, match="Unknown share_batchnorm key"):
        batchnorm_mode({"unshared_stats": False})
    stack = SharedResidualStack(2, 8, share_batchnorm=False, unshared_statistics=False,
                                unit_options={"ordering": "preact"})
    clone = SharedResidualStack.from_config(stack.get_config())
    assert (clone.unshared_statistics, clone.unshared_affine, clone.gamma_init) == (
        False, True, 0.1)


def test_tied_batchnorm_survives_save_and_load(tmp_path):
    model = keras_resnets.build("preact20-shared-bn-shared-affine", shared_blocks=2,
                                input_shape=(8, 8, 3))
    images = np.random.default_rng(0).normal(size=(2, 8, 8, 3)).astype("float32")
    model(images, training=True)
    model.save(tmp_path / "tied.keras")
    loaded = keras.saving.load_model(tmp_path / "tied.keras")
    np.testing.assert_allclose(loaded(images), model(images), atol=1e-6)
    first, second = stack_of(loaded).step_units
    assert first.batchnorms()[0].gamma is second.batchnorms()[0].gamma
    assert count_parameters(loaded) == count_parameters(model)


def test_tied_batchnorm_holds_the_shared_variables_in_keras_order():
    """A tied BN layer lists the first step's variables where its own would be, so weight
    files keep the layout of untied layers."""
    model = keras_resnets.build("preact20-shared-bn-shared-stats", shared_blocks=2,
                                input_shape=(8, 8, 3))
    first, second = stack_of(model).step_units
    for a, b in zip(first.batchnorms(), second.batchnorms(), strict=True):
        assert [w.name for w in b.weights] == ["gamma", "beta", "moving_mean", "moving_variance"]
        assert b.weights[2] is a.moving_mean and b.weights[3] is a.moving_variance
        assert b.weights[0] is not a.gamma and b.weights[1] is not a.beta
