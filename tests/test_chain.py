"""ResidualChain: the analysis view runs exactly the model's own layers."""

import keras
import numpy as np
import pytest
from keras import layers

import keras_resnets
from keras_resnets import ResidualChain
from keras_resnets.graph import functional_twin

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
    inputs = keras.Input((8, 8, 16))
    x = keras_resnets.ResidualUnit(16, stage=1, name="first")(inputs)
    x = keras_resnets.ResidualUnit(32, strides=2, in_filters=16, stage=2, name="stage9_unit1")(x)
    x = keras_resnets.ResidualUnit(32, stage=2, name="later")(x)
    chain = ResidualChain(keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(x)))
    assert [(b.stage, b.index_in_stage) for b in chain.blocks] == [(1, 0), (2, 0), (2, 1)]
    assert [b.unit.changes_shape for b in chain.blocks] == [False, True, False]


def test_a_model_without_residual_blocks_is_refused():
    plain = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="has no residual block"):
        ResidualChain(plain)


# Foreign models: blocks found from the functional graph (keras_resnets.graph).


def foreign_preact_net(branch_first=False, head=None):
    """A hand-written pre-activation net: two identity blocks, a strided 1x1-projection block
    and an identity block; ``branch_first`` lists F(h) first in every Add. Its weights depend
    on nothing else (seeded initialisers). Returns the model and its named tensors (block
    inputs ``h*`` and branches ``f*``)."""
    seeds = iter(range(100))

    def conv(filters, kernel, strides=1):
        initializer = keras.initializers.GlorotUniform(seed=next(seeds))
        return layers.Conv2D(filters, kernel, strides=strides, padding="same",
                             kernel_initializer=initializer)

    def merge(name, shortcut, branch):
        return layers.Add(name=name)([branch, shortcut] if branch_first else [shortcut, branch])

    def preact(x):
        return layers.ReLU()(layers.BatchNormalization()(x))

    inputs = keras.Input((8, 8, 3))
    tensors = {"h0": conv(8, 3)(inputs)}
    for i in range(2):
        x = tensors[f"h{i}"]
        tensors[f"f{i}"] = conv(8, 3)(preact(x))
        tensors[f"h{i + 1}"] = merge(f"add{i}", x, tensors[f"f{i}"])
    pre = preact(tensors["h2"])
    tensors["f2"] = conv(16, 3, strides=2)(pre)
    tensors["h3"] = merge("add2", conv(16, 1, strides=2)(pre), tensors["f2"])
    tensors["f3"] = conv(16, 3)(preact(tensors["h3"]))
    x = merge("add3", tensors["h3"], tensors["f3"])
    x = layers.GlobalAveragePooling2D()(preact(x))
    dense = layers.Dense(10, kernel_initializer=keras.initializers.GlorotUniform(seed=99))
    return keras.Model(inputs, (head or dense)(x)), tensors


@pytest.mark.parametrize("branch_first", [False, True])
def test_a_functional_net_s_add_blocks_are_found_in_either_input_order(branch_first):
    model, _ = foreign_preact_net(branch_first)
    chain = ResidualChain(model)
    assert [b.unit.name for b in chain.blocks] == ["add0", "add1", "add2", "add3"]
    assert [b.unit.changes_shape for b in chain.blocks] == [False, False, True, False]
    assert [b.unit.shortcut is None for b in chain.blocks] == [True, True, False, True]
    assert [(b.stage, b.index_in_stage) for b in chain.blocks] == [(1, 0), (1, 1), (2, 0), (2, 1)]
    assert [bool(b.before) for b in chain.blocks] == [True, False, True, False]
    images = IMAGES[:, :8, :8]
    np.testing.assert_allclose(chain.forward(images), model(images), atol=1e-5)
    inputs, parts, logits = chain.hidden_states(images)
    np.testing.assert_allclose(logits, model(images), atol=1e-5)
    assert parts[2].shortcut.shape == parts[2].residual.shape == (3, 4, 4, 16)


def test_the_graph_path_runs_the_model_s_own_layers_and_drops_a_zero_branch():
    model, tensors = foreign_preact_net()
    chain, images = ResidualChain(model), IMAGES[:, :8, :8]
    probe = keras.Model(model.inputs[0], [tensors["h1"], tensors["f1"]])
    h1, f1 = probe(images)
    inputs, parts, logits = chain.hidden_states(images)
    np.testing.assert_allclose(inputs[1], h1, atol=1e-6)
    np.testing.assert_allclose(parts[1].residual, f1, atol=1e-6)
    h2 = chain.block_input(2, inputs[1])  # block 1 dropped: h_2 = h_1 + 0, then block 2's BN-ReLU
    np.testing.assert_allclose(chain.run_from(1, inputs[1], drop=1), chain.run_from(2, h2),
                               atol=1e-5)


