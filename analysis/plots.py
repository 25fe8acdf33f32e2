"""Every figure of the project, the one module that draws: matplotlib's object API
(``matplotlib.figure.Figure`` saved as PNG), no pyplot, no global backend switch, no window.

Jastrzebski et al. 2018's figures from the tidy frames of ``analysis.frames``: Figures 3-7
(cosine loss per block, dropping blocks, l2 ratio, intermediate accuracy, borderline examples,
unrolling), cosine and l2 ratio over training (from the callback's CSV) and Figure 8's training
curves, gradient ratio and activation norms. A frame with a ``split`` column (train and test, as
the paper shows them) gets one panel per split in the per-block figures and one line style per
split elsewhere. Then the other studies' figures: He et al. 2016's ablation tables
(``experiments.ablate``), a sweep's trials (``experiments.tune``) and the pretrained weights'
training curves (``results/pretrained/report.py``). It lives in ``analysis``, the lowest layer
that draws; ``experiments`` and the results scripts sit above it.
"""

import itertools
import math
import textwrap
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.ticker import NullLocator

from analysis.borderline import MARGIN

# name -> (column, figure number, title, y label); one per-block figure each.
BLOCK_FIGURES = {
    "cosine": ("cosine", 3, "Cosine loss cos(F_j(h_j), dL/dh_j)", "cosine"),
    "drop": ("drop_accuracy", 4, "Accuracy with block j dropped", "accuracy"),
    "l2_ratio": ("l2_ratio", 5, "l2 ratio ||F_j(h_j)|| / ||h_j||", "ratio"),
    "intermediate": ("intermediate_accuracy", 6, "Intermediate accuracy: head on block j's output",
                     "accuracy"),
}
LINE_STYLES = ("-", "--", ":", "-.")  # of the first, second, ... split (or split and update)
UNROLL_PANELS = (("accuracy", "accuracy"), ("loss", "loss (log scale)"), ("entropy", "entropy"),
                 ("cosine", "cosine cos(d(h_k), dL/dh_k)"), ("l2_ratio", "l2 ratio ||d|| / ||h||"))


def _by_split(frame) -> list:
    """``(split, rows)`` per split of a frame with a ``split`` column, else ``[("", frame)]``."""
    if "split" not in frame:
        return [("", frame)]
    return list(frame.groupby("split", sort=False))


