"""The papers' step learning-rate schedules as a Keras schedule, ``keras.ops`` only: it lives
with the zoo so that a ``.keras`` file saved with its optimizer loads wherever ``keras_resnets``
is imported, on every backend (``trainers`` makes it from a ``TrainConfig``)."""

import math

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_resnets")
class StepSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """A constant rate that changes at fractions ``drops`` of ``total_iterations``, after
    ``warmup_iterations`` at ``warmup_learning_rate``.

    He et al. 2016 (appendix): ``learning_rate`` divided by ``1 / drop_factor`` at each drop
    (0.1 at 32k and 48k of 64k iterations), 400 iterations at 0.01 first. Jastrzebski et al.
    2018 (Sec. 4) drop by uneven factors (0.1 -> 0.01 -> 0.001 -> 0.00001 -> 0.000011):
    ``multipliers`` gives the rate after each drop as a multiple of ``learning_rate`` (one per
    drop; it replaces ``drop_factor``). A drop at fraction ``f`` takes effect at the first
    iteration ``>= f * total_iterations``, so a schedule keeps its shape at any length.
    """

    def __init__(self, learning_rate, total_iterations, drops=(0.5, 0.75), drop_factor=0.1,
                 warmup_iterations=0, warmup_learning_rate=0.01, multipliers=None):
        self.learning_rate = float(learning_rate)
        self.total_iterations = int(total_iterations)
        self.drops = tuple(float(d) for d in drops)
        self.drop_factor = float(drop_factor)
        self.warmup_iterations = int(warmup_iterations)
        self.warmup_learning_rate = float(warmup_learning_rate)
        self.multipliers = None if multipliers is None else tuple(float(m) for m in multipliers)
        if self.multipliers is not None and len(self.multipliers) != len(self.drops):
            raise ValueError(f"multipliers must give one rate per drop: {len(self.drops)} drops "
                             f"{self.drops}, got {len(self.multipliers)} {self.multipliers}.")

    def rates(self) -> list[tuple[int, float]]:
        """``(first iteration, rate)`` of every drop, in order."""
        multipliers = self.multipliers or tuple(
            self.drop_factor ** (i + 1) for i in range(len(self.drops)))
        # Rounded first: 80/300 of 3000 iterations is 800, not 800.0000000000001.
        return [(math.ceil(round(fraction * self.total_iterations, 6)),
                 self.learning_rate * multiplier)
                for fraction, multiplier in zip(self.drops, multipliers)]

    def __call__(self, step):
        step = ops.cast(step, "float32")
        rate = ops.convert_to_tensor(self.learning_rate, "float32")
        for start, later in self.rates():
            rate = ops.where(step >= start, later, rate)
        return ops.where(step < self.warmup_iterations, self.warmup_learning_rate, rate)

    def get_config(self):
        """The ``__init__`` arguments, so a saved optimizer rebuilds the same schedule."""
        return {"learning_rate": self.learning_rate, "total_iterations": self.total_iterations,
                "drops": list(self.drops), "drop_factor": self.drop_factor,
                "warmup_iterations": self.warmup_iterations,
                "warmup_learning_rate": self.warmup_learning_rate,
                "multipliers": None if self.multipliers is None else list(self.multipliers)}


# Files saved before the schedule moved here name it "trainers>StepSchedule".
keras.saving.get_custom_objects()["trainers>StepSchedule"] = StepSchedule
