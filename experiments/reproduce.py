"""Jastrzebski et al. 2018's figures at a chosen scale, in one command: train, measure, judge.

    python -m experiments.reproduce --figures all --data-dir ~/data --out sweeps/j18-full
    python -m experiments.reproduce --figures cosine drop --width 0.25 --blocks 4 --epochs 10 \\
        --train-size 10000 --data-dir ~/data --out sweeps/j18-small

Each figure names the paper's networks it needs (``FIGURES``). Every network trains once with
its own ``jastrzebski2018-*`` recipe (``trainers.config``), recording the cosine loss and l2
ratio per epoch on both splits (the training figure: ``record_every=1`` with
``analysis.callback.recording_callbacks`` as the trainer's recorder), into ``--runs`` (working
files, not committed); its result goes into the ledger ``OUT/runs.csv``
(``experiments.ledger``). Then ``analysis.run`` measures its final model on the train and test
splits into ``OUT/<network>/``.
The sharing figures run ``experiments.sharing`` into ``OUT/sharing/``. Finally
``experiments.j18_claims`` puts each of the paper's claims beside what was measured, into
``OUT/claims.md`` and ``claims.csv``: reproduced, not reproduced or not testable at this scale.

Scale: ``--width`` multiplies every network's filters, ``--blocks`` caps its blocks per stage,
``--epochs`` shortens every recipe keeping its shape, ``--train-size``/``--test-size`` keep the
first N examples, ``--sharing-depth``/``--sharing-shared`` size the sharing nets. Anything below
the paper's scale is listed in the report (``reduced_scale``), with the full-scale command
(``full_scale_command``). ``--strided-padding same`` rebuilds the runs recorded before the zoo
padded strided convolutions symmetrically (``experiments.study``). Committed work is never
redone: a network in the ledger is not retrained, an analysis whose ``analysis_config.json``
matches is not re-measured. Every setting, every figure's needs against the networks at
this scale, and every ledger row and run folder it would reuse are checked before anything is
written (``OUT/reproduce_config.json`` included) or trained.

``--out`` defaults to the working folder ``sweeps/jastrzebski2018`` (not committed). The committed
reduced-scale results, ``results/jastrzebski2018``, are regenerated only by naming them, as
``sh results/jastrzebski2018/run.sh`` does; there, as anywhere, a network whose ledger row or run
folder holds other training settings is refused before anything is written.
"""

import argparse
import functools
import json
import math
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

from experiments import study
from experiments.sharing import SharingConfig, experiment_runs, run_sharing
from experiments.sharing import train_config as sharing_run_config
from experiments.study import STUDY_HELP, StudyConfig, run_status, scale_notes, train_one
from trainers import cli


@dataclass(frozen=True)
class Figure:
    """One figure of the paper: its number, the networks it is drawn for, what it measures."""

    paper: str
    networks: tuple
    measures: tuple = ()


# Jastrzebski et al.'s four networks of Figures 2-7 (zoo names: keras_resnets.registry.NETWORKS,
# which also holds Table 1's sharing nets), each trained with its own recipe of theirs
# (trainers.config.RECIPES).
NETWORK_RECIPES = {"j18-resnet110": "jastrzebski2018-resnet",
                   "j18-single": "jastrzebski2018-single",
                   "j18-avgpool": "jastrzebski2018-avgpool", "j18-wrn": "jastrzebski2018-wrn"}
PAPER_NETWORKS = tuple(NETWORK_RECIPES)
RESNET = ("j18-resnet110",)
FIGURES = {
    "training": Figure("Fig. 2", PAPER_NETWORKS),  # cosine and l2 ratio per epoch, both splits
    "cosine": Figure("Fig. 3", PAPER_NETWORKS, ("cosine",)),
    "drop": Figure("Fig. 4", PAPER_NETWORKS, ("drop",)),
    "l2": Figure("Fig. 5", PAPER_NETWORKS, ("l2",)),
    "intermediate": Figure("Fig. 6", RESNET, ("intermediate",)),
    "borderline": Figure("Fig. 6", RESNET, ("borderline",)),
    "unroll": Figure("Fig. 7", RESNET, ("unroll",)),
    "sharing": Figure("Fig. 8", ()),  # naive sharing, unshared BN and a matching baseline
    "sharing-ablation": Figure("Fig. 9", ()),  # unshared BN with each of its parts turned off
}
SHARING_FIGURES = ("sharing", "sharing-ablation")
# The paper trains on CIFAR-10; each recipe has its own length.
PAPER_DATASETS = ("cifar10",)
PAPER_LENGTH = "each network's recipe (100 to 300 epochs)"
PAPER_SHARING = (110, 13)  # depth and shared units per stage of the sharing nets
# Unrolling (Fig. 7): the paper's scale is not given, so every scale analysis sweeps by default
# (analysis.options.DEFAULT_ALPHAS) and both updates.
UNROLL_UPDATES = ("scaled", "norm")


