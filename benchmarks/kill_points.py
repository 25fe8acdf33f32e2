"""Kill a training run at every system call that writes into its folder during one epoch, resume
it, and check that it ends exactly as an uninterrupted run with the same seed.

    python benchmarks/kill_points.py --out results/reliability

1. A reference run trains to the end (``trainers.train``, resnet8 on synthetic data, 3 epochs).
2. A recording run under ``strace -f -y`` lists every ``openat``, ``write``, ``pwrite64``,
   ``fsync``, ``rename``, ``unlink`` and ``mkdir`` on a path inside the run folder.
3. For each such call of epoch ``--epoch`` (``pwrite64`` calls into one weights file sampled at
   ``--pwrite-samples`` evenly spaced points, since an HDF5 save makes about a hundred), a
   fresh run is started under ``strace -P PATH -e inject=CALL:signal=KILL:when=N``: SIGKILL
   the moment it makes that call for the N-th time, as ``kill -9`` or a power cut would.
4. The same command is run again and must finish (exit 0) with the reference's iteration
   count and bit-identical final weights.

TensorBoard event files are named after the writing process's start time and pid, so they
cannot be named before the run starts: their appends are reported as skipped. Writes
``kill_points.csv`` and ``kill_points.md`` in ``--out``. Needs ``strace`` (Linux).
"""

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.tables import markdown_table

REPO = Path(__file__).resolve().parents[1]
CALLS = ("openat", "write", "pwrite64", "fsync", "rename", "unlink", "mkdir")
EPOCH_DONE = "backup/latest.json.tmp"  # its rename marks an epoch as done
LINE = re.compile(r"^\d+\s+(?P<call>\w+)\((?P<args>.*)")


@dataclass(frozen=True)
class KillPoint:
    """The ``occurrence``-th ``call`` on ``path`` (relative to the run folder)."""

    call: str
    path: str
    occurrence: int


def train_command(out: Path) -> list[str]:
    return [sys.executable, "-m", "trainers.train", "--model", "resnet8", "--dataset",
            "synthetic", "--train-size", "128", "--test-size", "32", "--epochs", "3",
            "--batch-size", "32", "--out", str(out)]


def run(command: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)


def record(out: Path) -> list[KillPoint]:
    """Every call on a path in ``out`` of one uninterrupted run, in order, numbered per
    (call, path) as strace's ``when=`` counts them."""
    trace = out.with_name(out.name + ".strace")
    result = run(["strace", "-f", "-y", "-o", str(trace), "-e", f"trace={','.join(CALLS)}",
                  *train_command(out)])
    if result.returncode:
        raise RuntimeError(f"the recording run failed:\n{result.stderr[-2000:]}")
    seen: dict[tuple, int] = {}
    points = []
    for line in trace.read_text().splitlines():
        match = LINE.match(line)
        path = match and call_path(match["call"], match["args"], out)
        if not path or "= -1" in line:
            continue
        key = (match["call"], path)
        seen[key] = seen.get(key, 0) + 1
        points.append(KillPoint(match["call"], path, seen[key]))
    return points


def call_path(call: str, args: str, out: Path) -> str | None:
    """The path inside ``out`` a call acts on: the fd's path (``-y``) for writes and fsync,
    the first quoted path otherwise; ``None`` for calls elsewhere."""
    pattern = r"^\d+<([^>]*)>" if call in ("write", "pwrite64", "fsync") else r'"([^"]*)"'
    if call == "openat":
        pattern = r'^[^,]*, "([^"]*)"'
    found = re.search(pattern, args)
    if not found or not found[1].startswith(str(out) + "/"):
        return None
    return found[1][len(str(out)) + 1:]


def epoch_points(points: list[KillPoint], epoch: int) -> list[KillPoint]:
    """The calls from the end of epoch ``epoch - 1`` (after the rename that marks it done) to
    the start of epoch ``epoch + 1``'s first write (its history row)."""
    done = [i for i, p in enumerate(points) if p.call == "rename" and p.path == EPOCH_DONE]
    start = done[epoch - 2] + 1 if epoch > 1 else 0
    after = [i for i, p in enumerate(points)
             if i > done[epoch - 1] and p.call == "openat" and p.path == "history.csv.tmp"]
    return points[start:after[0] if after else len(points)]


