"""experiments.reproduce: one command per figure, checked before training, and its claims judged
into the report (the claims themselves: tests/test_experiments_j18_claims.py)."""

import json
from pathlib import Path

import pandas as pd
import pytest

from analysis.callback import recording_callbacks
from experiments import reproduce, sharing
from experiments.reproduce import ReproduceConfig
from experiments.study import run_status
from experiments.ledger import Ledger
from keras_resnets.registry import NETWORKS
from trainers.config import RECIPES, TrainConfig


def never_train(config, callbacks=()):
    raise AssertionError(f"{config.model} must not train")


@pytest.mark.parametrize("settings, message", [
    ({"figures": ("cosine", "fig99")}, r"Unknown figures \['fig99'\]; accepted: all, training"),
    ({"width": 0.0}, r"Widths must be in \(0, 1\]"),
    ({"width_of": {"j18-wrn": 2.0}}, r"Widths must be in \(0, 1\].*got 2.0"),
    ({"blocks": 0}, "must be positive"),
    ({"figures": ("sharing",), "sharing_depth": 21}, "Impossible depth 21"),
    ({"figures": ("sharing",), "sharing_depth": 20, "sharing_shared": 3}, "--shared must be in"),
    # j18-resnet110 with one block per stage: its last block changes shape, nothing to unroll
    ({"figures": ("unroll",), "blocks": 1}, r"j18-resnet110 with \{'blocks': \[1, 1, 1\]\}"),
])
def test_bad_settings_fail_before_any_training(tmp_path, settings, message):
    with pytest.raises(ValueError, match=message):
        config = ReproduceConfig(dataset="synthetic", out=str(tmp_path / "out"),
                                 runs=str(tmp_path / "runs"), **settings)
        reproduce.reproduce(config, never_train)
    assert not (tmp_path / "out").exists()


