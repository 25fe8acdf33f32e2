"""KerasTuner sweeps over the zoo: a search-space file + the trainer's flags -> a tuned folder.

    python -m experiments.tune --space smoke --tuner random --max-trials 8 --out runs/sweep \\
        --dataset synthetic --epochs 2

The sweep folder holds ``tune.json`` (the sweep's config), KerasTuner's state (``trials/``, one
``trial_NN/`` per trial with the trainer's logs), ``trials.csv``/``trials.md`` (one row per
trial), ``trials.png`` (val error against each swept value), ``best.keras`` and its SavedModel
(``export/NAME/1``). A trial whose loss diverged is ``FAILED``, ``diverged`` in the table, and
never the best; when no trial finished, the command says so (exit 1) and exports nothing.
Running the same command again resumes: finished trials are kept, an interrupted one is run
again (from its last finished epoch), the rest follow; ``--out`` may be spelled otherwise
(``DIR/``, relative), but only the budget (``--max-trials``) may change.

Distributed tuning is KerasTuner's own: one chief process holds the oracle and serves trials
over gRPC, workers train them. Start the same command on every machine with
``KERASTUNER_TUNER_ID`` (``chief`` on the chief, ``tuner0``, ``tuner1``, ... on the workers),
``KERASTUNER_ORACLE_IP`` and ``KERASTUNER_ORACLE_PORT`` (the chief's address). The chief writes
the results once every trial is done; ``--out`` must be a folder all processes share for it to
find the trials' checkpoints.
"""

import argparse
import dataclasses
import importlib.util
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from trainers import cli
from trainers.config import LOCATION_FIELDS, TrainConfig
from trainers.jsonconfig import JsonConfig
from trainers.train import add_train_flags

if TYPE_CHECKING:
    from experiments.spaces import SearchSpace

PROJECT = "trials"  # KerasTuner's project folder inside the sweep folder
BAYESIAN_NEEDS = ("scipy", "sklearn")  # KerasTuner's Gaussian process, not installed with it
TUNER_CHECKPOINT = "checkpoint.weights.h5"  # KerasTuner's weights of a trial's best epoch
# https://keras.io/guides/keras_tuner/distributed_tuning/
DISTRIBUTED_TUNING = ("KERASTUNER_TUNER_ID", "KERASTUNER_ORACLE_IP", "KERASTUNER_ORACLE_PORT")


@dataclass
class SweepConfig(JsonConfig):
    """One sweep: its search space, tuner and budget, and the base run every trial starts from.
    Written to ``tune.json`` in the sweep folder."""

    space: dict
    train: dict = field(default_factory=dict)  # TrainConfig fields
    tuner: str = "random"  # random, bayesian or hyperband
    max_trials: int | None = 10  # None for hyperband, which sizes itself from the epochs
    out: str = "runs/sweep"

    def __post_init__(self):
        """Check every setting (a ``ValueError`` saying what is accepted); ``out`` is normalised,
        as ``TrainConfig`` does: ``runs/sweep/`` is ``runs/sweep``."""
        from experiments.hypermodel import TUNERS

        self.space = self.search_space().to_json()  # validated, in one canonical form
        self.out = os.path.normpath(self.out)
        if self.tuner not in TUNERS:
            raise ValueError(f"Unknown tuner {self.tuner!r}; accepted: {', '.join(TUNERS)}.")
        if self.tuner == "hyperband" and self.max_trials is not None:
            raise ValueError("Hyperband takes no max_trials: its brackets follow from --epochs "
                             "(the most epochs a model trains) and a factor of 3.")
        if self.tuner != "hyperband" and (self.max_trials is None or self.max_trials < 1):
            raise ValueError(f"max_trials must be a positive integer; got {self.max_trials}.")
        if self.tuner == "hyperband" and not self.base_config().epochs:
            raise ValueError("Hyperband needs --epochs (the most epochs one model trains).")
        if self.base_config().record_every:
            raise ValueError("A sweep does not record iterative inference (record_every); "
                             "train the chosen model with python -m analysis.record.")

    def search_space(self) -> "SearchSpace":
        """The validated search space of this sweep."""
        from experiments.spaces import from_dict

        return from_dict(self.space, "sweep space")

    def base_config(self) -> TrainConfig:
        """The training config every trial starts from, before the space's values."""
        return TrainConfig(**self.train)


