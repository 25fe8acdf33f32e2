"""The ablation runner: every row of one of He et al. 2016's Tables 1-3, trained with one recipe.

    python -m experiments.ablate --table 1 --dataset cifar10 --seeds 5 --out sweeps/table1
    python -m experiments.ablate --table 2 --depth 20 --epochs 2 --dataset synthetic --out /tmp/t2

Rows come from ``keras_resnets.paper.RESULTS`` (the one place that knows the paper's numbers).
Each row trains ``--seeds`` times (``trainers.train.train``, one run folder per seed under
``OUT/runs/``); ``OUT/results.csv``, ``results.md`` and ``results.png`` compare the median test
error over seeds with the paper's number. A run stopped by a NaN loss counts as "diverged", the
measured counterpart of the paper's "fail". Re-running skips finished runs.

Which rows run:
- ``--depth D`` trains every row at depth D. The row keeps its variant (shortcut, ordering, one
  conv per unit) and the unit type follows the zoo's naming rule for D (6n+2: basic, 9n+2:
  bottleneck). Rows that become the same model (Tables 2 and 3 at 110, 164 and 1001 layers)
  train once; the table lists every paper number that model stands for.
- Datasets: Tables 1 and 2 are CIFAR-10 only, so all their rows train on any ``--dataset`` (the
  paper column stays CIFAR-10's). Table 3 also has CIFAR-100 rows: the rows on ``--dataset``
  train; on a dataset the table does not report (e.g. ``synthetic``) its CIFAR-10 rows do.
- ``--rows 1 3`` trains only those rows (numbers as ``--list`` prints them, after the rules
  above); the results still list every row, the others as pending or as trained before.

Completing a table over several sessions: every finished or diverged run is recorded in the
ledger (``--ledger``, default ``OUT/runs.csv``; ``experiments.ledger``) with its full config, and
its history is copied to ``history/<run>.csv`` beside it. Commit those, not the run folders: a run
in the ledger is never trained again, even from a fresh clone. ``--runs DIR`` and ``--ledger
CSV`` let the three tables share runs: a model that is a row of several tables (``resnet20`` is
in all three) trains once. A run whose recorded config differs from the sweep's recipe (in the
ledger or in its run folder) is refused, never reused.
"""

import argparse
import dataclasses
import json
import math
import re
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from analysis.plots import plot_ablation, plot_training_curves
from keras_resnets.names import parse_name
from keras_resnets.paper import RESULTS, PaperResult
from keras_resnets.units import STRIDED_PADDING, STRIDED_PADDINGS
from trainers import cli
from trainers.callbacks import read_history
from trainers.config import REFERENCE_BATCH, STRATEGIES, TrainConfig
from trainers.jsonconfig import JsonConfig
from experiments.ledger import Ledger, folder_result, is_finished
from analysis.tables import markdown_table

TABLES = (1, 2, 3)
RECIPE_EPOCHS = "~164"  # 64k iterations of 128 images over CIFAR's 50k training images
FULL_RUN_SEEDS = 5  # the paper reports medians of several runs (5 for ResNet-1001)
# Settings that change what a run measures: one output folder holds one value of each. Where the
# data files lie (data_dir) does not, so a cloned results folder resumes.
RESULT_FIELDS = ("table", "dataset", "depth", "epochs", "train_size", "test_size", "batch_size")


