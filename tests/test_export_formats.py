"""TF Lite and ONNX exports: converted from the SavedModel, uint8 CIFAR-10 images in,
probabilities out, the Keras model's predictions (quantised TF Lite within a measured bound);
images of another shape refused; a manifest beside each file; bad flags refused before any work."""

import json
import sys
import warnings
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_resnets
from saved_models import export as export_module
from saved_models.export import export, main

FIXTURE = Path(__file__).parent / "fixtures" / "cifar10-test-first16.npz"
SHAPE = (32, 32, 3)
# The float conversions match Keras to float32 rounding (measured max 3e-7); dynamic-range
# quantisation (int8 weights) moved preact20's probabilities by at most 0.0026 on the fixture's
# 16 images and kept every top-1 class: the bound leaves about 4x room.
FLOAT_ATOL, DYNAMIC_ATOL = 1e-4, 0.01
WRONG_SHAPES = [(2, 32, 32, 1), (2, 28, 28, 3), (2, 16, 16, 3), (2, 64, 64, 3)]


def interpreter(path: Path):
    """A TF Lite interpreter of ``path`` (its deprecation warning, pointing to LiteRT, muted)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return tf.lite.Interpreter(model_path=str(path))


def tflite_probabilities(path: Path, images: np.ndarray) -> np.ndarray:
    """What the file's ``serving_default`` signature returns for ``images``."""
    return interpreter(path).get_signature_runner("serving_default")(images=images)[
        "probabilities"]


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """The shipped CIFAR-10 preact20 as a .keras file, the fixture's 16 real test images and
    the Keras model's probabilities for them."""
    root = tmp_path_factory.mktemp("formats")
    model = keras_resnets.build("preact20", weights="cifar10")
    model.save(root / "preact20.keras")
    images = np.load(FIXTURE)["images"]
    probabilities = keras.ops.convert_to_numpy(keras.ops.softmax(model(images, training=False)))
    return root, images, probabilities


@pytest.fixture(scope="module")
def float_tflite(pretrained):
    """A float32 .tflite exported over a file already there (``overwrite``)."""
    root, _, _ = pretrained
    out = root / "tflite" / "preact20.tflite"
    out.parent.mkdir()
    out.write_bytes(b"an old model")
    manifest = export(root / "preact20.keras", out, format="tflite", overwrite=True)
    return out, manifest


@pytest.fixture(scope="module")
def dynamic_tflite(pretrained):
    """A dynamic-range quantised .tflite, exported by the command line."""
    root, _, _ = pretrained
    out = root / "tflite" / "preact20-dynamic.tflite"
    code = main([str(root / "preact20.keras"), "--format", "tflite", "--quantize", "dynamic",
                 "--out", str(out)])
    assert code == 0
    return out


@pytest.fixture(scope="module")
def onnx_model(pretrained):
    """A .onnx exported by tf2onnx, and an onnxruntime session of it (skipped without the
    optional extra: pip install -r requirements-onnx.txt)."""
    pytest.importorskip("tf2onnx")
    onnxruntime = pytest.importorskip("onnxruntime")
    root, _, _ = pretrained
    out = root / "onnx" / "preact20.onnx"
    manifest = export(root / "preact20.keras", out, format="onnx")
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    return out, manifest, session


@pytest.mark.slow
def test_float_tflite_serves_the_keras_models_probabilities(pretrained, float_tflite):
    _, images, expected = pretrained
    out, _ = float_tflite
    served = tflite_probabilities(out, images)
    assert served.dtype == np.float32 and served.shape == (16, 10)
    np.testing.assert_allclose(served, expected, atol=FLOAT_ATOL)


@pytest.mark.slow
def test_dynamic_range_tflite_keeps_top1_within_a_measured_bound(pretrained, float_tflite,
                                                                  dynamic_tflite):
    _, images, expected = pretrained
    served = tflite_probabilities(dynamic_tflite, images)
    np.testing.assert_array_equal(served.argmax(axis=1), expected.argmax(axis=1))
    np.testing.assert_allclose(served, expected, atol=DYNAMIC_ATOL)
    assert dynamic_tflite.stat().st_size < float_tflite[0].stat().st_size / 3, "int8 weights"


