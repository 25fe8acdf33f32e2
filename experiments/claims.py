"""What judging a paper's claims takes, whichever the paper: the claim record, the verdicts, the
one noise margin, the one comparison of two errors, and the claims table a study writes.

Each paper's module lists its claims as data (``experiments.he2016_claims`` for He et al. 2016,
"Identity Mappings in Deep Residual Networks", Tables 1-3; ``experiments.j18_claims`` for
Jastrzebski et al. 2018, "Residual Connections Encourage Iterative Inference", Figures 2-9),
each with a small function that turns the study's measurements into a ``Verdict``. The paper's
``Vocabulary`` then writes each verdict in the words its tables have always used.

Both papers' studies train one seed per row at reduced scale, so a difference of test errors
smaller than ``NOISE`` points cannot be told from reseeding alone (``higher_error``).
"""

import enum
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
from pathlib import Path

import pandas as pd

from analysis.tables import markdown_table

NOISE = 1.0  # test-error points two single-seed runs may differ by with no real effect
COLUMNS = ("source", "claim", "test", "measured", "verdict")  # of ``judge_claims``


class Verdict(enum.Enum):
    """What a claim's test found, before a paper's words are put on it."""

    HOLDS = "holds"  # the measurements agree with the claim
    FAILS = "fails"  # they contradict it
    UNTOLD = "untold"  # the difference is under the noise margin
    PENDING = "pending"  # what the claim needs is not measured (yet, or at this scale)

    @classmethod
    def of(cls, agrees: bool) -> "Verdict":
        """``HOLDS`` when the measurements agree with the claim, else ``FAILS``."""
        return cls.HOLDS if agrees else cls.FAILS


@dataclass(frozen=True)
class Vocabulary:
    """The words a paper's claims tables give each ``Verdict`` (two verdicts may share one)."""

    holds: str
    fails: str
    untold: str
    pending: str

    def word(self, verdict: Verdict) -> str:
        """The word written for ``verdict``."""
        return getattr(self, verdict.name.lower())

    @property
    def words(self) -> tuple[str, ...]:
        """Every word once, in the order holds, fails, untold, pending."""
        return tuple(dict.fromkeys(getattr(self, f.name) for f in fields(self)))


@dataclass(frozen=True)
class Claim:
    """One claim of a paper: where the paper makes it (``source``: "Fig. 3", "Table 1"), its
    words, and ``judge``, a function of the study's measurements returning the ``Verdict`` and
    what was measured; ``test`` states the threshold that turns the words into a test, where the
    paper's list states none for all claims at once."""

    source: str
    text: str
    judge: Callable
    test: str = ""


def higher_error(worse: float, better: float,
                 threshold: float = NOISE) -> tuple[Verdict, float]:
    """The claim "``worse`` has a higher error than ``better``" and its margin ``worse -
    better``: ``PENDING`` while either is not measured (NaN), ``UNTOLD`` when the margin is
    smaller than ``threshold`` either way, else ``HOLDS`` or ``FAILS`` by its sign."""
    if math.isnan(worse) or math.isnan(better):
        return Verdict.PENDING, math.nan
    margin = worse - better
    if abs(margin) < threshold:
        return Verdict.UNTOLD, margin
    return Verdict.of(margin > 0), margin


def judge_claims(claims: Iterable[Claim], measured, vocabulary: Vocabulary) -> pd.DataFrame:
    """One row per claim (``COLUMNS``): where the paper makes it, its words, the test, what
    ``claim.judge(measured)`` measured and the verdict in ``vocabulary``'s words."""
    rows = []
    for claim in claims:
        verdict, found = claim.judge(measured)
        rows.append((claim.source, claim.text, claim.test, found, vocabulary.word(verdict)))
    return pd.DataFrame(rows, columns=list(COLUMNS))


def write_claims_table(folder: Path, claims: pd.DataFrame, title: str, intro: str,
                       notes: str = "") -> str:
    """``claims.csv`` (every column of ``claims``) and ``claims.md`` (``# title``, ``intro``,
    the table, then ``notes`` if any) in ``folder``; returns the Markdown table, missing values
    (a claim still pending) left blank."""
    folder = Path(folder)
    claims.to_csv(folder / "claims.csv", index=False)
    table = markdown_table(claims, missing="")
    ending = f"\n{notes}\n" if notes else ""
    (folder / "claims.md").write_text(f"# {title}\n\n{intro}\n\n{table}\n{ending}")
    return table
