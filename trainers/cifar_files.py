"""The official CIFAR python files (pickled batches), read with numpy alone: no TensorFlow.

The layout is the one ``tar xzf cifar-10-python.tar.gz`` gives (``data_batch_1..5`` and
``test_batch``, or ``train`` and ``test`` for CIFAR-100): each file a pickled dict whose
``data`` is uint8 N x 3072 (the red, green, blue 32x32 planes) and whose ``labels`` (CIFAR-100:
``fine_labels``) are class indices. ``trainers.data`` turns the arrays into tf.data pipelines;
``trainers.array_fit`` trains on them directly on any Keras backend.

The files are pickles, and an unrestricted ``pickle.load`` runs whatever code a file names. They
are read with ``SafeUnpickler`` instead: it builds plain containers, bytes, numbers and numpy
arrays of plain dtypes, and refuses every other global a file asks for, so a booby-trapped batch
is reported as not a CIFAR batch and runs nothing. Only the batches a run needs are read: the
first ``train_size`` training rows come from the first batches alone.
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


def read_arrays(dataset: str, path: Path, train_size: int | None = None,
                test_size: int | None = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{"train": (images, labels), "test": ...}``: uint8 (N, 32, 32, 3) images and int64
    labels from the archive or batch folder ``path``, at least the first ``train_size`` /
    ``test_size`` rows of each split (all of them when None; batches past those are not
    unpickled). A ``ValueError`` names a bad file."""
    files = CIFAR_FILES[dataset]
    blobs = _archive_blobs(path, files) if path.is_file() else _folder_blobs(path, files)
    wanted = {"train": train_size, "test": test_size}
    return {split: _unpickle(named, files["labels"], files["classes"], wanted[split])
            for split, named in blobs.items()}


def _batch_names(folder: Path, files: dict) -> dict[str, list[str]]:
    """The pickled batch files of each split in ``folder`` ({} unless both splits exist)."""
    names = sorted((p.name for p in folder.iterdir() if p.is_file()), key=_natural)
    found = {split: [n for n in names if re.fullmatch(files[split], n)]
             for split in ("train", "test")}
    return found if all(found.values()) else {}


def _natural(name: str):
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def _folder_blobs(folder: Path, files: dict) -> dict[str, list[tuple[str, "callable"]]]:
    """Each split's batches as ``(name, read)`` pairs, in order; a file is read when asked."""
    return {split: [(str(folder / name), (folder / name).read_bytes) for name in names]
            for split, names in _batch_names(folder, files).items()}


def _archive_blobs(archive: Path, files: dict) -> dict[str, list[tuple[str, "callable"]]]:
    """Each split's batches in the archive as ``(name, read)`` pairs, in order (a gzipped tar
    is read in one pass, so the contents are read here; unpickling waits until asked)."""
    try:
        with tarfile.open(archive) as tar:
            members = {Path(m.name).name: m for m in tar.getmembers() if m.isfile()}
            blobs = {split: [(f"{archive}:{n}", _constant(tar.extractfile(members[n]).read()))
                             for n in sorted(members, key=_natural)
                             if re.fullmatch(files[split], n)]
                     for split in ("train", "test")}
    except (tarfile.TarError, OSError, EOFError) as error:
        raise ValueError(f"{archive} is not a readable CIFAR archive ({error}); download it "
                         f"again or point --data-dir at the extracted batches.") from None
    if not all(blobs.values()):
        raise ValueError(f"{archive} holds no CIFAR batches ({files['train']}, {files['test']}).")
    return blobs


def _constant(blob: bytes):
    """A ``read`` that returns ``blob``."""
    return lambda: blob


def _unpickle(named_blobs, label_key: bytes, classes: int,
              wanted: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Rows of 3072 bytes (the red, green, blue 32x32 planes) -> (N, 32, 32, 3) uint8, from the
    batches in order until ``wanted`` rows are read (all batches when None)."""
    images, labels = [], []
    for name, read in named_blobs:
        if wanted is not None and sum(map(len, labels)) >= wanted:
            break
        batch_images, batch_labels = _read_batch(name, read(), label_key)
        if batch_labels.min(initial=0) < 0 or batch_labels.max(initial=0) >= classes:
            raise ValueError(f"{name}: labels must be in [0, {classes - 1}]; found "
                             f"{batch_labels.min()}..{batch_labels.max()}.")
        images.append(batch_images)
        labels.append(batch_labels)
    images = np.concatenate(images)
    return images.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), np.concatenate(labels)


def _read_batch(name: str, blob: bytes, label_key: bytes) -> tuple[np.ndarray, np.ndarray]:
    try:
        batch = SafeUnpickler(io.BytesIO(blob), encoding="bytes").load()
        data = _integer_array(batch[b"data"], np.uint8)
        labels = _integer_array(batch[label_key], np.int64)
    except UnsafePickle as error:
        raise ValueError(f"{name} is not a CIFAR python batch: {error}. Nothing in it was run; "
                         f"replace it with a copy from the official archive.") from None
    except Exception as error:  # a truncated or foreign file fails in many ways
        raise ValueError(f"{name} is not a CIFAR python batch ({type(error).__name__}: "
                         f"{error}); expected a pickled dict with b'data' and "
                         f"{label_key!r}.") from None
    if data.ndim != 2 or data.shape[1] != ROW_BYTES or len(data) != len(labels):
        raise ValueError(f"{name}: expected data of shape (N, {ROW_BYTES}) and N labels; got "
                         f"data {data.shape} and {len(labels)} labels.")
    return data, labels


class UnsafePickle(pickle.UnpicklingError):
    """A pickle that asks for something a CIFAR batch never holds (a code-running global)."""


# Every global the official batches and numpy's own pickles of uint8/int arrays need (protocols
# 2 to 5): arrays, their dtypes and scalars (numpy 1 named its module ``numpy.core``, numpy 2
# ``numpy._core``), and Python 2 byte strings written by Python 3.
_SAFE_GLOBALS = {
    ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
    *((f"numpy.{core}.multiarray", name) for core in ("core", "_core")
      for name in ("_reconstruct", "scalar")),
    *((f"numpy.{core}.numeric", "_frombuffer") for core in ("core", "_core")),
}
_INTEGER_KINDS = "biu"  # bool and integers: never floats (truncated) or objects (anything)


class SafeUnpickler(pickle.Unpickler):
    """An unpickler for CIFAR batches that resolves only ``_SAFE_GLOBALS``: anything else a
    file names (``os.system``, ``builtins.eval``, any class with a ``__reduce__``) raises
    ``UnsafePickle`` before it is called."""

    def find_class(self, module: str, name: str):
        """The allowed global ``module.name``; ``UnsafePickle`` for any other."""
        if (module, name) not in _SAFE_GLOBALS:
            raise UnsafePickle(f"it asks to load {module}.{name}, which a CIFAR batch never "
                               f"holds (only numpy arrays, lists, dicts, bytes and numbers)")
        return super().find_class(module, name)


def _integer_array(value, dtype) -> np.ndarray:
    """``value`` (a list or a numpy array of integers) as ``dtype``, refusing what a cast would
    change silently: floats (truncated), values out of ``dtype``'s range (wrapped), and object
    arrays (their items could be anything)."""
    array = np.asarray(value)
    if array.dtype.kind not in _INTEGER_KINDS:
        raise TypeError(f"expected integers, got an array of dtype {array.dtype}")
    limits = np.iinfo(dtype)
    if array.size and (array.min() < limits.min or array.max() > limits.max):
        raise TypeError(f"expected integers in {limits.min}..{limits.max}, got "
                        f"{array.min()}..{array.max()}")
    return array.astype(dtype)
