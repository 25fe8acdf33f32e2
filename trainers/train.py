"""Train a zoo model on CIFAR (or any TFDS image dataset) with He et al. 2016's recipe.

    python -m trainers.train --model preact110 --dataset cifar10 --out runs/preact110-cifar10

One library function, ``train(config)``, runs a whole resumable run into ``config.out``:
``config.json`` (before training), ``history.csv``, ``tensorboard/``, ``checkpoints/``,
``backup/`` (while running), ``final.keras`` and ``metrics.json`` (the run is finished once it
exists), and ``.lock``, which lets one process at a time write the folder. The CLI only turns
flags into a ``TrainConfig``.

Training imports nothing above it (``tests/test_layering.py``): a run whose config has
``record_every > 0`` needs a ``recorder``, the callbacks that measure during training, which
``analysis`` provides (``python -m analysis.record``: these flags and ``--record-every``);
without one, ``train`` refuses it rather than skip the measurements.

The command line is parsed before Keras and TensorFlow load (``--help`` and bad flags answer at
once): this module imports them in the functions that train.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import sys
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from trainers import cli, compat, locks
from trainers.config import PRECISION_POLICIES, RECIPES, TrainConfig
from trainers.files import check_writable_folder

if TYPE_CHECKING:
    from trainers.data import Data, Source

FLAG_HELP = {
    "model": "zoo model name, e.g. preact110, resnet164, resnet110-gate-exclusive "
             "(keras_resnets.list_models())",
    "model_overrides": "builder settings as JSON, e.g. '{\"gate_bias\": -7}'",
    "dataset": "synthetic, cifar10, cifar100 or any TFDS image-classification dataset",
    "data_dir": "TFDS data dir, folder with cifar-10-python.tar.gz / cifar-100-python.tar.gz, "
                "or with the extracted cifar-10-batches-py/ / cifar-100-python/ (or that folder)",
    "train_size": "keep the first N training examples",
    "test_size": "keep the first N test examples",
    "iterations": "training length when --epochs is not given",
    "epochs": "train this many epochs instead (drops stay at the same fractions)",
    "batch_size": "global batch, split over the replicas",
    "learning_rate": "at batch 128; scaled linearly with --batch-size",
    "weight_decay": "SGD weight decay (L2 on conv/dense kernels)",
    "lr_drops": "fractions of training where the rate is multiplied by --lr-drop-factor",
    "lr_multipliers": "the rate after each of --lr-drops as a multiple of --learning-rate, one "
                      "per drop (uneven drops, e.g. the jastrzebski2018-* recipes); replaces "
                      "--lr-drop-factor",
    "warmup_iterations": "iterations at --warmup-learning-rate (default: 400 of 64k, the same "
                         "fraction of a recipe shortened by --epochs or --iterations)",
    "strategy": "auto | default | mirrored | multiworker (TF_CONFIG)",
    "mixed_precision": "compute dtype: float16 (mixed_float16, dynamic loss scaling) or "
                       "bfloat16 (mixed_bfloat16); float32 variables and logits "
                       "(default: float32 throughout)",
    "jit_compile": "XLA-compile the train step",
    "fused_batchnorm": "TensorFlow's fused batch-norm kernel while training (same results to "
                       "float32 rounding; +32%% on a CPU)",
    "steps_per_execution": "training steps per compiled call: fewer host round trips per step, "
                           "which is what small nets on a fast GPU wait on",
    "checkpoint_every": "epochs between checkpoints/epoch-NNNN.weights.h5",
    "validation_every": "epochs between test-set evaluations in history.csv (the last always; "
                        "fewer saves time and trains the same weights)",
    "record_every": "epochs between iterative-inference measurements (0: never)",
    "sync_batchnorm": "BatchNorm statistics over the global batch rather than per replica",
    "init_from": "start this new run from a checkpoint's weights (RUN/checkpoints/"
                 "epoch-NNNN.weights.h5 or a final.keras), e.g. to continue a diverged run's "
                 "last good epoch with a lower --learning-rate into another --out; the "
                 "schedule and optimizer start afresh",
}
PROG = "python -m trainers.train"
RESERVED_OVERRIDES = {"num_classes": "the dataset", "input_shape": "the dataset",
                      "weight_decay": "--weight-decay", "sync_batchnorm": "--sync-batchnorm",
                      "standardize": "the training split's per-channel statistics"}


class TrainingDiverged(cli.RunFailed):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


def compile_model(model, config: TrainConfig, steps_per_epoch: int) -> None:
    """SGD with momentum on the step schedule, cross-entropy on logits, accuracy. Weight decay
    is not in the optimizer: it is the L2 penalty the zoo puts on every kernel (the papers'
    SGD weight decay), so the reported loss includes it."""
    import keras

    model.compile(
        optimizer=keras.optimizers.SGD(config.learning_rate_schedule(steps_per_epoch),
                                       momentum=config.momentum),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        jit_compile=config.jit_compile, steps_per_execution=config.steps_per_execution)


def build_model(config: TrainConfig, data: Data, replicas: int = 1):
    """The zoo model for the dataset's classes and image shape, with the recipe's weight decay,
    starting with the training split's standardisation: it takes the pipeline's raw images, and
    so do ``final.keras`` and its SavedModel. Under mixed precision (float16 or bfloat16) the
    logits layer computes in float32 (a stable softmax). With ``sync_batchnorm`` and several
    replicas every BN layer computes its statistics over the global batch."""
    import keras_resnets

    model = keras_resnets.build(config.model, num_classes=data.num_classes,
                                input_shape=data.input_shape, weight_decay=config.weight_decay,
                                standardize=(data.mean, data.std),
                                sync_batchnorm=config.sync_batchnorm and replicas > 1,
                                **config.model_overrides)
    if config.mixed_precision is not None:
        model.get_layer("logits").dtype_policy = "float32"
    return model


def make_callbacks(config: TrainConfig, run_dir, steps_per_epoch, extra=()) -> list:
    """Divergence guard, ``history.csv``, checkpoints, ``extra``, the backup that marks an
    epoch as done, then TensorBoard scalars (the order is explained in ``trainers.callbacks``).
    ``run_dir`` is where this process writes; the backup is always in ``config.out``."""
    from trainers import callbacks as run_callbacks
    from trainers.strategy import is_chief

    run_dir = Path(run_dir)
    writer = config.strategy != "multiworker" or is_chief()
    return [
        run_callbacks.DivergenceGuard(),
        run_callbacks.EpochHistory(run_dir / "history.csv", steps_per_epoch * config.batch_size),
        run_callbacks.PeriodicCheckpoint(run_dir / "checkpoints", config.checkpoint_every),
        *extra,
        run_callbacks.EpochBackup(backup_dir(config), writer=writer),
        run_callbacks.EpochScalars(run_dir / "tensorboard"),
    ]


def backup_dir(config: TrainConfig) -> Path:
    """The run's ``backup/`` folder: the last finished epoch's weights, to resume from."""
    return Path(config.out) / "backup"


def fit(model, config: TrainConfig, data: Data, callbacks: list, epochs: int,
        initial_epoch: int = 0, **fit_options):
    """``model.fit`` to ``epochs`` from the last finished epoch of the run's backup (else from
    ``initial_epoch``), on the batches an uninterrupted run sees from there (``Data.epochs``).
    ``fit_options`` go to ``model.fit`` (``verbose``). Returns the ``History`` (``None`` when
    every epoch was already done)."""
    from trainers import callbacks as run_callbacks
    from trainers.fused import fused_batchnorm

    with model.distribute_strategy.scope():  # optimizer variables a restore creates
        first = run_callbacks.restore_backup(model, backup_dir(config)) or initial_epoch
    if first >= epochs:  # killed after the last epoch's backup, before finishing
        return None
    with fused_batchnorm() if config.fused_batchnorm else contextlib.nullcontext():
        return model.fit(data.epochs(first, epochs), validation_data=data.test, epochs=epochs,
                         validation_freq=validation_epochs(epochs, config.validation_every),
                         initial_epoch=first, callbacks=callbacks, shuffle=False,
                         steps_per_epoch=data.steps_per_epoch(config.batch_size), **fit_options)


def validation_epochs(epochs: int, every: int) -> list[int]:
    """The 1-based epochs that end with a test-set evaluation: every ``every``-th and the last
    (whose error the run reports either way)."""
    return [epoch for epoch in range(1, epochs + 1) if epoch % every == 0 or epoch == epochs]


def check_config(config: TrainConfig) -> Source:
    """Every check that needs no TensorFlow work: model name and overrides, dataset, data."""
    from keras_resnets.registry import resolve
    from trainers import data as data_lib

    reserved = sorted(set(config.model_overrides) & set(RESERVED_OVERRIDES))
    if reserved:
        raise ValueError(f"--model-overrides may not set {', '.join(reserved)}: it comes from "
                         + ", ".join(f"{k}: {RESERVED_OVERRIDES[k]}" for k in reserved) + ".")
    resolve(config.model, **config.model_overrides)
    if config.init_from and not Path(config.init_from).is_file():
        raise ValueError(f"--init-from {config.init_from}: no such file; give a run's "
                         f"checkpoints/epoch-NNNN.weights.h5 or final.keras.")
    check_writable_folder(Path(config.out))
    return data_lib.locate(config.dataset, config.data_dir)


def load_initial_weights(model, path: str | None) -> None:
    """``--init-from``: the layer weights of a checkpoint or ``.keras`` file of the same model
    (the optimizer is not compiled yet, so its saved state is not taken). Weights of another
    model are refused in one line: the file and its first mismatch."""
    import keras

    if not path:
        return
    try:
        with warnings.catch_warnings(record=True) as skipped:
            warnings.simplefilter("always")
            if path.endswith(".keras"):
                model.set_weights(keras.saving.load_model(path, compile=False).get_weights())
            else:
                model.load_weights(path)
        if skipped:  # Keras skipped part of the file: those layers would keep random weights
            raise ValueError(str(skipped[0].message))
    except (ValueError, OSError) as error:
        raise ValueError(f"--init-from {path} does not fit {model.name} "
                         f"({_first_mismatch(error)}); give weights of the same --model and "
                         f"--model-overrides.") from None


def _first_mismatch(error: Exception, limit: int = 200) -> str:
    """The line of a Keras loading error that says what did not fit (its reports list every
    layer, over a hundred lines), cut to ``limit`` characters."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    line = next((line for line in lines if "expected" in line.lower()),
                lines[0] if lines else type(error).__name__)
    return line if len(line) <= limit else line[:limit - 3] + "..."


