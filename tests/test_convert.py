"""The akamaster converter: a PyTorch CIFAR ResNet and the zoo model converted from its weights
give the same logits. Needs PyTorch (``requirements-torch.txt``); skipped without it."""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import keras_resnets  # noqa: E402
from keras_resnets import convert  # noqa: E402
from keras_resnets.pretrained import AKAMASTER_SETTINGS, AKAMASTER_STANDARDIZE  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location(
    "torch_cifar_resnet", REPO / "benchmarks" / "torch_cifar_resnet.py")
reference = importlib.util.module_from_spec(spec)
spec.loader.exec_module(reference)

FIXTURE = Path(__file__).parent / "fixtures" / "cifar10-test-first16.npz"


def random_reference(depth: int, seed: int = 0):
    """A PyTorch CIFAR ResNet with random weights and random BN statistics (not the identity
    that fresh BN layers would be), in inference mode."""
    torch.manual_seed(seed)
    model = reference.cifar_resnet(depth)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 1.5)
    return model.eval()


def save_like_akamaster(model, path):
    """A checkpoint as akamaster's trainer writes it: a DataParallel state dict."""
    torch.save({"state_dict": {f"module.{k}": v for k, v in model.state_dict().items()},
                "best_prec1": 0.0}, path)
    return path


@pytest.fixture(scope="module")
def images():
    with np.load(FIXTURE) as saved:
        return saved["images"]


@pytest.mark.parametrize("depth", [8, 20])
def test_converted_model_gives_the_pytorch_logits(depth, images, tmp_path):
    model = random_reference(depth, seed=depth)
    with torch.no_grad():
        expected = model(reference.preprocess(images)).numpy()
    zoo = convert.convert(save_like_akamaster(model, tmp_path / "model.th"), f"resnet{depth}")
    logits = np.asarray(zoo(images.astype("float32"), training=False))
    np.testing.assert_allclose(logits, expected, atol=1e-4)
    mean, std = keras_resnets.standardization_of(zoo)
    assert mean == pytest.approx(AKAMASTER_STANDARDIZE[0])
    assert std == pytest.approx(AKAMASTER_STANDARDIZE[1])


def test_the_papers_geometry_is_what_makes_them_equal(images, tmp_path):
    """The same weights in Keras's "same" geometry, or with option A's zeros first, give other
    logits: both settings matter."""
    model = random_reference(8)
    with torch.no_grad():
        expected = model(reference.preprocess(images)).numpy()
    zoo = convert.convert(save_like_akamaster(model, tmp_path / "model.th"), "resnet8")
    for change in ({"strided_padding": "same"}, {"pad_placement": "identity-first"}):
        other = keras_resnets.build("resnet8", standardize=AKAMASTER_STANDARDIZE,
                                    **{**AKAMASTER_SETTINGS, **change})
        other.set_weights(zoo.get_weights())
        logits = np.asarray(other(images.astype("float32"), training=False))
        assert np.abs(logits - expected).max() > 1e-2, change


def test_command_line_writes_weights_the_zoo_loads(images, tmp_path):
    model = random_reference(8, seed=3)
    source = save_like_akamaster(model, tmp_path / "resnet8.th")
    out = tmp_path / "resnet8.weights.h5"
    assert convert.main([str(source), "--model", "resnet8", "--out", str(out)]) == 0
    zoo = keras_resnets.build("resnet8", standardize=AKAMASTER_STANDARDIZE, **AKAMASTER_SETTINGS)
    zoo.load_weights(out)
    with torch.no_grad():
        expected = model(reference.preprocess(images)).numpy()
    np.testing.assert_allclose(zoo(images.astype("float32"), training=False), expected,
                               atol=1e-4)


def test_a_checkpoint_of_another_depth_is_refused(tmp_path, capsys):
    source = save_like_akamaster(random_reference(8), tmp_path / "resnet8.th")
    with pytest.raises(ValueError, match="no 'layer1.1.conv1.weight'"):
        convert.convert(source, "resnet14")  # the checkpoint is too shallow
    deeper = save_like_akamaster(random_reference(14), tmp_path / "resnet14.th")
    with pytest.raises(ValueError, match="no place in resnet8.*'layer1.1.bn1.bias'"):
        convert.convert(deeper, "resnet8")
    assert convert.main([str(source), "--model", "resnet14", "--out",
                         str(tmp_path / "x.weights.h5")]) == 1
    assert "error:" in capsys.readouterr().err


def test_without_pytorch_the_error_says_how_to_install_it(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(ImportError, match=r"keras-resnets\[torch\]"):
        convert.load_state_dict(tmp_path / "any.th")


def test_shipped_akamaster_weights_match_the_pytorch_originals_on_the_fixture(images):
    """With the original checkpoints at hand (AKAMASTER_CHECKPOINTS=folder), the shipped
    weights give the original model's logits; otherwise the stored ones
    (tests/test_pretrained.py) stand in."""
    import os

    folder = os.environ.get("AKAMASTER_CHECKPOINTS")
    if not folder:
        pytest.skip("set AKAMASTER_CHECKPOINTS to a folder of akamaster's .th files")
    for name, file in (("resnet20", "resnet20-12fca82f.th"), ("resnet56", "resnet56-4bfd9763.th")):
        original = reference.load_checkpoint(reference.cifar_resnet(int(name[6:])),
                                             Path(folder) / file)
        with torch.no_grad():
            expected = original(reference.preprocess(images)).numpy()
        zoo = keras_resnets.build(name, weights="akamaster")
        np.testing.assert_allclose(zoo(images.astype("float32"), training=False), expected,
                                   atol=1e-4)