@dataclass(kw_only=True)
class ReproduceConfig(StudyConfig):
    """The whole reproduction; written as ``OUT/reproduce_config.json``."""

    figures: tuple[str, ...] = tuple(FIGURES)
    out: str = "sweeps/jastrzebski2018"  # results/jastrzebski2018 (committed): by its run.sh
    runs: str | None = "sweeps/jastrzebski2018/runs"
    width: float = 1.0  # multiplies every network's filters
    width_of: dict[str, float] = field(default_factory=dict)  # network -> its own width factor
    blocks: int | None = None  # at most this many blocks per stage
    limit: int | None = None  # examples analysed per split (None: all)
    sharing_depth: int = PAPER_SHARING[0]
    sharing_shared: int = PAPER_SHARING[1]
    seed: int = 0

    def __post_init__(self):
        """Refuse unknown figures or networks, widths outside (0, 1] and counts below 1."""
        super().__post_init__()
        self.figures = tuple(FIGURES) if tuple(self.figures) == ("all",) else tuple(self.figures)
        unknown = [name for name in self.figures if name not in FIGURES]
        if unknown or not self.figures:
            raise ValueError(f"Unknown figures {unknown or list(self.figures)}; accepted: all, "
                             f"{', '.join(FIGURES)}.")
        unknown = [name for name in self.width_of if name not in PAPER_NETWORKS]
        if unknown:
            raise ValueError(f"Unknown networks {unknown} in --width-of; accepted: "
                             f"{', '.join(PAPER_NETWORKS)}.")
        for width in (self.width, *self.width_of.values()):
            if not (math.isfinite(width) and 0 < width <= 1):
                raise ValueError(f"Widths must be in (0, 1] (a fraction of the paper's "
                                 f"filters); got {width}.")
        sizes = {"blocks": self.blocks, "limit": self.limit}
        bad = {k: v for k, v in sizes.items() if v is not None and v < 1}
        if bad:
            raise ValueError(f"These settings must be positive: {bad}.")

    @property
    def networks(self) -> tuple:
        """The networks the chosen figures need, in ``PAPER_NETWORKS`` order."""
        wanted = {net for name in self.figures for net in FIGURES[name].networks}
        return tuple(net for net in PAPER_NETWORKS if net in wanted)

    @property
    def sharing(self) -> bool:
        """Whether a sharing figure (Fig. 8 or 9) is reproduced."""
        return bool(set(SHARING_FIGURES) & set(self.figures))

    def measures(self, network: str) -> tuple:
        """What ``analysis.run`` measures on ``network``: every measure of its figures."""
        return tuple(dict.fromkeys(m for name in self.figures for m in FIGURES[name].measures
                                   if network in FIGURES[name].networks))

    def width_for(self, network: str) -> float:
        """The filter multiplier of ``network``: its ``--width-of`` entry, else ``--width``."""
        return self.width_of.get(network, self.width)


# ---------------------------------------------------------------------------------------------
# What is trained, and at what scale


def network_overrides(config: ReproduceConfig, network: str) -> dict:
    """``filters`` scaled by the network's width (at least 1) and ``blocks`` capped by
    ``--blocks``."""
    from keras_resnets.registry import NETWORKS

    paper, width = NETWORKS[network], config.width_for(network)
    overrides = {}
    if width != 1:
        overrides["filters"] = [max(1, round(f * width)) for f in paper.filters]
    if config.blocks is not None and max(paper.blocks) > config.blocks:
        overrides["blocks"] = [min(b, config.blocks) for b in paper.blocks]
    return overrides


def train_config(config: ReproduceConfig, network: str):
    """The run of ``network``: its paper recipe at this scale, recording the training figure."""
    return config.train_config(
        f"{network}-seed{config.seed}", network, network_overrides(config, network),
        recipe=NETWORK_RECIPES[network], seed=config.seed,
        record_every=1 if "training" in config.figures else 0)


def sharing_config(config: ReproduceConfig) -> SharingConfig:
    """``experiments.sharing``'s experiment at this scale, with Fig. 9's ablation when asked."""
    return SharingConfig(**config.shared_settings(), out=str(Path(config.out) / "sharing"),
                         runs=str(config.runs_dir / "sharing"), depth=config.sharing_depth,
                         shared=config.sharing_shared, seed=config.seed,
                         ablation=int("sharing-ablation" in config.figures))


