"""Weight-shared residual blocks: Jastrzebski et al. 2018, Sec. 6 (Figure 8).

``SharedResidualStack`` applies one residual unit ``steps`` times, as if the top blocks of a
stage were unrolled iterations of a single block. With ``share_batchnorm=True`` the whole unit
is reused ("naive sharing"); with ``False`` only the convolutions are shared and each step keeps
its own BN statistics and affine parameters, the paper's remedy.
"""

import keras
from keras import layers

from keras_resnets.units import ResidualUnit, apply_layers


@keras.saving.register_keras_serializable(package="keras_resnets")
class SharedResidualStack(layers.Layer):
    """``steps`` applications of one shape-preserving residual unit with shared conv weights.

    Args:
        steps: how many blocks share the weights.
        filters: the width of the stack (input and output).
        share_batchnorm: share BN too (naive sharing) or keep one BN per step.
        **unit_options: any other ``ResidualUnit`` argument (ordering, branch, shortcut...).
    """

    def __init__(self, steps, filters, share_batchnorm=True, unit_options=None, **kwargs):
        super().__init__(**kwargs)
        if int(steps) != steps or steps < 1:
            raise ValueError(f"steps must be a positive integer; got {steps}.")
        unit_options = dict(unit_options or {})
        if unit_options.get("strides", 1) != 1:
            raise ValueError("A shared stack keeps its shape: its units take no strides.")
        self.steps, self.filters = int(steps), int(filters)
        self.share_batchnorm = bool(share_batchnorm)
        self.unit_options = unit_options
        count = 1 if self.share_batchnorm else self.steps
        self.units = [ResidualUnit(self.filters, name=f"step{i + 1}", **unit_options)
                      for i in range(count)]
        for unit in self.units[1:]:
            unit.share_convolutions_with(self.units[0])

    @property
    def step_units(self) -> list:
        """The unit applied at each step, in order (the same object when BN is shared)."""
        return self.units * self.steps if self.share_batchnorm else list(self.units)

    def build(self, input_shape):
        if input_shape[-1] != self.filters:
            raise ValueError(
                f"A shared stack of width {self.filters} needs inputs of width {self.filters}; "
                f"got {input_shape[-1]}.")
        for unit in self.units:
            unit.build(input_shape)

    def call(self, inputs, training=None):
        return apply_layers(self.step_units, inputs, training)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(steps=self.steps, filters=self.filters,
                      share_batchnorm=self.share_batchnorm, unit_options=dict(self.unit_options))
        return config
