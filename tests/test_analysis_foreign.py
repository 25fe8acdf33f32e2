"""analysis.frames on foreign Keras models: blocks found from the functional graph, measured by
the same code as the zoo's, checked against a hand-written GradientTape and against the zoo
path on a zoo model rebuilt from its own layers."""

import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from test_chain import foreign_preact_net

import keras_resnets
from analysis.frames import analyze
from keras_resnets.graph import functional_twin

pytestmark = pytest.mark.slow  # pytest -m 'not slow' skips this module

FEW = {"steps": 2, "alphas": (1.0, 0.5), "progress": False}


def dataset(shape, n=8, batch_size=8):
    images = tf.random.stateless_normal((n, *shape), seed=[0, 1])
    labels = tf.random.stateless_uniform((n,), seed=[0, 2], maxval=10, dtype=tf.int32)
    return tf.data.Dataset.from_tensor_slices((images, labels)).batch(batch_size)


def test_cosine_and_l2_ratio_match_a_hand_written_gradient_tape():
    model, tensors = foreign_preact_net()
    data = dataset((8, 8, 3))
    blocks = analyze(model, data, "cosine,l2", progress=False).blocks
    images, labels = next(iter(data))
    probe = keras.Model(model.inputs[0], [tensors["h1"], tensors["f1"], model.outputs[0]])
    with tf.GradientTape() as tape:
        tape.watch(images)
        h1, f1, logits = probe(images, training=False)
        loss = tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits))
    gradient = tape.gradient(loss, h1)  # dL/dh_1 (block 1 keeps the shape)
    flat_f, flat_g, flat_h = (tf.reshape(t, [8, -1]) for t in (f1, gradient, h1))
    cosine = tf.reduce_sum(flat_f * flat_g, 1) / (tf.norm(flat_f, axis=1) * tf.norm(flat_g, axis=1))
    ratio = tf.norm(flat_f, axis=1) / tf.norm(flat_h, axis=1)
    assert blocks["cosine"].iloc[1] == pytest.approx(float(tf.reduce_mean(cosine)), abs=1e-3)
    assert blocks["l2_ratio"].iloc[1] == pytest.approx(float(tf.reduce_mean(ratio)), abs=1e-3)
    assert list(blocks["gradient_wrt"]) == ["input", "input", "shortcut", "input"]


def test_every_measure_is_the_same_whichever_add_input_comes_first():
    shortcut_first, _ = foreign_preact_net(branch_first=False)
    branch_first, _ = foreign_preact_net(branch_first=True)  # the same weights
    data = dataset((8, 8, 3))
    first, second = (analyze(m, data, **FEW) for m in (shortcut_first, branch_first))
    numbers = first.blocks.drop(columns=["name"])
    pd.testing.assert_frame_equal(numbers, second.blocks.drop(columns=["name"]), atol=1e-5)
    pd.testing.assert_frame_equal(first.unroll, second.unroll, atol=1e-5)
    pd.testing.assert_frame_equal(first.borderline, second.borderline, atol=1e-5)
    # The head reads the last stage (blocks 2 and 3: 16 channels at 4x4) only.
    assert first.blocks["intermediate_accuracy"].notna().tolist() == [False, False, True, True]
    assert np.isfinite(first.blocks[["cosine", "l2_ratio", "drop_loss"]].to_numpy()).all()


@pytest.mark.parametrize("application", ["ResNet50V2", "ResNet50"])
def test_keras_applications_resnets_are_measured_block_by_block(application):
    model = getattr(keras.applications, application)(
        weights=None, input_shape=(32, 32, 3), classes=10, classifier_activation=None)
    blocks = analyze(model, dataset((32, 32, 3), n=2, batch_size=2), "cosine,l2",
                     progress=False).blocks
    assert len(blocks) == 16
    assert blocks["cosine"].between(-1, 1).all() and blocks["l2_ratio"].gt(0).all()
    assert (blocks["gradient_wrt"] == "shortcut").tolist() == blocks["changes_shape"].tolist()


@pytest.mark.parametrize("name", ["resnet20", "preact20"])
def test_a_zoo_model_gives_the_zoo_path_s_numbers_through_its_functional_twin(name):
    """The zoo path (units) and the graph path (Add layers of the same layers) agree, except
    where they read h_0 differently: the first unit of a pre-activation net (He et al. 2016)
    applies a BN-ReLU to its input and adds F to that, so the graph sees the BN-ReLU's output
    as h_0 (the Add's identity input) while the zoo counts the BN-ReLU inside unit 0."""
    zoo = keras_resnets.build(name, input_shape=(8, 8, 3))
    data = dataset((8, 8, 3))
    by_zoo, by_graph = (analyze(m, data, **FEW) for m in (zoo, functional_twin(zoo)))
    zoo_blocks, graph_blocks = (r.blocks.drop(columns=["name", "stage", "index_in_stage"])
                                for r in (by_zoo, by_graph))
    reads_preactivated_h0 = name.startswith("preact")
    if reads_preactivated_h0:
        columns = ["cosine", "cosine_std", "l2_ratio", "l2_ratio_std"]
        assert not np.allclose(zoo_blocks.loc[0, columns], graph_blocks.loc[0, columns])
        zoo_blocks, graph_blocks = zoo_blocks.iloc[1:], graph_blocks.iloc[1:]
    pd.testing.assert_frame_equal(zoo_blocks, graph_blocks, atol=1e-5)
    pd.testing.assert_frame_equal(by_zoo.unroll, by_graph.unroll, atol=1e-5)
    pd.testing.assert_frame_equal(by_zoo.borderline, by_graph.borderline, atol=1e-5)
    assert by_zoo.summary["loss"] == pytest.approx(by_graph.summary["loss"], rel=1e-5)


def unreadable(shape):
    """A dataset that fails if anything reads it."""
    def fail():
        raise AssertionError("the data was read")
        yield
    spec = (tf.TensorSpec((None, *shape), tf.float32), tf.TensorSpec((None,), tf.int32))
    return tf.data.Dataset.from_generator(fail, output_signature=spec)


def test_a_model_without_residual_blocks_is_refused_before_any_data_is_read():
    inputs = keras.Input((8, 8, 3))
    plain = keras.Model(inputs, keras.layers.Dense(10)(keras.layers.Flatten()(inputs)))
    with pytest.raises(ValueError, match="has no residual block"):
        analyze(plain, unreadable((8, 8, 3)), progress=False)


def test_unrolling_a_last_block_that_changes_the_shape_is_refused_before_any_data_is_read():
    inputs = keras.Input((8, 8, 4))
    x = keras.layers.Add()([keras.layers.Conv2D(8, 1, strides=2)(inputs),
                            keras.layers.Conv2D(8, 3, strides=2, padding="same")(
                                keras.layers.Conv2D(4, 3, padding="same")(inputs))])
    model = keras.Model(inputs, keras.layers.Dense(10)(keras.layers.Flatten()(x)))
    with pytest.raises(ValueError, match="Cannot unroll .*changes the shape"):
        analyze(model, unreadable((8, 8, 4)), "unroll", progress=False)
