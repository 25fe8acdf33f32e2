"""Where Table 1's gates ended: the mean gate value g of every block of each gated run, on the
first 1,000 real CIFAR-10 test images (the trained ``final.keras`` in ``sweeps/he2016/runs``).

    python results/he2016/gates.py [--data-dir ~/data]     # -> results/he2016/gates.csv, .md

Exclusive gating computes ``(1 - g) h(x) + g F(x)`` and shortcut-only gating
``(1 - g) h(x) + F(x)`` (He et al. 2016, Table 1), with ``g = sigmoid(W_g x + b_g)``; a gate
bias of -6 starts g at about 0.0025. This shows how far the gates opened in this study's 1,560
iterations, which is what its exclusive-gating rows measure.
"""

import argparse
from pathlib import Path

import trainers  # noqa: F401  (first: oneDNN on before TensorFlow loads)
import keras
import numpy as np
import pandas as pd

import keras_resnets
from trainers.cifar_files import find_cifar_files, read_arrays
from analysis.tables import markdown_table

HERE = Path(__file__).resolve().parent
RUNS = HERE.parents[1] / "sweeps" / "he2016" / "runs"


def mean_gates(run: str, images) -> list[float]:
    """The mean of g over images, positions and channels, per block of ``run``."""
    model = keras.models.load_model(RUNS / run / "final.keras")
    _, parts, _ = keras_resnets.ResidualChain(model).hidden_states(images)
    return [float(np.mean(part.gate)) for part in parts]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=str(Path.home() / "data"))
    args = parser.parse_args()
    images = read_arrays("cifar10", find_cifar_files("cifar10", Path(args.data_dir)))["test"][0]
    ledger = pd.read_csv(HERE / "runs.csv")
    gated = ledger[ledger["model"].str.contains("-gate-")].sort_values("run")
    missing = [run for run in gated["run"] if not (RUNS / run / "final.keras").is_file()]
    if missing:
        raise SystemExit(f"No final.keras for {', '.join(missing)} under {RUNS}: run "
                         f"results/he2016/run.sh first (run folders are not committed).")
    rows = [{"run": run, "test error %": round(error, 2),
             **{f"block {j}": round(g, 4) for j, g in enumerate(
                 mean_gates(run, images[:1000].astype("float32")))}}
            for run, error in zip(gated["run"], gated["test_error"])]
    table = pd.DataFrame(rows)
    table.to_csv(HERE / "gates.csv", index=False)
    (HERE / "gates.md").write_text(markdown_table(table) + "\n")
    print(markdown_table(table))


if __name__ == "__main__":
    main()
