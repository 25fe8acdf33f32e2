"""Jastrzebski et al. 2018 Table 1: the sharing models' parameter counts lie in the paper's
ranges (keras_resnets.paper.SHARING_PARAMETER_RANGES)."""

import pytest

import keras_resnets
from keras_resnets import paper
from keras_resnets.registry import resolve


@pytest.mark.parametrize("name", sorted(paper.SHARING_PARAMETER_RANGES))
def test_table1_parameter_count_in_the_papers_range(name):
    low, high = paper.SHARING_PARAMETER_RANGES[name]
    count = keras_resnets.count_parameters(keras_resnets.build(name))
    assert 1000 * low <= count <= 1000 * high, (name, count)


def test_table1_ubn_models_share_convs_with_the_remedy():
    for name, shared in (("j18-resnet110-ubn", 13), ("j18-resnet146-ubn", 19),
                         ("j18-resnet182-ubn", 25)):
        settings = resolve(name)
        assert settings["shared_blocks"] == shared and settings["share_batchnorm"] is False
        assert settings["ordering"] == "preact" and settings["conv_bias"]
    assert resolve("j18-resnet110-shared")["share_batchnorm"] is True
    assert {"j18-resnet32", "j18-resnet110-ubn"} <= set(keras_resnets.list_models("j18-*"))