@pytest.mark.slow
def test_tflite_manifest_records_format_source_and_quantisation(pretrained, float_tflite,
                                                                dynamic_tflite):
    root, _, _ = pretrained
    out, returned = float_tflite
    manifests = {path.name: json.loads(path.with_name(path.name + ".json").read_text())
                 for path in (out, dynamic_tflite)}
    assert manifests[out.name] == returned
    for name, quantization in [(out.name, "none"), (dynamic_tflite.name, "dynamic")]:
        manifest = manifests[name]
        assert manifest["format"] == "tflite" and manifest["quantization"] == quantization
        assert manifest["source"] == str(root / "preact20.keras")
        assert manifest["input_shape"] == list(SHAPE)
        assert manifest["mean"] == pytest.approx(list(keras_resnets.standardization_of(
            keras.saving.load_model(root / "preact20.keras"))[0]))
    assert sorted(p.name for p in out.parent.iterdir()) == sorted(
        [out.name, out.name + ".json", dynamic_tflite.name, dynamic_tflite.name + ".json"]), \
        "a staged .partial file left behind"


@pytest.mark.slow
def test_tflite_signature_runner_refuses_images_of_another_shape(pretrained, float_tflite,
                                                                 dynamic_tflite):
    """The runner resizes its input to any images: the graph's own check must refuse them,
    and the runner must still serve right images afterwards."""
    _, images, expected = pretrained
    for path in (float_tflite[0], dynamic_tflite):
        runner = interpreter(path).get_signature_runner()
        for shape in WRONG_SHAPES:
            with pytest.raises(RuntimeError, match=r"CONCATENATION\) failed to prepare"):
                runner(images=np.zeros(shape, np.uint8))
        served = runner(images=images[:3])["probabilities"]
        np.testing.assert_allclose(served, expected[:3], atol=DYNAMIC_ATOL)


@pytest.mark.slow
def test_tflite_interpreter_refuses_images_of_another_shape(pretrained, float_tflite):
    """Only the batch dimension may change: set_tensor, a strict resize and, after a resize
    that is not strict, invoke refuse the rest."""
    _, images, expected = pretrained
    tflite = interpreter(float_tflite[0])
    detail = tflite.get_input_details()[0]
    assert detail["dtype"] == np.uint8 and list(detail["shape_signature"]) == [-1, *SHAPE]
    tflite.resize_tensor_input(detail["index"], [4, *SHAPE], strict=True)
    tflite.allocate_tensors()
    for shape in WRONG_SHAPES:
        with pytest.raises(ValueError, match="Dimension mismatch"):
            tflite.set_tensor(detail["index"], np.zeros((4, *shape[1:]), np.uint8))
        with pytest.raises(RuntimeError, match="only allows mutating unknown dimensions"):
            tflite.resize_tensor_input(detail["index"], list(shape), strict=True)
    tflite.set_tensor(detail["index"], images[:4])
    tflite.invoke()
    served = tflite.get_tensor(tflite.get_output_details()[0]["index"])
    np.testing.assert_allclose(served, expected[:4], atol=FLOAT_ATOL)
    tflite.resize_tensor_input(detail["index"], list(WRONG_SHAPES[0]))
    with pytest.raises(RuntimeError, match=r"CONCATENATION\) failed to prepare"):
        tflite.allocate_tensors()
        tflite.set_tensor(detail["index"], np.zeros(WRONG_SHAPES[0], np.uint8))
        tflite.invoke()


@pytest.mark.slow
def test_onnx_serves_the_keras_models_probabilities(pretrained, onnx_model):
    root, images, expected = pretrained
    out, manifest, session = onnx_model
    [inputs], [outputs] = session.get_inputs(), session.get_outputs()
    assert (inputs.name, inputs.type, inputs.shape[1:]) == ("images", "tensor(uint8)", [*SHAPE])
    assert (outputs.name, outputs.type) == ("probabilities", "tensor(float)")
    served = session.run(["probabilities"], {"images": images})[0]
    np.testing.assert_allclose(served, expected, atol=FLOAT_ATOL)
    assert json.loads(out.with_name("preact20.onnx.json").read_text()) == manifest
    assert manifest["format"] == "onnx" and manifest["quantization"] == "none"
    assert manifest["source"] == str(root / "preact20.keras") and manifest["onnx_opset"] == 17


