"""TensorFlow's fused batch-norm kernel gives what Keras's own layer gives, and saves the same."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_resnets
from keras_resnets.normalization import BatchNormalization
from trainers.fused import fused_batch_norm, fused_batchnorm


def twin_layers(shape):
    layers = [BatchNormalization(momentum=0.9, epsilon=1e-5) for _ in range(2)]
    for layer in layers:
        layer.build(shape)
        layer.gamma.assign(np.linspace(0.5, 2.0, shape[-1]))
        layer.beta.assign(np.linspace(-1.0, 1.0, shape[-1]))
    return layers


def test_fused_training_step_matches_keras_outputs_statistics_and_gradients():
    x = tf.constant(np.random.default_rng(0).normal(2, 3, (8, 5, 5, 4)), tf.float32)
    keras_layer, fused_layer = twin_layers(x.shape)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        expected = keras_layer(x, training=True)
        with fused_batchnorm():
            got = fused_layer(x, training=True)
        losses = [tf.reduce_sum(tf.sin(y)) for y in (expected, got)]
    np.testing.assert_allclose(got, expected, atol=1e-5)
    np.testing.assert_allclose(fused_layer.moving_mean, keras_layer.moving_mean, atol=1e-6)
    np.testing.assert_allclose(fused_layer.moving_variance, keras_layer.moving_variance,
                               rtol=1e-5)
    wrt = lambda layer: [x, layer.gamma, layer.beta]  # noqa: E731
    for want, have in zip(tape.gradient(losses[0], wrt(keras_layer)),
                          tape.gradient(losses[1], wrt(fused_layer))):
        np.testing.assert_allclose(have, want, rtol=1e-4, atol=1e-4)


def test_kernel_is_used_only_inside_the_block_and_only_for_training():
    calls = []
    counting = lambda layer, inputs: calls.append(1) or fused_batch_norm(layer, inputs)  # noqa
    layer = BatchNormalization()
    x = tf.ones((2, 3, 3, 2))
    with BatchNormalization.kernel(counting):
        layer(x, training=False)
        layer(x, training=True)
    layer(x, training=True)
    assert len(calls) == 1 and BatchNormalization.training_kernel is None


def test_kernel_declines_what_it_cannot_do():
    layer = BatchNormalization()
    layer.build((4, 3))
    assert fused_batch_norm(layer, tf.ones((4, 3))) is None  # not NHWC: Keras's own path
    synchronized = BatchNormalization(synchronized=True)
    with BatchNormalization.kernel(lambda *_: pytest.fail("used for a synchronized layer")):
        synchronized(tf.ones((2, 3, 3, 2)), training=True)

@pytest.mark.slow
def test_model_trained_with_the_kernel_saves_and_loads_as_before(tmp_path):
    model = keras_resnets.build("preact8", input_shape=(8, 8, 3))
    model.compile(keras.optimizers.SGD(0.1), keras.losses.SparseCategoricalCrossentropy(True))
    images = np.random.default_rng(1).normal(size=(16, 8, 8, 3)).astype("float32")
    with fused_batchnorm():
        model.fit(images, np.arange(16) % 10, batch_size=8, epochs=1, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(loaded.predict(images, verbose=0),
                               model.predict(images, verbose=0), atol=1e-5)
