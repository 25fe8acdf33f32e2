"""``analyze``: every measurement of Jastrzebski et al. 2018 on a model, as tidy DataFrames.

``analyze(model, dataset)`` returns an ``Analysis``: ``blocks`` has one row per residual block
(columns ``BLOCK_COLUMNS`` plus those of the measures asked for), ``unroll`` one row per
(alpha, step), and ``summary`` the model's own accuracy and loss. Each measure family runs as
one pass over the split (``analysis.loop``): cosine, l2 ratio and intermediate accuracy share a
single forward and backward pass per batch; dropping re-runs the blocks after each cached h_j;
unrolling re-applies the last block.
"""

import functools
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from keras_resnets import ResidualChain

from analysis.loop import BatchSum
from analysis.measures import drop_sums, probe_sums, unit_changes_shape
from analysis.unroll import (DEFAULT_ALPHAS, DEFAULT_STEPS, check_unroll_options,
                             check_unrollable, unroll_sums)

MEASURES = ("cosine", "l2", "drop", "intermediate", "unroll")
BLOCK_COLUMNS = ("block", "stage", "index_in_stage", "name", "width", "changes_shape",
                 "gradient_wrt")
MEASURE_COLUMNS = {
    "cosine": ("cosine", "cosine_std"),
    "l2": ("l2_ratio", "l2_ratio_std"),
    "drop": ("drop_accuracy", "drop_loss"),
    "intermediate": ("intermediate_accuracy_input", "intermediate_loss_input",
                     "intermediate_accuracy", "intermediate_loss"),
}
UNROLL_COLUMNS = ("block", "alpha", "step", "accuracy", "loss", "entropy")


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


@dataclass
class Analysis:
    """The result of ``analyze``: per-block and unrolling frames and the model's own scores."""

    blocks: pd.DataFrame
    unroll: pd.DataFrame | None = None
    summary: dict = field(default_factory=dict)

    def save(self, out_dir) -> dict:
        """Write ``blocks.csv``, ``unroll.csv`` (if measured) and ``summary.json``."""
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        paths = {"blocks": out_dir / "blocks.csv", "summary": out_dir / "summary.json"}
        self.blocks.to_csv(paths["blocks"], index=False)
        if self.unroll is not None:
            paths["unroll"] = out_dir / "unroll.csv"
            self.unroll.to_csv(paths["unroll"], index=False)
        paths["summary"].write_text(json.dumps(self.summary, indent=2) + "\n")
        return paths


def block_frame(chain: ResidualChain) -> pd.DataFrame:
    """One row per block: where it sits, its width, and whether it changes the shape (then its
    cosine uses the gradient at the shortcut output, see ``analysis.measures``)."""
    rows, seen = [], {}
    for block in chain.blocks:
        unit = block.unit
        reshapes = unit_changes_shape(unit)
        seen[block.stage] = seen.get(block.stage, 0) + 1
        rows.append({"block": block.index, "stage": block.stage,
                     "index_in_stage": seen[block.stage] - 1, "name": unit.name,
                     "width": unit.filters, "changes_shape": reshapes,
                     "gradient_wrt": "shortcut" if reshapes else "input"})
    return pd.DataFrame(rows, columns=list(BLOCK_COLUMNS))


def analyze(model, dataset, measures="all", strategy=None, alphas=DEFAULT_ALPHAS,
            steps=DEFAULT_STEPS, progress=True) -> Analysis:
    """Measure ``model`` (a zoo model returning logits) on ``dataset`` (batched
    ``(images, labels)``) in inference mode. ``strategy``: a ``tf.distribute`` strategy whose
    scope built the model (``None``: the one in scope). See ``MEASURES``."""
    measures = parse_measures(measures)
    chain = ResidualChain(model)
    if "unroll" in measures:
        alphas, steps = check_unroll_options(alphas, steps)
        check_unrollable(chain)
    blocks = block_frame(chain)
    summary = {"model": model.name, "blocks": len(chain), "measures": list(measures)}
    probed = [m for m in measures if m in ("cosine", "l2", "intermediate")]
    if probed:
        step = functools.partial(probe_sums, chain, gradients="cosine" in probed)
        sums = BatchSum(step, strategy)(dataset, "cosine/l2/intermediate", progress)
        blocks = blocks.join(_probe_columns(sums, probed))
        summary.update(_model_scores(sums))
    if "drop" in measures:
        sums = BatchSum(functools.partial(drop_sums, chain), strategy)(dataset, "drop", progress)
        blocks["drop_accuracy"] = sums["drop_correct"] / sums["count"]
        blocks["drop_loss"] = sums["drop_loss"] / sums["count"]
        summary["examples"] = int(sums["count"])
    unrolled = None
    if "unroll" in measures:
        step = functools.partial(unroll_sums, chain, alphas=alphas, steps=steps)
        sums = BatchSum(step, strategy)(dataset, "unroll", progress)
        unrolled = _unroll_frame(sums, alphas, steps, len(chain) - 1)
        summary.setdefault("accuracy", float(unrolled["accuracy"].iloc[0]))
        summary.setdefault("loss", float(unrolled["loss"].iloc[0]))
        summary["examples"] = int(sums["count"])
    return Analysis(blocks, unrolled, summary)


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
    """Head accuracy/loss on h_j ("_input") and on block j's output; NaN where the width of
    that state differs from the head's (the head cannot read it)."""
    count = sums["count"]
    return {"intermediate_accuracy_input": sums["input_correct"] / count,
            "intermediate_loss_input": sums["input_loss"] / count,
            "intermediate_accuracy": sums["output_correct"] / count,
            "intermediate_loss": sums["output_loss"] / count}


def _model_scores(sums) -> dict:
    return {"examples": int(sums["count"]),
            "accuracy": float(sums["model_correct"] / sums["count"]),
            "loss": float(sums["model_loss"] / sums["count"])}


def _unroll_frame(sums, alphas, steps, block) -> pd.DataFrame:
    rows = [{"block": block, "alpha": alpha, "step": k,
             "accuracy": sums["correct"][a, k] / sums["count"],
             "loss": sums["loss"][a, k] / sums["count"],
             "entropy": sums["entropy"][a, k] / sums["count"]}
            for a, alpha in enumerate(alphas) for k in range(steps + 1)]
    return pd.DataFrame(rows, columns=list(UNROLL_COLUMNS))

