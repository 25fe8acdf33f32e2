"""Jastrzebski et al. 2018's claims judged on the shipped, well-trained CIFAR-10 nets.

    python results/jastrzebski2018/pretrained/judge.py   # after run.sh's analyses

Each net is judged by the reduced-scale study's own claim code (``experiments.j18_claims``) in the
place of the paper's original ResNet (``j18-resnet110``), the role a plain CIFAR ResNet plays;
claims about the other networks (single-representation, pooling, wide) and about training or
sharing are not testable here. Writes ``claims.csv`` and ``claims.md`` beside this file, with
the reduced-scale verdict of each claim (``../claims.csv``) for comparison.
"""

import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))  # run as a script from anywhere

from analysis.report import markdown_table  # noqa: E402
from experiments.j18_claims import judge  # noqa: E402

HERE = Path(__file__).resolve().parent
NETWORKS = ("preact20", "resnet20")
FIGURES = ("cosine", "l2", "drop", "intermediate", "borderline", "unroll")  # what run.sh measures


def _judged(net: str) -> pd.DataFrame:
    """The claims judged with ``net`` in the original ResNet's place, named as itself."""
    claims = judge(HERE, FIGURES, folders={"j18-resnet110": net})
    return claims.assign(network=net, measured=claims["measured"].str.replace(
        "j18-resnet110", net, regex=False))


def pretrained_claims() -> pd.DataFrame:
    """One row per (network, claim): the verdict on the pretrained net and at reduced scale."""
    reduced = pd.read_csv(HERE.parent / "claims.csv")[["figure", "claim", "verdict"]]
    reduced = reduced.rename(columns={"verdict": "reduced-scale verdict"})
    frames = [_judged(net) for net in NETWORKS]
    claims = pd.concat(frames, ignore_index=True).merge(reduced, on=["figure", "claim"],
                                                        how="left")
    return claims[["network", "figure", "claim", "test", "measured", "verdict",
                   "reduced-scale verdict"]]


def main() -> None:
    claims = pretrained_claims()
    claims.to_csv(HERE / "claims.csv", index=False)
    changed = claims[(claims["verdict"] != claims["reduced-scale verdict"])
                     & (claims["verdict"] != "not testable at this scale")]
    changed = changed[["network", "figure", "claim", "measured", "verdict",
                       "reduced-scale verdict"]]
    counts = claims.groupby("network")["verdict"].value_counts().unstack(fill_value=0)
    tally = "; ".join(f"{net}: " + ", ".join(f"{n} {v}" for v, n in row.items() if n)
                      for net, row in counts.iterrows())
    (HERE / "claims.md").write_text(
        "# Jastrzebski et al. 2018's claims on the shipped, well-trained CIFAR-10 nets\n\n"
        "`keras_resnets.build(NET, weights=\"cifar10\")` (89.2% and 89.0% test accuracy), "
        "measured on all 10,000 CIFAR-10 test images and 10,000 training images (the first "
        "of epoch 0's shuffled order, seed 0), each judged in the place of the paper's "
        "original ResNet by the reduced-scale study's claim code (`experiments.j18_claims`); "
        "claims about the other networks are not testable here. Commands: `run.sh`. "
        f"{tally}.\n\n{markdown_table(claims)}\n\n"
        "## Verdicts that differ from the reduced-scale study (`../claims.md`)\n\n"
        f"{markdown_table(changed) if len(changed) else 'None.'}\n")


if __name__ == "__main__":
    main()
