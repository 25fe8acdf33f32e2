"""The jastrzebski2018-* recipes through StepSchedule: the paper's rates at the paper's epochs,
the same shape when --epochs shortens them, and schedules saved before per-drop rates."""

import keras
import pytest

from keras_resnets.schedules import StepSchedule
from trainers import train as train_lib
from trainers.config import RECIPES, TrainConfig
from trainers.schedule import make_schedule

STEPS = 10  # steps per epoch: the schedule only sees iterations

# Jastrzebski et al. 2018 as printed (experimental setup): {first epoch: rate}, and the length.
PAPER = {
    "jastrzebski2018-resnet": (300, {0: 0.1, 80: 0.01, 120: 0.001, 200: 0.00001,
                                     240: 0.000011}),
    "jastrzebski2018-single": (200, {0: 0.1, 40: 0.02, 60: 0.004, 80: 0.0008}),
    "jastrzebski2018-avgpool": (100, {0: 0.1, 40: 0.02, 60: 0.004, 80: 0.0008}),
    "jastrzebski2018-wrn": (100, {0: 0.1, 60: 0.02}),
}


def rate_at(schedule, iteration) -> float:
    return float(schedule(iteration))


@pytest.mark.parametrize("recipe", list(PAPER))
def test_the_papers_rate_from_each_printed_epoch_on(recipe):
    epochs, rates = PAPER[recipe]
    config = TrainConfig.for_recipe(recipe)
    assert config.resolved_epochs(STEPS) == epochs
    assert (config.momentum, config.batch_size, config.augment) == (0.9, 128, True)
    schedule = make_schedule(config, STEPS)
    starts = sorted(rates)
    for start, end in zip(starts, starts[1:] + [epochs]):
        first, last = start * STEPS, end * STEPS - 1
        assert rate_at(schedule, first) == pytest.approx(rates[start], rel=1e-6)
        assert rate_at(schedule, last) == pytest.approx(rates[start], rel=1e-6)


@pytest.mark.parametrize("recipe", list(PAPER))
def test_epochs_shortens_a_recipe_keeping_its_shape(recipe):
    epochs, rates = PAPER[recipe]
    shortened = make_schedule(TrainConfig.for_recipe(recipe, epochs=epochs // 10), STEPS)
    for start, rate in rates.items():  # every printed epoch is a multiple of 10
        assert rate_at(shortened, start // 10 * STEPS) == pytest.approx(rate, rel=1e-6)
        if start:
            assert rate_at(shortened, start // 10 * STEPS - 1) != pytest.approx(rate, rel=1e-6)


def test_weight_decay_and_warmup_the_paper_does_not_give():
    assert {name: RECIPES[name]["weight_decay"] for name in PAPER} == {
        "jastrzebski2018-resnet": 1e-4, "jastrzebski2018-single": 1e-4,
        "jastrzebski2018-avgpool": 1e-4, "jastrzebski2018-wrn": 5e-4}
    schedule = make_schedule(TrainConfig.for_recipe("jastrzebski2018-resnet"), STEPS)
    assert rate_at(schedule, 0) == pytest.approx(0.1)  # no warm-up


def test_rates_scale_with_the_batch_and_round_trip_through_json(tmp_path):
    config = TrainConfig.for_recipe("jastrzebski2018-wrn", batch_size=256)
    schedule = make_schedule(config, STEPS)
    assert [rate_at(schedule, i * STEPS) for i in (0, 60)] == pytest.approx([0.2, 0.04])
    config.save(tmp_path / "config.json")
    assert TrainConfig.load(tmp_path / "config.json") == config
    again = StepSchedule.from_config(schedule.get_config())
    assert rate_at(again, 60 * STEPS) == pytest.approx(0.04)
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(schedule))
    assert restored.multipliers == schedule.multipliers


def test_a_schedule_saved_without_multipliers_loads_as_he2016():
    saved = {"learning_rate": 0.1, "total_iterations": 1000, "drops": [0.5, 0.75],
             "drop_factor": 0.1, "warmup_iterations": 0, "warmup_learning_rate": 0.01}
    for name in ("keras_resnets>StepSchedule", "trainers>StepSchedule"):
        schedule = keras.saving.deserialize_keras_object(
            {"module": None, "class_name": name, "config": saved, "registered_name": name})
        assert [rate_at(schedule, i) for i in (499, 500, 750)] == pytest.approx(
            [0.1, 0.01, 0.001])


def test_the_cli_takes_a_recipe_and_multipliers():
    config = train_lib.config_from_args(["--recipe", "jastrzebski2018-avgpool", "--epochs", "10",
                                         "--model", "j18-avgpool"])
    assert config.epochs == 10 and config.lr_multipliers == pytest.approx((0.2, 0.04, 0.008))
    config = train_lib.config_from_args(["--lr-drops", "0.5", "--lr-multipliers", "0.3"])
    assert config.lr_multipliers == (0.3,)


@pytest.mark.parametrize("settings, message", [
    ({"lr_multipliers": (0.1,)}, "lr_multipliers must be unset or 2 positive finite numbers"),
    ({"lr_multipliers": (0.1, -0.01)}, "one per lr_drops"),
    ({"lr_multipliers": (0.1, float("nan"))}, "one per lr_drops"),
])
def test_bad_multipliers_are_refused(settings, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**settings)
    with pytest.raises(ValueError, match="one rate per drop"):
        StepSchedule(0.1, 1000, drops=(0.5,), multipliers=(0.1, 0.01))
