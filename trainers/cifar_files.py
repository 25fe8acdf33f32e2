"""The official CIFAR python files (pickled batches), read with numpy alone: no TensorFlow.

The layout is the one ``tar xzf cifar-10-python.tar.gz`` gives (``data_batch_1..5`` and
``test_batch``, or ``train`` and ``test`` for CIFAR-100): each file a pickled dict whose
``data`` is uint8 N x 3072 (the red, green, blue 32x32 planes) and whose ``labels`` (CIFAR-100:
``fine_labels``) are class indices. ``trainers.data`` turns the arrays into tf.data pipelines;
``trainers.array_fit`` trains on them directly on any Keras backend.
"""

import io
import pickle
import re
import tarfile
from pathlib import Path

import numpy as np

# Pickled-batch layouts of the official CIFAR python archives.
CIFAR_FILES = {
    "cifar10": {"archive": "cifar-10-python.tar.gz", "folder": "cifar-10-batches-py",
                "train": r"data_batch_\d+", "test": r"test_batch", "labels": b"labels",
                "classes": 10},
    "cifar100": {"archive": "cifar-100-python.tar.gz", "folder": "cifar-100-python",
                 "train": r"train", "test": r"test", "labels": b"fine_labels", "classes": 100},
}
ROW_BYTES = 3 * 32 * 32


def find_cifar_files(dataset: str, folder: Path) -> Path | None:
    """The CIFAR archive or batch folder for ``dataset`` in ``folder`` (or ``folder`` itself)."""
    files = CIFAR_FILES.get(dataset)
    if files is None:
        return None
    for candidate in (folder / files["archive"], folder / files["folder"], folder):
        if candidate.is_file() or (candidate.is_dir() and _batch_names(candidate, files)):
            return candidate
        if candidate.is_dir():
            _check_complete(candidate, files)
    return None


def _check_complete(folder: Path, files: dict) -> None:
    """A folder holding one split's batches but not the other's is a broken copy: say which
    files are missing rather than that there is no data."""
    names = [p.name for p in folder.iterdir() if p.is_file()]
    present = {split: [n for n in names if re.fullmatch(files[split], n)]
               for split in ("train", "test")}
    missing = [split for split, found in present.items() if not found]
    if len(missing) == 1:
        split = missing[0]
        raise ValueError(f"{folder} has CIFAR batches but no {split} batch (a file named like "
                         f"{files[split].replace(chr(92) + 'd+', 'N')!r}); copy it there or "
                         f"extract {files['archive']} again.")


def read_arrays(dataset: str, path: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{"train": (images, labels), "test": ...}``: uint8 (N, 32, 32, 3) images and int64
    labels from the archive or batch folder ``path``. A ``ValueError`` names a bad file."""
    files = CIFAR_FILES[dataset]
    blobs = _archive_blobs(path, files) if path.is_file() else _folder_blobs(path, files)
    return {split: _unpickle(named, files["labels"], files["classes"])
            for split, named in blobs.items()}


def _batch_names(folder: Path, files: dict) -> dict[str, list[str]]:
    """The pickled batch files of each split in ``folder`` ({} unless both splits exist)."""
    names = sorted((p.name for p in folder.iterdir() if p.is_file()), key=_natural)
    found = {split: [n for n in names if re.fullmatch(files[split], n)]
             for split in ("train", "test")}
    return found if all(found.values()) else {}


def _natural(name: str):
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def _folder_blobs(folder: Path, files: dict) -> dict[str, list[tuple[str, bytes]]]:
    return {split: [(str(folder / name), (folder / name).read_bytes()) for name in names]
            for split, names in _batch_names(folder, files).items()}


def _archive_blobs(archive: Path, files: dict) -> dict[str, list[tuple[str, bytes]]]:
    try:
        with tarfile.open(archive) as tar:
            members = {Path(m.name).name: m for m in tar.getmembers() if m.isfile()}
            blobs = {split: [(f"{archive}:{n}", tar.extractfile(members[n]).read())
                             for n in sorted(members, key=_natural)
                             if re.fullmatch(files[split], n)]
                     for split in ("train", "test")}
    except (tarfile.TarError, OSError, EOFError) as error:
        raise ValueError(f"{archive} is not a readable CIFAR archive ({error}); download it "
                         f"again or point --data-dir at the extracted batches.") from None
    if not all(blobs.values()):
        raise ValueError(f"{archive} holds no CIFAR batches ({files['train']}, {files['test']}).")
    return blobs


def _unpickle(named_blobs, label_key: bytes, classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows of 3072 bytes (the red, green, blue 32x32 planes) -> (N, 32, 32, 3) uint8."""
    images, labels = [], []
    for name, blob in named_blobs:
        batch_images, batch_labels = _read_batch(name, blob, label_key)
        if batch_labels.min(initial=0) < 0 or batch_labels.max(initial=0) >= classes:
            raise ValueError(f"{name}: labels must be in [0, {classes - 1}]; found "
                             f"{batch_labels.min()}..{batch_labels.max()}.")
        images.append(batch_images)
        labels.append(batch_labels)
    images = np.concatenate(images)
    return images.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), np.concatenate(labels)


def _read_batch(name: str, blob: bytes, label_key: bytes) -> tuple[np.ndarray, np.ndarray]:
    try:
        batch = pickle.load(io.BytesIO(blob), encoding="bytes")
        data = np.asarray(batch[b"data"], np.uint8)
        labels = np.asarray(batch[label_key], np.int64)
    except Exception as error:  # a truncated or foreign file fails in many ways
        raise ValueError(f"{name} is not a CIFAR python batch ({type(error).__name__}: "
                         f"{error}); expected a pickled dict with b'data' and "
                         f"{label_key!r}.") from None
    if data.ndim != 2 or data.shape[1] != ROW_BYTES or len(data) != len(labels):
        raise ValueError(f"{name}: expected data of shape (N, {ROW_BYTES}) and N labels; got "
                         f"data {data.shape} and {len(labels)} labels.")
    return data, labels
