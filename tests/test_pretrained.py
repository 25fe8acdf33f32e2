"""Shipped pretrained weights: they load, classify real CIFAR-10 test images, and refuse
models they do not fit."""

from pathlib import Path

import keras
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
        assert 0.85 < entry.test_accuracy < 1 and 100 < entry.epochs <= 200
        assert "50,000" in entry.training_data and entry.recipe and entry.trainer
        assert (Path(__file__).parents[1] / entry.record).is_file()


def test_unknown_weights_name_lists_what_exists():
    with pytest.raises(ValueError, match=r"No pretrained weights 'imagenet'.*preact20.*cifar10"):
        keras_resnets.build("preact20", weights="imagenet")
    with pytest.raises(ValueError, match=r"available: .*resnet20"):
        keras_resnets.build("preact110", weights="cifar10")


@pytest.mark.parametrize("kwargs, message", [
    ({"input_shape": (32, 32, 1)}, r"input_shape=\(32, 32, 1\) \(they take 3 channels\)"),
    ({"projection": "conv"}, "overrides"),
    ({"num_classes": 3, "classes": 4}, "classes is an alias of num_classes"),
])
def test_weights_refuse_another_architecture_or_channel_count(kwargs, message):
    with pytest.raises(ValueError, match=message):
        keras_resnets.build("preact20", weights="cifar10", **kwargs)


def weighted_layers(model) -> list[str]:
    """The names of a model's layers that hold weights, in order."""
    return [layer.name for layer in model.layers if layer.weights]


@pytest.fixture(scope="module")
def preact20():
    """The shipped preact20 with its CIFAR-10 classifier."""
    return keras_resnets.build("preact20", weights="cifar10")


def test_body_without_the_top_gives_the_pretrained_models_pooled_features(preact20,
                                                                         test_images):
    images, _ = test_images
    body = keras_resnets.build("preact20", weights="cifar10", include_top=False, pooling="avg")
    pooled = keras.Model(preact20.input, preact20.get_layer("pool").output)
    features = body.predict(images, verbose=0)
    assert features.shape == (16, 64)
    np.testing.assert_allclose(features, pooled.predict(images, verbose=0), atol=1e-5)
    assert body.pretrained_layers == tuple(weighted_layers(body))
    assert "logits" in preact20.pretrained_layers and "logits" not in body.pretrained_layers


def test_another_class_count_keeps_the_pretrained_body_and_starts_a_fresh_classifier(
        preact20):
    model = keras_resnets.build("preact20", weights="cifar10", num_classes=100)
    body = [name for name in weighted_layers(model) if name != "logits"]
    assert model.pretrained_layers == tuple(body) and model.output_shape == (None, 100)
    for name in body:
        for mine, theirs in zip(model.get_layer(name).get_weights(),
                                preact20.get_layer(name).get_weights()):
            np.testing.assert_array_equal(mine, theirs)
    kernel, bias = model.get_layer("logits").get_weights()
    assert kernel.shape == (64, 100) and not bias.any()  # freshly initialised
    assert preact20.get_layer("logits").get_weights()[1].any()


def test_probabilities_are_the_softmax_of_the_pretrained_logits(preact20, test_images):
    images, _ = test_images
    model = keras_resnets.build("preact20", weights="cifar10", classifier_activation="softmax")
    np.testing.assert_allclose(model.predict(images, verbose=0),
                               keras.ops.softmax(preact20.predict(images, verbose=0)),
                               atol=1e-5)


def test_fine_tuning_the_cifar10_weights_on_a_two_class_task(preact20):
    keras.utils.set_random_seed(0)
    # The example of docs/pretrained.md, as is:
    # CIFAR-10 weights -> vehicles vs animals: the body loads, the classifier starts fresh.
    model = keras_resnets.build("preact20", weights="cifar10", num_classes=2)
    for name in model.pretrained_layers:  # freeze the pretrained body (or fine-tune it all)
        model.get_layer(name).trainable = False
    model.compile(optimizer=keras.optimizers.Adam(1e-2),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    with np.load(FIXTURE) as data:  # raw 0..255 images: the model standardises them
        images, labels = data["images"], data["labels"]
    vehicle = np.isin(labels, [0, 1, 8, 9]).astype("int32")  # airplane, automobile, ship, truck
    history = model.fit(images, vehicle, batch_size=8, epochs=5, verbose=0)

    losses = history.history["loss"]
    assert losses[-1] < 0.5 * losses[0]
    assert (model.predict(images, verbose=0).argmax(1) == vehicle).sum() >= 14
    for name in model.pretrained_layers:  # frozen: BN statistics too
        for mine, theirs in zip(model.get_layer(name).get_weights(),
                                preact20.get_layer(name).get_weights()):
            np.testing.assert_array_equal(mine, theirs)


def test_weights_file_loads_whole_and_a_mismatch_is_one_line(tmp_path):
    saved = keras_resnets.build("resnet8", input_shape=(8, 8, 3))
    for weight in saved.weights:
        weight.assign(np.random.default_rng(0).normal(size=weight.shape).astype("float32"))
    path = tmp_path / "resnet8.weights.h5"
    saved.save_weights(path)
    images = np.random.default_rng(1).normal(size=(2, 8, 8, 3)).astype("float32")
    for weights in (path, str(path)):
        loaded = keras_resnets.build("resnet8", input_shape=(8, 8, 3), weights=weights)
        np.testing.assert_allclose(loaded(images), saved(images), atol=1e-6)
        assert loaded.pretrained_layers == tuple(weighted_layers(loaded))
    for kwargs, message in [
            ({"num_classes": 3}, r"layers/dense/vars/0 is \(64, 10\) in the file, \(64, 3\)"),
            ({"include_top": False}, "the model has no layers/dense/vars/0"),
            ({"projection": "conv"}, "the file lacks")]:
        with pytest.raises(ValueError, match=message) as error:
            keras_resnets.build("resnet8", input_shape=(8, 8, 3), weights=path, **kwargs)
        assert "\n" not in str(error.value)
    with pytest.raises(ValueError, match="is not a .weights.h5 file; weights are None"):
        keras_resnets.build("resnet8", weights=str(tmp_path / "missing.weights.h5"))


def test_list_models_can_list_only_the_nets_with_shipped_weights():
    shipped = keras_resnets.list_models(pretrained=True)
    assert sorted(shipped) == sorted({model for model, _ in pretrained.PRETRAINED})
    assert keras_resnets.list_models("preact*", pretrained=True) == ["preact20"]
    assert len(keras_resnets.list_models()) > len(shipped)


def test_describe_carries_how_the_weights_were_made():
    made = keras_resnets.describe("preact20")["pretrained"]["cifar10"]
    assert (made["dataset"], made["num_classes"], made["test_accuracy"], made["epochs"]) == (
        "cifar10", 10, 0.8915, 153)
    assert "He et al. 2016" in made["recipe"] and "JPEG" in made["training_data"]
    assert made["record"] == "results/pretrained/runs.csv" and "H200" in made["trainer"]
    ported = keras_resnets.describe("resnet56")["pretrained"]["akamaster"]
    assert ported["epochs"] == 200 and "not trained here" in ported["source"]
    assert keras_resnets.describe("preact110")["pretrained"] == {}


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
