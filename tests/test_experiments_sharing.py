"""experiments.sharing: the Figure 8 experiment's models, baseline choice and results; and
analysis.sharing, its measurements (the gradient norm ratio and the activation norms)."""

import dataclasses
import json
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest

from analysis import sharing as measures
from experiments import sharing
from experiments.ledger import Ledger
from experiments.sharing import SharingConfig, matching_baseline
from experiments.study import train_one
from trainers.config import TrainConfig


@pytest.mark.slow
def test_the_baseline_matches_the_shared_parameter_count():
    assert matching_baseline(110, 13) == "preact38"  # the paper's (final version's) pairing
    assert matching_baseline(20, 2) == "preact14"


def test_bad_settings_and_reduced_scale_labels():
    with pytest.raises(ValueError, match=r"--shared must be in \[1, 2\] for preact20"):
        SharingConfig(depth=20, shared=3)
    with pytest.raises(ValueError, match="Impossible depth 21"):
        SharingConfig(depth=21)
    assert sharing.reduced_scale(SharingConfig()) == []
    assert sharing.reduced_scale(SharingConfig(depth=20, shared=2, epochs=3, train_size=64)) == [
        "depth 20 / 2 shared (paper: 110 / 13)", "3 epochs instead of ~164 (64k iterations)",
        "first 64 training images only"]


def fake_train(config, callbacks=()):
    """Stands in for trainers.train.train: the run folder's history and metrics, and one
    epoch of each callback."""
    error = {"preact20-shared": 40.0, "preact20-shared-bn": 30.0}.get(config.model, 20.0)
    history = pd.DataFrame({"epoch": [1, 2], "loss": [2.0, 1.0], "accuracy": [0.5, 0.9],
                            "val_error": [error + 5, error]})
    run = Path(config.out)
    run.mkdir(parents=True)
    history.to_csv(run / "history.csv", index=False)
    metrics = {"test_error": error, "parameters": 1000, "epochs": 2}
    (run / "metrics.json").write_text(json.dumps(metrics))
    for callback in callbacks:
        callback.history.append((1, 2.5))
    return metrics


@pytest.fixture(scope="module")
def sharing_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("sharing")
    config = SharingConfig(dataset="synthetic", epochs=2, out=str(out), depth=20,
                           shared=2, train_size=64, test_size=16, batch_size=16)
    return config, sharing.run_sharing(config, fake_train)


def test_trains_three_runs_and_writes_them_side_by_side(sharing_run):
    config, table = sharing_run
    out = Path(config.out)
    assert list(table["experiment"]) == ["shared", "shared-bn", "baseline"]
    assert list(table["label"]) == ["shared (naive)", "shared convs, unshared BN",
                                    "unshared baseline"]
    assert list(table["model"]) == ["preact20-shared", "preact20-shared-bn", "preact14"]
    assert list(table["test_error"]) == [40.0, 30.0, 20.0]
    assert table["train_error"].tolist() == pytest.approx([10.0] * 3)
    assert json.loads(table["overrides"][0]) == {"strided_padding": "symmetric",
                                                 "shared_blocks": 2}  # the run config's
    saved = pd.read_csv(out / "sharing.csv")
    assert list(saved.columns) == list(sharing.COLUMNS) and saved.columns[0] == "experiment"
    report = (out / "sharing.md").read_text()
    assert "REDUCED SCALE" in report and "| shared (naive) | preact20-shared |" in report
    assert (out / "sharing.png").stat().st_size > 0
    assert json.loads((out / "sharing_config.json").read_text())["depth"] == 20
    assert (out / "runs" / "preact20-shared" / "metrics.json").is_file()


def test_fig8_gradient_ratio_and_initial_norms_are_written(sharing_run):
    config, _ = sharing_run
    out = Path(config.out)
    ratios = pd.read_csv(out / "gradient_ratio.csv")
    assert list(ratios.columns) == ["experiment", "label", "model", "epoch", "ratio"]
    assert list(ratios["experiment"]) == ["shared", "shared-bn", "baseline"]
    assert list(ratios["model"]) == ["preact20-shared", "preact20-shared-bn", "preact14"]
    assert list(ratios["ratio"]) == [2.5] * 3
    norms = pd.read_csv(out / "activation_norms.csv")
    assert norms.columns[0] == "experiment" and "label" in norms.columns
    assert set(norms["experiment"]) == set(ratios["experiment"])
    assert set(norms["model"]) == set(ratios["model"])
    assert (norms["input_norm"] > 0).all()
    assert (out / "gradient_ratio.png").stat().st_size > 0


def test_a_rerun_trains_nothing_and_keeps_the_results(sharing_run):
    config, table = sharing_run
    calls = []
    again = sharing.run_sharing(config, lambda c, callbacks=(): calls.append(c))
    assert calls == []
    pd.testing.assert_frame_equal(again, table)
    assert len(pd.read_csv(Path(config.out) / "gradient_ratio.csv")) == 3


def test_cli_refuses_bad_settings(capsys):
    assert sharing.main(["--depth", "20", "--shared", "5"]) == 2
    assert "--shared must be in" in capsys.readouterr().err


def tiny(variant, **overrides):
    import keras_resnets

    keras.utils.set_random_seed(0)
    return keras_resnets.build(f"preact20-{variant}", shared_blocks=2, input_shape=(8, 8, 3),
                               **overrides)