def check_resumable(sweep: SweepConfig) -> None:
    """Refuse to resume a folder that holds a different sweep. Only the budget may change, and
    where files lie: ``out`` (however it is spelled, ``tune.json`` is in it) and the base run's
    ``LOCATION_FIELDS`` do not count. Everything else of the base run does, ``validation_every``
    included: it decides the epochs a trial is scored on."""
    path = Path(sweep.out) / "tune.json"
    if not path.exists():
        return
    before = SweepConfig.from_json(path.read_text())
    changed = sorted(name for name in ("space", "tuner") if getattr(before, name) !=
                     getattr(sweep, name))
    saved = TrainConfig.from_json(json.dumps(before.train))  # as the trainer reads a saved run
    now = sweep.base_config()
    train = [name for name, value in dataclasses.asdict(saved).items()
             if name not in LOCATION_FIELDS and value != getattr(now, name)]
    if train:
        changed.append(f"train: {', '.join(train)}")
    if changed:
        raise ValueError(f"{sweep.out} holds a different sweep (its tune.json differs in "
                         f"{', '.join(changed)}); resume it with the same settings or pick a new "
                         f"--out.")


def run_sweep(sweep: SweepConfig) -> pd.DataFrame | None:
    """Run (or resume) ``sweep`` and write its results; returns the trials table.

    Every check (space, settings, data location, batch sizes against the strategy) runs before
    the first trial. A KerasTuner worker (``KERASTUNER_TUNER_ID`` not ``chief``) only trains and
    returns ``None``; the chief serves the oracle until every trial is done, then reports.
    """
    import keras

    from experiments.hypermodel import ZooHyperModel, make_tuner
    from trainers.strategy import check_batch_size, make_strategy
    from trainers.train import check_config

    space, config = sweep.search_space(), sweep.base_config()  # both validated again
    check_resumable(sweep)
    if sweep.tuner == "bayesian":
        check_bayesian_installed()
    worker = is_worker()
    check_config(config)
    strategy = make_strategy(config.strategy)
    swept = space.recipe.get("batch_size")
    for batch_size in swept.candidates() if swept else (config.batch_size,):
        check_batch_size(batch_size, strategy)
    out = Path(sweep.out)
    out.mkdir(parents=True, exist_ok=True)
    written = out / f"tune.json.{os.getpid()}"  # the chief and workers may write it at once
    written.write_text(sweep.to_json() + "\n")
    written.replace(out / "tune.json")
    keras.config.set_dtype_policy(config.dtype_policy)
    hypermodel = ZooHyperModel(space, config, strategy.num_replicas_in_sync)
    tuner = make_tuner(sweep.tuner, hypermodel, out, PROJECT, sweep.max_trials, strategy)
    tuner.search(verbose=1)
    if worker:
        return None
    return report(tuner, hypermodel, out)


def check_bayesian_installed() -> None:
    """Refuse ``--tuner bayesian`` up front where its extra packages are missing."""
    missing = [module for module in BAYESIAN_NEEDS if importlib.util.find_spec(module) is None]
    if missing:
        raise ValueError(f"--tuner bayesian needs {' and '.join(missing)}, not installed here "
                         f"(pip install 'keras-tuner[bayesian]'); use --tuner random or hyperband.")


