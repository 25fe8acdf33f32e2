"""TrainConfig: JSON round trip, the he2016 recipe, and how epochs/iterations resolve."""

import dataclasses
import json

import pytest

from trainers.config import REFERENCE_BATCH, RECIPES, TrainConfig


def test_json_round_trip_keeps_every_field(tmp_path):
    config = TrainConfig(model="preact110-gate-exclusive", model_overrides={"gate_bias": -7.0},
                         epochs=3, lr_drops=[0.3, 0.6], sync_batchnorm=False, data_dir="/data")
    config.save(tmp_path / "config.json")
    loaded = TrainConfig.load(tmp_path / "config.json")
    assert loaded == config
    assert loaded.lr_drops == (0.3, 0.6)
    assert set(dataclasses.asdict(loaded)) == {f.name for f in dataclasses.fields(TrainConfig)}


def test_unknown_json_key_is_rejected():
    with pytest.raises(ValueError, match="Unknown config keys.*'lr'"):
        TrainConfig.from_json('{"lr": 0.1}')


def test_he2016_recipe_is_the_papers():
    """He et al. 2016's appendix, as literals: SGD with momentum 0.9, weight decay 1e-4,
    mini-batch 128, learning rate 0.1 divided by 10 at 32k and 48k iterations, stop at 64k;
    0.01 for the first 400 iterations (ResNet-110 included)."""
    config = TrainConfig.for_recipe("he2016", model="preact110")
    assert (config.batch_size, config.momentum, config.weight_decay) == (128, 0.9, 1e-4)
    steps = 50_000 // 128  # CIFAR-10's training set in whole mini-batches
    assert config.schedule_iterations(steps) == 64_000
    assert config.resolved_warmup_iterations(steps) == 400
    schedule = config.learning_rate_schedule(steps)
    paper = {0: 0.01, 399: 0.01, 400: 0.1, 31_999: 0.1, 32_000: 0.01, 47_999: 0.01,
             48_000: 0.001, 63_999: 0.001}
    assert {step: float(schedule(step)) for step in paper} == pytest.approx(paper)
    assert TrainConfig.for_recipe("he2016", batch_size=64).batch_size == 64


def test_unknown_recipe_strategy_and_bad_values_are_rejected():
    with pytest.raises(ValueError, match="Unknown recipe 'goyal'.*he2016"):
        TrainConfig.for_recipe("goyal")
    with pytest.raises(ValueError, match="Unknown strategy 'tpu'.*mirrored"):
        TrainConfig(strategy="tpu")
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        TrainConfig(batch_size=0)
    with pytest.raises(ValueError, match="lr_drops"):
        TrainConfig(lr_drops=(0.75, 0.5))
    for value in ("mixed_float16", "fp16", True):
        with pytest.raises(ValueError, match=f"Unknown mixed_precision {value!r}; accepted: "
                                             f"float16, bfloat16, or unset for float32"):
            TrainConfig(mixed_precision=value)
    assert set(RECIPES) == {"he2016", "jastrzebski2018-resnet", "jastrzebski2018-single",
                            "jastrzebski2018-avgpool", "jastrzebski2018-wrn"}


def test_warmup_for_every_depth_as_a_fraction_of_training_unless_given():
    for model in ("preact20", "preact110", "resnet1001"):
        assert TrainConfig(model=model).resolved_warmup_iterations(390) == 400
        assert TrainConfig(model=model, epochs=82).resolved_warmup_iterations(390) == 200
    assert TrainConfig(model="preact20", warmup_iterations=7).resolved_warmup_iterations(390) == 7


def test_paper_length_in_epochs_and_shortened_recipe_keeps_its_fractions():
    paper = TrainConfig()
    steps = 50_000 // 128  # CIFAR training set, whole batches
    assert paper.resolved_epochs(steps) == 165  # 64k iterations, about 164 epochs
    assert paper.schedule_iterations(steps) == 64_000
    short = TrainConfig(epochs=10)
    assert short.resolved_epochs(steps) == 10
    assert short.schedule_iterations(steps) == 10 * steps


