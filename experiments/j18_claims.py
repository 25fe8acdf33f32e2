"""Jastrzebski et al. 2018's claims ("Residual Connections Encourage Iterative Inference",
Figures 2-9) judged from what ``experiments.reproduce`` measured: each claim is "reproduced",
"not reproduced" or "not testable at this scale", with the numbers it was judged on.

Every claim reads the final model's measurements of the test split unless it says otherwise
(train-split claims read the train split). The thresholds that turn the paper's words into a
test are stated in each claim's ``test`` text. Differences between two single-seed runs smaller
than ``experiments.claims.NOISE`` points of error cannot be told apart and are "not testable at
this scale", as is a claim whose measurements are missing. The unrolling scale, which the paper
does not give, is chosen on the training split (the smallest training loss after the extra
steps), never on test numbers.
"""

import functools
import json
from pathlib import Path

import pandas as pd

from experiments.claims import (NOISE, Claim, Verdict, Vocabulary, higher_error, judge_claims,
                                write_claims_table)
from experiments.reproduce import PAPER_NETWORKS as NETWORKS
from experiments.sharing import BASELINE, NAIVE, REMEDY
from experiments.sharing import FIG9 as ABLATIONS

VOCABULARY = Vocabulary(holds="reproduced", fails="not reproduced",
                        untold="not testable at this scale",
                        pending="not testable at this scale")
CLASSES = {"cifar100": 100}  # datasets with other than 10 classes
REFINING = ("j18-resnet110", "j18-wrn")  # 1x1 shortcut convs in the main path
SINGLE = ("j18-single", "j18-avgpool")  # no (or pooling-only) shape changes
# The sharing experiment's runs are found by the identifier in its tables' ``experiment``
# column (their ``label`` column is for display): Fig. 8's naive sharing, its remedy (shared
# convs, unshared BN) and the unshared baseline of about the same size; Fig. 9's ablations, the
# remedy with one part undone (shared statistics, shared gamma and beta, gamma initialised to 1).


class Measured:
    """The reproduction's results folder: per-network analyses and the sharing experiment.
    ``folders`` maps a network of the paper to the folder measured in its place (a
    well-trained net judged as the original ResNet, say); the others read ``OUT/<network>``."""

    def __init__(self, out: Path, folders: dict | None = None):
        self.out = Path(out)
        self.folders = dict(folders or {})

    def path(self, network: str, name: str) -> Path:
        """``OUT/<network's folder>/<name>``."""
        return self.out / self.folders.get(network, network) / name

    def frame(self, network: str, name: str, split: str = "test") -> pd.DataFrame | None:
        """``OUT/<network>/<name>.csv`` rows of ``split`` (None when not measured)."""
        path = self.path(network, f"{name}.csv")
        if not path.is_file():
            return None
        frame = pd.read_csv(path)
        return frame[frame["split"] == split] if "split" in frame else frame

    def blocks(self, network: str, column: str, split: str = "test") -> pd.DataFrame | None:
        """Per-block rows of ``network`` that have ``column`` measured."""
        frame = self.frame(network, "blocks", split)
        if frame is None or column not in frame or frame[column].isna().all():
            return None
        return frame.sort_values("block")

    def accuracy(self, network: str, split: str = "test") -> float:
        """The model's own accuracy on ``split``, from ``network``'s ``summary.json``."""
        summary = json.loads(self.path(network, "summary.json").read_text())
        return summary["splits"][split]["accuracy"]

    def chance(self, network: str) -> float:
        """Chance accuracy on ``network``'s dataset (CIFAR-100: 1%; the others: 10 classes)."""
        summary = json.loads(self.path(network, "summary.json").read_text())
        return 1 / CLASSES.get(summary.get("dataset"), 10)

    def sharing(self, name: str) -> pd.DataFrame | None:
        """A table the sharing experiment wrote (``sharing/NAME.csv``), or ``None`` if it did not
        run. Its runs are found by their ``experiment`` column, never by display labels."""
        path = self.out / "sharing" / f"{name}.csv"
        if not path.is_file():
            return None
        table = pd.read_csv(path)
        if "experiment" not in table:
            raise ValueError(f"{path} has no 'experiment' column: the claims find each run by "
                             f"its identifier ({', '.join((NAIVE, REMEDY, BASELINE))}, ...), "
                             "which python -m experiments.sharing writes.")
        return table


