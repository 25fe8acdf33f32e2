"""Tables and training curves of the shipped pretrained weights, from the run folders here.

    python results/pretrained/report.py      # -> results/pretrained/README table, curves.png
"""

import json
from pathlib import Path

import matplotlib
import pandas as pd

from trainers.tables import markdown_table

matplotlib.use("Agg")
from matplotlib import pyplot as plt  # noqa: E402

HERE = Path(__file__).resolve().parent
RUNS = ("preact20", "resnet20", "resnet20-budget147")


def main():
    rows, figure = [], plt.figure(figsize=(9, 3.5))
    loss_axis, error_axis = figure.subplots(1, 2)
    for run in RUNS:
        metrics = json.loads((HERE / run / "metrics.json").read_text())
        history = pd.read_csv(HERE / run / "history.csv")
        rows.append({"run": run, "model": metrics["model"], "epochs": metrics["epochs"],
                     "iterations": metrics["iterations"],
                     "final test accuracy %": round(100 * metrics["test_accuracy"], 2),
                     "train wall time s": round(metrics["wall_time_s"])})
        loss_axis.plot(history["epoch"], history["loss"], label=f"{run} train")
        error_axis.plot(history["epoch"], 100 * (1 - history["val_accuracy"]), label=run)
    loss_axis.set(xlabel="epoch", ylabel="training loss (with L2)", yscale="log")
    error_axis.set(xlabel="epoch", ylabel="test error % (recorded, never used to choose)",
                   ylim=(5, 40))
    error_axis.legend()
    figure.tight_layout()
    figure.savefig(HERE / "curves.png", dpi=110)
    table = pd.DataFrame(rows)
    (HERE / "runs.csv").write_text(table.to_csv(index=False))
    print(markdown_table(table))


if __name__ == "__main__":
    main()