def test_learning_rates_scale_with_the_global_batch():
    config = TrainConfig(batch_size=4 * REFERENCE_BATCH)
    assert config.scaled_learning_rate == pytest.approx(0.4)
    assert config.scaled_warmup_learning_rate == pytest.approx(0.04)


def test_the_evaluation_schedule_and_location_are_not_what_a_run_trains():
    config = TrainConfig(model="preact20", epochs=20)
    same = dataclasses.replace(config, validation_every=5, out="elsewhere", data_dir="/data")
    assert config.differences(same) == {}
    assert config.differences(dataclasses.replace(config, checkpoint_every=2)) == {
        "checkpoint_every": (1, 2)}
    with pytest.raises(ValueError, match="validation_every must be a positive integer"):
        TrainConfig(validation_every=0)


@pytest.mark.parametrize("field, value, expected", [
    ("epochs", "4", "an integer or null"),
    ("batch_size", "32", "an integer"),
    ("batch_size", 32.5, "an integer"),
    ("epochs", True, "an integer or null"),
    ("learning_rate", "0.1", "a number"),
    ("augment", "yes", "true or false"),
    ("model", 20, "a string"),
    ("data_dir", ["/data"], "a string or null"),
    ("lr_drops", [0.5, "0.75"], "a list of numbers"),
    ("lr_multipliers", 0.1, "a list of numbers or null"),
    ("model_overrides", [1, 2], "an object"),
])
def test_a_saved_config_with_a_value_of_the_wrong_type_is_refused_naming_it(
        tmp_path, field, value, expected):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**json.loads(TrainConfig().to_json()), field: value}))
    with pytest.raises(ValueError) as raised:
        TrainConfig.load(path)
    message = str(raised.value)
    for part in (str(path), repr(field), json.dumps(value), f"expected {expected}."):
        assert part in message


def test_a_saved_config_takes_whole_numbers_for_floats_and_null_for_unset_fields(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"learning_rate": 1, "epochs": None, "lr_multipliers": [1, 0.5],
                                "lr_drops": [0.25, 0.5]}))
    assert TrainConfig.load(path) == TrainConfig(learning_rate=1.0, lr_multipliers=(1.0, 0.5),
                                                 lr_drops=(0.25, 0.5))


@pytest.mark.parametrize("text, problem", [
    ('{"epochs": 4', "is not valid JSON"),
    ("[1, 2]", "must hold a JSON object of TrainConfig fields; got a list"),
])
def test_a_saved_config_that_is_not_a_json_object_is_refused_naming_the_file(
        tmp_path, text, problem):
    path = tmp_path / "config.json"
    path.write_text(text)
    with pytest.raises(ValueError, match=problem) as raised:
        TrainConfig.load(path)
    assert str(path) in str(raised.value)


def test_mixed_precision_names_the_compute_dtype_of_the_models_policy():
    assert TrainConfig().dtype_policy == "float32"
    assert TrainConfig(mixed_precision="float16").dtype_policy == "mixed_float16"
    assert TrainConfig(mixed_precision="bfloat16").dtype_policy == "mixed_bfloat16"


@pytest.mark.parametrize("saved, read", [(False, None), (True, "float16")])
def test_a_config_saved_when_mixed_precision_was_a_switch_reads_back_as_its_dtype(
        tmp_path, saved, read):
    """``true`` was ``trainers.train``'s mixed_float16; ``false`` float32, so an old ledger row
    is the same run as a new config left unset."""
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**json.loads(TrainConfig().to_json()), "mixed_precision": saved}))
    loaded = TrainConfig.load(path)
    assert loaded.mixed_precision == read
    assert loaded.differences(TrainConfig(mixed_precision=read)) == {}
