"""A study's runs: the settings every study shares, where its runs go, and training each once.

A study (He et al. 2016's tables, ``experiments.ablate``; Jastrzebski et al. 2018's sharing
experiment, ``experiments.sharing``, and figures, ``experiments.reproduce``) trains a set of runs
with one recipe at one scale and compares them. What they share lives here:

- ``StudyConfig``: the data, the scale (epochs, examples, batch), the strategy, the geometry of
  the strided convs, the results folder ``out``, the folder of run folders ``runs`` (default
  ``OUT/runs``: working files, not committed) and the ledger (default ``OUT/runs.csv``,
  ``experiments.ledger``: the committed record). ``StudyConfig.train_config`` makes one run's
  ``TrainConfig`` from them.
- ``run_status`` and ``train_one``: a run in the ledger is never trained again, even from a fresh
  clone; a ledger row or run folder holding another config is refused, never reused
  (``trainers.train.check_same_run``, the trainer's own check).
- ``scale_notes`` (how a study departs from its paper's scale, the reduced-scale notes of its
  report) and ``full_scale_command`` (the command that runs it at the paper's scale).

``strided_padding``: the zoo pads strided convolutions symmetrically, as the papers' code does
(``keras_resnets.units``). The runs committed under ``results/`` were trained before, with
Keras's ``"same"`` padding, and their ledger rows record it; ``--strided-padding same`` reuses
them, the default refuses them with a message naming the flag.

Importing this module imports no TensorFlow: a study's ``--help`` answers at once.
"""

import json
import shlex
from dataclasses import dataclass, fields
from pathlib import Path

from experiments.ledger import Ledger, folder_result, is_finished, run_name
from trainers.config import REFERENCE_BATCH, STRATEGIES, STRIDED_PADDING, TrainConfig
from trainers.jsonconfig import JsonConfig

# He et al. 2016's CIFAR training length (appendix), as a reduced-scale note names it: 64k
# iterations of 128 images over CIFAR's 50k training images.
HE2016_LENGTH = "~164 (64k iterations)"
STUDY_HELP = {
    "dataset": "synthetic, cifar10, cifar100 or a prepared TFDS dataset",
    "data_dir": "where the dataset lies (trainers.data; real CIFAR-10: ../shared/data)",
    "epochs": "shorten every run's recipe to this many epochs, keeping its shape",
    "train_size": "first N training examples only", "test_size": "first N test examples only",
    "batch_size": "global batch of every run (the papers' 128; the learning rate scales "
                  "linearly with it)",
    "strategy": f"distribution strategy of every run: {', '.join(STRATEGIES)}",
    "strided_padding": "geometry of the strided convs: symmetric (the papers') or same "
                       "(Keras's, with which the runs recorded under results/ were trained)",
    "runs": "folder of the run folders (default: OUT/runs; working files, not committed)",
    "ledger": "CSV recording every finished run (default: OUT/runs.csv; commit it)",
}


@dataclass(kw_only=True)
class StudyConfig(JsonConfig):
    """What every run of a study shares: data, scale, strategy and geometry, and where the
    results, the run folders and the ledger are. A study's config extends it."""

    dataset: str = "cifar10"
    data_dir: str | None = None
    epochs: int | None = None  # None: each recipe's own length
    train_size: int | None = None
    test_size: int | None = None
    batch_size: int = REFERENCE_BATCH
    strategy: str = "auto"
    strided_padding: str = STRIDED_PADDING  # the zoo's; "same" for the runs recorded before it
    out: str = "sweeps/study"
    runs: str | None = None  # folder of the run folders (default OUT/runs)
    ledger: str | None = None  # the committed record of finished runs (default OUT/runs.csv)

    def __post_init__(self):
        """Refuse an unknown strategy or geometry and a size below 1 (a ``ValueError`` saying
        what is accepted)."""
        if self.strategy not in STRATEGIES:
            raise ValueError(
                f"Unknown strategy {self.strategy!r}; accepted: {', '.join(STRATEGIES)}.")
        from keras_resnets.units import STRIDED_PADDINGS

        if self.strided_padding not in STRIDED_PADDINGS:
            raise ValueError(f"Unknown strided padding {self.strided_padding!r}; accepted: "
                             f"{', '.join(STRIDED_PADDINGS)}.")
        sizes = {"epochs": self.epochs, "train_size": self.train_size,
                 "test_size": self.test_size, "batch_size": self.batch_size}
        bad = {name: value for name, value in sizes.items() if value is not None and value < 1}
        if bad:
            raise ValueError(f"These settings must be positive: {bad}.")

    @property
    def runs_dir(self) -> Path:
        """Where the run folders go: ``runs``, else ``OUT/runs``."""
        return Path(self.runs) if self.runs else Path(self.out) / "runs"

    def open_ledger(self) -> Ledger:
        """The study's ledger: ``ledger``, else ``OUT/runs.csv``."""
        return Ledger(Path(self.ledger) if self.ledger else Path(self.out) / "runs.csv")

    def shared_settings(self) -> dict:
        """The data, scale, strategy and geometry fields (not where anything goes), to give a
        study run inside this one (``experiments.reproduce``'s sharing experiment) the same."""
        places = ("out", "runs", "ledger")
        return {f.name: getattr(self, f.name) for f in fields(StudyConfig)
                if f.name not in places}

    def train_config(self, name: str, model: str, overrides: dict, recipe: str = "he2016",
                     **settings) -> TrainConfig:
        """The run ``name`` (its run folder under ``runs_dir`` and its ledger key): ``model``
        with ``overrides`` and this study's geometry, trained with ``recipe`` at this scale;
        ``settings`` are further ``TrainConfig`` fields (``seed``, ``validation_every``...)."""
        length = {"epochs": self.epochs} if self.epochs is not None else {}
        return TrainConfig.for_recipe(
            recipe, model=model,
            model_overrides={"strided_padding": self.strided_padding, **overrides},
            dataset=self.dataset, data_dir=self.data_dir, train_size=self.train_size,
            test_size=self.test_size, batch_size=self.batch_size, strategy=self.strategy,
            out=str(self.runs_dir / name), **length, **settings)


