"""SavedModel export: TF Serving layout, uint8 in, probabilities out, same predictions as Keras."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest

import keras_resnets
from saved_models.export import CIFAR10_MEAN, export, main
from trainers.config import TrainConfig

SHAPE = (16, 16, 3)
MEAN, STD = (120.0, 110.0, 100.0), (60.0, 50.0, 70.0)
SAVED_MODEL_CLI = Path(sys.executable).with_name("saved_model_cli")

# Runs in a fresh interpreter that never imports the zoo: the SavedModel must stand alone.
LOAD_AND_PREDICT = textwrap.dedent("""
    import json, sys
    import numpy as np
    import tensorflow as tf
    images = np.load(sys.argv[1])
    result = {}
    for path in sys.argv[2:]:
        serve = tf.saved_model.load(path).signatures["serving_default"]
        result[path] = serve(images=tf.constant(images))["probabilities"].numpy().tolist()
    result["zoo_imported"] = "keras_resnets" in sys.modules
    print(json.dumps(result))
""")


def trained_like(name):
    """A tiny zoo model whose BN statistics are not the initial ones, so inference mode shows."""
    model = keras_resnets.build(name, input_shape=SHAPE)
    rng = np.random.default_rng(0)
    for weight in model.non_trainable_weights:  # BN moving mean and variance
        weight.assign(rng.uniform(0.5, 1.5, weight.shape).astype("float32"))
    return model


def keras_probabilities(model, images, mean, std):
    x = (images.astype("float32") - np.float32(mean)) / np.float32(std)
    return keras.ops.convert_to_numpy(keras.ops.softmax(model(x, training=False)))


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A run folder (plain preact8, stats in normalization.json) and a bare gated .keras file
    (stats by flag), both exported; expected probabilities computed with Keras."""
    root = tmp_path_factory.mktemp("export")
    images = np.random.default_rng(1).integers(0, 256, (8, *SHAPE), dtype=np.uint8)
    np.save(root / "images.npy", images)
    cases = {}

    plain = trained_like("preact8")
    run = root / "runs" / "preact8"
    run.mkdir(parents=True)
    plain.save(run / "final.keras")
    TrainConfig(model="preact8", dataset="synthetic", out=str(run)).save(run / "config.json")
    (run / "normalization.json").write_text(json.dumps({"mean": MEAN, "std": STD}))
    cases["plain"] = (export(run, root / "serving" / "preact8" / "1"),
                      keras_probabilities(plain, images, MEAN, STD))

    gated = trained_like("resnet8-gate-exclusive")
    gated.save(root / "gated.keras")
    cases["gated"] = (export(root / "gated.keras", root / "serving" / "gated" / "1",
                             mean=MEAN, std=STD),
                      keras_probabilities(gated, images, MEAN, STD))
    return root, cases


def test_tf_serving_layout_and_manifest(exported):
    root, cases = exported
    version = root / "serving" / "preact8" / "1"
    assert (version / "saved_model.pb").is_file() and (version / "variables").is_dir()
    manifest = json.loads((version / "assets.extra" / "export.json").read_text())
    assert manifest == cases["plain"][0]
    assert manifest["mean"] == list(MEAN) and manifest["std"] == list(STD)
    assert manifest["normalization_source"].endswith("normalization.json")
    assert manifest["input_shape"] == list(SHAPE) and manifest["num_classes"] == 10
    assert not list((root / "serving" / "preact8").glob(".*")), "staging folder left behind"


def test_standalone_predictions_match_keras(exported):
    root, cases = exported
    paths = [str(root / "serving" / name / "1") for name in ("preact8", "gated")]
    completed = subprocess.run(
        [sys.executable, "-c", LOAD_AND_PREDICT, str(root / "images.npy"), *paths],
        capture_output=True, text=True, timeout=180, check=True)
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    assert result["zoo_imported"] is False
    for path, case in zip(paths, ("plain", "gated")):
        served = np.array(result[path])
        np.testing.assert_allclose(served, cases[case][1], atol=1e-5)
        np.testing.assert_allclose(served.sum(axis=1), 1.0, atol=1e-5)


