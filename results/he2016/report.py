"""He et al. 2016's claims beside this study's reduced-scale measurements.

    python results/he2016/report.py      # -> results/he2016/claims.md, claims.csv, rows.md and
                                         #    the block between the he2016 markers of its README.md

Reads the tables ``run.sh`` wrote (``table{1,2,3}/results.csv``) and the ledger ``runs.csv``;
``experiments.he2016_claims`` judges each claim (its docstring: the noise threshold).
"""

from pathlib import Path

from experiments.he2016_claims import write_report

HERE = Path(__file__).resolve().parent

if __name__ == "__main__":
    print(write_report(HERE, readme=HERE / "README.md"))
