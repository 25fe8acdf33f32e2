"""Train a zoo model with He et al. 2016's recipe: ``python -m trainers.train --help``.

    python -m trainers.train --model preact110 --dataset cifar10 --out runs/preact110-cifar10

One library function, ``train(config)``, runs a whole resumable run into ``config.out``:
``config.json`` (before training), ``history.csv``, ``tensorboard/``, ``checkpoints/``,
``backup/`` (while running), ``final.keras`` and ``metrics.json`` (the run is finished once it
exists). The CLI only turns flags into a ``TrainConfig``.
"""

import argparse
import contextlib
import dataclasses
import json
import sys
import tempfile
import time
import types
from pathlib import Path

import keras
from keras import ops

import keras_resnets
from keras_resnets.registry import resolve
from trainers import callbacks as run_callbacks
from trainers import data as data_lib
from trainers.config import RECIPES, TrainConfig
from trainers.strategy import check_batch_size, is_chief, make_strategy

RESERVED_OVERRIDES = {"num_classes": "the dataset", "input_shape": "the dataset",
                      "weight_decay": "--weight-decay"}


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


@keras.saving.register_keras_serializable(package="trainers")
class StepSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """He et al. 2016's schedule: ``learning_rate`` divided by ``1 / drop_factor`` at each
    fraction ``drops`` of ``total_iterations`` (32k and 48k of 64k), ``warmup_learning_rate``
    for the first ``warmup_iterations`` (400 at 0.01 for the deepest nets)."""

    def __init__(self, learning_rate, total_iterations, drops=(0.5, 0.75), drop_factor=0.1,
                 warmup_iterations=0, warmup_learning_rate=0.01):
        self.learning_rate = float(learning_rate)
        self.total_iterations = int(total_iterations)
        self.drops = tuple(float(d) for d in drops)
        self.drop_factor = float(drop_factor)
        self.warmup_iterations = int(warmup_iterations)
        self.warmup_learning_rate = float(warmup_learning_rate)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        drops = sum(ops.cast(step >= fraction * self.total_iterations, "float32")
                    for fraction in self.drops)
        rate = self.learning_rate * ops.power(self.drop_factor, drops)
        return ops.where(step < self.warmup_iterations, self.warmup_learning_rate, rate)

    def get_config(self):
        return {"learning_rate": self.learning_rate, "total_iterations": self.total_iterations,
                "drops": list(self.drops), "drop_factor": self.drop_factor,
                "warmup_iterations": self.warmup_iterations,
                "warmup_learning_rate": self.warmup_learning_rate}


def make_schedule(config: TrainConfig, steps_per_epoch: int) -> StepSchedule:
    """The recipe's schedule, rates scaled linearly by ``batch_size / 128``."""
    return StepSchedule(config.scaled_learning_rate, config.schedule_iterations(steps_per_epoch),
                        config.lr_drops, config.lr_drop_factor,
                        config.resolved_warmup_iterations(), config.scaled_warmup_learning_rate)


def compile_model(model, config: TrainConfig, steps_per_epoch: int) -> None:
    """SGD with momentum on the step schedule, cross-entropy on logits, accuracy. Weight decay
    is not in the optimizer: it is the L2 penalty the zoo puts on every kernel (the papers'
    SGD weight decay), so the reported loss includes it."""
    model.compile(
        optimizer=keras.optimizers.SGD(make_schedule(config, steps_per_epoch),
                                       momentum=config.momentum),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        jit_compile=config.jit_compile)


def build_model(config: TrainConfig, data: data_lib.Data, replicas: int = 1):
    """The zoo model for the dataset's classes and image shape, with the recipe's weight decay.
    Under mixed precision the logits layer computes in float32 (a stable softmax)."""
    model = keras_resnets.build(config.model, num_classes=data.num_classes,
                                input_shape=data.input_shape, weight_decay=config.weight_decay,
                                **config.model_overrides)
    if config.mixed_precision:
        model.get_layer("logits").dtype_policy = "float32"
    if config.sync_batchnorm and replicas > 1:
        for layer in model._flatten_layers(include_self=False, recursive=True):
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.synchronized = True
    return model