def reduced_scale(config: ReproduceConfig) -> list[str]:
    """How this reproduction departs from the paper's scale, one phrase each (empty at full
    scale): narrower or shallower networks, shorter recipes, fewer examples trained or
    analysed, smaller sharing nets."""
    widths = [f"{net} filters x {config.width_for(net):g}" for net in config.networks
              if config.width_for(net) != 1]
    blocks = [f"blocks per stage <= {config.blocks}"] if config.blocks is not None else []
    notes = widths + blocks + scale_notes(config, PAPER_LENGTH, PAPER_DATASETS)
    if config.limit is not None:
        notes.append(f"analysed examples per split {config.limit}")
    if config.sharing and (config.sharing_depth, config.sharing_shared) != PAPER_SHARING:
        notes.append(f"sharing nets: depth {config.sharing_depth}, {config.sharing_shared} "
                     f"shared per stage (paper: {PAPER_SHARING[0]}, {PAPER_SHARING[1]})")
    return notes


def full_scale_command(config: ReproduceConfig) -> str:
    """The command that runs these figures at the paper's scale."""
    return study.full_scale_command(config, "experiments.reproduce", "--figures",
                                    *config.figures, "--dataset", config.dataset)


# ---------------------------------------------------------------------------------------------
# What is measured


def analysis_settings(config: ReproduceConfig, network: str) -> dict:
    """``analysis.run``'s settings for ``network`` (both splits, the measures of its figures),
    as ``analysis_config.json`` records them; no measures: nothing to analyse."""
    from analysis.options import DEFAULT_ALPHAS, DEFAULT_STEPS

    measures = config.measures(network)
    if not measures:
        return {}
    return {"split": "both", "measures": ",".join(measures), "limit": config.limit,
            "batch_size": None, "alphas": list(DEFAULT_ALPHAS), "steps": DEFAULT_STEPS,
            "updates": list(UNROLL_UPDATES), "last_blocks": None}


# ---------------------------------------------------------------------------------------------
# Checks, before any training


def check_networks(config: ReproduceConfig) -> None:
    """Build every network at this scale and check its figures' measures against it: an
    impossible scale, or a model that lacks the blocks a figure needs, fails here."""
    import keras

    import keras_resnets
    from analysis.frames import check_settings

    for network in config.networks:
        overrides = network_overrides(config, network)
        try:
            model = keras_resnets.build(network, **overrides)
            settings = analysis_settings(config, network)
            if settings:
                check_settings(keras_resnets.ResidualChain(model), settings["measures"],
                               settings["alphas"], settings["steps"], settings["updates"])
        except ValueError as error:
            size = overrides or "the paper's size"
            raise ValueError(f"{network} with {size}: {error}") from None
        finally:
            keras.backend.clear_session()
    if config.sharing:
        sharing_config(config)  # SharingConfig refuses an impossible depth / shared count


def check_runs(config: ReproduceConfig) -> None:
    """Refuse up front what the reproduction would refuse half-way, after writing: a ledger row
    or run folder of other settings for a network or a sharing run (``experiments.study.
    run_status``), and an analysis to make on a recorded run whose folder has no final.keras."""
    ledger = config.open_ledger()
    for network in config.networks:
        status, _ = run_status(train_config(config, network), ledger)
        if status != "pending" and needs_analysis(config, network):
            analysable_run(config, network)
    if config.sharing:
        experiment = sharing_config(config)
        sharing_ledger = experiment.open_ledger()
        for model, overrides in experiment_runs(experiment).values():
            run_status(sharing_run_config(experiment, model, overrides), sharing_ledger)


# ---------------------------------------------------------------------------------------------
# Running


def reproduce(config: ReproduceConfig, train_fn=None):
    """Train, measure and judge every figure of ``config``; returns the claims table.
    ``train_fn(TrainConfig)`` defaults to ``trainers.train.train`` recording with
    ``analysis.callback.recording_callbacks`` (the training figure)."""
    from experiments.j18_claims import judge, write_claims
    from trainers.data import locate

    check_networks(config)
    locate(config.dataset, config.data_dir)  # no data and no network: fail before training
    check_runs(config)
    if train_fn is None:
        from analysis.callback import recording_callbacks
        from trainers.train import train

        train_fn = functools.partial(train, recorder=recording_callbacks)
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "reproduce_config.json").write_text(config.to_json() + "\n")
    ledger = config.open_ledger()
    for network in config.networks:
        train_network(config, network, ledger, train_fn)
        analyse_network(config, network)
    if config.sharing:
        run_sharing(sharing_config(config), train_fn)
    claims = judge(out, config.figures)
    write_claims(out, claims, reduced_scale(config), full_scale_command(config))
    return claims


