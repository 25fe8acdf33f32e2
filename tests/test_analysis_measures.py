"""analysis.measures: gradients, cosine, l2 ratio, dropping and the one-pass design."""

import numpy as np
import pytest
import keras
import tensorflow as tf

import keras_resnets
from analysis import measures
from analysis.measures import (block_gradients, cosine_per_example, crossentropy, drop_sums,
                               l2_ratio_per_example, probe_sums, readable_blocks)

SHAPE = (8, 8, 3)


def batch(n=8, seed=0):
    images = tf.random.stateless_normal((n, *SHAPE), seed=[seed, 1])
    labels = tf.random.stateless_uniform((n,), seed=[seed, 2], maxval=10, dtype=tf.int32)
    return images, labels


@pytest.fixture(scope="module")
def chain():
    return keras_resnets.ResidualChain(keras_resnets.build("preact8", input_shape=SHAPE))


@pytest.fixture(scope="module")
def chain64():
    """preact8 in float64, so that finite differences are accurate; seeded, so that no input
    sits within a step of a ReLU kink by chance (an unseeded build failed about once in 20)."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float64")
    keras.utils.set_random_seed(0)
    try:
        return keras_resnets.ResidualChain(keras_resnets.build("preact8", input_shape=SHAPE))
    finally:
        keras.config.set_dtype_policy(previous)


def _loss_from_block(chain, j, h, labels):
    return float(tf.reduce_sum(crossentropy(labels, chain.run_from(j, h))))


def _loss_from_shortcut(chain, j, parts, shortcut, labels):
    out = chain.blocks[j].unit.merge(parts._replace(shortcut=shortcut))
    h = chain.block_input(j + 1, out)
    return _loss_from_block(chain, j + 1, h, labels)


def _central_difference(loss_at, h, seed):
    direction = tf.random.stateless_normal(h.shape, seed=[seed, 3], dtype=h.dtype)
    # A step small enough to cross no ReLU kink (BN at init puts many inputs near 0).
    eps = 1e-6 * float(tf.norm(h)) / float(tf.norm(direction))
    return (loss_at(h + eps * direction) - loss_at(h - eps * direction)) / (2 * eps), direction


def test_gradients_match_central_finite_differences(chain64):
    chain = chain64
    images, labels = batch()
    inputs, parts, references, grads, _ = block_gradients(chain, images, labels)
    # Block 0 keeps its shape (dL/dh_0); block 1 downsamples (dL/d shortcut output).
    assert references[0] is inputs[0] and references[1] is parts[1].shortcut
    checks = {0: lambda h: _loss_from_block(chain, 0, h, labels),
              1: lambda s: _loss_from_shortcut(chain, 1, parts[1], s, labels)}
    for j, loss_at in checks.items():
        estimate, direction = _central_difference(loss_at, references[j], seed=j)
        exact = float(tf.reduce_sum(grads[j] * direction))
        assert estimate == pytest.approx(exact, rel=1e-6)


def test_cosine_of_a_branch_along_the_negative_gradient_is_minus_one(chain):
    images, labels = batch()
    _, _, _, grads, _ = block_gradients(chain, images, labels)
    branch = -3.5 * grads[0]  # F := -c dL/dh: a step of gradient descent on h
    np.testing.assert_allclose(cosine_per_example(branch, grads[0]), -1.0, atol=1e-5)
    np.testing.assert_allclose(cosine_per_example(-branch, grads[0]), 1.0, atol=1e-5)


def test_cosine_and_l2_ratio_match_numpy():
    a = tf.random.stateless_normal((4, 3, 3, 2), seed=[5, 5])
    b = tf.random.stateless_normal((4, 3, 3, 2), seed=[6, 6])
    fa, fb = a.numpy().reshape(4, -1), b.numpy().reshape(4, -1)
    expected = (fa * fb).sum(1) / np.linalg.norm(fa, axis=1) / np.linalg.norm(fb, axis=1)
    np.testing.assert_allclose(cosine_per_example(a, b), expected, rtol=1e-5)
    np.testing.assert_allclose(l2_ratio_per_example(a, b),
                               np.linalg.norm(fa, axis=1) / np.linalg.norm(fb, axis=1), rtol=1e-5)
    np.testing.assert_array_equal(cosine_per_example(tf.zeros_like(a), b), np.zeros(4))


def test_dropping_a_zero_branch_changes_nothing():
    model = keras_resnets.build("preact14", input_shape=SHAPE)
    chain = keras_resnets.ResidualChain(model)
    last_conv = chain.blocks[3].unit.convolutions()[1]  # block 3: stage 2, identity shortcut
    last_conv.kernel.assign(tf.zeros_like(last_conv.kernel))
    images, labels = batch()
    sums = drop_sums(chain, images, labels)
    model_loss = float(tf.reduce_sum(crossentropy(labels, model(images))))
    assert float(sums["drop_loss"][3]) == pytest.approx(model_loss, rel=1e-5)
    # A block with a live branch does matter: the comparison can fail.
    assert float(sums["drop_loss"][4]) != pytest.approx(model_loss, rel=1e-3)


def test_head_on_the_last_block_output_is_the_model(chain):
    images, labels = batch()
    sums = probe_sums(chain, images, labels)
    logits = chain.model(images)
    assert float(sums["output_loss"][-1]) == pytest.approx(
        float(tf.reduce_sum(crossentropy(labels, logits))), rel=1e-5)
    assert float(sums["output_correct"][-1]) == float(sums["model_correct"])
    # preact8: only the last block's output has the head's width (64).
    assert np.isnan(sums["output_loss"][:-1].numpy()).all()


def test_the_head_reads_the_states_of_the_last_blocks_shape():
    """Jastrzebski et al. 2018's nets: one width everywhere, so the map size decides. The
    avg-pooling net's head reads only its last set (8 -> 4 -> 2 px here; the last set's first
    input is already pooled); the single-representation net's head reads every state."""
    small = {"blocks": 2, "filters": 8}
    pooled = keras_resnets.ResidualChain(
        keras_resnets.build("j18-avgpool", input_shape=SHAPE, **small))
    sums = probe_sums(pooled, *batch(), gradients=False)
    for where in ("input_loss", "output_loss"):
        assert np.isnan(sums[where][:4].numpy()).all()
        assert np.isfinite(sums[where][4:].numpy()).all()
    single = keras_resnets.ResidualChain(
        keras_resnets.build("j18-single", input_shape=SHAPE, **small))
    sums = probe_sums(single, *batch(), gradients=False)
    assert np.isfinite(sums["input_loss"].numpy()).all()
    assert np.isfinite(sums["output_loss"].numpy()).all()