def _save(figure, path, dpi: int = 120) -> Path:
    """Write ``figure`` to ``path`` (its folder made when missing); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=dpi)
    return path


def plot_blocks(blocks, name: str, path, baselines: dict | None = None,
                label: str = "") -> Path:
    """Per-block figure ``name`` (a key of ``BLOCK_FIGURES``), one panel per split: one point
    per block, coloured by stage, a dotted line where a stage starts, the std band where the
    frame has one, and the full model's value as a dashed line where ``baselines`` (``{split:
    value}``, ``""`` for a frame without splits) has one."""
    if name not in BLOCK_FIGURES:
        raise ValueError(f"Unknown figure {name!r}; accepted: {', '.join(BLOCK_FIGURES)}.")
    column, number, title, ylabel = BLOCK_FIGURES[name]
    splits = _by_split(blocks)
    figure = Figure(figsize=(7 * len(splits), 3.5), layout="constrained")
    for ax, (split, rows) in zip(figure.subplots(1, len(splits), sharey=True, squeeze=False)[0],
                                 splits):
        _draw_blocks(ax, rows, column, (baselines or {}).get(split))
        if name == "cosine":
            ax.axhline(0.0, color="black", linewidth=0.5)
        ax.set(xlabel="block j", ylabel=ylabel,
               title=f"{label}{split + ': ' if split else ''}{title} (cf. Fig. {number})")
        ax.legend(fontsize=7)
    return _save(figure, path)


def _draw_blocks(ax, blocks, column: str, baseline: float | None) -> None:
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


def plot_unroll(unroll, path, label: str = "") -> Path:
    """Figure 7: after k extra applications of the last block, accuracy, loss (log scale),
    entropy, and the block's cosine and l2 ratio at h_k; one row per group (borderline,
    correct, all), one colour per scale alpha, one line style per (split, update)."""
    groups = list(dict.fromkeys(unroll["group"]))
    alphas = sorted(unroll["alpha"].unique(), reverse=True)
    colours = dict(zip(alphas, colormaps["viridis"](np.linspace(0, 0.9, len(alphas)))))
    runs = list(dict.fromkeys(zip(unroll.get("split", [""] * len(unroll)), unroll["update"])))
    figure = Figure(figsize=(16, 2.8 * len(groups)), layout="constrained")
    axes = figure.subplots(len(groups), len(UNROLL_PANELS), squeeze=False)
    for row, group in zip(axes, groups):
        for ax, (column, ylabel) in zip(row, UNROLL_PANELS):
            _draw_unroll(ax, unroll[unroll["group"] == group], column, colours, runs)
            ax.set(xlabel="extra applications k", ylabel=ylabel, title=group)
            if column == "loss":
                ax.set_yscale("log")
    axes[0][0].legend(fontsize=6)
    figure.suptitle(f"{label}Unrolling the last block: h <- h + alpha d(h) ('scaled') or "
                    "h + alpha ||h|| d(h)/||d(h)|| ('norm') (cf. Fig. 7)")
    return _save(figure, path)


def _draw_unroll(ax, rows, column: str, colours: dict, runs: list) -> None:
    for (split, update), style in zip(runs, itertools.cycle(LINE_STYLES)):
        mine = rows[rows["update"] == update]
        if split:
            mine = mine[mine["split"] == split]
        for alpha, line in mine.groupby("alpha", sort=False):
            ax.plot(line["step"], line[column], color=colours[alpha], linestyle=style,
                    linewidth=1, label=f"{split} {update} alpha={alpha:g}".strip())


def plot_borderline(borderline, path, label: str = "") -> Path:
    """Figure 6: accuracy, loss and entropy of the head after each of the last blocks, one
    colour per group (borderline, correct, all), one line style per split."""
    figure = Figure(figsize=(11, 3.2), layout="constrained")
    for ax, column in zip(figure.subplots(1, 3), ("accuracy", "loss", "entropy")):
        for (split, rows), style in zip(_by_split(borderline), itertools.cycle(LINE_STYLES)):
            for colour, (group, line) in enumerate(rows.groupby("group", sort=False)):
                ax.plot(line["block"], line[column], marker=".", linestyle=style,
                        color=f"C{colour}", label=f"{split} {group}".strip())
        ax.set(xlabel="head after block j", ylabel=column)
        ax.legend(fontsize=7)
    figure.suptitle(f"{label}Borderline examples (|p_y - max_(c!=y) p_c| < {MARGIN:g}), "
                    "already correct and all, over the last blocks (cf. Fig. 6)")
    return _save(figure, path)


def plot_over_training(history, path) -> Path:
    """Cosine loss and l2 ratio per block against epoch (the callback's CSV), one line per
    block (coloured as the colour bar), one column per split (the paper measures both)."""
    splits = _by_split(history)
    figure = Figure(figsize=(7 * len(splits), 6), layout="constrained")
    axes = figure.subplots(2, len(splits), sharex=True, squeeze=False)
    blocks = sorted(history["block"].unique())
    colours = colormaps["viridis"](np.linspace(0, 1, max(len(blocks), 2)))
    for column, (split, rows) in zip(axes.T, splits):
        for ax, (measure, title) in zip(column, (("cosine", "Cosine loss"),
                                                 ("l2_ratio", "l2 ratio"))):
            for colour, block in zip(colours, blocks):
                line = rows[rows["block"] == block].sort_values("epoch")
                ax.plot(line["epoch"], line[measure], color=colour, marker=".", linewidth=0.8)
            ax.set(xlabel="epoch", ylabel=measure,
                   title=f"{split + ': ' if split else ''}{title} per block during training")
        column[0].axhline(0.0, color="black", linewidth=0.5)
    mappable = axes[0][0].scatter([], [], c=[], cmap="viridis", vmin=min(blocks, default=0),
                                  vmax=max(blocks, default=1))
    figure.colorbar(mappable, ax=axes, label="block j")
    return _save(figure, path)


def plot_training_curves(histories: dict, path, title: str) -> Path:
    """Figure 8: train and test error (%) per epoch of each run (``history.csv`` frames)."""
    figure = Figure(figsize=(10, 3.5), layout="constrained")
    train_ax, test_ax = figure.subplots(1, 2, sharey=True)
    palette = colormaps["tab10" if len(histories) <= 10 else "tab20"].colors  # one per run
    for (label, history), colour in zip(histories.items(), itertools.cycle(palette)):
        line, = train_ax.plot(history["epoch"], 100 * (1 - history["accuracy"]), label=label,
                              color=colour)
        tested = history[history["val_error"].notna()]  # --validation-every skips epochs
        test_ax.plot(tested["epoch"], tested["val_error"], color=line.get_color(), marker=".",
                     label=label)
    train_ax.set(xlabel="epoch", ylabel="error (%)", title="train")
    test_ax.set(xlabel="epoch", title="test")
    test_ax.legend(fontsize=7)
    figure.suptitle(textwrap.fill(title, 110), fontsize=9)
    return _save(figure, path)


def plot_gradient_ratio(ratios, path) -> Path:
    """Figure 8 right: ``||dL/dh_1|| / ||dL/dh_(1+2n)||`` per epoch (log scale), one line per
    run (``label``); epoch 0 is initialisation."""
    figure = Figure(figsize=(6, 3.5), layout="constrained")
    ax = figure.subplots()
    for label, rows in ratios.groupby("label", sort=False):
        ax.plot(rows["epoch"], rows["ratio"], marker=".", label=label)
    ax.set(xlabel="epoch", ylabel="gradient norm ratio", yscale="log",
           title="||dL/dh_1|| / ||dL/dh_(1+2n)|| during training (cf. Fig. 8 right)")
    ax.legend(fontsize=7)
    return _save(figure, path)


def plot_activation_norms(norms, path) -> Path:
    """Figure 8: the mean norm of each block's input ``||h_j||`` and residual ``||F_j(h_j)||``
    at initialisation (log scale), one line per run (``label``)."""
    figure = Figure(figsize=(10, 3.5), layout="constrained")
    for ax, (column, title) in zip(figure.subplots(1, 2), (
            ("input_norm", "||h_j|| at initialisation"),
            ("residual_norm", "||F_j(h_j)|| at initialisation"))):
        for label, rows in norms.groupby("label", sort=False):
            ax.plot(rows["block"], rows[column], marker=".", label=label)
        ax.set(xlabel="block j", ylabel=column, yscale="log", title=title)
    ax.legend(fontsize=7)
    return _save(figure, path)


def analysis_figures(analysis, out_dir, label: str = "") -> dict:
    """Every figure the measured columns allow, as ``{name: path}`` in ``out_dir``."""
    out_dir, figures = Path(out_dir), {}
    scores = analysis.summary.get("splits") or {"": analysis.summary}
    accuracy = {split: values["accuracy"] for split, values in scores.items()
                if "accuracy" in values}
    baselines = {"drop": accuracy, "intermediate": accuracy}
    for name, (column, number, _, _) in BLOCK_FIGURES.items():
        if column in analysis.blocks:
            figures[name] = plot_blocks(analysis.blocks, name,
                                        out_dir / f"fig{number}_{name}.png",
                                        baselines.get(name), label)
    if analysis.borderline is not None:
        figures["borderline"] = plot_borderline(analysis.borderline,
                                                out_dir / "fig6_borderline.png", label)
    if analysis.unroll is not None:
        figures["unroll"] = plot_unroll(analysis.unroll, out_dir / "fig7_unroll.png", label)
    return figures


def plot_ablation(table, path, title: str) -> Path:
    """He et al. 2016, Tables 1-3: measured median error (bars from min to max over seeds)
    next to the paper's, per row of ``experiments.ablate``'s results table."""
    x = np.arange(len(table))
    paper = [float(text.split()[0]) if text[0].isdigit() else math.nan  # first paper row
             for text in table["paper_error"]]
    median = table["error_median"].to_numpy(float)
    spread = np.nan_to_num([median - table["error_min"], table["error_max"] - median])
    figure = Figure(figsize=(max(6.0, 0.8 * len(table) + 2), 4.5), layout="tight")
    ax = figure.subplots()
    ax.bar(x - 0.2, median, 0.4, yerr=spread, capsize=3, label="measured (median, min-max)")
    ax.bar(x + 0.2, paper, 0.4, label="paper")
    for i, (measured, reported, state) in enumerate(zip(median, paper, table["outcome"])):
        if math.isnan(reported):
            ax.text(i + 0.2, 0, "fail", rotation=90, ha="center", va="bottom", fontsize=8)
        if math.isnan(measured) and state != "pending":
            ax.text(i - 0.2, 0, state, rotation=90, ha="center", va="bottom", fontsize=8)
    ax.set_xticks(x, [f"{n}. {c}" for n, c in zip(table["row"], table["case"])],
                  rotation=40, ha="right", fontsize=7)
    ax.set(ylabel="test error (%)", title=title)
    ax.legend()
    return _save(figure, path)


def plot_trials(frame, dimensions: dict, path) -> Path:
    """A sweep's ``trials.png``: val error % of the finished trials against each swept value.
    ``dimensions``: the search space's ``{name: dimension}`` (``experiments.spaces``)."""
    swept = [name for name, dim in dimensions.items() if dim.swept]
    done = frame[frame["val_error"].notna()]
    figure = Figure(figsize=(3.2 * max(len(swept), 1), 3.2), layout="tight")
    axes = figure.subplots(1, max(len(swept), 1), squeeze=False, sharey=True)
    for ax, name in zip(axes[0], swept):
        dim = dimensions[name]
        column = done[name].fillna("") if "" in (dim.values or ()) else done[name]  # "" in CSVs
        points = done[column.notna()]
        values = list(column[column.notna()])
        if dim.values is not None:
            values = _choice_axis(ax, dim, values)
        else:
            _range_axis(ax, dim)
        ax.scatter(values, points["val_error"], alpha=0.8)
        ax.set_xlabel(name)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("best val error (%)")
    figure.suptitle(f"{len(done)} finished trials")
    return _save(figure, path, dpi=100)


def _choice_axis(ax, dim, values) -> list:
    """One column per value of a choice; returns the columns of ``values``."""
    labels = [str(v) or "(none)" for v in dim.values]
    ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right")
    ax.set_xlim(-0.5, len(labels) - 0.5)
    return [list(dim.values).index(v) for v in values]


def _range_axis(ax, dim) -> None:
    """A range's whole extent (log scaled when sampled so), ticks at its ends and middle."""
    log = dim.sampling != "linear"
    ax.set_xscale("log" if log else "linear")
    ticks = (np.geomspace if log else np.linspace)(dim.min, dim.max, 3)
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticks(ticks, [f"{t:.3g}" for t in ticks])
    if log:
        margin = (dim.max / dim.min) ** 0.05
        ax.set_xlim(dim.min / margin, dim.max * margin)
    else:
        margin = 0.05 * (dim.max - dim.min) or 0.5
        ax.set_xlim(dim.min - margin, dim.max + margin)


def plot_loss_and_error(histories: dict, path) -> Path:
    """Training loss (log scale) and test error % per epoch of each run (``{run: history}``,
    ``history.csv`` frames): the pretrained weights' ``curves.png``."""
    figure = Figure(figsize=(9, 3.5), layout="tight")
    loss_ax, error_ax = figure.subplots(1, 2)
    for run, history in histories.items():
        loss_ax.plot(history["epoch"], history["loss"], label=f"{run} train")
        error_ax.plot(history["epoch"], 100 * (1 - history["val_accuracy"]), label=run)
    loss_ax.set(xlabel="epoch", ylabel="training loss (with L2)", yscale="log")
    error_ax.set(xlabel="epoch", ylabel="test error % (recorded, never used to choose)",
                 ylim=(5, 40))
    error_ax.legend()
    return _save(figure, path, dpi=110)