@dataclass
class AblationConfig(JsonConfig):
    """One ablation sweep; written to ``OUT/ablation.json``."""

    table: int
    dataset: str = "cifar10"
    out: str = "sweeps/ablation"
    depth: int | None = None  # train every row at this depth instead of the paper's
    epochs: int | None = None  # None: the recipe's full length
    seeds: int = 1
    rows: tuple[int, ...] | None = None  # row numbers to train now (1-based); None: all
    data_dir: str | None = None
    train_size: int | None = None
    test_size: int | None = None
    batch_size: int = REFERENCE_BATCH
    strategy: str = "auto"
    runs: str | None = None  # folder of the run folders (default OUT/runs); tables may share one
    ledger: str | None = None  # the committed record of finished runs (default OUT/runs.csv)
    validation_every: int = 1  # epochs between test-set evaluations (trains the same weights)
    strided_padding: str = STRIDED_PADDING  # every row's geometry; "same" for rows trained before

    def __post_init__(self):
        self.rows = tuple(self.rows) if self.rows is not None else None
        if self.strided_padding not in STRIDED_PADDINGS:
            raise ValueError(f"Unknown strided padding {self.strided_padding!r}; accepted: "
                             f"{', '.join(STRIDED_PADDINGS)}.")
        if self.table not in TABLES:
            raise ValueError(f"Unknown table {self.table!r}; accepted: 1, 2, 3 (He et al. 2016).")
        if self.strategy not in STRATEGIES:
            raise ValueError(
                f"Unknown strategy {self.strategy!r}; accepted: {', '.join(STRATEGIES)}.")
        counts = {"seeds": self.seeds, "depth": self.depth, "epochs": self.epochs,
                  "train_size": self.train_size, "test_size": self.test_size,
                  "batch_size": self.batch_size, "validation_every": self.validation_every}
        bad = {k: v for k, v in counts.items() if v is not None and v < 1}
        bad.update({"rows": self.rows} if self.rows and min(self.rows) < 1 else {})
        if bad:
            raise ValueError(f"These settings must be positive: {bad}.")


@dataclass(frozen=True)
class AblationRow:
    """One model to train, and the paper rows it stands for (several when ``--depth`` merges)."""

    number: int
    model: str
    overrides: dict
    paper: tuple = field(default_factory=tuple)  # of PaperResult

    @property
    def case(self) -> str:
        """The paper's case, naming the trained depth (Table 3 cases name their depth)."""
        depth = parse_name(self.model).depth
        return re.sub(r"ResNet-\d+", f"ResNet-{depth}", self.paper[0].case)

    @property
    def name(self) -> str:
        """``<model>[-<override><value>...]``, e.g. ``resnet20-gate-exclusive-gate_bias-7``."""
        return self.model + "".join(
            f"-{key}{value:g}" if isinstance(value, (int, float)) else f"-{key}{value}"
            for key, value in sorted(self.overrides.items()))

    def run_name(self, seed: int) -> str:
        """The run folder and ledger key of this row's run with ``seed``."""
        return f"{self.name}-seed{seed}"

    def paper_text(self) -> str:
        """The paper's number(s): ``6.61``, ``fail`` or ``6.61 (ResNet-110); 5.93 (ResNet-164)``
        (rows merged by ``--depth``)."""
        texts = ["fail" if row.error is None else f"{row.error:.2f}" for row in self.paper]
        if len(texts) == 1:
            return texts[0]
        return "; ".join(f"{text} (ResNet-{row.depth})" for text, row in zip(texts, self.paper))


def table_rows(table: int, dataset: str) -> list[PaperResult]:
    """The paper rows of ``table`` that train on ``dataset`` (module docstring: Datasets)."""
    rows = [row for row in RESULTS if row.table == table]
    datasets = list(dict.fromkeys(row.dataset for row in rows))
    chosen = dataset if dataset in datasets else datasets[0]
    return [row for row in rows if row.dataset == chosen]


def select_rows(config: AblationConfig) -> list[AblationRow]:
    """The models of the sweep, numbered, each validated by the zoo before anything trains."""
    from keras_resnets import describe

    merged: dict[tuple, list[PaperResult]] = {}
    for paper_row in table_rows(config.table, config.dataset):
        key = (paper_row.model_name(config.depth), json.dumps(paper_row.overrides, sort_keys=True))
        merged.setdefault(key, []).append(paper_row)
    rows = [AblationRow(number, model, json.loads(overrides), tuple(paper_rows))
            for number, ((model, overrides), paper_rows) in enumerate(merged.items(), start=1)]
    if config.rows:
        unknown = sorted(set(config.rows) - {row.number for row in rows})
        if unknown:
            raise ValueError(f"Table {config.table} has no rows {unknown} here; rows are "
                             f"1..{len(rows)} (see --list).")
        rows = [row for row in rows if row.number in config.rows]
    for row in rows:
        try:
            describe(row.model, **row.overrides)
        except ValueError as error:
            raise ValueError(f"Table {config.table} row {row.number} ({row.case}) at depth "
                             f"{config.depth}: {error}") from None
    return rows


