"""Sharing the top blocks of each stage (Jastrzebski et al. 2018, Sec. 6, Figures 8-9).

    python -m experiments.sharing --dataset cifar10 --epochs 20 --out results/sharing

What is trained: three pre-activation nets (the paper's blocks are pre-activation), each with the
He et al. 2016 recipe, one run each (``experiments.study``), named by the experiment ids:
- ``shared``: ``preact{depth}-shared``, the top ``shared`` units of each stage share all weights
  (naive sharing);
- ``shared-bn``: ``preact{depth}-shared-bn``, they share the convolutions, each step keeps its
  own BN statistics, gamma and beta, gamma initialised to 0.1 (the paper's "unshared BN");
- ``baseline``: the unshared ``preact{d}`` whose depth gives about the same parameter count as
  the naive shared net (``preact38`` for 110/13, found by ``matching_baseline``).
``--ablation 1`` adds Fig. 9's rows, unshared BN with one part turned off:
``shared-bn-shared-stats``, ``shared-bn-shared-affine`` and ``shared-bn-gamma1`` (shared
statistics, shared gamma and beta, gamma initialised to 1). ``LABELS`` names each for display.

At what scale: the paper's is depth 110 with 13 shared units per stage and 64k iterations on
CIFAR; anything below it (fewer epochs or examples, other depth) is labelled REDUCED.

What is measured (``analysis.sharing``): the train and test error of every run, side by side,
as the paper finds naive sharing overfitting and worse than the baseline, and unshared BN
closing much of the gap; the gradient norm ratio per epoch (Fig. 8 right) and the activation
norms at initialisation. Writes ``sharing.csv``, ``sharing.md``, ``sharing.png`` (train and
test error per epoch), ``gradient_ratio.csv/png``, ``activation_norms.csv/png`` (each CSV's
first column the experiment id) and ``sharing_config.json`` into ``--out``. Each run trains
into ``--runs`` (default ``OUT/runs``, working files) and is recorded in the ledger
``OUT/runs.csv`` (``experiments.ledger``): a recorded run never trains again.
"""

import argparse
import dataclasses
import functools
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from experiments.ledger import run_name
from experiments.study import HE2016_LENGTH, STUDY_HELP, StudyConfig, scale_notes, train_one
from trainers import cli

PAPER_DEPTH, PAPER_SHARED = 110, 13
PAPER_DATASETS = ("cifar10", "cifar100")
# Experiment id -> its label in tables and figures. Fig. 8: naive sharing, the remedy and the
# baseline; Fig. 9: the remedy with one part turned off (each a keras_resnets.registry variant).
NAIVE, REMEDY, BASELINE = "shared", "shared-bn", "baseline"
FIG8 = (NAIVE, REMEDY, BASELINE)
FIG9 = ("shared-bn-shared-stats", "shared-bn-shared-affine", "shared-bn-gamma1")
LABELS = {NAIVE: "shared (naive)",
          REMEDY: "shared convs, unshared BN",
          BASELINE: "unshared baseline",
          "shared-bn-shared-stats": "unshared BN, shared statistics",
          "shared-bn-shared-affine": "unshared BN, shared gamma and beta",
          "shared-bn-gamma1": "unshared BN, gamma initialised to 1"}
COLUMNS = ("experiment", "label", "model", "overrides", "parameters", "train_error",
           "test_error", "epochs")


@dataclass(kw_only=True)
class SharingConfig(StudyConfig):
    """The whole experiment; written as ``sharing_config.json`` in ``out``."""

    out: str = "runs/sharing"
    depth: int = PAPER_DEPTH
    shared: int = PAPER_SHARED
    seed: int = 0
    ablation: int = 0  # 1: also the three Fig. 9 rows (one part of unshared BN off each)

    def __post_init__(self):
        """Refuse a depth that is not 6n+2 and a shared count outside [1, units per stage)."""
        from keras_resnets.names import format_name
        from keras_resnets.registry import resolve

        super().__post_init__()
        name = format_name("preact", self.depth)
        units = resolve(name)["units_per_stage"]  # refuses a bad depth
        if not 1 <= self.shared < units:
            raise ValueError(f"--shared must be in [1, {units - 1}] for {name} "
                             f"({units} units per stage); got {self.shared}.")

    @property
    def experiments(self) -> tuple[str, ...]:
        """The ids of the runs: Fig. 8's three, and Fig. 9's with ``ablation``."""
        return FIG8 + (FIG9 if self.ablation else ())


def reduced_scale(config: SharingConfig) -> list[str]:
    """How this experiment departs from the paper's scale, one phrase each (empty at full
    scale)."""
    notes = []
    if (config.depth, config.shared) != (PAPER_DEPTH, PAPER_SHARED):
        notes.append(f"depth {config.depth} / {config.shared} shared (paper: {PAPER_DEPTH} / "
                     f"{PAPER_SHARED})")
    return notes + scale_notes(config, HE2016_LENGTH, PAPER_DATASETS)


