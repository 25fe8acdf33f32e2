"""The recipes' step schedules as Keras's PiecewiseConstantDecay: the rate of the step formula
at every iteration of He et al.'s and Jastrzebski et al.'s recipes, the paper's rates at the
paper's epochs, the same shape when --epochs shortens them, and a saved optimizer that loads
with Keras alone."""

import math

import keras
import numpy as np
import pytest

from keras_resnets.schedules import step_schedule
from trainers import train as train_lib
from trainers.config import RECIPES, TrainConfig

STEPS = 10  # steps per epoch: the schedule only sees iterations
CIFAR_STEPS = 50_000 // 128  # CIFAR-10's training set in whole mini-batches of 128

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


def step_formula(config: TrainConfig, steps_per_epoch: int, iterations: np.ndarray):
    """The rate at each of ``iterations`` by the step rule itself, in float32: the scaled
    rate, replaced at each drop ``f`` from the first iteration ``>= f * total`` (rounded to 6
    decimals first) by its multiple, and the warm-up rate before ``warmup_iterations``."""
    total = config.schedule_iterations(steps_per_epoch)
    multipliers = config.lr_multipliers or [config.lr_drop_factor ** (i + 1)
                                            for i in range(len(config.lr_drops))]
    rate = np.full(iterations.shape, config.scaled_learning_rate, np.float32)
    for fraction, multiplier in zip(config.lr_drops, multipliers):
        start = math.ceil(round(fraction * total, 6))
        rate = np.where(iterations >= start, np.float32(config.scaled_learning_rate * multiplier),
                        rate)
    warmup = config.resolved_warmup_iterations(steps_per_epoch)
    return np.where(iterations < warmup, np.float32(config.scaled_warmup_learning_rate), rate)


@pytest.mark.parametrize("recipe", list(RECIPES))
def test_the_schedule_is_the_step_formula_at_every_iteration(recipe):
    """He et al. 2016 over all 64,001 iterations (0..64000), and each Jastrzebski et al.
    recipe over its whole length and one iteration beyond."""
    config = TrainConfig.for_recipe(recipe)
    iterations = np.arange(config.schedule_iterations(CIFAR_STEPS) + 1)
    if recipe == "he2016":
        assert len(iterations) == 64_001
    schedule = config.learning_rate_schedule(CIFAR_STEPS)
    assert isinstance(schedule, keras.optimizers.schedules.PiecewiseConstantDecay)
    served = keras.ops.convert_to_numpy(schedule(iterations))
    np.testing.assert_array_equal(served, step_formula(config, CIFAR_STEPS, iterations))


@pytest.mark.parametrize("settings", [
    {"epochs": 1},  # a warm-up of 2 iterations, drops at 195 and 293
    {"epochs": 3, "warmup_iterations": 600},  # the first drop inside the warm-up
    {"epochs": 1, "lr_drops": (0.5, 0.5)},  # two drops at one iteration: the later wins
    {"epochs": 1, "lr_drops": (), "warmup_iterations": 0},  # one constant rate
    {"epochs": 2, "batch_size": 256, "lr_drops": (0.3,), "lr_multipliers": (0.5,)},
])
def test_the_schedule_is_the_step_formula_in_corner_cases(settings):
    config = TrainConfig(**settings)
    iterations = np.arange(config.schedule_iterations(CIFAR_STEPS) + 2)
    served = keras.ops.convert_to_numpy(config.learning_rate_schedule(CIFAR_STEPS)(iterations))
    np.testing.assert_array_equal(served, step_formula(config, CIFAR_STEPS, iterations))


