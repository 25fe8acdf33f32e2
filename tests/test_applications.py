"""keras.applications' arguments (include_top, pooling, classes, classifier_activation) and
keras-hub's pyramid_outputs on every kind of zoo model; both survive a .keras file."""

import keras
import numpy as np
import pytest

import keras_resnets
from keras_resnets.pretrained import copy_fitting_weights

SHAPE = (8, 8, 3)
IMAGES = np.random.default_rng(3).normal(size=(2, *SHAPE)).astype("float32")


def build(name="preact8", **kwargs):
    """A small zoo model on 8x8 images."""
    return keras_resnets.build(name, input_shape=SHAPE, **kwargs)


def test_default_arguments_keep_the_zoo_model():
    model = build("resnet20")
    assert model.name == "resnet20" and model.layers[-1].name == "logits"
    assert model.output_shape == (None, 10) and model.layers[-1].activation.__name__ == "linear"
    assert keras_resnets.count_parameters(model) == 269_722
    assert model.pretrained_layers == ()


@pytest.mark.parametrize("pooling, shape, reduce", [
    (None, (2, 2, 2, 64), lambda x: x),
    ("avg", (2, 64), lambda x: x.mean(axis=(1, 2))),
    ("max", (2, 64), lambda x: x.max(axis=(1, 2))),
])
def test_without_the_top_the_body_gives_its_last_feature_map_or_its_pooling(pooling, shape,
                                                                           reduce):
    """The body ends after pre-activation nets' final BN-ReLU, as keras.applications' ResNetV2."""
    full = build()
    body = build(include_top=False, pooling=pooling)
    assert copy_fitting_weights(full, body)
    assert "logits" not in [layer.name for layer in body.layers]
    last_map = keras.Model(full.input, full.get_layer("final_relu").output)(IMAGES)
    features = np.asarray(body(IMAGES))
    assert features.shape == shape
    np.testing.assert_allclose(features, reduce(np.asarray(last_map)), atol=1e-5)


def test_classifier_activation_applies_to_the_logits():
    logits_model = build()
    model = build(classifier_activation="softmax")
    model.set_weights(logits_model.get_weights())
    probabilities = np.asarray(model(IMAGES))
    np.testing.assert_allclose(probabilities, keras.ops.softmax(logits_model(IMAGES)), atol=1e-6)
    assert model.get_layer("logits").activation.__name__ == "linear"  # still logits


def test_classes_is_keras_applications_name_for_num_classes():
    assert build(classes=3).output_shape == (None, 3)
    assert build(num_classes=3, classes=3).output_shape == (None, 3)


@pytest.mark.parametrize("kwargs, message", [
    ({"pooling": "avg"}, "with include_top=True the classifier pools, so pooling must be None"),
    ({"include_top": False, "pooling": "mean"}, "pooling is None (the last feature map), 'avg' "
                                                "or 'max'"),
    ({"include_top": False, "classifier_activation": "softmax"}, "needs include_top=True"),
    ({"classifier_activation": "sofmax"}, "None (logits) or a Keras activation such as"),
    ({"include_top": "no"}, "include_top must be True or False"),
    ({"num_classes": 3, "classes": 4}, "num_classes=3 and classes=4 differ"),
])
def test_top_arguments_that_make_no_model_or_do_nothing_are_refused(kwargs, message):
    with pytest.raises(ValueError, match="^'preact8': ") as error:
        build(**kwargs)
    assert message in str(error.value)


# One model per way a stage is made: He et al.'s units (post- and pre-activation), Jastrzebski
# et al.'s blocks (strided, or average pooling between stages; one stage only), shared stacks.
PYRAMIDS = {
    "resnet8": ({}, {"P0": (8, 8, 16), "P1": (4, 4, 32), "P2": (2, 2, 64)}),
    "preact8": ({}, {"P0": (8, 8, 16), "P1": (4, 4, 32), "P2": (2, 2, 64)}),
    "j18-resnet110": ({"blocks": 1, "filters": 4}, {"P0": (8, 8, 4), "P1": (4, 4, 4),
                                                    "P2": (2, 2, 4)}),
    "j18-avgpool": ({"blocks": 1, "filters": 4}, {"P0": (8, 8, 4), "P1": (4, 4, 4),
                                                  "P2": (2, 2, 4)}),
    "j18-single": ({"blocks": 1, "filters": 4}, {"P0": (8, 8, 4)}),
    "resnet14-shared": ({"shared_blocks": 1}, {"P0": (8, 8, 16), "P1": (4, 4, 32),
                                               "P2": (2, 2, 64)}),
}


@pytest.mark.parametrize("name", sorted(PYRAMIDS))
def test_pyramid_outputs_are_each_stages_output(name):
    overrides, shapes = PYRAMIDS[name]
    model = build(name, **overrides)
    stages = keras.Model(model.input, model.pyramid_outputs)
    outputs = stages(IMAGES)
    assert {key: tuple(value.shape[1:]) for key, value in outputs.items()} == shapes
    last_stage = [layer for layer in model.layers if getattr(layer, "stage", None)][-1]
    np.testing.assert_allclose(outputs[max(shapes)],
                               keras.Model(model.input, last_stage.output)(IMAGES), atol=1e-6)
    head = model.get_layer("final_bn" if "final_bn" in [layer.name for layer in model.layers]
                           else "pool")
    np.testing.assert_allclose(outputs[max(shapes)],
                               keras.Model(model.input, head.input)(IMAGES), atol=1e-6)


def test_stages_are_found_by_what_the_units_record_not_by_layer_names():
    model = build("resnet8")
    renamed = keras.Model(model.input, model.output)
    for index, layer in enumerate(renamed.layers):
        layer.name = f"layer{index}"  # what a user's own naming would do
    assert list(keras_resnets.pyramid_outputs(renamed)) == ["P0", "P1", "P2"]
    with pytest.raises(ValueError, match="has no layer that records its stage"):
        keras_resnets.pyramid_outputs(keras.Sequential([keras.Input(SHAPE),
                                                        keras.layers.Flatten()]))


def test_a_model_without_the_top_round_trips_a_keras_file_with_its_pyramid(tmp_path):
    model = build("preact14-shared-bn", shared_blocks=1, include_top=False)
    for weight in model.weights:
        weight.assign(weight.numpy() * np.random.default_rng(0).uniform(0.5, 1.5, weight.shape))
    model.save(tmp_path / "body.keras")
    loaded = keras.models.load_model(tmp_path / "body.keras")
    np.testing.assert_allclose(loaded(IMAGES), model(IMAGES), atol=1e-5)
    assert loaded.output_shape == (None, 2, 2, 64)
    pyramid = keras.Model(model.input, model.pyramid_outputs)(IMAGES)
    again = keras.Model(loaded.input, keras_resnets.pyramid_outputs(loaded))(IMAGES)
    assert list(again) == ["P0", "P1", "P2"]
    for key in pyramid:
        np.testing.assert_allclose(again[key], pyramid[key], atol=1e-5)
