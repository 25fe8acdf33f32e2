"""He et al. 2016's learning-rate schedule as a Keras schedule (``keras.ops`` only, so it runs
and loads on every backend: ``trainers.train`` on TensorFlow, ``trainers.array_fit`` on JAX)."""

import keras
from keras import ops

from trainers.config import TrainConfig


@keras.saving.register_keras_serializable(package="trainers")
class StepSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """He et al. 2016's schedule: ``learning_rate`` divided by ``1 / drop_factor`` at each
    fraction ``drops`` of ``total_iterations`` (32k and 48k of 64k), ``warmup_learning_rate``
    for the first ``warmup_iterations`` (400 at 0.01 for the deepest nets)."""

    def __init__(self, learning_rate, total_iterations, drops=(0.5, 0.75), drop_factor=0.1,
                 warmup_iterations=0, warmup_learning_rate=0.01):
        self.learning_rate = float(learning_rate)
        self.total_iterations = int(total_iterations)
        self.drops = tuple(float(d) for d in drops)
        self.drop_factor = float(drop_factor)
        self.warmup_iterations = int(warmup_iterations)
        self.warmup_learning_rate = float(warmup_learning_rate)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        drops = sum(ops.cast(step >= fraction * self.total_iterations, "float32")
                    for fraction in self.drops)
        rate = self.learning_rate * ops.power(self.drop_factor, drops)
        return ops.where(step < self.warmup_iterations, self.warmup_learning_rate, rate)

    def get_config(self):
        return {"learning_rate": self.learning_rate, "total_iterations": self.total_iterations,
                "drops": list(self.drops), "drop_factor": self.drop_factor,
                "warmup_iterations": self.warmup_iterations,
                "warmup_learning_rate": self.warmup_learning_rate}


def make_schedule(config: TrainConfig, steps_per_epoch: int) -> StepSchedule:
    """The recipe's schedule, rates scaled linearly by ``batch_size / 128``."""
    return StepSchedule(config.scaled_learning_rate, config.schedule_iterations(steps_per_epoch),
                        config.lr_drops, config.lr_drop_factor,
                        config.resolved_warmup_iterations(steps_per_epoch), config.scaled_warmup_learning_rate)
