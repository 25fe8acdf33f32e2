"""Weight-shared residual blocks: Jastrzebski et al. 2018, Sec. 6 (Figure 8, Figure 9).

``SharedResidualStack`` applies one residual unit ``steps`` times, as if the top blocks of a
stage were unrolled iterations of a single block. The conv weights (and conv biases) are always
shared; what happens to batch normalisation is set by three switches, the three parts of the
paper's remedy ("unshared BN", a recurrent-BN variant) that Fig. 9 ablates one at a time:

- ``unshared_statistics``: each step keeps its own moving mean and variance (in training every
  step normalises with its own batch statistics either way; this is what inference uses);
- ``unshared_affine``: each step keeps its own gamma and beta;
- ``gamma_init``: the initial gamma of every BN of the shared steps (0.1 in the remedy, 1.0 as
  Keras's default otherwise).

``share_batchnorm`` is the shorthand the builder passes: ``True`` is naive sharing (one unit
applied ``steps`` times: BN statistics, gamma and beta shared, gamma starting at 1);
``False`` is exactly the paper's remedy (per-step statistics, per-step gamma and beta, gamma
initialised to 0.1); a mapping with any of the keys ``unshared_statistics``,
``unshared_affine``, ``gamma_init`` starts from the remedy and turns parts off, the Fig. 9
ablation rows (``keras_resnets.registry.VARIANTS``: ``shared-bn-shared-stats`` and so on).
"""

from collections.abc import Mapping

import keras
from keras import ops

from keras_resnets.units import ResidualUnit, apply_layers

REMEDY = {"unshared_statistics": True, "unshared_affine": True, "gamma_init": 0.1}
NAIVE = {"unshared_statistics": False, "unshared_affine": False, "gamma_init": 1.0}
STATISTICS = ("moving_mean", "moving_variance")
AFFINE = ("gamma", "beta")


def batchnorm_mode(share_batchnorm=True, **switches) -> dict:
    """The three switches from the ``share_batchnorm`` shorthand (see the module docstring),
    with explicit ``switches`` (not ``None``) applied on top."""
    if isinstance(share_batchnorm, Mapping):
        unknown = sorted(set(share_batchnorm) - set(REMEDY))
        if unknown:
            raise ValueError(f"Unknown share_batchnorm key(s) {', '.join(unknown)}; accepted: "
                             f"{', '.join(REMEDY)}.")
        mode = {**REMEDY, **share_batchnorm}
    elif isinstance(share_batchnorm, bool):
        mode = dict(NAIVE if share_batchnorm else REMEDY)
    else:
        raise ValueError(f"share_batchnorm must be True, False or a mapping of "
                         f"{', '.join(REMEDY)}; got {share_batchnorm!r}.")
    mode.update({k: v for k, v in switches.items() if v is not None})
    gamma = mode["gamma_init"]
    if isinstance(gamma, bool) or not isinstance(gamma, (int, float)):
        raise ValueError(f"gamma_init must be a number; got {gamma!r}.")
    return {"unshared_statistics": bool(mode["unshared_statistics"]),
            "unshared_affine": bool(mode["unshared_affine"]), "gamma_init": float(gamma)}


@keras.saving.register_keras_serializable(package="keras_resnets")
class SharedResidualStack(keras.layers.Layer):
    """``steps`` applications of one shape-preserving residual unit with shared conv weights.

    Args:
        steps: how many blocks share the weights.
        filters: the width of the stack (input and output).
        share_batchnorm: ``True`` (naive), ``False`` (the paper's remedy) or a mapping of the
            switches below (see the module docstring).
        unit_options: any other ``ResidualUnit`` argument (ordering, branch, shortcut...).
        unshared_statistics, unshared_affine, gamma_init: override ``share_batchnorm``'s.
        stage: 1-based stage of the network the stack tops (``None`` outside a zoo network);
            its units record it.
    """

    def __init__(self, steps, filters, share_batchnorm=True, unit_options=None,
                 unshared_statistics=None, unshared_affine=None, gamma_init=None, stage=None,
                 **kwargs):
        super().__init__(**kwargs)
        if int(steps) != steps or steps < 1:
            raise ValueError(f"steps must be a positive integer; got {steps}.")
        unit_options = dict(unit_options or {})
        if unit_options.get("strides", 1) != 1:
            raise ValueError("A shared stack keeps its shape: its units take no strides.")
        given = sorted({"in_filters", "stage"} & set(unit_options))
        if given:
            raise ValueError(f"A shared stack sets its units' {', '.join(given)} itself.")
        self.steps, self.filters = int(steps), int(filters)
        self.stage = None if stage is None else int(stage)
        mode = batchnorm_mode(share_batchnorm, unshared_statistics=unshared_statistics,
                              unshared_affine=unshared_affine, gamma_init=gamma_init)
        self.unshared_statistics = mode["unshared_statistics"]
        self.unshared_affine = mode["unshared_affine"]
        self.gamma_init = mode["gamma_init"]
        # Naive sharing in the strict sense: one unit object, applied ``steps`` times.
        self.share_batchnorm = not (self.unshared_statistics or self.unshared_affine)
        self.unit_options = unit_options
        count = 1 if self.share_batchnorm else self.steps
        self.units = [ResidualUnit(self.filters, in_filters=self.filters, stage=self.stage,
                                   name=f"step{i + 1}", **unit_options) for i in range(count)]
        tied = (() if self.unshared_statistics else STATISTICS) + (
            () if self.unshared_affine else AFFINE)
        for unit in self.units[1:]:
            unit.share_with(self.units[0], batchnorm_variables=tied)

    @property
    def step_units(self) -> list:
        """The unit applied at each step, in order (the same object when BN is shared)."""
        return self.units * self.steps if self.share_batchnorm else list(self.units)

    def build(self, input_shape):
        """Build the first unit, then those sharing its weights; set every gamma's start."""
        if input_shape[-1] != self.filters:
            raise ValueError(
                f"A shared stack of width {self.filters} needs inputs of width {self.filters}; "
                f"got {input_shape[-1]}.")
        for unit in self.units:  # the first is built before the units sharing its weights
            unit.build(input_shape)
        for unit in self.units:
            for layer in unit.batchnorms():
                layer.gamma.assign(ops.full(layer.gamma.shape, self.gamma_init))

    def call(self, inputs, training=None):
        """The step units in order, as unrolled iterations of one block."""
        return apply_layers(self.step_units, inputs, training)

    def compute_output_shape(self, input_shape):
        """The input's shape: a shared stack never changes it."""
        return input_shape

    def get_config(self):
        """The ``__init__`` arguments (the BN switches explicit), so ``from_config`` rebuilds
        the same stack."""
        config = super().get_config()
        config.update(steps=self.steps, filters=self.filters, share_batchnorm=True,
                      unshared_statistics=self.unshared_statistics,
                      unshared_affine=self.unshared_affine, gamma_init=self.gamma_init,
                      unit_options=dict(self.unit_options), stage=self.stage)
        return config
