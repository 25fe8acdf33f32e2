"""The trainer: run folder, resume after kill -9, NaN stop, bad arguments, the schedule, CLI."""

import errno
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow_datasets as tfds

from trainers import callbacks as run_callbacks
from trainers import data as data_lib
from trainers import train as train_lib
from trainers.callbacks import HISTORY_COLUMNS, EpochHistory
from trainers.config import TrainConfig

RUN_FILES = ("config.json", "history.csv", "final.keras", "metrics.json")
REPO = Path(__file__).resolve().parents[1]


def small(out, **settings):
    return TrainConfig(**{"model": "resnet8", "dataset": "synthetic", "epochs": 3,
                          "batch_size": 32, "train_size": 256, "test_size": 64,
                          "out": str(out), **settings})


def check_run_folder(run_dir, epochs):
    for name in RUN_FILES:
        assert (run_dir / name).is_file(), name
    assert list((run_dir / "tensorboard" / "train").glob("events.out.tfevents.*"))
    assert list((run_dir / "tensorboard" / "validation").glob("events.out.tfevents.*"))
    assert list((run_dir / "checkpoints").glob("epoch-*.weights.h5"))
    assert not (run_dir / "backup").exists()  # removed once the run is finished
    history = pd.read_csv(run_dir / "history.csv")
    assert tuple(history.columns) == HISTORY_COLUMNS
    assert history["epoch"].tolist() == list(range(1, epochs + 1))
    assert np.isfinite(history.to_numpy(float)).all()
    return history


@pytest.fixture(scope="module")
def synthetic_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "synthetic"
    return out, train_lib.train(small(out))