def shared_overrides(config: SharingConfig) -> dict:
    """The ``shared_blocks`` override of the shared nets; none at the paper's 13."""
    return {} if config.shared == PAPER_SHARED else {"shared_blocks": config.shared}


def matching_baseline(depth: int, shared: int) -> str:
    """The unshared ``preact{6n+2}`` whose parameter count is nearest that of
    ``preact{depth}-shared`` (naive sharing): a local search from n = distinct units per stage."""
    import keras_resnets
    from keras_resnets.names import format_name

    overrides = {} if shared == PAPER_SHARED else {"shared_blocks": shared}
    target = keras_resnets.count_parameters(
        keras_resnets.build(format_name("preact", depth, variant="shared"), **overrides))

    def gap(n):
        baseline = keras_resnets.build(format_name("preact", 6 * n + 2))
        return abs(keras_resnets.count_parameters(baseline) - target)

    units = (depth - 2) // 6
    n = units - shared + 1
    best = gap(n)
    for step in (-1, 1):
        while n + step >= 1 and gap(n + step) < best:
            n, best = n + step, gap(n + step)
    return format_name("preact", 6 * n + 2)


def experiment_runs(config: SharingConfig) -> dict:
    """Experiment id -> (model name, overrides) of the three runs (six with ``ablation``): the
    shared nets are the zoo's ``preact{depth}-{id}``, the baseline ``matching_baseline``."""
    from keras_resnets.names import format_name

    runs = {}
    for experiment in config.experiments:
        if experiment == BASELINE:
            runs[experiment] = (matching_baseline(config.depth, config.shared), {})
        else:
            runs[experiment] = (format_name("preact", config.depth, variant=experiment),
                                shared_overrides(config))
    return runs


def train_config(config: SharingConfig, model: str, overrides: dict):
    """The ``he2016`` recipe for one run of the experiment, sized by ``config``, in its run
    folder (named as the model)."""
    return config.train_config(model, model, overrides, seed=config.seed)


def run_sharing(config: SharingConfig, train_fn=None) -> pd.DataFrame:
    """Train the runs not yet in the ledger, recording the gradient norm ratio per epoch, and
    write the side-by-side results into ``out``. ``train_fn(TrainConfig, callbacks=...)``
    defaults to ``trainers.train.train``."""
    from analysis.sharing import gradient_ratio_callback
    from trainers.train import check_config

    if train_fn is None:
        from trainers.train import train as train_fn
    runs = {experiment: train_config(config, *run)
            for experiment, run in experiment_runs(config).items()}
    check_config(runs[NAIVE])  # dataset found, before training
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "sharing_config.json").write_text(json.dumps(dataclasses.asdict(config), indent=2))
    ledger, probe = config.open_ledger(), Probe(runs[NAIVE])
    norms = []
    for experiment, run in runs.items():
        norms.append(probe.initial_norms(run).assign(
            experiment=experiment, label=LABELS[experiment], model=run.model))
        ratio = gradient_ratio_callback(probe.images, probe.labels)
        train_one(functools.partial(train_fn, callbacks=[ratio]), run, ledger)
        if ratio.history:
            _save_ratios(out, experiment, run.model, ratio.history)
    histories = {experiment: _history(ledger, run) for experiment, run in runs.items()}
    table = pd.DataFrame([_result_row(ledger, experiment, run, histories[experiment])
                          for experiment, run in runs.items()], columns=list(COLUMNS))
    curves = {f"{LABELS[experiment]}: {run.model}": histories[experiment]
              for experiment, run in runs.items()}
    norms = pd.concat(norms, ignore_index=True)
    write_results(config, table, curves,
                  norms[["experiment", *(c for c in norms.columns if c != "experiment")]])
    return table


class Probe:
    """One fixed test batch of the experiment's data, and models built on it at
    initialisation (seeded as the run), for Fig. 8's measurements."""

    def __init__(self, run):
        from trainers.data import load_data

        self.data = load_data(dataclasses.replace(run, augment=False))
        self.images, self.labels = next(iter(self.data.test))

    def initial_norms(self, run) -> pd.DataFrame:
        """``analysis.sharing.activation_norms`` of ``run``'s model at initialisation on the
        batch."""
        import keras

        from analysis.sharing import activation_norms
        from trainers.train import build_model

        keras.utils.set_random_seed(run.seed)
        norms = activation_norms(build_model(run, self.data), self.images)
        keras.backend.clear_session()
        return norms


