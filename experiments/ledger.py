"""A study's committed record of finished runs: one CSV row per run, its full config and result.

Run folders hold working files (weights, checkpoints, TensorBoard) and are not committed. What a
study commits instead is its ledger, ``runs.csv`` (one row per run: its name, outcome, test error,
parameter count and the run's whole ``config.json`` as one JSON column), and each run's per-epoch
history as ``history/<run>.csv`` beside it. A run found in the ledger is never trained again, so a
table can be completed over several sessions from a fresh clone; a ledger row whose config
differs from the run asked for is refused (``TrainConfig.differences``: where the data or the run
folder lie does not count).

Several sweeps may share one ledger: each update is made under an OS lock on ``runs.csv.lock``
beside it (read, add the row, write a temporary file of its own, rename), so no row is lost.
A ledger that is not one (no header, an empty cell where a run's name or config belongs, text
where a number belongs) is refused with the file, line and column to repair.
"""

import contextlib
import dataclasses
import json
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from trainers import locks
from trainers.config import TrainConfig

COLUMNS = ("run", "model", "seed", "outcome", "test_error", "test_accuracy", "parameters",
           "epochs", "iterations", "config")
OUTCOMES = ("finished", "diverged")
REQUIRED = ("run", "outcome", "config")  # cells every row must fill
NUMERIC = ("seed", "test_error", "test_accuracy", "parameters", "epochs", "iterations")


def run_name(run_config: TrainConfig) -> str:
    """A run's key in the ledger: its run folder's name (``resnet20-seed0``)."""
    return Path(run_config.out).name


@dataclass(frozen=True)
class Ledger:
    """The ledger file ``path`` (``runs.csv``) and its ``history/`` folder."""

    path: Path

    @property
    def history_dir(self) -> Path:
        """Where each recorded run's per-epoch history is kept, beside the ledger."""
        return self.path.parent / "history"

    @property
    def lock_path(self) -> Path:
        """The lock file its writers take in turn, beside the ledger."""
        return self.path.with_name(self.path.name + ".lock")

    def rows(self) -> pd.DataFrame:
        """Every recorded run (an empty table when the file does not exist yet). Raises
        ``ValueError`` naming the line and column of a ledger that is not one."""
        if not self.path.is_file():
            return pd.DataFrame(columns=COLUMNS)
        try:
            rows = pd.read_csv(self.path, dtype={"run": str, "config": str})
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
            raise ValueError(f"{self.path} is not a ledger CSV ({' '.join(str(error).split())}); "
                             f"restore it (e.g. from version control).") from None
        check_rows(self.path, rows)
        return rows

    def lookup(self, run_config: TrainConfig) -> dict | None:
        """The recorded result of ``run_config`` (``outcome``, ``test_error``, ``parameters``, ...)
        or None. Raises ``ValueError`` when the ledger holds that run with other settings."""
        found = self.find(run_config)
        return None if found is None else self.same_run(run_config, *found)

    def find(self, run_config: TrainConfig) -> tuple[dict, TrainConfig] | None:
        """The row named as ``run_config`` and the config it records (whatever its settings),
        or None: what a refusal can be explained from."""
        rows = self.rows()
        match = rows[rows["run"] == run_name(run_config)]
        if match.empty:
            return None
        entry = match.iloc[0].to_dict()
        return entry, TrainConfig.from_json(
            entry["config"], source=f"{self.path}, line {match.index[0] + 2}, column config")

    def same_run(self, run_config: TrainConfig, entry: dict, recorded: TrainConfig) -> dict:
        """``entry``, the row ``find`` gave for ``run_config``, when the config it records
        (``recorded``) is ``run_config``'s; else a ``ValueError`` listing what differs."""
        changed = recorded.differences(run_config)
        if changed:
            raise ValueError(f"{self.path} records {entry['run']} with other settings (recorded, "
                             f"now): {changed}; use another --ledger.")
        return entry

    def record(self, run_config: TrainConfig, outcome: str, metrics: dict) -> None:
        """Add (or replace) the row of ``run_config`` and copy its ``history.csv``, if any.
        Under the ledger's lock (other writers wait their turn), each file is replaced
        atomically: a kill leaves the old ledger or the new one."""
        if outcome not in OUTCOMES:
            raise ValueError(f"Unknown outcome {outcome!r}; accepted: {', '.join(OUTCOMES)}.")
        name = run_name(run_config)
        row = {"run": name, "model": run_config.model, "seed": run_config.seed,
               "outcome": outcome,
               "config": json.dumps(dataclasses.asdict(run_config), sort_keys=True),
               **{key: metrics.get(key) for key in ("test_error", "test_accuracy", "parameters",
                                                    "epochs", "iterations")}}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with locks.exclusive(self.lock_path, f"ledger {self.path}", wait=True):
            history = Path(run_config.out) / "history.csv"
            if history.is_file():
                self.history_dir.mkdir(parents=True, exist_ok=True)
                replace_file(self.history_dir / f"{name}.csv", history.read_bytes())
            rows = self.rows()
            rows = pd.concat([rows[rows["run"] != name], pd.DataFrame([row])],
                             ignore_index=True)
            table = rows.sort_values("run")[list(COLUMNS)]
            replace_file(self.path, table.to_csv(index=False).encode())


