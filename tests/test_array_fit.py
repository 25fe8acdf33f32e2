"""``trainers.array_fit``: the any-backend trainer writes its run folder, sizes a budget, resumes
to the weights of a run never stopped, pads like ``trainers.data`` and trains in bfloat16 or
float16."""

import json
import pickle
from pathlib import Path

import keras
import numpy as np
import pytest

import keras_resnets
from trainers import array_fit, array_state
from trainers.config import TrainConfig

pytestmark = pytest.mark.slow  # pytest -m 'not slow' skips this module


def write_cifar(folder, train=64, test=32):
    batches = folder / "cifar-10-batches-py"
    batches.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name, size in (("data_batch_1", train), ("test_batch", test)):
        data = {b"data": rng.integers(0, 256, (size, 3072), dtype=np.uint8),
                b"labels": list(rng.integers(0, 10, size))}
        (batches / name).write_bytes(pickle.dumps(data, protocol=2))
    return folder


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return write_cifar(tmp_path_factory.mktemp("data"))


def small_config(data_dir, out, **overrides) -> TrainConfig:
    """preact8, 3 epochs of 2 steps on 64 random images: small enough to train three times."""
    settings = {"model": "preact8", "data_dir": str(data_dir), "out": str(out), "epochs": 3,
                "batch_size": 32, **overrides}
    return TrainConfig.for_recipe("he2016", **settings)


def final_weights(run_dir) -> list[np.ndarray]:
    model = keras_resnets.build("preact8", standardize=((0, 0, 0), (1, 1, 1)))
    model.load_weights(run_dir / "preact8.weights.h5")
    return model.get_weights()


@pytest.fixture(scope="module")
def uninterrupted(data_dir, tmp_path_factory):
    """The run folder of the small run trained in one call."""
    config = small_config(data_dir, tmp_path_factory.mktemp("runs") / "whole")
    array_fit.train_arrays(config, array_fit.load_cifar("cifar10", str(data_dir)))
    return Path(config.out)


def assert_same_weights(run_dir, reference_dir):
    for ours, reference in zip(final_weights(run_dir), final_weights(reference_dir), strict=True):
        np.testing.assert_array_equal(ours, reference)


