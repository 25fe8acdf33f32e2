"""Shipped pretrained weights: they load, classify real CIFAR-10 test images, and refuse
models they do not fit."""

from pathlib import Path

import numpy as np
import pytest

import keras_resnets
from keras_resnets import pretrained

FIXTURE = Path(__file__).parent / "fixtures" / "cifar10-test-first16.npz"


@pytest.fixture(scope="module")
def test_images():
    """The first 16 images of the official CIFAR-10 test batch (uint8) and their labels."""
    with np.load(FIXTURE) as saved:
        return saved["images"], saved["labels"]


@pytest.mark.parametrize("name", ["preact20", "resnet20"])
def test_pretrained_model_classifies_real_test_images(name, test_images):
    images, labels = test_images
    model = keras_resnets.build(name, weights="cifar10")
    predicted = model.predict(images, verbose=0).argmax(axis=1)
    # ~89% test accuracy; on these 16 the runs got 16/16 (preact20) and 15/16 (resnet20).
    assert (predicted == labels).sum() >= 15
    assert model.get_layer("standardize") is not None  # takes raw 0..255 images


def test_every_entry_has_its_file_and_a_description():
    for entry in pretrained.PRETRAINED.values():
        assert entry.path.is_file() and entry.path.stat().st_size < 5_000_000
        assert 0.85 < entry.test_accuracy < 1 and "epochs" in entry.trained


def test_unknown_weights_name_lists_what_exists():
    with pytest.raises(ValueError, match=r"No pretrained weights 'imagenet'.*preact20.*cifar10"):
        keras_resnets.build("preact20", weights="imagenet")
    with pytest.raises(ValueError, match=r"available: .*resnet20"):
        keras_resnets.build("preact110", weights="cifar10")


@pytest.mark.parametrize("kwargs, message", [
    ({"num_classes": 100}, "num_classes=100"),
    ({"input_shape": (64, 64, 3)}, r"input_shape=\(64, 64, 3\)"),
    ({"projection": "conv"}, "overrides"),
])
def test_weights_refuse_another_shape_or_class_count(kwargs, message):
    with pytest.raises(ValueError, match=message):
        keras_resnets.build("preact20", weights="cifar10", **kwargs)


AKAMASTER_LOGITS = Path(__file__).parent / "fixtures" / "akamaster-first16-logits.npz"


@pytest.mark.parametrize("name", ["resnet20", "resnet32", "resnet44", "resnet56"])
def test_ported_akamaster_weights_classify_like_the_pytorch_originals(name, test_images):
    """The fixture holds the original PyTorch models' logits on the 16 images
    (benchmarks/akamaster_accuracy.py --fixture): the shipped converted weights give them."""
    images, labels = test_images
    model = keras_resnets.build(name, weights="akamaster")
    logits = model.predict(images, verbose=0)
    with np.load(AKAMASTER_LOGITS) as saved:
        expected = saved[name]
    np.testing.assert_allclose(logits, expected, atol=1e-4)
    assert (logits.argmax(1) == expected.argmax(1)).all()
    assert (logits.argmax(1) == labels).sum() >= 15


def test_ported_weights_say_where_they_come_from():
    entry = pretrained.find("resnet56", "akamaster")
    assert entry.settings == {"strided_padding": "symmetric", "pad_placement": "centred"}
    assert "not trained here" in entry.source and "BSD-2-Clause" in entry.source
    assert (pretrained.WEIGHTS_DIR / "LICENSE-akamaster.txt").read_text().startswith(
        "Copyright (c) 2018, Yerlan Idelbayev")
    described = keras_resnets.describe("resnet56")["pretrained"]
    assert described["akamaster"]["source"] == entry.source
    assert described["akamaster"]["test_accuracy"] == entry.test_accuracy
    assert keras_resnets.describe("resnet20")["pretrained"]["cifar10"]["source"] == "trained here"
    for cifar10 in ("preact20", "resnet20"):  # trained before the symmetric geometry
        assert pretrained.find(cifar10, "cifar10").settings == {"strided_padding": "same"}
