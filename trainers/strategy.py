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


TF_CONFIG_EXAMPLE = ('{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
                     '"task": {"type": "worker", "index": 0}}')


def _check_tf_config() -> dict:
    """The parsed ``TF_CONFIG`` that ``multiworker`` needs; a ``ValueError`` when it is unset
    or malformed."""
    config = tf_config()
    if config is None:
        raise ValueError(f"--strategy multiworker needs the TF_CONFIG environment variable, "
                         f"e.g. TF_CONFIG='{TF_CONFIG_EXAMPLE}' on each worker (index 0 is the "
                         f"chief).")
    return config


def tf_config() -> dict | None:
    """The parsed ``TF_CONFIG`` environment variable (``None`` when unset or empty), checked
    wherever it is first read: a JSON object whose ``cluster`` maps each job to its list of
    ``host:port`` addresses and whose ``task`` names this process's job and index in it. A
    ``ValueError`` says what is wrong and the shape expected."""
    text = os.environ.get("TF_CONFIG")
    if not text:
        return None
    try:
        config = json.loads(text)
    except ValueError as error:
        _bad_tf_config(f"it is not JSON ({error})")
    if not isinstance(config, dict):
        _bad_tf_config(f"it is a JSON {type(config).__name__}, not an object")
    cluster, task = config.get("cluster"), config.get("task")
    if not isinstance(cluster, dict) or not cluster or not all(
            isinstance(hosts, list) and hosts and all(isinstance(host, str) for host in hosts)
            for hosts in cluster.values()):
        _bad_tf_config(f'its "cluster" is {json.dumps(cluster)}, not an object mapping each '
                       f'job to a non-empty list of "host:port" addresses')
    if not isinstance(task, dict):
        _bad_tf_config(f'its "task" is {json.dumps(task)}, not an object with "type" and '
                       f'"index"')
    kind, index = task.get("type"), task.get("index")
    if not isinstance(kind, str) or kind not in cluster:
        _bad_tf_config(f'its task type {json.dumps(kind)} is not a job of the cluster '
                       f'({", ".join(cluster)})')
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(
            cluster[kind]):
        _bad_tf_config(f'its task index {json.dumps(index)} is not a position in the '
                       f'{len(cluster[kind])} {kind} addresses (0 to {len(cluster[kind]) - 1})')
    return config


def _bad_tf_config(problem: str):
    """Refuse the ``TF_CONFIG`` environment variable: ``problem`` and the shape expected."""
    raise ValueError(f"TF_CONFIG is not valid: {problem}; expected e.g. "
                     f"TF_CONFIG='{TF_CONFIG_EXAMPLE}'.")


def is_chief() -> bool:
    """Whether this process writes the run folder: always, except under a ``TF_CONFIG``
    cluster, where only the ``chief`` task (or worker 0 when there is no chief) writes. A
    malformed ``TF_CONFIG`` is a ``ValueError`` (``tf_config``)."""
    config = tf_config()
    if config is None:
        return True
    task = config["task"]
    if "chief" in config["cluster"]:
        return task["type"] == "chief"
    return task["type"] == "worker" and task["index"] == 0


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
