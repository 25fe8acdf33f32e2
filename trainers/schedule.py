"""The recipe's learning-rate schedule from a ``TrainConfig`` (the schedule itself,
``keras_resnets.schedules.StepSchedule``, is ``keras.ops`` only and loads with the zoo)."""

from keras_resnets.schedules import StepSchedule
from trainers.config import TrainConfig


def make_schedule(config: TrainConfig, steps_per_epoch: int) -> StepSchedule:
    """The recipe's schedule, rates scaled linearly by ``batch_size / 128`` (``lr_multipliers``
    are multiples of the scaled rate, so they scale with it)."""
    return StepSchedule(config.scaled_learning_rate, config.schedule_iterations(steps_per_epoch),
                        config.lr_drops, config.lr_drop_factor,
                        config.resolved_warmup_iterations(steps_per_epoch),
                        config.scaled_warmup_learning_rate, config.lr_multipliers)