def is_worker() -> bool:
    """Whether this process is a KerasTuner worker of a distributed sweep (not the chief): the
    three ``KERASTUNER_*`` variables of KerasTuner's distributed-tuning guide are set and
    ``KERASTUNER_TUNER_ID`` is not the chief's (KerasTuner has no public function for it and
    reads them the same way). ``ValueError`` when only some of them are set."""
    if "KERASTUNER_ORACLE_IP" not in os.environ:
        return False
    missing = [name for name in DISTRIBUTED_TUNING if name not in os.environ]
    if missing:
        raise ValueError(f"KERASTUNER_ORACLE_IP is set but {' and '.join(missing)} not: a "
                         f"distributed sweep needs all of {', '.join(DISTRIBUTED_TUNING)}.")
    return "chief" not in os.environ["KERASTUNER_TUNER_ID"]


# ---------------------------------------------------------------------------------------------
# Results


def trials_frame(tuner, hypermodel) -> pd.DataFrame:
    """One row per trial, best first: id, status, swept values (empty where a conditional one
    is inactive), model, best val error %, epochs trained, parameters, wall time of its epochs,
    and whether its loss diverged."""
    from experiments.hypermodel import DIVERGED, TRIAL_INFO
    from trainers.callbacks import read_history

    rows = []
    for trial_id, trial in sorted(tuner.oracle.trials.items()):
        run_dir = Path(tuner.get_trial_dir(trial_id))
        info_path = run_dir / TRIAL_INFO
        info = json.loads(info_path.read_text()) if info_path.exists() else {}
        history = read_history(run_dir / "history.csv")
        hp = trial.hyperparameters.copy()
        rows.append({
            "trial": trial_id, "status": trial.status, **hypermodel.values(hp),
            "model": hypermodel.trial_config(hp).model,
            "val_error": 100.0 * (1.0 - trial.score) if trial.score is not None else None,
            "epochs": int(history["epoch"].max()) if len(history) else 0,
            "parameters": info.get("parameters"),
            "wall_s": float(history["epoch_time_s"].sum()) if len(history) else 0.0,
            "diverged": (run_dir / DIVERGED).is_file()})
    columns = ["trial", "status", *hypermodel.space.dimensions(), "model", "val_error", "epochs",
               "parameters", "wall_s", "diverged"]
    frame = pd.DataFrame(rows, columns=columns)
    if len(frame):
        frame = frame.sort_values(["val_error", "trial"], na_position="last", kind="stable")
    return frame.reset_index(drop=True)


def save_best(tuner, hypermodel, out: Path) -> dict | None:
    """``best.keras`` (the best finished trial's weights at its best epoch), its SavedModel under
    ``export/NAME/1`` (``saved_models.export``; the model standardises its raw images itself)
    and ``best.json``. ``None`` when no trial finished or its checkpoint is not on this machine;
    a diverged trial is ``FAILED``, never a candidate."""
    from saved_models.export import export

    best = [trial for trial in tuner.oracle.get_best_trials(1)
            if trial.status == "COMPLETED" and trial.score is not None]
    if not best:
        return None
    trial = best[0]
    trial_dir = Path(tuner.get_trial_dir(trial.trial_id))
    if not (trial_dir / TUNER_CHECKPOINT).is_file():
        print(f"Best trial {trial.trial_id}: no {TUNER_CHECKPOINT} in {trial_dir} on this machine "
              f"(is --out shared by the chief and the workers?); best.keras not written.")
        return None
    config = hypermodel.trial_config(trial.hyperparameters.copy())
    model = tuner.load_model(trial)
    model.save(out / "best.keras")
    version = out / "export" / config.model / "1"
    export(out / "best.keras", version, overwrite=True)
    best_info = {"trial": trial.trial_id, "model": config.model,
                 "model_overrides": config.model_overrides,
                 "hyperparameters": hypermodel.values(trial.hyperparameters.copy()),
                 "val_error": 100.0 * (1.0 - trial.score), "keras": str(out / "best.keras"),
                 "saved_model": str(version)}
    (out / "best.json").write_text(json.dumps(best_info, indent=2) + "\n")
    return best_info


