"""A KerasTuner ``HyperModel`` over the zoo: a search space (``experiments.spaces``) -> trial runs.

Each trial's hyperparameters become one ``TrainConfig`` (model name, shortcut options, recipe),
and the trial then runs exactly as ``python -m trainers.train`` would: the same data pipeline,
``compile_model`` (SGD, He et al. 2016's schedule, loss, metrics) and callbacks, and Keras
``fit``. Batch size is a hyperparameter, so ``fit`` loads the data with the trial's batch.

A trial whose loss stops being finite (or whose weights do) has diverged: ``diverged.json`` in its
folder says where, and the trial ends ``FAILED`` (with that reason as its message, no traceback),
so KerasTuner neither retries it nor ranks it: a diverged model is never the best one. A diverged
trial is a result of the sweep (a learning rate too high), so it does not count towards the
trials in a row that may crash before the sweep stops (``CRASHES_IN_A_ROW``).
"""

import dataclasses
import json
import shutil
from pathlib import Path

import keras
import keras_tuner
import numpy as np

import keras_resnets
from experiments.spaces import OVERRIDE_KEYS, SearchSpace
from keras_resnets.names import format_name
from trainers import cli
from trainers.config import TrainConfig
from trainers.data import load_data
from trainers.train import build_model, compile_model, fit, make_callbacks

TRIAL_INFO = "trial_info.json"  # the model a trial trains: name, overrides, parameter count
DIVERGED = "diverged.json"  # marks a trial whose loss or weights stopped being finite
CRASHES_IN_A_ROW = 3  # KerasTuner's default limit of failed trials in a row, for crashes only
OBJECTIVE = "val_accuracy"  # maximised; reported as val error % = 100 * (1 - accuracy)


class ZooHyperModel(keras_tuner.HyperModel):
    """Builds, compiles and trains the zoo model named by a trial's hyperparameters.

    Args:
        space: the validated search space.
        config: the base run (dataset, epochs, strategy, ...); each trial replaces its model
            and the recipe fields the space sweeps.
        replicas: replicas of the tuner's strategy (synchronised BatchNorm needs it).
    """

    def __init__(self, space: SearchSpace, config: TrainConfig, replicas: int = 1):
        super().__init__(name="zoo")
        self.space, self.config, self.replicas = space, config, replicas
        self._data_key, self._data = None, None

    def values(self, hp) -> dict:
        """Declare every dimension on ``hp`` (each conditional one in its scope) and return the
        active values: ``gate_bias`` only with a gated variant, ``widen`` only for ``wrn``."""
        values = {}
        for name, dimension in self.space.dimensions().items():
            condition = self.space.condition(name)
            if condition is None:
                values[name] = dimension.declare(hp)
                continue
            with hp.conditional_scope(condition[0], list(condition[1])):
                value = dimension.declare(hp)
            if value is not None:
                values[name] = value
        return values

    def trial_config(self, hp, out: str | None = None) -> TrainConfig:
        """The ``TrainConfig`` a trial trains: the base config with the trial's values."""
        values = self.values(hp)
        name = format_name(values["base"], values["depth"], values.get("widen"),
                           values.get("variant", ""))
        overrides = {k: values[k] for k in OVERRIDE_KEYS if k in values}
        recipe = {k: values[k] for k in self.space.recipe}
        return dataclasses.replace(
            self.config, model=name, out=out or self.config.out,
            model_overrides={**self.config.model_overrides, **overrides}, **recipe)

    def data(self, config: TrainConfig):
        """The data pipeline at ``config``'s batch size; the last one is kept for the next
        trial (reloading costs seconds, a trial minutes; keeping every size would cost memory)."""
        key = (config.dataset, config.data_dir, config.train_size, config.test_size,
               config.batch_size, config.augment, config.seed)
        if key != self._data_key:
            self._data_key, self._data = key, load_data(config)
        return self._data

    def build(self, hp):
        """The trainer's model and compilation for the trial; every trial starts from the same
        seed, so trials differ by their hyperparameters, not their initialisation."""
        config = self.trial_config(hp)
        data = self.data(config)
        keras.utils.set_random_seed(config.seed)
        model = build_model(config, data, self.replicas)
        compile_model(model, config, data.steps_per_epoch(config.batch_size))
        return model

    def fit(self, hp, model, *, run_dir=None, callbacks=(), **kwargs):
        """Train with Keras ``fit`` on the trial's data; the tuner's callbacks (its checkpoint of
        the best epoch, Hyperband's bookkeeping) run after the trainer's.

        ``run_dir`` is the trial's folder: the trial's ``config.json``, ``trial_info.json`` and
        the trainer's logs (``history.csv``, ``checkpoints/``, ``tensorboard/``) go there. Its
        epoch backup lets a trial interrupted mid-way resume from its last finished epoch and is
        removed once the trial has trained. ``epochs``/``initial_epoch`` from the tuner
        (Hyperband) override the config's epochs.
        """
        run_dir = Path(run_dir or self.config.out)
        (run_dir / DIVERGED).unlink(missing_ok=True)  # from an earlier, interrupted try
        config = self.trial_config(hp, out=str(run_dir))
        config.save(run_dir / "config.json")
        data = self.data(config)
        steps = data.steps_per_epoch(config.batch_size)
        info = {"model": config.model, "model_overrides": config.model_overrides,
                "parameters": keras_resnets.count_parameters(model)}
        (run_dir / TRIAL_INFO).write_text(json.dumps(info, indent=2) + "\n")
        trainer_callbacks = make_callbacks(config, run_dir, steps)
        history = fit(model, config, data, [*trainer_callbacks, *callbacks],
                      epochs=kwargs.pop("epochs", config.resolved_epochs(steps)),
                      initial_epoch=kwargs.pop("initial_epoch", 0), **kwargs)
        shutil.rmtree(run_dir / "backup", ignore_errors=True)
        mark_divergence(model, trainer_callbacks[0], run_dir)
        return history


