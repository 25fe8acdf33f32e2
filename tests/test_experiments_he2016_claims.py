"""He et al. 2016's claims judged from ablation tables: verdicts in the paper's words, the
measured noise threshold, the report files (README block included), and the committed study
re-judged to the byte."""

import math
import shutil
from pathlib import Path

import pandas as pd
import pytest

from experiments.claims import NOISE, Verdict
from experiments.he2016_claims import (CLAIMS, VOCABULARY, Errors, SeedSpread, lower_error,
                                       seed_spread, write_report)
from experiments.ledger import COLUMNS, Ledger

COMMITTED = Path(__file__).resolve().parents[1] / "results" / "he2016"
PREACT_BEATS_ORIGINAL = lower_error(3, 4, (3,))  # Table 3: row 4 beats row 3


@pytest.mark.parametrize("errors, expected", [
    ({(3, 4): 27.0, (3, 3): 29.0}, (Verdict.HOLDS, 2.0)),
    ({(3, 4): 29.0, (3, 3): 27.0}, (Verdict.FAILS, -2.0)),
    ({(3, 4): 27.0, (3, 3): 27.5}, (Verdict.UNTOLD, 0.5)),
    ({(3, 4): 27.0, (3, 3): math.nan}, (Verdict.PENDING, math.nan)),
    ({(3, 4): 27.0}, (Verdict.PENDING, math.nan)),
])
def test_verdict_from_the_margin(errors, expected):
    verdict, margin = PREACT_BEATS_ORIGINAL(Errors(errors))
    assert verdict is expected[0]
    assert margin == pytest.approx(expected[1], nan_ok=True)


def test_the_best_competitor_sets_the_margin():
    claim = next(c for c in CLAIMS if c.text.startswith("full pre-activation"))
    errors = {(2, 1): 29.0, (2, 2): 26.8, (2, 3): 38.0, (2, 4): 28.1, (2, 5): 27.4}
    assert claim.source == "Table 2"
    assert claim.judge(Errors(errors)) == (Verdict.UNTOLD, pytest.approx(-0.6))


def test_one_untrained_competitor_keeps_the_claim_pending():
    claim = next(c for c in CLAIMS if c.text.startswith("full pre-activation"))
    errors = {(2, 1): 29.0, (2, 2): 26.8, (2, 3): math.nan, (2, 4): 28.1, (2, 5): 20.0}
    assert claim.judge(Errors(errors))[0] is Verdict.PENDING


def test_verdicts_are_written_in_the_reports_words():
    assert [VOCABULARY.word(v) for v in Verdict] == ["holds", "does not hold",
                                                     "cannot tell at this scale", "pending"]


def test_a_measured_seed_spread_raises_the_threshold():
    errors = {(3, 4): 27.0, (3, 3): 28.5}
    one_seed = SeedSpread("p", (27.0,)).threshold
    assert PREACT_BEATS_ORIGINAL(Errors(errors, one_seed))[0] is Verdict.HOLDS
    wide = SeedSpread("p", (26.0, 27.0, 28.0))
    assert wide.threshold == 2.0
    assert PREACT_BEATS_ORIGINAL(Errors(errors, wide.threshold))[0] is Verdict.UNTOLD
    assert SeedSpread("p", (27.0, 27.3)).threshold == NOISE


def write_ledger(study, runs):
    """A ``runs.csv`` with ``(row name, seed, outcome, error)`` rows; the model is the row name
    up to any ``-gate_bias`` override."""
    pd.DataFrame([{"run": f"{n}-seed{s}", "model": n.split("-gate_bias")[0], "seed": s,
                   "outcome": o, "test_error": e, "test_accuracy": None, "parameters": None,
                   "epochs": None, "iterations": None, "config": "{}"}
                  for n, s, o, e in runs], columns=COLUMNS).to_csv(study / "runs.csv", index=False)


def test_seed_spread_reads_the_most_seeded_row_not_model(tmp_path):
    gated = "resnet20-gate-exclusive"
    write_ledger(tmp_path, [(gated, 0, "finished", 51.3), (f"{gated}-gate_bias0", 0, "finished",
                                                            29.3),
                            (f"{gated}-gate_bias-7", 0, "finished", 55.7),
                            ("preact20", 0, "finished", 27.4), ("preact20", 1, "finished", 28.6),
                            ("preact20", 2, "diverged", None)])
    spread = seed_spread(Ledger(tmp_path / "runs.csv"))
    assert (spread.name, spread.errors) == ("preact20", (27.4, 28.6))
    assert spread.range == pytest.approx(1.2) and spread.threshold == pytest.approx(1.2)
    assert "preact20 over 2 seeds" in spread.describe()
    assert "not measured yet" in seed_spread(Ledger(tmp_path / "none.csv")).describe()


def table3(study, errors):
    """``table3/results.csv`` with the four rows' median errors (nan: not trained yet)."""
    (study / "table3").mkdir(parents=True)
    pd.DataFrame({"row": [1, 2, 3, 4], "case": ["a", "b", "c", "d"],
                  "model": ["resnet8-1conv", "preact8-1conv", "resnet8", "preact8"],
                  "overrides": ["", "", "", ""], "paper_error": ["9.90", "8.91", "6.61", "6.37"],
                  "error_median": errors, "outcome": ["finished"] * 4}).to_csv(
        study / "table3" / "results.csv", index=False)


def test_report_files_and_readme_block(tmp_path):
    table3(tmp_path, [37.4, 30.1, 28.9, 27.4])
    write_ledger(tmp_path, [("preact8", 0, "finished", 27.4)])
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- he2016 results -->\nstale block\n"
                      "<!-- /he2016 results -->\nend\n")
    text = write_report(tmp_path, readme)
    claims = pd.read_csv(tmp_path / "claims.csv").set_index("claim")["verdict"]
    assert claims["Table 3: pre-activation beats the original unit (one conv per unit)"] == "holds"
    assert claims["Table 3: pre-activation beats the original unit (two convs per unit)"] == \
        "holds"
    assert claims["Table 1: the identity shortcut (original) beats every other shortcut"] == \
        "pending"
    assert "| 3 | 2 | b | preact8-1conv | 8.91 | 30.1 | finished |" in (tmp_path / "rows.md"
                                                                      ).read_text()
    content = readme.read_text()
    assert "stale block" not in content and text in content
    assert content.startswith("intro\n") and content.endswith("end\n")


def test_report_errors_name_what_is_missing(tmp_path):
    with pytest.raises(ValueError, match="No table.*results.csv.*experiments.ablate"):
        write_report(tmp_path)
    table3(tmp_path, [37.4, 30.1, 28.9, 27.4])
    (tmp_path / "README.md").write_text("no markers\n")
    with pytest.raises(ValueError, match="lacks the markers"):
        write_report(tmp_path, tmp_path / "README.md")


def test_the_committed_study_is_rejudged_to_the_byte(tmp_path):
    for table in ("table1", "table2", "table3"):
        (tmp_path / table).mkdir()
        shutil.copy(COMMITTED / table / "results.csv", tmp_path / table)
    shutil.copy(COMMITTED / "runs.csv", tmp_path)
    shutil.copy(COMMITTED / "README.md", tmp_path)
    write_report(tmp_path, tmp_path / "README.md")
    for name in ("claims.md", "claims.csv", "rows.md", "README.md"):
        assert (tmp_path / name).read_bytes() == (COMMITTED / name).read_bytes(), name