def make_callbacks(config: TrainConfig, run_dir, steps_per_epoch, extra=()) -> list:
    """Divergence guard, ``history.csv``, TensorBoard, periodic checkpoints, ``extra``, and last
    the backup that marks an epoch as done (see ``trainers.callbacks``). ``run_dir`` is where
    this process writes; the backup is always read from ``config.out``."""
    run_dir = Path(run_dir)
    writer = config.strategy != "multiworker" or is_chief()
    return [
        run_callbacks.DivergenceGuard(),
        run_callbacks.EpochHistory(run_dir / "history.csv", steps_per_epoch * config.batch_size),
        run_callbacks.EpochScalars(run_dir / "tensorboard"),
        run_callbacks.PeriodicCheckpoint(run_dir / "checkpoints", config.checkpoint_every),
        *extra,
        run_callbacks.RunBackup(Path(config.out) / "backup", writer=writer),
    ]


def check_config(config: TrainConfig) -> data_lib.Source:
    """Every check that needs no TensorFlow work: model name and overrides, dataset, data."""
    reserved = sorted(set(config.model_overrides) & set(RESERVED_OVERRIDES))
    if reserved:
        raise ValueError(f"--model-overrides may not set {', '.join(reserved)}: it comes from "
                         + ", ".join(f"{k}: {RESERVED_OVERRIDES[k]}" for k in reserved) + ".")
    resolve(config.model, **config.model_overrides)
    return data_lib.locate(config.dataset, config.data_dir)


def train(config: TrainConfig, callbacks=()) -> dict:
    """Run ``config`` to the end (or resume it) and return its ``metrics.json`` content.

    Raises ``ValueError`` for bad settings before any training or download, and
    ``TrainingDiverged`` when the loss stops being finite.
    """
    run_dir = Path(config.out)
    if (run_dir / "metrics.json").exists():
        return json.loads((run_dir / "metrics.json").read_text())
    source = check_config(config)
    _check_same_run(config, run_dir)
    strategy = make_strategy(config.strategy)
    check_batch_size(config.batch_size, strategy)
    writer = config.strategy != "multiworker" or is_chief()
    write_dir = run_dir if writer else Path(tempfile.mkdtemp(prefix="worker-"))
    write_dir.mkdir(parents=True, exist_ok=True)
    config.save(write_dir / "config.json")
    keras.utils.set_random_seed(config.seed)
    data = data_lib.load_data(config, source)
    steps = data.steps_per_epoch(config.batch_size)
    with _precision(config.mixed_precision):
        with strategy.scope():
            model = build_model(config, data, strategy.num_replicas_in_sync)
            compile_model(model, config, steps)
        extra = list(callbacks) + _recording(config, data, write_dir)
        run = make_callbacks(config, write_dir, steps, extra)
        model.fit(data.train, validation_data=data.test, epochs=config.resolved_epochs(steps),
                  callbacks=run, shuffle=False)
        if run[0].diverged:
            raise TrainingDiverged(_diverged_message(run[0].diverged, run_dir))
        metrics = finish(model, config, data, write_dir, strategy.num_replicas_in_sync)
    if writer:
        print(next_steps(run_dir, config.model))
    return metrics


def _check_same_run(config: TrainConfig, run_dir: Path) -> None:
    saved = run_dir / "config.json"
    if saved.exists() and TrainConfig.load(saved) != config:
        raise ValueError(f"{run_dir} holds a run with a different config ({saved}); rerun with "
                         f"the same settings to resume it, or choose another --out.")


@contextlib.contextmanager
def _precision(mixed: bool):
    """The global dtype policy for building the model: mixed_float16 or float32, restored."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16" if mixed else "float32")
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def _recording(config: TrainConfig, data: data_lib.Data, run_dir: Path) -> list:
    """Jastrzebski et al.'s measurements during training, every ``record_every`` epochs."""
    if config.record_every <= 0:
        return []
    from analysis.callback import IterativeInferenceCallback

    return [IterativeInferenceCallback(batches=data.test.take(4), every=config.record_every,
                                       out_dir=run_dir)]


def _diverged_message(where, run_dir: Path) -> str:
    epoch, batch, loss = where
    checkpoints = sorted((run_dir / "checkpoints").glob("epoch-*.weights.h5"))
    kept = f"the last good checkpoint is {checkpoints[-1]}" if checkpoints else (
        "no epoch finished, so there is no checkpoint")
    return (f"Training diverged: the loss became {loss} at epoch {epoch}, batch {batch}; "
            f"stopped, {kept}. Try a lower --learning-rate or --warmup-iterations 400.")


