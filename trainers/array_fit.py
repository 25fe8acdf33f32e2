"""Train a zoo model on in-memory CIFAR arrays with Keras ``fit``, on any Keras backend.

    KERAS_BACKEND=jax python -m trainers.array_fit --model preact20 --data-dir ~/data --out DIR

For accelerators without TensorFlow (the GPU machine lent to this project has JAX, not
TensorFlow). Same recipe as ``trainers.train`` (``TrainConfig``'s ``he2016`` and its schedule),
with the standardisation inside the model (it takes raw 0..255 images) and the augmentation as
a batched layer on the accelerator (``keras_resnets.augment.PadCropFlip``, padding with the
training mean colour as ``trainers.data`` does). No tf.distribute.

Long runs go over several short sessions: after every epoch the run folder's ``resume/``
(``trainers.array_state``: weights, optimizer, random-number state; the data order is a
function of seed and epoch) is replaced atomically, and the same command continues from it,
to the same weights bit for bit as a run never stopped. ``--stop-after SECONDS`` ends a call at
an epoch boundary; a kill loses at most the epoch under way. ``--time-budget`` instead picks
the number of epochs that fits a wall-clock budget from a timed run of the same model (never
from accuracy), and shortens the recipe keeping its shape. ``--mixed-precision bfloat16`` (or
``float16``) computes in that dtype. Writes ``config.json``, ``history.csv``, ``metrics.json``
and ``{model}.weights.h5`` into ``--out`` when the run finishes, and removes ``resume/``.

The command line is parsed before Keras loads (``--help`` and bad flags answer at once): this
module imports Keras, the zoo and pandas in the functions that train.
"""

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

from trainers import array_state, cli
from trainers.cifar_files import CIFAR_FILES, find_cifar_files, read_arrays
from trainers.config import PRECISION_POLICIES, TrainConfig
from trainers.train import dtype_policy

RECIPE_EPOCHS = 164  # 64k iterations of 390 steps, He et al. 2016
CALIBRATION_STEPS = 40


def load_cifar(dataset: str, data_dir: str, train_size=None, test_size=None) -> dict:
    """Float32 0..255 images and int labels of both splits (the first ``train_size`` /
    ``test_size``), with the training images' per-channel mean and std (the model's
    standardisation, and the augmentation's padding colour)."""
    found = find_cifar_files(dataset, Path(data_dir))
    if found is None:
        files = CIFAR_FILES[dataset]
        raise ValueError(f"No {dataset} python batches in {data_dir} (expected "
                         f"{files['folder']}/ or {files['archive']}).")
    arrays = read_arrays(dataset, found)
    train_images, train_labels = (a[:train_size] for a in arrays["train"])
    test_images, test_labels = (a[:test_size] for a in arrays["test"])
    mean, std = channel_stats(train_images)
    return {"train": (train_images.astype(np.float32), train_labels),
            "test": (test_images.astype(np.float32), test_labels),
            "mean": mean.tolist(), "std": std.tolist(),
            "num_classes": CIFAR_FILES[dataset]["classes"]}


