"""Markdown for analysis results: tables and links to the figures."""

from pathlib import Path

import pandas as pd

from analysis import tables


def markdown_table(frame: pd.DataFrame, digits: int = 4) -> str:
    """``frame`` as a Markdown table; NaN (a measure that does not apply) shown as ``-``."""
    return tables.markdown_table(frame, digits=digits, missing="-")


def analysis_report(analysis, figures: dict, title: str, notes=()) -> str:
    """``report.md`` of ``analysis.run``: the model's scores, the per-block, borderline and
    unrolling tables and a link to every figure (paths relative to the report)."""
    lines = [f"# {title}", ""]
    lines += [f"- {note}" for note in notes]
    lines += [_summary_line(key, value) for key, value in analysis.summary.items()]
    lines += ["", "Cosine loss: negative means block j moves h_j along -dL/dh_j "
              "(Jastrzebski et al. 2018, Eq. 3). Blocks with `gradient_wrt = shortcut` change "
              "the shape; their gradient is taken at the shortcut output.", ""]
    lines += ["## Per block", "", markdown_table(analysis.blocks), ""]
    if analysis.borderline is not None:
        lines += ["## Borderline examples over the last blocks (Fig. 6)", "",
                  "Borderline: |p_y - max_(c != y) p_c| < 0.1 at the model's prediction; "
                  "correct: predicted right and not borderline (`analysis.borderline`).", "",
                  markdown_table(analysis.borderline), ""]
    if analysis.unroll is not None:
        unroll = analysis.unroll
        ends = unroll[unroll["step"].isin([0, unroll["step"].max()])]
        lines += ["## Unrolling the last block (Fig. 7)", "",
                  "Steps k = 0 (the model) and the last; every step is in `unroll.csv`.", "",
                  markdown_table(ends), ""]
    if figures:
        lines += ["## Figures", ""]
        lines += [f"![{name}]({Path(path).name})" for name, path in figures.items()]
    return "\n".join(lines) + "\n"


def _summary_line(key, value) -> str:
    """``- key: value``; the per-split scores (``splits``) one line per split."""
    if isinstance(value, dict):
        return "\n".join(f"- {split}: " + ", ".join(f"{k} {_number(v)}" for k, v in scores.items())
                         for split, scores in value.items())
    return f"- {key}: {_number(value)}"


def _number(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
