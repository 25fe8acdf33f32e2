"""The input pipeline: synthetic data, CIFAR pickles, TFDS (mocked), augmentation, errors."""

import pickle
import re
import tarfile
from types import SimpleNamespace

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from trainers import data as data_lib
from trainers.config import TrainConfig


def config(**settings):
    return TrainConfig(**{"model": "resnet8", "dataset": "synthetic", "batch_size": 16,
                          "train_size": 64, "test_size": 40, **settings})


@pytest.fixture(scope="module")
def synthetic():
    return data_lib.load_data(config())


def test_synthetic_data_shapes_counts_and_batches(synthetic):
    assert (synthetic.num_classes, synthetic.input_shape) == (10, (32, 32, 3))
    assert (synthetic.train_examples, synthetic.test_examples) == (64, 40)
    train_batches = list(synthetic.train)
    assert len(train_batches) == 64 // 16
    images, labels = train_batches[0]
    assert images.shape == (16, 32, 32, 3) and images.dtype == tf.float32
    assert labels.dtype == tf.int64 and 0 <= int(tf.reduce_min(labels))
    assert [len(y) for _, y in synthetic.test] == [16, 16, 8]  # test keeps its remainder


def test_images_are_raw_and_the_statistics_are_the_training_splits(synthetic):
    """The model standardises (``standardize=(data.mean, data.std)``): the pipeline does not."""
    assert len(synthetic.mean) == len(synthetic.std) == 3
    assert all(0 < m < 255 for m in synthetic.mean) and all(s > 1 for s in synthetic.std)
    test = np.concatenate([x.numpy().reshape(-1, 3) for x, _ in synthetic.test])
    assert test.min() >= 0 and test.max() <= 255 and (test == np.round(test)).all()
    # The test split is not augmented: standardised, it averages about 0 with unit spread.
    standardised = (test - np.float32(synthetic.mean)) / np.float32(synthetic.std)
    np.testing.assert_allclose(standardised.mean(0), 0, atol=0.25)
    np.testing.assert_allclose(standardised.std(0), 1, atol=0.25)
    plain = data_lib.load_data(config(augment=False))  # all 64 training images, as they are
    train = np.concatenate([x.numpy().reshape(-1, 3) for x, _ in plain.train])
    np.testing.assert_allclose(train.mean(0), synthetic.mean, rtol=1e-5)
    np.testing.assert_allclose(train.std(0), synthetic.std, rtol=1e-4)


def test_synthetic_data_is_seeded():
    first = data_lib.synthetic_splits(config(seed=3))
    again = data_lib.synthetic_splits(config(seed=3))
    other = data_lib.synthetic_splits(config(seed=4))
    images = [next(iter(s.train.batch(8)))[0].numpy() for s in (first, again, other)]
    np.testing.assert_array_equal(images[0], images[1])
    assert not np.array_equal(images[0], images[2])


def test_augmentation_pads_with_the_fill_colour_crops_and_flips():
    image = np.arange(1, 8 * 8 * 2 + 1, dtype=np.float32).reshape(8, 8, 2)
    fill = np.float32([-0.5, 300.25])
    padded = np.pad(image, [(4, 4), (4, 4), (0, 0)]) + np.pad(
        np.zeros((8, 8, 1), np.float32), [(4, 4), (4, 4), (0, 0)], constant_values=1) * fill
    windows = [padded[i:i + 8, j:j + 8] for i in range(9) for j in range(9)]
    kinds = []
    batch, labels = data_lib.augment(tf.constant(np.stack([image] * 40)), tf.range(40),
                                     tf.constant([0, 1], tf.int64), fill=fill)
    np.testing.assert_array_equal(labels, np.arange(40))
    for out in batch.numpy():
        plain = any(np.array_equal(out, w) for w in windows)
        flipped = any(np.array_equal(out[:, ::-1], w) for w in windows)
        assert plain or flipped  # every output is a crop of the padded image
        kinds.append((plain, flipped, (out == fill).all(axis=-1).any()))
    plain, flipped, padding = map(any, zip(*kinds))
    assert plain and flipped and padding


