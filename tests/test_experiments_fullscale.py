"""``experiments.fullscale``: the plan's runs are trained in order over calls, a finished run
goes into the ledger and is never trained again, and the committed plan is a valid one."""

from pathlib import Path

import pandas as pd
import pytest

import keras_resnets
from experiments import fullscale
from test_array_fit import write_cifar
from trainers import array_fit

pytestmark = pytest.mark.slow  # pytest -m 'not slow' skips this module

PLAN = Path(__file__).resolve().parents[1] / "results" / "fullscale" / "plan.csv"
COMMAND = ("KERAS_BACKEND=jax python -m trainers.array_fit --model preact8 --dataset cifar10 "
           "--data-dir /tmp/data --out runs/fullscale/{run} --epochs 164 --batch-size 32 "
           "--seed {seed}")


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    """A two-run plan and one call of the runner with no time: (its settings, the folder of
    its plan and ledger, its output lines)."""
    folder = tmp_path_factory.mktemp("fullscale")
    plan = folder / "plan.csv"
    pd.DataFrame({"run": ["first", "second"],
                  "command": [COMMAND.format(run="first", seed=0),
                              COMMAND.format(run="second", seed=1)]}).to_csv(plan, index=False)
    settings = {"minutes": 0, "plan": str(plan), "ledger": str(folder / "runs.csv"),
                "runs": str(folder / "runs"), "data_dir": str(write_cifar(folder / "data")),
                "epochs": 1, "train_size": 64, "test_size": 32}
    return settings, folder, fullscale.run_plan(fullscale.FullscaleConfig(**settings))


def test_a_dry_run_finishes_the_first_run_and_records_it(dry_run):
    _, folder, lines = dry_run
    ledger = pd.read_csv(folder / "runs.csv")
    assert list(ledger["run"]) == ["first"] and list(ledger["outcome"]) == ["finished"]
    assert (folder / "history" / "first.csv").is_file()
    assert lines[0].startswith("first: finished") and lines[1] == "second: waiting"


def test_the_next_call_trains_only_what_the_ledger_lacks(dry_run, monkeypatch, capsys):
    settings, folder, _ = dry_run
    argv = [word for name, value in settings.items()
            for word in (f"--{name.replace('_', '-')}", str(value))]
    trained = []
    train = array_fit.train_arrays

    def spy(config, data, stop_after=None):
        trained.append(Path(config.out).name)
        return train(config, data, stop_after)

    monkeypatch.setattr(array_fit, "train_arrays", spy)
    assert fullscale.main(argv) == 0
    assert trained == ["second"]
    assert list(pd.read_csv(folder / "runs.csv")["run"]) == ["first", "second"]
    assert "first: in the ledger (finished" in capsys.readouterr().out


def test_a_run_finished_in_its_folder_is_recorded_without_training(dry_run, tmp_path,
                                                                    monkeypatch):
    """A call cut off after a run finished but before the ledger was written."""
    settings, _, _ = dry_run
    plan = tmp_path / "plan.csv"
    pd.read_csv(settings["plan"]).head(1).to_csv(plan, index=False)
    monkeypatch.setattr(array_fit, "train_arrays", lambda *args, **kwargs: pytest.fail("trained"))
    ledger = tmp_path / "runs.csv"
    lines = fullscale.run_plan(fullscale.FullscaleConfig(
        **{**settings, "plan": str(plan), "ledger": str(ledger)}))
    assert lines[0].startswith("first: finished") and list(pd.read_csv(ledger)["run"]) == ["first"]


def test_the_committed_plan_trains_table_2_first_at_full_length():
    configs = fullscale.plan_configs(fullscale.FullscaleConfig(minutes=0, plan=str(PLAN)))
    assert [c.model for c in configs[:4]] == ["resnet110", "preact110", "resnet164", "preact164"]
    assert all(c.epochs == 164 and c.train_size is None and c.seed == 0 for c in configs)
    assert {c.model for c in configs} <= set(keras_resnets.list_models())
    assert pd.read_csv(PLAN)["est_h100_minutes"].gt(0).all()


def test_a_plan_command_with_a_time_budget_is_refused(tmp_path, capsys):
    plan = tmp_path / "plan.csv"
    pd.DataFrame({"command": [COMMAND.format(run="x", seed=0).replace(
        "--epochs 164", "--time-budget 60")]}).to_csv(plan, index=False)
    assert fullscale.main(["--minutes", "1", "--plan", str(plan)]) == 2
    assert "gives --epochs, not --time-budget" in capsys.readouterr().err
