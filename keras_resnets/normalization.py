"""Batch normalisation with one seam for a backend's own training kernel.

The zoo's units use ``BatchNormalization``: Keras's layer (same arguments, weights, results and
saved form) whose training-mode call can be served by a faster kernel that a backend-specific
trainer supplies for a while (``trainers.fused`` gives TensorFlow's fused kernel: Keras 3
computes batch norm from separate moment and normalisation ops). The zoo itself stays
``keras.ops``-only; without a kernel it is exactly ``keras.layers.BatchNormalization``.

A layer can also take some of its variables from another, built one (``share_variables``):
the weight-shared blocks of ``keras_resnets.shared`` tie BN statistics or gamma and beta that
way, one variable held by both layers, through Keras's own ``add_weight``.
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
    _shared_names = ()  # variables taken from another layer (``share_variables``)

    @classmethod
    @contextlib.contextmanager
    def kernel(cls, training_kernel):
        """Use ``training_kernel`` for training-mode calls traced inside this block."""
        previous, cls.training_kernel = cls.training_kernel, training_kernel
        try:
            yield
        finally:
            cls.training_kernel = previous

    def share_variables(self, source, names) -> None:
        """Use the built layer ``source``'s variables ``names`` (``gamma``, ``moving_mean``...)
        instead of creating them: one variable, counted and trained once, in both layers.
        Call before ``build``; weights are saved as usual (both layers write the same values).
        """
        self._shared_names = tuple(names)
        # Behind a function: Keras would track a layer held in an attribute as a sublayer.
        self._shared_source = lambda: source

    def add_weight(self, *args, name=None, **kwargs):
        """Keras's ``add_weight``, or the variable ``name`` taken by ``share_variables``; the
        attribute ``build`` assigns it to tracks it, in the layer's usual variable order."""
        if name in self._shared_names:
            return getattr(self._shared_source(), name)
        return super().add_weight(*args, name=name, **kwargs)

    def call(self, inputs, training=None, mask=None):
        """Keras's batch norm, or the training kernel where one is set and applies (not
        synchronized, renorm or masked)."""
        kernel = type(self).training_kernel
        if kernel is not None and training and self.trainable and mask is None and not (
                self.synchronized or self.renorm):
            outputs = kernel(self, inputs)
            if outputs is not None:
                return outputs
        return super().call(inputs, training=training, mask=mask)
