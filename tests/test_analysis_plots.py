"""analysis.plots: figure names, frames of one split or several, the other studies' figures,
and the one module of the project that draws."""

import ast
import types
from pathlib import Path

import pandas as pd
import pytest

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


def test_one_split_or_several(tmp_path):
    both = pd.concat([blocks("train"), blocks("test")], ignore_index=True)
    for name, frame in (("one", blocks()), ("both", both)):
        path = plot_blocks(frame, "cosine", tmp_path / f"{name}.png", {"train": -0.2})
        assert path.stat().st_size > 0
    history = both.assign(epoch=1, l2_ratio=0.5)
    assert plot_over_training(history, tmp_path / "training.png").stat().st_size > 0
    borderline = pd.DataFrame({"split": "test", "group": ["borderline", "correct", "all"],
                               "block": 5, "accuracy": 0.5, "loss": 1.0, "entropy": 0.3})
    assert plot_borderline(borderline, tmp_path / "fig6.png").stat().st_size > 0


def test_ablation_trials_and_training_curves(tmp_path):
    nan = float("nan")
    table = pd.DataFrame({"row": [1, 2], "case": ["original", "gate"],
                          "outcome": ["finished", "diverged"], "paper_error": ["6.61", "fail"],
                          "error_median": [7.0, nan], "error_min": [6.5, nan],
                          "error_max": [7.5, nan]})
    assert plot_ablation(table, tmp_path / "results.png", "Table 1").stat().st_size > 0
    dimensions = {"variant": types.SimpleNamespace(swept=True, values=("", "gate")),
                  "learning_rate": types.SimpleNamespace(swept=True, values=None, min=0.01,
                                                         max=0.2, sampling="log")}
    trials = pd.DataFrame({"variant": ["", "gate", None], "learning_rate": [0.1, 0.02, 0.05],
                           "val_error": [20.0, 30.0, None]})
    assert plot_trials(trials, dimensions, tmp_path / "trials.png").stat().st_size > 0
    history = pd.DataFrame({"epoch": [1, 2], "loss": [2.0, 1.0], "val_accuracy": [0.5, 0.7]})
    curves = plot_loss_and_error({"run": history}, tmp_path / "curves.png")
    assert curves.stat().st_size > 0


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
