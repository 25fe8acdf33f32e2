"""analysis.frames: every measure on every unit family, the frames' columns, strategies,
several splits in one analysis, and bad settings refused before any data is read."""

import numpy as np
import pytest
import tensorflow as tf

import keras_resnets
from analysis.borderline import GROUPS
from analysis.frames import (BLOCK_COLUMNS, BORDERLINE_COLUMNS, MEASURE_COLUMNS, MEASURES,
                             UNROLL_COLUMNS, analyze, parse_measures)

pytestmark = pytest.mark.slow  # pytest -m 'not slow' skips this module


SHAPE = (8, 8, 3)
STEPS = 2  # unrolling steps: enough to check the frame, cheap to trace
ALPHAS = (1.0, 0.5)
FAMILIES = {  # name: (model, overrides)
    "post": ("resnet14", {}),
    "bottleneck": ("preact20", {"branch": "bottleneck"}),
    "gated": ("resnet14-gate-exclusive", {}),
    "wide": ("wrn16-2", {}),
    "shared": ("resnet20-shared", {"shared_blocks": 2}),
    "shared-bn": ("resnet20-shared-bn", {"shared_blocks": 2}),
    "single-representation": ("j18-single", {"blocks": 2, "filters": 8}),
    "avg-pooling": ("j18-avgpool", {"blocks": 2, "filters": 8}),
}


def dataset(n=8, batch_size=8):
    images = tf.random.stateless_normal((n, *SHAPE), seed=[0, 1])
    labels = tf.random.stateless_uniform((n,), seed=[0, 2], maxval=10, dtype=tf.int32)
    return tf.data.Dataset.from_tensor_slices((images, labels)).batch(batch_size)


@pytest.fixture(scope="module", params=list(FAMILIES))
def family(request):
    name, overrides = FAMILIES[request.param]
    model = keras_resnets.build(name, input_shape=SHAPE, **overrides)
    return model, analyze(model, dataset(), steps=STEPS, alphas=ALPHAS, progress=False)


def test_every_measure_on_every_family(family):
    model, result = family
    blocks = result.blocks
    expected = list(BLOCK_COLUMNS) + [c for m in MEASURES for c in MEASURE_COLUMNS.get(m, ())]
    assert sorted(blocks.columns) == sorted(expected)
    assert list(blocks["block"]) == list(range(len(keras_resnets.ResidualChain(model))))
    assert blocks["cosine"].between(-1, 1).all() and blocks["cosine_std"].ge(0).all()
    assert blocks["l2_ratio"].gt(0).all() and blocks["drop_accuracy"].between(0, 1).all()
    assert np.isfinite(blocks[["cosine", "l2_ratio", "drop_loss"]].to_numpy()).all()
    assert result.summary["examples"] == 8
    # The head reads the last stage only: NaN elsewhere, and the last output is the model.
    last_stage = blocks["stage"] == blocks["stage"].max()
    assert blocks.loc[~last_stage, "intermediate_accuracy"].isna().all()
    assert blocks["intermediate_loss"].iloc[-1] == pytest.approx(result.summary["loss"],
                                                                 rel=1e-5)


def test_unroll_frame_on_every_family(family):
    model, result = family
    unroll = result.unroll
    assert list(unroll.columns) == list(UNROLL_COLUMNS)
    assert len(unroll) == len(ALPHAS) * len(GROUPS) * (STEPS + 1)
    assert sorted(unroll["alpha"].unique()) == [0.5, 1.0]
    everything = unroll[unroll["group"] == "all"]
    first = everything[everything["step"] == 0]  # k = 0 is the model itself
    np.testing.assert_allclose(first["loss"], result.summary["loss"], rtol=1e-5)
    assert everything["entropy"].between(0, np.log(10) + 1e-6).all()
    assert everything["cosine"].between(-1, 1).all() and everything["l2_ratio"].gt(0).all()


def test_borderline_frame_on_every_family(family):
    """The head after each of the last blocks it can read (at most the paper's 5)."""
    model, result = family
    frame, blocks = result.borderline, len(keras_resnets.ResidualChain(model))
    last = frame["block"].nunique()
    assert list(frame.columns) == list(BORDERLINE_COLUMNS)
    assert 1 <= last <= 5 and len(frame) == len(GROUPS) * last
    assert sorted(frame["block"].unique()) == list(range(blocks - last, blocks))
    everything = frame[frame["group"] == "all"]
    assert everything["examples"].eq(8).all()
    readable = result.blocks.dropna(subset=["intermediate_loss"])  # the head reads them too
    np.testing.assert_allclose(everything["loss"], readable["intermediate_loss"].iloc[-last:],
                               rtol=1e-5)
    assert everything["loss"].iloc[-1] == pytest.approx(result.summary["loss"], rel=1e-5)


def test_batches_and_strategies_give_the_same_numbers():
    model = keras_resnets.build("preact8", input_shape=SHAPE)
    measures = "cosine,l2,intermediate"
    whole = analyze(model, dataset(batch_size=8), measures, progress=False)
    split = analyze(model, dataset(batch_size=3), measures, progress=False)
    mirrored = analyze(model, dataset(batch_size=3), measures, progress=False,
                       strategy=tf.distribute.MirroredStrategy(["/cpu:0"]))
    columns = ["cosine", "cosine_std", "l2_ratio", "l2_ratio_std", "intermediate_loss"]
    for other in (split, mirrored):
        np.testing.assert_allclose(other.blocks[columns], whole.blocks[columns], rtol=1e-4,
                                   atol=1e-6)
        for key in ("examples", "accuracy", "loss"):
            assert other.summary[key] == pytest.approx(whole.summary[key], rel=1e-5)


