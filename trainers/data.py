"""The one input pipeline: CIFAR and any TFDS image-classification dataset, or synthetic data.

He et al. 2016 (appendix, CIFAR training): per-channel standardisation, then on training
images only 4-pixel zero padding, a random crop back to the image size (32x32 on CIFAR) and a
random horizontal flip; the test image is used as is. The standardisation is the model's first
layer (``build(..., standardize=(data.mean, data.std))``, so saved models take raw images): the
pipeline yields raw float32 images, 0..255. Padding follows standardisation in the authors'
Torch code, so the padded zeros are the mean colour; here the padding comes first and is the
training split's per-channel mean, which the model's standardisation turns into exactly those
zeros (``augment``). Augmentation runs on whole batches.

Where the images come from (``locate`` decides before anything is read or downloaded):
- ``synthetic``: a small learnable task made here (class colour and stripe pattern + noise).
- ``cifar10`` / ``cifar100`` with ``--data-dir`` holding the official python archive
  (``cifar-10-python.tar.gz``), its extracted folder (``cifar-10-batches-py/``,
  ``cifar-100-python/``), or being that folder: read with pickle, no TFDS, no network.
- any TFDS dataset with ``image`` and ``label`` features, prepared in ``--data-dir`` or the TFDS
  default folder, or downloaded by TFDS when the network answers.
"""

import difflib
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf

from trainers.cifar_files import CIFAR_FILES, find_cifar_files, read_arrays
from trainers.config import TrainConfig

SYNTHETIC = "synthetic"
SYNTHETIC_SHAPE = (32, 32, 3)
SYNTHETIC_SIZES = {"train": 2048, "test": 512}
# Synthetic data is a small task for checking a setup, not a benchmark: at most this many
# examples per split (twenty CIFAR training sets).
SYNTHETIC_MAX_EXAMPLES = 1_000_000
# Memory per synthetic example while it is made: three float64 images alive at the peak
# (the pattern, the noise and their sum) and four uint8 copies kept (the array, its tensor,
# the cache and the training split held whole for shuffling).
SYNTHETIC_BYTES_PER_EXAMPLE = (3 * 8 + 4) * int(np.prod(SYNTHETIC_SHAPE))
PAD = 4  # pixels of mean-colour padding before the random crop
EPOCH_SEED_STRIDE = 1_000_003  # seed * stride + epoch: a different shuffle seed per (seed, epoch)
NETWORK_PROBE = ("storage.googleapis.com", 443)


@dataclass
class Data:
    """Batched datasets of (raw float32 images, 0..255, int labels) and what describes them.

    ``epochs(first, last)`` are the training batches of epochs ``first`` to ``last - 1``: each
    epoch's order and augmentation depend only on the seed and the epoch's number, so a run
    resumed at epoch k sees exactly the batches an uninterrupted run sees from epoch k on.
    ``train`` is epoch 0's batches (for one-pass users: analysis, benchmarks)."""

    epochs: Callable[[int, int], tf.data.Dataset]  # global batches, shuffled, augmented
    test: tf.data.Dataset  # global batches, not augmented
    num_classes: int
    input_shape: tuple  # (H, W, C)
    train_examples: int
    test_examples: int
    mean: tuple  # per channel, from the training split, on the 0..255 scale: the model's
    std: tuple  # standardisation (its ``standardize`` layer)

    def steps_per_epoch(self, batch_size: int) -> int:
        """Training steps per epoch: the full batches of ``batch_size`` in the training split."""
        return self.train_examples // batch_size

    @property
    def train(self) -> tf.data.Dataset:
        """Epoch 0's training batches, for one-pass users (analysis, benchmarks)."""
        return self.epochs(0, 1)


@dataclass
class Source:
    """Where a dataset's images are: ``kind`` is synthetic, pickle (a CIFAR archive or
    folder at ``path``) or tfds (prepared in ``data_dir``, or to ``download``)."""

    kind: str
    path: Path | None = None
    data_dir: str | None = None
    download: bool = False