def _per_network(measured: Measured, networks, column: str, check) -> tuple[Verdict, str]:
    """Apply ``check(network, rows) -> (bool, text)`` to every measured network of
    ``networks``: holds when all pass; pending when none was measured."""
    results = {net: check(net, rows) for net in networks
               if (rows := measured.blocks(net, column)) is not None}
    return _all_networks(results, f"not measured ({', '.join(networks)})")


def _all_networks(results: dict, missing: str) -> tuple[Verdict, str]:
    """``{network: (passed, text)}`` -> holds when every network passes; pending, saying
    ``missing``, when there is none."""
    if not results:
        return Verdict.PENDING, missing
    text = "; ".join(f"{net}: {detail}" for net, (_, detail) in results.items())
    return Verdict.of(all(ok for ok, _ in results.values())), text


def cosine_negative(measured):
    """Fig. 3: every block's mean cosine is negative, on the test and the train split."""
    def check(net, rows):
        train = measured.blocks(net, "cosine", "train")
        negative = [(r["cosine"] < 0).sum() for r in (rows, train) if r is not None]
        return (all(n == len(rows) for n in negative),
                f"{'/'.join(str(n) for n in negative)} of {len(rows)} blocks negative "
                f"(test/train)")
    return _per_network(measured, NETWORKS, "cosine", check)


def halves(rows: pd.DataFrame, column: str) -> tuple[float, float]:
    """Mean of ``column`` over the lower and the upper half of the blocks."""
    half = len(rows) // 2
    return rows[column].iloc[:half].mean(), rows[column].iloc[len(rows) - half:].mean()


def cosine_higher(measured):
    """Fig. 3: the upper half of the blocks has a lower mean cosine than the lower half."""
    def check(net, rows):
        low, high = halves(rows, "cosine")
        return high < low, f"lower half {low:.3f}, upper half {high:.3f}"
    return _per_network(measured, NETWORKS, "cosine", check)


def first_over_rest(rows: pd.DataFrame) -> float:
    """l2 ratio of the first block over the median of the others."""
    return rows["l2_ratio"].iloc[0] / rows["l2_ratio"].iloc[1:].median()


def l2_first_blocks(measured):
    """Fig. 5: in single-representation and pooling nets the first block's l2 ratio is >= 2x the
    others' median."""
    def check(net, rows):
        ratio = first_over_rest(rows)
        return (ratio >= 2, f"first block {rows['l2_ratio'].iloc[0]:.3f}, median of the "
                            f"others {rows['l2_ratio'].iloc[1:].median():.3f} ({ratio:.1f}x)")
    return _per_network(measured, SINGLE, "l2_ratio", check)


def l2_milder(measured):
    """Fig. 5: the first block's l2 ratio over the others' median is lower in ResNet-110 and the
    WRN than in every single or pooling net."""
    ratios = {net: first_over_rest(rows) for net in NETWORKS
              if (rows := measured.blocks(net, "l2_ratio")) is not None}
    single = {n: r for n, r in ratios.items() if n in SINGLE}
    refining = {n: r for n, r in ratios.items() if n in REFINING}
    if not single or not refining:
        return Verdict.PENDING, "needs a single/avg-pooling net and ResNet-110 or the WRN measured"
    text = ", ".join(f"{n} {r:.1f}x" for n, r in ratios.items())
    return Verdict.of(max(refining.values()) < min(single.values())), text


def _kept(measured, net, rows) -> pd.Series:
    """Share of the above-chance accuracy kept when each block is dropped."""
    chance = measured.chance(net)
    return (rows["drop_accuracy"] - chance) / (measured.accuracy(net) - chance)


def drop_first(measured):
    """Fig. 4: dropping block 0 of a single or pooling net keeps < 50% of the above-chance
    accuracy."""
    def check(net, rows):
        kept = _kept(measured, net, rows).iloc[0]
        return kept < 0.5, f"dropping block 0 keeps {100 * kept:.0f}% of the above-chance accuracy"
    return _per_network(measured, SINGLE, "drop_accuracy", check)


