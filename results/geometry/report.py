"""The geometry change as a number: the same runs with Keras's "same" padding of strided convs
(results/he2016/runs.csv, recorded before the zoo padded symmetrically) and with the papers'
symmetric padding (results/geometry/runs.csv), side by side.

    python results/geometry/report.py      # -> results/geometry/comparison.csv and .md

Reads only the two committed ledgers; trains nothing.
"""

import json
from pathlib import Path

import pandas as pd

from analysis.tables import markdown_table

HERE = Path(__file__).resolve().parent
SAME = HERE.parent / "he2016" / "runs.csv"
SYMMETRIC = HERE / "runs.csv"


def geometry(config_cell: str) -> str:
    """The strided padding a ledger row's run was built with (rows written before the setting
    existed trained with Keras's ``"same"``)."""
    return json.loads(config_cell)["model_overrides"].get("strided_padding", "same")


def comparison() -> pd.DataFrame:
    """One row per model of the symmetric runs: its test error with each geometry (the "same"
    runs of every recorded seed, for the seed-to-seed spread)."""
    same, symmetric = pd.read_csv(SAME), pd.read_csv(SYMMETRIC)
    rows = []
    for _, run in symmetric[symmetric["outcome"] == "finished"].iterrows():
        assert geometry(run["config"]) == "symmetric", run["run"]
        twins = same[(same["model"] == run["model"]) & (same["outcome"] == "finished")]
        twins = twins[twins["config"].map(geometry) == "same"]
        seed = twins[twins["seed"] == run["seed"]]["test_error"]
        rows.append({
            "model": run["model"], "seed": int(run["seed"]),
            "same_error": round(float(seed.iloc[0]), 2) if len(seed) else None,
            "symmetric_error": round(float(run["test_error"]), 2),
            "difference": round(float(run["test_error"] - seed.iloc[0]), 2) if len(seed) else None,
            "same_seeds": len(twins),
            "same_range": round(float(twins["test_error"].max() - twins["test_error"].min()), 2),
        })
    return pd.DataFrame(rows)


def main() -> None:
    """Write the comparison as CSV and Markdown beside this script."""
    table = comparison()
    table.to_csv(HERE / "comparison.csv", index=False)
    (HERE / "comparison.md").write_text(markdown_table(table) + "\n")
    print(markdown_table(table))


if __name__ == "__main__":
    main()