def train_config(config: AblationConfig, row: AblationRow, seed: int) -> TrainConfig:
    """The recipe of every run of the sweep; only the model, its overrides and the seed vary."""
    return TrainConfig(
        model=row.model, dataset=config.dataset,
        model_overrides={"strided_padding": config.strided_padding, **row.overrides},
        data_dir=config.data_dir, train_size=config.train_size, test_size=config.test_size,
        epochs=config.epochs, batch_size=config.batch_size, strategy=config.strategy, seed=seed,
        validation_every=config.validation_every, out=str(runs_dir(config) / row.run_name(seed)))


def runs_dir(config: AblationConfig) -> Path:
    """Where the run folders go: ``--runs``, else ``OUT/runs``."""
    return Path(config.runs) if config.runs else Path(config.out) / "runs"


def ledger_of(config: AblationConfig) -> Ledger:
    """The sweep's ledger: ``--ledger``, else ``OUT/runs.csv``."""
    return Ledger(Path(config.ledger) if config.ledger else Path(config.out) / "runs.csv")


# ---------------------------------------------------------------------------------------------
# Running


def run_status(run_config: TrainConfig, ledger: Ledger) -> tuple[str, dict]:
    """``finished`` (with its metrics), ``diverged`` or ``pending``: the ledger first, then the run
    folder. Raises ``ValueError`` when either holds a run of another config (a result of another
    recipe must not count)."""
    entry = ledger.lookup(run_config)
    if entry is not None:
        return ("finished" if is_finished(entry) else "diverged"), entry
    check_same_config(run_config, Path(run_config.out) / "config.json")
    return folder_result(Path(run_config.out)) or ("pending", {})


def check_same_config(run_config: TrainConfig, saved: Path) -> None:
    """Refuse a run folder whose ``config.json`` is another run (``TrainConfig.differences``:
    a moved or re-cloned results folder still counts)."""
    changed = saved.is_file() and TrainConfig.load(saved).differences(run_config)
    if changed:
        raise ValueError(f"{saved.parent} holds a run with other settings (saved, now): "
                         f"{changed}; use another --runs or --out.")


def train_one(train_fn, run_config: TrainConfig, ledger: Ledger) -> bool:
    """Train one run unless it is already done, then record it in the ledger; whether it
    trained. The trainer raises ``TrainingDiverged`` at a NaN loss; ``diverged.json`` then records
    it so that a re-run does not repeat a seeded divergence."""
    import keras

    from trainers.train import TrainingDiverged

    run_dir = Path(run_config.out)
    if ledger.lookup(run_config) is not None:
        return False
    check_same_config(run_config, run_dir / "config.json")
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


def check_out(config: AblationConfig) -> None:
    """One output folder, one set of result-changing settings: refuse to mix runs."""
    path = Path(config.out) / "ablation.json"
    if not path.is_file():
        return
    previous = AblationConfig.from_json(path.read_text())
    changed = {name: (getattr(previous, name), getattr(config, name)) for name in RESULT_FIELDS
               if getattr(previous, name) != getattr(config, name)}
    if changed:
        raise ValueError(
            f"{config.out} holds an ablation with other settings (previous, now): {changed}; "
            f"use another --out. Seeds, rows and strategy may change between re-runs.")


def run_ablation(config: AblationConfig, train_fn=None) -> pd.DataFrame:
    """Train the sweep's pending runs row by row, writing the results after each row. The
    results list every row of the table; ``config.rows`` only limits what trains now.

    ``train_fn(TrainConfig)`` defaults to ``trainers.train.train``. Returns the results table.
    """
    from trainers.data import locate

    rows = select_rows(dataclasses.replace(config, rows=None))  # the table lists every row
    check_out(config)
    chosen = {row.number for row in select_rows(config)}
    runs = [(row, [train_config(config, row, seed) for seed in range(config.seeds)])
            for row in rows if row.number in chosen]
    locate(config.dataset, config.data_dir)  # no data and no network: fail before training
    if train_fn is None:
        from trainers.train import train as train_fn
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "ablation.json").write_text(config.to_json() + "\n")
    bar = tqdm(runs, desc=f"Table {config.table}", unit="row")
    for _row, run_configs in bar:
        trained = False
        for run_config in run_configs:
            bar.set_postfix_str(Path(run_config.out).name)
            trained = train_one(train_fn, run_config, ledger_of(config)) or trained
        if trained:  # the plot waits for the end: drawing it takes longer than the tables
            write_results(config, rows, with_plot=False)
    return write_results(config, rows)


# ---------------------------------------------------------------------------------------------
# Results