def replace_file(path: Path, content: bytes) -> None:
    """Write ``content`` to a temporary file of this process's own beside ``path``, then rename
    it onto ``path``: readers see the old file or the new one, never a part."""
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.",
                                             suffix=".partial")
    try:
        with os.fdopen(descriptor, "wb") as file:
            os.fchmod(file.fileno(), 0o644)  # as a plain write would leave it, not mkstemp's 0600
            file.write(content)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def check_rows(path: Path, rows: pd.DataFrame) -> None:
    """Refuse (``ValueError``) a ledger table without the ledger's header, with an empty run,
    outcome or config cell, or with text in a numeric column: the file, line and column."""
    missing = [column for column in COLUMNS if column not in rows.columns]
    if missing:
        raise ValueError(f"{path} has no ledger header (missing columns: {', '.join(missing)}); "
                         f"its first line must be {','.join(COLUMNS)}.")
    for column in REQUIRED:
        empty = rows.index[rows[column].isna()]
        if len(empty):
            raise ValueError(f"{path}, line {empty[0] + 2}: the {column} cell is empty; fill it "
                             f"in or delete the line (the run is then trained again).")
    for column in NUMERIC:
        numbers = pd.to_numeric(rows[column], errors="coerce")
        bad = rows.index[numbers.isna() & rows[column].notna()]
        if len(bad):
            raise ValueError(f"{path}, line {bad[0] + 2}: the {column} cell is "
                             f"{rows[column][bad[0]]!r}, not a number; correct it or delete "
                             f"the line (the run is then trained again).")


def is_finished(entry: dict) -> bool:
    """A ledger row with a finite test error (a diverged run has none)."""
    return entry.get("outcome") == "finished" and _finite_error(entry)


def _finite_error(result: dict) -> bool:
    """Whether ``result`` (a ledger row or ``metrics.json``) has a finite test error."""
    error = result.get("test_error")
    return error is not None and math.isfinite(error)


def folder_result(run_dir: Path) -> tuple[str, dict] | None:
    """What a run folder says about its run: ``(outcome, metrics)`` or None while it is pending.
    ``metrics.json`` marks a finished run, ``diverged.json`` one stopped by a NaN loss."""
    metrics_path, marker = run_dir / "metrics.json", run_dir / "diverged.json"
    if metrics_path.is_file():
        metrics = json.loads(metrics_path.read_text())
        finished = _finite_error(metrics) and not metrics.get("diverged")
        return ("finished" if finished else "diverged"), metrics
    if marker.is_file():
        return "diverged", json.loads(marker.read_text())
    return None
