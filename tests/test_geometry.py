"""Convolution geometry: strided convs pad symmetrically as the papers' code (PyTorch's
``padding=1``), option A's zero channels go first or centred, and everything made before the
setting keeps Keras's ``"same"`` padding (layer configs, shipped weights, run configs)."""

import json
import zipfile
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest

import keras_resnets
from keras_resnets import ResidualUnit, ZeroPadShortcut
from keras_resnets.registry import resolve

REPO = Path(__file__).resolve().parents[1]
RNG = np.random.default_rng(7)
X = RNG.normal(size=(2, 8, 8, 4)).astype("float32")


def strided_conv(unit):
    """The unit's first branch conv (the strided 3x3) and the layer before it."""
    index = next(i for i, layer in enumerate(unit.branch_layers)
                 if isinstance(layer, keras.layers.Conv2D))
    return unit.branch_layers[index], unit.branch_layers[index - 1] if index else None


def conv_by_hand(x, kernel, offset):
    """A 3x3 stride-2 conv of ``x`` (N, H, W, C) whose output (i, j) reads input rows
    ``2i + offset .. 2i + offset + 2`` (and columns likewise), zeros outside the map."""
    n, h, w, _ = x.shape
    padded = np.pad(x, ((0, 0), (2, 2), (2, 2), (0, 0)))
    out = np.zeros((n, -(-h // 2), -(-w // 2), kernel.shape[-1]), np.float64)
    for i in range(out.shape[1]):
        for j in range(out.shape[2]):
            rows = slice(2 * i + offset + 2, 2 * i + offset + 5)
            cols = slice(2 * j + offset + 2, 2 * j + offset + 5)
            out[:, i, j] = np.einsum("nabc,abcd->nd", padded[:, rows, cols], kernel)
    return out


@pytest.mark.parametrize("size", [8, 7])
@pytest.mark.parametrize("strided_padding, offset", [("symmetric", -1), ("same", 0)])
def test_strided_conv_reads_the_rows_its_geometry_says(size, strided_padding, offset):
    """Symmetric: output i reads rows 2i-1..2i+1, centred on the row 2i the shortcut keeps
    (PyTorch's padding=1). Keras's "same" on an even map: rows 2i..2i+2. On an odd map both
    pad one pixel on each side."""
    x = RNG.normal(size=(2, size, size, 4)).astype("float32")
    unit = ResidualUnit(8, strides=2, strided_padding=strided_padding)
    unit(x)
    conv, before = strided_conv(unit)
    assert conv.strides == (2, 2) and conv.padding == (
        "valid" if strided_padding == "symmetric" else "same")
    assert isinstance(before, keras.layers.ZeroPadding2D) == (strided_padding == "symmetric")
    inputs = before(x) if isinstance(before, keras.layers.ZeroPadding2D) else x
    kernel = conv.kernel.numpy()
    if size % 2 == 1:
        offset = -1  # odd maps: "same" pads one pixel on each side too
    np.testing.assert_allclose(conv(inputs), conv_by_hand(x, kernel, offset), atol=1e-5)


def test_symmetric_padding_is_pytorchs_padding_1_stride_2():
    torch = pytest.importorskip("torch")
    unit = ResidualUnit(8, strides=2)
    unit(X)
    conv, pad = strided_conv(unit)
    kernel = conv.kernel.numpy()
    expected = torch.nn.functional.conv2d(
        torch.from_numpy(X).permute(0, 3, 1, 2), torch.from_numpy(kernel).permute(3, 2, 0, 1),
        stride=2, padding=1).permute(0, 2, 3, 1).numpy()
    np.testing.assert_allclose(conv(pad(X)), expected, atol=1e-5)


@pytest.mark.parametrize("name, overrides", [
    ("resnet8", {}), ("preact11", {}), ("resnet8-gate-exclusive", {}), ("resnet5-1conv", {}),
    ("wrn10-2", {}), ("j18-resnet110", {"blocks": 1, "filters": 4}),
    ("j18-wrn", {"blocks": 1, "filters": 4})])
def test_every_strided_conv_of_the_zoo_pads_symmetrically_by_default(name, overrides):
    """Basic, bottleneck, gated, one-conv, wide and Jastrzebski et al.'s networks: every conv
    with a stride and a kernel larger than 1x1 follows an explicit symmetric padding."""
    for strided_padding in ("symmetric", "same"):
        model = keras_resnets.build(name, input_shape=(8, 8, 3), strided_padding=strided_padding,
                                    **overrides)
        strided = []
        for block in keras_resnets.ResidualChain(model).blocks:
            sequence = block.unit.branch_layers
            for i, layer in enumerate(sequence):
                if isinstance(layer, keras.layers.Conv2D) and layer.strides != (1, 1) and \
                        layer.kernel_size != (1, 1):
                    strided.append((layer.padding, type(sequence[i - 1]).__name__))
        assert strided, name
        if strided_padding == "symmetric":
            assert set(strided) == {("valid", "ZeroPadding2D")}
        else:
            assert {padding for padding, _ in strided} == {"same"}
            assert "ZeroPadding2D" not in {before for _, before in strided}


def test_geometry_changes_no_parameter_and_no_shape():
    for name in ("resnet20", "preact29", "j18-resnet32"):
        new, old = (keras_resnets.build(name, input_shape=(8, 8, 3), strided_padding=p)
                    for p in ("symmetric", "same"))
        assert keras_resnets.count_parameters(new) == keras_resnets.count_parameters(old)
        assert [w.shape for w in new.weights] == [w.shape for w in old.weights]
        assert new.output_shape == old.output_shape
    assert keras_resnets.count_parameters(keras_resnets.build(
        "resnet20", input_shape=(8, 8, 3), pad_placement="centred")) == 269_722


def test_weights_move_between_geometries_by_file(tmp_path):
    """The padding layers hold no weights and change no weight's name: a weights file of one
    geometry loads into the other (as the converter's checks do)."""
    new = keras_resnets.build("resnet8", input_shape=(8, 8, 3))
    new.save_weights(tmp_path / "new.weights.h5")
    old = keras_resnets.build("resnet8", input_shape=(8, 8, 3), strided_padding="same")
    old.load_weights(tmp_path / "new.weights.h5")
    for a, b in zip(new.weights, old.weights, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


@pytest.mark.parametrize("placement, channels", [("identity-first", slice(0, 4)),
                                                 ("centred", slice(2, 6))])
def test_option_a_puts_the_identity_first_or_centred(placement, channels):
    y = np.asarray(ZeroPadShortcut(8, 2, placement)(X))
    np.testing.assert_array_equal(y[..., channels], X[:, ::2, ::2, :])
    rest = np.delete(y, np.arange(8)[channels], axis=-1)
    assert rest.shape[-1] == 4 and not rest.any()


def test_centred_option_a_is_akamasters_planes_over_4_on_both_sides():
    """akamaster's F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, planes // 4, planes // 4)): 16 -> 32
    channels puts 8 zeros before and 8 after."""
    unit = ResidualUnit(32, strides=2, projection="pad", pad_placement="centred")
    x = RNG.normal(size=(2, 8, 8, 16)).astype("float32")
    unit(x)
    shortcut = np.asarray(unit.parts(x, training=False).shortcut)
    np.testing.assert_array_equal(shortcut[..., 8:24], x[:, ::2, ::2, :])
    assert not shortcut[..., :8].any() and not shortcut[..., 24:].any()
    with pytest.raises(ValueError, match="accepted: identity-first, centred"):
        ResidualUnit(32, pad_placement="middle")
    with pytest.raises(ValueError, match="accepted: symmetric, same"):
        ResidualUnit(32, strided_padding="valid")


def test_layer_configs_without_the_key_mean_the_old_geometry():
    unit = ResidualUnit(32, strides=2, in_filters=16, name="stage2_unit1")
    config = unit.get_config()
    assert config["strided_padding"] == "symmetric"
    assert config["pad_placement"] == "identity-first"
    del config["strided_padding"], config["pad_placement"]
    old = ResidualUnit.from_config(config)
    assert (old.strided_padding, old.pad_placement) == ("same", "identity-first")
    old(RNG.normal(size=(1, 8, 8, 16)).astype("float32"))
    assert strided_conv(old)[0].padding == "same"
    assert ResidualUnit.from_config(unit.get_config()).strided_padding == "symmetric"
    shortcut = ZeroPadShortcut(32, 2).get_config()
    del shortcut["placement"]
    assert ZeroPadShortcut.from_config(shortcut).placement == "identity-first"


def without_geometry_keys(path, out):
    """A copy of the ``.keras`` file ``path`` at ``out`` as it was saved before the geometry
    settings existed: its units and shortcuts without ``strided_padding``, ``pad_placement``
    and ``placement``; the weights unchanged. Returns ``out``."""
    def strip(node):
        if isinstance(node, list):
            for value in node:
                strip(value)
        if not isinstance(node, dict):
            return
        if node.get("class_name") == "ResidualUnit":
            node["config"].pop("strided_padding", None)
            node["config"].pop("pad_placement", None)
        if node.get("class_name") == "ZeroPadShortcut":
            node["config"].pop("placement", None)
        for value in node.values():
            strip(value)

    with zipfile.ZipFile(path) as source, zipfile.ZipFile(out, "w") as target:
        for item in source.infolist():
            data = source.read(item)
            if item.filename == "config.json":
                config = json.loads(data)
                strip(config)
                data = json.dumps(config).encode()
            target.writestr(item, data)
    with zipfile.ZipFile(out) as written:
        assert b"strided_padding" not in written.read("config.json")
    return out


def units_of(model):
    return [block.unit for block in keras_resnets.ResidualChain(model).blocks]


def test_old_keras_files_load_with_the_old_geometry(tmp_path):
    images = RNG.uniform(0, 255, (2, 8, 8, 3)).astype("float32")
    old_style = keras_resnets.build("resnet8", input_shape=(8, 8, 3), strided_padding="same")
    old_style.save(tmp_path / "model.keras")
    loaded = keras.models.load_model(
        without_geometry_keys(tmp_path / "model.keras", tmp_path / "old.keras"))
    assert {u.strided_padding for u in units_of(loaded)} == {"same"}
    np.testing.assert_allclose(loaded(images), old_style(images), atol=1e-5)


@pytest.mark.parametrize("settings", [{}, {"strided_padding": "same"},
                                      {"pad_placement": "centred"}])
def test_keras_round_trip_keeps_the_geometry(settings, tmp_path):
    images = RNG.uniform(0, 255, (2, 8, 8, 3)).astype("float32")
    model = keras_resnets.build("resnet8", input_shape=(8, 8, 3), **settings)
    model.save(tmp_path / "model.keras")
    loaded = keras.models.load_model(tmp_path / "model.keras")
    expected = {"strided_padding": "symmetric", "pad_placement": "identity-first", **settings}
    for unit in units_of(loaded):
        assert (unit.strided_padding, unit.pad_placement) == (
            expected["strided_padding"], expected["pad_placement"])
    np.testing.assert_allclose(loaded(images), model(images), atol=1e-5)


def test_new_models_default_to_symmetric_and_resolve_records_it():
    assert resolve("resnet20")["strided_padding"] == "symmetric"
    assert resolve("resnet20")["pad_placement"] == "identity-first"
    assert resolve("j18-wrn")["strided_padding"] == "symmetric"
    assert resolve("j18-wrn", strided_padding="same")["strided_padding"] == "same"
    assert {u.strided_padding for u in units_of(keras_resnets.build(
        "preact8", input_shape=(8, 8, 3)))} == {"symmetric"}
    with pytest.raises(ValueError, match="'resnet20': Unknown strided_padding 'valid'"):
        resolve("resnet20", strided_padding="valid")
    # geometry alone keeps the papers' numbers in describe
    assert keras_resnets.describe("resnet110", strided_padding="same")["paper_error"] == {
        "cifar10": 6.61}


def test_shipped_cifar10_weights_keep_the_geometry_they_were_trained_with():
    model = keras_resnets.build("resnet20", weights="cifar10")
    assert {u.strided_padding for u in units_of(model)} == {"same"}
    assert {u.pad_placement for u in units_of(model)} == {"identity-first"}
    aka = keras_resnets.build("resnet20", weights="akamaster")
    assert {u.strided_padding for u in units_of(aka)} == {"symmetric"}
    assert {u.pad_placement for u in units_of(aka)} == {"centred"}
    # passing the weights' own settings is accepted, another geometry is not
    keras_resnets.build("resnet20", weights="cifar10", strided_padding="same")
    with pytest.raises(ValueError, match="overrides \\['strided_padding'\\]"):
        keras_resnets.build("resnet20", weights="cifar10", strided_padding="symmetric")


# ---------------------------------------------------------------------------------------------
# Run configs: the geometry is recorded; configs written before it trained "same".


def test_run_configs_record_the_geometry_and_old_ones_read_back_as_same(tmp_path):
    from trainers.config import TrainConfig

    fresh = TrainConfig(model="resnet20", model_overrides={"gate_bias": -7.0})
    assert fresh.model_overrides == {"strided_padding": "symmetric", "gate_bias": -7.0}
    assert fresh.model_overrides["strided_padding"] == resolve("resnet20")["strided_padding"]
    fresh.save(tmp_path / "config.json")
    assert TrainConfig.load(tmp_path / "config.json") == fresh
    old_json = json.loads(fresh.to_json())
    del old_json["model_overrides"]["strided_padding"]
    old = TrainConfig.from_json(json.dumps(old_json))
    assert old.model_overrides == {"strided_padding": "same", "gate_bias": -7.0}
    assert old.differences(fresh) == {"model_overrides": (old.model_overrides,
                                                          fresh.model_overrides)}
    explicit = TrainConfig(model="resnet20", model_overrides={"strided_padding": "same",
                                                              "gate_bias": -7.0})
    assert old.differences(explicit) == {}


def test_committed_ledger_rows_are_labelled_with_the_old_geometry():
    from trainers.config import TrainConfig

    ledger = REPO / "results" / "he2016" / "runs.csv"
    if not ledger.is_file():
        pytest.skip("no committed ledger")
    rows = pd.read_csv(ledger, dtype={"config": str})
    configs = [TrainConfig.from_json(text) for text in rows["config"].head(5)]
    assert configs and {c.model_overrides["strided_padding"] for c in configs} == {"same"}
