"""Analyse a finished training run: ``python -m analysis.run RUN_DIR``.

    python -m analysis.run runs/preact110-cifar10 --measures cosine,l2 --limit 1000

Loads ``RUN_DIR/final.keras`` and the data of ``RUN_DIR/config.json`` (the same pipeline and
standardisation as training, without augmentation), runs ``analysis.frames.analyze`` and writes
``blocks.csv``, ``unroll.csv``, ``summary.json``, the figures (Jastrzebski et al. 2018, Figs.
3-7), ``report.md`` and the analysis' own ``analysis_config.json`` into ``--out`` (default
``RUN_DIR/analysis``).
"""

import argparse
import dataclasses
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import keras
import tensorflow as tf

from keras_resnets import ResidualChain  # (importing the zoo registers its layers)
from analysis.frames import analyze, parse_measures
from analysis.plots import analysis_figures
from analysis.report import analysis_report
from analysis.unroll import (DEFAULT_ALPHAS, DEFAULT_STEPS, check_unroll_options,
                             check_unrollable)
from trainers.config import TrainConfig
from trainers.data import load_data

SPLITS = ("test", "train")


@dataclass
class AnalysisConfig:
    """What ``analyze_run`` measured; written as ``analysis_config.json`` beside the results."""

    run_dir: str
    split: str = "test"
    measures: str = "all"
    out: str | None = None  # default: RUN_DIR/analysis
    batch_size: int | None = None  # default: the run's batch size
    limit: int | None = None  # first N examples of the split
    alphas: tuple = DEFAULT_ALPHAS
    steps: int = DEFAULT_STEPS

    def __post_init__(self):
        self.alphas = tuple(self.alphas)
        self.out = self.out or str(Path(self.run_dir) / "analysis")
        if self.split not in SPLITS:
            raise ValueError(f"Unknown split {self.split!r}; accepted: {', '.join(SPLITS)}.")
        bad = {k: v for k, v in {"batch_size": self.batch_size, "limit": self.limit}.items()
               if v is not None and v <= 0}
        if bad:
            raise ValueError(f"These settings must be positive: {bad}.")
        parse_measures(self.measures)
        check_unroll_options(self.alphas, self.steps)
        run = Path(self.run_dir)
        missing = [name for name in ("final.keras", "config.json") if not (run / name).is_file()]
        if missing:
            raise ValueError(f"{run} is not a finished training run: it lacks "
                             f"{', '.join(missing)} (written by trainers.train at the end).")


def load_split(config: AnalysisConfig):
    """The run's data pipeline for ``config.split``, without augmentation, rebatched and
    truncated as asked (the train split drops its last partial batch, as in training)."""
    train_config = TrainConfig.load(Path(config.run_dir) / "config.json")
    batch_size = config.batch_size or train_config.batch_size
    data = load_data(dataclasses.replace(train_config, augment=False, batch_size=batch_size))
    dataset = data.test if config.split == "test" else data.train
    if config.limit is not None:
        available = (data.test_examples if config.split == "test"
                     else data.steps_per_epoch(batch_size) * batch_size)
        batches = -(-min(config.limit, available) // batch_size)
        dataset = dataset.unbatch().take(config.limit).batch(batch_size)
        dataset = dataset.apply(tf.data.experimental.assert_cardinality(batches))  # progress bar
    return dataset, train_config


def analyze_run(config: AnalysisConfig):
    """Measure the run's ``final.keras`` and write every result into ``config.out``."""
    model = keras.models.load_model(Path(config.run_dir) / "final.keras", compile=False)
    if "unroll" in parse_measures(config.measures):
        check_unrollable(ResidualChain(model))  # before reading any data
    dataset, train_config = load_split(config)
    analysis = analyze(model, dataset, config.measures, alphas=config.alphas, steps=config.steps)
    analysis.summary.update(dataset=train_config.dataset, split=config.split)
    out = Path(config.out)
    analysis.save(out)
    (out / "analysis_config.json").write_text(
        json.dumps(dataclasses.asdict(config), indent=2) + "\n")
    label = f"{model.name}, {train_config.dataset} {config.split}: "
    figures = analysis_figures(analysis, out, label)
    notes = [f"run: `{config.run_dir}`"] + (
        [f"limit: first {config.limit} examples of the split"] if config.limit else [])
    (out / "report.md").write_text(analysis_report(
        analysis, figures, f"Iterative inference analysis of {model.name}", notes))
    return analysis


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m analysis.run",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", help="a finished trainers.train run folder")
    parser.add_argument("--split", default="test", choices=SPLITS)
    parser.add_argument("--measures", default="all",
                        help="all, or a comma-separated subset of cosine,l2,drop,"
                             "intermediate,unroll")
    parser.add_argument("--out", default=None, help="output folder (default: RUN_DIR/analysis)")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--limit", type=int, default=None, help="first N examples only")
    parser.add_argument("--alphas", type=float, nargs="+", default=list(DEFAULT_ALPHAS),
                        help="unrolling step scales in (0, 1]")
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS,
                        help="extra applications of the last block when unrolling")
    return parser


def main(argv=None) -> int:
    """CLI: 0 on success, 2 for bad input (a one-line message, no traceback)."""
    args = make_parser().parse_args(argv)
    try:
        config = AnalysisConfig(**vars(args))
        analyze_run(config)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"Results in {config.out}/ (report.md, blocks.csv, figures).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
