"""``trainers.array_fit``: the any-backend trainer writes its run folder, and sizes a budget."""

import json
import pickle

import numpy as np
import pytest

import keras_resnets
from trainers import array_fit

pytestmark = pytest.mark.slow  # pytest -m 'not slow' skips this module


def write_cifar(folder, train=64, test=32):
    batches = folder / "cifar-10-batches-py"
    batches.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name, size in (("data_batch_1", train), ("test_batch", test)):
        data = {b"data": rng.integers(0, 256, (size, 3072), dtype=np.uint8),
                b"labels": list(rng.integers(0, 10, size))}
        (batches / name).write_bytes(pickle.dumps(data, protocol=2))
    return folder


def test_a_short_run_writes_weights_that_build_with_its_standardisation(tmp_path, capsys):
    data_dir = write_cifar(tmp_path / "data")
    out = tmp_path / "run"
    assert array_fit.main(["--model", "preact8", "--data-dir", str(data_dir), "--out", str(out),
                           "--epochs", "2", "--batch-size", "32"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert (metrics["epochs"], metrics["iterations"], metrics["test_examples"]) == (2, 4, 32)
    assert len((out / "history.csv").read_text().splitlines()) == 3
    standardize = (metrics["standardize"]["mean"], metrics["standardize"]["std"])
    model = keras_resnets.build("preact8", standardize=standardize)
    model.load_weights(out / "preact8.weights.h5")
    assert json.loads((out / "config.json").read_text())["epochs"] == 2


def test_missing_data_exits_2_with_the_expected_layout(tmp_path, capsys):
    assert array_fit.main(["--data-dir", str(tmp_path), "--out", str(tmp_path / "run")]) == 2
    assert "cifar-10-batches-py" in capsys.readouterr().err


@pytest.mark.parametrize("seconds, expected", [(1000, 164), (100, 47), (1, 4)])
def test_epochs_for_budget_keep_the_recipe_bounds(seconds, expected):
    # 5 ms steps, 391 steps, a test split 1/5 of the training split.
    assert array_fit.epochs_for_budget(seconds, 0.005, 391, 0.2) == expected
