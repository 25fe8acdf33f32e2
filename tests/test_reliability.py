"""The hostile tests of run folders: kills that must not lose or bend a run, and bad input that
must exit 2 with a message."""

import json
import os
import pickle
import re
import shutil
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest

from trainers import data as data_lib
from trainers import train as train_lib
from trainers.config import TrainConfig

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}


def small(out, **settings):
    return TrainConfig(**{"model": "resnet8", "dataset": "synthetic", "epochs": 3,
                          "batch_size": 32, "train_size": 128, "test_size": 32,
                          "out": str(out), **settings})


def command(out) -> list[str]:
    return [sys.executable, "-m", "trainers.train", "--model", "resnet8", "--dataset",
            "synthetic", "--train-size", "128", "--test-size", "32", "--epochs", "3",
            "--batch-size", "32", "--out", str(out)]


def final_state(out: Path):
    import keras_resnets  # noqa: F401  (the zoo's layers, for loading)

    model = keras.models.load_model(out / "final.keras")
    return int(model.optimizer.iterations.numpy()), model.get_weights()


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted run of ``command``: its folder, iterations and final weights."""
    out = tmp_path_factory.mktemp("reference") / "run"
    result = subprocess.run(command(out), cwd=REPO, env=ENV, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    return out, *final_state(out)


def assert_same_run(out, reference):
    _, iterations, weights = reference
    again_iterations, again_weights = final_state(out)
    assert again_iterations == iterations == 3 * (128 // 32)
    for a, b in zip(again_weights, weights):
        np.testing.assert_array_equal(a, b)


@pytest.mark.slow
@pytest.mark.skipif(not shutil.which("strace"), reason="needs strace to kill at a system call")
@pytest.mark.parametrize("call, path, when", [
    ("write", "backup/latest.json.tmp", 2),  # mid-way through marking epoch 2 as done
    ("rename", "backup/latest.json.tmp", 2),  # epoch 2's weights saved, not yet marked done
])  # every other kill point of an epoch: benchmarks/kill_points.py
def test_a_kill_at_the_backup_resumes_to_the_same_run(tmp_path, reference, call, path, when):
    out = tmp_path / "run"
    killed = subprocess.run(
        ["strace", "-f", "-o", "/dev/null", "-P", str(out / path), "-e", f"trace={call}",
         "-e", f"inject={call}:signal=KILL:when={when}", *command(out)],
        cwd=REPO, env=ENV, capture_output=True, text=True)
    assert killed.returncode != 0 and not (out / "metrics.json").exists()
    resumed = subprocess.run(command(out), cwd=REPO, env=ENV, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert_same_run(out, reference)
    history = pd.read_csv(out / "history.csv")
    assert history["epoch"].tolist() == [1, 2, 3]

@pytest.mark.slow
def test_an_interrupted_run_resumes_bit_for_bit(tmp_path, reference):
    """Weights, step counter, data order and augmentation all resume where they stopped."""
    class Interrupt(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                raise KeyboardInterrupt

    config = small(tmp_path / "run")
    with pytest.raises(KeyboardInterrupt):
        train_lib.train(config, callbacks=[Interrupt()])
    keras.backend.clear_session()
    train_lib.train(config)
    assert_same_run(Path(config.out), reference)
    steps = event_steps(Path(config.out) / "tensorboard" / "train")
    assert sorted(steps) == [1, 2, 3]  # one TensorBoard point per epoch after a resume


def event_steps(folder: Path) -> list[int]:
    """The steps of the ``epoch_loss`` scalars in a TensorBoard folder."""
    import tensorflow as tf

    return [event.step for path in folder.glob("events.out.tfevents.*")
            for event in tf.compat.v1.train.summary_iterator(str(path))
            for value in event.summary.value if value.tag == "epoch_loss"]


def cli(argv, capsys):
    code = train_lib.main(argv)
    return code, capsys.readouterr().err


def base(out):
    return ["--model", "resnet8", "--dataset", "synthetic", "--epochs", "1", "--batch-size",
            "32", "--train-size", "64", "--test-size", "32", "--out", str(out)]


@pytest.mark.parametrize("flags, message", [
    (["--momentum=-5"], "momentum must be in [0, 1)"),
    (["--model-overrides", "[1,2]"], "must be a JSON object"),
    (["--model-overrides", "null"], "must be a JSON object"),
    (["--lr-drop-factor=-1"], "lr_drop_factor must be in (0, 1]"),
    (["--learning-rate", "nan"], "learning_rate must be a positive finite number"),
    (["--weight-decay=-1e-4"], "weight_decay must be >= 0"),
])
def test_bad_settings_exit_2_and_write_nothing(tmp_path, capsys, flags, message):
    out = tmp_path / "run"
    code, err = cli(base(out) + flags, capsys)
    assert code == 2 and message in err and "Traceback" not in err
    assert not out.exists()

@pytest.mark.slow
def test_the_corrected_command_then_runs_in_the_same_folder(tmp_path, capsys):
    out = tmp_path / "run"
    assert cli(base(out) + ["--momentum", "-5"], capsys)[0] == 2
    assert cli(base(out), capsys)[0] == 0


def test_an_out_that_is_or_is_under_a_file_is_refused(tmp_path, capsys):
    blocker = tmp_path / "taken"
    blocker.write_text("x")
    for out in (blocker, blocker / "run"):
        code, err = cli(base(out), capsys)
        assert code == 2 and "is a file, not a folder" in err and "Traceback" not in err


def test_an_out_folder_that_refuses_files_is_refused(tmp_path, capsys, monkeypatch):
    """What a read-only folder does to a non-root user, simulated (root writes anyway)."""
    import trainers.files

    def refuse(**_):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(trainers.files.tempfile, "TemporaryFile", refuse)
    code, err = cli(base(tmp_path / "run"), capsys)
    assert code == 2 and "cannot be written (Permission denied" in err
    assert not (tmp_path / "run").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_out_is_refused(tmp_path, capsys):
    tmp_path.chmod(0o500)
    try:
        code, err = cli(base(tmp_path / "run"), capsys)
    finally:
        tmp_path.chmod(0o700)
    assert code == 2 and "cannot be written" in err


def write_batch(path: Path, data, labels):
    path.write_bytes(pickle.dumps({b"data": data, b"labels": labels}))


def cifar_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for name in ("data_batch_1", "test_batch"):
        write_batch(folder / name, np.zeros((4, 3072), np.uint8), [0, 1, 2, 3])
    return folder


@pytest.mark.parametrize("damage, message", [
    (lambda f: (f / "data_batch_1").write_bytes(b"\x80\x04\x95 trunc"),
     "data_batch_1 is not a CIFAR python batch"),
    (lambda f: (f / "data_batch_1").write_text("hello"),
     "data_batch_1 is not a CIFAR python batch"),
    (lambda f: write_batch(f / "data_batch_1", np.zeros((4, 100), np.uint8), [0] * 4),
     "data_batch_1: expected data of shape (N, 3072)"),
    (lambda f: write_batch(f / "data_batch_1", np.zeros((4, 3072), np.uint8), [0, 1, 2, 10]),
     "data_batch_1: labels must be in [0, 9]"),
    (lambda f: (f / "test_batch").unlink(), "has CIFAR batches but no test batch"),
])
def test_broken_cifar_files_name_the_file_and_the_fault(tmp_path, capsys, damage, message):
    folder = cifar_folder(tmp_path)
    damage(folder)
    code, err = cli(base(tmp_path / "run") + ["--dataset", "cifar10", "--data-dir", str(folder),
                                               "--batch-size", "2", "--train-size", "4"],
                    capsys)
    assert code == 2 and message in err and "Traceback" not in err


def test_a_corrupt_cifar_archive_is_refused(tmp_path, capsys):
    (tmp_path / "cifar-10-python.tar.gz").write_bytes(b"\x1f\x8b not really gzip")
    code, err = cli(base(tmp_path / "run") + ["--dataset", "cifar10", "--data-dir",
                                              str(tmp_path)], capsys)
    assert code == 2 and "is not a readable CIFAR archive" in err

@pytest.mark.slow
def test_a_finished_run_refuses_another_config_and_accepts_a_trailing_slash(
        tmp_path, capsys, reference):
    out = tmp_path / "run"
    shutil.copytree(reference[0], out)
    code, err = cli(base(out) + ["--model", "preact8", "--epochs", "60"], capsys)
    assert code == 2 and "different config" in err
    metrics = train_lib.train(small(str(out) + "/"))  # the same run, spelled with a slash
    assert metrics == json.loads((out / "metrics.json").read_text())

@pytest.mark.slow
def test_final_keras_loads_its_optimizer_and_schedule_with_only_keras_resnets_imported(reference):
    """A fresh interpreter with the zoo's layers and no custom objects restores the optimizer
    with the run's step schedule, a Keras ``PiecewiseConstantDecay``."""
    script = ("import json, keras, keras_resnets, sys; "
              "m = keras.saving.load_model(sys.argv[1]); "
              "s = m.optimizer.get_config()['learning_rate']; "
              "print(json.dumps([s['class_name'], s['config']['boundaries'], "
              "s['config']['values']]))")
    result = subprocess.run([sys.executable, "-c", script, str(reference[0] / "final.keras")],
                            cwd=REPO, env=ENV, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    name, boundaries, values = json.loads(result.stdout.strip().splitlines()[-1])
    schedule = TrainConfig.load(reference[0] / "config.json").learning_rate_schedule(128 // 32)
    assert name == "PiecewiseConstantDecay"
    assert (boundaries, values) == (schedule.boundaries, schedule.values)


def test_a_missing_test_batch_is_not_reported_as_no_data(tmp_path):
    folder = cifar_folder(tmp_path)
    (folder / "test_batch").unlink()
    with pytest.raises(ValueError, match="no test batch"):
        data_lib.locate("cifar10", str(tmp_path))

@pytest.mark.slow
def test_a_new_run_starts_from_another_runs_checkpoint(tmp_path, reference):
    """The documented way to continue a diverged run: its last good checkpoint, a lower
    learning rate, another folder."""
    checkpoint = reference[0] / "checkpoints" / "epoch-0003.weights.h5"
    config = small(tmp_path / "again", init_from=str(checkpoint), learning_rate=0.01, epochs=1)
    data = data_lib.load_data(config)
    model = train_lib.build_model(config, data)
    train_lib.load_initial_weights(model, config.init_from)
    for a, b in zip(model.get_weights(), reference[2]):
        np.testing.assert_array_equal(a, b)
    metrics = train_lib.train(config)
    assert metrics["epochs"] == 1 and metrics["iterations"] == 128 // 32


@pytest.mark.slow
@pytest.mark.parametrize("init_from, message", [
    ("{tmp}/missing.weights.h5", "no such file"),
    ("{reference}/checkpoints/epoch-0003.weights.h5", "does not fit"),
])
def test_a_bad_init_from_exits_2_with_one_line(tmp_path, capsys, reference, init_from, message):
    path = init_from.format(tmp=tmp_path, reference=reference[0])
    code, err = cli(base(tmp_path / "run") + ["--init-from", path, "--model", "preact8"],
                    capsys)
    assert code == 2 and message in err and "Traceback" not in err
    assert err.count("\n") == 1 and len(err) < 400, err  # the first mismatch, not Keras's list


def test_a_corrupt_final_keras_is_reported_as_corrupt(tmp_path, capsys):
    from analysis.run import main as analysis_main

    small(tmp_path).save(tmp_path / "config.json")
    (tmp_path / "final.keras").write_bytes(b"PK\x03\x04 truncated")
    assert analysis_main([str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "is a corrupt or unreadable .keras file" in err and "File not found" not in err


# ---------------------------------------------------------------------------------------------
# A run folder's files must agree before a run resumes from them


class StopBeforeTheBackup(keras.callbacks.Callback):
    """Ends training after epoch 2's history row and checkpoint, before its backup: the state
    a kill leaves there (history one epoch ahead of the backup)."""

    def on_epoch_end(self, epoch, logs=None):
        if epoch == 1:
            raise KeyboardInterrupt


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory):
    """A run folder of ``command``'s config stopped in epoch 2: history [1, 2], backup 1."""
    out = tmp_path_factory.mktemp("interrupted") / "run"
    with pytest.raises(KeyboardInterrupt):
        train_lib.train(small(out), callbacks=[StopBeforeTheBackup()])
    keras.backend.clear_session()
    assert pd.read_csv(out / "history.csv")["epoch"].tolist() == [1, 2]
    assert json.loads((out / "backup" / "latest.json").read_text())["epoch"] == 1
    return out


def history_with_epochs(epochs):
    """A damage: the history's first rows, renumbered ``epochs``."""
    def damage(out):
        history = pd.read_csv(out / "history.csv")
        history.iloc[:len(epochs)].assign(epoch=epochs).to_csv(out / "history.csv", index=False)
    return damage


def resume_one_line_error(out, capsys) -> tuple[int, str]:
    """Resume ``out`` with ``command``'s flags: exit code, and stderr, which must be one line."""
    code, err = cli(command(out)[3:], capsys)
    assert err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err, err
    return code, err


@pytest.mark.slow
@pytest.mark.parametrize("damage, message", [
    (lambda out: (out / "history.csv").write_text(""),
     r"history.csv is damaged \(No columns to parse from file\); restore it, or delete"),
    (history_with_epochs([2]), r"history.csv is damaged: its epochs are \[2\], not 1 to 1"),
    (history_with_epochs([1, 3]), r"history.csv is damaged: its epochs are \[1, 3\], not 1 to 2"),
    (history_with_epochs([]), "history.csv has 0 epochs but .*latest.json says 1 are done"),
    (lambda out: (out / "history.csv").unlink(), "history.csv has 0 epochs but"),
    (lambda out: (out / "config.json").unlink(),
     r"holds run files \(history.csv, backup, checkpoints, tensorboard\) but no config.json"),
    (lambda out: (out / "backup" / "latest.json").write_text("{\"epo"),
     "latest.json is damaged"),
    (lambda out: (out / "backup" / "epoch-0001.weights.h5").unlink(),
     "latest.json names epoch-0001.weights.h5, which is missing"),
])
def test_a_run_whose_files_disagree_is_refused_before_training(
        tmp_path, capsys, interrupted, damage, message):
    out = tmp_path / "run"
    shutil.copytree(interrupted, out)
    damage(out)
    history = out / "history.csv"
    before = history.read_bytes() if history.exists() else None
    code, err = resume_one_line_error(out, capsys)
    assert code == 2 and re.search(message, err), err
    assert f"delete {out} to train the run again from scratch" in err
    if before is not None:  # nothing was trained onto the damaged files
        assert history.read_bytes() == before


@pytest.mark.slow
def test_a_damaged_backup_is_refused_with_the_ways_to_go_on(tmp_path, capsys, interrupted):
    out = tmp_path / "run"
    shutil.copytree(interrupted, out)
    (out / "backup" / "epoch-0001.weights.h5").write_bytes(b"\x89HDF\r\n garbage, not weights")
    code, err = resume_one_line_error(out, capsys)
    assert code == 2, err
    assert f"{out / 'backup' / 'epoch-0001.weights.h5'} is damaged and cannot be loaded" in err
    assert f"delete {out} to train the run again from scratch" in err
    assert f"--init-from {out / 'checkpoints' / 'epoch-0002.weights.h5'} --out" in err


@pytest.mark.slow
def test_a_finished_run_without_its_config_is_not_claimed_by_another_config(
        tmp_path, capsys, reference):
    out = tmp_path / "run"
    shutil.copytree(reference[0], out)
    (out / "config.json").unlink()
    code, err = resume_one_line_error(out, capsys)
    assert code == 2 and "but no config.json" in err and "final.keras, metrics.json" in err


# ---------------------------------------------------------------------------------------------
# A full disk ends a run with exit 1 and one line naming the file; the run then resumes


@pytest.fixture
def small_disk(tmp_path):
    """``resize(size)``: a tmpfs of ``size`` (e.g. ``"1000k"``) mounted at the yielded folder,
    resized in place; skipped where mounting is not allowed (it needs root)."""
    folder = tmp_path / "disk"
    folder.mkdir()

    def mount(size: str, remount: bool = False) -> None:
        options = f"remount,size={size}" if remount else f"size={size}"
        subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)],
                       check=True, capture_output=True)

    try:
        mount("1000k")
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        yield folder, mount
    finally:
        subprocess.run(["umount", str(folder)], capture_output=True)


