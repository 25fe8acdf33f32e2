"""Which ``tf.distribute`` strategy trains a run, and which process of it writes files.

He et al. 2016 train on 2 GPUs with the mini-batch of 128 split between them; the same split
is ``MirroredStrategy`` here (Keras ``fit`` divides each global batch over the replicas). Model
and optimizer variables must be created inside ``strategy.scope()``.

``MultiWorkerMirroredStrategy`` reads the cluster from ``TF_CONFIG`` and must be created before
any other TensorFlow op of the process, so ``make_strategy`` runs before the data pipeline.
"""

import json
import os

import tensorflow as tf

from trainers import compat
from trainers.config import STRATEGIES


def make_strategy(name: str) -> tf.distribute.Strategy:
    """``auto`` (mirrored over all GPUs when there are several, else default), ``default``
    (one device), ``mirrored`` (all GPUs, or all logical CPUs when there is no GPU), or
    ``multiworker`` (the cluster in ``TF_CONFIG``)."""
    if name not in STRATEGIES:
        raise ValueError(f"Unknown strategy {name!r}; accepted: {', '.join(STRATEGIES)}.")
    if name == "multiworker":
        _check_tf_config()
        compat.average_multiworker_scalar_logs()
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_logical_devices("GPU")
    if name == "auto":
        name = "mirrored" if len(gpus) > 1 else "default"
    if name == "default":
        return tf.distribute.get_strategy()
    devices = gpus or tf.config.list_logical_devices("CPU")
    return tf.distribute.MirroredStrategy([device.name for device in devices])


def _check_tf_config() -> dict:
    """The parsed ``TF_CONFIG``; a ``ValueError`` says what is missing."""
    text = os.environ.get("TF_CONFIG")
    example = ('{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
               '"task": {"type": "worker", "index": 0}}')
    if not text:
        raise ValueError(f"--strategy multiworker needs the TF_CONFIG environment variable, "
                         f"e.g. TF_CONFIG='{example}' on each worker (index 0 is the chief).")
    try:
        config = json.loads(text)
        config["cluster"], config["task"]["type"], config["task"]["index"]
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(f"TF_CONFIG is not valid ({error!r}); expected e.g. {example}.") from None
    return config


def is_chief() -> bool:
    """Whether this process writes the run folder: always, except under a ``TF_CONFIG``
    cluster, where only the ``chief`` task (or worker 0 when there is no chief) writes."""
    text = os.environ.get("TF_CONFIG")
    if not text:
        return True
    config = json.loads(text)
    task = config.get("task", {})
    if "chief" in config.get("cluster", {}):
        return task.get("type") == "chief"
    return task.get("type", "worker") == "worker" and int(task.get("index", 0)) == 0


def check_batch_size(batch_size: int, strategy: tf.distribute.Strategy) -> None:
    """The global batch must split evenly over the replicas."""
    replicas = strategy.num_replicas_in_sync
    if batch_size % replicas:
        raise ValueError(
            f"Batch size {batch_size} is not divisible by the {replicas} replicas of the "
            f"strategy; use a multiple of {replicas}, e.g. "
            f"{max(replicas, batch_size - batch_size % replicas)}.")


def check_jit_compile(jit_compile: bool, strategy: tf.distribute.Strategy) -> None:
    """XLA cannot compile a step whose variables live on several CPU devices (logical CPUs
    under ``MirroredStrategy``: "Trying to access resource ... located in device CPU:1 from
    device CPU:0"); say so before training rather than at the first step."""
    if not jit_compile or not isinstance(strategy, tf.distribute.MirroredStrategy):
        return
    devices = strategy.extended.worker_devices
    if len(devices) > 1 and all("CPU" in device.upper() for device in devices):
        raise ValueError(
            f"--jit-compile does not work with {type(strategy).__name__} over "
            f"{len(devices)} CPU devices (XLA compiles each step for one device); drop "
            f"--jit-compile or use --strategy default.")
