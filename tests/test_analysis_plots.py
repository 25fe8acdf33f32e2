"""analysis.plots: figure names, frames of one split or several, the other studies' figures,
and the one module of the project that draws."""

import ast
import types
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis import plots
from analysis.plots import (BLOCK_FIGURES, plot_ablation, plot_blocks, plot_borderline,
                            plot_loss_and_error, plot_over_training, plot_trials)

REPO = Path(__file__).resolve().parents[1]
SOURCES = ("keras_resnets", "trainers", "analysis", "saved_models", "experiments", "benchmarks",
           "results", "tests")


def blocks(split=None):
    frame = pd.DataFrame({"block": [0, 1, 2], "stage": [1, 1, 2],
                          "changes_shape": [True, False, True], "cosine": [-0.1, -0.2, -0.3],
                          "cosine_std": [0.1, 0.1, 0.1]})
    return frame if split is None else frame.assign(split=split)


def test_an_unknown_figure_name_says_what_exists(tmp_path):
    with pytest.raises(ValueError, match="Unknown figure 'cos'; accepted: " +
                       ", ".join(BLOCK_FIGURES)):
        plot_blocks(blocks(), "cos", tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


@pytest.fixture
def drawn(monkeypatch):
    """``{file name: Figure}`` of every figure the plots save (each is still written)."""
    figures = {}
    save = plots._save

    def record(figure, path, *args, **kwargs):
        figures[Path(path).name] = figure
        return save(figure, path, *args, **kwargs)

    monkeypatch.setattr(plots, "_save", record)
    return figures


def legend_labels(ax) -> list[str]:
    return [text.get_text() for text in ax.get_legend().get_texts()]


def test_one_split_or_several(tmp_path, drawn):
    both = pd.concat([blocks("train"), blocks("test")], ignore_index=True)
    for name, frame in (("one", blocks()), ("both", both)):
        path = plot_blocks(frame, "cosine", tmp_path / f"{name}.png", {"train": -0.2})
        assert path.is_file()
    one, = drawn["one.png"].axes  # no split: one panel, no split in its title
    assert one.get_title() == "Cosine loss cos(F_j(h_j), dL/dh_j) (cf. Fig. 3)"
    assert (one.get_xlabel(), one.get_ylabel()) == ("block j", "cosine")
    assert list(one.lines[0].get_ydata()) == [-0.1, -0.2, -0.3]  # one point per block
    assert sorted(legend_labels(one)) == ["stage 1", "stage 2", "± 1 std over examples"]
    train, test = drawn["both.png"].axes  # one panel per split, in the frame's order
    assert train.get_title().startswith("train: Cosine loss")
    assert test.get_title().startswith("test: Cosine loss")
    assert "full model" in legend_labels(train) and "full model" not in legend_labels(test)
    assert [-0.2, -0.2] in [list(line.get_ydata()) for line in train.lines]  # the baseline

    history = both.assign(epoch=1, l2_ratio=0.5)
    plot_over_training(history, tmp_path / "training.png")
    *panels, colorbar = drawn["training.png"].axes
    assert [ax.get_title() for ax in panels] == [
        f"{split}: {measure} per block during training" for measure in ("Cosine loss", "l2 ratio")
        for split in ("train", "test")]  # a row per measure, a column per split
    assert [len(ax.lines) for ax in panels] == [4, 4, 3, 3]  # 3 blocks (+ the zero line)
    assert colorbar.get_ylabel() == "block j"

    borderline = pd.DataFrame({"split": "test", "group": ["borderline", "correct", "all"],
                               "block": 5, "accuracy": 0.5, "loss": 1.0, "entropy": 0.3})
    plot_borderline(borderline, tmp_path / "fig6.png")
    figure = drawn["fig6.png"]
    assert [ax.get_ylabel() for ax in figure.axes] == ["accuracy", "loss", "entropy"]
    for ax in figure.axes:
        assert legend_labels(ax) == ["test borderline", "test correct", "test all"]
    assert "Borderline examples" in figure.get_suptitle()
    assert figure.get_suptitle().endswith("(cf. Fig. 6)")


def test_ablation_trials_and_training_curves(tmp_path, drawn):
    nan = float("nan")
    table = pd.DataFrame({"row": [1, 2], "case": ["original", "gate"],
                          "outcome": ["finished", "diverged"], "paper_error": ["6.61", "fail"],
                          "error_median": [7.0, nan], "error_min": [6.5, nan],
                          "error_max": [7.5, nan]})
    plot_ablation(table, tmp_path / "results.png", "Table 1")
    ax, = drawn["results.png"].axes
    assert (ax.get_title(), ax.get_ylabel()) == ("Table 1", "test error (%)")
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1. original", "2. gate"]
    assert legend_labels(ax) == ["measured (median, min-max)", "paper"]
    measured, paper = (container for container in ax.containers  # bars, not error bars
                       if hasattr(container, "patches"))
    np.testing.assert_array_equal([bar.get_height() for bar in measured], [7.0, nan])
    np.testing.assert_array_equal([bar.get_height() for bar in paper], [6.61, nan])
    assert sorted(text.get_text() for text in ax.texts) == ["diverged", "fail"]

    dimensions = {"variant": types.SimpleNamespace(swept=True, values=("", "gate")),
                  "learning_rate": types.SimpleNamespace(swept=True, values=None, min=0.01,
                                                         max=0.2, sampling="log")}
    trials = pd.DataFrame({"variant": ["", "gate", None], "learning_rate": [0.1, 0.02, 0.05],
                           "val_error": [20.0, 30.0, None]})
    plot_trials(trials, dimensions, tmp_path / "trials.png")
    figure = drawn["trials.png"]
    variant, rate = figure.axes
    assert figure.get_suptitle() == "2 finished trials"  # the unfinished trial is left out
    assert (variant.get_xlabel(), rate.get_xlabel()) == ("variant", "learning_rate")
    assert variant.get_ylabel() == "best val error (%)"
    assert [t.get_text() for t in variant.get_xticklabels()] == ["(none)", "gate"]
    assert rate.get_xscale() == "log"
    np.testing.assert_array_equal(variant.collections[0].get_offsets(), [[0, 20], [1, 30]])
    np.testing.assert_array_equal(rate.collections[0].get_offsets(), [[0.1, 20], [0.02, 30]])

    history = pd.DataFrame({"epoch": [1, 2], "loss": [2.0, 1.0], "val_accuracy": [0.5, 0.7]})
    plot_loss_and_error({"run": history}, tmp_path / "curves.png")
    loss, error = drawn["curves.png"].axes
    assert (loss.get_ylabel(), loss.get_yscale()) == ("training loss (with L2)", "log")
    assert list(loss.lines[0].get_ydata()) == [2.0, 1.0]
    np.testing.assert_allclose(error.lines[0].get_ydata(), [50.0, 30.0])  # error %
    assert legend_labels(error) == ["run"]


def matplotlib_imports(path: Path) -> list[str]:
    """The matplotlib modules ``path`` imports, and ``matplotlib.use`` if it switches backends."""
    tree = ast.parse(path.read_text())
    found = [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
             for alias in node.names if alias.name.startswith("matplotlib")]
    found += [node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
              and (node.module or "").startswith("matplotlib")]
    found += ["matplotlib.use" for node in ast.walk(tree) if isinstance(node, ast.Attribute)
              and node.attr == "use" and getattr(node.value, "id", "") == "matplotlib"]
    return found


def test_analysis_plots_is_the_only_module_that_draws_and_it_uses_no_pyplot():
    drawing = {str(path.relative_to(REPO)): matplotlib_imports(path)
               for folder in SOURCES for path in sorted((REPO / folder).rglob("*.py"))
               if matplotlib_imports(path)}
    assert list(drawing) == ["analysis/plots.py"]
    assert not [name for name in drawing["analysis/plots.py"]
                if "pyplot" in name or name == "matplotlib.use"]