def train(config: TrainConfig, callbacks=(), recorder=None) -> dict:
    """Run ``config`` to the end (or resume it) and return its ``metrics.json`` content.

    ``callbacks`` join the trainer's own; ``recorder(config, data, run_dir)`` returns the
    callbacks that measure every ``config.record_every`` epochs
    (``analysis.callback.recording_callbacks``), and a config that records needs one. Raises
    ``ValueError`` for bad settings before any training or download, for a run folder that
    another process is writing (``locks.Busy``) or whose files disagree, and
    ``TrainingDiverged`` when the loss stops being finite; a failed write raises
    ``callbacks.WriteFailed``, leaving the run resumable.

    One process writes a run folder: the writer holds ``OUT/.lock`` from before
    ``config.json`` is written to the end (under multi-worker training, the chief).
    """
    import keras

    from trainers import callbacks as run_callbacks
    from trainers import data as data_lib
    from trainers.strategy import check_batch_size, check_jit_compile, is_chief, make_strategy

    check_recorder(config, recorder)
    run_dir = Path(config.out)
    writer = config.strategy != "multiworker" or is_chief()
    finished = _finished_run(config, run_dir, writer)
    if finished is not None:
        return finished
    source = check_config(config)
    strategy = make_strategy(config.strategy)
    check_batch_size(config.batch_size, strategy)
    check_jit_compile(config.jit_compile, strategy)
    keras.utils.set_random_seed(config.seed)
    data = data_lib.load_data(config, source)
    steps = data.steps_per_epoch(config.batch_size)
    with dtype_policy(config.dtype_policy):
        with strategy.scope():
            model = build_model(config, data, strategy.num_replicas_in_sync)
            load_initial_weights(model, config.init_from)
            compile_model(model, config, steps)
        if not writer:
            return _fit_and_finish(model, config, data, strategy, callbacks, recorder,
                                   Path(tempfile.mkdtemp(prefix="worker-")))
        run_dir.mkdir(parents=True, exist_ok=True)
        with locks.exclusive(run_dir / LOCK, f"run folder {run_dir}"):
            finished = _finished_run(config, run_dir, writer)  # another writer may have ended
            if finished is not None:
                return finished
            run_callbacks.check_resumable(run_dir, backup_dir(config))
            metrics = _fit_and_finish(model, config, data, strategy, callbacks, recorder, run_dir)
    print(next_steps(run_dir, config.model))
    return metrics