def test_post_activation_after_the_add_belongs_to_the_block():
    inputs = keras.Input((8, 8, 4))
    x = inputs
    for i in range(2):
        inner = layers.ReLU()(layers.Conv2D(4, 3, padding="same")(x))
        branch = layers.Conv2D(4, 3, padding="same")(inner)
        x = layers.ReLU(name=f"out{i}")(layers.Add(name=f"add{i}")([x, branch]))
    chain = ResidualChain(keras.Model(inputs, layers.Dense(3)(layers.Flatten()(x))))
    assert [[layer.name for layer in b.unit.after] for b in chain.blocks] == [["out0"], ["out1"]]
    inputs_, _, _ = chain.hidden_states(IMAGES[:, :8, :8, :1].repeat(4, axis=-1))
    assert float(np.min(inputs_[1])) >= 0.0  # h_1 is the first block's ReLU output


def test_keras_applications_resnets_at_32x32_have_16_blocks_in_stages():
    v2 = keras.applications.ResNet50V2(weights=None, input_shape=(32, 32, 3), classes=10,
                                       classifier_activation=None)
    chain = ResidualChain(v2)
    assert len(chain) == 16
    # V2 widens with a 1x1 conv at a stack's first block and subsamples with a 1x1 max-pooling
    # shortcut at its last: both change the shape, and each starts a stage.
    assert [b.index for b in chain.blocks if b.unit.changes_shape] == [0, 2, 3, 6, 7, 12, 13]
    v1 = keras.applications.ResNet50(weights=None, input_shape=(32, 32, 3), classes=10,
                                     classifier_activation=None)
    chain = ResidualChain(v1)
    assert len(chain) == 16 and chain.blocks[-1].stage == 4
    assert all(b.unit.after and b.unit.after[0].name.endswith("_out") for b in chain.blocks)


def test_a_softmax_output_is_refused():
    model, _ = foreign_preact_net(head=layers.Dense(10, activation="softmax"))
    with pytest.raises(ValueError, match="needs logits"):
        ResidualChain(model)


def test_a_head_reading_an_earlier_state_is_not_a_chain():
    inputs = keras.Input((8, 8, 4))
    x = layers.Add()([inputs, layers.Conv2D(4, 3, padding="same")(inputs)])
    skip = layers.Concatenate()([layers.Conv2D(4, 1)(x), inputs])  # reads the image again
    model = keras.Model(inputs, layers.Dense(3)(layers.Flatten()(skip)))
    with pytest.raises(ValueError, match="not a chain of residual blocks.*bypasses"):
        ResidualChain(model)


def test_a_branch_reading_the_image_too_is_not_a_chain():
    inputs = keras.Input((8, 8, 4))
    stem = layers.Conv2D(4, 1)(inputs)
    branch = layers.Conv2D(4, 1)(layers.Concatenate()([stem, inputs]))
    model = keras.Model(inputs, layers.Flatten()(layers.Add()([stem, branch])))
    with pytest.raises(ValueError, match="also reads .*not a chain of residual blocks"):
        ResidualChain(model)


def test_two_paths_of_equal_length_are_refused():
    inputs = keras.Input((8, 8, 4))
    stem = layers.Conv2D(4, 1)(inputs)
    x = layers.Add()([layers.Conv2D(4, 3, padding="same")(stem),
                      layers.Conv2D(4, 3, padding="same")(stem)])
    with pytest.raises(ValueError, match="Cannot tell the shortcut from the branch"):
        ResidualChain(keras.Model(inputs, layers.Dense(3)(layers.Flatten()(x))))


@pytest.mark.parametrize("name", ["resnet8", "preact11"])
def test_a_zoo_model_s_functional_twin_has_the_same_blocks(name):
    zoo = keras_resnets.build(name, input_shape=(16, 16, 3))
    twin = functional_twin(zoo)
    assert not any(isinstance(layer, keras_resnets.ResidualUnit) for layer in twin.layers)
    zoo_chain, twin_chain = ResidualChain(zoo), ResidualChain(twin)
    assert ([b.unit.changes_shape for b in twin_chain.blocks]
            == [b.unit.changes_shape for b in zoo_chain.blocks])
    np.testing.assert_allclose(twin_chain.forward(IMAGES), zoo(IMAGES), atol=1e-5)
