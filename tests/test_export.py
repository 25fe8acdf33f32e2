"""SavedModel export: TF Serving layout, uint8 in, probabilities out, same predictions as Keras;
a model that does not standardise its images itself is refused."""

import errno
import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_resnets
from saved_models import export as export_module
from saved_models.export import export, main, recover
from trainers import data as data_lib
from trainers import train as train_lib
from trainers.config import TrainConfig

pytestmark = pytest.mark.slow  # pytest -m 'not slow' skips this module

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


def trained_like(name, standardize=(MEAN, STD)):
    """A tiny zoo model whose BN statistics are not the initial ones, so inference mode shows;
    ``standardize=None``: one without the standardisation, taking standardised images."""
    model = keras_resnets.build(name, input_shape=SHAPE, standardize=standardize)
    rng = np.random.default_rng(0)
    for weight in model.non_trainable_weights:  # BN moving mean and variance
        weight.assign(rng.uniform(0.5, 1.5, weight.shape).astype("float32"))
    return model


def keras_probabilities(model, images):
    """Softmax of the model's logits on ``images`` as they are (raw: the model standardises)."""
    return keras.ops.convert_to_numpy(keras.ops.softmax(model(images, training=False)))


def run_folder(path, model, metrics):
    """What ``trainers.train`` leaves: final.keras, config.json, metrics.json."""
    path.mkdir(parents=True)
    model.save(path / "final.keras")
    TrainConfig(model=model.name, dataset="synthetic", out=str(path)).save(path / "config.json")
    (path / "metrics.json").write_text(json.dumps(metrics))
    return path


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Exported: a run folder (preact8) and a bare gated .keras file, both standardising their
    images themselves; expected probabilities computed with Keras."""
    root = tmp_path_factory.mktemp("export")
    images = np.random.default_rng(1).integers(0, 256, (8, *SHAPE), dtype=np.uint8)
    np.save(root / "images.npy", images)
    cases = {}

    plain = trained_like("preact8")
    run = run_folder(root / "runs" / "preact8", plain, {"standardize": {"mean": MEAN, "std": STD}})
    cases["plain"] = (export(run, root / "serving" / "preact8" / "1"),
                      keras_probabilities(plain, images))

    gated = trained_like("resnet8-gate-exclusive")
    gated.save(root / "gated.keras")
    cases["gated"] = (export(root / "gated.keras", root / "serving" / "gated" / "1"),
                      keras_probabilities(gated, images))
    return root, cases


def test_tf_serving_layout_and_manifest(exported):
    root, cases = exported
    version = root / "serving" / "preact8" / "1"
    assert (version / "saved_model.pb").is_file() and (version / "variables").is_dir()
    manifest = json.loads((version / "assets.extra" / "export.json").read_text())
    assert manifest == cases["plain"][0]
    np.testing.assert_allclose(manifest["mean"], MEAN, rtol=1e-6)
    np.testing.assert_allclose(manifest["std"], STD, rtol=1e-6)
    assert manifest["input_shape"] == list(SHAPE) and manifest["num_classes"] == 10
    assert not list((root / "serving" / "preact8").glob(".*")), "staging folder left behind"


def test_standalone_predictions_match_keras(exported):
    root, cases = exported
    names = {"plain": "preact8", "gated": "gated"}
    paths = [str(root / "serving" / name / "1") for name in names.values()]
    completed = subprocess.run(
        [sys.executable, "-c", LOAD_AND_PREDICT, str(root / "images.npy"), *paths],
        capture_output=True, text=True, timeout=180, check=True)
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    assert result["zoo_imported"] is False
    for path, case in zip(paths, names):
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


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A real (tiny) trainers.train run on synthetic 32x32 images, exported."""
    out = tmp_path_factory.mktemp("trained") / "run"
    config = TrainConfig(model="resnet8", dataset="synthetic", epochs=1, batch_size=32,
                         train_size=64, test_size=32, out=str(out))
    train_lib.train(config)
    export(out, out.parent / "serving" / "1")
    return config, out.parent / "serving" / "1"


def test_a_trained_run_serves_raw_uint8_images_as_its_keras_file(trained_run):
    """The run's final.keras standardises itself: the SavedModel only casts the images."""
    config, version = trained_run
    data = data_lib.load_data(config)
    raw = np.concatenate([images for images, _ in data.test]).astype(np.uint8)
    model = keras.saving.load_model(Path(config.out) / "final.keras")
    serve = tf.saved_model.load(str(version)).signatures["serving_default"]
    served = serve(images=tf.constant(raw))["probabilities"].numpy()
    np.testing.assert_allclose(served, keras_probabilities(model, raw), atol=1e-5)
    manifest = json.loads((version / "assets.extra" / "export.json").read_text())
    np.testing.assert_allclose(manifest["mean"], data.mean, rtol=1e-6)