@dataclass
class Splits:
    """Raw splits: uint8 (H, W, C) images with integer labels, before truncation and batching."""

    train: tf.data.Dataset
    test: tf.data.Dataset
    num_classes: int
    input_shape: tuple


def load_data(config: TrainConfig, source: "Source | None" = None) -> Data:
    """The train and test pipelines of ``config.dataset`` (first ``train_size``/``test_size``
    examples), batched by the global ``config.batch_size``. ``source``: where ``locate`` found
    the data, when the caller already asked."""
    source = source or locate(config.dataset, config.data_dir)
    splits = read_splits(config, source)
    train = _first(splits.train, config.train_size).cache()
    test = _first(splits.test, config.test_size).cache()
    train_examples, test_examples = _count(train), _count(test)
    if train_examples < config.batch_size:
        raise ValueError(f"{config.dataset!r} has {train_examples} training examples, fewer "
                         f"than one batch of {config.batch_size}; lower --batch-size.")
    mean, std = channel_stats(train)
    plain = lambda x, y, seed: (tf.cast(x, tf.float32), y)  # noqa: E731
    augmented = lambda x, y, seed: augment(*plain(x, y, seed), seed, fill=mean)  # noqa: E731
    transform = augmented if config.augment else plain
    return Data(
        epochs=lambda first, last: _epochs(train, train_examples, first, last, config.seed,
                                           config.batch_size, transform),
        test=_batched(test, config.batch_size, drop_remainder=False,
                      transform=lambda x, y: plain(x, y, None)),
        num_classes=splits.num_classes, input_shape=tuple(splits.input_shape),
        train_examples=train_examples, test_examples=test_examples,
        mean=tuple(mean.tolist()), std=tuple(std.tolist()))


def augment(images, labels, seed, fill):
    """4-pixel padding with the colour ``fill`` (one value per channel), a random crop back to
    the image size and a random horizontal flip, drawn per image for a whole batch at once: two
    gathers, no per-image work on the host (the batched twin of
    ``keras_resnets.augment.PadCropFlip`` in TensorFlow ops). ``seed``: a shape-[2] int tensor;
    the draws are a function of it alone (stateless).

    Why ``fill`` is the training mean: He et al. pad standardised images with zeros. Cropping
    and flipping only move pixels, and a standardised zero is the mean colour, so padding raw
    images with the mean and standardising after (in the model) gives the same numbers: every
    image pixel is the same ``(x - mean) / std`` and every padded one ``(mean - mean) / std``,
    exactly 0 (bit for bit; the model's layer divides by ``sqrt(std ** 2)``, within float32
    rounding of ``std``)."""
    shape = tf.shape(images)
    count, height, width = shape[0], shape[1], shape[2]
    padded = pad_with(images, fill)
    seeds = tf.random.experimental.stateless_split(seed, 3)
    offsets = [tf.random.stateless_uniform([count, 1], seeds[i], 0, 2 * PAD + 1, tf.int32)
               for i in range(2)]
    rows = offsets[0] + tf.range(height)
    columns = offsets[1] + tf.range(width)
    flip = tf.random.stateless_uniform([count, 1], seeds[2]) < 0.5
    columns = tf.where(flip, tf.reverse(columns, axis=[1]), columns)
    cropped = tf.gather(padded, rows, axis=1, batch_dims=1)
    return tf.gather(cropped, columns, axis=2, batch_dims=1), labels


def pad_with(images, fill):
    """``images`` with ``PAD`` pixels of colour ``fill`` on each side. ``tf.pad`` fills with one
    scalar, so the border is added on a 0/1 mask: image pixels stay bit-exact (``x + 0``) and
    border pixels are exactly ``fill`` (``0 + fill``)."""
    paddings = [[0, 0], [PAD, PAD], [PAD, PAD], [0, 0]]
    shape = tf.shape(images)
    inside = tf.zeros([1, shape[1], shape[2], 1], images.dtype)
    border = tf.pad(inside, paddings, constant_values=1)
    return tf.pad(images, paddings) + border * tf.constant(fill, images.dtype)


