"""He et al. 2016's claims beside this study's reduced-scale measurements.

    python results/he2016/report.py      # -> results/he2016/claims.md, claims.csv, rows.md and
                                         #    the block between the he2016 markers of README.md

Reads the tables ``run.sh`` wrote (``table{1,2,3}/results.csv``) and judges each claim of the
paper from their measured final-epoch test errors. One seed per row, so a claim that rests on a
difference smaller than ``NOISE`` points is "cannot tell at this scale": the seed-to-seed spread
of a 20-epoch ResNet-20 on 10,000 images is of that order (not yet measured here; see
``claims.md``). Rows not trained yet make their claims "pending".
"""

import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from trainers.tables import markdown_table

HERE = Path(__file__).resolve().parent
README = HERE.parents[1] / "README.md"
MARKERS = ("<!-- he2016 results -->", "<!-- /he2016 results -->")
NOISE = 1.0  # test-error points two single-seed runs may differ by with no real effect


@dataclass(frozen=True)
class Claim:
    """``better`` has a lower test error than every model in ``worse`` (table, row number)."""

    text: str
    better: tuple
    worse: tuple


CLAIMS = (
    Claim("Table 1: the identity shortcut (original) beats every other shortcut",
          (1, 1), tuple((1, row) for row in range(2, 12))),
    Claim("Table 1: scaling the shortcut (0.5 on both paths) hurts", (1, 1), ((1, 4),)),
    Claim("Table 1: exclusive gating is worse with b_g = 0 than with b_g = -6", (1, 6), ((1, 5),)),
    Claim("Table 1: shortcut-only gating is worse with b_g = 0 than with b_g = -6",
          (1, 9), ((1, 8),)),
    Claim("Table 1: a 1x1 conv shortcut is worse than the identity", (1, 1), ((1, 10),)),
    Claim("Table 1: a dropout shortcut is worse than the identity", (1, 1), ((1, 11),)),
    Claim("Table 2: full pre-activation beats every other placement", (2, 5),
          ((2, 1), (2, 2), (2, 3), (2, 4))),
    Claim("Table 2: BN after addition is worse than the original unit", (2, 1), ((2, 2),)),
    Claim("Table 2: ReLU before addition is worse than the original unit", (2, 1), ((2, 3),)),
    Claim("Table 3: pre-activation beats the original unit (two convs per unit)", (3, 4),
          ((3, 3),)),
    Claim("Table 3: pre-activation beats the original unit (one conv per unit)", (3, 2),
          ((3, 1),)),
)


def load_tables() -> pd.DataFrame:
    frames = [pd.read_csv(path).assign(table=int(path.parent.name[-1]))
              for path in sorted(HERE.glob("table*/results.csv"))]
    return pd.concat(frames, ignore_index=True)


def verdict(claim: Claim, errors: dict) -> tuple[str, float]:
    """``holds``, ``does not hold``, ``cannot tell at this scale`` or ``pending``, and the
    margin (worst competitor's error minus the claimed winner's)."""
    wanted = [claim.better, *claim.worse]
    if any(math.isnan(errors.get(key, math.nan)) for key in wanted):
        return "pending", math.nan
    margin = min(errors[key] for key in claim.worse) - errors[claim.better]
    if abs(margin) < NOISE:
        return "cannot tell at this scale", margin
    return ("holds" if margin > 0 else "does not hold"), margin


def rows_table(tables: pd.DataFrame) -> pd.DataFrame:
    """Every row of the three tables: the paper's number(s) beside the measured error."""
    return pd.DataFrame({
        "table": tables["table"], "row": tables["row"], "case": tables["case"],
        "model": tables["model"] + tables["overrides"].map(
            lambda o: f" {o}" if isinstance(o, str) and o else ""),
        "paper error % (full scale)": tables["paper_error"],
        "measured error % (reduced)": tables["error_median"].round(2),
        "outcome": tables["outcome"]})


def claims_table(tables: pd.DataFrame) -> pd.DataFrame:
    errors = {(t, r): e for t, r, e in zip(tables["table"], tables["row"],
                                            tables["error_median"])}
    rows = []
    for claim in CLAIMS:
        state, margin = verdict(claim, errors)
        rows.append({"claim": claim.text, "verdict": state, "margin (points)": round(margin, 2)})
    return pd.DataFrame(rows)


def seed_spread() -> str:
    """The measured spread of preact20 over seeds at this scale (``run.sh``'s last step)."""
    ledger = pd.read_csv(HERE / "runs.csv")
    errors = sorted(ledger.loc[(ledger["model"] == "preact20") & (ledger["outcome"] == "finished"),
                               "test_error"])
    if len(errors) < 2:
        return (f"Seed spread: not measured yet ({len(errors)} of preact20's 3 seeds trained); the "
                f"{NOISE:g}-point threshold is an assumption until it is.")
    return (f"Seed spread: preact20 over {len(errors)} seeds, test error "
            f"{', '.join(f'{e:.2f}' for e in errors)} (range {errors[-1] - errors[0]:.2f} "
            f"points), against the {NOISE:g}-point threshold.")


def update_readme(text: str) -> None:
    """Replace the block between ``MARKERS`` in the project README with ``text``."""
    readme = README.read_text()
    start, end = readme.index(MARKERS[0]), readme.index(MARKERS[1])
    README.write_text(readme[:start + len(MARKERS[0])] + "\n" + text + "\n" + readme[end:])


def main():
    tables = load_tables()
    rows, claims = rows_table(tables), claims_table(tables)
    claims.to_csv(HERE / "claims.csv", index=False)
    rows_md = markdown_table(rows, missing="pending")
    claims_md = markdown_table(claims, missing="")
    (HERE / "rows.md").write_text(rows_md + "\n")
    (HERE / "claims.md").write_text(
        "# He et al. 2016's claims at this study's scale\n\n"
        f"One seed per row; margins under {NOISE:g} point are called \"cannot tell at this "
        f"scale\". Margin = the best competitor's test error minus the claimed winner's.\n\n"
        + claims_md + "\n\n" + seed_spread() + "\n")
    spread = seed_spread()
    update_readme(f"{rows_md}\n\n{claims_md}\n\n{spread}")
    print(rows_md, claims_md, spread, sep="\n\n")


if __name__ == "__main__":
    main()
