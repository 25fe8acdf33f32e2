"""The ablation runner: which rows train, the results table against the paper, re-runs."""

import dataclasses
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis import plots
from experiments import ablate
from experiments.ablate import AblationConfig, run_ablation, select_rows
from experiments.study import run_status
from trainers.config import TrainConfig
from experiments.ledger import Ledger
from trainers.train import TrainingDiverged

DIVERGING = "scale0"  # the stub below diverges on this variant, like the paper's plain net


class StubTrainer:
    """Stands in for ``trainers.train.train``: writes ``metrics.json`` with an error that
    depends on the model and seed, or raises ``TrainingDiverged`` for ``DIVERGING`` models."""

    def __init__(self):
        self.calls = []

    def __call__(self, config: TrainConfig) -> dict:
        self.calls.append(config)
        if config.model.endswith(DIVERGING):
            raise TrainingDiverged("Training diverged: the loss became nan at epoch 1, batch 3")
        metrics = {"test_error": 10.0 + len(self.calls) % 7 + config.seed, "parameters": 1234}
        Path(config.out).mkdir(parents=True, exist_ok=True)
        (Path(config.out) / "history.csv").write_text(
            f"epoch,loss,accuracy,val_error\n1,{config.seed + 2.5},0.5,{metrics['test_error']}\n")
        (Path(config.out) / "metrics.json").write_text(json.dumps(metrics))
        return metrics


def config(tmp_path, **changes) -> AblationConfig:
    settings = dict(table=1, depth=8, epochs=1, seeds=2, dataset="synthetic",
                    train_size=64, test_size=32, batch_size=32, out=str(tmp_path / "table1"))
    return AblationConfig(**{**settings, **changes})


def test_table1_rows_at_reduced_depth_keep_variants_and_overrides(tmp_path):
    rows = select_rows(config(tmp_path))
    assert len(rows) == 11
    names = [row.name for row in rows]
    assert names[0] == "resnet8" and "resnet8-gate-exclusive-gate_bias-7" in names
    assert len(set(names)) == 11, "every row needs its own run folder"
    assert [row.paper_text() for row in rows].count("fail") == 4


def test_depth_merges_rows_that_become_one_model(tmp_path):
    rows = select_rows(config(tmp_path, table=2, depth=20))
    assert [row.name for row in rows] == ["resnet20", "resnet20-bn-after-add",
                                          "resnet20-relu-before-add", "resnet20-relu-preact",
                                          "preact20"]
    assert rows[0].paper_text() == "6.61 (ResNet-110); 5.93 (ResNet-164)"
    assert len(select_rows(config(tmp_path, table=2, depth=None))) == 10


def test_table3_dataset_rule(tmp_path):
    on_cifar100 = select_rows(config(tmp_path, table=3, depth=None, dataset="cifar100"))
    assert [row.paper[0].error for row in on_cifar100] == [25.16, 24.33, 27.82, 22.71]
    on_synthetic = select_rows(config(tmp_path, table=3, depth=8))
    assert {p.dataset for row in on_synthetic for p in row.paper} == {"cifar10"}
    assert [row.name for row in on_synthetic] == ["resnet8-1conv", "preact8-1conv", "resnet8",
                                                  "preact8"]
    assert on_synthetic[2].case == "ResNet-8: original"


@pytest.mark.parametrize("changes, message", [
    ({"depth": 9}, "row 1 .*Impossible depth 9"),
    ({"rows": (12,)}, r"no rows \[12\].*1..11"),
    ({"table": 4}, "Unknown table"),
    ({"seeds": 0}, "must be positive"),
])
def test_bad_settings_are_refused_before_training(tmp_path, changes, message):
    trainer = StubTrainer()
    with pytest.raises(ValueError, match=message):
        run_ablation(config(tmp_path, **changes), trainer)
    assert not trainer.calls


