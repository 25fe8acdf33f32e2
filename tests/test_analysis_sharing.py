"""analysis.sharing: the Figure 8 experiment's models, baseline choice and results."""

import json
from pathlib import Path

import pandas as pd
import pytest

import trainers.train
from analysis import sharing
from analysis.sharing import SharingConfig, matching_baseline

@pytest.mark.slow
def test_the_baseline_matches_the_shared_parameter_count():
    assert matching_baseline(110, 13) == "resnet38"  # the paper's pairing
    assert matching_baseline(20, 2) == "resnet14"


def test_bad_settings_and_reduced_scale_labels():
    with pytest.raises(ValueError, match=r"--shared must be in \[1, 2\] for resnet20"):
        SharingConfig(depth=20, shared=3)
    with pytest.raises(ValueError, match="Impossible depth 21"):
        SharingConfig(depth=21)
    assert SharingConfig().reduced == []
    assert len(SharingConfig(depth=20, shared=2, epochs=3, train_size=64).reduced) == 3


def fake_train(config):
    """Stands in for trainers.train.train: a history.csv and the metrics it returns."""
    error = {"resnet20-shared": 40.0, "resnet20-shared-bn": 30.0}.get(config.model, 20.0)
    history = pd.DataFrame({"epoch": [1, 2], "loss": [2.0, 1.0], "accuracy": [0.5, 0.9],
                            "val_error": [error + 5, error]})
    run = Path(config.out)
    run.mkdir(parents=True)
    history.to_csv(run / "history.csv", index=False)
    return {"test_error": error, "parameters": 1000, "epochs": 2}


def test_trains_three_runs_and_writes_them_side_by_side(tmp_path, monkeypatch):
    monkeypatch.setattr(trainers.train, "train", fake_train)
    config = SharingConfig(dataset="synthetic", epochs=2, out=str(tmp_path), depth=20,
                           shared=2, train_size=64, test_size=16, batch_size=16)
    table = sharing.run_sharing(config)
    assert list(table["model"]) == ["resnet20-shared", "resnet20-shared-bn", "resnet14"]
    assert list(table["test_error"]) == [40.0, 30.0, 20.0]
    assert table["train_error"].tolist() == pytest.approx([10.0] * 3)
    assert json.loads(table["overrides"][0]) == {"shared_blocks": 2}
    saved = pd.read_csv(tmp_path / "sharing.csv")
    assert list(saved.columns) == list(sharing.COLUMNS)
    report = (tmp_path / "sharing.md").read_text()
    assert "REDUCED SCALE" in report and "| shared (naive) | resnet20-shared |" in report
    assert (tmp_path / "sharing.png").stat().st_size > 0
    assert json.loads((tmp_path / "sharing_config.json").read_text())["depth"] == 20


def test_cli_refuses_bad_settings(capsys):
    assert sharing.main(["--depth", "20", "--shared", "5"]) == 2
    assert "--shared must be in" in capsys.readouterr().err
