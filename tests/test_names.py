"""The model-name grammar: every zoo name reads back to itself; names outside it are None."""

import pytest

import keras_resnets
from keras_resnets.names import ModelName, format_name, parse_name
from keras_resnets.registry import NETWORKS


@pytest.mark.parametrize("name", [n for n in keras_resnets.list_models() if n not in NETWORKS])
def test_every_listed_name_reads_back_to_itself(name):
    parts = parse_name(name)
    assert parts is not None and str(parts) == name


def test_parts_and_widen_only_for_wide_resnets():
    assert parse_name("wrn28-10-shared") == ModelName("wrn", 28, 10, "shared")
    assert parse_name("resnet110-gate-exclusive") == ModelName("resnet", 110, 1, "gate-exclusive")
    assert format_name("resnet", 20, widen=4) == "resnet20"
    assert format_name("wrn", 16, widen=8, variant="shared-bn") == "wrn16-8-shared-bn"


@pytest.mark.parametrize("name", ["j18-single", "resnet", "ResNet110", "resnet-110", ""])
def test_names_outside_the_grammar_are_none(name):
    assert parse_name(name) is None
