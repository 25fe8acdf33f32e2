"""The ledger (``runs.csv``): several writers keep every row, and a damaged ledger is refused
with the line and column to repair."""

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from trainers.config import TrainConfig
from experiments.ledger import COLUMNS, Ledger

REPO = Path(__file__).resolve().parents[1]
RECORD = ("import sys, time; from pathlib import Path\n"
          "from trainers.config import TrainConfig\n"
          "from experiments.ledger import Ledger\n"
          "ledger, writer, count = Ledger(Path(sys.argv[1])), sys.argv[2], int(sys.argv[3])\n"
          "print('ready', flush=True)\n"
          "while not Path(sys.argv[4]).exists():  # start together\n"
          "    time.sleep(0.001)\n"
          "for i in range(count):\n"
          "    ledger.record(TrainConfig(out=f'runs/{writer}-{i:02d}', seed=i), 'finished',\n"
          "                  {'test_error': 8.5, 'epochs': 1})\n")


def config(name: str, **settings) -> TrainConfig:
    return TrainConfig(**{"out": f"runs/{name}", **settings})


@pytest.mark.slow
def test_two_processes_recording_at_once_keep_every_row(tmp_path):
    path, go = tmp_path / "runs.csv", tmp_path / "go"
    writers = [subprocess.Popen([sys.executable, "-c", RECORD, str(path), name, "40", str(go)],
                                cwd=REPO, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for name in ("a", "b")]
    for writer in writers:
        assert writer.stdout.readline().strip() == "ready", writer.stderr.read()[-2000:]
    go.touch()
    for writer in writers:
        assert writer.wait(300) == 0, writer.stderr.read()[-2000:]
    runs = Ledger(path).rows()["run"].tolist()
    assert sorted(runs) == sorted(f"{name}-{i:02d}" for name in "ab" for i in range(40))
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".partial")] == []


def test_a_record_replaces_the_row_of_the_same_run_and_leaves_the_file_readable(tmp_path):
    ledger = Ledger(tmp_path / "runs.csv")
    ledger.record(config("r1"), "finished", {"test_error": 9.0})
    ledger.record(config("r1"), "finished", {"test_error": 8.0})
    rows = ledger.rows()
    assert rows["run"].tolist() == ["r1"] and rows["test_error"].tolist() == [8.0]
    assert oct(ledger.path.stat().st_mode & 0o777) == oct(0o644)


def written_ledger(tmp_path) -> Ledger:
    ledger = Ledger(tmp_path / "runs.csv")
    for name in ("r1", "r2"):
        ledger.record(config(name), "finished", {"test_error": 9.0})
    return ledger


def set_cell(ledger: Ledger, row: int, column: str, value) -> None:
    table = pd.read_csv(ledger.path, dtype=str)
    table.loc[row, column] = value
    table.to_csv(ledger.path, index=False)


@pytest.mark.parametrize("column, value, message", [
    ("config", None, "runs.csv, line 3: the config cell is empty"),
    ("run", None, "runs.csv, line 2: the run cell is empty"),
    ("test_error", "nine", "runs.csv, line 3: the test_error cell is 'nine', not a number"),
])
def test_a_damaged_cell_is_refused_naming_the_line_and_column(tmp_path, column, value, message):
    ledger = written_ledger(tmp_path)
    set_cell(ledger, 1 if column != "run" else 0, column, value)
    with pytest.raises(ValueError, match=message):
        ledger.lookup(config("r2"))


def test_a_ledger_without_its_header_is_refused(tmp_path):
    ledger = written_ledger(tmp_path)
    ledger.path.write_text("\n".join(ledger.path.read_text().splitlines()[1:]) + "\n")
    with pytest.raises(ValueError, match="runs.csv has no ledger header .*first line must be "
                                         + ",".join(COLUMNS)):
        ledger.rows()


def test_an_empty_ledger_file_is_refused(tmp_path):
    ledger = Ledger(tmp_path / "runs.csv")
    ledger.path.write_text("")
    with pytest.raises(ValueError, match="runs.csv is not a ledger CSV"):
        ledger.lookup(config("r1"))


def test_a_config_cell_that_is_not_json_names_its_line(tmp_path):
    ledger = written_ledger(tmp_path)
    set_cell(ledger, 1, "config", "{not json")
    with pytest.raises(ValueError, match="runs.csv, line 3, column config is not valid JSON"):
        ledger.lookup(config("r2"))


def test_a_damaged_ledger_ends_a_sweep_with_exit_2_and_one_line(tmp_path, capsys):
    from experiments.ablate import main

    out = tmp_path / "sweep"
    out.mkdir()
    (out / "runs.csv").write_text("r1,resnet20,0\n")
    code = main(["--table", "1", "--dataset", "synthetic", "--epochs", "1", "--out", str(out)])
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if "error:" in line]  # after a progress bar
    assert code == 2 and len(errors) == 1 and "has no ledger header" in errors[0]
    assert "Traceback" not in err
