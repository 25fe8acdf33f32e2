"""analysis.report: Markdown tables without extra dependencies."""

import math

import pandas as pd

from analysis.report import markdown_table


def test_markdown_table_rounds_floats_and_marks_missing_values():
    frame = pd.DataFrame({"block": [0, 1], "cosine": [-0.123456, math.nan], "name": ["a", "b"]})
    assert markdown_table(frame, digits=3).splitlines() == [
        "| block | cosine | name |", "|---|---|---|", "| 0 | -0.123 | a |", "| 1 | - | b |"]