LOCK = ".lock"  # in the run folder: held by the one process that writes it
RUN_FILES = ("history.csv", "backup", "checkpoints", "tensorboard", "final.keras",
             "metrics.json")  # what a run writes after its config.json


def _fit_and_finish(model, config: TrainConfig, data: Data, strategy, callbacks,
                    recorder, write_dir: Path) -> dict:
    """Save the config, train to the end from the last finished epoch, then ``finish``: the
    part of ``train`` that writes, into ``write_dir`` (the run folder, or a multi-worker
    non-chief's scratch folder)."""
    from trainers import callbacks as run_callbacks

    write_dir.mkdir(parents=True, exist_ok=True)
    run_callbacks.write_file_atomically(write_dir / "config.json",
                                        (config.to_json() + "\n").encode())
    if config.strategy == "multiworker":
        compat.build_for_multiworker_fit(model, strategy, data.train)
    steps = data.steps_per_epoch(config.batch_size)
    extra = [*callbacks, *(recorder(config, data, write_dir) if recorder else ())]
    run = make_callbacks(config, write_dir, steps, extra)
    fit(model, config, data, run, config.resolved_epochs(steps))
    if run[0].diverged:
        raise TrainingDiverged(_diverged_message(run[0].diverged, Path(config.out)))
    return finish(model, config, data, write_dir, strategy.num_replicas_in_sync)


