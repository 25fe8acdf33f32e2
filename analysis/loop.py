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

    The step is traced once per dataset element spec, whose batch dimension is unknown for a
    dataset batched without ``drop_remainder``: the smaller last batch then reuses the trace
    (tracing a deep chain's drop pass takes minutes). The compiled function is kept between
    calls, so a callback measuring the same batches every few epochs traces once.
    ``strategy=None`` uses the strategy in scope (the default strategy outside any scope).
    """

    def __init__(self, step, strategy=None):
        self.step = step
        self.strategy = strategy or tf.distribute.get_strategy()
        self._compiled = {}  # element spec -> tf.function

    def _replica_sums(self, images, labels):
        sums = self.strategy.run(self.step, args=(images, labels))
        return {key: self.strategy.reduce(tf.distribute.ReduceOp.SUM, value, axis=None)
                for key, value in sums.items()}

    def _compile(self, spec):
        _check_pair(spec)
        if spec not in self._compiled:
            # autograph=False: the measures have no tensor-dependent Python control flow, and
            # converting every Keras layer call would only slow the tracing of deep chains.
            self._compiled[spec] = tf.function(self._replica_sums, input_signature=list(spec),
                                               autograph=False)
        return self._compiled[spec]

    def __call__(self, dataset, description: str = "", progress: bool = True) -> dict:
        """The step's sums over every batch of ``dataset`` and every replica, one dict of
        totals; a progress bar labelled ``description`` unless ``progress`` is off."""
        distributed = self.strategy.experimental_distribute_dataset(dataset)
        compiled = self._compile(distributed.element_spec)
        total = int(dataset.cardinality())
        totals = None
        for images, labels in tqdm(distributed, desc=description,
                                   total=total if total >= 0 else None, disable=not progress,
                                   leave=False):
            sums = {key: np.asarray(value, dtype=np.float64)
                    for key, value in compiled(images, labels).items()}
            totals = sums if totals is None else {k: totals[k] + v for k, v in sums.items()}
        if totals is None:
            raise ValueError("The dataset yielded no batch: nothing to measure.")
        return totals


def _check_pair(spec):
    if not isinstance(spec, tuple) or len(spec) != 2:
        raise ValueError(f"Batches must be (images, labels) pairs; got elements of spec {spec}.")