@pytest.fixture(scope="module")
def sweep_and_figures(tmp_path_factory):
    """The stub sweep's folder, trainer and table, and ``{file name: Figure}`` of what it drew."""
    tmp_path = tmp_path_factory.mktemp("ablate")
    trainer = StubTrainer()
    figures, save = {}, plots._save

    def record(figure, path, *args, **kwargs):
        figures[Path(path).name] = figure
        return save(figure, path, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(plots, "_save", record)
        table = run_ablation(config(tmp_path), trainer)
    return tmp_path, trainer, table, figures


@pytest.fixture(scope="module")
def stub_sweep(sweep_and_figures):
    return sweep_and_figures[:3]


def test_results_table_against_the_paper(stub_sweep):
    tmp_path, trainer, table = stub_sweep
    assert len(trainer.calls) == 22  # 11 rows x 2 seeds
    assert {c.out.rsplit("/", 1)[-1] for c in trainer.calls} >= {
        "resnet8-seed0", "resnet8-gate-exclusive-gate_bias0-seed1"}
    assert {(c.epochs, c.train_size, c.batch_size, c.dataset) for c in trainer.calls} == {
        (1, 64, 32, "synthetic")}
    saved = pd.read_csv(tmp_path / "table1" / "results.csv")
    assert list(saved["row"]) == list(range(1, 12))
    first = saved.iloc[0]
    assert first["paper_error"] == "6.61" and first["seeds_finished"] == 2
    errors = [m for m in (json.loads((tmp_path / "table1" / "runs" / f"resnet8-seed{s}" /
                                      "metrics.json").read_text())["test_error"] for s in (0, 1))]
    assert first["error_median"] == pytest.approx(sum(errors) / 2)
    assert first["error_min"] == min(errors) and first["error_max"] == max(errors)
    plain = saved[saved["model"] == "resnet8-scale0"].iloc[0]
    assert plain["paper_error"] == "fail" and plain["outcome"] == "diverged"
    assert plain["seeds_diverged"] == 2 and math.isnan(plain["error_median"])
    assert saved.loc[saved["model"] != "resnet8-scale0", "outcome"].eq("finished").all()


def test_markdown_header_says_reduced_scale(stub_sweep):
    tmp_path, _, _ = stub_sweep
    text = (tmp_path / "table1" / "results.md").read_text()
    assert "Reduced scale:" in text
    for phrase in ("depth 8 instead of 110", "1 epoch instead of ~164",
                   "synthetic data instead of cifar10", "first 64 training images",
                   "batch 32 instead of 128"):
        assert phrase in text
    full = f"python -m experiments.ablate --table 1 --dataset cifar10 --seeds 5 --out " \
           f"{tmp_path / 'table1'}-full"
    assert f"Full run: `{full}`" in text
    assert "| 2 | constant scaling 0 / 1 | resnet8-scale0 |  | fail |  |  |  | 0/2 | diverged |" \
        in text
    assert "| 1 | original | resnet8 |  | 6.61 |" in text


def test_plot_and_config_are_written(sweep_and_figures):
    tmp_path, _, table, figures = sweep_and_figures
    png = (tmp_path / "table1" / "results.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000
    ax, = figures["results.png"].axes
    assert ax.get_title() == "He et al. 2016, Table 1: test error (reduced scale)"
    ticks = [tick.get_text() for tick in ax.get_xticklabels()]
    assert len(ticks) == 11 and ticks[0] == "1. original"
    assert ticks[1] == "2. constant scaling 0 / 1"
    assert [text.get_text() for text in ax.get_legend().get_texts()] == [
        "measured (median, min-max)", "paper"]
    measured, paper = (container for container in ax.containers  # bars, not error bars
                       if hasattr(container, "patches"))
    np.testing.assert_array_equal([bar.get_height() for bar in measured], table["error_median"])
    assert paper[0].get_height() == 6.61 and math.isnan(paper[1].get_height())  # "fail"
    assert {"fail", "diverged"} <= {text.get_text() for text in ax.texts}
    curves = figures["curves.png"]
    assert "Table 1: error per epoch of each row's seed-0 run" in curves.get_suptitle()
    train, test = curves.axes
    assert len(test.get_legend().get_texts()) == len(test.lines) == 10  # every finished row

    written = json.loads((tmp_path / "table1" / "ablation.json").read_text())
    assert {key: written[key] for key in ("table", "depth", "epochs", "seeds", "dataset",
                                          "train_size", "test_size", "batch_size", "out")} == {
        "table": 1, "depth": 8, "epochs": 1, "seeds": 2, "dataset": "synthetic",
        "train_size": 64, "test_size": 32, "batch_size": 32, "out": str(tmp_path / "table1")}
    saved = AblationConfig.from_json((tmp_path / "table1" / "ablation.json").read_text())
    assert saved == config(tmp_path)


def test_curves_show_each_rows_seed0_history(stub_sweep):
    tmp_path, _, _ = stub_sweep
    histories = ablate.row_histories(config(tmp_path), select_rows(config(tmp_path)))
    assert "resnet8-scale0" not in histories, "a diverged stub run leaves no history"
    assert len(histories) == 10
    seed0 = json.loads((tmp_path / "table1" / "runs" / "resnet8-seed0" / "metrics.json")
                       .read_text())["test_error"]
    assert list(histories["resnet8"]["val_error"]) == [seed0]
    png = (tmp_path / "table1" / "curves.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000


def test_rerun_skips_finished_and_diverged_runs(stub_sweep):
    tmp_path, _, table = stub_sweep
    again = StubTrainer()
    rerun = run_ablation(config(tmp_path), again)
    assert again.calls == []
    pd.testing.assert_frame_equal(rerun, table)
    more_seeds = StubTrainer()
    run_ablation(config(tmp_path, seeds=3, rows=(1, 2)), more_seeds)
    assert [c.out.rsplit("/", 1)[-1] for c in more_seeds.calls] == [
        "resnet8-seed2", "resnet8-scale0-seed2"]
    saved = pd.read_csv(tmp_path / "table1" / "results.csv")
    assert len(saved) == 11, "the table keeps every row; --rows limits what trains"
    assert list(saved["outcome"][:3]) == ["finished", "diverged", "2/3 finished"]


def test_output_folder_refuses_other_settings(stub_sweep):
    tmp_path, _, _ = stub_sweep
    with pytest.raises(ValueError, match="other settings.*epochs"):
        run_ablation(config(tmp_path, epochs=2), StubTrainer())

@pytest.mark.slow
def test_one_real_tiny_run_end_to_end(tmp_path):
    """The real trainer on synthetic data, through the command line."""
    out = tmp_path / "real"
    assert ablate.main(["--table", "1", "--rows", "1", "--depth", "8", "--epochs", "1",
                 "--dataset", "synthetic", "--train-size", "64", "--test-size", "32",
                 "--batch-size", "32", "--strategy", "default", "--out", str(out)]) == 0
    metrics = json.loads((out / "runs" / "resnet8-seed0" / "metrics.json").read_text())
    assert metrics["epochs"] == 1 and (out / "runs" / "resnet8-seed0" / "final.keras").is_file()
    saved = pd.read_csv(out / "results.csv")
    assert saved["error_median"][0] == pytest.approx(metrics["test_error"])
    assert saved["outcome"][0] == "finished" and saved["paper_error"][0] == "6.61"
    assert (saved["outcome"][1:] == "pending").all()


def test_cli_exits_2_on_bad_settings(tmp_path, capsys):
    assert ablate.main(["--table", "2", "--depth", "21", "--out", str(tmp_path / "t")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: Table 2 row 1") and "Traceback" not in err


def test_a_shared_runs_folder_refuses_a_run_of_another_recipe(tmp_path):
    config = AblationConfig(table=2, depth=8, epochs=1, dataset="synthetic",
                            out=str(tmp_path / "t2"), runs=str(tmp_path / "runs"))
    row = select_rows(config)[0]
    run = ablate.train_config(config, row, seed=0)
    Path(run.out).mkdir(parents=True)
    ablate.TrainConfig(**{**run.__dict__, "epochs": 5}).save(Path(run.out) / "config.json")
    with pytest.raises(ValueError, match="holds a run with a different config.*'epochs': "
                                         "\\(5, 1\\)"):
        run_status(run, config.open_ledger())


def committed_files(stub_sweep, tmp_path) -> Path:
    """What a fresh clone of the stub sweep holds: its ledger, histories and tables, no runs."""
    shutil.copytree(stub_sweep[0] / "table1", tmp_path / "table1",
                    ignore=shutil.ignore_patterns("runs"))
    return tmp_path / "table1"


def test_the_ledger_alone_completes_a_table_from_a_fresh_clone(stub_sweep, tmp_path):
    """Only ``runs.csv`` and ``history/`` are committed: without the run folders nothing
    retrains and the results are the same."""
    _, trainer, table = stub_sweep
    out = committed_files(stub_sweep, tmp_path)
    ledger = pd.read_csv(out / "runs.csv")
    assert set(ledger["run"]) >= {Path(c.out).name for c in trainer.calls}
    assert set(ledger["outcome"]) == {"finished", "diverged"}
    assert TrainConfig.from_json(ledger["config"][0]).model == ledger["model"][0]
    run_history = stub_sweep[0] / "table1" / "runs" / "resnet8-seed1" / "history.csv"
    assert (out / "history" / "resnet8-seed1.csv").read_text() == run_history.read_text()
    again = StubTrainer()
    pd.testing.assert_frame_equal(run_ablation(config(tmp_path), again), table)
    assert again.calls == []


def test_the_ledger_refuses_a_run_of_another_recipe(stub_sweep, tmp_path):
    out = committed_files(stub_sweep, tmp_path)
    (out / "ablation.json").unlink()
    with pytest.raises(ValueError, match="runs.csv records resnet8-seed0 with other settings.*"
                                         "'batch_size': \\(32, 16\\)"):
        run_ablation(config(tmp_path, batch_size=16), StubTrainer())


def test_run_folders_from_before_the_ledger_are_recorded_not_retrained(tmp_path):
    settings = config(tmp_path, table=2, depth=8, seeds=1, rows=(1,))
    run = ablate.train_config(settings, select_rows(settings)[0], seed=0)
    StubTrainer()(run)
    run.save(Path(run.out) / "config.json")
    again = StubTrainer()
    run_ablation(settings, again)
    assert again.calls == []
    assert list(pd.read_csv(tmp_path / "table1" / "runs.csv")["run"]) == ["resnet8-seed0"]


def test_runs_recorded_before_the_symmetric_geometry_are_reused_only_with_same_padding(
        tmp_path):
    """A ledger row written before runs recorded ``strided_padding`` trained with Keras's
    "same" padding: ``--strided-padding same`` reuses it, the default geometry refuses it."""
    settings = config(tmp_path, table=2, depth=8, seeds=1, rows=(1,), strided_padding="same")
    run = ablate.train_config(settings, select_rows(settings)[0], seed=0)
    assert run.model_overrides["strided_padding"] == "same"
    old = json.loads(run.to_json())
    del old["model_overrides"]["strided_padding"]  # as configs were written before
    Ledger(tmp_path / "runs.csv").record(TrainConfig.from_json(json.dumps(old)), "finished",
                                         {"test_error": 30.0})
    reused = StubTrainer()
    run_ablation(dataclasses.replace(settings, ledger=str(tmp_path / "runs.csv")), reused)
    assert reused.calls == []
    with pytest.raises(ValueError, match="records resnet8-seed0 trained with strided_padding "
                                         "'same', but this study asks for 'symmetric'; add "
                                         "--strided-padding same"):
        run_ablation(dataclasses.replace(settings, ledger=str(tmp_path / "runs.csv"),
                                         strided_padding="symmetric"), StubTrainer())