def test_a_model_that_does_not_standardise_its_images_is_refused(tmp_path, capsys):
    """An export takes raw uint8 images: a model without its standardize layer would misread
    them, so it is refused (exit 2, one line saying how to get one that standardises), and
    nothing is written."""
    unstandardised = tmp_path / "model.keras"
    trained_like("preact8", standardize=None).save(unstandardised)
    out = tmp_path / "m" / "1"
    assert main([str(unstandardised), "--out", str(out)]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"error: {unstandardised} does not standardise its images (it has "
                            f"no standardize layer)")
    assert "keras_resnets.build(..., standardize=(mean, std))" in error
    assert error.count("\n") == 1 and not out.parent.exists()


def test_existing_version_needs_overwrite(exported):
    root, _ = exported
    out = root / "serving" / "gated" / "1"
    with pytest.raises(ValueError, match="already exists.*--overwrite"):
        export(root / "gated.keras", out)
    before = (out / "saved_model.pb").stat().st_mtime_ns
    export(root / "gated.keras", out, overwrite=True)
    assert (out / "saved_model.pb").stat().st_mtime_ns != before


@pytest.mark.parametrize("source, out, message", [
    ("missing", "m/1", "does not exist"),
    ("runs", "m/1", "has no final.keras"),
    ("images.npy", "m/1", "not a .keras file"),
    ("runs/preact8/final.keras", "m/latest", "numeric version"),
    ("runs/preact8/final.keras", "m/\uff11", "ASCII digits 0-9"),  # full-width 1
    ("runs/preact8/final.keras", "m/\u0663", "ASCII digits 0-9"),  # Arabic-Indic 3
])
def test_bad_input_is_refused(exported, tmp_path, source, out, message):
    root, _ = exported
    with pytest.raises(ValueError, match=message):
        export(root / source, tmp_path / out)
    assert not (tmp_path / out).exists()


def test_foreign_or_broken_keras_files_are_refused(tmp_path):
    inputs = keras.Input((4,))
    keras.Model(inputs, keras.layers.Dense(2)(inputs)).save(tmp_path / "dense.keras")
    with pytest.raises(ValueError, match="not a keras_resnets zoo model"):
        export(tmp_path / "dense.keras", tmp_path / "out" / "1")
    (tmp_path / "broken.keras").write_bytes(b"not a zip archive")
    with pytest.raises(ValueError, match="corrupt or unreadable"):
        export(tmp_path / "broken.keras", tmp_path / "out" / "1")


