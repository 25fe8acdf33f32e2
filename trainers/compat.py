"""The project's one door to private Keras, TensorFlow and KerasTuner API: workarounds for
upstream bugs, each active only on the versions that have the bug.

Outside this module no code reads or sets a ``_name`` attribute of a Keras, TensorFlow or
KerasTuner object, nor imports ``keras.src``, ``keras_tuner.src`` or ``tensorflow.python``
(``tests/test_compat.py`` walks the sources). Every workaround here is guarded by a
``Workaround``: the upstream report and the installed versions it applies to, so that upgrading
past the fix turns it off. Where upstream has no fix yet, the range ends with the newest
release tested here (``requirements.txt``); an upgrade beyond it turns the workaround off and
fails ``tests/test_compat.py`` until someone checks the bug (``tests/test_distribute.py`` runs
it) and either deletes the workaround or widens its range.

It lives in ``trainers``: every workaround concerns TensorFlow's ``tf.distribute`` training,
which the zoo (``keras_resnets``, backend-neutral, no TensorFlow) never touches. The functions
import TensorFlow themselves, so importing this module imports no TensorFlow.
"""

from dataclasses import dataclass
from importlib import metadata

from packaging.specifiers import SpecifierSet


@dataclass(frozen=True)
class Workaround:
    """An upstream bug: the distribution that has it, its affected versions (a specifier such
    as ``">=3.0,<3.16"``) and the issue or pull request that reports or fixes it."""

    package: str
    affected: str
    upstream: str

    def applies(self) -> bool:
        """Whether the installed ``package`` is one of the affected versions."""
        try:
            installed = metadata.version(self.package)
        except metadata.PackageNotFoundError:
            return False
        return SpecifierSet(self.affected).contains(installed, prereleases=True)


# Keras 3's TensorFlow trainer under MultiWorkerMirroredStrategy; both open upstream, unfixed
# in Keras 3.15.1, the newest release tested here.
MULTIWORKER_BUILD = Workaround(
    "keras", ">=3.0,<3.16", "https://github.com/keras-team/keras/issues/20585")
MULTIWORKER_LOGS = Workaround(
    "keras", ">=3.0,<3.16", "https://github.com/tensorflow/tensorflow/issues/72388")
WORKAROUNDS = (MULTIWORKER_BUILD, MULTIWORKER_LOGS)


def build_for_multiworker_fit(model, strategy, dataset) -> None:
    """Build ``model`` for ``fit`` under ``MultiWorkerMirroredStrategy`` (``MULTIWORKER_BUILD``).

    Keras's ``fit`` and ``evaluate`` first build the model, loss and metrics from one batch
    reduced with ``strategy.reduce``, which fails for an (x, y) tuple of per-replica values
    ("Attempt to convert a value (PerReplica...) ... to a Tensor", also in
    ray-project/ray#47464). Build from the dataset's element spec instead and skip that step
    (it only builds). Does nothing where the bug is absent.
    """
    if not MULTIWORKER_BUILD.applies():
        return
    with strategy.scope():
        model._symbolic_build(data_batch=dataset.element_spec)
    model._maybe_symbolic_build = lambda iterator=None, data_batch=None: None


def average_multiworker_scalar_logs() -> None:
    """Let ``fit`` report the loss and metrics under ``MultiWorkerMirroredStrategy``
    (``MULTIWORKER_LOGS``); process-wide, once; does nothing where the bug is absent.

    Keras reduces each log of a train or test step over the workers with
    ``strategy.reduce("MEAN", v, axis=0)``, which fails for the scalar loss and metrics
    ("Invalid reduction dimension 0 for input with 0 dimensions"). Scalars are averaged over
    the replicas instead (``axis=None``); everything else goes to Keras unchanged.
    """
    if not MULTIWORKER_LOGS.applies():
        return
    import tensorflow as tf
    from keras.src.backend.tensorflow import trainer as keras_trainer

    original = keras_trainer.reduce_per_replica
    if getattr(original, "scalar_safe", False):
        return

    def reduce_per_replica(values, strategy, reduction):
        if reduction not in ("auto", "mean") or not isinstance(
                strategy, tf.distribute.MultiWorkerMirroredStrategy):
            return original(values, strategy, reduction)

        def mean(value):
            local = strategy.experimental_local_results(value)[0]
            return strategy.reduce("MEAN", value, axis=None if local.shape.rank == 0 else 0)

        return tf.nest.map_structure(mean, values)

    reduce_per_replica.scalar_safe = True
    keras_trainer.reduce_per_replica = reduce_per_replica