def sample(points: list[KillPoint], pwrite_samples: int) -> list[KillPoint]:
    """Every call, except ``pwrite64``: ``pwrite_samples`` of each file's, evenly spaced."""
    chosen = [p for p in points if p.call != "pwrite64"]
    for path in dict.fromkeys(p.path for p in points if p.call == "pwrite64"):
        writes = [p for p in points if p.call == "pwrite64" and p.path == path]
        picks = np.unique(np.linspace(0, len(writes) - 1, pwrite_samples).round().astype(int))
        chosen += [writes[i] for i in picks]
    return chosen


def final_state(out: Path) -> tuple[int, list[np.ndarray]]:
    """Iterations and weights of the finished run in ``out``."""
    import keras

    import keras_resnets  # noqa: F401  (registers the zoo's layers for loading)

    model = keras.models.load_model(out / "final.keras")
    return int(model.optimizer.iterations.numpy()), model.get_weights()


def kill_and_resume(point: KillPoint, out: Path, reference) -> dict:
    """Kill a fresh run at ``point``, rerun it, compare with ``reference``."""
    shutil.rmtree(out, ignore_errors=True)
    path = out / point.path
    killed = run(["strace", "-f", "-o", "/dev/null", "-P", str(path), "-e",
                  f"trace={point.call}", "-e",
                  f"inject={point.call}:signal=KILL:when={point.occurrence}",
                  *train_command(out)])
    resumed = run(train_command(out))
    row = {**asdict(point), "killed": killed.returncode != 0, "resume_exit": resumed.returncode}
    if resumed.returncode == 0:
        iterations, weights = final_state(out)
        row["iterations"] = iterations
        row["max_weight_difference"] = max(float(np.abs(a - b).max())
                                           for a, b in zip(weights, reference[1]))
    else:
        row["error"] = resumed.stderr.strip().splitlines()[-1:]
    row["ok"] = bool(row["killed"] and resumed.returncode == 0 and
                     row.get("iterations") == reference[0] and
                     row.get("max_weight_difference") == 0.0)
    shutil.rmtree(out, ignore_errors=True)
    return row


def report(rows: list[dict], skipped: int, out: Path) -> str:
    table = pd.DataFrame(rows)
    table.to_csv(out / "kill_points.csv", index=False)
    lines = [f"# Kill points: {len(table)} tried, {int(table['ok'].sum())} resumed to the "
             f"uninterrupted run's iteration count and bit-identical weights",
             "", f"TensorBoard appends skipped (file names unknown before a run): {skipped}.",
             "", f"Command: `python benchmarks/kill_points.py {' '.join(sys.argv[1:])}`", "",
             markdown_table(table)]
    (out / "kill_points.md").write_text("\n".join(lines) + "\n")
    return lines[0]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="results/reliability")
    parser.add_argument("--epoch", type=int, default=2, help="the epoch whose calls are killed")
    parser.add_argument("--pwrite-samples", type=int, default=5)
    parser.add_argument("--limit", type=int, help="try only the first N kill points")
    args = parser.parse_args(argv)
    if not shutil.which("strace"):
        print("error: strace is not installed (apt install strace)", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="kill-points-"))
    reference_run = work / "reference"
    if run(train_command(reference_run)).returncode:
        raise RuntimeError("the reference run failed")
    reference = final_state(reference_run)
    points = epoch_points(record(work / "RUN"), args.epoch)
    skipped = sum("tfevents" in p.path for p in points)
    chosen = sample([p for p in points if "tfevents" not in p.path], args.pwrite_samples)
    rows = []
    for number, point in enumerate(chosen[:args.limit], start=1):
        rows.append(kill_and_resume(point, work / "RUN", reference))
        print(f"{number}/{len(chosen[:args.limit])} {point.call} {point.path} "
              f"#{point.occurrence}: {'ok' if rows[-1]['ok'] else 'FAILED'}", flush=True)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    print(report(rows, skipped, Path(args.out)))
    return 0 if all(row["ok"] for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
