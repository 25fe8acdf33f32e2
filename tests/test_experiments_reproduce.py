"""experiments.reproduce and experiments.claims: one command per figure, checked before training,
and each of Jastrzebski et al.'s claims judged from measured tables."""

import json
from pathlib import Path

import pandas as pd
import pytest

from analysis.callback import recording_callbacks
from experiments import claims, reproduce
from experiments.claims import NOT_REPRODUCED, REPRODUCED, UNTESTABLE
from experiments.reproduce import ReproduceConfig
from experiments.ledger import Ledger


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
    assert config.networks == ("j18-resnet110", "j18-single", "j18-avgpool", "j18-wrn")
    assert config.measures("j18-resnet110") == ("cosine", "unroll")
    assert config.measures("j18-single") == ("cosine",)
    assert reproduce.network_overrides(config, "j18-avgpool") == {
        "filters": [38, 38, 38], "blocks": [4, 4, 4]}
    assert reproduce.network_overrides(config, "j18-wrn") == {"filters": [40, 80, 160],
                                                               "blocks": [4, 4, 4]}
    run = reproduce.train_config(config, "j18-single")
    assert (run.recipe, run.epochs, run.lr_drops) == ("jastrzebski2018-single", 10,
                                                      (0.2, 0.3, 0.4))
    assert ReproduceConfig(figures=("all",)).reduced() == []
    assert config.reduced()[0] == "j18-resnet110 filters x 0.25"
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

    monkeypatch.setattr(reproduce, "train", train)
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
# Claims, judged from hand-made tables


def write_blocks(out: Path, network: str, cosine, l2, drop, accuracy=0.9):
    rows = [{"split": split, "block": j, "stage": 1, "cosine": c, "l2_ratio": r,
             "drop_accuracy": d, "intermediate_accuracy": float("nan")}
            for split in ("train", "test") for j, (c, r, d) in enumerate(zip(cosine, l2, drop))]
    (out / network).mkdir(parents=True)
    pd.DataFrame(rows).to_csv(out / network / "blocks.csv", index=False)
    splits = {split: {"examples": 100, "accuracy": accuracy, "loss": 0.3}
              for split in ("train", "test")}
    (out / network / "summary.json").write_text(json.dumps({"splits": splits}))


def verdicts(out, figures) -> dict:
    table = claims.judge(out, figures)
    return dict(zip(table["claim"], table["verdict"]))


def test_block_claims_follow_the_measured_numbers(tmp_path):
    # a single-representation net as the paper describes it, and a ResNet whose first block
    # changes the representation as much: the "milder in the ResNet" claim fails
    write_blocks(tmp_path, "j18-single", cosine=[-0.1, -0.2, -0.3, -0.4],
                 l2=[2.0, 0.3, 0.2, 0.1], drop=[0.12, 0.85, 0.89, 0.895])
    write_blocks(tmp_path, "j18-resnet110", cosine=[-0.1, 0.2, -0.3, -0.4],
                 l2=[3.0, 0.3, 0.2, 0.1], drop=[0.8, 0.85, 0.89, 0.895])
    found = verdicts(tmp_path, ("cosine", "l2", "drop"))
    assert found["The cosine loss is negative for all residual blocks"] == NOT_REPRODUCED
    assert found["... especially for the higher residual blocks"] == REPRODUCED
    assert found["Single-representation and pooling nets: the first blocks change the "
                 "representation a lot, later blocks much less"] == REPRODUCED
    assert found["The effect is milder in the original ResNet and the WRN"] == NOT_REPRODUCED
    assert found["Dropping one of the first blocks of the single-representation and pooling "
                 "nets is catastrophic"] == REPRODUCED
    assert found["... dropping most higher blocks costs little"] == REPRODUCED
    assert found["Dropping is not drastic anywhere in the original ResNet and the WRN"] == \
        REPRODUCED


def test_claims_of_figures_not_run_are_not_testable(tmp_path):
    table = claims.judge(tmp_path, ("borderline", "unroll", "sharing", "sharing-ablation"))
    assert len(table) == 13 and set(table["verdict"]) == {UNTESTABLE}


def write_unroll(out: Path, train_loss, test_loss, borderline_accuracy):
    """Two scales; alpha 0.1 has the smaller training loss after the last step."""
    rows = []
    for split, (small, large) in (("train", train_loss), ("test", test_loss)):
        for alpha, end in ((1.0, large), (0.1, small)):
            for group, examples in (("borderline", 10), ("correct", 50), ("all", 100)):
                for step, loss in ((0, 0.5), (1, end)):
                    accuracy = borderline_accuracy[step] if group == "borderline" else 0.9
                    rows.append({"split": split, "update": "scaled", "alpha": alpha,
                                 "group": group, "examples": examples, "step": step,
                                 "accuracy": accuracy, "loss": loss, "cosine": -0.1})
    (out / "j18-resnet110").mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(out / "j18-resnet110" / "unroll.csv", index=False)


def test_unrolling_scale_is_chosen_on_the_training_split(tmp_path):
    write_unroll(tmp_path, train_loss=(0.4, 9.0), test_loss=(0.7, 0.1),
                 borderline_accuracy=(0.4, 0.5))
    table = claims.judge(tmp_path, ("unroll",))
    found = dict(zip(table["claim"], zip(table["verdict"], table["measured"])))
    verdict, measured = found["Unrolling the last block with a scaled output lowers the "
                              "training loss slightly"]
    assert verdict == REPRODUCED and measured.startswith("alpha 0.1:")  # not alpha 1 (test 0.1)
    assert found["... while the test loss rises"][0] == REPRODUCED
    assert found["... and borderline test examples become more often correct"][0] == REPRODUCED
    assert found["The cosine stays negative at every scaled step"][0] == REPRODUCED


def write_sharing(out: Path, errors: dict):
    labels = ["shared (naive)", "shared convs, unshared BN", "unshared baseline",
              *claims.ABLATIONS]
    (out / "sharing").mkdir(parents=True)
    pd.DataFrame({"label": labels, "test_error": [errors[label] for label in labels],
                  "train_error": [errors[label] - 5 for label in labels]}).to_csv(
        out / "sharing" / "sharing.csv", index=False)


def test_sharing_claims_use_the_noise_margin(tmp_path):
    write_sharing(tmp_path, {"shared (naive)": 12.0, "shared convs, unshared BN": 9.0,
                             "unshared baseline": 11.5, claims.ABLATIONS[0]: 11.0,
                             claims.ABLATIONS[1]: 10.5, claims.ABLATIONS[2]: 10.2})
    found = verdicts(tmp_path, ("sharing", "sharing-ablation"))
    assert found["Naive sharing is worse than an unshared net of about the same size"] == \
        UNTESTABLE  # 0.5 points apart
    assert found["Unshared BN closes much of the gap"] == REPRODUCED
    assert found["Every part of unshared BN matters"] == REPRODUCED
    assert found["Unshared statistics matter most"] == UNTESTABLE  # 0.5 points apart
    claims.write_claims(tmp_path, claims.judge(tmp_path, ("sharing", "sharing-ablation")),
                        ["epochs 2"], "CMD")
    report = (tmp_path / "claims.md").read_text()
    assert "**Reduced scale**: epochs 2. Full scale: `CMD`" in report
    assert "2 reproduced, 0 not reproduced, 5 not testable at this scale" in report


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
    from experiments import sharing

    recorded = small(tmp_path, figures=("sharing",), epochs=3)
    experiment = reproduce.sharing_config(recorded)
    model, overrides = sharing.experiment_runs(experiment)["shared (naive)"]
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
