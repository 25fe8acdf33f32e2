"""analysis.plots: figure names, and frames of one split or several."""

import pandas as pd
import pytest

from analysis.plots import BLOCK_FIGURES, plot_blocks, plot_borderline, plot_over_training


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
