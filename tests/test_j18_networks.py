"""Jastrzebski et al. 2018's networks (their experimental setup): the paper's exact parameter
counts, their structure on 32x32 images, and the blocks/filters overrides of reduced-scale runs."""

import numpy as np
import pytest

import keras_resnets
from keras_resnets import paper

COUNTS = {"j18-resnet110": 1_742_762, "j18-single": 1_829_210, "j18-avgpool": 12_201_310,
          "j18-wrn": 45_732_842}  # the WRN's composition is the zoo's (keras_resnets.registry)
SMALL = {"blocks": 1, "filters": 4}
PROJECTIONS = {"j18-resnet110": 2, "j18-single": 0, "j18-avgpool": 0, "j18-wrn": 3}


def small(name, **overrides):
    return keras_resnets.build(name, input_shape=(32, 32, 3), **{**SMALL, **overrides})


def units(model):
    return [layer for layer in model.layers if isinstance(layer, keras_resnets.ResidualUnit)]


def convs(model):
    return [model.get_layer("stem_conv1")] + [conv for unit in units(model)
                                              for conv in unit.convolutions()]


@pytest.mark.parametrize("name", sorted(COUNTS))
def test_parameter_counts_are_the_papers_exactly(name, zoo_model):
    """Keras's count_params(): conv biases and BN's gamma, beta, moving mean and variance."""
    model = zoo_model(name)  # the classifier keeps its grid, so the count is the 32x32 one
    assert model.count_params() == COUNTS[name]
    assert keras_resnets.count_parameters(model, include_statistics=True) == COUNTS[name]
    assert paper.PARAMETERS[name].figure == f"{COUNTS[name]:,}"
    assert keras_resnets.describe(name)["paper_parameters"] == f"{COUNTS[name]:,}"


@pytest.mark.parametrize("name", sorted(COUNTS))
def test_each_net_runs_and_has_the_papers_structure(name):
    """On 32x32 images: AvgPool(8,8) then Flatten then the dense layer; every conv has a
    zero-initialised bias; 1x1 projections only where the shape changes."""
    model = small(name)
    images = np.random.default_rng(0).normal(size=(2, 32, 32, 3)).astype("float32")
    logits = np.asarray(model(images, training=False))
    assert logits.shape == (2, 10) and np.isfinite(logits).all()
    assert model.get_layer("pool").pool_size == (8, 8)
    assert model.get_layer("logits").kernel.shape[0] == (16 * 4 if name == "j18-single" else 4)
    assert all(conv.use_bias and not np.any(conv.bias.numpy()) for conv in convs(model))
    assert sum(conv.kernel_size == (1, 1) for conv in convs(model)) == PROJECTIONS[name]


# Jastrzebski et al. 2018, experimental setup, as printed: blocks and filters per stage, the stage's
# size on 32x32 images, and the first 3x3 conv's filters (not given for the wide ResNet).
PAPER_NETWORKS = {
    "j18-resnet110": ((18, 18, 18), (16, 32, 64), (32, 16, 8), 16),
    "j18-single": ((10,), (100,), (32,), 100),
    "j18-avgpool": ((10, 10, 10), (150, 150, 150), (32, 16, 8), 150),
    "j18-wrn": ((4, 4, 4), (160, 320, 640), (32, 16, 8), None),
}
# The paper's WRN composition is not given: the zoo opens stages 2 and 3 with one more block
# (strided, 1x1 projection), which gives the paper's 45,732,842 parameters exactly.
ZOO_EXTRA_BLOCKS = {"j18-wrn": (0, 1, 1)}


@pytest.mark.parametrize("name", sorted(PAPER_NETWORKS))
def test_each_net_has_the_papers_blocks_filters_and_sizes(name, zoo_model):
    blocks, filters, sizes, stem = PAPER_NETWORKS[name]
    blocks = tuple(b + e for b, e in zip(blocks, ZOO_EXTRA_BLOCKS.get(name, (0, 0, 0))))
    model = zoo_model(name)  # on 8x8 images: every size a quarter of the 32x32 one
    stages = {}
    for unit in units(model):
        stages.setdefault(unit.stage, []).append(unit)
    assert tuple(len(stage) for stage in stages.values()) == blocks
    assert tuple({unit.filters for unit in stage} for stage in stages.values()) == tuple(
        {f} for f in filters)
    assert tuple({unit.output.shape[1] for unit in stage} for stage in stages.values()) == tuple(
        {size // 4} for size in sizes)
    if stem is not None:
        assert model.get_layer("stem_conv1").filters == stem
    settings = keras_resnets.describe(name)  # what the registry tells users
    assert (settings["units_per_stage"], settings["widths"]) == (blocks, filters)


@pytest.mark.parametrize("name", sorted(COUNTS))
def test_overrides_shrink_the_net(name):
    model = small(name)
    assert model.count_params() < COUNTS[name]
    stages = len(keras_resnets.describe(name)["widths"])
    assert len(units(model)) == stages and {unit.filters for unit in units(model)} == {4}


def test_per_stage_overrides_and_the_stem():
    """The stem has the first stage's width, except in the wide ResNet (16 filters)."""
    model = small("j18-wrn", blocks=(1, 2, 2), filters=(4, 8, 16))
    assert [unit.filters for unit in units(model)] == [4, 8, 8, 16, 16]
    assert model.get_layer("stem_conv1").filters == 16
    assert small("j18-single", filters=6).get_layer("stem_conv1").filters == 6


@pytest.mark.parametrize("name, overrides, message", [
    ("j18-resnet110", {"filters": (16, 32)},
     "'j18-resnet110': filters must be a positive integer (for every stage) or 3 positive "
     "integers (one per stage; the paper's: (16, 32, 64)); got (16, 32)."),
    ("j18-single", {"blocks": 0}, "blocks must be a positive integer"),
    ("j18-wrn", {"blocks": 2.5}, "or 3 positive integers"),
    ("j18-avgpool", {"widen": 2}, "takes no override widen; accepted: blocks, filters"),
    ("j18-avgpool", {"filter": 8}, "did you mean 'filters'?"),
])
def test_bad_overrides_say_what_is_accepted(name, overrides, message):
    with pytest.raises(ValueError) as error:
        keras_resnets.build(name, **overrides)
    assert message in str(error.value)


def test_the_classifier_needs_a_map_it_can_pool_to_its_grid():
    with pytest.raises(ValueError, match="sides are multiples of 4; got \\(30, 30\\)"):
        keras_resnets.build("j18-single", input_shape=(30, 30, 3), **SMALL)