def _epochs(examples, count, first, last, seed, batch_size, transform):
    """Epochs ``first..last-1`` of shuffled, transformed training batches. Epoch e is shuffled
    with seed ``(seed, e)`` and its batch b transformed with seed ``(seed, e, b)``: no random
    state carries over from one epoch to the next, which is what makes resuming exact. The
    split is held in memory (a full-size shuffle buffer held it too)."""
    images, labels = next(iter(examples.batch(count)))

    def one_epoch(epoch):
        key = tf.constant(seed, tf.int64) * EPOCH_SEED_STRIDE + epoch
        order = tf.random.experimental.stateless_shuffle(tf.range(count), tf.stack([key, 0]))
        batches = tf.data.Dataset.from_tensor_slices(order).batch(batch_size, drop_remainder=True)
        return batches.enumerate(start=1).map(
            lambda b, rows: transform(tf.gather(images, rows), tf.gather(labels, rows),
                                      tf.stack([key, b])), tf.data.AUTOTUNE)

    epochs = tf.data.Dataset.range(first, last).flat_map(one_epoch)
    return epochs.prefetch(tf.data.AUTOTUNE).with_options(_options())


def _options() -> tf.data.Options:
    """Each worker reads everything and keeps its share of every batch: the sources are
    in-memory tensors or too few TFDS files to shard by file."""
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return options


def _batched(dataset, batch_size, drop_remainder, transform):
    """Batches, each transformed as a whole (one op per batch rather than per image),
    prefetched."""
    batches = dataset.batch(batch_size, drop_remainder=drop_remainder)
    return batches.map(transform, tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE).with_options(
        _options())


def _first(dataset, size):
    return dataset if size is None else dataset.take(size)


def _count(dataset) -> int:
    count = int(dataset.cardinality())
    if count < 0:
        count = int(dataset.reduce(0, lambda n, _: n + 1))
    return count