def test_cli_exits_2_with_one_line(capsys):
    assert reproduce.main(["--figures", "fig99"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: Unknown figures") and "Traceback" not in err


def test_figures_choose_networks_measures_and_scale():
    config = ReproduceConfig(figures=("cosine", "unroll"), width=0.25, blocks=4, epochs=10)
    assert config.networks == reproduce.PAPER_NETWORKS == (
        "j18-resnet110", "j18-single", "j18-avgpool", "j18-wrn")
    assert config.measures("j18-resnet110") == ("cosine", "unroll")
    assert config.measures("j18-single") == ("cosine",)
    assert reproduce.network_overrides(config, "j18-avgpool") == {
        "filters": [38, 38, 38], "blocks": [4, 4, 4]}
    assert reproduce.network_overrides(config, "j18-wrn") == {"filters": [40, 80, 160],
                                                               "blocks": [4, 4, 4]}
    run = reproduce.train_config(config, "j18-single")
    assert (run.recipe, run.epochs, run.lr_drops) == ("jastrzebski2018-single", 10,
                                                      (0.2, 0.3, 0.4))
    assert reproduce.reduced_scale(ReproduceConfig(figures=("all",))) == []
    assert reproduce.reduced_scale(config)[:3] == [
        "j18-resnet110 filters x 0.25", "j18-single filters x 0.25", "j18-avgpool filters x 0.25"]
    assert "10 epochs instead of each network's recipe (100 to 300 epochs)" in \
        reproduce.reduced_scale(config)
    own = ReproduceConfig(figures=("cosine",), width=0.5, width_of={"j18-resnet110": 1.0})
    assert "filters" not in reproduce.network_overrides(own, "j18-resnet110")
    assert reproduce.network_overrides(own, "j18-single") == {"filters": [50]}


def test_width_of_on_the_command_line(tmp_path):
    args = reproduce.make_parser().parse_args(["--width-of", "j18-wrn=0.1", "j18-single=0.5"])
    assert args.width_of == [("j18-wrn", 0.1), ("j18-single", 0.5)]
    with pytest.raises(ValueError, match=r"Unknown networks \['j18-wide'\] in --width-of"):
        ReproduceConfig(width_of={"j18-wide": 0.5})


class Trained(Exception):
    """Stops a reproduction at its first training run."""


def test_by_default_the_trainer_records_the_training_figure(tmp_path, monkeypatch):
    """Without a ``train_fn`` every run gets ``analysis.callback.recording_callbacks``: the
    training figure's runs record each epoch (the trainer refuses them without a recorder)."""
    seen = []

    def train(config, recorder=None):
        seen.append((config.model, config.record_every, recorder))
        raise Trained

    monkeypatch.setattr("trainers.train.train", train)
    config = ReproduceConfig(figures=("training",), dataset="synthetic", width=0.05, blocks=1,
                             out=str(tmp_path / "out"), runs=str(tmp_path / "runs"))
    with pytest.raises(Trained):
        reproduce.reproduce(config)
    assert seen == [("j18-resnet110", 1, recording_callbacks)]


@pytest.fixture(scope="module")
def tiny_reproduction(tmp_path_factory):
    """The real trainer and analysis on synthetic data: the intermediate-accuracy figure
    (j18-resnet110 only), 2 blocks per stage at 5% width, one epoch."""
    root = tmp_path_factory.mktemp("reproduce")
    config = ReproduceConfig(figures=("intermediate",), dataset="synthetic",
                             out=str(root / "out"), runs=str(root / "runs"), width=0.05,
                             blocks=2, epochs=2, train_size=64, test_size=32, batch_size=32)
    return config, reproduce.reproduce(config)


@pytest.mark.slow
def test_one_figure_end_to_end_and_nothing_redone(tiny_reproduction):
    config, table = tiny_reproduction
    out = Path(config.out)
    assert list(table["figure"]) == ["Fig. 6"] and table["verdict"].notna().all()
    assert list(pd.read_csv(out / "runs.csv")["run"]) == ["j18-resnet110-seed0"]
    blocks = pd.read_csv(out / "j18-resnet110" / "blocks.csv")
    assert set(blocks["split"]) == {"train", "test"} and len(blocks) == 12
    assert "**Reduced scale**" in (out / "claims.md").read_text()
    analysed = (out / "j18-resnet110" / "blocks.csv").stat().st_mtime_ns
    again = reproduce.reproduce(config, never_train)  # in the ledger, analysed: nothing redone
    pd.testing.assert_frame_equal(again, table)
    assert (out / "j18-resnet110" / "blocks.csv").stat().st_mtime_ns == analysed


# ---------------------------------------------------------------------------------------------
# Nothing written before every check has passed


def small(tmp_path, **settings) -> ReproduceConfig:
    """A reproduction of the intermediate-accuracy figure (j18-resnet110 alone) at a tiny scale,
    into ``tmp_path/out``."""
    return ReproduceConfig(**{"figures": ("intermediate",), "dataset": "synthetic", "width": 0.05,
                              "blocks": 2, "epochs": 2, "out": str(tmp_path / "out"),
                              "runs": str(tmp_path / "runs"), **settings})


def snapshot(folder: Path) -> dict:
    """Every file under ``folder`` and its bytes."""
    return {path: path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


def test_a_ledger_of_other_settings_is_refused_before_anything_is_written(tmp_path):
    """A results folder whose ledger records the network at another scale (a committed one,
    say) keeps every file as it was, reproduce_config.json included."""
    recorded = small(tmp_path, epochs=3)
    Ledger(Path(recorded.out) / "runs.csv").record(
        reproduce.train_config(recorded, "j18-resnet110"), "finished", {"test_error": 50.0})
    (Path(recorded.out) / "reproduce_config.json").write_text(recorded.to_json() + "\n")
    before = snapshot(Path(recorded.out))
    with pytest.raises(ValueError, match="records j18-resnet110-seed0 with other settings"):
        reproduce.reproduce(small(tmp_path), never_train)
    assert snapshot(Path(recorded.out)) == before


def test_a_recorded_run_without_its_model_is_refused_before_anything_is_written(tmp_path):
    """The ledger has the network (so it will not train again) but its analysis is missing and
    its run folder has no final.keras: refused up front, not after writing the config."""
    config = small(tmp_path)
    Ledger(Path(config.out) / "runs.csv").record(
        reproduce.train_config(config, "j18-resnet110"), "finished", {"test_error": 50.0})
    before = snapshot(Path(config.out))
    with pytest.raises(ValueError, match="needs a new analysis .* has no final.keras"):
        reproduce.reproduce(config, never_train)
    assert snapshot(Path(config.out)) == before


def test_a_sharing_ledger_of_other_settings_is_refused_before_anything_is_written(tmp_path):
    recorded = small(tmp_path, figures=("sharing",), epochs=3)
    experiment = reproduce.sharing_config(recorded)
    model, overrides = sharing.experiment_runs(experiment)["shared"]
    Ledger(Path(experiment.out) / "runs.csv").record(
        sharing.train_config(experiment, model, overrides), "finished", {"test_error": 50.0})
    before = snapshot(Path(recorded.out))
    with pytest.raises(ValueError, match="with other settings"):
        reproduce.reproduce(small(tmp_path, figures=("sharing",)), never_train)
    assert snapshot(Path(recorded.out)) == before


def test_the_default_out_is_a_working_folder_not_the_committed_results():
    """Only a deliberate command (the committed run.sh names it) writes results/jastrzebski2018."""
    default = reproduce.make_parser().parse_args([]).out
    assert default == ReproduceConfig().out == "sweeps/jastrzebski2018"
    run_sh = Path(__file__).parents[1] / "results" / "jastrzebski2018" / "run.sh"
    assert "--out results/jastrzebski2018 " in run_sh.read_text()


def test_the_full_scale_command_names_the_figures_and_fresh_folders():
    config = ReproduceConfig(figures=("cosine", "sharing"), data_dir="/data", epochs=3,
                             out="sweeps/j18", runs="sweeps/j18/runs")
    assert reproduce.full_scale_command(config) == (
        "python -m experiments.reproduce --figures cosine sharing --dataset cifar10 "
        "--out sweeps/j18-full --runs sweeps/j18/runs-full --data-dir /data")


def test_the_sharing_study_inherits_the_scale_and_geometry(tmp_path):
    config = small(tmp_path, figures=("sharing",), strided_padding="same", train_size=64)
    experiment = reproduce.sharing_config(config)
    assert (experiment.strided_padding, experiment.train_size, experiment.epochs) == (
        "same", 64, 2)
    assert experiment.out == str(tmp_path / "out" / "sharing")
    assert experiment.runs_dir == tmp_path / "runs" / "sharing"


def legacy_record(ledger: Ledger, run: TrainConfig) -> None:
    """Record ``run`` as the committed ledgers do: a config written before runs recorded
    ``strided_padding`` (so it reads back with Keras's "same" padding)."""
    old = json.loads(run.to_json())
    del old["model_overrides"]["strided_padding"]
    ledger.record(TrainConfig.from_json(json.dumps(old)), "finished", {"test_error": 50.0})


def test_a_run_recorded_with_same_padding_is_reused_when_asked_for_same(tmp_path):
    """The committed reduced-scale runs were trained with "same" padding: run.sh's
    ``--strided-padding same`` finds them in the ledger (nothing to train)."""
    config = small(tmp_path, strided_padding="same")
    run = reproduce.train_config(config, "j18-resnet110")
    assert run.model_overrides["strided_padding"] == "same"
    legacy_record(Ledger(Path(config.out) / "runs.csv"), run)
    status, entry = run_status(run, config.open_ledger())
    assert (status, entry["test_error"]) == ("finished", 50.0)


def test_a_run_recorded_with_same_padding_is_refused_with_the_flag_to_reuse_it(tmp_path):
    same = small(tmp_path, strided_padding="same")
    legacy_record(Ledger(Path(same.out) / "runs.csv"),
                  reproduce.train_config(same, "j18-resnet110"))
    before = snapshot(Path(same.out))
    with pytest.raises(ValueError, match="records j18-resnet110-seed0 trained with "
                                         "strided_padding 'same', but this study asks for "
                                         "'symmetric'; add --strided-padding same"):
        reproduce.reproduce(small(tmp_path), never_train)
    assert snapshot(Path(same.out)) == before


def test_the_committed_run_sh_reuses_the_committed_runs():
    """results/jastrzebski2018/run.sh names the geometry its ledger rows were trained with, and
    every network and sharing run it asks for is in the committed ledgers (nothing trains)."""
    root = Path(__file__).parents[1]
    committed = root / "results" / "jastrzebski2018"
    assert "--strided-padding same" in (committed / "run.sh").read_text()
    saved = json.loads((committed / "reproduce_config.json").read_text())
    config = ReproduceConfig(**{**saved, "figures": tuple(saved["figures"]),
                                "strided_padding": "same", "out": str(committed),
                                "runs": str(root / saved["runs"])})
    for network in config.networks:
        status, _ = run_status(reproduce.train_config(config, network),
                                         config.open_ledger())
        assert status == "finished", network
    experiment = reproduce.sharing_config(config)
    for model, overrides in sharing.experiment_runs(experiment).values():
        status, _ = run_status(sharing.train_config(experiment, model, overrides),
                                         experiment.open_ledger())
        assert status == "finished", model


def test_each_paper_network_is_a_zoo_network_with_a_recipe_of_its_own():
    assert set(reproduce.PAPER_NETWORKS) <= set(NETWORKS)
    assert all(recipe in RECIPES for recipe in reproduce.NETWORK_RECIPES.values())
    assert len(set(reproduce.NETWORK_RECIPES.values())) == len(reproduce.PAPER_NETWORKS)
