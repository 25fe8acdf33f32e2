"""analysis.tables: the one Markdown writer of the project's reports."""

import numpy as np
import pandas as pd

from analysis.tables import markdown_table


def test_markdown_table_formats_missing_values_numpy_floats_and_pipes():
    frame = pd.DataFrame({"model": ["a|b", "c"], "error": [np.float32(6.6149), None],
                          "runs": [1, 2]})
    assert markdown_table(frame, digits=3, missing="n/a").splitlines() == [
        "| model | error | runs |", "|---|---|---|", "| a\\|b | 6.61 | 1 |", "| c | n/a | 2 |"]