def _finished_run(config: TrainConfig, run_dir: Path, writer: bool) -> dict | None:
    """The metrics of the run folder's finished run (printing so), None while it is not
    finished. The ``writer`` refuses (``ValueError``) a folder holding another config's run,
    or run files without the ``config.json`` that says whose they are."""
    if writer:
        check_same_run(config, run_dir)
    if not (run_dir / "metrics.json").exists():
        return None
    print(f"{run_dir} is a finished run (metrics.json exists); nothing to train."
          + next_steps(run_dir, config.model))
    return json.loads((run_dir / "metrics.json").read_text())


def check_same_run(config: TrainConfig, run_dir: Path) -> None:
    """Refuse to resume or report a run folder that holds another run (finished or not), or
    whose run files have lost their ``config.json``."""
    saved = run_dir / "config.json"
    if not saved.is_file():
        found = [name for name in RUN_FILES if (run_dir / name).exists()]
        if found:
            raise ValueError(f"{run_dir} holds run files ({', '.join(found)}) but no "
                             f"config.json, so nothing says which run they belong to; restore "
                             f"{saved}, or delete {run_dir} to train the run again from "
                             f"scratch.")
        return
    changed = TrainConfig.load(saved).differences(config)
    if changed:
        raise ValueError(f"{run_dir} holds a run with a different config (saved, now: "
                         f"{changed}); rerun with the same settings to resume it, or choose "
                         f"another --out.")


@contextlib.contextmanager
def dtype_policy(policy: str):
    """The global dtype policy for building the model (``TrainConfig.dtype_policy``), restored
    afterwards. A model built under ``mixed_float16`` gets Keras's dynamic loss scaling when
    compiled (``LossScaleOptimizer``); ``mixed_bfloat16`` has float32's range and none."""
    import keras

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def check_recorder(config: TrainConfig, recorder) -> None:
    """Refuse ``record_every > 0`` without a recorder: the run would miss its measurements."""
    if config.record_every > 0 and recorder is None:
        raise ValueError(f"record_every={config.record_every}: measuring during training is "
                         f"the analysis package's; give train(config, recorder=analysis."
                         f"callback.recording_callbacks), or run python -m analysis.record "
                         f"--record-every {config.record_every} with the same flags.")


def _diverged_message(where, run_dir: Path) -> str:
    epoch, batch, loss = where
    checkpoints = sorted((run_dir / "checkpoints").glob("epoch-*.weights.h5"))
    kept = f"the last good checkpoint is {checkpoints[-1]}" if checkpoints else (
        "no epoch finished, so there is no checkpoint")
    return (f"Training diverged: the loss became {loss} at epoch {epoch}, batch {batch}; "
            f"stopped, {kept}. Try a lower --learning-rate or --warmup-iterations 400.")


