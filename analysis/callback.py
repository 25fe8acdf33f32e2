"""Cosine loss and l2 ratio per block during training (Jastrzebski et al. 2018, Figures 2-4).

``recording_callbacks`` is ``trainers.train.train``'s ``recorder`` (``python -m
analysis.record``): it adds an ``IterativeInferenceCallback`` when ``config.record_every > 0``,
and the trainer refuses such a config without it. Every ``every`` epochs the callback measures,
on fixed batches of each split (the paper reports train and test) and in inference mode, the
cosine between each block's branch output and the loss gradient at its input, and the block's l2
ratio, and appends one row per (split, block) to ``out_dir/iterative_inference.csv``. Epochs are
1-based like ``history.csv``; epoch 0 is the network before training. A resumed run appends only
the epochs the file does not hold yet.
"""

import functools
from collections.abc import Mapping
from pathlib import Path

import keras
import pandas as pd

from keras_resnets import ResidualChain

from analysis.frames import block_frame
from analysis.loop import BatchSum
from analysis.measures import probe_sums
from analysis.plots import plot_over_training

CSV_NAME = "iterative_inference.csv"
PNG_NAME = "iterative_inference.png"
COLUMNS = ("epoch", "split", "block", "stage", "cosine", "l2_ratio")


class IterativeInferenceCallback(keras.callbacks.Callback):
    """Append cosine loss and l2 ratio per block every ``every`` epochs (and before training).

    Args:
        batches: ``{split: batches}``, a small fixed ``tf.data`` of ``(images, labels)``
            batches per split, e.g. ``{"train": data.train.take(4), "test":
            data.test.take(4)}``; a bare dataset is recorded as split ``test``.
        every: epochs between measurements (positive).
        out_dir: where ``iterative_inference.csv`` and its figure are written.
    """

    def __init__(self, batches, every, out_dir):
        super().__init__()
        if int(every) != every or every < 1:
            raise ValueError(f"every must be a positive number of epochs; got {every}.")
        self.batches = dict(batches) if isinstance(batches, Mapping) else {"test": batches}
        if not self.batches:
            raise ValueError("batches must name at least one split, e.g. {'test': batches}.")
        self.every = int(every)
        self.out_dir = Path(out_dir)
        self.csv_path, self.png_path = self.out_dir / CSV_NAME, self.out_dir / PNG_NAME
        self._measure = None

    def on_train_begin(self, logs=None):
        """Measure before training: epoch 0 of the record."""
        self._record(0)

    def on_epoch_end(self, epoch, logs=None):
        """Measure after every ``every``-th epoch."""
        if (epoch + 1) % self.every == 0:
            self._record(epoch + 1)

    def _recorded(self) -> pd.DataFrame:
        if not self.csv_path.exists():
            return pd.DataFrame(columns=list(COLUMNS))
        history = pd.read_csv(self.csv_path)
        if "split" not in history:  # written before splits were recorded: the test batches
            history.insert(1, "split", "test")
            temporary = self.csv_path.with_name(self.csv_path.name + ".tmp")
            history.to_csv(temporary, index=False)
            temporary.replace(self.csv_path)
        return history

    def _record(self, epoch: int) -> None:
        history = self._recorded()
        if epoch in set(history["epoch"].astype(int)):
            return
        rows = self.measure(epoch)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        rows.to_csv(self.csv_path, mode="a", header=not self.csv_path.exists(), index=False)
        plot_over_training(pd.concat([history, rows], ignore_index=True), self.png_path)

    def measure(self, epoch: int) -> pd.DataFrame:
        """One row per (split, block): this epoch's cosine loss and l2 ratio on the fixed
        batches of each split."""
        if self._measure is None:
            # Built at first use, inside fit, so it picks up the training strategy's scope.
            chain = ResidualChain(self.model)
            self._blocks = block_frame(chain)
            self._measure = BatchSum(functools.partial(probe_sums, chain, gradients=True))
        return pd.concat([self._split_rows(epoch, split, batches)
                          for split, batches in self.batches.items()], ignore_index=True)

    def _split_rows(self, epoch: int, split: str, batches) -> pd.DataFrame:
        sums = self._measure(batches, f"iterative inference, epoch {epoch}, {split}",
                             progress=False)
        rows = self._blocks[["block", "stage"]].copy()
        rows.insert(0, "epoch", epoch)
        rows.insert(1, "split", split)
        rows["cosine"] = sums["cosine"] / sums["count"]
        rows["l2_ratio"] = sums["l2_ratio"] / sums["count"]
        return rows[list(COLUMNS)]


def recording_callbacks(config, data, run_dir) -> list:
    """``trainers.train.train``'s ``recorder``: Jastrzebski et al.'s measurements every
    ``config.record_every`` epochs (none when 0) on 4 batches of each split of ``data`` (Figs. 2
    and 4; the training batches are epoch 0's, augmented), written into ``run_dir``."""
    if config.record_every <= 0:
        return []
    batches = {"train": data.train.take(4), "test": data.test.take(4)}
    return [IterativeInferenceCallback(batches=batches, every=config.record_every,
                                       out_dir=run_dir)]