# ---------------------------------------------------------------------------------------------
# Runs


def recorded(run_config: TrainConfig, ledger: Ledger) -> dict | None:
    """The ledger's row of ``run_config``, or None, from one read of the ledger. A row of
    another config is refused (``Ledger.same_run``); one recorded with the other strided-conv
    geometry says which ``--strided-padding`` reuses it."""
    found = ledger.find(run_config)
    if found is None:
        return None
    entry, saved = found
    then, now = (config.model_overrides.get("strided_padding") for config in (saved, run_config))
    if then != now:
        raise ValueError(
            f"{ledger.path} records {run_name(run_config)} trained with strided_padding "
            f"{then!r}, but this study asks for {now!r}; add --strided-padding {then} to reuse "
            f"it (and every run recorded with it), or use another --ledger.")
    return ledger.same_run(run_config, entry, saved)


def run_status(run_config: TrainConfig, ledger: Ledger) -> tuple[str, dict]:
    """``finished`` (with its metrics), ``diverged`` or ``pending``: the ledger first, then the
    run folder. Raises ``ValueError`` when either holds a run of another config (a result of
    another recipe must not count)."""
    from trainers.train import check_same_run

    entry = recorded(run_config, ledger)
    if entry is not None:
        return ("finished" if is_finished(entry) else "diverged"), entry
    check_same_run(run_config, Path(run_config.out))
    return folder_result(Path(run_config.out)) or ("pending", {})


def train_one(train_fn, run_config: TrainConfig, ledger: Ledger) -> bool:
    """Train one run unless it is already done, then record it in the ledger; whether it
    trained. The trainer raises ``TrainingDiverged`` at a NaN loss; ``diverged.json`` then
    records it so that a re-run does not repeat a seeded divergence (the paper's "fail" is a
    result, not an error)."""
    import keras

    from trainers.train import TrainingDiverged, check_same_run

    run_dir = Path(run_config.out)
    if recorded(run_config, ledger) is not None:
        return False
    check_same_run(run_config, run_dir)
    trained = folder_result(run_dir) is None
    if trained:
        try:
            train_fn(run_config)
        except TrainingDiverged as error:
            run_dir.mkdir(parents=True, exist_ok=True)
            (run_dir / "diverged.json").write_text(
                json.dumps({"diverged": True, "error": str(error)}) + "\n")
        finally:
            keras.backend.clear_session()  # free the finished model before the next run
    outcome, metrics = folder_result(run_dir) or (None, {})
    if outcome is not None:  # a run folder finished before the ledger existed is recorded too
        ledger.record(run_config, outcome, metrics)
    return trained


# ---------------------------------------------------------------------------------------------
# Scale


def scale_notes(config: StudyConfig, paper_length: str, paper_datasets) -> list[str]:
    """How ``config``'s training departs from the paper's, one phrase each (empty at full
    scale): fewer epochs than ``paper_length`` (the paper's, in words), a dataset not in
    ``paper_datasets``, fewer examples, another batch. A study adds its own (depth, width)."""
    notes = []
    if config.epochs is not None:
        notes.append(f"{config.epochs} epoch{'s' * (config.epochs != 1)} instead of "
                     f"{paper_length}")
    if config.dataset not in paper_datasets:
        notes.append(f"{config.dataset} data instead of {' and '.join(paper_datasets)}")
    for split, size in (("training", config.train_size), ("test", config.test_size)):
        if size is not None:
            notes.append(f"first {size} {split} images only")
    if config.batch_size != REFERENCE_BATCH:
        notes.append(f"batch {config.batch_size} instead of {REFERENCE_BATCH} (learning rate "
                     f"scaled linearly)")
    return notes


def full_scale_command(config: StudyConfig, program: str, *flags: str) -> str:
    """The command that runs ``program`` (``experiments.X``) with ``flags`` at the paper's
    scale, on the same data, into ``OUT-full`` (and ``RUNS-full`` when ``runs`` is given): the
    study's scale and geometry flags left out, so the defaults, the paper's, apply."""
    words = ["python", "-m", program, *flags, "--out", f"{config.out}-full"]
    if config.runs:
        words += ["--runs", f"{config.runs}-full"]
    if config.data_dir:
        words += ["--data-dir", config.data_dir]
    return shlex.join(words)
