"""Jastrzebski et al. 2018's claims judged from measured tables: per-block claims, unrolling at
the scale chosen on the training split, sharing runs found by their identifiers with the noise
margin, the claims report, and the committed reproduction re-judged to the byte."""

import json
from pathlib import Path

import pandas as pd
import pytest

from experiments import j18_claims
from experiments.j18_claims import ABLATIONS, BASELINE, NAIVE, REMEDY, judge, write_claims

COMMITTED = Path(__file__).resolve().parents[1] / "results" / "jastrzebski2018"
REPRODUCED, NOT_REPRODUCED, UNTESTABLE = (
    "reproduced", "not reproduced", "not testable at this scale")  # the words of claims.md


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
    table = judge(out, figures)
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
    table = judge(tmp_path, ("borderline", "unroll", "sharing", "sharing-ablation"))
    assert list(table.columns) == ["figure", "claim", "test", "measured", "verdict"]
    assert len(table) == 13 and set(table["verdict"]) == {UNTESTABLE}


def test_only_the_chosen_figures_are_judged_in_the_papers_order(tmp_path):
    assert list(judge(tmp_path, ("drop", "cosine"))["figure"]) == ["Fig. 3"] * 2 + ["Fig. 4"] * 3
    assert len(judge(tmp_path)) == sum(len(claims) for claims in j18_claims.CLAIMS.values())


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
    table = judge(tmp_path, ("unroll",))
    found = dict(zip(table["claim"], zip(table["verdict"], table["measured"])))
    verdict, measured = found["Unrolling the last block with a scaled output lowers the "
                              "training loss slightly"]
    assert verdict == REPRODUCED and measured.startswith("alpha 0.1:")  # not alpha 1 (test 0.1)
    assert found["... while the test loss rises"][0] == REPRODUCED
    assert found["... and borderline test examples become more often correct"][0] == REPRODUCED
    assert found["The cosine stays negative at every scaled step"][0] == REPRODUCED


LABELS = {NAIVE: "naive", REMEDY: "remedy", BASELINE: "baseline net",
          ABLATIONS[0]: "stats shared", ABLATIONS[1]: "affine shared", ABLATIONS[2]: "gamma 1"}


def write_sharing(out: Path, errors: dict, order=tuple(LABELS)):
    """``sharing/sharing.csv`` with the runs of ``errors`` (by identifier) in ``order``."""
    runs = [run for run in order if run in errors]
    (out / "sharing").mkdir(parents=True)
    pd.DataFrame({"experiment": runs, "label": [LABELS[run] for run in runs],
                  "test_error": [errors[run] for run in runs],
                  "train_error": [errors[run] - 5 for run in runs]}).to_csv(
        out / "sharing" / "sharing.csv", index=False)


def test_sharing_claims_use_the_noise_margin(tmp_path):
    write_sharing(tmp_path, {NAIVE: 12.0, REMEDY: 9.0, BASELINE: 11.5, ABLATIONS[0]: 11.0,
                             ABLATIONS[1]: 10.5, ABLATIONS[2]: 10.2})
    found = verdicts(tmp_path, ("sharing", "sharing-ablation"))
    assert found["Naive sharing is worse than an unshared net of about the same size"] == \
        UNTESTABLE  # 0.5 points apart
    assert found["Unshared BN closes much of the gap"] == REPRODUCED
    assert found["Every part of unshared BN matters"] == REPRODUCED
    assert found["Unshared statistics matter most"] == UNTESTABLE  # 0.5 points apart
    write_claims(tmp_path, judge(tmp_path, ("sharing", "sharing-ablation")), ["epochs 2"], "CMD")
    report = (tmp_path / "claims.md").read_text()
    assert "**Reduced scale**: epochs 2. Full scale: `CMD`" in report
    assert "2 reproduced, 0 not reproduced, 5 not testable at this scale" in report


