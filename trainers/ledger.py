"""A study's committed record of finished runs: one CSV row per run, its full config and result.

Run folders hold working files (weights, checkpoints, TensorBoard) and are not committed. What a
study commits instead is its ledger, ``runs.csv`` (one row per run: its name, outcome, test error,
parameter count and the run's whole ``config.json`` as one JSON column), and each run's per-epoch
history as ``history/<run>.csv`` beside it. A run found in the ledger is never trained again, so a
table can be completed over several sessions from a fresh clone; a ledger row whose config
differs from the run asked for is refused (``TrainConfig.differences``: where the data or the run
folder lie does not count).
"""

import dataclasses
import json
import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from trainers.config import TrainConfig

COLUMNS = ("run", "model", "seed", "outcome", "test_error", "test_accuracy", "parameters",
           "epochs", "iterations", "config")
OUTCOMES = ("finished", "diverged")


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

    def rows(self) -> pd.DataFrame:
        """Every recorded run (an empty table when the file does not exist yet)."""
        if not self.path.is_file():
            return pd.DataFrame(columns=COLUMNS)
        return pd.read_csv(self.path, dtype={"run": str, "config": str})

    def lookup(self, run_config: TrainConfig) -> dict | None:
        """The recorded result of ``run_config`` (``outcome``, ``test_error``, ``parameters``, ...)
        or None. Raises ``ValueError`` when the ledger holds that run with other settings."""
        rows = self.rows()
        match = rows[rows["run"] == run_name(run_config)]
        if match.empty:
            return None
        entry = match.iloc[0].to_dict()
        changed = TrainConfig.from_json(entry["config"]).differences(run_config)
        if changed:
            raise ValueError(f"{self.path} records {entry['run']} with other settings (recorded, "
                             f"now): {changed}; use another --ledger.")
        return entry

    def record(self, run_config: TrainConfig, outcome: str, metrics: dict) -> None:
        """Add (or replace) the row of ``run_config`` and copy its ``history.csv``, if any. The
        file is replaced atomically: a kill leaves the old ledger or the new one."""
        if outcome not in OUTCOMES:
            raise ValueError(f"Unknown outcome {outcome!r}; accepted: {', '.join(OUTCOMES)}.")
        name = run_name(run_config)
        history = Path(run_config.out) / "history.csv"
        if history.is_file():
            self.history_dir.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(history, self.history_dir / f"{name}.csv")
        row = {"run": name, "model": run_config.model, "seed": run_config.seed,
               "outcome": outcome,
               "config": json.dumps(dataclasses.asdict(run_config), sort_keys=True),
               **{key: metrics.get(key) for key in ("test_error", "test_accuracy", "parameters",
                                                    "epochs", "iterations")}}
        rows = self.rows()
        rows = pd.concat([rows[rows["run"] != name], pd.DataFrame([row])], ignore_index=True)
        self._write(rows.sort_values("run")[list(COLUMNS)])

    def _write(self, rows: pd.DataFrame) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_name(self.path.name + ".partial")
        partial.write_text(rows.to_csv(index=False))
        os.replace(partial, self.path)


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
