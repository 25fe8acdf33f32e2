"""Run a per-batch measurement over a whole split, under any ``tf.distribute`` strategy.

A measurement is a function ``step(images, labels) -> dict of tensors`` returning SUMS over its
examples (``analysis.measures``). ``BatchSum`` runs it on every replica with ``strategy.run``
inside one ``tf.function``, reduces the replicas with ``SUM`` and adds the batches up on the
host, with a tqdm progress bar. Dividing by ``count`` afterwards gives exact means whatever the
batch and replica split.
"""

import numpy as np
import tensorflow as tf
from tqdm.auto import tqdm


class BatchSum:
    """``BatchSum(step, strategy)(dataset)`` -> dict of numpy sums over all batches.

    The compiled function is kept between calls, so a callback measuring the same batches every
    few epochs traces once. ``strategy=None`` uses the strategy in scope (the default strategy
    outside any scope). Batches are ``(images, labels)`` pairs.
    """

    def __init__(self, step, strategy=None):
        self.step = step
        self.strategy = strategy or tf.distribute.get_strategy()
        # reduce_retracing: a smaller last batch relaxes the batch dimension once, for good.
        self._compiled = tf.function(self._replica_sums, reduce_retracing=True, autograph=False)

    def _replica_sums(self, images, labels):
        sums = self.strategy.run(self.step, args=(images, labels))
        return {key: self.strategy.reduce(tf.distribute.ReduceOp.SUM, value, axis=None)
                for key, value in sums.items()}

    def __call__(self, dataset, description: str = "", progress: bool = True) -> dict:
        distributed = self.strategy.experimental_distribute_dataset(dataset)
        total = int(dataset.cardinality())
        totals = None
        for batch in tqdm(distributed, desc=description, total=total if total >= 0 else None,
                          disable=not progress, leave=False):
            sums = {key: np.asarray(value, dtype=np.float64)
                    for key, value in self._compiled(*_pair(batch)).items()}
            totals = sums if totals is None else {k: totals[k] + v for k, v in sums.items()}
        if totals is None:
            raise ValueError("The dataset yielded no batch: nothing to measure.")
        return totals


def _pair(batch):
    if not isinstance(batch, (tuple, list)) or len(batch) != 2:
        raise ValueError("Batches must be (images, labels) pairs; got "
                         f"{type(batch).__name__} of length {len(batch) if hasattr(batch, '__len__') else '?'}.")
    return batch
