"""What a run writes while it trains, written so that a run killed at any point resumes cleanly.

Order matters at the end of an epoch: the history row is written before ``EpochBackup`` marks
the epoch as done, so a kill in between repeats the epoch and ``EpochHistory`` replaces its row
(no epoch lost, none repeated); TensorBoard's scalars are written after it, so a repeated epoch
never gets a second point. A non-finite loss stops training and nothing is saved from that
epoch on, so the last checkpoint and the backup keep the last good weights.

Every file is written to a temporary file and renamed, and a failed write (a full disk) raises
``WriteFailed`` naming the file (exit 1), leaving the run as a kill would: resumable.
``check_resumable`` refuses to resume from files that disagree (exit 2).
"""

import contextlib
import json
import math
import os
import time
import zipfile
from pathlib import Path

import keras
import pandas as pd
import tensorflow as tf
from tensorflow.core.framework import summary_pb2

from trainers.cli import RunFailed

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
        write_file_atomically(self.path, table.to_csv(index=False).encode())


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
        with self._failures_named():
            for name, value in values.items():
                run, tag = ("validation", name[4:]) if name.startswith("val_") else (
                    "train", name)
                with self._writer(run).as_default():
                    tf.summary.write(f"epoch_{tag}", tf.constant(float(value), tf.float32),
                                     step=epoch + 1, metadata=self.METADATA)
            for writer in self._writers.values():
                writer.flush()

    def on_train_end(self, logs=None):
        """Close the event files, so the last epoch's scalars reach the disk."""
        with self._failures_named():
            for writer in self._writers.values():
                writer.close()
        self._writers = {}

    @contextlib.contextmanager
    def _failures_named(self):
        """TensorFlow's error for an event file it cannot write (a full disk) as
        ``WriteFailed`` naming the folder."""
        try:
            yield
        except tf.errors.OpError as error:
            raise WriteFailed(failed_write_message(self.log_dir, first_line(error.message))) \
                from None


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
        save_weights_file(self.model, self.folder / f"epoch-{epoch + 1:04d}.weights.h5")
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
        save_weights_file(self.model, self.folder / name)
        write_json_atomically(self.folder / BACKUP_STATE, {"epoch": epoch + 1, "weights": name})
        for old in self.folder.glob("epoch-*"):  # older epochs, and what a kill left behind
            if old.name != name:
                old.unlink()


def restore_backup(model, folder) -> int:
    """Load the last finished epoch's backup into ``model`` (compiled); the number of epochs
    already done (0 without a backup), to pass to ``fit`` as ``initial_epoch``. A backup that
    cannot be loaded is refused (``ValueError``) with the ways to go on."""
    state = backup_state(Path(folder))
    if state is None:
        return 0
    epoch, weights = state
    if not model.optimizer.built:  # its variables must exist to receive the saved state
        model.optimizer.build(model.trainable_variables)
    try:
        model.load_weights(weights)
    except (OSError, ValueError, KeyError) as error:
        raise ValueError(f"{weights} is damaged and cannot be loaded ({first_line(error)}); "
                         f"{_recovery(weights.parent.parent)}") from None
    return epoch


def backup_state(folder: Path) -> tuple[int, Path] | None:
    """The last finished epoch and its weights file, as ``latest.json`` names them (None
    without a backup). A ``ValueError`` says what is wrong with a backup that cannot be read."""
    state_path = folder / BACKUP_STATE
    if not state_path.is_file():
        return None
    try:
        state = json.loads(state_path.read_text())
        epoch, weights = int(state["epoch"]), folder / state["weights"]
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(f"{state_path} is damaged ({first_line(error)}); restore it, or "
                         f"{_recovery(folder.parent)}") from None
    if not weights.is_file():
        raise ValueError(f"{state_path} names {weights.name}, which is missing; "
                         f"{_recovery(folder.parent)}")
    return epoch, weights