def mark_divergence(model, guard, run_dir: Path) -> None:
    """Write ``diverged.json`` (as ``experiments.ablate`` does for its runs) when the trial's
    loss stopped being finite (the trainer's ``DivergenceGuard`` stopped it) or its weights did
    (an update after the last loss the guard saw). ``TrialFolders`` then ends the trial
    ``FAILED``: its score would be the accuracy of a NaN model, which can rank first among
    poorly trained trials."""
    if guard.diverged:
        epoch, batch, loss = guard.diverged
        reason = f"the loss became {loss} at epoch {epoch}, batch {batch}"
    elif not all(np.isfinite(keras.ops.convert_to_numpy(w)).all() for w in model.weights):
        reason = "its weights stopped being finite"
    else:
        return
    error = f"Trial diverged: {reason}; try a lower learning rate or a warmup."
    (run_dir / DIVERGED).write_text(json.dumps({"diverged": True, "error": error}) + "\n")


class TrialFolders:
    """Tuner mixin: ``HyperModel.fit`` gets the trial's folder (``run_dir``), so the trainer's
    logs and epoch backups of a trial live beside KerasTuner's files for it; a diverged trial
    ends ``FAILED``; the sweep stops after ``CRASHES_IN_A_ROW`` trials in a row that crashed
    (diverged ones do not count)."""

    crashes = 0  # trials in a row, up to the last one, that failed without diverging

    def run_trial(self, trial, *args, **kwargs):
        """KerasTuner's ``run_trial``, with the trial's own folder passed to ``fit`` as
        ``run_dir``."""
        run_dir = self.get_trial_dir(trial.trial_id)
        return super().run_trial(trial, *args, run_dir=run_dir, **kwargs)

    def on_trial_end(self, trial):
        """KerasTuner's end of a trial (the oracle records it, the state is saved), as
        ``FAILED`` with ``diverged.json``'s reason when it diverged (``Oracle.end_trial`` takes
        COMPLETED, INVALID or FAILED: failed, not retried, never ranked); then ``RunFailed`` once
        ``CRASHES_IN_A_ROW`` trials in a row have crashed. KerasTuner's own limit counts
        diverged trials too and is off (``make_tuner``): a sweep over learning rates may diverge
        many times in a row and still find its best trial."""
        marker = Path(self.get_trial_dir(trial.trial_id)) / DIVERGED
        diverged = marker.is_file()
        if diverged:
            trial.status, trial.message = "FAILED", json.loads(marker.read_text())["error"]
        super().on_trial_end(trial)
        crashed = trial.status != "COMPLETED" and not diverged
        self.crashes = self.crashes + 1 if crashed else 0
        if self.crashes == CRASHES_IN_A_ROW:
            last = (trial.message or "no message").strip().splitlines()[-1]
            raise cli.RunFailed(f"The sweep stopped: {self.crashes} trials in a row failed "
                                f"without diverging; the last with {last}")


class RandomSearch(TrialFolders, keras_tuner.RandomSearch):
    """KerasTuner's random search, each trial training in its own folder."""


class BayesianOptimization(TrialFolders, keras_tuner.BayesianOptimization):
    """KerasTuner's Bayesian optimisation, each trial training in its own folder."""


class Hyperband(TrialFolders, keras_tuner.Hyperband):
    """KerasTuner's Hyperband, each trial training in its own folder."""


TUNERS = {"random": RandomSearch, "bayesian": BayesianOptimization, "hyperband": Hyperband}


def make_tuner(kind: str, hypermodel: ZooHyperModel, directory, project_name: str,
               max_trials: int | None = None, strategy=None):
    """A KerasTuner tuner over ``hypermodel`` that reloads any state found in
    ``directory/project_name`` (``overwrite=False``: an interrupted sweep resumes).

    ``max_trials`` bounds random and Bayesian search; Hyperband sizes its brackets from the base
    config's epochs (the most one model trains) with a factor of 3. KerasTuner's limit of failed
    trials in a row is off (``None`` never equals its count): ``TrialFolders`` keeps it for
    crashes, without the diverged trials.
    """
    config = hypermodel.config
    budget = {"max_epochs": config.epochs, "factor": 3} if kind == "hyperband" else {
        "max_trials": max_trials}
    return TUNERS[kind](
        hypermodel=hypermodel, objective=keras_tuner.Objective(OBJECTIVE, "max"),
        seed=config.seed + 1,  # KerasTuner draws a random seed when given 0
        directory=str(directory), project_name=project_name, overwrite=False,
        distribution_strategy=strategy, max_consecutive_failed_trials=None, **budget)