def finish(model, config: TrainConfig, data: data_lib.Data, run_dir: Path, replicas: int) -> dict:
    """Evaluate on the test split, save ``final.keras`` and ``metrics.json``, drop the backup."""
    scores = model.evaluate(data.test, return_dict=True, verbose=0)
    history = run_callbacks.read_history(run_dir / "history.csv")
    later = history["images_per_s"].iloc[1:] if len(history) > 1 else history["images_per_s"]
    metrics = {
        "model": config.model, "dataset": config.dataset,
        "test_error": 100.0 * (1.0 - float(scores["accuracy"])),
        "test_accuracy": float(scores["accuracy"]), "test_loss": float(scores["loss"]),
        "parameters": keras_resnets.count_parameters(model),
        "paper_error": keras_resnets.describe(config.model).get("paper_error", {}).get(
            config.dataset) if not config.model_overrides else None,
        "epochs": int(len(history)), "iterations": int(model.optimizer.iterations.numpy()),
        "wall_time_s": float(history["epoch_time_s"].sum()),
        "images_per_s": float(later.median()) if len(later) else None,
        "train_examples": data.train_examples, "test_examples": data.test_examples,
        "replicas": replicas,
    }
    model.save(run_dir / "final.keras")
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    _remove_tree(Path(config.out) / "backup")
    return metrics


def _remove_tree(folder: Path) -> None:
    if folder.is_dir():
        for path in sorted(folder.rglob("*"), reverse=True):
            path.rmdir() if path.is_dir() else path.unlink()
        folder.rmdir()


def next_steps(run_dir: Path, model: str) -> str:
    return (f"\nResults in {run_dir}/ (metrics.json, history.csv, final.keras, tensorboard/).\n"
            f"Next:\n  python -m saved_models.export {run_dir} --out saved_models/{model}/1\n"
            f"  python -m analysis.run {run_dir}\n"
            f"  tensorboard --logdir {run_dir}/tensorboard")


# ---------------------------------------------------------------------------------------------
# Command line


def make_parser() -> argparse.ArgumentParser:
    """One flag per ``TrainConfig`` field (``--batch-size`` for ``batch_size``); a flag left out
    keeps the recipe's value."""
    parser = argparse.ArgumentParser(
        prog="python -m trainers.train", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    defaults = TrainConfig()
    for field in dataclasses.fields(TrainConfig):
        flag = "--" + field.name.replace("_", "-")
        default = getattr(defaults, field.name)
        options = {"dest": field.name, "default": argparse.SUPPRESS,
                   "help": f"(default: {json.dumps(default)})"}
        if field.name == "recipe":
            options["choices"] = list(RECIPES)
        if field.name == "out":
            options["help"] = "run folder (default: runs/{model}-{dataset})"
        parser.add_argument(flag, **options, **_flag_kind(field, default))
    return parser


def _flag_kind(field, default) -> dict:
    kind = field.type
    if isinstance(kind, types.UnionType):  # int | None, str | None
        kind = next(k for k in kind.__args__ if k is not type(None))
    if kind is bool:
        return {"action": argparse.BooleanOptionalAction}
    if kind is dict:
        return {"type": json.loads, "metavar": "JSON"}
    if kind is tuple:
        return {"type": float, "nargs": "+", "metavar": "FRACTION"}
    return {"type": kind}


def config_from_args(argv=None) -> TrainConfig:
    given = vars(make_parser().parse_args(argv))
    given.setdefault("out", "runs/{}-{}".format(given.get("model", TrainConfig.model),
                                                given.get("dataset", TrainConfig.dataset)))
    return TrainConfig.for_recipe(given.pop("recipe", "he2016"), **given)


def main(argv=None) -> int:
    """CLI: 0 when the run finished, 1 when it diverged, 2 for bad settings (no traceback)."""
    try:
        config = config_from_args(argv)
        metrics = train(config)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except TrainingDiverged as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"test error {metrics['test_error']:.2f}% ({metrics['model']} on "
          f"{metrics['dataset']}, {metrics['epochs']} epochs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