def test_one_forward_and_one_backward_pass_for_all_blocks(monkeypatch):
    model = keras_resnets.build("resnet20-shared", input_shape=SHAPE, shared_blocks=2)
    chain = keras_resnets.ResidualChain(model)
    calls = {"parts": 0, "gradient": 0}
    parts, gradient = keras_resnets.ResidualUnit.parts, tf.GradientTape.gradient

    def counting_parts(self, *args, **kwargs):
        calls["parts"] += 1
        return parts(self, *args, **kwargs)

    def counting_gradient(self, *args, **kwargs):
        calls["gradient"] += 1
        return gradient(self, *args, **kwargs)

    monkeypatch.setattr(keras_resnets.ResidualUnit, "parts", counting_parts)
    monkeypatch.setattr(tf.GradientTape, "gradient", counting_gradient)
    sums = measures.probe_sums(chain, *batch())  # eager: every call is a real execution
    assert len(chain) == 9  # 3 stages x (1 unit + a stack of 2 steps of one shared unit)
    assert calls == {"parts": len(chain), "gradient": 1}
    assert sums["cosine"].shape == sums["l2_ratio"].shape == (len(chain),)


@pytest.mark.parametrize("name, overrides, expected", [
    ("preact8", {}, 1), ("resnet14", {}, 2), ("resnet20-shared", {"shared_blocks": 2}, 3),
    ("j18-single", {"blocks": 3, "filters": 4}, 3), ("j18-avgpool", {"blocks": 2, "filters": 4}, 2),
])
def test_readable_blocks_are_those_whose_outputs_the_head_reads(name, overrides, expected):
    """The count from the chain's structure (no data) matches the shapes the head reads."""
    chain = keras_resnets.ResidualChain(keras_resnets.build(name, input_shape=SHAPE, **overrides))
    assert readable_blocks(chain) == expected
    sums = probe_sums(chain, *batch(), gradients=False)
    finite = np.isfinite(sums["output_loss"].numpy())
    assert finite[-expected:].all() and not finite[:-expected].any()