@pytest.mark.slow
@pytest.mark.parametrize("shape, dtype", [(shape, np.uint8) for shape in WRONG_SHAPES] + [
    (SHAPE, np.uint8), ((1, 2, *SHAPE), np.uint8), ((2, *SHAPE), np.float32)])
def test_onnxruntime_refuses_images_of_another_shape_or_dtype(onnx_model, shape, dtype):
    import onnxruntime

    _, _, session = onnx_model
    with pytest.raises(onnxruntime.capi.onnxruntime_pybind11_state.InvalidArgument,
                       match="invalid dimensions|Invalid rank|Unexpected input data type"):
        session.run(None, {"images": np.zeros(shape, dtype)})


def test_a_failed_conversion_exits_1_and_keeps_the_old_file(tmp_path, monkeypatch, capsys):
    source = tmp_path / "preact8.keras"  # small: its SavedModel is written before the failure
    keras_resnets.build("preact8", input_shape=(16, 16, 3),
                        standardize=((120.0,) * 3, (60.0,) * 3)).save(source)
    out = tmp_path / "preact8.tflite"
    out.write_bytes(b"the old model")

    def fail(saved_model, quantize):
        raise tf.errors.InvalidArgumentError(None, None, "an op the converter lacks")

    monkeypatch.setitem(export_module.CONVERTERS, "tflite", fail)
    code = main([str(source), "--format", "tflite", "--out", str(out), "--overwrite"])
    error = capsys.readouterr().err
    assert code == 1 and error == (f"error: converting {source} to tflite failed: an op the "
                                   f"converter lacks\n")
    assert out.read_bytes() == b"the old model"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["preact8.keras", "preact8.tflite"]


def test_onnx_without_tf2onnx_exits_2_saying_how_to_install(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "tf2onnx", None)  # import tf2onnx raises ImportError
    out = tmp_path / "model.onnx"
    assert main([str(tmp_path / "missing.keras"), "--format", "onnx", "--out", str(out)]) == 2
    assert capsys.readouterr().err == (
        "error: --format onnx needs the optional tf2onnx, which is not installed: pip install -r "
        "requirements-onnx.txt (or pip install -e '.[onnx]').\n")
    assert not out.exists()


@pytest.mark.parametrize("out, flags, message", [
    ("m/1", {"format": "tflite"}, r"must end in \.tflite"),
    ("model.onnx", {"format": "tflite"}, r"must end in \.tflite"),
    ("model.tflite", {"format": "onnx"}, r"must end in \.onnx"),
    ("model.tflite", {"format": "tflite", "quantize": "int8"}, "--quantize must be one of"),
    ("model.onnx", {"format": "onnx", "quantize": "dynamic"}, "for --format tflite only"),
    ("m/1", {"quantize": "dynamic"}, "for --format tflite only"),
    ("model.pb", {"format": "pb"}, "--format must be one of saved_model, tflite, onnx"),
    ("existing.tflite", {"format": "tflite"}, "already exists; pass --overwrite"),
    ("folder.tflite", {"format": "tflite", "overwrite": True}, "is a folder"),
    ("existing.tflite/model.tflite", {"format": "tflite"}, "is a file, where --out"),
])
def test_bad_file_exports_are_refused_before_any_work(tmp_path, out, flags, message):
    """The source does not exist: each refusal must come before it is looked at."""
    (tmp_path / "existing.tflite").write_bytes(b"a model")
    (tmp_path / "folder.tflite").mkdir()
    before = sorted(tmp_path.rglob("*"))
    with pytest.raises(ValueError, match=message):
        export(tmp_path / "missing.keras", tmp_path / out, **flags)
    assert sorted(tmp_path.rglob("*")) == before


def test_a_model_that_does_not_standardise_its_images_is_refused_before_converting(tmp_path):
    """The TF Lite file takes raw uint8 images: a model without its standardize layer is
    refused, and nothing is written."""
    keras_resnets.build("preact8", input_shape=(16, 16, 3)).save(tmp_path / "model.keras")
    with pytest.raises(ValueError, match="does not standardise its images"):
        export(tmp_path / "model.keras", tmp_path / "model.tflite", format="tflite")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.keras"]
