"""Layers and models round-trip: get_config, .keras files and TF SavedModel exports."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_resnets
from keras_resnets import ResidualUnit, SharedResidualStack, ZeroPadShortcut

IMAGES = np.random.default_rng(2).normal(size=(2, 8, 8, 3)).astype("float32")
FAMILIES = {  # one model per unit family, each with its own structural feature
    "post": ("resnet8", {}),
    "preact": ("preact8", {}),
    "bottleneck": ("preact11", {}),
    "bn-after-add": ("resnet8-bn-after-add", {}),
    "gated": ("resnet8-gate-exclusive", {"gate_bias": -3.0}),
    "dropout-shortcut": ("resnet8-dropout-shortcut", {}),
    "one-conv": ("preact5-1conv", {}),
    "wide": ("wrn10-2", {"dropout_rate": 0.3}),
    "shared": ("resnet14-shared", {"shared_blocks": 1}),
    "shared-bn": ("resnet20-shared-bn", {"shared_blocks": 2}),
    "option-a": ("resnet8", {"projection": "pad"}),
    "jastrzebski": ("j18-avgpool", {"blocks": 1, "filters": 8}),  # conv biases, AvgPool-Flatten
}


def trained_like(name, overrides):
    """A model whose BN statistics and weights are not at their initial values."""
    model = keras_resnets.build(name, input_shape=(8, 8, 3), **overrides)
    for weight in model.weights:
        noise = np.random.default_rng(len(weight.path)).uniform(0.5, 1.5, weight.shape)
        weight.assign(weight.numpy() * noise.astype("float32"))
    return model


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def model(request):
    return trained_like(*FAMILIES[request.param])


def test_keras_file_round_trip(model, tmp_path):
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_allclose(loaded(IMAGES), model(IMAGES), atol=1e-5)
    assert keras_resnets.count_parameters(loaded) == keras_resnets.count_parameters(model)

@pytest.mark.slow
def test_savedmodel_round_trip(model, tmp_path):
    path = str(tmp_path / "savedmodel")
    model.export(path, format="tf_saved_model", verbose=False)
    loaded = tf.saved_model.load(path)  # keep a reference: it owns the variables
    np.testing.assert_allclose(loaded.serve(tf.constant(IMAGES)), model(IMAGES), atol=1e-5)


@pytest.mark.parametrize("layer", [
    ResidualUnit(32, strides=2, branch="bottleneck", ordering="relu-preact",
                 shortcut="gate-shortcut", gate_bias=-6.0, dropout_rate=0.1, weight_decay=1e-4,
                 preactivate_shortcut=True, projection="pad"),
    ResidualUnit(16, shortcut="scale", shortcut_scale=0.5, branch_scale=0.5),
    ResidualUnit(16, ordering="preact", conv_bias=True, sync_batchnorm=True),
    ResidualUnit(32, strides=2, branch="1conv", in_filters=16, stage=2),
    SharedResidualStack(3, 16, share_batchnorm=False, unit_options={"ordering": "preact"},
                        stage=3),
    ZeroPadShortcut(32, 2),
])
def test_get_config_rebuilds_the_same_layer(layer):
    config = layer.get_config()
    rebuilt = type(layer).from_config(config)
    assert rebuilt.get_config() == config
    serialized = keras.saving.serialize_keras_object(layer)
    assert serialized["module"] is None or "keras_resnets" in serialized["registered_name"]
    assert keras.saving.deserialize_keras_object(serialized).get_config() == config


def test_sync_batchnorm_reaches_every_batchnorm_and_round_trips(tmp_path):
    """``sync_batchnorm`` is a build option: the stem, unit, shared-stack and head BN layers
    are all synchronized, and stay so in a ``.keras`` file."""
    model = keras_resnets.build("preact14-shared-bn", shared_blocks=1, input_shape=(8, 8, 3),
                                sync_batchnorm=True)
    model.save(tmp_path / "sync.keras")
    loaded = keras.models.load_model(tmp_path / "sync.keras")
    for built in (model, loaded):
        norms = batchnorms(built)
        assert len(norms) == 1 + 3 * 2 * 2 and all(n.synchronized for n in norms)  # head + units
    assert not any(n.synchronized for n in batchnorms(keras_resnets.build("preact14")))


def batchnorms(model) -> list:
    """Every BN layer of a zoo model, by public attributes: the model's own layers, its
    residual units' and those of its shared stacks' units."""
    found = []
    for layer in model.layers:
        units = layer.units if isinstance(layer, SharedResidualStack) else [layer]
        found += [norm for unit in units if isinstance(unit, ResidualUnit)
                  for norm in unit.batchnorms()]
        found += [layer] if isinstance(layer, keras.layers.BatchNormalization) else []
    return found
