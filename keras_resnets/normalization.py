"""Batch normalisation with one seam for a backend's own training kernel.

The zoo's units use ``BatchNormalization``: Keras's layer (same arguments, weights, results and
saved form) whose training-mode call can be served by a faster kernel that a backend-specific
trainer supplies for a while (``trainers.fused`` gives TensorFlow's fused kernel: Keras 3
computes batch norm from separate moment and normalisation ops). The zoo itself stays
``keras.ops``-only; without a kernel it is exactly ``keras.layers.BatchNormalization``.
"""

import contextlib

import keras
from keras import layers


@keras.saving.register_keras_serializable(package="keras_resnets")
class BatchNormalization(layers.BatchNormalization):
    """``keras.layers.BatchNormalization`` whose training step may use ``training_kernel``."""

    # kernel(layer, inputs) -> outputs with the moving statistics updated, or None where it
    # does not apply; set only inside ``with BatchNormalization.kernel(...)``.
    training_kernel = None

    @classmethod
    @contextlib.contextmanager
    def kernel(cls, training_kernel):
        """Use ``training_kernel`` for training-mode calls traced inside this block."""
        previous, cls.training_kernel = cls.training_kernel, training_kernel
        try:
            yield
        finally:
            cls.training_kernel = previous

    def call(self, inputs, training=None, mask=None):
        kernel = type(self).training_kernel
        if kernel is not None and training and self.trainable and mask is None and not (
                self.synchronized or self.renorm):
            outputs = kernel(self, inputs)
            if outputs is not None:
                return outputs
        return super().call(inputs, training=training, mask=mask)