def report(tuner, hypermodel, out: Path) -> pd.DataFrame:
    """Write ``trials.csv``, ``trials.md``, ``trials.png`` and the best model; return the table.
    ``RunFailed`` (exit 1) when no trial finished, after writing the table that says why."""
    from analysis.plots import plot_trials
    from analysis.tables import markdown_table

    frame = trials_frame(tuner, hypermodel)
    frame.to_csv(out / "trials.csv", index=False)
    (out / "trials.md").write_text(markdown_table(frame) + "\n")
    plot_trials(frame, hypermodel.space.dimensions(), out / "trials.png")
    check_some_trial_finished(frame, out)
    best = save_best(tuner, hypermodel, out)
    if best:
        print(f"Best: trial {best['trial']}, {best['model']}, val error {best['val_error']:.2f}%"
              f" -> {best['keras']}, {best['saved_model']}")
    return frame


def check_some_trial_finished(frame: pd.DataFrame, out: Path) -> None:
    """Refuse to report a best model when no trial finished: say how many diverged and how many
    failed otherwise (``RunFailed``, exit 1); nothing is exported as the best."""
    if (frame["status"] == "COMPLETED").any():
        return
    diverged = int(frame["diverged"].sum())
    raise cli.RunFailed(
        f"No trial finished: {diverged} of {len(frame)} diverged and {len(frame) - diverged} "
        f"failed otherwise (see {out / 'trials.md'}); no best model exported. Try lower learning "
        f"rates in the search space.")


# ---------------------------------------------------------------------------------------------
# Command line


def make_parser() -> argparse.ArgumentParser:
    """The trainer's flags (data, recipe, strategy, seed; see ``python -m trainers.train -h``)
    but ``--out``, plus the sweep's; the model comes from the search space."""
    parser = cli.Parser(
        prog="python -m experiments.tune", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    add_train_flags(parser, skip=("out",))
    sweep = parser.add_argument_group("sweep")
    sweep.add_argument("--space", required=True,
                       help="search-space JSON file, or a bundled one: smoke, ablation")
    sweep.add_argument("--tuner", default="random",
                       help="KerasTuner's random, bayesian or hyperband (default: random)")
    sweep.add_argument("--max-trials", type=int,
                       help="trials of random/bayesian search (default 10); not for hyperband")
    sweep.add_argument("--out", required=True, help="sweep folder (resumed when it exists)")
    return parser


def sweep_from_args(argv=None) -> SweepConfig:
    """The ``SweepConfig`` of a command line; its trials start from the trainer's flags."""
    args = make_parser().parse_args(argv)
    from experiments.spaces import load  # after the flags: --help answers without Keras

    given = cli.flag_values(TrainConfig, args)  # out: the sweep's folder
    fixed = sorted(set(given) & {"model", "model_overrides"})
    if fixed:
        raise ValueError(f"--{fixed[0].replace('_', '-')} has no effect on a sweep: the models "
                         f"come from the search space (--space).")
    config = TrainConfig.for_recipe(given.pop("recipe", "he2016"), **given)
    max_trials = args.max_trials
    if max_trials is None and args.tuner != "hyperband":
        max_trials = 10
    return SweepConfig(space=load(args.space).to_json(), train=dataclasses.asdict(config),
                       tuner=args.tuner, max_trials=max_trials, out=args.out)


def main(argv=None) -> int:
    """CLI (``trainers.cli.run_cli``): 0 when the sweep finished (or this worker's share of
    it), 2 for bad settings, 1 when no trial finished (every one diverged or failed) or a write
    failed; one ``error:`` line."""
    return cli.run_cli(_tune_command, argv)


def _tune_command(argv) -> None:
    """Run the command line's sweep and print its trials."""
    sweep = sweep_from_args(argv)
    frame = run_sweep(sweep)
    if frame is not None:
        from analysis.tables import markdown_table

        print(markdown_table(frame))
        print(f"Results in {sweep.out}/ (tune.json, trials.csv, trials.md, trials.png).")


if __name__ == "__main__":
    sys.exit(main())