def collect(config: AblationConfig, rows: list[AblationRow]) -> pd.DataFrame:
    """One line per row: median, min, max and std of the test error over finished seeds."""
    lines = []
    for row in rows:
        outcomes = [run_status(train_config(config, row, seed), ledger_of(config))
                    for seed in range(config.seeds)]
        errors = pd.Series([m["test_error"] for s, m in outcomes if s == "finished"], dtype=float)
        diverged = sum(s == "diverged" for s, _ in outcomes)
        first = row.paper[0]
        lines.append({
            "row": row.number, "case": row.case, "model": row.model,
            "overrides": json.dumps(row.overrides, sort_keys=True) if row.overrides else "",
            "paper_depth": "/".join(str(p.depth) for p in row.paper),
            "paper_dataset": first.dataset, "paper_error": row.paper_text(),
            "error_median": errors.median(), "error_min": errors.min(),
            "error_max": errors.max(), "error_std": errors.std(),
            "difference": math.nan if first.error is None else errors.median() - first.error,
            "seeds_finished": len(errors), "seeds_diverged": diverged, "seeds": config.seeds,
            "outcome": outcome(len(errors), diverged, config.seeds),
            "parameters": next((m.get("parameters") for s, m in outcomes if s == "finished"),
                               None)})
    return pd.DataFrame(lines).astype({"parameters": "Int64"})


def outcome(finished: int, diverged: int, seeds: int) -> str:
    """A row's outcome over its seeds: finished, diverged, pending or the counts of each."""
    if diverged == seeds:
        return "diverged"
    if finished == seeds:
        return "finished"
    parts = [f"{finished}/{seeds} finished"] + [f"{diverged}/{seeds} diverged"] * bool(diverged)
    return ", ".join(parts) if finished or diverged else "pending"


def reduced_scale(config: AblationConfig, rows: list[AblationRow]) -> list[str]:
    """What differs from the paper's setting, one phrase each (empty at full scale)."""
    depths = sorted({p.depth for row in rows for p in row.paper})
    paper_datasets = sorted({p.dataset for row in rows for p in row.paper})
    notes = []
    if config.depth is not None and depths != [config.depth]:
        notes.append(f"depth {config.depth} instead of {' and '.join(map(str, depths))}")
    if config.epochs is not None:
        notes.append(f"{config.epochs} epoch{'s' * (config.epochs != 1)} instead of "
                     f"{RECIPE_EPOCHS} (64k iterations)")
    if config.dataset not in paper_datasets:
        notes.append(f"{config.dataset} data instead of {' and '.join(paper_datasets)}")
    for split, size in (("training", config.train_size), ("test", config.test_size)):
        if size is not None:
            notes.append(f"first {size} {split} images only")
    if config.batch_size != REFERENCE_BATCH:
        notes.append(f"batch {config.batch_size} instead of {REFERENCE_BATCH} (learning rate "
                     f"scaled linearly)")
    return notes


def full_run_command(config: AblationConfig) -> str:
    """The command that runs this table at the paper's scale."""
    dataset = config.dataset if config.dataset in {p.dataset for p in RESULTS
                                                   if p.table == config.table} else "cifar10"
    words = ["python", "-m", "experiments.ablate", "--table", str(config.table),
             "--dataset", dataset, "--seeds", str(max(config.seeds, FULL_RUN_SEEDS)),
             "--out", f"{config.out}-full"]
    if config.data_dir:
        words += ["--data-dir", config.data_dir]
    if config.rows:
        words += ["--rows", *map(str, config.rows)]
    return shlex.join(words)


def header(config: AblationConfig, rows: list[AblationRow]) -> str:
    """The Markdown header of ``results.md``: the table, its scale (with the full-scale command)
    and a legend."""
    notes = reduced_scale(config, rows)
    title = (f"# He et al. 2016, Table {config.table}: test error (%), median over "
             f"{config.seeds} seed(s)")
    if notes:
        scale = (f"**Reduced scale:** {'; '.join(notes)}; not comparable to the paper's numbers. "
                 f"Full run: `{full_run_command(config)}`")
    else:
        scale = "Full scale: the paper's recipe, depth and data."
    legend = ("`measured`: median test error over finished seeds; `paper_error` \"fail\": the "
              "paper's net did not train; `outcome` \"diverged\": the loss became NaN, the "
              "measured counterpart of \"fail\".")
    return "\n\n".join([title, scale, legend])


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """The columns a reader compares, for ``results.md`` (``results.csv`` keeps them all)."""
    def spread(low, high):
        return "" if math.isnan(low) else f"{low:.2f}-{high:.2f}"

    return table.assign(
        measured=table["error_median"],
        min_max=[spread(lo, hi) for lo, hi in zip(table["error_min"], table["error_max"])],
        finished=[f"{n}/{s}" for n, s in zip(table["seeds_finished"], table["seeds"])],
    )[["row", "case", "model", "overrides", "paper_error", "measured", "min_max", "error_std",
       "finished", "outcome", "parameters"]]


