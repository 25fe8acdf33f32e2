"""Train a zoo model on in-memory CIFAR arrays with Keras ``fit``, on any Keras backend.

    KERAS_BACKEND=jax python -m trainers.array_fit --model preact20 --data-dir ~/data --out DIR

For accelerators without TensorFlow (the GPU machine lent to this project has JAX, not
TensorFlow). Same recipe as ``trainers.train`` (``TrainConfig``'s ``he2016``, ``StepSchedule``),
with the standardisation inside the model (it takes raw 0..255 images) and the augmentation as
a batched layer on the accelerator (``keras_resnets.augment.PadCropFlip``). No tf.distribute,
no resume: use ``trainers.train`` for long runs. ``--time-budget`` picks the number of epochs
that fits a wall-clock budget from a timed run of the same model (never from accuracy), and
shortens the recipe keeping its shape. Writes ``config.json``, ``history.csv``,
``metrics.json`` and ``{model}.weights.h5`` into ``--out``.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pandas as pd

import keras_resnets
from keras_resnets.augment import PadCropFlip
from trainers import cli
from trainers.cifar_files import CIFAR_FILES, find_cifar_files, read_arrays
from trainers.config import TrainConfig
from trainers.schedule import make_schedule

RECIPE_EPOCHS = 164  # 64k iterations of 390 steps, He et al. 2016
CALIBRATION_STEPS = 40


def load_cifar(dataset: str, data_dir: str, train_size=None, test_size=None) -> dict:
    """Float32 0..255 images and int labels of both splits (the first ``train_size`` /
    ``test_size``), with the training images' per-channel mean and std (the model's
    standardisation)."""
    found = find_cifar_files(dataset, Path(data_dir))
    if found is None:
        raise ValueError(f"No {dataset} python batches in {data_dir} (expected "
                         f"{CIFAR_FILES[dataset]['folder']}/ or {CIFAR_FILES[dataset]['archive']}).")
    arrays = read_arrays(dataset, found, train_size, test_size)
    train_images, train_labels = (a[:train_size] for a in arrays["train"])
    test_images, test_labels = (a[:test_size] for a in arrays["test"])
    train_images = train_images.astype(np.float32)
    return {"train": (train_images, train_labels),
            "test": (test_images.astype(np.float32), test_labels),
            "mean": train_images.mean(axis=(0, 1, 2)).tolist(),
            "std": train_images.std(axis=(0, 1, 2)).tolist(),
            "num_classes": CIFAR_FILES[dataset]["classes"]}


def steps_per_epoch(data: dict, batch_size: int) -> int:
    """Keras ``fit`` on arrays runs the last, smaller batch too: ceil(N / batch) steps."""
    return -(-len(data["train"][0]) // batch_size)


def build_for_training(config: TrainConfig, data: dict, steps_per_epoch: int):
    """(the zoo model taking raw images, the same model behind ``PadCropFlip``, compiled)."""
    net = keras_resnets.build(config.model, num_classes=data["num_classes"],
                              weight_decay=config.weight_decay,
                              standardize=(data["mean"], data["std"]), **config.model_overrides)
    images = keras.Input(net.input_shape[1:], name="images")
    augmented = PadCropFlip(seed=config.seed, name="augment")(images) if config.augment else images
    trainer = keras.Model(images, net(augmented), name=f"{net.name}_training")
    trainer.compile(optimizer=keras.optimizers.SGD(make_schedule(config, steps_per_epoch),
                                                   momentum=config.momentum),
                    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                    metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
                    steps_per_execution=config.steps_per_execution)
    return net, trainer


def seconds_per_step(config: TrainConfig, data: dict) -> float:
    """Steady-state seconds per training step of ``config``'s model (a throwaway copy; the
    first call, which compiles, is not timed)."""
    net, trainer = build_for_training(config, data, 10 * CALIBRATION_STEPS)
    batch = config.batch_size * CALIBRATION_STEPS
    images, labels = data["train"][0][:batch], data["train"][1][:batch]
    trainer.fit(images, labels, batch_size=config.batch_size, epochs=1, verbose=0)
    start = time.perf_counter()
    trainer.fit(images, labels, batch_size=config.batch_size, epochs=1, verbose=0)
    return (time.perf_counter() - start) / CALIBRATION_STEPS


def epochs_for_budget(seconds: float, step_seconds: float, steps_per_epoch: int,
                      test_fraction: float) -> int:
    """Whole epochs (at most the recipe's 164) whose training and per-epoch test pass fit in
    ``seconds``; at least 4 so that the schedule keeps its warm-up and both drops."""
    epoch_seconds = step_seconds * steps_per_epoch * (1 + test_fraction / 3)
    return int(min(RECIPE_EPOCHS, max(4, seconds // epoch_seconds)))


def train_arrays(config: TrainConfig, data: dict) -> dict:
    """Train ``config`` on ``data`` and write the run folder; returns ``metrics.json``'s dict."""
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    config.save(out / "config.json")
    keras.utils.set_random_seed(config.seed)
    steps = steps_per_epoch(data, config.batch_size)
    net, trainer = build_for_training(config, data, steps)
    started = time.perf_counter()
    history = trainer.fit(*data["train"], batch_size=config.batch_size,
                          epochs=config.resolved_epochs(steps), validation_data=data["test"],
                          shuffle=True, verbose=2)
    wall = time.perf_counter() - started
    loss, accuracy = trainer.evaluate(*data["test"], batch_size=500, verbose=0)
    net.save_weights(out / f"{config.model}.weights.h5")
    table = pd.DataFrame(history.history)
    table.insert(0, "epoch", [epoch + 1 for epoch in history.epoch])
    table.to_csv(out / "history.csv", index=False, float_format="%.6g")
    metrics = {"model": config.model, "dataset": config.dataset, "backend": keras.backend.backend(),
               "epochs": len(history.epoch), "iterations": int(trainer.optimizer.iterations),
               "test_accuracy": float(accuracy), "test_error": 100 * (1 - float(accuracy)),
               "test_loss": float(loss), "wall_time_s": wall,
               "train_examples": len(data["train"][0]), "test_examples": len(data["test"][0]),
               "standardize": {"mean": data["mean"], "std": data["std"]},
               "parameters": keras_resnets.count_parameters(net)}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics


# The TrainConfig fields this trainer takes as flags; the rest are the he2016 recipe's.
FLAGS = ("model", "dataset", "data_dir", "out", "epochs", "batch_size", "train_size", "test_size",
         "steps_per_execution", "seed")
HELP = {"model": "zoo model name (keras_resnets.list_models())",
        "data_dir": "folder with the CIFAR python batches",
        "out": "run folder: config.json, history.csv, metrics.json, MODEL.weights.h5",
        "epochs": f"shorten the recipe (default: {RECIPE_EPOCHS})",
        "train_size": "keep the first N training images",
        "test_size": "keep the first N test images"}


def make_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m trainers.array_fit``: the config flags it supports."""
    parser = cli.Parser(prog="python -m trainers.array_fit", description=__doc__.split("\n\n")[0])
    cli.add_config_flags(parser, TrainConfig, HELP, only=FLAGS,
                         custom={"dataset": {"choices": list(CIFAR_FILES)},
                                 "data_dir": {"required": True}, "out": {"required": True}})
    parser.add_argument("--time-budget", type=float,
                        help="seconds: choose the epochs that fit (instead of --epochs)")
    return parser


def main(argv=None) -> int:
    """CLI (``trainers.cli.run_cli``): 0 trained, 1 a write failed, 2 bad input."""
    return cli.run_cli(_fit_command, argv)


def _fit_command(argv) -> None:
    """Check the flags, load the arrays, fit (for ``--time-budget`` seconds) and print metrics."""
    args = make_parser().parse_args(argv)
    values = cli.flag_values(TrainConfig, args)
    config = TrainConfig.for_recipe("he2016", **{**values, "epochs": args.epochs or RECIPE_EPOCHS})
    data = load_cifar(config.dataset, config.data_dir, config.train_size, config.test_size)
    if args.time_budget:
        step = seconds_per_step(config, data)
        steps = steps_per_epoch(data, config.batch_size)
        config.epochs = epochs_for_budget(args.time_budget, step, steps,
                                          len(data["test"][0]) / len(data["train"][0]))
        print(f"{step * 1000:.2f} ms/step -> {config.epochs} epochs fit {args.time_budget:.0f} s",
              flush=True)
    print(json.dumps(train_arrays(config, data)))


if __name__ == "__main__":
    sys.exit(main())
