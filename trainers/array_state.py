"""The resume state of a ``trainers.array_fit`` run: what continues it exactly after a stop.

A run folder's ``resume/`` holds the values of every variable of the compiled training model
(weights, BatchNorm statistics and the random-number state of its seed generators: the
augmentation's draws) and of its optimizer (momentum, iteration counter), as one ``.npz`` per
saved epoch, and ``state.json``: the epochs done, the iterations, the seed, the history so far
and which ``.npz`` is current. The data order is a function of the seed and the epoch alone
(``trainers.array_fit.epoch_order``), so nothing else carries over from one epoch to the next.

Writes are atomic: the new ``.npz`` is written under a temporary name and renamed
(``os.replace``), then ``state.json`` is replaced the same way to point at it, then the older
``.npz`` is removed. A kill at any moment leaves the previous state or the new one, never half
of one. Numpy and the standard library only: it runs where there is no TensorFlow.
"""

import json
import os
import shutil
from pathlib import Path

import numpy as np

FOLDER = "resume"
POINTER = "state.json"


def state_variables(trainer) -> list:
    """Every variable whose value a resumed run needs, in a fixed order: the model's (its
    seed generators' states included) then the optimizer's (built if it is not yet: building
    Keras's ``LossScaleOptimizer`` again would add a second loss scale)."""
    if not trainer.optimizer.built:
        trainer.optimizer.build(trainer.trainable_variables)
    return [*trainer.variables, *trainer.optimizer.variables]


def save(run_dir: Path, trainer, progress: dict) -> None:
    """Write ``trainer``'s variables and ``progress`` (JSON data: ``epoch`` and the rest) as
    the run's new resume state, atomically."""
    folder = Path(run_dir) / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    name = f"epoch-{progress['epoch']:04d}.npz"
    values = {f"v{i:05d}": np.asarray(v.numpy()) for i, v in enumerate(state_variables(trainer))}
    _write_atomic(folder / name, lambda f: np.savez(f, **values))
    _write_atomic(folder / POINTER, lambda f: f.write(
        json.dumps({**progress, "variables": name}, indent=1).encode()))
    for stale in folder.glob("epoch-*.npz"):
        if stale.name != name:
            stale.unlink()


def progress(run_dir: Path) -> dict | None:
    """The run's saved progress (``epoch``, ``history``, ..., and ``variables``: the current
    ``.npz``), or None when it has no resume state."""
    pointer = Path(run_dir) / FOLDER / POINTER
    return json.loads(pointer.read_text()) if pointer.is_file() else None


def load(run_dir: Path, trainer) -> dict | None:
    """Set ``trainer``'s variables from the run's resume state and return its progress, or
    None when there is none. A ``ValueError`` when the state does not fit this model."""
    saved_progress = progress(run_dir)
    if saved_progress is None:
        return None
    folder = Path(run_dir) / FOLDER
    variables = state_variables(trainer)
    with np.load(folder / saved_progress.pop("variables")) as saved:
        values = [saved[key] for key in sorted(saved.files)]
    shapes = [tuple(v.shape) for v in variables]
    if [value.shape for value in values] != shapes:
        raise ValueError(f"The resume state in {folder} does not fit {trainer.name} "
                         f"({len(values)} saved variables, {len(shapes)} now); delete it to "
                         f"start over.")
    for variable, value in zip(variables, values):
        variable.assign(value)
    return saved_progress


def clear(run_dir: Path) -> None:
    """Remove the run's resume state (the run finished: its weights are written)."""
    shutil.rmtree(Path(run_dir) / FOLDER, ignore_errors=True)


def _write_atomic(path: Path, write) -> None:
    """``write(file)`` into a temporary file beside ``path``, then rename it to ``path``."""
    partial = path.with_name(path.name + ".partial")
    with open(partial, "wb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(partial, path)