def test_mean_padding_then_standardising_is_standardising_then_zero_padding(synthetic):
    """He et al. pad standardised images with zeros; the pipeline pads raw images with the
    training mean and the model standardises after: the same numbers, to float rounding."""
    import keras_resnets

    raw, _ = next(iter(synthetic.test))
    mean, std = np.float32(synthetic.mean), np.float32(synthetic.std)
    seed = tf.constant([3, 4], tf.int64)
    before, _ = data_lib.augment((raw - mean) / std, None, seed, fill=np.zeros(3, np.float32))
    after, _ = data_lib.augment(raw, None, seed, fill=mean)
    np.testing.assert_array_equal((after.numpy() - mean) / std, before.numpy())  # bit-exact
    standardize = keras_resnets.build("resnet8", standardize=(synthetic.mean, synthetic.std))
    in_model = standardize.get_layer("standardize")(after)
    np.testing.assert_allclose(in_model, before, rtol=1e-6, atol=1e-6)
    assert (in_model.numpy() == 0).all(axis=-1).any()  # the padding: exactly the mean


def test_each_epoch_depends_only_on_the_seed_and_its_number():
    """A run resumed at epoch 2 must see exactly the batches an uninterrupted run sees."""
    def epochs(first, last, seed=0):
        data = data_lib.load_data(config(seed=seed))
        return [x.numpy() for x, _ in data.epochs(first, last)]

    whole, resumed = epochs(0, 3), epochs(2, 3)
    assert len(whole) == 3 * 4 and len(resumed) == 4
    for a, b in zip(whole[8:], resumed):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(whole[0], whole[4])  # epochs differ in order and augmentation
    assert not np.array_equal(whole[0], epochs(0, 1, seed=1)[0])


def _cifar_batch(count, label_key, offset):
    """``count`` images whose red plane is ``offset + i``, green 1, blue 2; labels i % 10."""
    planes = np.zeros((count, 3, 32 * 32), np.uint8)
    planes[:, 0] = (offset + np.arange(count))[:, None]
    planes[:, 1], planes[:, 2] = 1, 2
    return pickle.dumps({b"data": planes.reshape(count, -1),
                         label_key: [i % 10 for i in range(count)]})


def write_cifar(folder, dataset):
    files = data_lib.CIFAR_FILES[dataset]
    folder.mkdir(parents=True)
    names = (["data_batch_1", "data_batch_2", "data_batch_10"] if dataset == "cifar10"
             else ["train"])
    for i, name in enumerate(names):
        (folder / name).write_bytes(_cifar_batch(6, files["labels"], offset=10 * i))
    (folder / files["test"]).write_bytes(_cifar_batch(4, files["labels"], offset=100))
    (folder / "batches.meta").write_bytes(pickle.dumps({}))
    return len(names) * 6