def test_a_short_run_writes_weights_that_build_with_its_standardisation(data_dir, tmp_path):
    out = tmp_path / "run"
    assert array_fit.main(["--model", "preact8", "--data-dir", str(data_dir), "--out", str(out),
                           "--epochs", "2", "--batch-size", "32"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert (metrics["epochs"], metrics["iterations"], metrics["test_examples"]) == (2, 4, 32)
    assert len((out / "history.csv").read_text().splitlines()) == 3
    standardize = (metrics["standardize"]["mean"], metrics["standardize"]["std"])
    model = keras_resnets.build("preact8", standardize=standardize)
    model.load_weights(out / "preact8.weights.h5")
    assert json.loads((out / "config.json").read_text())["epochs"] == 2
    assert not (out / array_state.FOLDER).exists()


def test_a_run_stopped_by_its_time_budget_continues_to_the_same_weights(
        data_dir, uninterrupted, tmp_path, capsys):
    out = tmp_path / "windows"
    command = ["--model", "preact8", "--data-dir", str(data_dir), "--out", str(out),
               "--epochs", "3", "--batch-size", "32", "--stop-after", "0"]
    printed = []
    for _ in range(3):  # a budget of 0 s: one whole epoch per call
        assert array_fit.main(command) == 0
        printed.append(json.loads(capsys.readouterr().out.strip().splitlines()[-1]))
    assert [p.get("stopped") for p in printed] == [True, True, None]
    assert [p.get("epoch") for p in printed[:2]] == [1, 2]
    assert printed[2]["iterations"] == 6
    assert_same_weights(out, uninterrupted)
    assert (out / "history.csv").read_text().count("\n") == 4
    assert not (out / array_state.FOLDER).exists()


class Killed(BaseException):
    """The process dying (not an error a trainer could catch)."""


def test_a_run_killed_while_saving_its_state_continues_from_the_last_whole_state(
        data_dir, uninterrupted, tmp_path, monkeypatch):
    config = small_config(data_dir, tmp_path / "killed")
    data = array_fit.load_cifar("cifar10", str(data_dir))
    write, pointers = array_state._write_atomic, []

    def dies_before_the_second_pointer(path, writer):
        if path.name == array_state.POINTER:
            pointers.append(path)
            if len(pointers) == 2:  # epoch 2's variables are written, its pointer is not
                raise Killed
        write(path, writer)

    monkeypatch.setattr(array_state, "_write_atomic", dies_before_the_second_pointer)
    with pytest.raises(Killed):
        array_fit.train_arrays(config, data)
    assert array_state.progress(config.out)["epoch"] == 1
    monkeypatch.undo()
    assert array_fit.train_arrays(config, data)["iterations"] == 6
    assert_same_weights(tmp_path / "killed", uninterrupted)


def test_the_resume_state_holds_only_weights_and_optimizer(data_dir, tmp_path):
    config = small_config(data_dir, tmp_path / "state")
    data = array_fit.load_cifar("cifar10", str(data_dir))
    assert array_fit.train_arrays(config, data, stop_after=0) is None
    files = sorted(p.name for p in (tmp_path / "state" / array_state.FOLDER).iterdir())
    assert files == ["epoch-0001.npz", array_state.POINTER]
    _, trainer = array_fit.build_for_training(config, data, 2)
    weights = sum(v.numpy().nbytes for v in trainer.variables)
    npz = (tmp_path / "state" / array_state.FOLDER / files[0]).stat().st_size
    assert npz < 2.2 * weights + 20_000  # momentum doubles the weights; npz headers


def test_continuing_with_other_settings_is_refused(data_dir, tmp_path, capsys):
    command = ["--model", "preact8", "--data-dir", str(data_dir), "--out", str(tmp_path / "r"),
               "--epochs", "3", "--batch-size", "32", "--stop-after", "0"]
    assert array_fit.main(command) == 0
    longer = [*command]
    longer[longer.index("--epochs") + 1] = "4"
    assert array_fit.main(longer) == 2
    assert "holds an unfinished run with other settings" in capsys.readouterr().err


def test_padding_and_standardisation_are_the_tf_pipelines(data_dir):
    """Both trainers standardise with the same statistics and pad with the same colour."""
    from trainers import data as tf_data

    ours = array_fit.load_cifar("cifar10", str(data_dir))
    theirs = tf_data.load_data(small_config(data_dir, "unused"))
    assert (tuple(ours["mean"]), tuple(ours["std"])) == (theirs.mean, theirs.std)
    _, trainer = array_fit.build_for_training(small_config(data_dir, "unused"), ours, 2)
    assert trainer.get_layer("augment").fill == theirs.mean


@pytest.mark.parametrize("precision, loss_scaled", [("bfloat16", False), ("float16", True)])
def test_mixed_precision_computes_in_its_dtype_with_float32_logits_and_augmentation(
        data_dir, tmp_path, precision, loss_scaled):
    """float16 trains with dynamic loss scaling (its narrow range), bfloat16 without."""
    config = small_config(data_dir, tmp_path / precision, mixed_precision=precision, epochs=1)
    data = array_fit.load_cifar("cifar10", str(data_dir))
    net, trainer = array_fit.build_for_training(config, data, 2)
    dtypes = {layer.name: layer.compute_dtype for layer in net.layers}
    assert dtypes["stem_conv1"] == precision and dtypes["logits"] == "float32"
    assert trainer.get_layer("augment").compute_dtype == "float32"
    assert isinstance(trainer.optimizer, keras.optimizers.LossScaleOptimizer) is loss_scaled
    assert keras.config.dtype_policy().name == "float32"  # the global policy is restored
    metrics = array_fit.train_arrays(config, data)
    assert metrics["dtype_policy"] == f"mixed_{precision}"
    assert np.isfinite(metrics["test_loss"])


def test_a_float16_run_continues_with_its_loss_scale_to_the_weights_of_a_run_never_stopped(
        data_dir, tmp_path):
    data = array_fit.load_cifar("cifar10", str(data_dir))
    _, trainer = array_fit.build_for_training(
        small_config(data_dir, "unused", mixed_precision="float16"), data, 2)
    state = array_state.state_variables(trainer)
    assert len(array_state.state_variables(trainer)) == len(state)  # one loss scale, not two
    assert any(v is trainer.optimizer.dynamic_scale for v in state)
    whole = small_config(data_dir, tmp_path / "whole", mixed_precision="float16", epochs=2)
    array_fit.train_arrays(whole, data)
    stopped = small_config(data_dir, tmp_path / "stopped", mixed_precision="float16", epochs=2)
    assert array_fit.train_arrays(stopped, data, stop_after=0) is None
    assert array_fit.train_arrays(stopped, data)["iterations"] == 4
    assert_same_weights(tmp_path / "stopped", tmp_path / "whole")


def test_mixed_precision_flag_takes_a_compute_dtype_and_refuses_others(data_dir, tmp_path,
                                                                        capsys):
    command = ["--data-dir", str(data_dir), "--out", str(tmp_path / "run")]
    args = array_fit.make_parser().parse_args([*command, "--mixed-precision", "bfloat16"])
    assert array_fit.config_from_args(args).mixed_precision == "bfloat16"
    assert array_fit.config_from_args(array_fit.make_parser().parse_args(command)
                                      ).mixed_precision is None
    assert array_fit.main([*command, "--mixed-precision"]) == 2
    assert "expected one argument" in capsys.readouterr().err
    assert array_fit.main([*command, "--mixed-precision", "half"]) == 2
    assert "invalid choice: 'half' (choose from 'float16', 'bfloat16')" in (
        capsys.readouterr().err)


def test_a_run_whose_loss_is_not_finite_stops_as_diverged(data_dir, tmp_path):
    data = array_fit.load_cifar("cifar10", str(data_dir))
    images = data["train"][0].copy()
    images[0] = np.nan
    data["train"] = (images, data["train"][1])
    metrics = array_fit.train_arrays(small_config(data_dir, tmp_path / "nan"), data)
    assert metrics["diverged"] and metrics["epochs"] == 1
    assert not (tmp_path / "nan" / array_state.FOLDER).exists()


def test_missing_data_exits_2_with_the_expected_layout(tmp_path, capsys):
    assert array_fit.main(["--data-dir", str(tmp_path), "--out", str(tmp_path / "run")]) == 2
    assert "cifar-10-batches-py" in capsys.readouterr().err


def test_time_budget_and_stop_after_together_are_refused(data_dir, tmp_path, capsys):
    assert array_fit.main(["--data-dir", str(data_dir), "--out", str(tmp_path / "run"),
                           "--time-budget", "60", "--stop-after", "30"]) == 2
    assert "--stop-after with --epochs" in capsys.readouterr().err


@pytest.mark.parametrize("seconds, expected", [(1000, 164), (100, 47), (1, 4)])
def test_epochs_for_budget_keep_the_recipe_bounds(seconds, expected):
    # 5 ms steps, 391 steps, a test split 1/5 of the training split.
    assert array_fit.epochs_for_budget(seconds, 0.005, 391, 0.2) == expected