def finish(model, config: TrainConfig, data: Data, run_dir: Path, replicas: int) -> dict:
    """Evaluate on the test split, save ``final.keras`` and ``metrics.json``, drop the backup."""
    import keras_resnets

    from trainers import callbacks as run_callbacks

    scores = model.evaluate(data.test, return_dict=True, verbose=0)
    history = run_callbacks.read_history(run_dir / "history.csv")
    later = history["images_per_s"].iloc[1:] if len(history) > 1 else history["images_per_s"]
    metrics = {
        "model": config.model, "dataset": config.dataset,
        "test_error": 100.0 * (1.0 - float(scores["accuracy"])),
        "test_accuracy": float(scores["accuracy"]), "test_loss": float(scores["loss"]),
        "parameters": keras_resnets.count_parameters(model),
        "paper_error": keras_resnets.describe(config.model, **config.model_overrides).get(
            "paper_error", {}).get(config.dataset),  # {} when overrides change the model
        "epochs": int(len(history)), "iterations": int(model.optimizer.iterations.numpy()),
        "wall_time_s": float(history["epoch_time_s"].sum()),
        "images_per_s": float(later.median()) if len(later) else None,
        "train_examples": data.train_examples, "test_examples": data.test_examples,
        "replicas": replicas,
        # For the record: the model applies it itself.
        "standardize": {"mean": list(data.mean), "std": list(data.std)},
    }
    save_final_model(model, run_dir / "final.keras")
    run_callbacks.write_file_atomically(  # metrics.json marks a finished run
        run_dir / "metrics.json", (json.dumps(metrics, indent=2) + "\n").encode())
    if run_dir == Path(config.out):  # the chief's folder: the run is finished
        shutil.rmtree(run_dir / "backup", ignore_errors=True)
    return metrics


def save_final_model(model, path: Path) -> None:
    """``model.save(path)``; a failed write (a full disk) removes the partial file and raises
    ``WriteFailed`` naming it (the run stays resumable: it finishes again)."""
    from trainers import callbacks as run_callbacks

    try:
        model.save(path)
    except OSError as error:
        path.unlink(missing_ok=True)
        raise run_callbacks.WriteFailed(
            run_callbacks.failed_write_message(path, error.strerror or error)) from None


def next_steps(run_dir: Path, model: str) -> str:
    """What a finished run prints: where its results are and the commands that export and analyse
    it."""
    return (f"\nResults in {run_dir}/ (metrics.json, history.csv, final.keras, tensorboard/).\n"
            f"Next:\n  python -m saved_models.export {run_dir} --out saved_models/{model}/1\n"
            f"  python -m analysis.run {run_dir}\n"
            f"  tensorboard --logdir {run_dir}/tensorboard")


# ---------------------------------------------------------------------------------------------
# Command line


def make_parser(prog: str = PROG, recording: bool = False) -> argparse.ArgumentParser:
    """One flag per ``TrainConfig`` field (``--batch-size`` for ``batch_size``); a flag left out
    keeps the recipe's value. ``--record-every`` only with ``recording`` (``add_train_flags``)."""
    parser = cli.Parser(prog=prog, description=__doc__.split("\n\n")[0])
    add_train_flags(parser, recording=recording)
    return parser


def add_train_flags(parser: argparse.ArgumentParser, skip=(), recording: bool = False) -> None:
    """The trainer's flags, ``skip`` aside, on ``parser`` (also ``experiments.tune``'s).
    ``--record-every`` is a flag only for a command that records (``recording``:
    ``analysis.record``): training alone never measures."""
    skip = (*skip, *(() if recording else ("record_every",)))
    cli.add_config_flags(parser, TrainConfig, FLAG_HELP, skip=skip, suppress_defaults=True,
                         custom={"recipe": {"choices": list(RECIPES)},
                                 "mixed_precision": {"choices": list(PRECISION_POLICIES)},
                                 "out": {"help": "run folder (default: runs/{model}-{dataset})"}})


def config_from_args(argv=None, prog: str = PROG, recording: bool = False) -> TrainConfig:
    """The ``TrainConfig`` of a command line (``make_parser``'s flags): its recipe with the
    flags given on top."""
    given = cli.flag_values(TrainConfig, make_parser(prog, recording).parse_args(argv))
    given.setdefault("out", "runs/{}-{}".format(given.get("model", TrainConfig.model),
                                                given.get("dataset", TrainConfig.dataset)))
    return TrainConfig.for_recipe(given.pop("recipe", "he2016"), **given)


def main(argv=None, recorder=None, prog: str = PROG) -> int:
    """CLI (``trainers.cli.run_cli``): 0 when the run finished, 1 when it diverged or a write
    failed, 2 for bad settings, with one ``error:`` line. ``recorder`` and ``prog``:
    ``analysis.record``'s CLI, these flags and ``--record-every`` with the measurements."""
    return cli.run_cli(_train_command, argv, recorder, prog)


def _train_command(argv, recorder, prog: str) -> None:
    """Train the command line's config and print its test error."""
    metrics = train(config_from_args(argv, prog, recording=recorder is not None),
                    recorder=recorder)
    print(f"test error {metrics['test_error']:.2f}% ({metrics['model']} on "
          f"{metrics['dataset']}, {metrics['epochs']} epochs)")


if __name__ == "__main__":
    sys.exit(main())