@pytest.mark.slow
def test_synthetic_run_writes_every_file_and_learns(synthetic_run):
    out, metrics = synthetic_run
    history = check_run_folder(out, epochs=3)
    assert history["loss"].iloc[-1] < history["loss"].iloc[0]
    assert history["val_error"].iloc[-1] < 60  # chance is 90% error
    assert TrainConfig.load(out / "config.json") == small(out)
    assert metrics == json.loads((out / "metrics.json").read_text())
    assert metrics["epochs"] == 3 and metrics["iterations"] == 3 * (256 // 32)
    assert metrics["test_error"] == pytest.approx(100 * (1 - metrics["test_accuracy"]))
    assert metrics["parameters"] == keras_resnets_parameters("resnet8")
    data = data_lib.load_data(small(out))
    assert metrics["standardize"] == {"mean": list(data.mean), "std": list(data.std)}
    model = keras.models.load_model(out / "final.keras")
    assert model.count_params() > 0


class KeepModel(keras.callbacks.Callback):
    """Keeps the model ``fit`` trained: the one in memory that ``final.keras`` is saved from."""

    def on_train_end(self, logs=None):
        self.trained = self.model


@pytest.mark.slow
def test_final_keras_takes_raw_images_like_the_model_in_memory(tmp_path):
    """The training split's standardisation is inside the model: ``final.keras`` maps raw
    uint8 images to the logits of the trained model, and scores the raw test split as the
    trainer did."""
    import keras_resnets

    config = small(tmp_path / "raw", epochs=1, train_size=64)
    kept = KeepModel()
    metrics = train_lib.train(config, callbacks=[kept])
    data = data_lib.load_data(config)
    loaded = keras.models.load_model(Path(config.out) / "final.keras")
    np.testing.assert_allclose(keras_resnets.standardization_of(loaded), (data.mean, data.std),
                               rtol=1e-6)
    raw = np.concatenate([images for images, _ in data.test])
    assert raw.max() > 1 and (raw == np.round(raw)).all()  # 0..255, not standardised
    np.testing.assert_allclose(loaded.predict(raw.astype(np.uint8), verbose=0),
                               kept.trained.predict(raw, verbose=0), rtol=1e-5, atol=1e-5)
    scores = loaded.evaluate(data.test, return_dict=True, verbose=0)
    assert scores["accuracy"] == pytest.approx(metrics["test_accuracy"])


def keras_resnets_parameters(name):
    import keras_resnets

    return keras_resnets.count_parameters(keras_resnets.build(name, weight_decay=1e-4))

@pytest.mark.slow
def test_finished_run_returns_its_metrics_without_training(synthetic_run):
    out, metrics = synthetic_run
    before = (out / "final.keras").stat().st_mtime_ns
    assert train_lib.train(small(out)) == metrics
    assert (out / "final.keras").stat().st_mtime_ns == before

@pytest.mark.slow
def test_mock_tfds_cifar10_run(tmp_path, monkeypatch):
    monkeypatch.setattr(data_lib, "network_available", lambda timeout=3.0: True)
    out = tmp_path / "cifar10"
    with tfds.testing.mock_data(num_examples=64):
        metrics = train_lib.train(small(out, dataset="cifar10", epochs=1, train_size=None,
                                        test_size=None))
    check_run_folder(out, epochs=1)
    assert metrics["paper_error"] is None and metrics["train_examples"] == 64


class PoisonWeights(keras.callbacks.Callback):
    """Sets the logits kernel to NaN at the start of epoch ``epoch`` (0-based)."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            kernel = self.model.get_layer("logits").kernel
            kernel.assign(np.full(kernel.shape, np.nan, "float32"))

@pytest.mark.slow
def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    config = small(tmp_path / "nan", epochs=2, train_size=128)
    with pytest.raises(train_lib.TrainingDiverged, match="epoch 2, batch 1.*epoch-0001"):
        train_lib.train(config, callbacks=[PoisonWeights(epoch=1)])
    out = Path(config.out)
    assert [p.name for p in (out / "checkpoints").iterdir()] == ["epoch-0001.weights.h5"]
    net = train_lib.build_model(config, data_lib.load_data(config))
    net.load_weights(out / "checkpoints" / "epoch-0001.weights.h5")
    assert all(np.isfinite(w).all() for w in net.get_weights())
    backup = json.loads((out / "backup" / "latest.json").read_text())
    assert backup == {"epoch": 1, "weights": "epoch-0001.weights.h5"}  # a rerun restarts here
    assert not (out / "metrics.json").exists()
    assert pd.read_csv(out / "history.csv")["epoch"].tolist() == [1]  # no row for the NaN epoch


def test_cli_exits_1_on_divergence(monkeypatch, capsys):
    def diverge(config, recorder=None):
        raise train_lib.TrainingDiverged("Training diverged: the loss became nan")

    monkeypatch.setattr(train_lib, "train", diverge)
    assert train_lib.main(["--dataset", "synthetic"]) == 1
    err = capsys.readouterr().err
    assert "the loss became nan" in err and "Traceback" not in err


@pytest.mark.parametrize("argv, message", [
    (["--model", "preact21"], "Impossible depth 21"),
    (["--model", "preactt20"], "Did you mean: preact20"),
    (["--dataset", "cifar11"], "Unknown dataset 'cifar11'"),
    (["--dataset", "cifar10", "--data-dir", "{tmp}"], "--dataset synthetic"),
    (["--model-overrides", '{"num_classes": 5}'], "may not set num_classes"),
    (["--model-overrides", '{"sync_batchnorm": true}'], "sync_batchnorm: --sync-batchnorm"),
    (["--model-overrides", '{"gate_bais": -6}'], "did you mean 'gate_bias'"),
    (["--strategy", "multiworker"], "TF_CONFIG"),
    (["--batch-size", "512", "--train-size", "256"], "fewer than one batch of 512"),
    (["--lr-drops", "0.8", "0.4"], "increasing fractions"),
    (["--record-every", "1"], "unrecognized arguments: --record-every 1"),
])
def test_bad_arguments_exit_2_before_training(tmp_path, capsys, monkeypatch, argv, message):
    monkeypatch.setattr(data_lib, "network_available", lambda timeout=3.0: False)
    monkeypatch.delenv("TF_CONFIG", raising=False)
    out = tmp_path / "bad"
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    base = ["--model", "resnet8", "--dataset", "synthetic", "--epochs", "1", "--out", str(out)]
    assert train_lib.main(base + argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (out / "history.csv").exists()


def test_a_config_that_records_needs_a_recorder(tmp_path):
    """Only analysis measures during training: without its recorder, train refuses a config
    with record_every > 0 (rather than skip the measurements) before writing anything."""
    with pytest.raises(ValueError, match="record_every=2: .* give train\\(config, recorder="):
        train_lib.train(small(tmp_path / "run", record_every=2))
    assert not (tmp_path / "run").exists()

@pytest.mark.slow
def test_validation_every_n_epochs_and_always_the_last():
    assert train_lib.validation_epochs(7, 1) == [1, 2, 3, 4, 5, 6, 7]
    assert train_lib.validation_epochs(7, 3) == [3, 6, 7]
    assert train_lib.validation_epochs(6, 3) == [3, 6]
    assert train_lib.validation_epochs(2, 5) == [2]


@pytest.mark.slow
def test_skipped_evaluations_leave_gaps_in_the_history_not_in_the_result(tmp_path):
    config = small(tmp_path / "sparse", train_size=64, validation_every=2)
    metrics = train_lib.train(config)
    history = pd.read_csv(Path(config.out) / "history.csv")
    assert history["val_error"].isna().tolist() == [True, False, False]
    assert np.isfinite(history[["loss", "accuracy", "images_per_s"]].to_numpy()).all()
    assert history["val_error"].iloc[-1] == pytest.approx(metrics["test_error"], abs=1e-3)


@pytest.mark.slow
def test_how_often_the_test_set_is_evaluated_does_not_change_the_trained_weights(tmp_path):
    configs = [small(tmp_path / f"every{n}", epochs=2, train_size=64, validation_every=n)
               for n in (1, 2)]
    for config in configs:
        train_lib.train(config)
    every_epoch, last_only = (keras.models.load_model(Path(c.out) / "final.keras").get_weights()
                              for c in configs)
    for a, b in zip(every_epoch, last_only):
        np.testing.assert_array_equal(a, b)


def test_a_different_config_in_the_run_folder_is_refused(synthetic_run):
    out, _ = synthetic_run
    (out / "metrics.json").rename(out / "metrics.moved")
    try:
        with pytest.raises(ValueError, match="different config"):
            train_lib.train(small(out, epochs=4))
    finally:
        (out / "metrics.moved").rename(out / "metrics.json")

@pytest.mark.slow
def test_kill_9_then_rerun_resumes_without_losing_or_repeating_epochs(tmp_path):
    out = tmp_path / "killed"
    command = [sys.executable, "-m", "trainers.train", "--model", "resnet8", "--dataset",
               "synthetic", "--epochs", "4", "--batch-size", "32", "--train-size", "128",
               "--test-size", "32", "--out", str(out)]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    backup = out / "backup" / "latest.json"
    first = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not backup.exists() and first.poll() is None:
            assert time.monotonic() < deadline, "no finished epoch within 120 s"
            time.sleep(0.02)
        first.send_signal(signal.SIGKILL)
    finally:
        first.kill()
        first.wait(30)
    assert not (out / "metrics.json").exists(), "the first run finished before the kill"
    done = json.loads(backup.read_text())["epoch"]
    assert 1 <= done < 4
    second = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True,
                            timeout=240)
    assert second.returncode == 0, second.stderr[-2000:]
    assert f"Epoch {done + 1}/4" in second.stdout and f"Epoch {done}/4" not in second.stdout
    assert "python -m analysis.run" in second.stdout
    check_run_folder(out, epochs=4)


def test_history_rows_from_a_repeated_epoch_replace_the_old_ones(tmp_path):
    path = tmp_path / "history.csv"
    pd.DataFrame([{c: float(e) for c in HISTORY_COLUMNS} | {"epoch": e} for e in (1, 2, 3)]
                 ).to_csv(path, index=False)
    history = EpochHistory(path, images_per_epoch=10)
    history.set_model(keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)]))
    history.model.compile(optimizer=keras.optimizers.SGD(0.5))
    history.on_epoch_begin(1)
    history.on_epoch_end(1, {"loss": 0.25, "accuracy": 0.5, "val_accuracy": 0.75})
    table = pd.read_csv(path)
    assert table["epoch"].tolist() == [1, 2]
    assert table["loss"].tolist() == [1.0, 0.25]
    assert table["val_error"].iloc[-1] == pytest.approx(25.0)
    assert table["lr"].iloc[-1] == pytest.approx(0.5)


def schedule(**settings):
    config = TrainConfig(**{"model": "preact110", "epochs": 10, **settings})
    return config.learning_rate_schedule(steps_per_epoch=100)  # 1000 iterations


def rates(schedule_, steps):
    return [float(schedule_(step)) for step in steps]


def test_schedule_warms_up_then_drops_at_half_and_three_quarters():
    lr = schedule(warmup_iterations=400)
    assert rates(lr, [0, 399]) == pytest.approx([0.01, 0.01])
    assert rates(lr, [400, 499]) == pytest.approx([0.1, 0.1])
    assert rates(lr, [500, 749]) == pytest.approx([0.01, 0.01])
    assert rates(lr, [750, 999]) == pytest.approx([0.001, 0.001])


@pytest.mark.parametrize("model", ["preact20", "resnet56", "preact110"])
def test_every_depth_warms_up_for_400_of_64k_iterations_scaled_with_the_recipe(model):
    """He et al. 2016, appendix: 400 iterations at 0.01 "for all CIFAR experiments"."""
    paper = TrainConfig(model=model).learning_rate_schedule(steps_per_epoch=390)
    assert rates(paper, [0, 399, 400]) == pytest.approx([0.01, 0.01, 0.1])
    shortened = schedule(model=model, epochs=16)  # 1,600 of 64k iterations: warm-up 10
    assert rates(shortened, [9, 10]) == pytest.approx([0.01, 0.1])


def test_schedule_keeps_its_fractions_at_any_length_and_scales_with_batch():
    longer = schedule(epochs=20)
    assert rates(longer, [999, 1000, 1499, 1500]) == pytest.approx([0.1, 0.01, 0.01, 0.001])
    paper = TrainConfig(model="preact20").learning_rate_schedule(steps_per_epoch=390)
    assert rates(paper, [31_999, 32_000, 48_000]) == pytest.approx([0.1, 0.01, 0.001])
    doubled = schedule(batch_size=256)
    assert rates(doubled, [0, 400, 500]) == pytest.approx([0.02, 0.2, 0.02])


def test_schedule_round_trips_through_its_config():
    lr = schedule()
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(lr))
    assert isinstance(restored, keras.optimizers.schedules.PiecewiseConstantDecay)
    assert rates(restored, [0, 450, 600, 900]) == rates(lr, [0, 450, 600, 900])


def test_every_config_field_but_record_every_is_a_flag():
    """record_every is analysis.record's flag (tests/test_analysis_record.py): training alone
    never measures."""
    config = train_lib.config_from_args([
        "--model", "preact110-gate-exclusive", "--dataset", "cifar100", "--epochs", "7",
        "--batch-size", "64", "--learning-rate", "0.05", "--weight-decay", "5e-4",
        "--warmup-iterations", "100", "--lr-drops", "0.3", "0.6", "--no-augment",
        "--mixed-precision", "bfloat16", "--jit-compile", "--no-sync-batchnorm", "--strategy",
        "mirrored",
        "--model-overrides", '{"gate_bias": -7}', "--recipe", "he2016", "--seed", "5",
        "--train-size", "1000", "--test-size", "100", "--data-dir", "/data"])
    assert config == TrainConfig(
        model="preact110-gate-exclusive", dataset="cifar100", epochs=7, batch_size=64,
        learning_rate=0.05, weight_decay=5e-4, warmup_iterations=100, lr_drops=(0.3, 0.6),
        augment=False, mixed_precision="bfloat16", jit_compile=True, sync_batchnorm=False,
        strategy="mirrored", model_overrides={"gate_bias": -7}, seed=5, train_size=1000,
        test_size=100, data_dir="/data", out="runs/preact110-gate-exclusive-cifar100")
    flags = train_lib.make_parser().format_help()
    for field in TrainConfig.__dataclass_fields__:
        assert ("--" + field.replace("_", "-") in flags) is (field != "record_every")
    assert train_lib.config_from_args([]) == TrainConfig(out="runs/preact20-cifar10")
    assert math.isclose(train_lib.config_from_args([]).learning_rate, 0.1)


def test_mixed_precision_flag_takes_a_compute_dtype_and_refuses_others():
    assert train_lib.config_from_args(["--mixed-precision", "float16"]).mixed_precision == (
        "float16")
    with pytest.raises(ValueError, match="invalid choice: 'half'.*'float16', 'bfloat16'"):
        train_lib.config_from_args(["--mixed-precision", "half"])
    assert "--mixed-precision {float16,bfloat16}" in train_lib.make_parser().format_help()


@pytest.mark.parametrize("precision, loss_scaled", [("float16", True), ("bfloat16", False)])
def test_mixed_precision_computes_in_its_dtype_with_float32_logits_and_sync_batchnorm_is_set(
        precision, loss_scaled):
    """float16 trains with Keras's dynamic loss scaling (its narrow range), bfloat16 without."""
    config = small("unused", mixed_precision=precision)
    data = data_lib.Data(None, None, num_classes=10, input_shape=(16, 16, 3), train_examples=1,
                         test_examples=1, mean=(0.0,) * 3, std=(1.0,) * 3)
    with train_lib.dtype_policy(config.dtype_policy):
        model = train_lib.build_model(config, data, replicas=2)
        train_lib.compile_model(model, config, steps_per_epoch=2)
    assert keras.config.dtype_policy().name == "float32"  # restored afterwards
    assert model.get_layer("stem_conv1").compute_dtype == precision
    assert keras.ops.convert_to_numpy(model(np.zeros((2, 16, 16, 3)))).dtype == np.float32
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer) is loss_scaled
    norms = batchnorms(model)
    assert len(norms) > 3 and all(layer.synchronized for layer in norms)
    single = train_lib.build_model(small("unused", sync_batchnorm=True), data, replicas=1)
    assert not any(layer.synchronized for layer in batchnorms(single))


