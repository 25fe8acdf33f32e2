"""Write ``plan.csv``: the full-scale runs, in order, with their commands and estimated GPU time.

    KERAS_BACKEND=jax python results/fullscale/plan.py     # -> results/fullscale/plan.csv

Every run is He et al. 2016's CIFAR recipe at its full length (164 epochs of 391 steps, batch
128, seed 0) on all 50,000 training images, trained by ``trainers.array_fit`` and run in order,
a few minutes per GPU window, by ``python -m experiments.fullscale``.

The times are estimates, not measurements: no full-scale run has been timed on an H100. The one
deep-net rate measured on this project's GPU is preact110 at 7,983 images/s (one H200, batch
128, 64 steps per compiled call, ``results/gpu/``). Each model's training step is taken to cost
preact110's times a ratio from XLA's cost analysis of the model's forward pass (JAX backend,
batch 128, compiled for the CPU this script runs on): ``est_h100_minutes`` from the ratio of
floating-point operations, ``est_h100_minutes_high`` from the larger of that and the ratio of
bytes accessed (batch normalisation and ReLU on 32x32 maps are bound by memory, not
arithmetic, so a bottleneck net with four times wider activations is slower than its FLOPs
say; how much depends on what the GPU compiler fuses, which the CPU's count only bounds
roughly). The 20-layer nets use their measured full runs instead (``results/pretrained/``:
resnet20's 164 epochs took 271 s, preact20's 153 took 335 s, each with a test pass per epoch),
because small nets are bound by per-step overhead, which no ratio of arithmetic captures. An
H100 has the H200's arithmetic and 30% less memory bandwidth: H200 times ``H100_FACTOR``, an
assumption. Each estimate includes the per-epoch test pass (forward only, a third of a
training step per image) but not the compilation each window pays (not measured here).
"""

import sys
from pathlib import Path

import jax
import keras
import pandas as pd

import keras_resnets

HERE = Path(__file__).resolve().parent
EPOCHS, TRAIN, TEST, BATCH = 164, 50_000, 10_000, 128
REFERENCE = ("preact110", 7_983)  # images/s, one H200, 64 steps per call (results/gpu/)
MEASURED_SECONDS_PER_EPOCH = {"resnet20": 271 / 164, "preact20": 335 / 153}  # one H200
H100_FACTOR = 1.2  # assumed: same arithmetic, 3.35 vs 4.8 TB/s memory bandwidth
COMMAND = ("KERAS_BACKEND=jax python -m trainers.array_fit --model {model} --dataset {dataset} "
           "--data-dir /tmp/data --out runs/fullscale/{run} --epochs 164 "
           "--steps-per-execution {spe} --seed 0")
# (run, model, dataset, purpose, the paper's test error %)
RUNS = [
    ("resnet110-cifar10", "resnet110", "cifar10",
     "He et al. 2016 Table 2, ResNet-110 original; also resnet110 pretrained weights", 6.61),
    ("preact110-cifar10", "preact110", "cifar10",
     "He et al. 2016 Table 2, ResNet-110 full pre-activation; also preact110 pretrained weights",
     6.37),
    ("resnet164-cifar10", "resnet164", "cifar10", "He et al. 2016 Table 2, ResNet-164 original",
     5.93),
    ("preact164-cifar10", "preact164", "cifar10",
     "He et al. 2016 Table 2, ResNet-164 full pre-activation", 5.46),
    ("preact20-cifar10", "preact20", "cifar10",
     "shipped preact20 weights retrained with mean-colour padding", None),
    ("resnet20-cifar10", "resnet20", "cifar10",
     "shipped resnet20 weights retrained with mean-colour padding (He et al. 2015: 8.75)", 8.75),
    ("resnet56-cifar10", "resnet56", "cifar10",
     "resnet56 pretrained weights (He et al. 2015: 6.97)", 6.97),
    ("preact20-cifar100", "preact20", "cifar100",
     "preact20 CIFAR-100 pretrained weights (needs the CIFAR-100 python archive)", None),
]


def forward_cost(model_name: str, classes: int) -> tuple[float, float]:
    """(FLOPs, bytes accessed) of one training-mode forward pass of a batch, from XLA's cost
    analysis of the compiled function."""
    model = keras_resnets.build(model_name, num_classes=classes)
    images = jax.ShapeDtypeStruct((BATCH, 32, 32, 3), "float32")

    def forward(trainable, non_trainable, x):
        return model.stateless_call(trainable, non_trainable, x, training=True)[0]

    values = [[v.value for v in model.trainable_variables],
              [v.value for v in model.non_trainable_variables]]
    analysis = jax.jit(forward).lower(*values, images).compile().cost_analysis()
    analysis = analysis[0] if isinstance(analysis, list) else analysis
    return analysis["flops"], analysis["bytes accessed"]


def h200_minutes(model: str, classes: int, reference: tuple[float, float]) -> dict:
    """Estimated minutes of the whole run on one H200: ``flops_ratio`` and ``bytes_ratio`` (its
    step against preact110's), ``low`` from the FLOPs ratio, ``high`` from the larger ratio."""
    if model in MEASURED_SECONDS_PER_EPOCH:  # 100 classes add one small dense layer's work
        minutes = EPOCHS * MEASURED_SECONDS_PER_EPOCH[model] / 60
        return {"flops_ratio": None, "bytes_ratio": None, "low": minutes, "high": minutes,
                "basis": "measured CIFAR-10 run (H200)"}
    flops, traffic = forward_cost(model, classes)
    ratios = flops / reference[0], traffic / reference[1]
    minutes = [EPOCHS * (TRAIN + TEST / 3) * ratio / REFERENCE[1] / 60
               for ratio in (ratios[0], max(ratios))]
    return {"flops_ratio": round(ratios[0], 2), "bytes_ratio": round(ratios[1], 2),
            "low": minutes[0], "high": minutes[1], "basis": "preact110's rate x XLA cost ratio"}


def plan() -> pd.DataFrame:
    """The plan's rows: run, model, dataset, purpose, paper error, parameters, estimates,
    command."""
    reference = forward_cost(REFERENCE[0], 10)
    rows = []
    for run, model, dataset, purpose, paper in RUNS:
        classes = 100 if dataset == "cifar100" else 10
        estimate = h200_minutes(model, classes, reference)
        deep = model not in MEASURED_SECONDS_PER_EPOCH
        rows.append({"run": run, "model": model, "dataset": dataset, "purpose": purpose,
                     "paper_error": paper,
                     "parameters": keras_resnets.count_parameters(
                         keras_resnets.build(model, num_classes=classes)),
                     "estimate_basis": estimate["basis"],
                     "flops_vs_preact110": estimate["flops_ratio"],
                     "bytes_vs_preact110": estimate["bytes_ratio"],
                     "est_h100_minutes": round(H100_FACTOR * estimate["low"], 1),
                     "est_h100_minutes_high": round(H100_FACTOR * estimate["high"], 1),
                     "command": COMMAND.format(model=model, dataset=dataset, run=run,
                                               spe=64 if deep else 1)})
    return pd.DataFrame(rows)


if __name__ == "__main__":
    if keras.backend.backend() != "jax":
        sys.exit("Run with KERAS_BACKEND=jax: the estimates use XLA's cost analysis.")
    table = plan()
    table.to_csv(HERE / "plan.csv", index=False)
    print(table.drop(columns=["command", "purpose"]).to_string(index=False))
    print(f"total: {table['est_h100_minutes'].sum():.0f} to "
          f"{table['est_h100_minutes_high'].sum():.0f} min on one H100 (estimate)",
          file=sys.stderr)
