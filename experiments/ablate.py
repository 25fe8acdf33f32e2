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
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from experiments import study
from experiments.study import STUDY_HELP, StudyConfig, run_status, scale_notes, train_one
from trainers import cli
from trainers.config import STRATEGIES, TrainConfig

TABLES = (1, 2, 3)
FULL_RUN_SEEDS = 5  # the paper reports medians of several runs (5 for ResNet-1001)
# Settings that change what a run measures: one output folder holds one value of each. Where the
# data files lie (data_dir) does not, so a cloned results folder resumes.
RESULT_FIELDS = ("table", "dataset", "depth", "epochs", "train_size", "test_size", "batch_size")


@dataclass(kw_only=True)
class AblationConfig(StudyConfig):
    """One ablation sweep; written to ``OUT/ablation.json``. The runs folder and the ledger
    (``StudyConfig``) may be shared by several tables."""

    table: int
    out: str = "sweeps/ablation"
    depth: int | None = None  # train every row at this depth instead of the paper's
    seeds: int = 1
    rows: tuple[int, ...] | None = None  # row numbers to train now (1-based); None: all
    validation_every: int = 1  # epochs between test-set evaluations (trains the same weights)

    def __post_init__(self):
        """Refuse an unknown table and counts below 1, besides ``StudyConfig``'s checks."""
        super().__post_init__()
        self.rows = tuple(self.rows) if self.rows is not None else None
        if self.table not in TABLES:
            raise ValueError(f"Unknown table {self.table!r}; accepted: 1, 2, 3 (He et al. 2016).")
        counts = {"seeds": self.seeds, "depth": self.depth,
                  "validation_every": self.validation_every}
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
        from keras_resnets.names import parse_name

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


def table_rows(table: int, dataset: str) -> list:
    """The paper rows of ``table`` (``keras_resnets.paper.PaperResult``) that train on
    ``dataset`` (module docstring: Datasets)."""
    from keras_resnets.paper import RESULTS

    rows = [row for row in RESULTS if row.table == table]
    datasets = list(dict.fromkeys(row.dataset for row in rows))
    chosen = dataset if dataset in datasets else datasets[0]
    return [row for row in rows if row.dataset == chosen]


def select_rows(config: AblationConfig) -> list[AblationRow]:
    """The models of the sweep, numbered, each validated by the zoo before anything trains."""
    from keras_resnets import describe

    merged: dict[tuple, list] = {}
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
    """The He et al. 2016 recipe of every run of the sweep; only the model, its overrides and
    the seed vary."""
    return config.train_config(row.run_name(seed), row.model, row.overrides, seed=seed,
                               validation_every=config.validation_every)


# ---------------------------------------------------------------------------------------------
# Running


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
    from tqdm.auto import tqdm

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
    bar, ledger = tqdm(runs, desc=f"Table {config.table}", unit="row"), config.open_ledger()
    for _row, run_configs in bar:
        trained = False
        for run_config in run_configs:
            bar.set_postfix_str(Path(run_config.out).name)
            trained = train_one(train_fn, run_config, ledger) or trained
        if trained:  # the plot waits for the end: drawing it takes longer than the tables
            write_results(config, rows, with_plot=False)
    return write_results(config, rows)


# ---------------------------------------------------------------------------------------------
# Results


def collect(config: AblationConfig, rows: list[AblationRow]) -> pd.DataFrame:
    """One line per row: median, min, max and std of the test error over finished seeds."""
    lines, ledger = [], config.open_ledger()
    for row in rows:
        outcomes = [run_status(train_config(config, row, seed), ledger)
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
    return notes + scale_notes(config, study.HE2016_LENGTH, paper_datasets)


def full_scale_command(config: AblationConfig) -> str:
    """The command that runs this table at the paper's scale (its depth, data, recipe and
    geometry), with at least ``FULL_RUN_SEEDS`` seeds per row."""
    datasets = {row.dataset for row in table_rows(config.table, config.dataset)}
    dataset = config.dataset if config.dataset in datasets else "cifar10"
    rows = ["--rows", *map(str, config.rows)] if config.rows else []
    return study.full_scale_command(
        config, "experiments.ablate", "--table", str(config.table), "--dataset", dataset,
        "--seeds", str(max(config.seeds, FULL_RUN_SEEDS)), *rows)


def header(config: AblationConfig, rows: list[AblationRow]) -> str:
    """The Markdown header of ``results.md``: the table, its scale (with the full-scale command)
    and a legend."""
    notes = reduced_scale(config, rows)
    title = (f"# He et al. 2016, Table {config.table}: test error (%), median over "
             f"{config.seeds} seed(s)")
    if notes:
        scale = (f"**Reduced scale:** {'; '.join(notes)}; not comparable to the paper's numbers. "
                 f"Full run: `{full_scale_command(config)}`")
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
    from analysis.plots import plot_ablation, plot_training_curves
    from analysis.tables import markdown_table

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
    from trainers.callbacks import read_history

    histories, kept, runs = {}, config.open_ledger().history_dir, config.runs_dir
    for row in rows:
        name = row.run_name(0)
        for path in (kept / f"{name}.csv", runs / name / "history.csv"):
            if path.is_file():
                histories[row.name] = read_history(path)
                break
    return histories


# ---------------------------------------------------------------------------------------------
# Command line


HELP = {**STUDY_HELP,
        "depth": "train every row at this depth",
        "epochs": "shorten the recipe (default: 64k iterations)",
        "seeds": "runs per row (seeds 0..S-1)",
        "rows": "row numbers to keep (see --list)",
        "runs": "folder of the run folders (default: OUT/runs; working files, not committed); "
                "tables may share it",
        "ledger": "CSV recording every finished run (default: OUT/runs.csv; commit it); tables "
                  "sharing --runs share it too",
        "validation_every": "epochs between test-set evaluations of each run (the last always; "
                            "the same weights train, a run is not retrained for it)"}


def parse_args(argv=None) -> argparse.Namespace:
    """The flags of ``python -m experiments.ablate``."""
    parser = cli.Parser(
        prog="python -m experiments.ablate", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    cli.add_config_flags(parser, AblationConfig, HELP, custom={
        "table": {"choices": TABLES}, "strategy": {"choices": STRATEGIES},
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
    from analysis.tables import markdown_table

    table = run_ablation(config)
    print(markdown_table(summary(table)))
    print(f"\nResults in {config.out}/results.md, results.csv, results.png")


if __name__ == "__main__":
    sys.exit(main())