def drop_higher(measured):
    """Fig. 4: dropping a block of the upper half costs a single or pooling net < 2 points
    (median)."""
    def check(net, rows):
        upper = rows.iloc[len(rows) - len(rows) // 2:]
        cost = 100 * (measured.accuracy(net) - upper["drop_accuracy"]).median()
        return cost < 2, f"median cost over the upper half {cost:.2f} points"
    return _per_network(measured, SINGLE, "drop_accuracy", check)


def drop_refining(measured):
    """Fig. 4: no single dropped block takes ResNet-110 or the WRN below 50% of its above-chance
    accuracy."""
    def check(net, rows):
        worst = _kept(measured, net, rows).min()
        return worst >= 0.5, f"the worst drop keeps {100 * worst:.0f}% of the above-chance accuracy"
    return _per_network(measured, REFINING, "drop_accuracy", check)


def intermediate_gradual(measured):
    """Fig. 6: ResNet-110's intermediate accuracy rises through the last stage without a dip over
    1 point."""
    def check(net, rows):
        last = rows[rows["stage"] == rows["stage"].max()]["intermediate_accuracy"].dropna()
        dips = (last.diff().dropna() < -0.01).sum()
        text = " -> ".join(f"{100 * a:.1f}" for a in last)
        return dips == 0 and last.iloc[-1] >= last.max() - 0.01, f"last stage: {text} %"
    return _per_network(measured, ("j18-resnet110",), "intermediate_accuracy", check)


def _last_blocks(measured, column: str):
    """``{group: (first, last)}`` of ``column`` over the followed last blocks (test split)."""
    frame = measured.frame("j18-resnet110", "borderline")
    if frame is None:
        return None
    ordered = frame.sort_values("block")
    return {group: (rows[column].iloc[0], rows[column].iloc[-1], int(rows["examples"].iloc[0]))
            for group, rows in ordered.groupby("group", sort=False)}


def borderline_corrected(measured):
    """Fig. 6: borderline examples are more often correct after the last block than after the
    first followed."""
    groups = _last_blocks(measured, "accuracy")
    if groups is None:
        return Verdict.PENDING, "borderline groups not measured"
    first, last, examples = groups["borderline"]
    if examples == 0:
        return Verdict.PENDING, "no borderline test example"
    return (Verdict.of(last > first),
            f"{examples} borderline examples: {100 * first:.1f}% -> {100 * last:.1f}%")


def entropy_falls(measured):
    """Fig. 6: every group's entropy is lower after the last block than after the first followed."""
    groups = _last_blocks(measured, "entropy")
    if groups is None:
        return Verdict.PENDING, "borderline groups not measured"
    text = "; ".join(f"{g} {a:.3f} -> {b:.3f}" for g, (a, b, n) in groups.items() if n)
    falls = all(b < a for a, b, n in groups.values() if n)
    return Verdict.of(falls), text


def unroll_scale(measured) -> tuple[pd.DataFrame, pd.DataFrame, float] | None:
    """The scaled-update unrolling rows of both splits and the scale alpha with the smallest
    training loss after the last step (chosen on the training split only)."""
    train = measured.frame("j18-resnet110", "unroll", "train")
    test = measured.frame("j18-resnet110", "unroll", "test")
    if train is None or test is None or train.empty:
        return None
    train, test = (f[f["update"] == "scaled"] for f in (train, test))
    final = train[(train["group"] == "all") & (train["step"] == train["step"].max())]
    return train, test, float(final.loc[final["loss"].idxmin(), "alpha"])


def _ends(rows, alpha, group, column):
    line = rows[(rows["alpha"] == alpha) & (rows["group"] == group)].sort_values("step")
    return line[column].iloc[0], line[column].iloc[-1], line


def _at_chosen_scale(judge):
    """Give an unrolling claim ``judge(train, test, alpha)`` the scaled-update rows of both
    splits and the scale chosen on the training loss; not testable when not measured."""
    @functools.wraps(judge)
    def judged(measured):
        chosen = unroll_scale(measured)
        if chosen is None:
            return Verdict.PENDING, "unrolling not measured on both splits"
        return judge(*chosen)
    return judged


@_at_chosen_scale
def unroll_train_loss(train, test, alpha):
    """Fig. 7: unrolling the last block at the chosen scale lowers the training loss."""
    start, end, _ = _ends(train, alpha, "all", "loss")
    return (Verdict.of(end < start),
            f"alpha {alpha:g}: train loss {start:.4f} -> {end:.4f}")


@_at_chosen_scale
def unroll_test_loss(train, test, alpha):
    """Fig. 7: the same unrolling raises the test loss."""
    start, end, _ = _ends(test, alpha, "all", "loss")
    return (Verdict.of(end > start),
            f"alpha {alpha:g}: test loss {start:.4f} -> {end:.4f}")


@_at_chosen_scale
def unroll_borderline(train, test, alpha):
    """Fig. 7: the same unrolling makes borderline test examples more often correct."""
    start, end, line = _ends(test, alpha, "borderline", "accuracy")
    examples = int(line["examples"].iloc[0])
    if examples == 0:
        return Verdict.PENDING, "no borderline test example"
    return (Verdict.of(end > start),
            f"alpha {alpha:g}: {examples} borderline examples {100 * start:.1f}% -> "
            f"{100 * end:.1f}%")


@_at_chosen_scale
def unroll_cosine(train, test, alpha):
    """Fig. 7: the cosine stays negative at every unrolled step."""
    line = _ends(test, alpha, "all", "cosine")[2]["cosine"].dropna()
    return (Verdict.of((line < 0).all()),
            f"alpha {alpha:g}: {(line < 0).sum()} of {len(line)} steps negative")


def _sharing_runs(measured, column: str) -> pd.DataFrame | None:
    """The sharing experiment's results indexed by ``experiment``; None when it did not run or
    left ``column`` unmeasured for a run."""
    table = measured.sharing("sharing")
    if table is None or table[column].isna().any():
        return None
    return table.set_index("experiment")


def _compare(worse: float, better: float, what: str) -> tuple[Verdict, str]:
    """Claim "``worse`` > ``better``" on single-seed errors, with the ``NOISE`` margin."""
    verdict, _ = higher_error(worse, better)
    text = f"{what}: {worse:.2f} vs {better:.2f}"
    if verdict is Verdict.UNTOLD:
        return verdict, text + f" (under the {NOISE:g}-point noise)"
    return verdict, text


def sharing_error_higher(column: str, worse: str, better: str, what: str):
    """The judge of "run ``worse`` of the sharing experiment has a higher ``column`` (a test or
    training error) than run ``better``", with the ``NOISE`` margin (Fig. 8)."""
    def judge(measured):
        runs = _sharing_runs(measured, column)
        if runs is None:
            return Verdict.PENDING, "sharing not run"
        return _compare(runs.loc[worse, column], runs.loc[better, column], what)
    return judge


# Fig. 8: naive sharing is worse than the unshared baseline and underfits it (a higher training
# error); unshared BN (the remedy) has a lower test error than naive sharing.
sharing_worse = sharing_error_higher("test_error", NAIVE, BASELINE,
                                     "test error naive shared vs unshared baseline")
sharing_underfits = sharing_error_higher("train_error", NAIVE, BASELINE,
                                         "train error naive shared vs unshared baseline")
ubn_closes_gap = sharing_error_higher("test_error", NAIVE, REMEDY,
                                      "test error naive shared vs unshared BN")


def gradient_ratio_larger(measured):
    """Fig. 8: naive sharing's gradient norm ratio is at least twice every other run's."""
    ratios = measured.sharing("gradient_ratio")
    if ratios is None:
        return Verdict.PENDING, "gradient ratio not recorded"
    runs = ratios.groupby("experiment", sort=False)  # in the order the experiment ran them
    means, labels = runs["ratio"].mean(), runs["label"].first()
    naive, others = means.get(NAIVE), means.drop(NAIVE, errors="ignore")
    if naive is None or others.empty:
        return Verdict.PENDING, "gradient ratio not recorded for naive sharing and another run"
    text = ", ".join(f"{labels[run]} {value:.2f}" for run, value in means.items())
    return Verdict.of(naive >= 2 * others.max()), text


def activations_explode(measured):
    """Fig. 8: naive sharing's largest block input norm at initialisation is at least twice the
    baseline's."""
    norms = measured.sharing("activation_norms")
    if norms is None:
        return Verdict.PENDING, "activation norms not measured"
    top = norms.groupby("experiment")["input_norm"].max()
    if NAIVE not in top or BASELINE not in top:
        return Verdict.PENDING, "needs naive sharing and the baseline"
    naive, baseline = top[NAIVE], top[BASELINE]
    return (Verdict.of(naive >= 2 * baseline),
            f"largest ||h_j|| at initialisation: naive {naive:.1f}, baseline {baseline:.1f}")


def _ablation_runs(measured) -> pd.DataFrame | None:
    """The sharing results (``_sharing_runs``, test error) when every Fig. 9 ablation ran."""
    runs = _sharing_runs(measured, "test_error")
    if runs is None or not all(run in runs.index for run in ABLATIONS):
        return None
    return runs


def fig9_all_parts(measured):
    """Fig. 9: undoing any one part of unshared BN raises the test error over the full remedy."""
    runs = _ablation_runs(measured)
    if runs is None:
        return Verdict.PENDING, "Fig. 9 ablation not run"
    errors, labels = runs["test_error"], runs["label"]
    remedy = errors[REMEDY]
    verdicts = {_compare(errors[run], remedy, labels[run])[0] for run in ABLATIONS}
    verdict = (Verdict.FAILS if Verdict.FAILS in verdicts else
               Verdict.UNTOLD if Verdict.UNTOLD in verdicts else Verdict.HOLDS)
    return verdict, f"unshared BN {remedy:.2f}; " + "; ".join(
        f"{labels[run]} {errors[run]:.2f}" for run in ABLATIONS)


def fig9_statistics_most(measured):
    """Fig. 9: sharing the BN statistics hurts more than undoing either other part."""
    runs = _ablation_runs(measured)
    if runs is None:
        return Verdict.PENDING, "Fig. 9 ablation not run"
    errors = runs["test_error"]
    return _compare(errors[ABLATIONS[0]], max(errors[run] for run in ABLATIONS[1:]),
                    "shared statistics vs the worse other ablation")


def cosine_during_training(measured):
    """Fig. 2: the cosine averaged over blocks is negative at every epoch after the first (train
    split)."""
    def check(net, _):
        path = measured.path(net, "training_iterative_inference.csv")
        if not path.is_file():
            return None
        history = pd.read_csv(path)
        train = history[(history["split"] == "train") & (history["epoch"] > 1)]
        means = train.groupby("epoch")["cosine"].mean()
        if means.empty:
            return None
        return ((means < 0).all(), f"mean over blocks < 0 at {(means < 0).sum()} of "
                                   f"{len(means)} epochs after the first")
    results = {net: result for net in NETWORKS if (result := check(net, None)) is not None}
    return _all_networks(results, "not recorded after the first epoch")


# The paper's claims, by the figure of ``experiments.reproduce`` that measures them.
CLAIMS = {
    "training": (
        Claim("Fig. 2", "Blocks move the representation against the loss gradient during "
              "training", cosine_during_training,
              test="the cosine loss averaged over blocks < 0 at every epoch after the first "
              "(train split)"),),
    "cosine": (
        Claim("Fig. 3", "The cosine loss is negative for all residual blocks", cosine_negative,
              test="every block's mean cosine < 0 on the test and the train split"),
        Claim("Fig. 3", "... especially for the higher residual blocks", cosine_higher,
              test="mean cosine of the upper half of the blocks < that of the lower half")),
    "l2": (
        Claim("Fig. 5", "Single-representation and pooling nets: the first blocks change the "
              "representation a lot, later blocks much less", l2_first_blocks,
              test="l2 ratio of the first block >= 2x the median of the others"),
        Claim("Fig. 5", "The effect is milder in the original ResNet and the WRN", l2_milder,
              test="their first/median l2 ratio is below every single/pooling net's")),
    "drop": (
        Claim("Fig. 4", "Dropping one of the first blocks of the single-representation and "
              "pooling nets is catastrophic", drop_first,
              test="dropping block 0 keeps < 50% of the above-chance accuracy"),
        Claim("Fig. 4", "... dropping most higher blocks costs little", drop_higher,
              test="median accuracy cost over the upper half of the blocks < 2 points"),
        Claim("Fig. 4", "Dropping is not drastic anywhere in the original ResNet and the WRN",
              drop_refining, test="every drop keeps >= 50% of the above-chance accuracy")),
    "intermediate": (
        Claim("Fig. 6", "Intermediate accuracy in the last stage rises gradually block by block",
              intermediate_gradual,
              test="no block loses more than 1 point, the last block within 1 point of the "
              "best"),),
    "borderline": (
        Claim("Fig. 6", "Borderline examples get corrected by the last blocks",
              borderline_corrected,
              test="borderline accuracy after the last block > after the first followed block"),
        Claim("Fig. 6", "Entropy falls over the last blocks for all groups", entropy_falls,
              test="entropy after the last block < after the first followed block, every "
              "group")),
    "unroll": (
        Claim("Fig. 7", "Unrolling the last block with a scaled output lowers the training "
              "loss slightly", unroll_train_loss,
              test="train loss after the extra steps < before, at the scale chosen on the "
              "training loss"),
        Claim("Fig. 7", "... while the test loss rises", unroll_test_loss,
              test="test loss after > before, same scale"),
        Claim("Fig. 7", "... and borderline test examples become more often correct",
              unroll_borderline, test="borderline test accuracy after > before, same scale"),
        Claim("Fig. 7", "The cosine stays negative at every scaled step", unroll_cosine,
              test="cosine < 0 at every step, same scale")),
    "sharing": (
        Claim("Fig. 8", "Naive sharing is worse than an unshared net of about the same size",
              sharing_worse, test=f"test error higher by >= {NOISE:g} point"),
        Claim("Fig. 8", "Naive sharing underfits", sharing_underfits,
              test=f"train error higher by >= {NOISE:g} point"),
        Claim("Fig. 8", "Unshared BN closes much of the gap", ubn_closes_gap,
              test=f"unshared BN's test error lower than naive sharing's by >= {NOISE:g} "
              "point"),
        Claim("Fig. 8", "The gradient norm ratio is much larger under naive sharing",
              gradient_ratio_larger, test="mean over epochs >= 2x every other run's"),
        Claim("Fig. 8", "Naive sharing makes activations explode at initialisation",
              activations_explode, test="largest block-input norm >= 2x the baseline's")),
    "sharing-ablation": (
        Claim("Fig. 9", "Every part of unshared BN matters", fig9_all_parts,
              test=f"each ablation's test error higher than unshared BN's by >= {NOISE:g} "
              "point"),
        Claim("Fig. 9", "Unshared statistics matter most", fig9_statistics_most,
              test="the shared-statistics ablation has the highest test error")),
}


def judge(out, figures=None, folders=None) -> pd.DataFrame:
    """One row per claim of the reproduced ``figures`` (names of ``experiments.reproduce``; all
    by default): the figure, the paper's words, the test, what was measured and the verdict.
    ``folders``: see ``Measured``."""
    chosen = [claim for figure, claims in CLAIMS.items()
              if figures is None or figure in figures for claim in claims]
    table = judge_claims(chosen, Measured(Path(out), folders), VOCABULARY)
    return table.rename(columns={"source": "figure"})


def write_claims(out, claims: pd.DataFrame, reduced: list, full_command: str) -> None:
    """``claims.csv`` and ``claims.md``: the verdicts, labelled with the scale they hold at."""
    scale = ("**Reduced scale**: " + "; ".join(reduced) + f". Full scale: `{full_command}`"
             if reduced else "Full scale.")
    counts = claims["verdict"].value_counts()
    tally = ", ".join(f"{counts.get(word, 0)} {word}" for word in VOCABULARY.words)
    write_claims_table(out, claims, "Jastrzebski et al. 2018's claims at this scale",
                       f"{scale}\n\nFinal-epoch models; test split unless the test says "
                       f"otherwise; one seed. {tally}.")