def batchnorms(model) -> list:
    """Every BN layer of a zoo model without shared stacks, by public attributes: the model's
    own layers and its residual units'."""
    from keras_resnets import ResidualUnit

    own = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    return own + [norm for layer in model.layers if isinstance(layer, ResidualUnit)
                  for norm in layer.batchnorms()]


def no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_a_failed_write_keeps_the_old_file_and_names_the_new_one(tmp_path, monkeypatch):
    path = tmp_path / "history.csv"
    path.write_text("old\n")
    monkeypatch.setattr(run_callbacks.os, "fsync", no_space)
    with pytest.raises(run_callbacks.WriteFailed,
                       match=f"could not write {path} \\(No space left on device\\); free"):
        run_callbacks.write_file_atomically(path, b"new\n")
    assert path.read_text() == "old\n" and sorted(tmp_path.iterdir()) == [path]


class FullDisk(keras.Model):
    """A model whose ``save`` writes part of its file, then finds the disk full."""

    def save(self, filepath, *args, **kwargs):
        Path(filepath).write_bytes(b"PK\x03\x04 part of a file")
        no_space()


@pytest.mark.parametrize("save", [
    lambda model, path: run_callbacks.save_weights_file(model, path / "epoch-0001.weights.h5"),
    lambda model, path: train_lib.save_final_model(model, path / "final.keras"),
])
def test_a_model_save_that_fails_leaves_no_partial_file(tmp_path, save):
    with pytest.raises(run_callbacks.WriteFailed, match="No space left on device"):
        save(FullDisk(), tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_weights_written_through_python_load_like_keras_own(tmp_path):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9), loss="mse")
    model.fit(np.ones((4, 3)), np.ones((4, 2)), verbose=0)
    run_callbacks.save_weights_file(model, tmp_path / "a.weights.h5")
    again = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    again.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9), loss="mse")
    again.optimizer.build(again.trainable_variables)
    again.load_weights(tmp_path / "a.weights.h5")
    for a, b in zip(again.get_weights() + again.optimizer.variables,
                    model.get_weights() + model.optimizer.variables):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert [p.name for p in tmp_path.iterdir()] == ["a.weights.h5"]


def test_a_tensorboard_write_that_fails_names_its_folder_in_one_line(tmp_path, monkeypatch):
    import tensorflow as tf

    def refuse(*args, **kwargs):
        raise tf.errors.ResourceExhaustedError(
            None, None, "events.out.tfevents.1; No space left on device\n\tFailed to flush")

    monkeypatch.setattr(tf.summary, "write", refuse)
    scalars = run_callbacks.EpochScalars(tmp_path / "tensorboard")
    scalars.set_model(keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)]))
    scalars.model.compile(optimizer=keras.optimizers.SGD(0.5))
    with pytest.raises(run_callbacks.WriteFailed) as failed:
        scalars.on_epoch_end(0, {"loss": 1.0})
    message = str(failed.value)
    assert message.startswith(f"could not write {tmp_path / 'tensorboard'} (")
    assert "No space left on device" in message and "\n" not in message
