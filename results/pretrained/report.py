"""Table and training curves of the shipped pretrained weights, from ``runs.csv`` (each run's
result and full config) and ``history/<run>.csv`` (its per-epoch history).

    python results/pretrained/report.py   # -> the weights table (printed), curves.png
"""

from pathlib import Path

import pandas as pd

from analysis.plots import plot_loss_and_error
from analysis.tables import markdown_table

HERE = Path(__file__).resolve().parent


def main():
    runs = pd.read_csv(HERE / "runs.csv")
    histories = {run: pd.read_csv(HERE / "history" / f"{run}.csv") for run in runs["run"]}
    plot_loss_and_error(histories, HERE / "curves.png")
    table = pd.DataFrame({
        "run": runs["run"], "model": runs["model"], "epochs": runs["epochs"],
        "iterations": runs["iterations"],
        "final test accuracy %": (100 * runs["test_accuracy"]).round(2),
        "train wall time s": runs["wall_time_s"].round().astype(int)})
    print(markdown_table(table))


if __name__ == "__main__":
    main()