def _save_ratios(out: Path, experiment: str, model: str, history: list) -> None:
    """Append ``(epoch, ratio)`` of one run to ``gradient_ratio.csv`` (replacing its rows)."""
    path = out / "gradient_ratio.csv"
    rows = pd.DataFrame(history, columns=["epoch", "ratio"]).assign(
        experiment=experiment, label=LABELS[experiment], model=model)
    if path.is_file():
        saved = pd.read_csv(path)
        rows = pd.concat([saved[saved["experiment"] != experiment], rows], ignore_index=True)
    rows[["experiment", "label", "model", "epoch", "ratio"]].to_csv(path, index=False)


def _history(ledger, run) -> pd.DataFrame:
    """The run's per-epoch history as the ledger keeps it (empty while it has none)."""
    from trainers.callbacks import read_history

    return read_history(ledger.history_dir / f"{run_name(run)}.csv")


def _result_row(ledger, experiment: str, run, history: pd.DataFrame) -> dict:
    """The table row of one run, from the ledger and its recorded ``history``."""
    entry = ledger.lookup(run) or {}
    finished = not history.empty
    return {"experiment": experiment, "label": LABELS[experiment], "model": run.model,
            "overrides": json.dumps(run.model_overrides),
            "parameters": entry.get("parameters"),
            "train_error": 100.0 * (1.0 - float(history["accuracy"].iloc[-1]))
            if finished else float("nan"),
            "test_error": entry.get("test_error"),
            "epochs": entry.get("epochs")}


def write_results(config: SharingConfig, table: pd.DataFrame, histories: dict,
                  norms: pd.DataFrame) -> None:
    """Write the comparison table, the Fig. 8 measurements and their figures, and ``sharing.md``
    into ``out``."""
    from analysis.plots import plot_activation_norms, plot_gradient_ratio, plot_training_curves
    from analysis.tables import markdown_table

    out = Path(config.out)
    table.to_csv(out / "sharing.csv", index=False)
    norms.to_csv(out / "activation_norms.csv", index=False)
    plot_activation_norms(norms, out / "activation_norms.png")
    if (out / "gradient_ratio.csv").is_file():
        plot_gradient_ratio(pd.read_csv(out / "gradient_ratio.csv"), out / "gradient_ratio.png")
    notes = reduced_scale(config)
    scale = ("REDUCED SCALE: " + "; ".join(notes)) if notes else "full scale"
    title = f"Sharing blocks (cf. Jastrzebski et al. 2018, Fig. 8), {config.dataset}, {scale}"
    plot_training_curves(histories, out / "sharing.png", title)
    (out / "sharing.md").write_text(
        f"# {title}\n\nErrors in %; train error is the last epoch's (augmented) training "
        f"error. Paper: naive sharing overfits and is worse than the unshared baseline of "
        f"about the same parameter count; unshared BN closes much of the gap.\n\n"
        f"{markdown_table(table.drop(columns='experiment'))}\n\n"
        f"![training curves](sharing.png)\n\n"
        f"Fig. 8 right: the gradient norm ratio ||dL/dh_1|| / ||dL/dh_(1+2n)|| per epoch on one "
        f"fixed test batch (`gradient_ratio.csv`), and the norms of each block's input and "
        f"residual at initialisation (`activation_norms.csv`).\n\n"
        f"![gradient norm ratio](gradient_ratio.png)\n![activation norms](activation_norms.png)\n")


# ---------------------------------------------------------------------------------------------
# Command line

HELP = {**STUDY_HELP,
        "epochs": "train each run this long (default: the recipe's 64k iterations)",
        "out": "experiment folder: results and the ledger runs.csv (commit it)",
        "depth": "depth of the shared nets, 6n+2", "shared": "units shared per stage",
        "seed": "random seed of every run",
        "ablation": "1: also train Fig. 9's three ablations of unshared BN"}


def make_parser() -> argparse.ArgumentParser:
    """One flag per ``SharingConfig`` field."""
    parser = cli.Parser(prog="python -m experiments.sharing", description=__doc__.split("\n\n")[0],
                        formatter_class=argparse.RawDescriptionHelpFormatter,
                        epilog=__doc__.split("\n\n", 1)[1])
    cli.add_config_flags(parser, SharingConfig, HELP)
    return parser


def main(argv=None) -> int:
    """CLI (``trainers.cli.run_cli``): 0 on success, 2 for bad settings, 1 when a write failed
    (one ``error:`` line, no traceback). A diverged run is a result, as in ``ablate``."""
    return cli.run_cli(_sharing_command, argv)


def _sharing_command(argv) -> None:
    """Run the command line's experiment and print its table."""
    config = cli.config_from_args(SharingConfig, make_parser().parse_args(argv))
    table = run_sharing(config)
    print(table.to_string(index=False))
    print(f"Results in {config.out}/ (sharing.md, sharing.csv, sharing.png).")


if __name__ == "__main__":
    sys.exit(main())
