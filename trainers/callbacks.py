"""What a run writes while it trains, written so that a run killed at any point resumes cleanly.

Order matters at the end of an epoch: the history row is written before the backup marks the
epoch as done, so a kill in between repeats the epoch and ``EpochHistory`` replaces its row
(no epoch lost, none repeated). A non-finite loss stops training and nothing is saved from
that epoch on, so the last checkpoint and the backup keep the last good weights.
"""

import math
import time
from pathlib import Path

import keras
import pandas as pd
import tensorflow as tf
from tensorflow.core.framework import summary_pb2

HISTORY_COLUMNS = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "val_error", "lr",
                   "epoch_time_s", "images_per_s")


def finite_loss(logs) -> bool:
    loss = (logs or {}).get("loss")
    return loss is None or math.isfinite(float(loss))


class DivergenceGuard(keras.callbacks.Callback):
    """Stops training at the first batch whose loss is NaN or infinite and remembers where."""

    def __init__(self):
        super().__init__()
        self.epoch = 0
        self.diverged = None  # (epoch, batch, loss) once the loss is not finite

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
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
        self._start, self._train_end = time.perf_counter(), None

    def on_test_begin(self, logs=None):
        if self._start is not None and self._train_end is None:
            self._train_end = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
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

    Written with ``tf.summary.write`` and the scalars plugin's metadata, which needs only
    TensorFlow: the ``tensorboard`` package (which Keras' own callback needs) is not installed.
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
        values = dict(logs or {}, learning_rate=float(self.model.optimizer.learning_rate))
        for name, value in values.items():
            run, tag = ("validation", name[4:]) if name.startswith("val_") else ("train", name)
            with self._writer(run).as_default():
                tf.summary.write(f"epoch_{tag}", tf.constant(float(value), tf.float32),
                                 step=epoch + 1, metadata=self.METADATA)
        for writer in self._writers.values():
            writer.flush()

    def on_train_end(self, logs=None):
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
        if (epoch + 1) % self.every or not finite_loss(logs):
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        self.model.save_weights(self.folder / f"epoch-{epoch + 1:04d}.weights.h5")
        for old in sorted(self.folder.glob("epoch-*.weights.h5"))[:-self.keep]:
            old.unlink()


class RunBackup(keras.callbacks.BackupAndRestore):
    """Keras' ``BackupAndRestore`` (resume from the last finished epoch after any kill) that
    never saves a diverged epoch and, under multi-worker training, saves only on the chief
    while every worker restores from the same folder (they must start at the same epoch)."""

    def __init__(self, backup_dir, writer: bool = True):
        super().__init__(str(backup_dir), double_checkpoint=True, delete_checkpoint=False)
        self.writer = writer

    def on_epoch_end(self, epoch, logs=None):
        if self.writer and finite_loss(logs):
            super().on_epoch_end(epoch, logs)

    def on_train_batch_end(self, batch, logs=None):
        if self.writer:
            super().on_train_batch_end(batch, logs)