@pytest.mark.parametrize("recipe", list(PAPER))
def test_the_papers_rate_from_each_printed_epoch_on(recipe):
    epochs, rates = PAPER[recipe]
    config = TrainConfig.for_recipe(recipe)
    assert config.resolved_epochs(STEPS) == epochs
    assert (config.momentum, config.batch_size, config.augment) == (0.9, 128, True)
    schedule = config.learning_rate_schedule(STEPS)
    starts = sorted(rates)
    for start, end in zip(starts, starts[1:] + [epochs]):
        first, last = start * STEPS, end * STEPS - 1
        assert rate_at(schedule, first) == pytest.approx(rates[start], rel=1e-6)
        assert rate_at(schedule, last) == pytest.approx(rates[start], rel=1e-6)


@pytest.mark.parametrize("recipe", list(PAPER))
def test_epochs_shortens_a_recipe_keeping_its_shape(recipe):
    epochs, rates = PAPER[recipe]
    shortened = TrainConfig.for_recipe(recipe, epochs=epochs // 10).learning_rate_schedule(STEPS)
    for start, rate in rates.items():  # every printed epoch is a multiple of 10
        assert rate_at(shortened, start // 10 * STEPS) == pytest.approx(rate, rel=1e-6)
        if start:
            assert rate_at(shortened, start // 10 * STEPS - 1) != pytest.approx(rate, rel=1e-6)


def test_weight_decay_and_warmup_the_paper_does_not_give():
    assert {name: RECIPES[name]["weight_decay"] for name in PAPER} == {
        "jastrzebski2018-resnet": 1e-4, "jastrzebski2018-single": 1e-4,
        "jastrzebski2018-avgpool": 1e-4, "jastrzebski2018-wrn": 5e-4}
    schedule = TrainConfig.for_recipe("jastrzebski2018-resnet").learning_rate_schedule(STEPS)
    assert rate_at(schedule, 0) == pytest.approx(0.1)  # no warm-up


def test_rates_scale_with_the_batch_and_round_trip_through_json(tmp_path):
    config = TrainConfig.for_recipe("jastrzebski2018-wrn", batch_size=256)
    schedule = config.learning_rate_schedule(STEPS)
    assert [rate_at(schedule, i * STEPS) for i in (0, 60)] == pytest.approx([0.2, 0.04])
    config.save(tmp_path / "config.json")
    assert TrainConfig.load(tmp_path / "config.json") == config
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(schedule))
    assert rate_at(restored, 60 * STEPS) == pytest.approx(0.04)


def test_a_saved_optimizer_loads_its_schedule_with_keras_alone(tmp_path):
    """A model compiled with the recipe's schedule, saved after one step, loads with
    ``keras.saving.load_model`` and no custom objects: its optimizer's schedule is a
    ``PiecewiseConstantDecay`` with the same boundaries and rates, at the saved step."""
    schedule = TrainConfig.for_recipe("jastrzebski2018-resnet").learning_rate_schedule(STEPS)
    inputs = keras.Input((2,))
    model = keras.Model(inputs, keras.layers.Dense(3)(inputs))
    model.compile(optimizer=keras.optimizers.SGD(schedule, momentum=0.9),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(np.ones((4, 2), "float32"), np.zeros(4, "int32"), batch_size=4, verbose=0)
    model.save(tmp_path / "model.keras")

    loaded = keras.saving.load_model(tmp_path / "model.keras")
    saved = loaded.optimizer.get_config()["learning_rate"]
    restored = keras.saving.deserialize_keras_object(saved)
    assert isinstance(restored, keras.optimizers.schedules.PiecewiseConstantDecay)
    assert (restored.boundaries, restored.values) == (schedule.boundaries, schedule.values)
    assert int(loaded.optimizer.iterations) == 1
    assert float(loaded.optimizer.learning_rate) == pytest.approx(0.1)


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
        step_schedule(0.1, 1000, drops=(0.5,), multipliers=(0.1, 0.01))


def test_drops_out_of_order_are_refused():
    with pytest.raises(ValueError, match=r"drops must be increasing fractions of training; got "
                                         r"\(0.75, 0.5\)"):
        step_schedule(0.1, 1000, drops=(0.75, 0.5))
