"""``analyze``: every measurement of Jastrzebski et al. 2018 on a model, as tidy DataFrames.

``analyze(model, dataset)`` (a zoo model or any Keras functional residual network, seen as
``keras_resnets.ResidualChain``) returns an ``Analysis``: ``blocks`` has one row per residual block
(columns ``BLOCK_COLUMNS`` plus those of the measures asked for), ``borderline`` one row per
(group, last block) (Fig. 6, ``analysis.borderline``), ``unroll`` one row per (update, alpha,
group, step) (Fig. 7), and ``summary`` the model's own accuracy and loss. ``analyze(model,
{"train": ..., "test": ...})`` measures each split (the paper reports both) into one
``Analysis`` whose frames start with a ``split`` column. Each measure family runs as one pass
over a split (``analysis.loop``): cosine, l2 ratio and intermediate accuracy share a single
forward and backward pass per batch; dropping re-runs the blocks after each cached h_j; the
borderline groups need one forward pass; unrolling re-applies the last block.
"""

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from keras_resnets import ResidualChain

from analysis.borderline import GROUPS, borderline_sums, check_last_blocks
from analysis.loop import BatchSum
from analysis.measures import drop_sums, probe_sums
from analysis.options import DEFAULT_ALPHAS, DEFAULT_STEPS, DEFAULT_UPDATES, MEASURES
from analysis.unroll import check_unroll_options, check_unrollable, check_updates, unroll_sums

PROBED = ("cosine", "l2", "intermediate")  # one forward and backward pass for the three
BLOCK_COLUMNS = ("block", "stage", "index_in_stage", "name", "width", "changes_shape",
                 "gradient_wrt")
MEASURE_COLUMNS = {
    "cosine": ("cosine", "cosine_std"),
    "l2": ("l2_ratio", "l2_ratio_std"),
    "drop": ("drop_accuracy", "drop_loss"),
    "intermediate": ("intermediate_accuracy_input", "intermediate_loss_input",
                     "intermediate_accuracy", "intermediate_loss"),
}
BORDERLINE_COLUMNS = ("group", "examples", "block", "accuracy", "loss", "entropy")
UNROLL_COLUMNS = ("block", "update", "alpha", "group", "examples", "step", "accuracy", "loss",
                  "entropy", "cosine", "l2_ratio")
MEANS = {"accuracy": "correct", "loss": "loss", "entropy": "entropy", "cosine": "cosine",
         "l2_ratio": "l2_ratio"}  # frame column -> per-group sum it averages
SCORES = ("examples", "accuracy", "loss")  # the model's own, per split


def parse_measures(measures) -> tuple[str, ...]:
    """``"all"``, a comma-separated string or a list -> validated measure names, in order."""
    if isinstance(measures, str):
        measures = MEASURES if measures == "all" else [m.strip() for m in measures.split(",")]
    measures = tuple(dict.fromkeys(m for m in measures if m))
    unknown = [m for m in measures if m not in MEASURES]
    if unknown or not measures:
        raise ValueError(f"Unknown measures {unknown or measures!r}; accepted: 'all' or a "
                         f"comma-separated subset of {', '.join(MEASURES)}.")
    return measures


@dataclass(frozen=True)
class Settings:
    """The measures asked for and their options, checked against the model
    (``check_settings``)."""

    measures: tuple
    alphas: tuple = DEFAULT_ALPHAS
    steps: int = DEFAULT_STEPS
    updates: tuple = DEFAULT_UPDATES
    last_blocks: int | None = None  # from check_settings: the paper's 5, or what the model has


def check_settings(chain: ResidualChain, measures="all", alphas=DEFAULT_ALPHAS,
                   steps=DEFAULT_STEPS, updates=DEFAULT_UPDATES, last_blocks=None) -> Settings:
    """Every setting checked against the model, before any data is read: unknown measures,
    unrolling options, a last block that cannot be unrolled, more last blocks than the head
    can read. A ``ValueError`` says what is accepted."""
    measures = parse_measures(measures)
    if "unroll" in measures:
        alphas, steps = check_unroll_options(alphas, steps)
        updates = check_updates(updates)
        check_unrollable(chain)
    if "borderline" in measures:
        last_blocks = check_last_blocks(chain, last_blocks)
    return Settings(measures, tuple(alphas), steps, tuple(updates), last_blocks)