def test_cli_reports_bad_input_without_traceback(tmp_path, capsys):
    assert main([str(tmp_path / "missing.keras"), "--out", str(tmp_path / "m" / "1")]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: ") and "does not exist" in error
    assert error.count("\n") == 1 and "Traceback" not in error


def test_serving_refuses_images_of_another_shape(exported):
    """The signature advertises (-1, 16, 16, 3); other shapes must fail, not broadcast."""
    root, _ = exported
    serve = tf.saved_model.load(str(root / "serving" / "preact8" / "1")).signatures[
        "serving_default"]
    probabilities = serve(images=tf.zeros((2, *SHAPE), tf.uint8))["probabilities"]
    assert probabilities.shape == (2, 10)
    for shape in [(2, 28, 28, 1), (2, 16, 16, 1), (2, 32, 32, 3), (2, 8, 8, 3), SHAPE,
                  (1, 2, *SHAPE)]:
        with pytest.raises((ValueError, tf.errors.InvalidArgumentError),
                           match=r"expected shape \[\?,16,16,3\]"):
            serve(images=tf.zeros(shape, tf.uint8))


@pytest.mark.parametrize("damage", ["random bytes", "truncated", "flipped bytes"])
def test_corrupt_model_file_is_bad_input(exported, tmp_path, capsys, damage):
    """A damaged final.keras is named as such (Keras says "File not found"): exit 2, one line."""
    root, _ = exported
    whole = (root / "gated.keras").read_bytes()
    broken = {"random bytes": np.random.default_rng(2).bytes(len(whole)),
              "truncated": whole[:len(whole) // 2],
              "flipped bytes": whole[:len(whole) // 2] + bytes(64) + whole[len(whole) // 2 + 64:]}
    run = tmp_path / "run"
    run.mkdir()
    (run / "final.keras").write_bytes(broken[damage])
    code = main([str(run), "--out", str(tmp_path / "m" / "1")])
    error = capsys.readouterr().err
    assert code == 2, error
    assert error.startswith(f"error: {run / 'final.keras'} is a corrupt or unreadable .keras "
                            f"file (") and error.count("\n") == 1
    assert "File not found" not in error and "Traceback" not in error
    assert not (tmp_path / "m" / "1").exists()


class Killed(BaseException):
    """A kill: no ``except Exception`` or ``except OSError`` on the way runs."""


def served_model(version: Path) -> str:
    """The ``.keras`` file behind the complete SavedModel at ``version`` (fails if incomplete)."""
    assert (version / "saved_model.pb").is_file() and (version / "variables").is_dir()
    return json.loads((version / "assets.extra" / "export.json").read_text())["source"]


def crash_at(monkeypatch, step, error):
    """Make ``install`` raise ``error`` just before ``step``."""
    def hook(current):
        if current == step:
            raise error
    monkeypatch.setattr(export_module, "swap_hook", hook)


@pytest.fixture
def old_version(exported, tmp_path):
    """A served version 1 (the preact8 export) that an --overwrite with gated.keras replaces."""
    root, _ = exported
    out = tmp_path / "serving" / "m" / "1"
    shutil.copytree(root / "serving" / "preact8" / "1", out)
    return root, out, served_model(out)


@pytest.mark.parametrize("step", ["set old aside", "move new in", "delete old"])
def test_killed_overwrite_keeps_a_complete_version(old_version, monkeypatch, step):
    """Killed at any step of the swap, version 1 is old or new and whole once recovered; only
    between the two renames is it briefly away, at .old-1, and recovery puts it back."""
    root, out, old = old_version
    crash_at(monkeypatch, step, Killed())
    with pytest.raises(Killed):
        export(root / "gated.keras", out, overwrite=True)
    new = str(root / "gated.keras")
    if step == "move new in":
        assert not out.exists() and served_model(out.parent / ".old-1") == old
    else:
        assert served_model(out) == (old if step == "set old aside" else new)
    recover(out)
    assert served_model(out) == (new if step == "delete old" else old)
    assert not (out.parent / ".old-1").exists()


def test_next_run_restores_the_version_a_kill_set_aside(old_version, monkeypatch, capsys):
    root, out, old = old_version
    crash_at(monkeypatch, "move new in", Killed())
    with pytest.raises(Killed):
        export(root / "gated.keras", out, overwrite=True)
    assert main([str(root / "gated.keras"), "--out", str(out)]) == 2  # exists: no --overwrite
    captured = capsys.readouterr()
    assert f"Restored {out}" in captured.out and "already exists" in captured.err
    assert served_model(out) == old
    monkeypatch.undo()
    assert main([str(root / "gated.keras"), "--out", str(out), "--overwrite"]) == 0
    assert served_model(out) == str(root / "gated.keras")
    assert sorted(p.name for p in out.parent.iterdir()) == ["1"], "leftovers beside version 1"


@pytest.mark.parametrize("step", ["set old aside", "move new in"])
def test_failed_write_exits_1_and_keeps_the_old_version(old_version, monkeypatch, capsys, step):
    root, out, old = old_version
    crash_at(monkeypatch, step, OSError(errno.ENOSPC, "No space left on device"))
    assert main([str(root / "gated.keras"), "--out", str(out), "--overwrite"]) == 1
    error = capsys.readouterr().err
    assert error.startswith(f"error: writing {out} failed") and error.count("\n") == 1
    assert served_model(out) == old and not (out.parent / ".old-1").exists()


@pytest.mark.parametrize("where", ["version", "name"])
def test_a_file_where_a_version_folder_belongs_is_refused(exported, tmp_path, capsys, where):
    """A plain file at ``NAME/VERSION`` (or at ``NAME``) is refused before any work, even with
    --overwrite: exit 2, the file untouched, nothing set aside beside it."""
    root, _ = exported
    out = tmp_path / "serving" / "m" / "1"
    blocker = out if where == "version" else out.parent
    blocker.parent.mkdir(parents=True)
    blocker.write_text("not a model")
    assert main([str(root / "gated.keras"), "--out", str(out), "--overwrite"]) == 2
    error = capsys.readouterr().err
    assert error == f"error: {blocker} is a file, where --out {out} needs a folder; remove it or " \
                    f"choose another --out.\n"
    assert blocker.read_text() == "not a model"
    assert [p.name for p in blocker.parent.iterdir()] == [blocker.name]
