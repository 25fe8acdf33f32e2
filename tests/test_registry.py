"""Names, parameter counts against the papers, describe() and the errors users see."""

import numpy as np
import pytest

import keras_resnets
from keras_resnets import paper
from keras_resnets.parameters import count_parameters, format_like
from keras_resnets.registry import resolve

REQUIRED = [f"{base}{d}" for base in ("resnet", "preact")
            for d in (20, 32, 44, 56, 110, 1202, 164, 1001)] + [
    f"resnet110-{v}" for v in ("scale0", "scale0.5", "scale0.5-both", "gate-exclusive",
                               "gate-shortcut", "conv-shortcut", "dropout-shortcut",
                               "bn-after-add", "relu-before-add", "relu-preact", "1conv",
                               "shared", "shared-bn")] + [
    "preact110-1conv", "wrn28-10", "wrn16-4", "resnet38",
    "j18-resnet110", "j18-single", "j18-avgpool", "j18-wrn"]


def test_list_models_has_every_paper_name():
    names = keras_resnets.list_models()
    assert set(REQUIRED) <= set(names)
    assert len(names) == len(set(names))
    assert keras_resnets.list_models("wrn*") == ["wrn16-4", "wrn16-8", "wrn28-10", "wrn40-4"]


@pytest.mark.slow
@pytest.mark.parametrize("name", keras_resnets.list_models())
def test_every_listed_model_gives_logits(name, zoo_model):
    """Untrained deep nets overflow in inference mode (BN's moving statistics are still at
    their initial values), so the forward pass uses batch statistics."""
    model = zoo_model(name)
    images = np.random.default_rng(0).normal(size=(2, *model.input_shape[1:])).astype("float32")
    logits = np.asarray(model(images, training=True))
    assert logits.shape == (2, 10)
    assert np.isfinite(logits).all()


def test_num_classes_and_input_shape():
    model = keras_resnets.build("resnet8", num_classes=100, input_shape=(16, 16, 1))
    assert model.input_shape == (None, 16, 16, 1)
    assert model.output_shape == (None, 100)


DEEPEST = {"resnet1202", "preact1001", "resnet1001"}  # a minute each to build on 2 cores


@pytest.mark.parametrize("name", [
    pytest.param(name, marks=pytest.mark.slow) if name in DEEPEST else name
    for name in sorted(paper.PARAMETERS)])
def test_parameter_counts_match_the_papers(name, zoo_model):
    counted = paper.PARAMETERS[name]
    model = zoo_model(name, **counted.overrides)
    count = count_parameters(model, include_batchnorm=counted.include_batchnorm,
                             include_statistics=counted.include_statistics)
    assert format_like(count, counted.figure) == counted.figure, count


def test_basic_units_default_to_zero_padding_and_projection_adds_its_weights(zoo_model):
    """He et al. 2015's option A is the default for basic units; a 1x1 projection instead adds
    exactly the two projections' conv + BN weights."""
    padded = count_parameters(zoo_model("resnet20"))
    projected = count_parameters(zoo_model("resnet20", projection="conv"))
    assert padded == 269_722
    assert projected - padded == 16 * 32 + 32 * 64 + 2 * (32 + 64)


@pytest.mark.parametrize("name, projection", [
    ("resnet20", "pad"), ("preact110", "pad"), ("resnet110-1conv", "pad"),
    ("preact164", "conv"), ("resnet1001", "conv"), ("wrn28-10", "conv"),
    ("j18-resnet110", "conv"), ("resnet110-shared-bn", "conv")])
def test_default_projection_follows_the_papers(name, projection):
    assert resolve(name)["projection"] == projection


@pytest.mark.parametrize("name, branch, units", [
    ("resnet110", "basic", 18), ("resnet164", "bottleneck", 18), ("preact1001", "bottleneck", 111),
    ("resnet1202", "basic", 200), ("resnet110-1conv", "1conv", 36), ("wrn28-10", "basic", 4),
    ("resnet56", "basic", 9), ("resnet29", "bottleneck", 3)])
def test_depth_maps_to_units_per_stage(name, branch, units):
    settings = resolve(name)
    assert (settings["branch"], settings["units_per_stage"]) == (branch, units)


def test_resolve_refuses_what_build_would_refuse():
    with pytest.raises(ValueError, match="'resnet8-shared': shared_blocks must be in"):
        resolve("resnet8-shared")