@dataclass
class Analysis:
    """The result of ``analyze``: per-block, borderline and unrolling frames and the model's
    own scores (per split under ``splits`` when several splits were measured)."""

    blocks: pd.DataFrame
    unroll: pd.DataFrame | None = None
    borderline: pd.DataFrame | None = None
    summary: dict = field(default_factory=dict)

    def save(self, out_dir) -> dict:
        """Write ``blocks.csv``, ``borderline.csv`` and ``unroll.csv`` (if measured) and
        ``summary.json``."""
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        paths = {"blocks": out_dir / "blocks.csv", "summary": out_dir / "summary.json"}
        self.blocks.to_csv(paths["blocks"], index=False)
        for name in ("borderline", "unroll"):
            if getattr(self, name) is not None:
                paths[name] = out_dir / f"{name}.csv"
                getattr(self, name).to_csv(paths[name], index=False)
        paths["summary"].write_text(json.dumps(self.summary, indent=2) + "\n")
        return paths


def combine(analyses: dict) -> Analysis:
    """One ``Analysis`` of several splits (``{split: Analysis}``): every frame gains a leading
    ``split`` column; the summary keeps the model's scores per split under ``splits``."""
    first = next(iter(analyses.values()))
    frames = {}
    for name in ("blocks", "unroll", "borderline"):
        if getattr(first, name) is not None:
            frames[name] = pd.concat(
                [getattr(a, name).assign(split=split)[["split", *getattr(a, name).columns]]
                 for split, a in analyses.items()], ignore_index=True)
    summary = {key: value for key, value in first.summary.items() if key not in SCORES}
    summary["splits"] = {split: {key: a.summary[key] for key in SCORES if key in a.summary}
                         for split, a in analyses.items()}
    return Analysis(**frames, summary=summary)


def block_frame(chain: ResidualChain) -> pd.DataFrame:
    """One row per block: where it sits, its width, and whether it changes the shape (then its
    cosine uses the gradient at the shortcut output, see ``analysis.measures``)."""
    rows = []
    for block in chain.blocks:
        unit = block.unit
        rows.append({"block": block.index, "stage": block.stage,
                     "index_in_stage": block.index_in_stage, "name": unit.name,
                     "width": unit.filters, "changes_shape": unit.changes_shape,
                     "gradient_wrt": "shortcut" if unit.changes_shape else "input"})
    return pd.DataFrame(rows, columns=list(BLOCK_COLUMNS))


def analyze(model, data, measures="all", strategy=None, alphas=DEFAULT_ALPHAS,
            steps=DEFAULT_STEPS, progress=True, updates=DEFAULT_UPDATES,
            last_blocks=None) -> Analysis:
    """Measure ``model`` on ``data`` (batched ``(images, labels)``, or ``{split: dataset}``
    for several splits) in inference mode. ``model`` returns logits: a zoo model, or any Keras
    functional model whose residual blocks merge with ``keras.layers.Add`` (the rule that
    finds them: ``keras_resnets.chain``); every measure runs the same code on both.
    ``strategy``: a ``tf.distribute`` strategy whose scope built the model (``None``: the one
    in scope). See ``MEASURES``; a model without residual blocks and bad settings are refused
    before any data is read (``check_settings``)."""
    chain = ResidualChain(model)
    settings = check_settings(chain, measures, alphas, steps, updates, last_blocks)
    if not isinstance(data, Mapping):
        return _measure(chain, data, settings, strategy, progress)
    if not data:
        raise ValueError("No split to measure: give a dataset or {split: dataset}.")
    return combine({split: _measure(chain, dataset, settings, strategy, progress, split)
                    for split, dataset in data.items()})


