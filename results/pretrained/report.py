"""Table and training curves of the shipped pretrained weights, from ``runs.csv`` (each run's
result and full config) and ``history/<run>.csv`` (its per-epoch history).

    python results/pretrained/report.py      # -> the README's table (printed), curves.png
"""

from pathlib import Path

import matplotlib
import pandas as pd

from trainers.tables import markdown_table

matplotlib.use("Agg")
from matplotlib import pyplot as plt  # noqa: E402

HERE = Path(__file__).resolve().parent


def main():
    runs = pd.read_csv(HERE / "runs.csv")
    figure = plt.figure(figsize=(9, 3.5))
    loss_axis, error_axis = figure.subplots(1, 2)
    for run in runs["run"]:
        history = pd.read_csv(HERE / "history" / f"{run}.csv")
        loss_axis.plot(history["epoch"], history["loss"], label=f"{run} train")
        error_axis.plot(history["epoch"], 100 * (1 - history["val_accuracy"]), label=run)
    loss_axis.set(xlabel="epoch", ylabel="training loss (with L2)", yscale="log")
    error_axis.set(xlabel="epoch", ylabel="test error % (recorded, never used to choose)",
                   ylim=(5, 40))
    error_axis.legend()
    figure.tight_layout()
    figure.savefig(HERE / "curves.png", dpi=110)
    table = pd.DataFrame({
        "run": runs["run"], "model": runs["model"], "epochs": runs["epochs"],
        "iterations": runs["iterations"],
        "final test accuracy %": (100 * runs["test_accuracy"]).round(2),
        "train wall time s": runs["wall_time_s"].round().astype(int)})
    print(markdown_table(table))


if __name__ == "__main__":
    main()
