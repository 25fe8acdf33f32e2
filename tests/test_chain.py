"""ResidualChain: the analysis view runs exactly the model's own layers."""

import numpy as np
import pytest

import keras_resnets
from keras_resnets import ResidualChain

IMAGES = np.random.default_rng(1).normal(size=(3, 16, 16, 3)).astype("float32")


SMALL = {"blocks": 2, "filters": 8}  # Jastrzebski et al.'s networks, reduced
MODELS = {"resnet8": {}, "preact11": {}, "resnet14": {"downsample": "avgpool"},
          "j18-single": SMALL, "j18-avgpool": SMALL, "resnet8-gate-shortcut": {}}


@pytest.fixture(scope="module", params=list(MODELS))
def model(request):
    return keras_resnets.build(request.param, input_shape=(16, 16, 3), **MODELS[request.param])


def test_forward_equals_the_model(model):
    chain = ResidualChain(model)
    np.testing.assert_allclose(chain.forward(IMAGES), model(IMAGES), atol=1e-5)
    inputs, parts, logits = chain.hidden_states(IMAGES)
    np.testing.assert_allclose(logits, model(IMAGES), atol=1e-5)
    assert len(inputs) == len(parts) == len(chain)


def test_run_from_a_cached_block_input_matches(model):
    chain = ResidualChain(model)
    inputs, _, logits = chain.hidden_states(IMAGES)
    for j in (1, len(chain) - 1):
        np.testing.assert_allclose(chain.run_from(j, inputs[j]), logits, atol=1e-5)


def test_dropping_a_block_merges_a_zero_branch(model):
    chain = ResidualChain(model)
    inputs, parts, _ = chain.hidden_states(IMAGES)
    last = len(chain) - 1
    unit = chain.blocks[last].unit
    expected = chain.head(unit.merge(parts[last]._replace(residual=0 * parts[last].residual)))
    np.testing.assert_allclose(chain.run_from(last, inputs[last], drop=last), expected, atol=1e-5)
    assert not np.allclose(chain.forward(IMAGES, drop=last), chain.forward(IMAGES), atol=1e-4)


def test_stages_and_transitions_are_recorded():
    chain = ResidualChain(keras_resnets.build("resnet14", input_shape=(16, 16, 3),
                                              downsample="avgpool"))
    assert [b.stage for b in chain.blocks] == [1, 1, 2, 2, 3, 3]
    assert [b.index_in_stage for b in chain.blocks] == [0, 1, 0, 1, 0, 1]
    assert [len(b.before) for b in chain.blocks] == [3, 0, 1, 0, 1, 0]  # stem, pooling
    assert [layer.name for layer in chain.head_layers] == ["pool", "logits"]


def test_stages_and_classifier_of_jastrzebski_avgpool_net():
    chain = ResidualChain(keras_resnets.build("j18-avgpool", input_shape=(16, 16, 3), **SMALL))
    assert [b.stage for b in chain.blocks] == [1, 1, 2, 2, 3, 3]
    assert [len(b.before) for b in chain.blocks] == [1, 0, 1, 0, 1, 0]  # stem conv, pooling
    assert [layer.name for layer in chain.head_layers] == [
        "final_bn", "final_relu", "pool", "flatten", "logits"]


def test_stages_come_from_the_units_not_their_names():
    import keras

    inputs = keras.Input((8, 8, 16))
    x = keras_resnets.ResidualUnit(16, stage=1, name="first")(inputs)
    x = keras_resnets.ResidualUnit(32, strides=2, in_filters=16, stage=2, name="stage9_unit1")(x)
    x = keras_resnets.ResidualUnit(32, stage=2, name="later")(x)
    chain = ResidualChain(keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(x)))
    assert [(b.stage, b.index_in_stage) for b in chain.blocks] == [(1, 0), (2, 0), (2, 1)]
    assert [b.unit.changes_shape for b in chain.blocks] == [False, True, False]


def test_a_model_without_units_is_refused():
    import keras

    plain = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="no ResidualUnit"):
        ResidualChain(plain)