def _measure(chain, dataset, settings: Settings, strategy, progress, split="") -> Analysis:
    """Every measure of ``settings`` on one split, one pass over it per measure family."""
    def run(step, description):
        return BatchSum(step, strategy)(dataset, f"{description} {split}".strip(), progress)

    measures, blocks = settings.measures, block_frame(chain)
    summary = {"model": chain.model.name, "blocks": len(chain), "measures": list(measures)}
    probed = [m for m in measures if m in PROBED]
    if probed:
        sums = run(functools.partial(probe_sums, chain, gradients="cosine" in probed),
                   "/".join(probed))
        blocks = blocks.join(_probe_columns(sums, probed))
        summary.update(_model_scores(sums))
    if "drop" in measures:
        sums = run(functools.partial(drop_sums, chain), "drop")
        blocks["drop_accuracy"] = sums["drop_correct"] / sums["count"]
        blocks["drop_loss"] = sums["drop_loss"] / sums["count"]
        summary["examples"] = int(sums["count"])
    frames = {}
    if "borderline" in measures:
        sums = run(functools.partial(borderline_sums, chain, blocks=settings.last_blocks),
                   "borderline")
        frames["borderline"] = _borderline_frame(sums, len(chain))
        _own_scores(summary, frames["borderline"], "block", len(chain) - 1)
    if "unroll" in measures:
        step = functools.partial(unroll_sums, chain, alphas=settings.alphas,
                                 steps=settings.steps, updates=settings.updates)
        frames["unroll"] = _unroll_frame(run(step, "unroll"), settings, len(chain) - 1)
        _own_scores(summary, frames["unroll"], "step", 0)
    return Analysis(blocks, summary=summary, **frames)


def _mean_std(sums, name):
    mean = sums[name] / sums["count"]
    return mean, np.sqrt(np.maximum(sums[f"{name}_sq"] / sums["count"] - mean**2, 0.0))


def _probe_columns(sums, probed) -> pd.DataFrame:
    columns = {}
    if "cosine" in probed:
        columns["cosine"], columns["cosine_std"] = _mean_std(sums, "cosine")
    if "l2" in probed:
        columns["l2_ratio"], columns["l2_ratio_std"] = _mean_std(sums, "l2_ratio")
    if "intermediate" in probed:
        columns.update(_intermediate_columns(sums))
    return pd.DataFrame(columns)


def _intermediate_columns(sums) -> dict:
    """Head accuracy/loss on h_j ("_input") and on block j's output; NaN where that state has
    another shape than the last block's output (the head cannot read it)."""
    count = sums["count"]
    return {"intermediate_accuracy_input": sums["input_correct"] / count,
            "intermediate_loss_input": sums["input_loss"] / count,
            "intermediate_accuracy": sums["output_correct"] / count,
            "intermediate_loss": sums["output_loss"] / count}


def _model_scores(sums) -> dict:
    return {"examples": int(sums["count"]),
            "accuracy": float(sums["model_correct"] / sums["count"]),
            "loss": float(sums["model_loss"] / sums["count"])}


def _mean(total, count) -> float:
    """A group's mean; NaN for a group without examples (no borderline example, say)."""
    return float(total / count) if count > 0 else float("nan")


def _borderline_frame(sums, blocks: int) -> pd.DataFrame:
    """One row per (group, last block), ``block`` the index of the block the head reads."""
    last = sums["correct"].shape[1]
    rows = [{"group": group, "examples": int(sums["examples"][g]), "block": blocks - last + j,
             **{column: _mean(sums[MEANS[column]][g, j], sums["examples"][g])
                for column in ("accuracy", "loss", "entropy")}}
            for g, group in enumerate(GROUPS) for j in range(last)]
    return pd.DataFrame(rows, columns=list(BORDERLINE_COLUMNS))


def _unroll_frame(sums, settings: Settings, block: int) -> pd.DataFrame:
    """One row per (update, alpha, group, step k)."""
    runs = [(update, alpha) for update in settings.updates for alpha in settings.alphas]
    rows = [{"block": block, "update": update, "alpha": alpha, "group": group,
             "examples": int(sums["examples"][g]), "step": k,
             **{column: _mean(sums[name][r, g, k], sums["examples"][g])
                for column, name in MEANS.items()}}
            for r, (update, alpha) in enumerate(runs) for g, group in enumerate(GROUPS)
            for k in range(settings.steps + 1)]
    return pd.DataFrame(rows, columns=list(UNROLL_COLUMNS))


def _own_scores(summary: dict, frame: pd.DataFrame, column: str, value) -> None:
    """The model's own examples, accuracy and loss from group "all" where ``column`` is
    ``value`` (the last block's output, or unrolling step 0), unless already measured."""
    row = frame[(frame["group"] == "all") & (frame[column] == value)].iloc[0]
    for key in SCORES:
        summary.setdefault(key, int(row[key]) if key == "examples" else float(row[key]))
