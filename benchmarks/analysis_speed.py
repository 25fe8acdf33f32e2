"""Seconds for the full iterative-inference analysis vs. one training epoch, on this machine.

    python benchmarks/analysis_speed.py                 # preact110, 10,000 synthetic images
    python benchmarks/analysis_speed.py --images 1000   # a smaller run

Times each pass of ``analysis.frames.analyze`` (cosine + l2 + intermediate share one pass;
dropping; unrolling) on random 32x32 images, one inference pass (``predict``, traced first), and
``model.fit`` for two epochs at batch 128 on the same images (the first epoch includes tracing,
the second does not). Dropping each of L blocks in turn costs at least L/2 inference passes (block
j re-runs the L - j blocks after it); the last row is dropping's time over that. Every number
includes its one-time ``tf.function`` tracing, as a user would see it. Prints a Markdown table;
``--out`` also writes it with the settings as JSON.
"""

import argparse
import json
import os
import platform
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import trainers  # noqa: E402,F401  (first: oneDNN on before TensorFlow loads)
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_resnets  # noqa: E402
from analysis.frames import analyze  # noqa: E402
from analysis.report import markdown_table  # noqa: E402

PASSES = {"cosine + l2 + intermediate": "cosine,l2,intermediate", "drop": "drop",
          "unroll": "unroll"}


class EpochTimer(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds = getattr(self, "seconds", []) + [time.perf_counter() - self.start]


def synthetic(images: int, batch_size: int) -> tf.data.Dataset:
    x = tf.random.stateless_normal((images, 32, 32, 3), seed=[0, 1])
    y = tf.random.stateless_uniform((images,), seed=[0, 2], maxval=10, dtype=tf.int32)
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(batch_size).cache()


def time_analysis(model, data, steps: int) -> dict:
    seconds = {}
    for name, measures in PASSES.items():
        start = time.perf_counter()
        analyze(model, data, measures, steps=steps)
        seconds[name] = time.perf_counter() - start
    return seconds


def time_forward(model, data) -> float:
    """Seconds of one inference pass over ``data`` once traced (the unit of dropping's cost)."""
    model.predict(data, verbose=0)
    start = time.perf_counter()
    model.predict(data, verbose=0)
    return time.perf_counter() - start


def time_training(model, data) -> list:
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    timer = EpochTimer()
    model.fit(data, epochs=2, callbacks=[timer], verbose=0, shuffle=False)
    return timer.seconds


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="preact110")
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=20, help="unrolling steps")
    parser.add_argument("--out", default=None, help="folder for analysis_speed.{md,json}")
    args = parser.parse_args(argv)
    if args.images < 1 or args.batch_size < 1:
        parser.error("--images and --batch-size must be positive")

    data = synthetic(args.images, args.batch_size)
    model = keras_resnets.build(args.model)
    analysis = time_analysis(model, data, args.steps)
    forward = time_forward(model, data)
    blocks = len(keras_resnets.ResidualChain(model))
    epochs = time_training(model, data)
    total = sum(analysis.values())
    rows = [{"what": f"analysis: {name}", "seconds": s, "x one epoch": s / epochs[0]}
            for name, s in analysis.items()]
    rows += [{"what": "analysis: total", "seconds": total, "x one epoch": total / epochs[0]},
             {"what": "fit: epoch 1 (with tracing)", "seconds": epochs[0], "x one epoch": 1.0},
             {"what": "fit: epoch 2", "seconds": epochs[1], "x one epoch": epochs[1] / epochs[0]},
             {"what": "one inference pass (traced)", "seconds": forward,
              "x one epoch": forward / epochs[0]},
             {"what": f"dropping's inherent cost: {blocks}/2 inference passes",
              "seconds": forward * blocks / 2, "x one epoch": forward * blocks / 2 / epochs[0]},
             {"what": "drop / inherent cost", "seconds": None,
              "x one epoch": analysis["drop"] / (forward * blocks / 2)}]
    import pandas as pd

    table = markdown_table(pd.DataFrame(rows), digits=3)
    settings = {**vars(args), "machine": platform.processor() or platform.machine(),
                "cpus": os.cpu_count(), "tensorflow": tf.__version__}
    print(f"{args.model}, {args.images} synthetic 32x32 images, batch {args.batch_size}, "
          f"{settings['cpus']} CPUs\n\n{table}")
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "analysis_speed.md").write_text(table + "\n")
        (out / "analysis_speed.json").write_text(json.dumps({**settings, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