def test_only_the_measures_asked_for():
    model = keras_resnets.build("resnet8", input_shape=SHAPE)
    result = analyze(model, dataset(), "l2", progress=False)
    assert list(result.blocks.columns) == list(BLOCK_COLUMNS) + ["l2_ratio", "l2_ratio_std"]
    assert result.unroll is None
    assert list(result.blocks["gradient_wrt"]) == ["input", "shortcut", "shortcut"]


def test_bad_measures_are_refused_before_any_work():
    assert parse_measures("all") == MEASURES
    assert parse_measures("l2, cosine") == ("l2", "cosine")
    with pytest.raises(ValueError, match="accepted: 'all' or a comma-separated subset"):
        parse_measures("cosine,dropping")
    model = keras_resnets.build("resnet8", input_shape=SHAPE)  # one unit per stage
    with pytest.raises(ValueError, match="last block changes the shape"):
        analyze(model, dataset(), "unroll")
    with pytest.raises(ValueError, match=r"alphas must be in \(0, 1\]"):
        analyze(keras_resnets.build("resnet14", input_shape=SHAPE), dataset(), "unroll",
                alphas=(0.0,))


@pytest.mark.parametrize("settings, message", [
    ({"measures": "borderline,entropy"}, "Unknown measures"),
    ({"measures": "borderline", "last_blocks": 3}, "has 2 block.*accepted: 1 to 2"),
    ({"measures": "borderline", "last_blocks": 0}, "positive integer"),
    ({"measures": "unroll", "alphas": (0.5, 0.5)}, "alphas must be distinct"),
    ({"measures": "unroll", "alphas": (float("nan"),)}, r"alphas must be in \(0, 1\]"),
    ({"measures": "unroll", "alphas": (2.0,)}, r"alphas must be in \(0, 1\]"),
    ({"measures": "unroll", "updates": ("scaled", "adam")}, "accepted: one or more of scaled"),
    ({"measures": "unroll", "steps": -1}, "non-negative integer"),
])
def test_bad_settings_are_refused_before_any_data_is_read(settings, message):
    """``data=None``: reading it would fail, so the error comes from the checks alone."""
    model = keras_resnets.build("resnet14", input_shape=SHAPE)  # 2 blocks in the last stage
    with pytest.raises(ValueError, match=message):
        analyze(model, None, progress=False, **settings)


def test_several_splits_in_one_analysis_are_each_splits_own_numbers():
    model = keras_resnets.build("preact14", input_shape=SHAPE)
    train, test = dataset(n=8), dataset(n=6, batch_size=3)
    measures, options = "cosine,l2,borderline,unroll", {"steps": 1, "alphas": (1.0,)}
    both = analyze(model, {"train": train, "test": test}, measures, progress=False, **options)
    assert both.summary["splits"]["train"]["examples"] == 8
    assert both.summary["splits"]["test"]["examples"] == 6
    for name in ("blocks", "borderline", "unroll"):
        assert list(getattr(both, name)["split"].unique()) == ["train", "test"]
    alone = analyze(model, test, measures, progress=False, **options)
    mine = both.blocks[both.blocks["split"] == "test"].drop(columns="split")
    np.testing.assert_allclose(mine[["cosine", "l2_ratio"]], alone.blocks[["cosine", "l2_ratio"]],
                               rtol=1e-5)
    assert both.summary["splits"]["test"]["loss"] == pytest.approx(alone.summary["loss"])
    with pytest.raises(ValueError, match="No split to measure"):
        analyze(model, {}, "l2")


TWO_REPLICAS = """
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import numpy as np, keras_resnets
from analysis.frames import analyze
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
with strategy.scope():
    model = keras_resnets.build("preact8", input_shape=(8, 8, 3))
x = tf.random.stateless_normal((10, 8, 8, 3), seed=[0, 1])
y = tf.random.stateless_uniform((10,), seed=[0, 2], maxval=10, dtype=tf.int32)
data = tf.data.Dataset.from_tensor_slices((x, y)).batch(4)  # the last batch splits 1 + 1
one = analyze(model, data, "cosine,l2,intermediate", progress=False)
two = analyze(model, data, "cosine,l2,intermediate", progress=False, strategy=strategy)
assert strategy.num_replicas_in_sync == 2
columns = ["cosine", "cosine_std", "l2_ratio", "intermediate_loss"]
np.testing.assert_allclose(two.blocks[columns], one.blocks[columns], rtol=1e-4, atol=1e-6)
assert one.summary["loss"] == np.float32(two.summary["loss"]) or abs(
    one.summary["loss"] - two.summary["loss"]) < 1e-5
assert two.summary["examples"] == one.summary["examples"] == 10
print("same")
"""


def test_two_replicas_reduce_to_the_single_device_numbers(tmp_path):
    """A fresh process, since logical devices must be set before TensorFlow starts."""
    import subprocess
    import sys

    script = tmp_path / "two_replicas.py"
    script.write_text(TWO_REPLICAS)
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().endswith("same")