def _check_cifar(dataset, data_dir, train_count):
    source = data_lib.locate(dataset, str(data_dir))
    assert source.kind == "pickle"
    loaded = data_lib.load_data(config(dataset=dataset, data_dir=str(data_dir),
                                       train_size=None, test_size=None, batch_size=2,
                                       augment=False))
    assert (loaded.train_examples, loaded.test_examples) == (train_count, 4)
    assert loaded.num_classes == data_lib.CIFAR_FILES[dataset]["classes"]
    splits = data_lib.read_splits(config(dataset=dataset), source)
    images, labels = next(iter(splits.train.batch(100)))
    assert images.shape == (train_count, 32, 32, 3)
    # Channel planes become the last axis; batches are read in numeric order (2 before 10).
    np.testing.assert_array_equal(images[:, 5, 7, 0], [10 * (i // 6) + i % 6
                                                      for i in range(train_count)])
    assert (images[..., 1].numpy() == 1).all() and (images[..., 2].numpy() == 2).all()
    assert labels.numpy().tolist() == [i % 10 for i in range(6)] * (train_count // 6)


@pytest.mark.parametrize("dataset", ["cifar10", "cifar100"])
def test_cifar_batches_folder_parent_or_itself(tmp_path, dataset):
    folder = tmp_path / data_lib.CIFAR_FILES[dataset]["folder"]
    train_count = write_cifar(folder, dataset)
    _check_cifar(dataset, tmp_path, train_count)  # the folder holding cifar-*-py/
    _check_cifar(dataset, folder, train_count)  # that folder itself


def test_cifar_official_archive(tmp_path):
    folder = tmp_path / "extract" / "cifar-10-batches-py"
    train_count = write_cifar(folder, "cifar10")
    archive = tmp_path / "manual" / "cifar-10-python.tar.gz"
    archive.parent.mkdir()
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname="cifar-10-batches-py")
    assert data_lib.locate("cifar10", str(archive.parent)).path == archive
    _check_cifar("cifar10", archive.parent, train_count)


def test_unknown_dataset_suggests_names():
    with pytest.raises(ValueError, match="Unknown dataset 'cifar1'.*Did you mean.*cifar10"):
        data_lib.locate("cifar1", None)
    with pytest.raises(ValueError, match="not image classification"):
        data_lib.locate("imdb_reviews", None)


def test_missing_data_without_network_fails_at_once(tmp_path, monkeypatch):
    monkeypatch.setattr(data_lib, "network_available", lambda timeout=3.0: False)
    with pytest.raises(ValueError) as error:
        data_lib.locate("cifar10", str(tmp_path))
    message = str(error.value)
    for expected in ("--data-dir", "cifar-10-python.tar.gz", "cifar-10-batches-py",
                     "--dataset synthetic", "download_and_prepare"):
        assert expected in message


@pytest.mark.parametrize("dataset, shape, classes", [("cifar10", (32, 32, 3), 10),
                                                     ("fashion_mnist", (28, 28, 1), 10)])
def test_tfds_datasets_through_mock_data(monkeypatch, dataset, shape, classes):
    monkeypatch.setattr(data_lib, "network_available", lambda timeout=3.0: True)
    with tfds.testing.mock_data(num_examples=24):
        loaded = data_lib.load_data(config(dataset=dataset, train_size=20, test_size=None))
    assert (loaded.input_shape, loaded.num_classes) == (shape, classes)
    assert (loaded.train_examples, loaded.test_examples) == (20, 24)
    images, _ = next(iter(loaded.train))
    assert images.shape == (16, *shape)


def test_fewer_examples_than_a_batch_is_an_error():
    with pytest.raises(ValueError, match="fewer than one batch of 128"):
        data_lib.load_data(config(batch_size=128))


def _fake_tfds_builder(monkeypatch, image, label):
    """``tfds.builder`` answering with a prepared image-classification dataset of these
    features."""
    info = SimpleNamespace(supervised_keys=("image", "label"),
                           features={"image": image, "label": label})
    builder = SimpleNamespace(info=info, is_prepared=lambda: True, data_dir_root="/nowhere")
    monkeypatch.setattr(tfds, "builder", lambda name, data_dir=None: builder)


@pytest.mark.parametrize("image, label, message", [
    (tfds.features.Image(shape=(8, 8, 1), dtype=np.float32), tfds.features.ClassLabel(
        num_classes=3), "has float32 images; only uint8 images (whole numbers 0..255)"),
    (tfds.features.Image(shape=(8, 8, 3), dtype=np.uint16), tfds.features.ClassLabel(
        num_classes=3), "has uint16 images"),
    (tfds.features.Image(shape=(8, 8, 3)), tfds.features.Tensor(shape=(), dtype=np.float32),
     "has labels of type Tensor (float32); only class-index labels"),
])
def test_tfds_images_that_are_not_uint8_or_labels_that_are_not_classes_are_refused(
        monkeypatch, image, label, message):
    _fake_tfds_builder(monkeypatch, image, label)
    with pytest.raises(ValueError, match=re.escape(f"TFDS dataset 'floaty' {message}")):
        data_lib.locate("floaty", None)


def test_uint8_tfds_images_with_class_labels_are_accepted(monkeypatch):
    _fake_tfds_builder(monkeypatch, tfds.features.Image(shape=(8, 8, 3)),
                       tfds.features.ClassLabel(num_classes=3))
    assert data_lib.locate("floaty", None) == data_lib.Source("tfds")


@pytest.mark.parametrize("sizes, message", [
    ({"train_size": 100_000_000}, "--train-size 100000000: synthetic data is made for at most "
                                  "1,000,000 examples per split (this size would need about "
                                  "8.6 TB of memory while made)"),
    ({"test_size": 2_000_000}, "--test-size 2000000: synthetic data is made for at most"),
])
def test_synthetic_data_beyond_what_the_generator_makes_is_refused(sizes, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        data_lib.synthetic_splits(config(**sizes))


def test_synthetic_data_beyond_the_available_memory_is_refused_before_allocating(monkeypatch):
    monkeypatch.setattr(data_lib, "available_memory", lambda: 10**8)  # 100 MB
    with pytest.raises(ValueError, match=re.escape(
            "--train-size 2000 and --test-size 40: synthetic data that large needs about "
            "175 MB of memory while made (86 kB per example), more than the 100 MB available; "
            "at most 1,162 examples in all fit here.")):
        data_lib.synthetic_splits(config(train_size=2000))
    assert data_lib.synthetic_splits(config(train_size=1000)).input_shape == (32, 32, 3)