def train_network(config: ReproduceConfig, network: str, ledger, train_fn) -> None:
    """Train ``network`` unless the ledger has it; keep its per-epoch record (the training
    figure) in ``OUT/<network>/``."""
    run = train_config(config, network)
    train_one(train_fn, run, ledger)
    target = Path(config.out) / network
    for name in ("iterative_inference.csv", "iterative_inference.png"):
        recorded = Path(run.out) / name
        if recorded.is_file():
            target.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(recorded, target / f"training_{name}")


def analyse_network(config: ReproduceConfig, network: str) -> None:
    """``analysis.run`` on the network's final model into ``OUT/<network>/``, unless the
    analysis there was made with the same settings."""
    from analysis.run import AnalysisConfig, analyze_run

    if needs_analysis(config, network):
        analyze_run(AnalysisConfig(run_dir=analysable_run(config, network),
                                   out=str(Path(config.out) / network),
                                   **analysis_settings(config, network)))


def needs_analysis(config: ReproduceConfig, network: str) -> bool:
    """Whether ``network`` has measures to make that ``OUT/<network>/`` does not hold yet."""
    settings = analysis_settings(config, network)
    return bool(settings) and not _analysed_with(Path(config.out) / network, settings)


def analysable_run(config: ReproduceConfig, network: str) -> str:
    """The run folder of ``network``; ``ValueError`` when it has no final.keras to analyse."""
    run_dir = train_config(config, network).out
    if not (Path(run_dir) / "final.keras").is_file():
        raise ValueError(f"{network} needs a new analysis ({Path(config.out) / network}/"
                         f"analysis_config.json differs) but its run folder {run_dir} has no "
                         f"final.keras; remove its row from {config.open_ledger().path} to retrain "
                         f"it.")
    return run_dir


def _analysed_with(folder: Path, settings: dict) -> bool:
    """Whether ``folder/analysis_config.json`` records every one of ``settings``."""
    path = folder / "analysis_config.json"
    if not path.is_file():
        return False
    recorded = json.loads(path.read_text())
    return all(recorded.get(key) == value for key, value in settings.items())


# ---------------------------------------------------------------------------------------------
# Command line

HELP = {
    **STUDY_HELP,
    "figures": f"figures to reproduce: all, or some of {', '.join(FIGURES)}",
    "dataset": "cifar10 (the paper's), cifar100, synthetic",
    "out": "results folder: ledger, analyses, claims (a working folder by default; "
           "results/jastrzebski2018, committed, is written by naming it, as its run.sh does)",
    "runs": "folder of the run folders (weights, checkpoints: not committed)",
    "width": "multiply every network's filters by this (0 < W <= 1)",
    "width_of": "NET=W: this network's own width factor (e.g. j18-wrn=0.1)",
    "blocks": "at most this many blocks per stage",
    "limit": "analyse the first N examples of each split (default: all)",
    "batch_size": "global batch of every run (the recipes' 128; the paper gives none)",
    "sharing_depth": "depth 6n+2 of the sharing nets (paper: 110)",
    "sharing_shared": "top blocks of each stage that share (paper: 13)",
    "seed": "seed of every run",
}


def make_parser() -> argparse.ArgumentParser:
    """One flag per ``ReproduceConfig`` field."""
    parser = cli.Parser(
        prog="python -m experiments.reproduce", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1])
    cli.add_config_flags(parser, ReproduceConfig, HELP, custom={
        "figures": {"default": ("all",)}, "width_of": {"metavar": "NET=W"}})
    return parser


def main(argv=None) -> int:
    """CLI (``trainers.cli.run_cli``): 0 when every figure is reproduced and judged, 2 for bad
    settings (before any training), 1 when a write failed; one ``error:`` line."""
    return cli.run_cli(_reproduce_command, argv)


def _reproduce_command(argv) -> None:
    """Reproduce the command line's figures and print the claims."""
    config = cli.config_from_args(ReproduceConfig, make_parser().parse_args(argv))
    claims = reproduce(config)
    print(claims.to_string(index=False))
    print(f"\nReport in {config.out}/claims.md")


if __name__ == "__main__":
    sys.exit(main())