def channel_stats(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and standard deviation of uint8 ``images``, as float32: the numbers
    ``trainers.data.channel_stats`` gives for the same images (float64 sums of uint8 values are
    exact, so the order of summation does not matter), so both trainers standardise and pad
    alike."""
    values = images.reshape(-1, images.shape[-1]).astype(np.float64)
    mean = values.sum(0) / len(values)
    std = np.sqrt(np.maximum((values ** 2).sum(0) / len(values) - mean ** 2, 0.0))
    return mean.astype(np.float32), np.maximum(std, 1e-3).astype(np.float32)


def steps_per_epoch(data: dict, batch_size: int) -> int:
    """Keras ``fit`` on arrays runs the last, smaller batch too: ceil(N / batch) steps."""
    return -(-len(data["train"][0]) // batch_size)


def build_for_training(config: TrainConfig, data: dict, steps_per_epoch: int):
    """(the zoo model taking raw images, the same model behind ``PadCropFlip``, compiled).

    The model is built under ``config.dtype_policy``. The augmentation pads with the training
    mean (``data["mean"]``) and, like the model's standardisation and logits, computes in
    float32 under mixed precision: it only moves pixels, and bfloat16 or float16 would round
    the mean colour. float16 trains with dynamic loss scaling (Keras's ``LossScaleOptimizer``,
    what ``trainers.train``'s compile gives a ``mixed_float16`` model: small gradients would
    underflow float16's range); bfloat16 has float32's range and needs none."""
    import keras

    import keras_resnets
    from keras_resnets.augment import PadCropFlip

    with dtype_policy(config.dtype_policy):
        net = keras_resnets.build(config.model, num_classes=data["num_classes"],
                                  weight_decay=config.weight_decay,
                                  standardize=(data["mean"], data["std"]),
                                  **config.model_overrides)
    if config.mixed_precision is not None:
        net.get_layer("logits").dtype_policy = "float32"
    images = keras.Input(net.input_shape[1:], name="images")
    augmented = PadCropFlip(seed=config.seed, fill=data["mean"], dtype="float32",
                            name="augment")(images) if config.augment else images
    trainer = keras.Model(images, net(augmented), name=f"{net.name}_training")
    optimizer = keras.optimizers.SGD(config.learning_rate_schedule(steps_per_epoch),
                                     momentum=config.momentum)
    if config.dtype_policy == "mixed_float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    trainer.compile(optimizer=optimizer,
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


def epoch_order(seed: int, epoch: int, count: int) -> np.ndarray:
    """The order of the ``count`` training examples in ``epoch``: a function of the seed and
    the epoch's number alone, so a resumed run sees the batches an uninterrupted one sees."""
    return np.random.default_rng([seed, epoch]).permutation(count)


def train_arrays(config: TrainConfig, data: dict, stop_after: float | None = None) -> dict | None:
    """Train ``config`` on ``data`` into its run folder, continuing from the folder's resume
    state (``trainers.array_state``) where there is one. Returns ``metrics.json``'s dict once
    the run is finished, or None when ``stop_after`` seconds ran out first: every call trains
    at least one whole epoch, then starts another only if it should end within ``stop_after``
    seconds of the call (judged by the last epoch's time), and the state of the last whole
    epoch is left to continue from. A stop never falls inside an epoch."""
    import keras

    called = time.perf_counter()
    out = Path(config.out)
    check_resumable(out, config)
    out.mkdir(parents=True, exist_ok=True)
    config.save(out / "config.json")
    keras.utils.set_random_seed(config.seed)
    steps = steps_per_epoch(data, config.batch_size)
    net, trainer = build_for_training(config, data, steps)
    progress = array_state.load(out, trainer) or {"epoch": 0, "seed": config.seed,
                                                  "train_seconds": 0.0, "history": []}
    total, trained = config.resolved_epochs(steps), 0
    while progress["epoch"] < total and not progress.get("diverged"):
        if trained and stop_after is not None and (
                time.perf_counter() - called + progress["epoch_seconds"] > stop_after):
            return None
        train_epoch(trainer, config, data, progress)
        array_state.save(out, trainer, progress)
        trained += 1
    return finish(config, data, net, trainer, progress)


def check_resumable(out: Path, config: TrainConfig) -> None:
    """A run folder with a resume state continues only the run it holds: a ``ValueError``
    naming the settings that differ."""
    if not (out / array_state.FOLDER / array_state.POINTER).is_file():
        return
    changed = TrainConfig.load(out / "config.json").differences(config)
    if changed:
        raise ValueError(f"{out} holds an unfinished run with other settings (saved, now): "
                         f"{changed}; rerun with its settings to continue it, or choose "
                         f"another --out.")


def train_epoch(trainer, config: TrainConfig, data: dict, progress: dict) -> None:
    """Train (and test) epoch ``progress["epoch"]`` in ``epoch_order``, and update
    ``progress``: epochs done, iterations, seconds, the epoch's history row, and ``diverged``
    when its training loss is not finite."""
    epoch = progress["epoch"]
    images, labels = data["train"]
    order = epoch_order(config.seed, epoch, len(labels))
    started = time.perf_counter()
    history = trainer.fit(images[order], labels[order], batch_size=config.batch_size,
                          initial_epoch=epoch, epochs=epoch + 1, validation_data=data["test"],
                          shuffle=False, verbose=2)
    seconds = time.perf_counter() - started
    row = {"epoch": epoch + 1, **{name: float(values[-1])
                                  for name, values in history.history.items()}}
    progress.update(epoch=epoch + 1, iterations=int(trainer.optimizer.iterations),
                    epoch_seconds=seconds, train_seconds=progress["train_seconds"] + seconds,
                    history=[*progress["history"], row],
                    diverged=not math.isfinite(row["loss"]))


def finish(config: TrainConfig, data: dict, net, trainer, progress: dict) -> dict:
    """Write the finished run's weights, ``history.csv`` and ``metrics.json`` and remove its
    resume state; returns the metrics."""
    import keras
    import pandas as pd

    import keras_resnets

    out = Path(config.out)
    loss, accuracy = trainer.evaluate(*data["test"], batch_size=500, verbose=0)
    net.save_weights(out / f"{config.model}.weights.h5")
    table = pd.DataFrame(progress["history"])
    table.to_csv(out / "history.csv", index=False, float_format="%.6g")
    metrics = {"model": config.model, "dataset": config.dataset, "backend": keras.backend.backend(),
               "dtype_policy": config.dtype_policy, "epochs": progress["epoch"],
               "iterations": int(trainer.optimizer.iterations), "test_accuracy": float(accuracy),
               "test_error": 100 * (1 - float(accuracy)), "test_loss": float(loss),
               "diverged": bool(progress.get("diverged")),
               "wall_time_s": progress["train_seconds"],
               "train_examples": len(data["train"][0]), "test_examples": len(data["test"][0]),
               "standardize": {"mean": data["mean"], "std": data["std"]},
               "parameters": keras_resnets.count_parameters(net)}
    partial = out / "metrics.json.partial"  # metrics.json marks the run finished: never half
    partial.write_text(json.dumps(metrics, indent=2) + "\n")
    os.replace(partial, out / "metrics.json")
    array_state.clear(out)
    return metrics


# The TrainConfig fields this trainer takes as flags; the rest are the he2016 recipe's.
FLAGS = ("model", "dataset", "data_dir", "out", "epochs", "batch_size", "train_size", "test_size",
         "steps_per_execution", "mixed_precision", "seed")
HELP = {"model": "zoo model name (keras_resnets.list_models())",
        "data_dir": "folder with the CIFAR python batches",
        "out": "run folder: config.json, history.csv, metrics.json, MODEL.weights.h5, and "
               "resume/ while unfinished",
        "epochs": f"shorten the recipe (default: {RECIPE_EPOCHS})",
        "train_size": "keep the first N training images",
        "test_size": "keep the first N test images",
        "mixed_precision": "compute dtype: bfloat16 (mixed_bfloat16) or float16 "
                           "(mixed_float16, dynamic loss scaling); float32 variables, "
                           "augmentation, standardisation and logits (default: float32 "
                           "throughout)"}


def make_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m trainers.array_fit``: the config flags it supports."""
    parser = cli.Parser(prog="python -m trainers.array_fit", description=__doc__.split("\n\n")[0])
    cli.add_config_flags(parser, TrainConfig, HELP, only=FLAGS,
                         custom={"dataset": {"choices": list(CIFAR_FILES)},
                                 "mixed_precision": {"choices": list(PRECISION_POLICIES)},
                                 "data_dir": {"required": True}, "out": {"required": True}})
    parser.add_argument("--time-budget", type=float,
                        help="seconds: choose the epochs that fit (instead of --epochs)")
    parser.add_argument("--stop-after", type=float, metavar="SECONDS",
                        help="stop at the first epoch boundary from which the next epoch would "
                             "end after SECONDS, leaving OUT/resume/; the same command continues")
    return parser


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The run's config from ``make_parser``'s parsed flags: the he2016 recipe, the flags on
    top, ``RECIPE_EPOCHS`` unless ``--epochs`` shortens it."""
    values = cli.flag_values(TrainConfig, args)
    return TrainConfig.for_recipe("he2016", **{**values, "epochs": args.epochs or RECIPE_EPOCHS})


def main(argv=None) -> int:
    """CLI (``trainers.cli.run_cli``): 0 trained or stopped to continue, 1 a write failed,
    2 bad input."""
    return cli.run_cli(_fit_command, argv)


def _fit_command(argv) -> None:
    """Check the flags, load the arrays, fit (for ``--time-budget`` seconds, or until
    ``--stop-after``) and print the metrics, or where the run stopped."""
    args = make_parser().parse_args(argv)
    if args.time_budget and args.stop_after is not None:
        raise ValueError("--time-budget fits a whole run into one call and --stop-after splits "
                         "one over several: give --stop-after with --epochs instead.")
    config = config_from_args(args)
    data = load_cifar(config.dataset, config.data_dir, config.train_size, config.test_size)
    if args.time_budget:
        step = seconds_per_step(config, data)
        steps = steps_per_epoch(data, config.batch_size)
        config.epochs = epochs_for_budget(args.time_budget, step, steps,
                                          len(data["test"][0]) / len(data["train"][0]))
        print(f"{step * 1000:.2f} ms/step -> {config.epochs} epochs fit {args.time_budget:.0f} s",
              flush=True)
    metrics = train_arrays(config, data, stop_after=args.stop_after)
    if metrics is None:
        saved = array_state.progress(config.out)
        metrics = {"stopped": True, "epoch": saved["epoch"], "epochs": config.epochs,
                   "iterations": saved["iterations"],
                   "resume": str(Path(config.out) / array_state.FOLDER)}
    print(json.dumps(metrics))


if __name__ == "__main__":
    sys.exit(main())
