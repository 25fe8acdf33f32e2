"""He et al. 2016's claims ("Identity Mappings in Deep Residual Networks", Tables 1-3) judged
from the tables that ``experiments.ablate`` wrote into a study folder (``table{1,2,3}/results.csv``
and the shared ledger ``runs.csv``).

Each claim says that one row of a table has a lower final-epoch test error than some others. Its
margin is the best competitor's error minus the claimed winner's; a margin smaller than the noise
threshold is "cannot tell at this scale". The threshold is the larger of
``experiments.claims.NOISE`` (assumed) and the measured seed-to-seed range of the row the study
trained with the most seeds, so that one-seed rows are never judged on a difference that
reseeding alone produces. Rows not trained yet make their claims "pending". Nothing here reads
anything but final-epoch test errors.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from analysis.tables import markdown_table
from experiments.claims import (NOISE, Claim, Vocabulary, higher_error, judge_claims,
                                write_claims_table)
from experiments.ledger import Ledger

VOCABULARY = Vocabulary(holds="holds", fails="does not hold",
                        untold="cannot tell at this scale", pending="pending")
MARKERS = ("<!-- he2016 results -->", "<!-- /he2016 results -->")


@dataclass(frozen=True)
class Errors:
    """The study's final-epoch test errors by ``(table, row)`` (NaN or absent: not trained yet)
    and the margin under which two of them cannot be told apart."""

    by_row: dict
    threshold: float = NOISE


def lower_error(table: int, better: int, worse) -> Callable:
    """The judge of "row ``better`` of ``table`` has a lower test error than every row of
    ``worse``": its verdict and margin (the best competitor's error minus the claimed
    winner's), pending while any of the rows is not trained."""
    def judge(errors: Errors):
        competitors = [errors.by_row.get((table, row), math.nan) for row in worse]
        best = math.nan if any(math.isnan(e) for e in competitors) else min(competitors)
        return higher_error(best, errors.by_row.get((table, better), math.nan),
                            errors.threshold)
    return judge


def row_beats(table: int, text: str, better: int, worse) -> Claim:
    """The claim ``text`` of Table ``table``: row ``better`` beats every row of ``worse``."""
    return Claim(f"Table {table}", text, lower_error(table, better, tuple(worse)))


# The paper's claims, each row numbered as in its table (experiments.ablate).
CLAIMS = (
    row_beats(1, "the identity shortcut (original) beats every other shortcut", 1, range(2, 12)),
    row_beats(1, "scaling the shortcut (0.5 on both paths) hurts", 1, (4,)),
    row_beats(1, "exclusive gating is worse with b_g = 0 than with b_g = -6", 6, (5,)),
    row_beats(1, "shortcut-only gating is worse with b_g = 0 than with b_g = -6", 9, (8,)),
    row_beats(1, "a 1x1 conv shortcut is worse than the identity", 1, (10,)),
    row_beats(1, "a dropout shortcut is worse than the identity", 1, (11,)),
    row_beats(2, "full pre-activation beats every other placement", 5, (1, 2, 3, 4)),
    row_beats(2, "BN after addition is worse than the original unit", 1, (2,)),
    row_beats(2, "ReLU before addition is worse than the original unit", 1, (3,)),
    row_beats(3, "pre-activation beats the original unit (two convs per unit)", 4, (3,)),
    row_beats(3, "pre-activation beats the original unit (one conv per unit)", 2, (1,)),
)


@dataclass(frozen=True)
class SeedSpread:
    """The final test errors of the study's most-seeded row (``errors`` sorted)."""

    name: str
    errors: tuple

    @property
    def range(self) -> float:
        """Largest minus smallest error (nan with fewer than two seeds)."""
        return self.errors[-1] - self.errors[0] if len(self.errors) > 1 else math.nan

    @property
    def threshold(self) -> float:
        """The margin under which a claim cannot be told: ``NOISE`` or the measured range."""
        return NOISE if math.isnan(self.range) else max(NOISE, self.range)

    def describe(self) -> str:
        """One line for ``claims.md``: the measured spread beside the threshold it sets."""
        if len(self.errors) < 2:
            return (f"Seed spread: not measured yet (no row has two finished seeds); the "
                    f"{NOISE:g}-point threshold is an assumption until it is.")
        return (f"Seed spread: {self.name} over {len(self.errors)} seeds, test error "
                f"{', '.join(f'{e:.2f}' for e in self.errors)} (range {self.range:.2f} points); "
                f"threshold = max({NOISE:g}, range) = {self.threshold:.2f} points.")


