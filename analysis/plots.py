"""Figures of Jastrzebski et al. 2018 from the tidy frames of ``analysis.frames``.

Figures 3-7 (cosine loss per block, dropping blocks, l2 ratio, intermediate accuracy,
unrolling), Figure 3 over training (from the callback's CSV) and Figure 8's training curves.
Matplotlib's object API with the Agg canvas: no window, no global pyplot state.
"""

import textwrap
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure

# name -> (column, figure number, title, y label); one per-block figure each.
BLOCK_FIGURES = {
    "cosine": ("cosine", 3, "Cosine loss cos(F_j(h_j), dL/dh_j)", "cosine"),
    "drop": ("drop_accuracy", 4, "Accuracy with block j dropped", "accuracy"),
    "l2_ratio": ("l2_ratio", 5, "l2 ratio ||F_j(h_j)|| / ||h_j||", "ratio"),
    "intermediate": ("intermediate_accuracy", 6, "Intermediate accuracy: head on block j's output",
                     "accuracy"),
}


def _save(figure, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    return path


def plot_blocks(blocks, name: str, path, baseline: float | None = None, label: str = "") -> Path:
    """Per-block figure ``name`` (a key of ``BLOCK_FIGURES``): one point per block, coloured by
    stage, a dotted line where a stage starts, the std band where the frame has one, and the
    full model's value as a dashed line when ``baseline`` is given."""
    column, number, title, ylabel = BLOCK_FIGURES[name]
    figure = Figure(figsize=(7, 3.5), layout="constrained")
    ax = figure.subplots()
    x, y = blocks["block"].to_numpy(), blocks[column].to_numpy(dtype=float)
    if f"{column}_std" in blocks:
        std = blocks[f"{column}_std"].to_numpy(dtype=float)
        ax.fill_between(x, y - std, y + std, color="0.85", label="± 1 std over examples")
    ax.plot(x, y, color="0.4", linewidth=0.8)
    for stage, rows in blocks.groupby("stage"):
        ax.scatter(rows["block"], rows[column], s=14, label=f"stage {stage}", zorder=3)
    for start in blocks.loc[blocks["changes_shape"].astype(bool), "block"]:
        ax.axvline(start - 0.5, color="0.6", linestyle=":", linewidth=0.8)
    if baseline is not None:
        ax.axhline(baseline, color="black", linestyle="--", linewidth=0.8, label="full model")
    if name == "cosine":
        ax.axhline(0.0, color="black", linewidth=0.5)
    ax.set(xlabel="block j", ylabel=ylabel, title=f"{label}{title} (cf. Fig. {number})")
    ax.legend(fontsize=7)
    return _save(figure, path)


def plot_unroll(unroll, path, label: str = "") -> Path:
    """Figure 7: accuracy, loss and prediction entropy after k extra applications of the last
    block, one line per scaling alpha."""
    figure = Figure(figsize=(11, 3.2), layout="constrained")
    axes = figure.subplots(1, 3)
    for ax, column in zip(axes, ("accuracy", "loss", "entropy")):
        for alpha, rows in unroll.groupby("alpha"):
            ax.plot(rows["step"], rows[column], marker=".", label=f"alpha = {alpha:g}")
        ax.set(xlabel="extra applications k", ylabel=column)
        ax.legend(fontsize=7)
    figure.suptitle(f"{label}Unrolling the last block: h <- h + alpha (block(h) - h) (cf. Fig. 7)")
    return _save(figure, path)


def plot_cosine_over_training(history, path) -> Path:
    """Figure 3 over training: cosine loss per block against epoch, one line per block
    (darker = deeper)."""
    figure = Figure(figsize=(7, 3.5), layout="constrained")
    ax = figure.subplots()
    blocks = sorted(history["block"].unique())
    colours = colormaps["viridis"](np.linspace(0, 1, max(len(blocks), 2)))
    for colour, block in zip(colours, blocks):
        rows = history[history["block"] == block].sort_values("epoch")
        ax.plot(rows["epoch"], rows["cosine"], color=colour, marker=".", linewidth=0.8)
    ax.axhline(0.0, color="black", linewidth=0.5)
    mappable = ax.scatter([], [], c=[], cmap="viridis", vmin=min(blocks, default=0),
                          vmax=max(blocks, default=1))
    figure.colorbar(mappable, ax=ax, label="block j")
    ax.set(xlabel="epoch", ylabel="cosine", title="Cosine loss per block during training "
           "(cf. Fig. 3)")
    return _save(figure, path)


def plot_training_curves(histories: dict, path, title: str) -> Path:
    """Figure 8: train and test error (%) per epoch of each run (``history.csv`` frames)."""
    figure = Figure(figsize=(10, 3.5), layout="constrained")
    train_ax, test_ax = figure.subplots(1, 2, sharey=True)
    for label, history in histories.items():
        line, = train_ax.plot(history["epoch"], 100 * (1 - history["accuracy"]), label=label)
        test_ax.plot(history["epoch"], history["val_error"], color=line.get_color(), label=label)
    train_ax.set(xlabel="epoch", ylabel="error (%)", title="train")
    test_ax.set(xlabel="epoch", title="test")
    test_ax.legend(fontsize=7)
    figure.suptitle(textwrap.fill(title, 110), fontsize=9)
    return _save(figure, path)


def analysis_figures(analysis, out_dir, label: str = "") -> dict:
    """Every figure the measured columns allow, as ``{name: path}`` in ``out_dir``."""
    out_dir, figures = Path(out_dir), {}
    baselines = {"drop": analysis.summary.get("accuracy"),
                 "intermediate": analysis.summary.get("accuracy")}
    for name, (column, number, _, _) in BLOCK_FIGURES.items():
        if column in analysis.blocks:
            figures[name] = plot_blocks(analysis.blocks, name,
                                        out_dir / f"fig{number}_{name}.png",
                                        baselines.get(name), label)
    if analysis.unroll is not None:
        figures["unroll"] = plot_unroll(analysis.unroll, out_dir / "fig7_unroll.png", label)
    return figures
