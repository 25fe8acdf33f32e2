"""Residual units: every ordering x branch x shortcut does what He et al. 2016 describe."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_resnets
from keras_resnets import ResidualUnit
from keras_resnets.orderings import ORDERINGS
from keras_resnets.normalization import BatchNormalization
from keras_resnets.units import ZeroPadShortcut

RNG = np.random.default_rng(0)
X = RNG.normal(size=(2, 8, 8, 16)).astype("float32")


def unit_of(x=X, **kwargs):
    unit = ResidualUnit(kwargs.pop("filters", 16), **kwargs)
    return unit, np.asarray(unit(x, training=False))


def split(unit, x=X):
    parts = unit.parts(x, training=False)
    return [None if p is None else np.asarray(p) for p in parts]


@pytest.mark.parametrize("ordering", sorted(ORDERINGS))
@pytest.mark.parametrize("branch, filters", [("basic", 16), ("bottleneck", 64), ("1conv", 16)])
def test_every_ordering_and_branch_keeps_or_changes_shape(ordering, branch, filters):
    _, y = unit_of(filters=filters, strides=2, branch=branch, ordering=ordering)
    assert y.shape == (2, 4, 4, filters)


@pytest.mark.parametrize("ordering, activated_after_add", [
    ("post", True), ("bn-after-add", True), ("relu-before-add", False), ("relu-preact", False),
    ("preact", False)])
def test_activation_after_addition_only_where_table2_puts_one(ordering, activated_after_add):
    unit, y = unit_of(ordering=ordering)
    shortcut, residual, _ = split(unit)
    if activated_after_add:
        assert (y >= 0).all() and unit.after_add_layers
    else:
        assert not unit.after_add_layers
        np.testing.assert_allclose(y, shortcut + residual, atol=1e-6)
        assert (y < 0).any()


@pytest.mark.parametrize("ordering, first, last", [
    ("post", keras.layers.Conv2D, keras.layers.BatchNormalization),
    ("bn-after-add", keras.layers.Conv2D, keras.layers.Conv2D),
    ("relu-before-add", keras.layers.Conv2D, keras.layers.ReLU),
    ("relu-preact", keras.layers.ReLU, keras.layers.BatchNormalization),
    ("preact", keras.layers.BatchNormalization, keras.layers.Conv2D)])
def test_branch_begins_and_ends_as_table2_says(ordering, first, last):
    unit, _ = unit_of(ordering=ordering)
    assert isinstance(unit.branch_layers[0], first)
    assert isinstance(unit.branch_layers[-1], last)


def test_bottleneck_reduces_then_expands_by_four():
    unit, _ = unit_of(filters=64, strides=2, branch="bottleneck", ordering="preact")
    shapes = [(c.kernel_size, c.filters, c.strides) for c in unit.convolutions()]
    assert shapes == [((1, 1), 16, (1, 1)), ((3, 3), 16, (2, 2)), ((1, 1), 64, (1, 1)),
                      ((1, 1), 64, (2, 2))]  # branch, then the projection shortcut


def test_identity_shortcut_unless_shape_changes():
    same, _ = unit_of()
    assert same.shortcut_layers == []
    wider, _ = unit_of(filters=32, strides=2)
    assert [type(layer) for layer in wider.shortcut_layers] == [
        keras.layers.Conv2D, BatchNormalization]
    preact, _ = unit_of(filters=32, strides=2, ordering="preact")
    assert [type(layer) for layer in preact.shortcut_layers] == [keras.layers.Conv2D]


def test_a_unit_records_its_widths_and_whether_it_changes_shape():
    """A unit built without ``in_filters`` learns it from its input; given, it is checked."""
    same, _ = unit_of()
    wider, _ = unit_of(filters=32)
    strided, _ = unit_of(strides=2)
    assert [u.in_filters for u in (same, wider, strided)] == [16, 16, 16]
    assert [u.changes_shape for u in (same, wider, strided)] == [False, True, True]
    declared = ResidualUnit(32, in_filters=16, stage=2)
    assert declared.changes_shape and declared.get_config()["stage"] == 2
    with pytest.raises(ValueError, match="built for inputs of 8 channels; got 16"):
        ResidualUnit(16, in_filters=8)(X)
    with pytest.raises(ValueError, match="unknown until the unit is built"):
        _ = ResidualUnit(16).changes_shape


def test_zoo_units_record_stage_and_input_width_from_the_builder():
    model = keras_resnets.build("resnet14-shared-bn", shared_blocks=1, input_shape=(8, 8, 3))
    blocks = keras_resnets.ResidualChain(model).blocks
    assert [(b.unit.stage, b.unit.in_filters, b.unit.changes_shape) for b in blocks] == [
        (1, 16, False), (1, 16, False), (2, 16, True), (2, 32, False), (3, 32, True),
        (3, 64, False)]


def test_zero_padding_shortcut_is_parameter_free_identity_on_old_channels():
    unit, _ = unit_of(filters=32, strides=2, projection="pad")
    (pad,) = unit.shortcut_layers
    assert isinstance(pad, ZeroPadShortcut) and not pad.weights
    shortcut, _, _ = split(unit)
    np.testing.assert_array_equal(shortcut[..., :16], X[:, ::2, ::2, :])
    assert not shortcut[..., 16:].any()


@pytest.mark.parametrize("size, strides", [(8, 2), (7, 2), (9, 3), (5, 1)])
def test_zero_padding_subsamples_exactly_like_slicing_forward_and_backward(size, strides):
    x = tf.constant(RNG.normal(size=(2, size, size, 4)).astype("float32"))
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        y = ZeroPadShortcut(6, strides)(x)
        expected = tf.pad(x[:, ::strides, ::strides, :], [[0, 0], [0, 0], [0, 0], [0, 2]])
        weights = tf.constant(RNG.normal(size=expected.shape).astype("float32"))
        losses = [tf.reduce_sum(weights * out) for out in (y, expected)]
    np.testing.assert_array_equal(y, expected)
    np.testing.assert_array_equal(*(tape.gradient(loss, x) for loss in losses))


def test_constant_scaling_merges_with_both_constants():
    unit, y = unit_of(shortcut="scale", shortcut_scale=0.5, branch_scale=0.25)
    shortcut, residual, _ = split(unit)
    np.testing.assert_allclose(y, np.maximum(0.5 * shortcut + 0.25 * residual, 0), atol=1e-6)


@pytest.mark.parametrize("kind, expected", [
    ("gate-exclusive", lambda s, r, g: (1 - g) * s + g * r),
    ("gate-shortcut", lambda s, r, g: (1 - g) * s + r)])
def test_gates_follow_table1(kind, expected):
    unit, y = unit_of(shortcut=kind, gate_bias=-6.0)
    shortcut, residual, gate = split(unit)
    assert gate.shape == y.shape  # one gate value per channel and position
    assert isinstance(unit.gate_layer, keras.layers.Conv2D)
    assert unit.gate_layer.kernel_size == (1, 1)
    np.testing.assert_allclose(unit.gate_layer.bias.numpy(), -6.0)
    np.testing.assert_allclose(y, np.maximum(expected(shortcut, residual, gate), 0), atol=1e-5)


def test_conv_shortcut_projects_every_unit():
    model = keras_resnets.build("resnet8-conv-shortcut")
    units = keras_resnets.ResidualChain(model).blocks
    assert all(isinstance(b.unit.shortcut_layers[0], keras.layers.Conv2D) for b in units)


def test_dropout_shortcut_drops_in_training_only():
    unit, y = unit_of(shortcut="dropout", shortcut_dropout=0.5)
    assert isinstance(unit.shortcut_layers[-1], keras.layers.Dropout)
    shortcut, residual, _ = split(unit)
    np.testing.assert_allclose(y, np.maximum(shortcut + residual, 0), atol=1e-6)
    dropped = np.asarray(unit.parts(X, training=True).shortcut)
    assert (dropped == 0).mean() > 0.3


def test_wide_resnet_dropout_sits_between_convolutions():
    unit, _ = unit_of(ordering="preact", dropout_rate=0.3)
    kinds = [type(layer).__name__ for layer in unit.branch_layers]
    assert kinds == ["BatchNormalization", "ReLU", "Conv2D", "Dropout",
                     "BatchNormalization", "ReLU", "Conv2D"]


def test_shared_preactivation_feeds_both_paths():
    unit, _ = unit_of(filters=32, strides=2, ordering="preact", preactivate_shortcut=True)
    assert [type(layer).__name__ for layer in unit.preactivation_layers] == [
        "BatchNormalization", "ReLU"]
    # no second BN-ReLU: the strided conv, after its explicit symmetric padding
    assert [type(layer).__name__ for layer in unit.branch_layers[:2]] == [
        "ZeroPadding2D", "Conv2D"]


def test_preact_networks_share_the_first_activation_and_end_with_bn_relu():
    model = keras_resnets.build("preact8")
    blocks = keras_resnets.ResidualChain(model).blocks
    shared = [bool(b.unit.preactivation_layers) for b in blocks]
    assert shared == [True, True, True]  # first unit, and both projection units
    assert [layer.name for layer in model.layers[-4:-2]] == ["final_bn", "final_relu"]
    post = keras_resnets.build("resnet8")
    assert not any(b.unit.preactivation_layers for b in keras_resnets.ResidualChain(post).blocks)
    assert post.layers[-3].name.startswith("stage3")


@pytest.mark.parametrize("kwargs, message", [
    ({"filters": 0}, "positive integers"),
    ({"ordering": "sideways"}, "accepted: bn-after-add"),
    ({"branch": "triple"}, "accepted: 1conv, basic, bottleneck"),
    ({"shortcut": "identity", "gate_bias": -6}, "takes no gate_bias"),
    ({"shortcut": "dropout", "shortcut_dropout": 1.0}, "[0, 1)"),
    ({"branch": "bottleneck", "filters": 30}, "divisible by 4"),
    ({"projection": "mirror"}, "accepted: conv, pad"),
    ({"dropout_rate": 1.5}, "[0, 1)"),
])
def test_unit_arguments_are_validated(kwargs, message):
    with pytest.raises(ValueError) as error:
        ResidualUnit(kwargs.pop("filters", 16), **kwargs)
    assert message in str(error.value)


@pytest.mark.parametrize("name", ["resnet8", "preact11", "resnet8-gate-exclusive", "wrn10-2",
                                  "resnet14-shared-bn"])
def test_gradients_reach_every_trainable_weight(name):
    overrides = {"shared_blocks": 1} if "shared" in name else {}
    model = keras_resnets.build(name, input_shape=(8, 8, 3), weight_decay=1e-4, **overrides)
    images = tf.constant(RNG.normal(size=(4, 8, 8, 3)), tf.float32)
    labels = tf.constant([0, 1, 2, 3])
    with tf.GradientTape() as tape:
        logits = model(images, training=True)
        loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(
            labels, logits, from_logits=True)) + tf.add_n(model.losses)
    grads = tape.gradient(loss, model.trainable_weights)
    assert all(g is not None and np.isfinite(g.numpy()).all() for g in grads)
    assert len(model.losses) == len([w for w in model.trainable_weights if "kernel" in w.path])
