"""``build`` and ``resolve`` refuse settings that make no model, before any work: non-finite
numbers, impossible class counts and image shapes, and networks far beyond the papers' sizes."""

import time

import numpy as np
import pytest

import keras_resnets
from keras_resnets import registry
from keras_resnets.parameters import count_parameters, estimate_size
from keras_resnets.registry import resolve


@pytest.mark.parametrize("name, overrides", [
    ("resnet8-gate-exclusive", {"gate_bias": float("nan")}),
    ("resnet8-scale0.5", {"shortcut_scale": float("inf")}),
    ("resnet8-scale0.5-both", {"branch_scale": -float("inf")}),
    ("resnet8-dropout-shortcut", {"shortcut_dropout": float("nan")}),
    ("wrn10-2", {"dropout_rate": float("nan")}),
    ("resnet8", {"weight_decay": float("inf")}),
    ("resnet8", {"standardize": ((120.0, float("nan"), 100.0), (60.0, 50.0, 40.0))}),
    ("resnet14-shared-bn", {"shared_blocks": 1, "share_batchnorm": {"gamma_init": float("nan")}}),
    ("resnet8-gate-exclusive", {"gate_bias": np.float32("nan")}),
])
def test_non_finite_settings_are_refused(name, overrides):
    for call in (keras_resnets.build, resolve):
        with pytest.raises(ValueError, match="must be finite"):
            call(name, **overrides)


@pytest.mark.parametrize("input_shape", [(0, 0, 3), (-32, 32, 3), (32, 32), (32.0, 32, 3),
                                         (True, 32, 3), (32, 32, 0), 32, "32x32x3"])
def test_impossible_input_shapes_are_refused(input_shape):
    with pytest.raises(ValueError, match="input_shape must be \\(height, width, channels\\)"):
        keras_resnets.build("resnet8", input_shape=input_shape)
    with pytest.raises(ValueError, match="input_shape must be"):
        resolve("resnet8", input_shape=input_shape)


@pytest.mark.parametrize("num_classes", [True, False, 0, -1, 2.5, 10.0, "10", None])
def test_impossible_class_counts_are_refused(num_classes):
    with pytest.raises(ValueError, match="num_classes must be a positive integer"):
        keras_resnets.build("resnet8", num_classes=num_classes)
    with pytest.raises(ValueError, match="num_classes must be a positive integer"):
        keras_resnets.build("resnet20", num_classes=num_classes, weights="cifar10")


def test_a_mistyped_depth_is_refused_at_once_with_its_estimate():
    started = time.perf_counter()
    with pytest.raises(ValueError) as error:
        keras_resnets.build("preact100001")
    assert time.perf_counter() - started < 5
    message = str(error.value)
    assert "'preact100001' would have about" in message and "allow_large=True" in message
    parameters, layers = estimate_size(resolve("preact100001", allow_large=True))
    assert f"{parameters:,} parameters" in message and f"{layers:,} weighted layers" in message
    assert parameters > registry.MAX_PARAMETERS and layers > registry.MAX_LAYERS
    with pytest.raises(ValueError, match="would have about"):
        resolve("preact100001")  # what the trainer checks before writing anything
    with pytest.raises(ValueError, match="would have about"):
        resolve("wrn16-64")  # 1024 to 4096 filters: about 700M parameters
    assert resolve("wrn16-64", allow_large=True)["widen"] == 64


def test_narrow_but_very_deep_networks_are_refused_too():
    with pytest.raises(ValueError, match="weighted layers"):
        resolve("j18-resnet110", blocks=3000, filters=1)


def test_every_listed_model_is_within_the_limits():
    for name in keras_resnets.list_models():
        resolve(name)  # resnet1202 (19.4M, 1,202 layers), j18-wrn (45.7M) included


@pytest.mark.parametrize("name, overrides", [
    ("resnet20", {}), ("preact164", {}), ("wrn16-4", {}), ("resnet110-gate-exclusive", {}),
    ("resnet20-conv-shortcut", {}), ("j18-resnet110", {}), ("j18-avgpool", {}),
    ("resnet14-shared-bn", {"shared_blocks": 1}), ("preact20-1conv", {})])
def test_the_estimate_is_close_to_the_built_count(name, overrides, zoo_model):
    estimate, _ = estimate_size(resolve(name, input_shape=(8, 8, 3), **overrides))
    counted = count_parameters(zoo_model(name, **overrides))
    assert abs(estimate - counted) <= 0.03 * counted, (estimate, counted)