@pytest.mark.slow
@pytest.mark.parametrize("size", ["1000k", "3200k"])  # full in epoch 1's backup, in epoch 2
def test_a_full_disk_ends_the_run_with_one_line_and_it_resumes_once_freed(
        small_disk, reference, size):
    folder, mount = small_disk
    mount(size, remount=True)
    out = folder / "run"
    full = subprocess.run(command(out), cwd=REPO, env=ENV, capture_output=True, text=True)
    errors = [line for line in full.stderr.splitlines() if line.startswith("error")]
    assert full.returncode == 1, full.stderr[-3000:]  # not a crash (139: segfault)
    assert len(errors) == 1, full.stderr[-3000:]
    assert not re.search("Traceback|Exception ignored|h5py", full.stderr), full.stderr[-3000:]
    assert re.match(rf"error: could not write {re.escape(str(out))}/\S+ \(No space left on "
                    rf"device\); free some space", errors[0]), errors[0]
    assert not [p for p in out.rglob("*") if p.name.endswith((".tmp", ".partial.keras"))]
    mount("20m", remount=True)
    resumed = subprocess.run(command(out), cwd=REPO, env=ENV, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert_same_run(out, reference)
    assert pd.read_csv(out / "history.csv")["epoch"].tolist() == [1, 2, 3]
