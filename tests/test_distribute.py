"""tf.distribute training: MirroredStrategy over two logical CPUs, and two worker processes of
MultiWorkerMirroredStrategy on 127.0.0.1. Each runs in its own process (devices and the
collective runtime must be configured before TensorFlow initialises)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from trainers.strategy import is_chief, make_strategy

pytestmark = pytest.mark.slow  # pytest -m 'not slow' skips this module

REPO = Path(__file__).resolve().parents[1]
TIMEOUT = 300

# Trains a tiny run, then saves every weight as one array per replica (weights.npz) and the
# outcome (result.json). argv: mode (mirrored|multiworker), run folder, output folder.
SCRIPT = r"""
import json, sys
from pathlib import Path
import tensorflow as tf
mode, run_dir, out = sys.argv[1], sys.argv[2], Path(sys.argv[3])
if mode == "mirrored":
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras
import numpy as np
from trainers.config import TrainConfig
from trainers.train import train

class SaveReplicas(keras.callbacks.Callback):
    def on_train_end(self, logs=None):
        arrays = {}
        for i, weight in enumerate(self.model.weights):
            parts = getattr(weight.value, "values", (weight.value,))
            for r, part in enumerate(parts):
                arrays[f"{i}:{weight.path}:{r}"] = np.asarray(part)
        np.savez(out / "weights.npz", **arrays)

def config(**settings):
    return TrainConfig(**{"model": "resnet8", "dataset": "synthetic", "epochs": 2,
                          "batch_size": 32, "train_size": 128, "test_size": 32,
                          "strategy": mode, "out": run_dir, **settings})

result = {}
if mode == "mirrored":
    for key, bad in (("bad_batch", {"batch_size": 33}), ("bad_jit", {"jit_compile": True})):
        try:
            train(config(**bad))
        except ValueError as error:
            result[key] = str(error)
metrics = train(config(), callbacks=[SaveReplicas()])
result["replicas"] = metrics["replicas"]
(out / "result.json").write_text(json.dumps(result))
"""


def run_workers(tmp_path, mode, ports):
    """Start one process of SCRIPT per port (a TF_CONFIG cluster when several) and wait."""
    count = len(ports)
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    outs, processes = [], []
    try:
        for index in range(count):
            out = tmp_path / f"process{index}"
            out.mkdir()
            env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
            env.pop("TF_CONFIG", None)
            if count > 1:
                env["TF_CONFIG"] = json.dumps(
                    {"cluster": cluster, "task": {"type": "worker", "index": index}})
            processes.append(subprocess.Popen(
                [sys.executable, "-c", SCRIPT, mode, str(tmp_path / "run"), str(out)],
                cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
            outs.append(out)
        for process in processes:
            output, _ = process.communicate(timeout=TIMEOUT)
            assert process.returncode == 0, output[-3000:]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait(30)
    return [(json.loads((out / "result.json").read_text()), np.load(out / "weights.npz"))
            for out in outs]


def replicas(weights):
    """weight name -> its per-replica arrays."""
    grouped = {}
    for key in weights.files:
        name, _ = key.rsplit(":", 1)
        grouped.setdefault(name, []).append(weights[key])
    return grouped


def test_mirrored_strategy_over_two_cpus(tmp_path, free_ports):
    [(result, weights)] = run_workers(tmp_path, "mirrored", free_ports(1))
    assert result["replicas"] == 2
    assert "not divisible by the 2 replicas" in result["bad_batch"]
    assert "--jit-compile does not work with MirroredStrategy over 2 CPU" in result["bad_jit"]
    grouped = replicas(weights)
    assert all(len(parts) == 2 for parts in grouped.values())
    for name, (first, second) in grouped.items():
        np.testing.assert_array_equal(first, second, err_msg=name)
    history = pd.read_csv(tmp_path / "run" / "history.csv")
    assert history["epoch"].tolist() == [1, 2]


@pytest.mark.skipif(sys.platform != "linux", reason="collectives over 127.0.0.1")
def test_multiworker_mirrored_two_workers_agree(tmp_path, free_ports):
    (chief, chief_weights), (worker, worker_weights) = run_workers(tmp_path, "multiworker",
                                                                   free_ports(2))
    assert chief["replicas"] == worker["replicas"] == 2
    assert chief_weights.files == worker_weights.files
    for key in chief_weights.files:
        np.testing.assert_array_equal(chief_weights[key], worker_weights[key], err_msg=key)
    run = tmp_path / "run"
    history = pd.read_csv(run / "history.csv")  # written by the chief only, once per epoch
    assert history["epoch"].tolist() == [1, 2]
    assert (run / "metrics.json").exists() and (run / "final.keras").exists()


def test_auto_and_default_are_one_device_without_gpus():
    assert make_strategy("auto").num_replicas_in_sync == 1
    assert make_strategy("default") is tf.distribute.get_strategy()
    with pytest.raises(ValueError, match="Unknown strategy 'tpu'"):
        make_strategy("tpu")


@pytest.mark.parametrize("tf_config, chief", [
    (None, True),
    ({"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 0}}, True),
    ({"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 1}}, False),
    ({"cluster": {"chief": ["c:0"], "worker": ["a:1"]}, "task": {"type": "worker", "index": 0}},
     False),
    ({"cluster": {"chief": ["c:0"], "worker": ["a:1"]}, "task": {"type": "chief", "index": 0}},
     True),
])
def test_only_the_chief_writes(monkeypatch, tf_config, chief):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    if tf_config:
        monkeypatch.setenv("TF_CONFIG", json.dumps(tf_config))
    assert is_chief() is chief


def test_multiworker_without_tf_config_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ValueError, match="needs the TF_CONFIG environment variable"):
        make_strategy("multiworker")
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(ValueError, match="TF_CONFIG is not valid"):
        make_strategy("multiworker")
