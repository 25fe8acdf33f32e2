"""experiments.claims, the framework both papers' claims share: the one comparison with the noise
margin, verdicts written in a paper's own words, and the claims table on disk."""

import math

import pandas as pd
import pytest

from experiments.claims import (NOISE, Claim, Verdict, Vocabulary, higher_error, judge_claims,
                                write_claims_table)

WORDS = Vocabulary(holds="yes", fails="no", untold="unclear", pending="unclear")


@pytest.mark.parametrize("worse, better, threshold, expected", [
    (12.0, 9.0, NOISE, (Verdict.HOLDS, 3.0)),
    (9.0, 12.0, NOISE, (Verdict.FAILS, -3.0)),
    (12.0, 11.5, NOISE, (Verdict.UNTOLD, 0.5)),  # under the noise margin, either way
    (11.5, 12.0, NOISE, (Verdict.UNTOLD, -0.5)),
    (12.0, 11.0, NOISE, (Verdict.HOLDS, 1.0)),  # exactly the margin is enough
    (28.5, 27.0, 2.0, (Verdict.UNTOLD, 1.5)),  # a wider threshold (a measured seed spread)
    (math.nan, 27.0, NOISE, (Verdict.PENDING, math.nan)),
    (27.0, math.nan, NOISE, (Verdict.PENDING, math.nan)),
])
def test_higher_error_needs_the_noise_margin(worse, better, threshold, expected):
    verdict, margin = higher_error(worse, better, threshold)
    assert verdict is expected[0]
    assert margin == pytest.approx(expected[1], nan_ok=True)


def test_a_vocabulary_writes_each_verdict_in_the_papers_words_and_lists_each_word_once():
    assert [WORDS.word(v) for v in Verdict] == ["yes", "no", "unclear", "unclear"]
    assert WORDS.words == ("yes", "no", "unclear")
    assert Verdict.of(True) is Verdict.HOLDS and Verdict.of(False) is Verdict.FAILS


def test_claims_are_judged_in_order_on_the_measurements_given():
    claims = (Claim("Fig. 1", "a is lower", lambda m: higher_error(m["b"], m["a"]), test="a < b"),
              Claim("Table 2", "c was measured", lambda m: (Verdict.PENDING, "not run")))
    table = judge_claims(claims, {"a": 1.0, "b": 3.0}, WORDS)
    assert list(table.columns) == ["source", "claim", "test", "measured", "verdict"]
    assert table.values.tolist() == [["Fig. 1", "a is lower", "a < b", 2.0, "yes"],
                                     ["Table 2", "c was measured", "", "not run", "unclear"]]


def test_the_claims_table_is_written_as_csv_and_markdown(tmp_path):
    claims = pd.DataFrame({"claim": ["x | y", "z"], "verdict": ["yes", "pending"],
                           "margin (points)": [1.25, math.nan]})
    table = write_claims_table(tmp_path, claims, "Title", "Intro.", "Notes.")
    assert table == ("| claim | verdict | margin (points) |\n|---|---|---|\n"
                     "| x \\| y | yes | 1.25 |\n| z | pending |  |")
    assert (tmp_path / "claims.md").read_text() == f"# Title\n\nIntro.\n\n{table}\n\nNotes.\n"
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "claims.csv"), claims)
    write_claims_table(tmp_path, claims, "Title", "Intro.")
    assert (tmp_path / "claims.md").read_text() == f"# Title\n\nIntro.\n\n{table}\n"
