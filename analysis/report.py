"""Markdown for analysis results: tables and links to the figures."""

from pathlib import Path

import pandas as pd

from trainers import tables


def markdown_table(frame: pd.DataFrame, digits: int = 4) -> str:
    """``frame`` as a Markdown table; NaN (a measure that does not apply) shown as ``-``."""
    return tables.markdown_table(frame, digits=digits, missing="-")


def analysis_report(analysis, figures: dict, title: str, notes=()) -> str:
    """``report.md`` of ``analysis.run``: the model's scores, the per-block table, the
    unrolling table and a link to every figure (paths relative to the report)."""
    summary = analysis.summary
    lines = [f"# {title}", ""]
    lines += [f"- {note}" for note in notes]
    lines += [f"- {key}: {value:.4g}" if isinstance(value, float) else f"- {key}: {value}"
              for key, value in summary.items()]
    lines += ["", "Cosine loss: negative means block j moves h_j along -dL/dh_j "
              "(Jastrzebski et al. 2018, Eq. 3). Blocks with `gradient_wrt = shortcut` change "
              "the shape; their gradient is taken at the shortcut output.", ""]
    lines += ["## Per block", "", markdown_table(analysis.blocks), ""]
    if analysis.unroll is not None:
        lines += ["## Unrolling the last block", "", markdown_table(analysis.unroll), ""]
    if figures:
        lines += ["## Figures", ""]
        lines += [f"![{name}]({Path(path).name})" for name, path in figures.items()]
    return "\n".join(lines) + "\n"