def write_results(config: AblationConfig, rows: list[AblationRow],
                  with_plot: bool = True) -> pd.DataFrame:
    """``results.csv``, ``results.md`` and ``results.png`` in ``config.out``; returns the table."""
    table = collect(config, rows)
    out = Path(config.out)
    table.to_csv(out / "results.csv", index=False)
    (out / "results.md").write_text(
        f"{header(config, rows)}\n\n{markdown_table(summary(table))}\n")
    if with_plot:
        scale = " (reduced scale)" if reduced_scale(config, rows) else ""
        plot_ablation(table, out / "results.png",
                      f"He et al. 2016, Table {config.table}: test error{scale}")
        histories = row_histories(config, rows)
        if histories:
            plot_training_curves(histories, out / "curves.png",
                                 f"He et al. 2016, Table {config.table}: error per epoch of each "
                                 f"row's seed-0 run{scale}")
    return table


def row_histories(config: AblationConfig, rows: list[AblationRow]) -> dict:
    """``{row name: history}`` of each row's seed-0 run that has one: the ledger's copy, else
    the run folder's ``history.csv``."""
    histories, kept, runs = {}, ledger_of(config).history_dir, runs_dir(config)
    for row in rows:
        name = row.run_name(0)
        for path in (kept / f"{name}.csv", runs / name / "history.csv"):
            if path.is_file():
                histories[row.name] = read_history(path)
                break
    return histories


# ---------------------------------------------------------------------------------------------
# Command line


HELP = {"depth": "train every row at this depth",
        "epochs": "shorten the recipe (default: 64k iterations)",
        "seeds": "runs per row (seeds 0..S-1)",
        "rows": "row numbers to keep (see --list)",
        "runs": "folder of the run folders (default: OUT/runs; working files, not committed); "
                "tables may share it",
        "ledger": "CSV recording every finished run (default: OUT/runs.csv; commit it); tables "
                  "sharing --runs share it too",
        "validation_every": "epochs between test-set evaluations of each run (the last always; "
                            "the same weights train, a run is not retrained for it)",
        "strided_padding": "geometry of the strided convs: the papers' symmetric padding, or "
                           "Keras's 'same' of the runs recorded before the zoo padded "
                           "symmetrically (results/he2016 was trained so)"}


def parse_args(argv=None) -> argparse.Namespace:
    """The flags of ``python -m experiments.ablate``."""
    parser = cli.Parser(
        prog="python -m experiments.ablate", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    cli.add_config_flags(parser, AblationConfig, HELP, custom={
        "table": {"choices": TABLES}, "strategy": {"choices": STRATEGIES},
        "strided_padding": {"choices": STRIDED_PADDINGS},
        "out": {"default": None, "help": "output folder (default: sweeps/table<T>)"}})
    parser.add_argument("--list", action="store_true", help="print the rows and exit")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    """CLI (``trainers.cli.run_cli``): 0 when the sweep finished, 2 for bad settings, 1 when a
    write failed (one ``error:`` line, no traceback). A diverged run is a result here (the
    paper's "fail"), not an error."""
    return cli.run_cli(_ablate_command, argv)


def _ablate_command(argv) -> None:
    """List the rows (``--list``) or run the sweep and print its table."""
    args = parse_args(argv)
    config = cli.config_from_args(AblationConfig, args, out=args.out or f"sweeps/table{args.table}")
    if args.list:
        for row in select_rows(config):
            print(f"{row.number:3d}  {row.name:40s} paper {row.paper_text():>5}  {row.case}")
        return
    table = run_ablation(config)
    print(markdown_table(summary(table)))
    print(f"\nResults in {config.out}/results.md, results.csv, results.png")


if __name__ == "__main__":
    sys.exit(main())
