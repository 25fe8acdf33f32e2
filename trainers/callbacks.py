"""What a run writes while it trains, written so that a run killed at any point resumes cleanly.

Order matters at the end of an epoch: the history row is written before ``EpochBackup`` marks
the epoch as done, so a kill in between repeats the epoch and ``EpochHistory`` replaces its row
(no epoch lost, none repeated); TensorBoard's scalars are written after it, so a repeated epoch
never gets a second point. A non-finite loss stops training and nothing is saved from that
epoch on, so the last checkpoint and the backup keep the last good weights.
"""

import json
import math
import os
import time
from pathlib import Path

import keras
import pandas as pd
import tensorflow as tf
from tensorflow.core.framework import summary_pb2

HISTORY_COLUMNS = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "val_error", "lr",
                   "epoch_time_s", "images_per_s")


def finite_loss(logs) -> bool:
    """Whether an epoch's or batch's logs hold a finite loss (or none): every writer here skips
    the others."""
    loss = (logs or {}).get("loss")
    return loss is None or math.isfinite(float(loss))


class DivergenceGuard(keras.callbacks.Callback):
    """Stops training at the first batch whose loss is NaN or infinite and remembers where."""

    def __init__(self):
        super().__init__()
        self.epoch = 0
        self.diverged = None  # (epoch, batch, loss) once the loss is not finite

    def on_epoch_begin(self, epoch, logs=None):
        """Remember the epoch, to say where the loss stopped being finite."""
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        """Stop training at a NaN or infinite batch loss, recording epoch, batch and loss."""
        if not finite_loss(logs):
            self.diverged = (self.epoch + 1, batch + 1, float(logs["loss"]))
            self.model.stop_training = True


class EpochHistory(keras.callbacks.Callback):
    """``history.csv``: one row per epoch (1-based), rewritten atomically each epoch. Rows at or
    beyond the epoch being written are dropped first, which makes it resume-safe.

    ``lr`` is the rate of the next step (after the epoch's last update); ``images_per_s``
    counts training images over the training part of the epoch (validation excluded);
    ``val_error`` is the test error in %."""

    def __init__(self, path, images_per_epoch: int):
        super().__init__()
        self.path = Path(path)
        self.images_per_epoch = images_per_epoch
        self._start = self._train_end = None

    def on_epoch_begin(self, epoch, logs=None):
        """Start the epoch's clock."""
        self._start, self._train_end = time.perf_counter(), None

    def on_test_begin(self, logs=None):
        """Stop the training clock when validation starts, so images/s counts training only."""
        if self._start is not None and self._train_end is None:
            self._train_end = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        """Write the epoch's row (replacing any row from an earlier try of it), unless the loss
        diverged."""
        if not finite_loss(logs):  # a diverged epoch is not part of the run's history
            return
        now = time.perf_counter()
        logs = dict(logs or {})
        train_time = (self._train_end or now) - self._start
        row = {name: logs.get(name, math.nan) for name in HISTORY_COLUMNS}
        row.update(epoch=epoch + 1, lr=float(self.model.optimizer.learning_rate),
                   val_error=100.0 * (1.0 - logs.get("val_accuracy", math.nan)),
                   epoch_time_s=now - self._start,
                   images_per_s=self.images_per_epoch / train_time)
        kept = read_history(self.path)
        kept = kept[kept["epoch"] < epoch + 1]
        table = pd.concat([kept, pd.DataFrame([row])], ignore_index=True) if len(kept) else (
            pd.DataFrame([row], columns=HISTORY_COLUMNS))
        temporary = self.path.with_suffix(".csv.tmp")
        table.to_csv(temporary, index=False)
        temporary.replace(self.path)


def read_history(path) -> pd.DataFrame:
    """The rows of ``history.csv`` so far (an empty table when there is none)."""
    path = Path(path)
    if not path.exists():
        return pd.DataFrame(columns=HISTORY_COLUMNS)
    return pd.read_csv(path)