def test_sharing_runs_are_found_by_identifier_and_shown_by_label(tmp_path):
    # the rows in another order than the experiment's: each claim still reads its own run
    write_sharing(tmp_path, {NAIVE: 14.0, REMEDY: 9.0, BASELINE: 11.5, ABLATIONS[0]: 13.0,
                             ABLATIONS[1]: 10.5, ABLATIONS[2]: 10.2},
                  order=tuple(reversed(LABELS)))
    table = judge(tmp_path, ("sharing", "sharing-ablation")).set_index("claim")
    worse = table.loc["Naive sharing is worse than an unshared net of about the same size"]
    assert worse["verdict"] == REPRODUCED
    assert worse["measured"] == "test error naive shared vs unshared baseline: 14.00 vs 11.50"
    assert table.loc["Every part of unshared BN matters", "measured"] == (
        "unshared BN 9.00; stats shared 13.00; affine shared 10.50; gamma 1 10.20")
    assert table.loc["Unshared statistics matter most", "verdict"] == REPRODUCED


def test_sharing_ablation_claims_wait_for_every_ablation(tmp_path):
    write_sharing(tmp_path, {NAIVE: 14.0, REMEDY: 9.0, BASELINE: 11.5, ABLATIONS[0]: 13.0})
    table = judge(tmp_path, ("sharing-ablation",))
    assert set(table["verdict"]) == {UNTESTABLE}
    assert set(table["measured"]) == {"Fig. 9 ablation not run"}


def test_a_sharing_table_without_identifiers_is_refused(tmp_path):
    (tmp_path / "sharing").mkdir()
    pd.DataFrame({"label": ["shared (naive)"], "test_error": [12.0],
                  "train_error": [7.0]}).to_csv(tmp_path / "sharing" / "sharing.csv", index=False)
    with pytest.raises(ValueError, match="sharing.csv has no 'experiment' column.*shared, "
                                         "shared-bn, baseline"):
        judge(tmp_path, ("sharing",))


def test_gradient_ratio_and_activation_norms_are_read_by_identifier(tmp_path):
    (tmp_path / "sharing").mkdir()
    pd.DataFrame({"experiment": [REMEDY, BASELINE, BASELINE, NAIVE, NAIVE],
                  "label": ["remedy"] + ["baseline net"] * 2 + ["naive"] * 2,
                  "epoch": [0, 0, 1, 0, 1], "ratio": [2.5, 1.0, 2.0, 6.0, 4.0]}).to_csv(
        tmp_path / "sharing" / "gradient_ratio.csv", index=False)
    pd.DataFrame({"experiment": [NAIVE, NAIVE, BASELINE], "label": ["naive", "naive", "b"],
                  "block": [0, 1, 0], "input_norm": [3.0, 40.0, 20.0]}).to_csv(
        tmp_path / "sharing" / "activation_norms.csv", index=False)
    table = judge(tmp_path, ("sharing",)).set_index("claim")
    ratio = table.loc["The gradient norm ratio is much larger under naive sharing"]
    assert ratio["verdict"] == REPRODUCED  # naive 5.0 >= 2 x 2.5
    assert ratio["measured"] == "remedy 2.50, baseline net 1.50, naive 5.00"  # the runs' order
    norms = table.loc["Naive sharing makes activations explode at initialisation"]
    assert norms["verdict"] == REPRODUCED
    assert norms["measured"] == "largest ||h_j|| at initialisation: naive 40.0, baseline 20.0"


def test_the_committed_reproduction_is_rejudged_to_the_byte(tmp_path):
    """Every claim judged again from the committed measurements and written again: the same
    claims.csv and claims.md (the scale line, which ``experiments.reproduce`` words, is read from
    the committed report)."""
    committed = (COMMITTED / "claims.md").read_text()
    scale = committed.splitlines()[2].removeprefix("**Reduced scale**: ")
    reduced, full_command = scale.removesuffix("`").split(". Full scale: `")
    figures = json.loads((COMMITTED / "reproduce_config.json").read_text())["figures"]
    write_claims(tmp_path, judge(COMMITTED, figures), reduced.split("; "), full_command)
    for name in ("claims.csv", "claims.md"):
        assert (tmp_path / name).read_bytes() == (COMMITTED / name).read_bytes(), name


def test_verdicts_are_written_in_the_reports_words():
    vocabulary = j18_claims.VOCABULARY
    assert (vocabulary.holds, vocabulary.fails, vocabulary.untold, vocabulary.pending) == (
        REPRODUCED, NOT_REPRODUCED, UNTESTABLE, UNTESTABLE)
    assert vocabulary.words == (REPRODUCED, NOT_REPRODUCED, UNTESTABLE)
