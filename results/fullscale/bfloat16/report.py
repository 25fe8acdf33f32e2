"""Tabulate ``run.sh``'s float32 and mixed_bfloat16 runs: results.csv and results.md.

    python results/fullscale/bfloat16/report.py /tmp/fs_bf16

The question: does ``trainers.array_fit --mixed-precision bfloat16`` train to the accuracy of
float32? The answer is judged against the noise of the same setting: the difference between the
two precisions' mean test accuracy beside the spread between seeds within each precision.
"""

import json
import sys
from pathlib import Path

import pandas as pd

from analysis.tables import markdown_table

HERE = Path(__file__).resolve().parent


def collect(runs: Path) -> pd.DataFrame:
    """One row per run folder: precision, seed, final test accuracy, per-epoch test accuracy,
    training seconds."""
    rows = []
    for metrics_path in sorted(runs.glob("*/metrics.json")):
        metrics = json.loads(metrics_path.read_text())
        config = json.loads((metrics_path.parent / "config.json").read_text())
        history = pd.read_csv(metrics_path.parent / "history.csv")
        rows.append({"run": metrics_path.parent.name, "precision": metrics["dtype_policy"],
                     "seed": config["seed"], "backend": metrics["backend"],
                     "test_accuracy_pct": round(100 * metrics["test_accuracy"], 2),
                     "test_accuracy_by_epoch_pct": " ".join(
                         f"{100 * a:.2f}" for a in history["val_accuracy"]),
                     "final_train_loss": round(history["loss"].iloc[-1], 4),
                     "train_seconds": round(metrics["wall_time_s"], 1)})
    return pd.DataFrame(rows)


def summary(table: pd.DataFrame) -> str:
    """The precisions' mean accuracy, their difference and the seed spread within each."""
    by = table.groupby("precision")["test_accuracy_pct"]
    means, spreads = by.mean(), by.max() - by.min()
    lines = [f"- {p}: mean {means[p]:.2f}% over seeds {sorted(table[table.precision == p].seed)}"
             f", seed spread {spreads[p]:.2f} points" for p in means.index]
    difference = means.get("mixed_bfloat16", float("nan")) - means.get("float32", float("nan"))
    lines.append(f"- difference (mixed_bfloat16 - float32): {difference:+.2f} points")
    return "\n".join(lines)


if __name__ == "__main__":
    table = collect(Path(sys.argv[1]))
    table.to_csv(HERE / "results.csv", index=False)
    text = markdown_table(table) + "\n\n" + summary(table) + "\n"
    (HERE / "results.md").write_text(text)
    print(text)