def seed_spread(ledger: Ledger) -> SeedSpread:
    """The finished runs of the row with the most finished seeds in ``ledger``. A row is a run
    name without its ``-seed<k>`` suffix: the model with its overrides (one model name holds
    several rows, e.g. one per gate bias)."""
    rows = ledger.rows()
    finished = rows[rows["outcome"] == "finished"]
    if finished.empty:
        return SeedSpread("", ())
    row = finished["run"].str.replace(r"-seed\d+$", "", regex=True)
    name = row.value_counts().idxmax()
    return SeedSpread(name, tuple(sorted(finished.loc[row == name, "test_error"])))


def load_tables(study: Path) -> pd.DataFrame:
    """Every ``table{N}/results.csv`` of ``study``, with a ``table`` column."""
    frames = [pd.read_csv(path).assign(table=int(path.parent.name[-1]))
              for path in sorted(Path(study).glob("table[0-9]/results.csv"))]
    if not frames:
        raise ValueError(f"No table*/results.csv under {study}: run experiments.ablate first.")
    return pd.concat(frames, ignore_index=True)


def rows_table(tables: pd.DataFrame) -> pd.DataFrame:
    """Every row of the tables: the paper's number(s) beside the measured error."""
    return pd.DataFrame({
        "table": tables["table"], "row": tables["row"], "case": tables["case"],
        "model": tables["model"] + tables["overrides"].map(
            lambda o: f" {o}" if isinstance(o, str) and o else ""),
        "paper error % (full scale)": tables["paper_error"],
        "measured error % (reduced)": tables["error_median"].round(2),
        "outcome": tables["outcome"]})


def claims_table(tables: pd.DataFrame, threshold: float = NOISE) -> pd.DataFrame:
    """One line per claim of ``CLAIMS``: ``Table N: words``, its verdict and margin at
    ``threshold``."""
    errors = Errors(dict(zip(zip(tables["table"], tables["row"]), tables["error_median"])),
                    threshold)
    judged = judge_claims(CLAIMS, errors, VOCABULARY)
    return pd.DataFrame({"claim": judged["source"] + ": " + judged["claim"],
                         "verdict": judged["verdict"],
                         "margin (points)": [round(m, 2) for m in judged["measured"]]})


def write_report(study: Path, readme: Path | None = None) -> str:
    """``claims.md``, ``claims.csv`` and ``rows.md`` in ``study`` (and the block between
    ``MARKERS`` of ``readme``); returns the Markdown written into the block."""
    study = Path(study)
    tables = load_tables(study)
    spread = seed_spread(Ledger(study / "runs.csv"))
    rows_md = markdown_table(rows_table(tables), missing="pending")
    (study / "rows.md").write_text(rows_md + "\n")
    claims_md = write_claims_table(
        study, claims_table(tables, spread.threshold),
        "He et al. 2016's claims at this study's scale",
        f"One seed per row; margins under {spread.threshold:.2f} points are \"cannot tell at "
        "this scale\". Margin = the best competitor's test error minus the claimed winner's.",
        spread.describe())
    text = f"{rows_md}\n\n{claims_md}\n\n{spread.describe()}"
    if readme is not None:
        replace_block(Path(readme), text)
    return text


def replace_block(readme: Path, text: str) -> None:
    """Replace what lies between ``MARKERS`` in ``readme`` with ``text``."""
    content = readme.read_text()
    if MARKERS[0] not in content or MARKERS[1] not in content:
        raise ValueError(f"{readme} lacks the markers {MARKERS[0]} ... {MARKERS[1]}.")
    start, end = content.index(MARKERS[0]), content.index(MARKERS[1])
    readme.write_text(content[:start + len(MARKERS[0])] + "\n" + text + "\n" + content[end:])
