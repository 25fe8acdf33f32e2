"""One Markdown writer for every table a person reads (``results.md``, ``trials.md``,
``report.md``, benchmark output), without the optional ``tabulate`` dependency."""

import math

import numpy as np


def markdown_table(frame, digits: int = 4, missing: str = "") -> str:
    """``frame`` as a GitHub Markdown table: floats to ``digits`` significant digits, missing
    values (None, NaN) as ``missing``, pipes inside cells escaped."""
    def cell(value) -> str:
        if value is None or (isinstance(value, (float, np.floating)) and math.isnan(value)):
            return missing
        if isinstance(value, (float, np.floating)):
            return f"{value:.{digits}g}"
        return str(value).replace("|", "\\|")

    header = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    rows = ["| " + " | ".join(cell(v) for v in row) + " |"
            for row in frame.itertuples(index=False, name=None)]
    return "\n".join([header, rule, *rows])
