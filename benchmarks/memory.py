"""Peak resident memory of training zoo models on the CPU, and the batch that fits a budget.

    python benchmarks/memory.py                                   # preact110 and preact1001
    python benchmarks/memory.py --models preact110 --batches 32 64 128

Each (model, batch) trains ``--steps`` steps of the trainer's own model and compile (SGD, L2,
the he2016 schedule; Keras's own batch-norm path, not ``--fused-batchnorm``) on random images
in a fresh process, whose peak resident set size
(``ru_maxrss``) is read when it ends. Peak memory grows linearly with the batch (activations
kept for the backward pass), so a least-squares line through the measured batches gives the
batch that fits ``--budget-gib`` and, where batch 128 was not run (it does not fit this
machine for preact1001), its predicted peak, marked as predicted. Prints a Markdown table;
``--out`` also writes it as JSON.
"""

import argparse
import json
import os
import resource
import subprocess
import sys

import numpy as np

GIB = 1024 ** 3


def worker(model: str, batch: int, steps: int) -> dict:
    """Train ``steps`` steps in this process; returns its peak RSS in GiB (``ru_maxrss`` is in
    KiB on Linux)."""
    import trainers  # noqa: F401  (first: oneDNN on before TensorFlow loads)
    import keras

    import keras_resnets
    from trainers.config import TrainConfig
    from trainers.train import compile_model

    config = TrainConfig(model=model, dataset="synthetic", batch_size=batch, epochs=1)
    net = keras_resnets.build(model, weight_decay=config.weight_decay)
    compile_model(net, config, steps_per_epoch=steps)
    rng = np.random.default_rng(0)
    images = rng.normal(size=(batch * steps, 32, 32, 3)).astype("float32")
    labels = rng.integers(0, 10, batch * steps)
    net.fit(images, labels, batch_size=batch, epochs=1, verbose=0)
    keras.backend.clear_session()
    return {"model": model, "batch": batch,
            "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GIB}


def measure(model: str, batch: int, steps: int) -> dict:
    command = [sys.executable, __file__, "--worker", model, str(batch), "--steps", str(steps)]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode:
        return {"model": model, "batch": batch, "peak_rss_gib": None,
                "note": f"failed (exit {done.returncode}: out of memory?)"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def fit_line(rows: list[dict]) -> tuple[float, float]:
    """(fixed GiB, GiB per image) of peak memory, by least squares over the measured rows."""
    batches = np.array([r["batch"] for r in rows], float)
    peaks = np.array([r["peak_rss_gib"] for r in rows], float)
    slope, fixed = np.polyfit(batches, peaks, 1)
    return float(fixed), float(slope)


def summarise(model: str, rows: list[dict], budget_gib: float) -> list[dict]:
    measured = [r for r in rows if r["peak_rss_gib"] is not None]
    out = [{**r, "kind": "measured"} for r in rows]
    if len(measured) >= 2:
        fixed, per_image = fit_line(measured)
        if 128 not in {r["batch"] for r in measured}:
            out.append({"model": model, "batch": 128, "kind": "predicted (linear fit)",
                        "peak_rss_gib": fixed + 128 * per_image})
        out.append({"model": model, "batch": int((budget_gib - fixed) // per_image),
                    "kind": f"largest batch within {budget_gib:g} GiB (linear fit)",
                    "peak_rss_gib": budget_gib})
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["preact110", "preact1001"])
    parser.add_argument("--batches", nargs="+", type=int, default=None,
                        help="default: 32 64 128 (preact110), 8 16 32 (preact1001)")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--budget-gib", type=float, default=8.0)
    parser.add_argument("--out")
    parser.add_argument("--worker", nargs=2, metavar=("MODEL", "BATCH"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker[0], int(args.worker[1]), args.steps)))
        return 0
    import pandas as pd

    from analysis.tables import markdown_table

    table = []
    for model in args.models:
        batches = args.batches or ([8, 16, 32] if model == "preact1001" else [32, 64, 128])
        rows = [measure(model, batch, args.steps) for batch in batches]
        for row in rows:
            print(row, file=sys.stderr, flush=True)
        table += summarise(model, rows, args.budget_gib)
    frame = pd.DataFrame(table)
    print(markdown_table(frame, digits=3))
    if args.out:
        frame.to_json(args.out, orient="records", indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
