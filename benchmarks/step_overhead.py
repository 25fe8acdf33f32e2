"""Per-step cost of Keras ``fit`` on this machine's accelerator, on any Keras backend.

    KERAS_BACKEND=jax python benchmarks/step_overhead.py            # the lent GPU (no TF there)
    python benchmarks/step_overhead.py --models preact20 --steps 8   # CPU, TensorFlow

Small CIFAR nets on a fast GPU are bound by what each step costs besides arithmetic (launches,
Python, host-device copies): a 164-epoch ResNet-110 in under 30 minutes needs about 4,600
images/s. This measures, at batch 128 on in-memory arrays:
- a tiny model (one 3x3 conv, pooling, dense): pure per-step overhead, for each
  ``steps_per_execution`` (several steps per compiled call);
- the batched on-device augmentation alone (``PadCropFlip``): the input work's own rate;
- zoo models with that augmentation, trained as ``trainers.array_fit`` trains them.
Prints a Markdown table; ``--out`` also writes the rows as JSON.
"""

import argparse
import json
import sys
import time

import trainers  # noqa: F401  (first: oneDNN on before TensorFlow loads)
import keras
import numpy as np

from keras_resnets.augment import PadCropFlip
from trainers.array_fit import build_for_training
from trainers.config import TrainConfig

BATCH = 128


def synthetic(batches: int, seed: int = 0) -> dict:
    """Random 0..255 CIFAR-shaped arrays in the form ``trainers.array_fit`` takes."""
    rng = np.random.default_rng(seed)
    images = rng.uniform(0, 255, (batches * BATCH, 32, 32, 3)).astype(np.float32)
    labels = rng.integers(0, 10, batches * BATCH)
    return {"train": (images, labels), "test": (images[:BATCH], labels[:BATCH]),
            "mean": [127.5] * 3, "std": [73.6] * 3, "num_classes": 10}


def timed_fit(model, data: dict, steps: int) -> float:
    """Seconds per step of ``model.fit`` over ``steps`` batches, after one untimed pass."""
    images, labels = (a[: steps * BATCH] for a in data["train"])
    model.fit(images, labels, batch_size=BATCH, epochs=1, verbose=0)
    start = time.perf_counter()
    model.fit(images, labels, batch_size=BATCH, epochs=1, verbose=0)
    return (time.perf_counter() - start) / steps


def tiny_model(steps_per_execution: int):
    model = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Conv2D(8, 3),
                              keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(10)])
    model.compile(keras.optimizers.SGD(0.01, momentum=0.9),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  steps_per_execution=steps_per_execution)
    return model


def augmentation_rate(data: dict, repeats: int = 20) -> float:
    """Images/s of ``PadCropFlip`` alone on batches of 128 (compiled where the backend can)."""
    layer = PadCropFlip(seed=0, fill=data["mean"])
    batch = keras.ops.convert_to_tensor(data["train"][0][:BATCH])
    run = _compiled(lambda x: layer(x, training=True))
    keras.ops.convert_to_numpy(run(batch))
    start = time.perf_counter()
    for _ in range(repeats):
        out = run(batch)
    keras.ops.convert_to_numpy(out)
    return repeats * BATCH / (time.perf_counter() - start)


def _compiled(function):
    if keras.backend.backend() == "jax":
        import jax

        return jax.jit(function)
    return function


def whole_calls(steps: int, steps_per_execution: int) -> int:
    """At least ``steps`` (and two compiled calls), rounded down to whole calls."""
    return max(steps, 2 * steps_per_execution) // steps_per_execution * steps_per_execution


def row(kind, model, spe, seconds):
    return {"backend": keras.backend.backend(), "what": kind, "model": model,
            "steps_per_execution": spe, "ms_per_step": round(1000 * seconds, 2),
            "images_per_s": round(BATCH / seconds, 1)}


def measure(models, steps: int, executions) -> list[dict]:
    data = synthetic(max(steps, max(executions) * 2))
    rows = []
    for spe in executions:
        rows.append(row("tiny model (overhead)", "conv8-pool-dense", spe,
                        timed_fit(tiny_model(spe), data, whole_calls(steps, spe))))
        print(rows[-1], file=sys.stderr, flush=True)
    rate = augmentation_rate(data)
    rows.append(row("augmentation only", "PadCropFlip", None, BATCH / rate))
    for name in models:
        for spe in (1, max(executions)):
            config = TrainConfig(model=name, dataset="synthetic", epochs=1,
                                 steps_per_execution=spe)
            _, trainer = build_for_training(config, data, steps)
            rows.append(row("zoo model + augmentation", name, spe,
                            timed_fit(trainer, data, whole_calls(steps, spe))))
            print(rows[-1], file=sys.stderr, flush=True)
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="*", default=["preact20", "preact110"])
    parser.add_argument("--steps", type=int, default=50, help="timed steps per measurement")
    parser.add_argument("--steps-per-execution", type=int, nargs="+", default=[1, 4, 16, 64])
    parser.add_argument("--out", help="also write the rows to this JSON file")
    args = parser.parse_args(argv)
    rows = measure(args.models, args.steps, args.steps_per_execution)
    import pandas as pd

    from analysis.tables import markdown_table

    print(markdown_table(pd.DataFrame(rows)))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(rows, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