IMAGES = np.random.default_rng(0).normal(size=(4, 8, 8, 3)).astype("float32")
LABELS = np.array([0, 1, 2, 3])


def test_gradient_norm_ratio_is_first_over_last_stage_start():
    import tensorflow as tf

    from keras_resnets import ResidualChain

    model = tiny("shared")
    before = [v.numpy().copy() for v in model.non_trainable_weights]
    ratio = measures.gradient_norm_ratio(model, IMAGES, LABELS, training=True)
    assert np.isfinite(ratio) and ratio > 0
    for saved, variable in zip(before, model.non_trainable_weights):  # statistics untouched
        np.testing.assert_array_equal(saved, variable.numpy())
    # Direct computation: blocks 0 and 2n = 6 (3 units per stage) of the chain.
    chain = ResidualChain(model)
    assert [b.stage for b in chain.blocks].index(3) == 6  # 1 + 2n, 1-based
    images = tf.constant(IMAGES)
    with tf.GradientTape() as tape:
        tape.watch(images)
        inputs, _, logits = chain.hidden_states(images, training=False)
        loss = tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(LABELS, logits))
    low, high = tape.gradient(loss, [inputs[0], inputs[6]])
    expected = float(tf.norm(low) / tf.norm(high))
    assert measures.gradient_norm_ratio(model, IMAGES, LABELS) == pytest.approx(expected, 1e-5)


def test_gradient_ratio_callback_records_every_epoch():
    model = tiny("shared-bn")
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    callback = measures.gradient_ratio_callback(IMAGES, LABELS)
    model.fit(IMAGES, LABELS, epochs=2, batch_size=4, verbose=0, callbacks=[callback])
    assert [epoch for epoch, _ in callback.history] == [0, 1, 2]
    assert all(np.isfinite(r) for _, r in callback.history)


def test_activation_norms_per_block_at_initialisation():
    model = tiny("shared")
    table = measures.activation_norms(model, IMAGES)
    assert list(table["block"]) == list(range(9))
    assert table["shared"].tolist() == [False, True, True] * 3
    assert (table["input_norm"] > 0).all() and (table["residual_norm"] > 0).all()
    assert np.isfinite(table["output_norm"].iloc[-1])
    assert table["output_norm"].iloc[:-1].isna().all()


def test_ablation_adds_the_fig9_rows():
    config = SharingConfig(depth=20, shared=2, epochs=1, ablation=1)
    runs = sharing.experiment_runs(config)
    assert list(runs)[3:] == ["shared-bn-shared-stats", "shared-bn-shared-affine",
                              "shared-bn-gamma1"]
    assert [model for model, _ in runs.values()][3:] == [
        "preact20-shared-bn-shared-stats", "preact20-shared-bn-shared-affine",
        "preact20-shared-bn-gamma1"]
    assert all(overrides == {"shared_blocks": 2} for _, overrides in list(runs.values())[3:])
    assert len(sharing.experiment_runs(SharingConfig(depth=20, shared=2))) == 3
    assert sharing.make_parser().parse_args(["--ablation", "1"]).ablation == 1


def test_every_experiment_id_has_one_label():
    assert set(sharing.LABELS) == set(sharing.FIG8) | set(sharing.FIG9)
    assert len(set(sharing.LABELS.values())) == len(sharing.LABELS)
    assert sharing.LABELS["shared-bn-gamma1"] == "unshared BN, gamma initialised to 1"


def legacy_ledger(tmp_path, config: SharingConfig) -> Ledger:
    """A ledger whose row of the naive shared net was written before runs recorded
    ``strided_padding`` (as the committed ones): it reads back with Keras's "same" padding."""
    model, overrides = sharing.experiment_runs(config)["shared"]
    old = json.loads(sharing.train_config(config, model, overrides).to_json())
    del old["model_overrides"]["strided_padding"]
    ledger = Ledger(tmp_path / "runs.csv")
    ledger.record(TrainConfig.from_json(json.dumps(old)), "finished", {"test_error": 40.0})
    return ledger


def test_a_run_recorded_with_same_padding_is_skipped_when_asked_for_same(tmp_path):
    config = SharingConfig(dataset="synthetic", epochs=2, depth=20, shared=2,
                           out=str(tmp_path / "out"), ledger=str(tmp_path / "runs.csv"),
                           strided_padding="same")
    ledger = legacy_ledger(tmp_path, config)
    run = sharing.train_config(config, *sharing.experiment_runs(config)["shared"])
    assert train_one(fake_train, run, ledger) is False  # in the ledger: not trained
    assert not Path(run.out).exists()


def test_a_run_recorded_with_same_padding_is_refused_when_asked_for_symmetric(tmp_path):
    same = SharingConfig(dataset="synthetic", epochs=2, depth=20, shared=2,
                         out=str(tmp_path / "out"), ledger=str(tmp_path / "runs.csv"),
                         strided_padding="same")
    legacy_ledger(tmp_path, same)
    with pytest.raises(ValueError, match="trained with strided_padding 'same', but this study "
                                         "asks for 'symmetric'; add --strided-padding same"):
        sharing.run_sharing(dataclasses.replace(same, strided_padding="symmetric"), fake_train)


def test_cli_takes_the_strided_padding():
    args = sharing.make_parser().parse_args(["--strided-padding", "same"])
    assert args.strided_padding == "same"
    assert sharing.main(["--strided-padding", "valid"]) == 2

