"""Reading the official CIFAR python batches: untrusted pickles never run code, the official
formats (protocol 2 from Python 2, numpy's newer protocols) load, and only the batches a run
needs are read."""

import os
import pickle
import tarfile

import numpy as np
import pytest

from trainers import train as train_lib
from trainers.cifar_files import read_arrays


class RunsACommand:
    """What an attacker puts in a batch: unpickling it calls ``os.system``."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def batch(rows: int, offset: int = 0, protocol: int = 2, extra=None) -> bytes:
    """A pickled batch of ``rows`` images; ``extra`` goes in under the key ``b"extra"``."""
    data = (np.arange(rows * 3072) + offset).astype(np.uint8).reshape(rows, 3072)
    return pickle.dumps({b"data": data, b"labels": [(offset + i) % 10 for i in range(rows)],
                         b"batch_label": b"training batch", b"extra": extra}, protocol=protocol)


def write_folder(folder, train_batches, test=None):
    folder.mkdir(parents=True)
    for i, blob in enumerate(train_batches, 1):
        (folder / f"data_batch_{i}").write_bytes(blob)
    (folder / "test_batch").write_bytes(test or batch(4, offset=100))
    return folder


def as_archive(folder, archive):
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname="cifar-10-batches-py")
    return archive


@pytest.fixture
def booby_trapped(tmp_path):
    """A batch folder whose first batch runs ``touch MARKER`` when unpickled unrestricted."""
    marker = tmp_path / "code-ran"
    trap = batch(6, extra=RunsACommand(f"touch {marker}"))
    return write_folder(tmp_path / "data" / "cifar-10-batches-py", [trap, batch(6, 10)]), marker


@pytest.mark.parametrize("packed", ["folder", "archive"])
def test_a_batch_that_would_run_code_is_refused_naming_the_file_and_runs_nothing(
        booby_trapped, tmp_path, packed):
    folder, marker = booby_trapped
    path = folder if packed == "folder" else as_archive(folder, tmp_path / "c.tar.gz")
    with pytest.raises(ValueError, match=r"data_batch_1 is not a CIFAR python batch: it asks to "
                                         r"load posix\.system.*Nothing in it was run"):
        read_arrays("cifar10", path)
    assert not marker.exists()


def test_the_trainer_exits_2_on_a_booby_trapped_batch_before_writing_anything(
        booby_trapped, tmp_path, capsys):
    folder, marker = booby_trapped
    out = tmp_path / "run"
    code = train_lib.main(["--model", "resnet8", "--dataset", "cifar10", "--data-dir",
                           str(folder), "--epochs", "1", "--batch-size", "2", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and "data_batch_1 is not a CIFAR python batch" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not marker.exists() and not (out / "config.json").exists()


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_numpy_pickles_of_every_protocol_load(tmp_path, protocol):
    folder = write_folder(tmp_path / "b", [batch(3, protocol=protocol)],
                          batch(2, 50, protocol=protocol))
    arrays = read_arrays("cifar10", folder)
    assert arrays["train"][0].shape == (3, 32, 32, 3) and arrays["test"][1].tolist() == [0, 1]
    assert arrays["train"][0].dtype == np.uint8 and arrays["train"][1].dtype == np.int64


def test_python2_batches_naming_numpy_core_load(tmp_path):
    """The official files were pickled by Python 2 and numpy 1 (``numpy.core.multiarray``)."""
    blob = batch(3).replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    assert b"numpy.core.multiarray\n_reconstruct" in blob
    arrays = read_arrays("cifar10", write_folder(tmp_path / "b", [blob], blob))
    expected = (np.arange(3 * 3072) % 256).astype(np.uint8).reshape(3, 3, 32, 32)
    np.testing.assert_array_equal(arrays["train"][0], expected.transpose(0, 2, 3, 1))


@pytest.mark.parametrize("packed", ["folder", "archive"])
def test_only_the_batches_holding_the_first_examples_are_unpickled(tmp_path, packed):
    marker = tmp_path / "code-ran"
    trap = batch(6, extra=RunsACommand(f"touch {marker}"))
    folder = write_folder(tmp_path / "b" / "cifar-10-batches-py", [batch(6), batch(6, 10), trap])
    path = folder if packed == "folder" else as_archive(folder, tmp_path / "c.tar.gz")
    arrays = read_arrays("cifar10", path, train_size=7, test_size=1)
    assert len(arrays["train"][0]) == 12 and len(arrays["test"][0]) == 4  # two batches, one
    assert len(read_arrays("cifar10", path, train_size=6)["train"][0]) == 6
    with pytest.raises(ValueError, match="data_batch_3"):
        read_arrays("cifar10", path)  # all of them: the third is refused


@pytest.mark.parametrize("data, labels, message", [
    (np.full((2, 3072), 0.5, np.float32), [0, 1], "expected integers, got an array of dtype "
                                                   "float32"),
    (np.full((2, 3072), 300, np.int64), [0, 1], "expected integers in 0..255, got 300..300"),
    (np.zeros((2, 3072), np.uint8), [0.5, 1.0], "expected integers, got an array of dtype "
                                                "float64"),
    (np.zeros((2, 3072), np.uint8), np.array([0, 1], object), "dtype object"),
])
def test_values_a_cast_would_change_are_refused(tmp_path, data, labels, message):
    blob = pickle.dumps({b"data": data, b"labels": labels}, protocol=2)
    folder = write_folder(tmp_path / "b", [blob])
    with pytest.raises(ValueError, match=f"data_batch_1 is not a CIFAR python batch.*{message}"):
        read_arrays("cifar10", folder)
