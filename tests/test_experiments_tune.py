"""KerasTuner sweeps over the zoo (``experiments.tune``, ``experiments.hypermodel``,
``experiments.spaces``).

Synthetic 32x32 data (128 training images), resnet8/preact8, one epoch per trial.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import keras_tuner
import numpy as np
import pandas as pd
import pytest

import keras_resnets
from experiments import spaces
from experiments.hypermodel import ZooHyperModel
from experiments.tune import SweepConfig, main, run_sweep
from trainers.config import TrainConfig

pytestmark = pytest.mark.slow  # pytest -m 'not slow' skips this module

SPACE = {
    "model": {"base": ["resnet", "preact"], "depth": 8, "variant": ["", "gate-exclusive"],
              "gate_bias": {"min": -7, "max": 0, "step": 1}},
    "recipe": {"learning_rate": {"min": 0.01, "max": 0.2, "sampling": "log"},
               "batch_size": [32, 64]},
}
TRAIN = {"dataset": "synthetic", "train_size": 128, "test_size": 64, "epochs": 1,
         "batch_size": 32, "strategy": "default"}
FLAGS = ["--dataset", "synthetic", "--train-size", "128", "--test-size", "64", "--epochs", "1",
         "--batch-size", "32", "--strategy", "default"]


def sweep(out, max_trials, space=SPACE) -> SweepConfig:
    return SweepConfig(space=space, train={**TRAIN, "out": str(out)}, tuner="random",
                       max_trials=max_trials, out=str(out))


@pytest.fixture(scope="module")
def resumed(tmp_path_factory):
    """A sweep stopped after one trial, then resumed with a budget of two."""
    out = tmp_path_factory.mktemp("sweep")
    run_sweep(sweep(out, 1))
    first = out / "trials" / "trial_0"
    before = {name: (first / name).stat().st_mtime_ns for name in ("history.csv", "trial.json")}
    frame = run_sweep(sweep(out, 2))
    return out, before, frame


def test_a_resumed_sweep_runs_only_the_missing_trial(resumed):
    out, before, frame = resumed
    first = out / "trials" / "trial_0"
    after = {name: (first / name).stat().st_mtime_ns for name in before}
    assert after == before  # trial 0 was neither trained nor rewritten again
    assert sorted(p.name for p in (out / "trials").glob("trial_*")) == ["trial_0", "trial_1"]
    assert len(pd.read_csv(first / "history.csv")) == 1
    assert list(frame["status"]) == ["COMPLETED", "COMPLETED"]


def test_a_sweep_writes_its_table_plot_and_config(resumed):
    out, _, frame = resumed
    table = pd.read_csv(out / "trials.csv")
    assert len(table) == 2
    for column in ("trial", "status", "base", "depth", "variant", "learning_rate", "batch_size",
                   "model", "val_error", "epochs", "parameters", "wall_s", "diverged"):
        assert column in table.columns
    assert table["model"].isin(["resnet8", "preact8", "resnet8-gate-exclusive",
                                "preact8-gate-exclusive"]).all()
    assert table["val_error"].between(0, 100).all()
    assert (table["epochs"] == 1).all() and (table["parameters"] > 0).all()
    assert list(table["val_error"]) == sorted(table["val_error"])  # best first
    markdown = (out / "trials.md").read_text().splitlines()
    assert markdown[0].startswith("| trial | status |") and len(markdown) == 4
    assert (out / "trials.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    saved = SweepConfig.from_json((out / "tune.json").read_text())
    assert saved.max_trials == 2 and saved.train["dataset"] == "synthetic"
    assert saved.space == spaces.from_dict(SPACE).to_json()


def test_the_best_model_is_saved_and_exported(resumed):
    out, _, frame = resumed
    best = json.loads((out / "best.json").read_text())
    assert best["model"] == frame.loc[0, "model"]
    assert best["val_error"] == pytest.approx(frame.loc[0, "val_error"])
    model = keras.saving.load_model(out / "best.keras", compile=False)
    assert model.name == best["model"] and model.output_shape == (None, 10)
    saved_model = Path(best["saved_model"])
    assert saved_model.parts[-3:] == ("export", best["model"], "1")
    assert (saved_model / "saved_model.pb").is_file()
    # The trial's model standardises its raw images itself: the export needs no statistics.
    assert keras_resnets.standardization_of(model) is not None
    manifest = json.loads((saved_model / "assets.extra" / "export.json").read_text())
    assert manifest["mean"] == pytest.approx(list(keras_resnets.standardization_of(model)[0]))


def test_resuming_with_another_space_is_refused(resumed):
    out = resumed[0]
    other = {**SPACE, "model": {**SPACE["model"], "depth": 14}}
    with pytest.raises(ValueError, match="holds a different sweep.*space"):
        run_sweep(sweep(out, 3, other))


@pytest.mark.parametrize("model, message", [
    ({"variant": ["", "gate-exlusive"]}, "unknown .*variant.*'gate-exlusive'"),
    ({"depth": [8, 9]}, "Impossible depth 9 in 'resnet9'.*nearest valid depths: 8, 14"),
    ({"width": [1, 2]}, "unknown model keys \\['width'\\]; accepted: base, depth"),
    ({"variant": "", "gate_bias": [-6, -7]}, "gate_bias is swept but no variant"),
])
def test_bad_spaces_are_rejected_before_any_trial(tmp_path, model, message):
    space = {**SPACE, "model": {**SPACE["model"], **model}}
    out = tmp_path / "sweep"
    with pytest.raises(ValueError, match=message):
        run_sweep(sweep(out, 2, space))
    assert not out.exists()


def test_unknown_recipe_keys_and_bad_values_are_rejected():
    with pytest.raises(ValueError, match="unknown recipe keys \\['lr'\\]"):
        spaces.from_dict({"model": {"base": "resnet", "depth": 8}, "recipe": {"lr": [0.1]}})
    with pytest.raises(ValueError, match="batch_size"):
        spaces.from_dict({"model": {"base": "resnet", "depth": 8},
                          "recipe": {"batch_size": [0, 64]}})
    with pytest.raises(ValueError, match="top level takes the keys model and recipe"):
        spaces.from_dict({"model": {"base": "resnet", "depth": 8}, "optimizer": {}})


def test_the_cli_reports_a_bad_space_file(tmp_path, capsys):
    path = tmp_path / "space.json"
    path.write_text(json.dumps({"model": {"base": ["preact"], "depth": [20, 21]}}))
    code = main(["--space", str(path), "--out", str(tmp_path / "sweep"), *FLAGS])
    assert code == 2
    assert "Impossible depth 21" in capsys.readouterr().err
    assert not (tmp_path / "sweep").exists()


@pytest.mark.parametrize("spec", [{"min": 8, "max": 56, "step": 6},
                                  {"min": 16, "max": 256, "step": 2, "sampling": "log"}])
def test_integer_ranges_are_checked_at_every_value_kerastuner_samples(spec):
    dimension = spaces.parse_dimension("depth", spec)
    hp = keras_tuner.HyperParameters()
    dimension.declare(hp)
    assert dimension.candidates() == tuple(hp.space[0].values)


def test_sweep_settings_are_checked():
    with pytest.raises(ValueError, match="Hyperband takes no max_trials"):
        SweepConfig(space=SPACE, train=TRAIN, tuner="hyperband", max_trials=3)
    with pytest.raises(ValueError, match="Hyperband needs --epochs"):
        SweepConfig(space=SPACE, train={**TRAIN, "epochs": None}, tuner="hyperband",
                    max_trials=None)
    with pytest.raises(ValueError, match="Unknown tuner 'grid'"):
        SweepConfig(space=SPACE, train=TRAIN, tuner="grid")


def test_the_cli_refuses_a_model_flag(tmp_path, capsys):
    code = main(["--space", "smoke", "--model", "preact20", "--out", str(tmp_path), *FLAGS])
    assert code == 2 and "the models come from the search space" in capsys.readouterr().err


def test_a_sweep_does_not_record_iterative_inference(tmp_path, capsys):
    """The trainer's flags carry no ``--record-every`` (only ``analysis.record`` measures), and
    a sweep config that asks to record is refused with the command that does."""
    code = main(["--space", "smoke", "--record-every", "1", "--out", str(tmp_path), *FLAGS])
    assert code == 2 and "unrecognized arguments: --record-every" in capsys.readouterr().err
    with pytest.raises(ValueError, match="python -m analysis.record"):
        SweepConfig(space=SPACE, train={**TRAIN, "record_every": 1}, out=str(tmp_path))


def test_bundled_spaces_are_valid():
    for name in ("smoke", "ablation"):
        assert spaces.load(name).dimensions()["base"].candidates()


def test_gate_bias_is_conditional_on_a_gated_variant():
    hypermodel = ZooHyperModel(spaces.from_dict(SPACE), TrainConfig(**TRAIN))
    hp = keras_tuner.HyperParameters()
    hypermodel.values(hp)
    hp.values.update(base="preact", variant="", batch_size=64, learning_rate=0.05)
    plain = hypermodel.trial_config(hp)
    geometry = {"strided_padding": "symmetric"}  # every run config records it
    assert (plain.model, plain.model_overrides) == ("preact8", geometry)
    assert (plain.batch_size, plain.learning_rate) == (64, 0.05)
    hp.values.update(variant="gate-exclusive", gate_bias=-6)
    gated = hypermodel.trial_config(hp)
    assert (gated.model, gated.model_overrides) == ("preact8-gate-exclusive",
                                                    {**geometry, "gate_bias": -6})


def test_a_chief_and_a_worker_complete_a_sweep(tmp_path, free_ports):
    """KerasTuner's own distribution: the chief serves the oracle on 127.0.0.1, the worker
    trains every trial, then the chief writes the results."""
    space = tmp_path / "space.json"
    space.write_text(json.dumps(SPACE))
    out = tmp_path / "sweep"
    command = [sys.executable, "-m", "experiments.tune", "--space", str(space), "--max-trials", "1",
               "--out", str(out), *FLAGS]
    env = {**os.environ, "KERASTUNER_ORACLE_IP": "127.0.0.1",
           "KERASTUNER_ORACLE_PORT": str(free_ports(1)[0]), "TF_CPP_MIN_LOG_LEVEL": "2",
           "CUDA_VISIBLE_DEVICES": ""}
    logs = {role: tmp_path / f"{role}.log" for role in ("chief", "tuner0")}
    processes = {}
    try:
        for role in ("chief", "tuner0"):
            with open(logs[role], "w") as log:
                processes[role] = subprocess.Popen(
                    command, env={**env, "KERASTUNER_TUNER_ID": role}, stdout=log,
                    stderr=subprocess.STDOUT, cwd=Path(__file__).parents[1])
        codes = {role: processes[role].wait(timeout=240) for role in ("tuner0", "chief")}
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.kill()
                process.wait(timeout=30)
    text = {role: path.read_text() for role, path in logs.items()}
    assert codes == {"tuner0": 0, "chief": 0}, text
    table = pd.read_csv(out / "trials.csv")
    assert list(table["status"]) == ["COMPLETED"]
    assert "val_loss:" in text["tuner0"] and "val_loss:" not in text["chief"]  # who trained
    assert (out / "best.keras").is_file()
    assert np.isfinite(table["val_error"]).all()


def test_a_bayesian_sweep_runs_end_to_end(tmp_path):
    space = {"model": {"base": "resnet", "depth": 8},
             "recipe": {"learning_rate": {"min": 0.01, "max": 0.2, "sampling": "log"}}}
    config = SweepConfig(space=space, train={**TRAIN, "out": str(tmp_path)}, tuner="bayesian",
                         max_trials=2, out=str(tmp_path))
    frame = run_sweep(config)
    assert list(frame["status"]) == ["COMPLETED", "COMPLETED"]
    assert frame["learning_rate"].nunique() == 2


ORACLE = {"KERASTUNER_ORACLE_IP": "127.0.0.1", "KERASTUNER_ORACLE_PORT": "8000"}


@pytest.mark.parametrize("env, worker", [
    ({}, False),
    ({**ORACLE, "KERASTUNER_TUNER_ID": "chief"}, False),
    ({**ORACLE, "KERASTUNER_TUNER_ID": "tuner0"}, True),
    ({"KERASTUNER_TUNER_ID": "tuner0"}, False),  # no oracle address: not distributed
])
def test_is_worker_reads_kerastuners_variables(monkeypatch, env, worker):
    from experiments.tune import DISTRIBUTED_TUNING, is_worker

    for name in DISTRIBUTED_TUNING:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert is_worker() is worker


def test_an_incomplete_kerastuner_cluster_is_a_clear_error(monkeypatch):
    from experiments.tune import is_worker

    monkeypatch.setenv("KERASTUNER_ORACLE_IP", "127.0.0.1")
    monkeypatch.delenv("KERASTUNER_ORACLE_PORT", raising=False)
    monkeypatch.delenv("KERASTUNER_TUNER_ID", raising=False)
    with pytest.raises(ValueError, match="KERASTUNER_TUNER_ID and KERASTUNER_ORACLE_PORT not"):
        is_worker()


def test_resuming_accepts_the_same_folder_spelled_otherwise(resumed, monkeypatch):
    """``DIR/``, ``DIR`` and a relative path to it are one sweep folder: not "differs in out"."""
    from experiments.tune import check_resumable

    out = resumed[0]
    check_resumable(sweep(f"{out}/", 2))
    monkeypatch.chdir(out.parent)
    check_resumable(sweep(out.name, 2))
    check_resumable(sweep(f"./{out.name}/", 3))  # the budget may change too


def test_resuming_with_other_training_settings_names_them(resumed):
    out = resumed[0]
    other = SweepConfig(space=SPACE, train={**TRAIN, "epochs": 2, "out": str(out)},
                        tuner="random", max_trials=2, out=str(out))
    with pytest.raises(ValueError, match="holds a different sweep.*differs in train: epochs"):
        run_sweep(other)


def diverging_space(path, rates) -> Path:
    """A search-space file over ``rates`` for resnet8 alone."""
    path.write_text(json.dumps({"model": {"base": "resnet", "depth": 8},
                                "recipe": {"learning_rate": list(rates)}}))
    return path


def test_a_diverged_trial_is_marked_and_never_the_best(tmp_path):
    out = tmp_path / "sweep"
    space = {"model": {"base": "resnet", "depth": 8}, "recipe": {"learning_rate": [0.05, 1e30]}}
    frame = run_sweep(sweep(out, 2, space)).set_index("learning_rate")
    assert frame.loc[1e30, "status"] == "FAILED" and frame.loc[1e30, "diverged"]
    assert pd.isna(frame.loc[1e30, "val_error"])
    assert frame.loc[0.05, "status"] == "COMPLETED" and not frame.loc[0.05, "diverged"]
    table = pd.read_csv(out / "trials.csv")
    assert sorted(table["diverged"]) == [False, True]
    best = json.loads((out / "best.json").read_text())
    assert best["hyperparameters"]["learning_rate"] == 0.05
    weights = keras.saving.load_model(out / "best.keras", compile=False).get_weights()
    assert all(np.isfinite(w).all() for w in weights)
    marker = json.loads((out / "trials" / f"trial_{frame.loc[1e30, 'trial']}" /
                         "diverged.json").read_text())
    assert marker["diverged"] and "Trial diverged: the loss became" in marker["error"]


def test_a_sweep_whose_trials_all_diverged_exits_1_and_exports_nothing(tmp_path, capsys):
    """Three diverged trials in a row do not stop the sweep (they are results), and with no
    finished trial there is no best model: exit 1, one ``error:`` line."""
    space = diverging_space(tmp_path / "space.json", [1e28, 1e29, 1e30])
    out = tmp_path / "sweep"
    code = main(["--space", str(space), "--max-trials", "3", "--out", str(out), *FLAGS])
    error = capsys.readouterr().err
    assert code == 1, error
    assert error.startswith("error: No trial finished: 3 of 3 diverged") and error.count("\n") == 1
    table = pd.read_csv(out / "trials.csv")
    assert list(table["status"]) == ["FAILED"] * 3 and table["diverged"].all()
    assert not (out / "best.keras").exists() and not (out / "best.json").exists()
    assert not (out / "export").exists()


def test_a_sweep_stops_after_three_trials_in_a_row_crash(tmp_path, monkeypatch):
    """Trials that crash (not diverge) stop the sweep after three in a row, with one line."""
    from trainers.cli import RunFailed

    def crash(self, hp, model, **kwargs):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(ZooHyperModel, "fit", crash)
    out = tmp_path / "sweep"
    space = {"model": {"base": "resnet", "depth": 8},
             "recipe": {"learning_rate": [0.01, 0.02, 0.05, 0.1, 0.2]}}
    with pytest.raises(RunFailed, match="3 trials in a row failed without diverging; the last "
                                        "with RuntimeError: out of memory"):
        run_sweep(sweep(out, 5, space))
    assert len(list((out / "trials").glob("trial_*"))) == 3