def channel_stats(dataset) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and standard deviation of the uint8 images of ``dataset`` (one pass,
    which also fills its cache)."""
    total, squares, pixels = 0.0, 0.0, 0
    for images, _ in dataset.batch(4096).as_numpy_iterator():
        values = images.reshape(-1, images.shape[-1]).astype(np.float64)
        total = total + values.sum(0)
        squares = squares + (values ** 2).sum(0)
        pixels += len(values)
    mean = total / pixels
    std = np.sqrt(np.maximum(squares / pixels - mean ** 2, 0.0))
    return mean.astype(np.float32), np.maximum(std, 1e-3).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# Where the data is


def locate(dataset: str, data_dir: str | None) -> Source:
    """Find ``dataset`` locally (or decide to download it) without reading it; a ``ValueError``
    for an unknown dataset or when there is no data and no network."""
    if dataset == SYNTHETIC:
        return Source("synthetic")
    builder = _tfds_builder(dataset, data_dir)
    if data_dir is not None:
        found = find_cifar_files(dataset, Path(data_dir))
        if found is not None:
            return Source("pickle", path=found)
    if builder.is_prepared():
        return Source("tfds", data_dir=data_dir)
    manual = Path(builder.data_dir_root) / "downloads" / "manual"
    found = find_cifar_files(dataset, manual) if manual.is_dir() else None
    if found is not None:
        return Source("pickle", path=found)
    if network_available():
        return Source("tfds", data_dir=data_dir, download=True)
    raise ValueError(missing_data_message(dataset, data_dir))


def _tfds_builder(dataset: str, data_dir: str | None):
    """The TFDS builder of ``dataset``, checked to be an image-classification dataset."""
    import tensorflow_datasets as tfds

    try:
        builder = tfds.builder(dataset, data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError:
        close = difflib.get_close_matches(dataset, [SYNTHETIC, *tfds.list_builders()], n=5)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise ValueError(f"Unknown dataset {dataset!r}: use 'synthetic' or a TFDS image-"
                         f"classification dataset (cifar10, cifar100, svhn_cropped, "
                         f"fashion_mnist, ...).{hint}") from None
    features = builder.info.features
    if builder.info.supervised_keys != ("image", "label") or "label" not in features:
        raise ValueError(f"TFDS dataset {dataset!r} is not image classification (its "
                         f"supervised keys are {builder.info.supervised_keys}, not "
                         f"('image', 'label')).")
    if None in features["image"].shape:
        raise ValueError(f"TFDS dataset {dataset!r} has images of varying size "
                         f"{features['image'].shape}; only fixed-size images are supported.")
    _check_tfds_types(dataset, features)
    return builder


def _check_tfds_types(dataset: str, features) -> None:
    """The pipeline takes uint8 images (0..255, the scale of the model's standardisation) and
    class-index labels: refuse other image dtypes and labels that are not a ``ClassLabel``
    (e.g. floats) rather than casting them (a cast would wrap or truncate values silently)."""
    import tensorflow_datasets as tfds

    image_dtype = tf.as_dtype(features["image"].dtype)
    if image_dtype != tf.uint8:
        raise ValueError(f"TFDS dataset {dataset!r} has {image_dtype.name} images; only uint8 "
                         f"images (whole numbers 0..255) are supported.")
    if not isinstance(features["label"], tfds.features.ClassLabel):
        raise ValueError(f"TFDS dataset {dataset!r} has labels of type "
                         f"{type(features['label']).__name__} "
                         f"({tf.as_dtype(features['label'].dtype).name}); only class-index "
                         f"labels (a ClassLabel feature) are supported.")


def network_available(timeout: float = 3.0) -> bool:
    """Whether the TFDS download host answers within ``timeout`` seconds."""
    try:
        socket.create_connection(NETWORK_PROBE, timeout=timeout).close()
        return True
    except OSError:
        return False


def missing_data_message(dataset: str, data_dir: str | None) -> str:
    """The error an offline run gets without data: every way to point ``--data-dir`` at it, and
    how to download."""
    where = f"in --data-dir {data_dir}" if data_dir else "locally (no --data-dir given)"
    files = CIFAR_FILES.get(dataset)
    cifar = (f" (b) a folder holding the official archive {files['archive']}, (c) a folder "
             f"holding the extracted {files['folder']}/, or that folder itself;"
             if files else "")
    return (f"No data for {dataset!r} {where} and no network to download it. Pass --data-dir "
            f"pointing at (a) a TFDS data dir where {dataset} is prepared;{cifar} or train on "
            f"--dataset synthetic. To download on a machine with network: python -c \"import "
            f"tensorflow_datasets as tfds; tfds.builder('{dataset}', data_dir='DIR')"
            f".download_and_prepare()\" and copy DIR here.")


# ---------------------------------------------------------------------------------------------
# Reading


def read_splits(config: TrainConfig, source: Source) -> Splits:
    """The raw train and test splits from ``source``: synthetic, CIFAR pickles or TFDS."""
    if source.kind == "synthetic":
        return synthetic_splits(config)
    if source.kind == "pickle":
        return read_cifar_pickles(config.dataset, source.path, config.train_size,
                                  config.test_size)
    return read_tfds(config.dataset, source)


def read_cifar_pickles(dataset: str, path: Path, train_size: int | None = None,
                       test_size: int | None = None) -> Splits:
    """The CIFAR splits from the official python archive or its extracted batches (only the
    batches that hold the first ``train_size``/``test_size`` examples are read)."""
    arrays = read_arrays(dataset, path, train_size, test_size)
    return Splits(*(tf.data.Dataset.from_tensor_slices(arrays[s]) for s in ("train", "test")),
                  num_classes=CIFAR_FILES[dataset]["classes"], input_shape=(32, 32, 3))


def read_tfds(dataset: str, source: Source) -> Splits:
    """The train and test (else validation) splits of a TFDS dataset, prepared or downloaded as
    ``source`` says."""
    import tensorflow_datasets as tfds

    builder = tfds.builder(dataset, data_dir=source.data_dir)
    if source.download:
        builder.download_and_prepare()
    splits = builder.info.splits
    test_split = "test" if "test" in splits or "validation" not in splits else "validation"
    train, test = (builder.as_dataset(split=s, as_supervised=True) for s in ("train", test_split))
    features = builder.info.features
    return Splits(train, test, num_classes=features["label"].num_classes,
                  input_shape=tuple(features["image"].shape))


def synthetic_splits(config: TrainConfig) -> Splits:
    """A learnable 10-class task: each class has its own colour and stripe orientation and
    frequency; Gaussian noise on top. Seeded by ``config.seed``; train and test differ."""
    sizes = {split: getattr(config, f"{split}_size") or SYNTHETIC_SIZES[split]
             for split in ("train", "test")}
    check_synthetic_sizes(sizes)
    classes = 10
    rng = np.random.default_rng(config.seed)
    colours = rng.uniform(40, 215, size=(classes, 3))
    height, width, _ = SYNTHETIC_SHAPE
    rows, cols = np.mgrid[0:height, 0:width]
    angles = np.linspace(0, np.pi, classes, endpoint=False)
    waves = np.stack([np.sin((np.cos(a) * rows + np.sin(a) * cols) * (0.4 + 0.1 * (c % 3)))
                      for c, a in enumerate(angles)])
    arrays = []
    for split, seed_offset in (("train", 1), ("test", 2)):
        split_rng = np.random.default_rng([config.seed, seed_offset])
        labels = split_rng.integers(0, classes, sizes[split])
        images = (colours[labels][:, None, None, :] + 40 * waves[labels][..., None]
                  + split_rng.normal(0, 30, (sizes[split], *SYNTHETIC_SHAPE)))
        arrays.append((np.clip(images, 0, 255).astype(np.uint8), labels.astype(np.int64)))
    return Splits(*(tf.data.Dataset.from_tensor_slices(a) for a in arrays),
                  num_classes=classes, input_shape=SYNTHETIC_SHAPE)


def check_synthetic_sizes(sizes: dict) -> None:
    """Refuse synthetic splits (``{split: examples}``) larger than ``SYNTHETIC_MAX_EXAMPLES``,
    or that would not fit in the memory available (estimated with
    ``SYNTHETIC_BYTES_PER_EXAMPLE``), before any of it is allocated: a ``ValueError`` with the
    estimate and the limit, instead of a ``MemoryError`` (or the machine swapping) later."""
    for split, count in sizes.items():
        if count > SYNTHETIC_MAX_EXAMPLES:
            raise ValueError(
                f"--{split}-size {count}: synthetic data is made for at most "
                f"{SYNTHETIC_MAX_EXAMPLES:,} examples per split (this size would need about "
                f"{_bytes(count * SYNTHETIC_BYTES_PER_EXAMPLE)} of memory while made); use a "
                f"smaller --{split}-size.")
    needed = sum(sizes.values()) * SYNTHETIC_BYTES_PER_EXAMPLE
    available = available_memory()
    if available is not None and needed > available:
        raise ValueError(
            f"--train-size {sizes['train']} and --test-size {sizes['test']}: synthetic data "
            f"that large needs about {_bytes(needed)} of memory while made "
            f"({_bytes(SYNTHETIC_BYTES_PER_EXAMPLE)} per example), more than the "
            f"{_bytes(available)} available; at most "
            f"{available // SYNTHETIC_BYTES_PER_EXAMPLE:,} examples in all fit here.")


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation (Linux's ``MemAvailable``), or ``None``
    where the system does not say."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _bytes(count: int) -> str:
    """A byte count for a message: ``86 kB``, ``8.6 TB``, ``1,234 TB``."""
    for unit in ("B", "kB", "MB", "GB"):
        if count < 1000:
            return f"{count:.3g} {unit}"
        count /= 1000
    return f"{count:.3g} TB" if count < 1000 else f"{count:,.0f} TB"
