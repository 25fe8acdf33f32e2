"""analysis.run: the CLI on a run folder (synthetic data, an untrained saved model), a foreign
model file and a named pretrained net."""

import dataclasses
import json

import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

import keras_resnets
from analysis.run import main, scaled
from analysis.options import DEFAULT_ALPHAS
from trainers.config import TrainConfig

pytestmark = pytest.mark.slow  # pytest -m 'not slow' skips this module


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """What ``trainers.train`` leaves behind, minus the training: config.json + final.keras (a
    model that standardises its raw images)."""
    folder = tmp_path_factory.mktemp("run")
    config = TrainConfig(model="preact14", dataset="synthetic", train_size=64, test_size=16,
                         batch_size=16, out=str(folder))
    config.save(folder / "config.json")
    standardize = ((127.5,) * 3, (64.0,) * 3)
    keras_resnets.build("preact14", standardize=standardize).save(folder / "final.keras")
    return folder


def test_a_run_whose_model_does_not_standardise_is_refused(run_dir, tmp_path, capsys):
    """The run's pipeline gives raw images; a model without a standardize layer would misread
    them, so the analysis stops before any measurement and says what to do."""
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "config.json").write_text((run_dir / "config.json").read_text())
    keras_resnets.build("preact14").save(folder / "final.keras")
    assert main([str(folder), "--limit", "4", "--out", str(tmp_path / "analysis")]) == 2
    assert "no standardize layer" in capsys.readouterr().err
    assert not (tmp_path / "analysis" / "blocks.csv").exists()


def test_writes_tables_figures_and_report(run_dir, capsys):
    out = run_dir / "analysis"
    assert main([str(run_dir), "--limit", "6", "--batch-size", "6", "--steps", "2"]) == 0
    blocks = pd.read_csv(out / "blocks.csv")
    assert len(blocks) == 6 and {"cosine", "drop_accuracy", "l2_ratio"} <= set(blocks.columns)
    unroll = pd.read_csv(out / "unroll.csv")
    assert len(unroll) == len(DEFAULT_ALPHAS) * 3 * 3  # alphas x groups x steps 0..2
    borderline = pd.read_csv(out / "borderline.csv")
    assert list(borderline["block"].unique()) == [4, 5]  # preact14: the head reads 2 blocks
    assert set(blocks["split"]) == set(unroll["split"]) == {"test"}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["splits"]["test"]["examples"] == 6 and summary["dataset"] == "synthetic"
    assert json.loads((out / "analysis_config.json").read_text())["limit"] == 6
    report = (out / "report.md").read_text()
    for figure in ("fig3_cosine.png", "fig4_drop.png", "fig5_l2_ratio.png",
                   "fig6_intermediate.png", "fig6_borderline.png", "fig7_unroll.png"):
        assert (out / figure).stat().st_size > 0 and f"]({figure})" in report
    assert "| block | stage | index_in_stage |" in report
    assert "Results in" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["{missing}"], "is not a finished training run: it lacks final.keras, config.json"),
    (["{run}", "--measures", "cosine,entropy"], "Unknown measures"),
    (["{run}", "--limit", "0"], "must be positive"),
    (["{run}", "--alphas", "1.5"], "alphas must be in"),
    (["{run}", "--alphas", "0.5", "0.5"], "alphas must be distinct"),
    (["{run}", "--last-blocks", "0"], "must be positive"),
    (["{run}", "--out", "{run}/config.json"], "is a file, not a folder"),  # before measuring
])
def test_bad_input_is_a_clear_error(run_dir, tmp_path, capsys, argv, message):
    argv = [a.format(missing=tmp_path / "nothing", run=run_dir) for a in argv]
    assert main(argv) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["--measures", "unroll"], "last block changes the shape"),
    (["--measures", "borderline", "--last-blocks", "2"], "accepted: 1 to 1"),
])
def test_a_model_without_the_blocks_asked_for_is_refused_before_reading_data(
        tmp_path, capsys, argv, message):
    TrainConfig(model="resnet8", dataset="no-such-dataset", out=str(tmp_path)).save(
        tmp_path / "config.json")
    keras_resnets.build("resnet8").save(tmp_path / "final.keras")
    assert main([str(tmp_path), *argv]) == 2
    assert message in capsys.readouterr().err


def test_both_splits_in_one_analysis(run_dir, tmp_path):
    out = tmp_path / "both"
    assert main([str(run_dir), "--split", "both", "--limit", "4", "--batch-size", "4",
                 "--measures", "cosine,l2,borderline,unroll", "--steps", "1", "--alphas", "1",
                 "0.1", "--updates", "scaled", "norm", "--out", str(out)]) == 0
    blocks = pd.read_csv(out / "blocks.csv")
    assert list(blocks["split"].unique()) == ["train", "test"] and len(blocks) == 2 * 6
    unroll = pd.read_csv(out / "unroll.csv")
    assert len(unroll) == 2 * 2 * 2 * 3 * 2  # splits x updates x alphas x groups x steps
    assert set(pd.read_csv(out / "borderline.csv")["split"]) == {"train", "test"}
    summary = json.loads((out / "summary.json").read_text())
    assert {split: scores["examples"] for split, scores in summary["splits"].items()} == {
        "train": 4, "test": 4}
    assert "- train: examples 4" in (out / "report.md").read_text()