def test_saved_model_cli_reads_signature(exported):
    root, _ = exported
    completed = subprocess.run(
        [str(SAVED_MODEL_CLI), "show", "--all", "--dir", str(root / "serving" / "gated" / "1")],
        capture_output=True, text=True, timeout=180)
    assert completed.returncode == 0, completed.stderr
    for expected in ("serving_default", "inputs['images']", "DT_UINT8", "(-1, 16, 16, 3)",
                     "outputs['probabilities']"):
        assert expected in completed.stdout


def test_bare_keras_file_defaults_to_cifar10_statistics(exported, tmp_path):
    root, _ = exported
    manifest = export(root / "gated.keras", tmp_path / "gated" / "7")
    assert manifest["mean"] == list(CIFAR10_MEAN)
    assert "CIFAR-10" in manifest["normalization_source"]


def test_statistics_recomputed_from_the_run_config(exported, tmp_path):
    """The trainer stores no statistics: export recomputes them from the run's config.json."""
    from trainers.data import load_data

    root, _ = exported
    run = tmp_path / "run"
    run.mkdir()
    (run / "final.keras").write_bytes((root / "runs" / "preact8" / "final.keras").read_bytes())
    config = TrainConfig(model="preact8", dataset="synthetic", train_size=64, test_size=32,
                         batch_size=32, seed=3, out=str(run))
    config.save(run / "config.json")
    manifest = export(run, tmp_path / "served" / "1")
    data = load_data(config)
    assert manifest["normalization_source"] == f"recomputed from {run / 'config.json'}"
    np.testing.assert_allclose(manifest["mean"], data.mean)
    np.testing.assert_allclose(manifest["std"], data.std)


def test_existing_version_needs_overwrite(exported):
    root, _ = exported
    out = root / "serving" / "gated" / "1"
    with pytest.raises(ValueError, match="already exists.*--overwrite"):
        export(root / "gated.keras", out, mean=MEAN, std=STD)
    before = (out / "saved_model.pb").stat().st_mtime_ns
    export(root / "gated.keras", out, mean=MEAN, std=STD, overwrite=True)
    assert (out / "saved_model.pb").stat().st_mtime_ns != before


@pytest.mark.parametrize("source, out, flags, message", [
    ("missing", "m/1", {}, "does not exist"),
    ("runs", "m/1", {}, "has no final.keras"),
    ("images.npy", "m/1", {}, "not a .keras file"),
    ("runs/preact8/final.keras", "m/latest", {}, "numeric version"),
    ("runs/preact8/final.keras", "m/1", {"mean": MEAN}, "both --mean and --std"),
    ("runs/preact8/final.keras", "m/1", {"mean": (1.0,), "std": (1.0,)}, "3 channels"),
    ("runs/preact8/final.keras", "m/1", {"mean": MEAN, "std": (1.0, 0.0, 1.0)}, "positive"),
])
def test_bad_input_is_refused(exported, tmp_path, source, out, flags, message):
    root, _ = exported
    with pytest.raises(ValueError, match=message):
        export(root / source, tmp_path / out, **flags)
    assert not (tmp_path / out).exists()


def test_foreign_or_broken_keras_files_are_refused(tmp_path):
    inputs = keras.Input((4,))
    keras.Model(inputs, keras.layers.Dense(2)(inputs)).save(tmp_path / "dense.keras")
    with pytest.raises(ValueError, match="not a keras_resnets zoo model"):
        export(tmp_path / "dense.keras", tmp_path / "out" / "1", mean=MEAN, std=STD)
    (tmp_path / "broken.keras").write_bytes(b"not a zip archive")
    with pytest.raises(ValueError, match="not a loadable .keras model"):
        export(tmp_path / "broken.keras", tmp_path / "out" / "1", mean=MEAN, std=STD)


def test_cli_reports_bad_input_without_traceback(tmp_path, capsys):
    with pytest.raises(SystemExit, match="error: .*does not exist"):
        main([str(tmp_path / "missing.keras"), "--out", str(tmp_path / "m" / "1")])
