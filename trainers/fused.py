"""TensorFlow's fused batch-norm kernel for the zoo's ``BatchNormalization`` while training.

Keras 3 computes batch norm on TensorFlow from separate moment, subtraction and scaling ops;
``FusedBatchNormV3`` does the forward pass and its gradient in one kernel each. On this
project's 2-core CPU that alone made a plain ``fit`` of preact20 32% faster (results/speed/).
The layer, its weights and what a ``.keras`` file records stay the same; results agree with
Keras's own path to float32 rounding (tests/test_fused.py).
"""

import tensorflow as tf

from keras_resnets.normalization import BatchNormalization


def fused_batch_norm(layer, inputs):
    """Training-mode batch norm of NHWC ``inputs`` with ``FusedBatchNormV3``, updating the
    layer's moving statistics as Keras does (biased batch variance, ``momentum``); ``None``
    for anything but a 4-D channels-last input with scale and centre."""
    if inputs.shape.rank != 4 or layer.axis not in (-1, 3) or not (layer.scale and layer.center):
        return None
    x = tf.cast(inputs, tf.float32)
    outputs, mean, variance = tf.compat.v1.nn.fused_batch_norm(
        x, tf.cast(layer.gamma, tf.float32), tf.cast(layer.beta, tf.float32),
        epsilon=layer.epsilon, data_format="NHWC", is_training=True)
    count = tf.cast(tf.size(x) // tf.shape(x)[-1], tf.float32)
    variance = variance * (count - 1.0) / count  # the kernel returns the unbiased variance
    momentum = layer.momentum
    layer.moving_mean.assign(layer.moving_mean * momentum + mean * (1.0 - momentum))
    layer.moving_variance.assign(layer.moving_variance * momentum + variance * (1.0 - momentum))
    return tf.cast(outputs, layer.compute_dtype)


def fused_batchnorm():
    """``with fused_batchnorm(): model.fit(...)``: the zoo's BN layers train with the fused
    kernel inside the block."""
    return BatchNormalization.kernel(fused_batch_norm)