def test_a_rerun_with_fewer_measures_leaves_no_stale_results(run_dir, tmp_path):
    out = tmp_path / "analysis"
    common = [str(run_dir), "--limit", "4", "--batch-size", "4", "--out", str(out)]
    assert main(common + ["--measures", "cosine,unroll", "--steps", "1"]) == 0
    assert (out / "unroll.csv").is_file() and (out / "fig7_unroll.png").is_file()
    (out / "notes.txt").write_text("mine")  # not the analysis' own: kept
    assert main(common + ["--measures", "l2"]) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "analysis_config.json", "blocks.csv", "fig5_l2_ratio.png", "notes.txt", "report.md",
        "summary.json"]


# A model file or a named pretrained net instead of a run folder.


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    """A small hand-written functional residual net (no zoo layer) saved as a .keras file."""
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(4, 3, padding="same")(inputs)
    for _ in range(2):
        branch = keras.layers.Conv2D(4, 3, padding="same")(keras.layers.ReLU()(x))
        x = keras.layers.Add()([x, branch])
    logits = keras.layers.Dense(10)(keras.layers.GlobalAveragePooling2D()(x))
    path = tmp_path_factory.mktemp("foreign") / "foreign.keras"
    keras.Model(inputs, logits).save(path)
    return path


def test_a_foreign_model_file_is_analysed_on_the_dataset_asked_for(model_file, tmp_path):
    out = tmp_path / "out"
    assert main([str(model_file), "--dataset", "synthetic", "--input-scaling", "unit",
                 "--limit", "4", "--batch-size", "4", "--measures", "cosine,l2,drop",
                 "--out", str(out)]) == 0
    blocks = pd.read_csv(out / "blocks.csv")
    assert len(blocks) == 2 and blocks["cosine"].between(-1, 1).all()
    assert json.loads((out / "analysis_config.json").read_text())["input_scaling"] == "unit"
    assert "model file: `" in (out / "report.md").read_text()


def test_a_named_pretrained_net_is_analysed(tmp_path):
    out = tmp_path / "out"
    assert main(["--model", "preact20", "--weights", "cifar10", "--dataset", "synthetic",
                 "--limit", "4", "--batch-size", "4", "--measures", "l2", "--out",
                 str(out)]) == 0
    assert len(pd.read_csv(out / "blocks.csv")) == 9
    assert json.loads((out / "summary.json").read_text())["model"] == "preact20"


@pytest.mark.parametrize("scaling, expected", [
    ("raw", [0.0, 127.5, 255.0]), ("standardize", [-1.0, 0.0, 1.0]), ("unit", [0.0, 0.5, 1.0]),
    ("symmetric", [-1.0, 0.0, 1.0])])
def test_input_scalings(scaling, expected):
    images = tf.constant([[0.0, 127.5, 255.0]])
    data = dataclasses.make_dataclass("Stats", ["mean", "std"])((127.5,), (127.5,))
    given = next(iter(scaled(tf.data.Dataset.from_tensors((images, [0])), scaling, data)))
    np.testing.assert_allclose(given[0][0], expected, atol=1e-6)


def test_a_model_file_with_a_lambda_layer_is_refused_unread(tmp_path, capsys):
    inputs = keras.Input((32, 32, 3))
    model = keras.Model(inputs, keras.layers.Lambda(lambda x: x * 2)(inputs))
    model.save(tmp_path / "lambda.keras")
    assert main([str(tmp_path / "lambda.keras"), "--dataset", "synthetic", "--out",
                 str(tmp_path / "out")]) == 2
    assert "safe_mode" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["{file}", "--out", "{tmp}/o"], "--dataset is required for a model file"),
    (["{file}", "--dataset", "synthetic"], "--out is required"),
    (["{run}", "--input-scaling", "unit"], "--input-scaling is for a model file"),
    (["--model", "preact20", "--out", "{tmp}/o"], "needs --weights"),
    (["--model", "preact20", "--weights", "imagenet", "--out", "{tmp}/o"],
     "No pretrained weights 'imagenet'"),
    (["{run}", "--model", "preact20", "--weights", "cifar10"], "Give one model to analyse"),
    ([], "Give one model to analyse"),
])
def test_bad_model_sources_are_clear_errors(run_dir, model_file, tmp_path, capsys, argv,
                                            message):
    argv = [a.format(file=model_file, run=run_dir, tmp=tmp_path) for a in argv]
    assert main(argv) == 2
    assert message in capsys.readouterr().err