# He et al. 2016, Table 1, written out from the paper: what each case puts on the shortcut (and
# the branch) of every unit of the original (post-activation) ResNet-110.
TABLE1_SHORTCUTS = {
    "original": {"shortcut": "identity"},
    "constant scaling 0 / 1": {"shortcut": "scale", "shortcut_scale": 0.0},
    "constant scaling 0.5 / 1": {"shortcut": "scale", "shortcut_scale": 0.5},
    "constant scaling 0.5 / 0.5": {"shortcut": "scale", "shortcut_scale": 0.5,
                                   "branch_scale": 0.5},
    "exclusive gating, b_g = 0 (paper: 0 to -5 fail)": {"shortcut": "gate-exclusive",
                                                         "gate_bias": 0.0},
    "exclusive gating, b_g = -6": {"shortcut": "gate-exclusive", "gate_bias": -6.0},
    "exclusive gating, b_g = -7": {"shortcut": "gate-exclusive", "gate_bias": -7.0},
    "shortcut-only gating, b_g = 0": {"shortcut": "gate-shortcut", "gate_bias": 0.0},
    "shortcut-only gating, b_g = -6": {"shortcut": "gate-shortcut", "gate_bias": -6.0},
    "1x1 conv shortcut": {"shortcut": "conv"},
    "dropout shortcut (0.5)": {"shortcut": "dropout", "shortcut_dropout": 0.5},
}
# Table 2: the unit each activation placement names.
TABLE2_ORDERINGS = {"original (post-activation)": "post", "BN after addition": "bn-after-add",
                    "ReLU before addition": "relu-before-add",
                    "ReLU-only pre-activation": "relu-preact", "full pre-activation": "preact"}


def expected_settings(row) -> dict:
    """What the paper's row is, from its table, case and depth alone: basic units at depth
    6n+2 with zero-padding where the shape changes, bottleneck units at 9n+2 (ResNet-164,
    1001) with 1x1 projections, one conv per unit at 3n+2."""
    if row.table == 1:
        unit = {"ordering": "post", **TABLE1_SHORTCUTS[row.case]}
    elif row.table == 2:
        unit = {"ordering": TABLE2_ORDERINGS[row.case], "shortcut": "identity"}
    else:
        ordering = "preact" if row.case.endswith("pre-activation") else "post"
        unit = {"ordering": ordering, "shortcut": "identity"}
    if "one conv per unit" in row.case:
        return {**unit, "branch": "1conv", "units_per_stage": (row.depth - 2) // 3,
                "projection": "pad"}
    if row.depth in (164, 1001):
        return {**unit, "branch": "bottleneck", "units_per_stage": (row.depth - 2) // 9,
                "projection": "conv"}
    return {**unit, "branch": "basic", "units_per_stage": (row.depth - 2) // 6,
            "projection": "pad"}


def resolved_as(settings: dict, expected: dict) -> dict:
    """``settings`` (from ``resolve``) on ``expected``'s keys; no ``shortcut`` is identity."""
    return {key: settings.get(key, "identity" if key == "shortcut" else None)
            for key in expected}


def test_every_paper_row_resolves_to_its_variant():
    assert len(paper.RESULTS) == 11 + 10 + 12  # Tables 1, 2 (two depths) and 3
    for row in paper.RESULTS:
        expected = expected_settings(row)
        settings = resolve(row.model_name(), **row.overrides)
        assert resolved_as(settings, expected) == expected, row.case
        # at depth 20 (reduced-scale runs) the same unit, shortcut and ordering, 3 units a
        # stage (6 with one conv per unit): a bottleneck row takes basic units there
        small = resolve(row.model_name(depth=20), **row.overrides)
        units = 6 if expected["branch"] == "1conv" else 3
        branch = "1conv" if expected["branch"] == "1conv" else "basic"
        assert resolved_as(small, expected) == {**expected, "units_per_stage": units,
                                                "branch": branch, "projection": "pad"}, row.case


def test_describe_carries_the_papers_numbers():
    assert keras_resnets.describe("resnet110")["paper_error"] == {"cifar10": 6.61}
    assert keras_resnets.describe("preact1001")["paper_error"] == {"cifar10": 4.92,
                                                                   "cifar100": 22.71}
    assert keras_resnets.describe("resnet110-scale0")["paper_error"] == {"cifar10": None}
    gated = keras_resnets.describe("resnet110-gate-exclusive")
    assert gated["paper_error"] == {"cifar10": 8.70}
    assert (gated["shortcut"], gated["gate_bias"], gated["depth"]) == ("gate-exclusive", -6.0, 110)
    assert keras_resnets.describe("resnet110-gate-exclusive", gate_bias=-7)["gate_bias"] == -7
    assert keras_resnets.describe("preact1001")["paper_parameters"] == "10.2M"
    assert keras_resnets.describe("resnet74")["paper_error"] == {}