class EpochScalars(keras.callbacks.Callback):
    """TensorBoard scalars per epoch: ``train/`` and ``validation/`` runs under ``log_dir``.

    Written with ``tf.summary.write`` and the scalars plugin's metadata: per epoch, after the
    epoch's backup (so a repeated epoch never gets a second point), with TensorFlow alone
    (the pinned ``tensorboard`` package is only needed to view them).
    """

    METADATA = summary_pb2.SummaryMetadata(
        plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars"))

    def __init__(self, log_dir):
        super().__init__()
        self.log_dir = Path(log_dir)
        self._writers = {}

    def _writer(self, run):
        if run not in self._writers:
            self._writers[run] = tf.summary.create_file_writer(str(self.log_dir / run))
        return self._writers[run]

    def on_epoch_end(self, epoch, logs=None):
        """Write the epoch's finite metrics and learning rate to the train and validation runs."""
        if not finite_loss(logs):
            return
        values = dict(logs or {}, learning_rate=float(self.model.optimizer.learning_rate))
        for name, value in values.items():
            run, tag = ("validation", name[4:]) if name.startswith("val_") else ("train", name)
            with self._writer(run).as_default():
                tf.summary.write(f"epoch_{tag}", tf.constant(float(value), tf.float32),
                                 step=epoch + 1, metadata=self.METADATA)
        for writer in self._writers.values():
            writer.flush()

    def on_train_end(self, logs=None):
        """Close the event files, so the last epoch's scalars reach the disk."""
        for writer in self._writers.values():
            writer.close()
        self._writers = {}


class PeriodicCheckpoint(keras.callbacks.Callback):
    """``checkpoints/epoch-NNNN.weights.h5`` every ``every`` epochs while the loss is finite;
    the newest ``keep`` stay on disk."""

    def __init__(self, folder, every: int = 1, keep: int = 3):
        super().__init__()
        self.folder, self.every, self.keep = Path(folder), every, keep

    def on_epoch_end(self, epoch, logs=None):
        """Save the weights every ``every`` epochs while the loss is finite; drop the oldest
        beyond ``keep``."""
        if (epoch + 1) % self.every or not finite_loss(logs):
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        self.model.save_weights(self.folder / f"epoch-{epoch + 1:04d}.weights.h5")
        for old in sorted(self.folder.glob("epoch-*.weights.h5"))[:-self.keep]:
            old.unlink()


BACKUP_STATE = "latest.json"  # names the backup of the last finished epoch


class EpochBackup(keras.callbacks.Callback):
    """Marks an epoch as done, so that a run killed at any point resumes from the last finished
    epoch (``restore_backup``). The weights (model and optimizer state, the iteration counter
    included) go to ``epoch-NNNN.weights.h5`` first; then ``latest.json`` names that file,
    written to a temporary file and renamed. A kill at any instant leaves ``latest.json`` naming
    one complete file: weights and step counter always come from the same epoch. Never saves a
    diverged epoch; under multi-worker training only the chief writes (``writer``)."""

    def __init__(self, folder, writer: bool = True):
        super().__init__()
        self.folder, self.writer = Path(folder), writer

    def on_epoch_end(self, epoch, logs=None):
        """Save the epoch's weights, then name them in ``latest.json`` atomically: the epoch is
        done."""
        if not self.writer or not finite_loss(logs):
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        name = f"epoch-{epoch + 1:04d}.weights.h5"
        self.model.save_weights(self.folder / name)
        write_json_atomically(self.folder / BACKUP_STATE, {"epoch": epoch + 1, "weights": name})
        for old in self.folder.glob("epoch-*.weights.h5"):
            if old.name != name:
                old.unlink()


def restore_backup(model, folder) -> int:
    """Load the last finished epoch's backup into ``model`` (compiled); the number of epochs
    already done (0 without a backup), to pass to ``fit`` as ``initial_epoch``."""
    folder = Path(folder)
    state_path = folder / BACKUP_STATE
    if not state_path.is_file():
        if any(folder.glob("*.json")):
            raise ValueError(f"{folder} is a backup in an older format this version cannot "
                             f"resume; delete it to restart the run from epoch 1.")
        return 0
    state = json.loads(state_path.read_text())
    if not model.optimizer.built:  # its variables must exist to receive the saved state
        model.optimizer.build(model.trainable_variables)
    model.load_weights(folder / state["weights"])
    return int(state["epoch"])


def write_json_atomically(path: Path, value) -> None:
    """``path`` holds either its old content or ``value``, whenever the writer is killed."""
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "w") as file:
        file.write(json.dumps(value) + "\n")
        file.flush()
        os.fsync(file.fileno())
    temporary.replace(path)
