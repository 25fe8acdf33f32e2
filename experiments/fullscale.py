"""Train a study's plan of full-scale runs a few minutes at a time, over as many GPU windows as
it takes.

    KERAS_BACKEND=jax python -m experiments.fullscale --minutes 8 --data-dir /tmp/data

The plan (``results/fullscale/plan.csv``, written by ``results/fullscale/plan.py``) lists runs
in order, each with its exact ``trainers.array_fit`` command. A call takes the first run that is
not in the ledger (``results/fullscale/runs.csv``, ``experiments.ledger``) and trains it with
array_fit's ``stop_after`` for what is left of ``--minutes``: it stops at an epoch boundary and
leaves the run folder's resume state, from which the next call continues to the weights an
uninterrupted run would reach. A run that finishes goes into the ledger (with its per-epoch
history) and is never trained again; the next run starts while time is left. Every call trains
at least one epoch, so a call can overrun ``--minutes`` by up to one epoch.

``--data-dir`` and ``--runs`` replace where each command reads its data and keeps its run folder
(neither changes what is trained). ``--epochs``, ``--train-size`` and ``--test-size`` shrink every
run for a dry run: those are other runs than the plan's, which the plan's ledger refuses
(``Ledger.lookup``), so give a dry run its own ``--ledger``.
"""

import csv
import dataclasses
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from experiments.ledger import Ledger, folder_result, run_name
from trainers import array_fit, cli
from trainers.config import TrainConfig
from trainers.train import check_same_run

PROGRAM = "trainers.array_fit"


@dataclass
class FullscaleConfig:
    """One call of the runner: how long, which plan and ledger, and where the data is."""

    minutes: float
    plan: str = "results/fullscale/plan.csv"
    ledger: str = "results/fullscale/runs.csv"
    data_dir: str | None = None
    runs: str | None = None
    epochs: int | None = None
    train_size: int | None = None
    test_size: int | None = None

    def __post_init__(self):
        """Refuse a negative or infinite time before anything is read."""
        if not 0 <= self.minutes < float("inf"):
            raise ValueError(f"--minutes must be a finite number >= 0; got {self.minutes}.")


def plan_configs(config: FullscaleConfig) -> list[TrainConfig]:
    """Every run of the plan as the config its command trains, with ``config``'s overrides."""
    with open(config.plan, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or "command" not in rows[0]:
        raise ValueError(f"{config.plan} holds no plan: expected a CSV with a 'command' column.")
    configs = [command_config(row["command"], config) for row in rows]
    names = [run_name(c) for c in configs]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"{config.plan} names these runs more than once: {repeated}.")
    return configs


def command_config(command: str, config: FullscaleConfig) -> TrainConfig:
    """The ``TrainConfig`` a plan's ``trainers.array_fit`` command trains, ``config``'s
    overrides on top. A plan's run continues over calls, so its length is fixed: no
    ``--time-budget`` (nor ``--stop-after``, which the runner sets)."""
    words = shlex.split(command)
    if PROGRAM not in words:
        raise ValueError(f"Not a {PROGRAM} command: {command!r}.")
    args = array_fit.make_parser().parse_args(words[words.index(PROGRAM) + 1:])
    if args.time_budget is not None or args.stop_after is not None:
        raise ValueError(f"A plan's command gives --epochs, not --time-budget or --stop-after: "
                         f"{command!r}.")
    run_config = array_fit.config_from_args(args)
    overrides = {name: getattr(config, name)
                 for name in ("data_dir", "epochs", "train_size", "test_size")
                 if getattr(config, name) is not None}
    if config.runs is not None:
        overrides["out"] = str(Path(config.runs) / run_name(run_config))
    return dataclasses.replace(run_config, **overrides)


def finished_in_folder(run_config: TrainConfig) -> tuple[str, dict] | None:
    """``(outcome, metrics)`` of a run its folder holds as finished (trained, not yet in the
    ledger), or None. A ``ValueError`` when the folder holds another run
    (``trainers.train.check_same_run``, as for every study's runs)."""
    result = folder_result(Path(run_config.out))
    if result is not None:
        check_same_run(run_config, Path(run_config.out))
    return result


def run_plan(config: FullscaleConfig) -> list[str]:
    """Train the plan's unfinished runs in order until ``config.minutes`` are spent (the first
    one for at least an epoch, so that every call makes progress); returns one line per run
    saying where it stands."""
    deadline = time.monotonic() + 60 * config.minutes
    ledger, loaded, lines, trained = Ledger(Path(config.ledger)), {}, [], False
    for run_config in plan_configs(config):
        name = run_name(run_config)
        entry = ledger.lookup(run_config)
        if entry is not None:
            lines.append(f"{name}: in the ledger ({entry['outcome']}, test error "
                         f"{entry['test_error']:.2f}%)")
            continue
        result = finished_in_folder(run_config)
        if result is None and trained and time.monotonic() >= deadline:
            lines.append(f"{name}: waiting")
            continue
        if result is None:
            result, trained = train_for(run_config, deadline - time.monotonic(), loaded), True
        if result is None:
            lines.append(f"{name}: stopped at an epoch boundary; the next call continues it")
            continue
        ledger.record(run_config, *result)
        lines.append(f"{name}: {result[0]}, test error {result[1]['test_error']:.2f}%, recorded")
    return lines


def train_for(run_config: TrainConfig, seconds: float, loaded: dict) -> tuple[str, dict] | None:
    """Train ``run_config`` (from its resume state, if any) for about ``seconds``; its
    ``(outcome, metrics)`` once it finishes, else None. ``loaded`` caches each dataset's arrays
    for the next runs of this call."""
    import keras

    key = (run_config.dataset, run_config.data_dir, run_config.train_size, run_config.test_size)
    if key not in loaded:
        loaded[key] = array_fit.load_cifar(*key)
    keras.backend.clear_session()  # the previous run's models and compiled steps
    metrics = array_fit.train_arrays(run_config, loaded[key], stop_after=seconds)
    if metrics is None:
        return None
    return ("diverged" if metrics["diverged"] else "finished"), metrics


HELP = {"minutes": "train for about this long (plus up to one epoch), then stop at an epoch "
                   "boundary",
        "plan": "CSV with a 'command' column of trainers.array_fit commands, run in order",
        "ledger": "finished runs (experiments.ledger); its history/ beside it",
        "data_dir": "replaces every command's --data-dir",
        "runs": "replaces the folder of every command's --out (the run's name stays)",
        "epochs": "dry run: replaces every run's epochs",
        "train_size": "dry run: keep the first N training images",
        "test_size": "dry run: keep the first N test images"}


def main(argv=None) -> int:
    """CLI (``trainers.cli.run_cli``): 0 done for now, 1 a failed write, 2 bad input."""
    return cli.run_cli(_command, argv)


def _command(argv) -> None:
    parser = cli.Parser(prog="python -m experiments.fullscale",
                        description=__doc__.split("\n\n")[0])
    cli.add_config_flags(parser, FullscaleConfig, HELP)
    for line in run_plan(cli.config_from_args(FullscaleConfig, parser.parse_args(argv))):
        print(line, flush=True)


if __name__ == "__main__":
    sys.exit(main())
