"""Analyse a finished training run: ``python -m analysis.run RUN_DIR``.

    python -m analysis.run runs/preact110-cifar10 --measures cosine,l2 --limit 1000
    python -m analysis.run runs/preact110-cifar10 --split both --updates scaled norm

Loads ``RUN_DIR/final.keras`` and the data of ``RUN_DIR/config.json`` (the same pipeline as
training, without augmentation: raw images, which the model standardises itself; a legacy
model, saved before the standardisation moved into the model, gets them standardised with the
training split's statistics, as it was trained), runs ``analysis.frames.analyze`` on the
test split, the train split or both and writes ``blocks.csv``, ``borderline.csv``,
``unroll.csv`` (each with a ``split`` column), ``summary.json``, the figures (Jastrzebski et
al. 2018, Figs. 3-7), ``report.md`` and the analysis' own ``analysis_config.json`` into
``--out`` (default ``RUN_DIR/analysis``). Every setting is checked, against the model too,
before any data is read.
"""

import argparse
import dataclasses
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import keras
import tensorflow as tf

from keras_resnets import ResidualChain, standardization_of  # (registers the zoo's layers)
from analysis.frames import MEASURES, analyze, check_settings, parse_measures
from analysis.plots import BLOCK_FIGURES, analysis_figures
from analysis.report import analysis_report
from analysis.unroll import (DEFAULT_ALPHAS, DEFAULT_STEPS, DEFAULT_UPDATES, UPDATES,
                             check_unroll_options, check_updates)
from trainers import cli
from trainers.config import TrainConfig
from trainers.data import load_data
from trainers.folders import check_writable_folder
from trainers.keras_files import check_keras_file

# --split -> the splits measured; the paper reports train and test (validation) alike.
SPLITS = {"test": ("test",), "train": ("train",), "both": ("train", "test")}
# Everything analyze_run writes: a rerun removes the previous run's files first, so a folder
# never mixes results (or figures) of two analyses.
OUTPUTS = ("blocks.csv", "borderline.csv", "unroll.csv", "summary.json", "report.md",
           "analysis_config.json", "fig6_borderline.png", "fig7_unroll.png",
           *(f"fig{number}_{name}.png" for name, (_, number, _, _) in BLOCK_FIGURES.items()))


@dataclass
class AnalysisConfig:
    """What ``analyze_run`` measured; written as ``analysis_config.json`` beside the results."""

    run_dir: str
    split: str = "test"
    measures: str = "all"
    out: str | None = None  # default: RUN_DIR/analysis
    batch_size: int | None = None  # default: the run's batch size
    limit: int | None = None  # first N examples of the split
    alphas: tuple[float, ...] = DEFAULT_ALPHAS
    steps: int = DEFAULT_STEPS
    updates: tuple[str, ...] = DEFAULT_UPDATES
    last_blocks: int | None = None  # borderline: the paper's 5 where the model has them

    def __post_init__(self):
        """Every setting that needs no model checked here; ``analyze_run`` checks the rest
        against the model, both before any data is read."""
        self.alphas, self.updates = tuple(self.alphas), tuple(self.updates)
        self.out = self.out or str(Path(self.run_dir) / "analysis")
        if self.split not in SPLITS:
            raise ValueError(f"Unknown split {self.split!r}; accepted: {', '.join(SPLITS)}.")
        sizes = {"batch_size": self.batch_size, "limit": self.limit,
                 "last_blocks": self.last_blocks}
        bad = {k: v for k, v in sizes.items() if v is not None and v <= 0}
        if bad:
            raise ValueError(f"These settings must be positive: {bad}.")
        parse_measures(self.measures)
        check_unroll_options(self.alphas, self.steps)
        check_updates(self.updates)
        run = Path(self.run_dir)
        missing = [name for name in ("final.keras", "config.json") if not (run / name).is_file()]
        if missing:
            raise ValueError(f"{run} is not a finished training run: it lacks "
                             f"{', '.join(missing)} (written by trainers.train at the end).")
        check_writable_folder(Path(self.out))