def check_resumable(run_dir: Path, backup_folder: Path) -> None:
    """Refuse to resume from a run folder whose files disagree (``ValueError``, naming the file
    and the repair): ``history.csv`` must be readable and hold epochs 1 to N in order, where N
    is the backup's epoch, or N + 1 (a kill between an epoch's history row and its backup
    leaves one row more, which the repeated epoch replaces)."""
    done = (backup_state(backup_folder) or (0, None))[0]
    path = run_dir / "history.csv"
    epochs = history_epochs(path, run_dir)
    if epochs != list(range(1, len(epochs) + 1)):
        raise ValueError(f"{path} is damaged: its epochs are {_shown(epochs)}, not 1 to "
                         f"{len(epochs)} in order; restore it, or delete {run_dir} to train the "
                         f"run again from scratch.")
    if not done <= len(epochs) <= done + 1:
        raise ValueError(f"{path} has {len(epochs)} epochs but {backup_folder / BACKUP_STATE} "
                         f"says {done} are done (a kill leaves at most one more in the "
                         f"history): one of them was damaged or replaced; restore it, or delete "
                         f"{run_dir} to train the run again from scratch.")


def history_epochs(path: Path, run_dir: Path) -> list:
    """The epoch column of ``history.csv`` (empty when there is none yet); a ``ValueError``
    naming the file when it is not a history table."""
    try:
        history = read_history(path)
        return history["epoch"].tolist()
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError,
            KeyError) as error:
        reason = "no epoch column" if isinstance(error, KeyError) else first_line(error)
        raise ValueError(f"{path} is damaged ({reason}); restore it, or delete {run_dir} to "
                         f"train the run again from scratch.") from None


def _shown(epochs: list) -> str:
    """A history's epochs as a short list (the first ten and the last)."""
    shown = [int(e) if e == e else e for e in epochs]  # NaN stays NaN
    return str(shown) if len(shown) <= 11 else f"[{str(shown[:10])[1:-1]}, ..., {shown[-1]}]"


def _recovery(run_dir: Path) -> str:
    """How to go on without a run's backup: from scratch, or from its last checkpoint."""
    checkpoints = sorted((run_dir / "checkpoints").glob("epoch-*.weights.h5"))
    again = f"delete {run_dir} to train the run again from scratch"
    if not checkpoints:
        return again + "."
    return (f"{again}, or continue from its last checkpoint in a new run (--init-from "
            f"{checkpoints[-1]} --out NEW_FOLDER).")


def first_line(error: Exception) -> str:
    """An error's message on one line, cut to its first line (library errors run long)."""
    lines = str(error).strip().splitlines() or [type(error).__name__]
    return lines[0].strip()


class WriteFailed(RunFailed):
    """A file of the run could not be written (a full disk): exit 1, the run resumable."""


KERAS_WEIGHTS = "model.weights.h5"  # the weights file inside a .keras archive


def save_weights_file(model, path: Path) -> None:
    """``model.save_weights(path)`` (the model's and its optimizer's state) without HDF5 ever
    writing to the disk: an HDF5 write that fails midway (a full disk) leaves its file open in
    the library, which crashes the interpreter later. Keras builds the same weights file in
    memory inside a ``.keras`` archive, written by Python next to ``path`` first; the file is
    taken from it and written atomically. ``WriteFailed`` names ``path`` when a write fails."""
    scratch = path.with_name(path.name + ".partial.keras")
    try:
        model.save(scratch)
        with zipfile.ZipFile(scratch) as archive:
            weights = archive.read(KERAS_WEIGHTS)
    except OSError as error:
        raise WriteFailed(failed_write_message(path, error.strerror or error)) from None
    finally:
        scratch.unlink(missing_ok=True)
    write_file_atomically(path, weights)


def write_file_atomically(path: Path, content: bytes) -> None:
    """``path`` holds either its old content or ``content``, whenever the writer is killed:
    written to ``NAME.tmp``, fsynced, renamed. A failed write (a full disk) removes the
    temporary file and raises ``WriteFailed`` naming ``path``."""
    temporary = path.with_name(path.name + ".tmp")
    try:
        with open(temporary, "wb") as file:
            file.write(content)
            file.flush()
            os.fsync(file.fileno())
        temporary.replace(path)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        raise WriteFailed(failed_write_message(path, error.strerror or error)) from None


def write_json_atomically(path: Path, value) -> None:
    """``path`` holds either its old content or ``value``, whenever the writer is killed."""
    write_file_atomically(path, (json.dumps(value) + "\n").encode())


def failed_write_message(path: Path, reason) -> str:
    """The one line a failed write ends the run with: the file, why, and how to go on."""
    return (f"could not write {path} ({' '.join(str(reason).split())}); free some space (or "
            f"fix the folder) and run the same command again: the run resumes from its last "
            f"finished epoch.")
