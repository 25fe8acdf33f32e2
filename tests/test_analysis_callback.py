"""analysis.callback: cosine and l2 ratio per block recorded during ``fit``, resume-safe."""

import keras
import pandas as pd
import pytest
import tensorflow as tf

import keras_resnets
from analysis.callback import COLUMNS, IterativeInferenceCallback

SHAPE = (8, 8, 3)


@pytest.fixture(scope="module")
def setup():
    images = tf.random.stateless_normal((16, *SHAPE), seed=[1, 1])
    labels = tf.random.stateless_uniform((16,), seed=[1, 2], maxval=10, dtype=tf.int32)
    data = tf.data.Dataset.from_tensor_slices((images, labels)).batch(8)
    model = keras_resnets.build("resnet8", input_shape=SHAPE)
    model.compile(optimizer=keras.optimizers.SGD(0.05),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model, data

@pytest.mark.slow
def test_records_every_epoch_of_a_fit_and_resumes_without_duplicates(setup, tmp_path):
    model, data = setup
    callback = IterativeInferenceCallback(batches=data.take(1), every=1, out_dir=tmp_path)
    model.fit(data, epochs=2, verbose=0, callbacks=[callback], shuffle=False)
    table = pd.read_csv(tmp_path / "iterative_inference.csv")
    assert list(table.columns) == list(COLUMNS)
    assert table.groupby("epoch")["block"].apply(list).to_dict() == {
        0: [0, 1, 2], 1: [0, 1, 2], 2: [0, 1, 2]}  # epoch 0: before training
    assert table["stage"].tolist()[:3] == [1, 2, 3]
    assert table["cosine"].between(-1, 1).all() and table["l2_ratio"].gt(0).all()
    assert not table[table["epoch"] == 0]["cosine"].equals(
        table[table["epoch"] == 2]["cosine"].reset_index(drop=True))  # training moved it
    assert (tmp_path / "iterative_inference.png").stat().st_size > 0

    resumed = IterativeInferenceCallback(batches=data.take(1), every=2, out_dir=tmp_path)
    model.fit(data, initial_epoch=2, epochs=4, verbose=0, callbacks=[resumed], shuffle=False)
    table = pd.read_csv(tmp_path / "iterative_inference.csv")
    assert sorted(table["epoch"].unique()) == [0, 1, 2, 4]  # 3 is not a multiple of every=2
    assert not table.duplicated(["epoch", "block"]).any()


def test_every_must_be_positive(tmp_path):
    with pytest.raises(ValueError, match="every must be a positive"):
        IterativeInferenceCallback(batches=None, every=0, out_dir=tmp_path)


def test_records_train_and_test_batches_per_epoch(setup, tmp_path):
    """Jastrzebski et al. report cosine and l2 ratio on both splits (Figs. 2-4)."""
    model, data = setup
    batches = {"train": data.take(1), "test": data.skip(1).take(1)}
    callback = IterativeInferenceCallback(batches=batches, every=1, out_dir=tmp_path)
    model.fit(data, epochs=1, verbose=0, callbacks=[callback], shuffle=False)
    table = pd.read_csv(tmp_path / "iterative_inference.csv")
    assert table.groupby(["epoch", "split"], sort=False)["block"].apply(list).to_dict() == {
        (0, "train"): [0, 1, 2], (0, "test"): [0, 1, 2],
        (1, "train"): [0, 1, 2], (1, "test"): [0, 1, 2]}
    train, test = (table[table["split"] == split]["cosine"].to_numpy() for split in batches)
    assert (train != test).all()  # other images, other numbers
    with pytest.raises(ValueError, match="at least one split"):
        IterativeInferenceCallback(batches={}, every=1, out_dir=tmp_path)


def test_a_file_from_before_splits_were_recorded_is_read_as_test(setup, tmp_path):
    model, data = setup
    pd.DataFrame({"epoch": [0, 0, 0], "block": [0, 1, 2], "stage": [1, 2, 3],
                  "cosine": [0.1, 0.2, 0.3], "l2_ratio": [1.0, 1.0, 1.0]}).to_csv(
        tmp_path / "iterative_inference.csv", index=False)
    callback = IterativeInferenceCallback(batches=data.take(1), every=1, out_dir=tmp_path)
    model.fit(data, epochs=1, verbose=0, callbacks=[callback], shuffle=False)
    table = pd.read_csv(tmp_path / "iterative_inference.csv")
    assert list(table.columns) == list(COLUMNS) and set(table["split"]) == {"test"}
    assert table["epoch"].tolist() == [0, 0, 0, 1, 1, 1]
    assert table["cosine"].tolist()[:3] == [0.1, 0.2, 0.3]  # kept, not measured again
