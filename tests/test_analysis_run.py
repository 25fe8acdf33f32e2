"""analysis.run: the CLI on a run folder (synthetic data, an untrained saved model)."""

import json

import pandas as pd
import pytest

import keras_resnets
from analysis.run import main
from trainers.config import TrainConfig


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """What ``trainers.train`` leaves behind, minus the training: config.json + final.keras."""
    folder = tmp_path_factory.mktemp("run")
    config = TrainConfig(model="preact14", dataset="synthetic", train_size=64, test_size=16,
                         batch_size=16, out=str(folder))
    config.save(folder / "config.json")
    keras_resnets.build("preact14").save(folder / "final.keras")
    return folder


def test_writes_tables_figures_and_report(run_dir, capsys):
    out = run_dir / "analysis"
    assert main([str(run_dir), "--limit", "6", "--batch-size", "6", "--steps", "2"]) == 0
    blocks = pd.read_csv(out / "blocks.csv")
    assert len(blocks) == 6 and {"cosine", "drop_accuracy", "l2_ratio"} <= set(blocks.columns)
    assert len(pd.read_csv(out / "unroll.csv")) == 2 * 3
    summary = json.loads((out / "summary.json").read_text())
    assert summary["examples"] == 6 and summary["dataset"] == "synthetic"
    assert json.loads((out / "analysis_config.json").read_text())["limit"] == 6
    report = (out / "report.md").read_text()
    for figure in ("fig3_cosine.png", "fig4_drop.png", "fig5_l2_ratio.png",
                   "fig6_intermediate.png", "fig7_unroll.png"):
        assert (out / figure).stat().st_size > 0 and f"]({figure})" in report
    assert "| block | stage | index_in_stage |" in report
    assert "Results in" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["{missing}"], "is not a finished training run: it lacks final.keras, config.json"),
    (["{run}", "--measures", "cosine,entropy"], "Unknown measures"),
    (["{run}", "--limit", "0"], "must be positive"),
    (["{run}", "--alphas", "1.5"], "alphas must be in"),
])
def test_bad_input_is_a_clear_error(run_dir, tmp_path, capsys, argv, message):
    argv = [a.format(missing=tmp_path / "nothing", run=run_dir) for a in argv]
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_unrolling_a_model_that_cannot_unroll_is_refused_before_reading_data(tmp_path, capsys):
    TrainConfig(model="resnet8", dataset="no-such-dataset", out=str(tmp_path)).save(
        tmp_path / "config.json")
    keras_resnets.build("resnet8").save(tmp_path / "final.keras")
    assert main([str(tmp_path), "--measures", "unroll"]) == 2
    assert "last block changes the shape" in capsys.readouterr().err