def test_override_reaches_the_units():
    model = keras_resnets.build("resnet8-gate-exclusive", gate_bias=-7)
    units = [layer for layer in model.layers if isinstance(layer, keras_resnets.ResidualUnit)]
    assert {unit.gate_bias for unit in units} == {-7}


@pytest.mark.parametrize("name, overrides, message", [
    ("resnt110", {}, "Did you mean: resnet110"),
    ("resnet111", {}, "Impossible depth 111"),
    ("resnet111", {}, "110, 116"),
    ("preact100", {}, "6n+2"),
    ("resnet110-gatex", {}, "accepted: scale0"),
    ("wrn28", {}, "wrn{depth}-{widen}"),
    ("resnet20-4", {}, "expected resnet{depth}"),
    ("preact110-bn-after-add", {}, "use resnet110-bn-after-add"),
    ("resnet110", {"gate_bias": -7}, "takes no gate_bias"),
    ("resnet110-scale0", {"gate_bias": -7}, "gate-exclusive"),
    ("resnet110", {"gate_bais": -7}, "did you mean 'gate_bias'"),
    ("resnet110", {"widen": 2}, "only wrn"),
    ("resnet20-shared", {}, "'resnet20-shared': shared_blocks must be in [0, 2]"),
    ("resnet20", {"ordering": "sideways"}, "accepted: bn-after-add"),
    ("resnet20", {"shortcut": "teleport"}, "accepted: conv, dropout"),
    ("resnet20", {"downsample": "maxpool"}, "accepted: conv, avgpool"),
    (None, {}, "must be a string such as 'preact20'"),
    (110, {}, "must be a string"),
])
def test_bad_names_and_overrides_say_what_is_accepted(name, overrides, message):
    with pytest.raises(ValueError) as error:
        keras_resnets.build(name, **overrides)
    assert message in str(error.value)


def test_describe_carries_he2015_and_table4_errors():
    resnet110 = keras_resnets.describe("resnet110")["reference_errors"]
    assert [(r["error"], r["mean"], r["std"]) for r in resnet110] == [(6.43, 6.61, 0.16)]
    errors = {(r["dataset"], r["note"]): r["error"]
              for r in keras_resnets.describe("preact1001")["reference_errors"]}
    assert errors == {("cifar10", "mini-batch 128"): 4.92, ("cifar10", "mini-batch 64"): 4.62,
                      ("cifar100", "mini-batch 128"): 22.71}
    assert [e["error"] for d in map(keras_resnets.describe, ("resnet20", "resnet1202"))
            for e in d["reference_errors"]] == [8.75, 7.93]


SHAPE = (8, 8, 3)


def test_standardize_puts_the_input_scaling_inside_the_model():
    mean, std = (120.0, 110.0, 100.0), (60.0, 50.0, 40.0)
    inside = keras_resnets.build("resnet8", input_shape=SHAPE, standardize=(mean, std))
    outside = keras_resnets.build("resnet8", input_shape=SHAPE)
    outside.set_weights(inside.get_weights())
    raw = np.random.default_rng(0).uniform(0, 255, (2, *SHAPE)).astype("float32")
    np.testing.assert_allclose(inside.predict(raw, verbose=0),
                               outside.predict((raw - mean) / std, verbose=0), atol=1e-5)
    with pytest.raises(ValueError, match="standardize must be \\(mean, std\\) with 3 values"):
        keras_resnets.build("resnet8", standardize=((1.0,), (2.0,)))


def test_top_arguments_are_build_arguments_not_model_settings():
    """include_top, pooling and classifier_activation choose what ``build`` puts on the body;
    the model's settings (``resolve``, ``describe``) and the papers' numbers ignore them."""
    with pytest.raises(ValueError, match="takes no override include_top"):
        resolve("resnet20", include_top=False)
    assert "include_top" not in keras_resnets.describe("resnet20")
    body = keras_resnets.build("resnet8", include_top=False, input_shape=SHAPE)
    assert body.output_shape == (None, 2, 2, 64)