def load_splits(config: AnalysisConfig, model):
    """``({split: dataset}, the run's TrainConfig)``: the run's data pipeline for the splits of
    ``config.split``, without augmentation, rebatched and truncated as asked (the train split
    drops its last partial batch, as in training), in the form ``model`` takes."""
    train_config = TrainConfig.load(Path(config.run_dir) / "config.json")
    batch_size = config.batch_size or train_config.batch_size
    data = load_data(dataclasses.replace(train_config, augment=False, batch_size=batch_size))
    sizes = {"test": data.test_examples, "train": data.steps_per_epoch(batch_size) * batch_size}
    datasets = {split: _first(data.test if split == "test" else data.train, sizes[split],
                              config.limit, batch_size) for split in SPLITS[config.split]}
    return {split: model_inputs(dataset, model, data)
            for split, dataset in datasets.items()}, train_config


def model_inputs(dataset, model, data):
    """``dataset``'s raw images for a model that standardises them itself; for a legacy model
    (saved before the standardisation moved into the model) standardised with the training
    split's statistics, ``(x - data.mean) / data.std``, as its training pipeline fed it."""
    if standardization_of(model) is not None:
        return dataset
    mean, std = (tf.constant(values, tf.float32) for values in (data.mean, data.std))
    return dataset.map(lambda images, labels: ((images - mean) / std, labels), tf.data.AUTOTUNE)


def _first(dataset, available: int, limit: int | None, batch_size: int):
    """The first ``limit`` examples of ``dataset``, rebatched (all of them without a limit)."""
    if limit is None:
        return dataset
    batches = -(-min(limit, available) // batch_size)
    dataset = dataset.unbatch().take(limit).batch(batch_size)
    return dataset.apply(tf.data.experimental.assert_cardinality(batches))  # progress bar


def analyze_run(config: AnalysisConfig):
    """Measure the run's ``final.keras`` and write every result into ``config.out``."""
    check_keras_file(Path(config.run_dir) / "final.keras")
    model = keras.models.load_model(Path(config.run_dir) / "final.keras", compile=False)
    options = {"alphas": config.alphas, "steps": config.steps, "updates": config.updates,
               "last_blocks": config.last_blocks}
    check_settings(ResidualChain(model), config.measures, **options)  # before reading any data
    datasets, train_config = load_splits(config, model)
    analysis = analyze(model, datasets, config.measures, **options)
    analysis.summary.update(dataset=train_config.dataset)
    out = Path(config.out)
    for name in OUTPUTS:
        (out / name).unlink(missing_ok=True)
    analysis.save(out)
    (out / "analysis_config.json").write_text(
        json.dumps(dataclasses.asdict(config), indent=2) + "\n")
    label = f"{model.name}, {train_config.dataset}: "
    figures = analysis_figures(analysis, out, label)
    notes = [f"run: `{config.run_dir}`"] + (
        [f"limit: first {config.limit} examples of each split"] if config.limit else [])
    (out / "report.md").write_text(analysis_report(
        analysis, figures, f"Iterative inference analysis of {model.name}", notes))
    return analysis


HELP = {
    "split": "both: train and test in one analysis, a split column in every table",
    "measures": f"all, or a comma-separated subset of {','.join(MEASURES)}",
    "out": "output folder (default: RUN_DIR/analysis)",
    "batch_size": "default: the run's batch size",
    "limit": "first N examples only",
    "alphas": "unrolling step scales, distinct, in (0, 1]",
    "steps": "extra applications of the last block when unrolling",
    "updates": "unrolling updates: scaled (h + alpha d(h)) and/or norm (a step of alpha ||h||)",
    "last_blocks": "borderline: follow the head over this many last blocks (default: the "
                   "paper's 5, or as many as the head can read)",
}


def make_parser() -> argparse.ArgumentParser:
    """``RUN_DIR`` and one flag per other ``AnalysisConfig`` field."""
    parser = cli.Parser(prog="python -m analysis.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", help="a finished trainers.train run folder")
    cli.add_config_flags(parser, AnalysisConfig, HELP, skip=("run_dir",),
                         custom={"split": {"choices": list(SPLITS)},
                                 "updates": {"choices": list(UPDATES)}})
    return parser


def main(argv=None) -> int:
    """CLI (``trainers.cli.run_cli``): 0 on success, 2 for bad input, 1 when reading or writing
    failed, with one ``error:`` line."""
    return cli.run_cli(_analysis_command, argv)


def _analysis_command(argv) -> None:
    """Analyse the command line's run."""
    config = cli.config_from_args(AnalysisConfig, make_parser().parse_args(argv))
    analyze_run(config)
    print(f"Results in {config.out}/ (report.md, blocks.csv, figures).")


if __name__ == "__main__":
    sys.exit(main())
