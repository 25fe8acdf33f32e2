"""Analyse a residual network: ``python -m analysis.run RUN_DIR | MODEL.keras | --model NAME``.

    python -m analysis.run runs/preact110-cifar10 --measures cosine,l2 --limit 1000
    python -m analysis.run runs/preact110-cifar10 --split both --updates scaled norm
    python -m analysis.run resnet50v2.keras --dataset cifar10 --data-dir ~/data \
        --input-scaling symmetric --out analysis/resnet50v2
    python -m analysis.run --model preact20 --weights cifar10 --data-dir ~/data --out a/p20

Three sources. A finished training run: ``RUN_DIR/final.keras`` and the data of
``RUN_DIR/config.json`` (the same pipeline as training, without augmentation: raw images, which
the model standardises itself; a model without a ``standardize`` layer is refused). A
``.keras`` file of any Keras functional residual network (read with ``safe_mode``: no Lambda
layer is deserialised; blocks found as ``keras_resnets.chain`` says) on ``--dataset``. A zoo
model with shipped pretrained weights (``--model preact20 --weights cifar10``) on their dataset.
A model file or name gets float images scaled by ``--input-scaling`` (``INPUT_SCALINGS``): raw
0..255 by default, which the zoo's models take. The train split is the first ``--limit``
examples of epoch 0's shuffled order (seed 0).

``analysis.frames.analyze`` runs on the test split, the train split or both and writes
``blocks.csv``, ``borderline.csv``, ``unroll.csv`` (each with a ``split`` column),
``summary.json``, the figures (Jastrzebski et al. 2018, Figs. 3-7), ``report.md`` and the
analysis' own ``analysis_config.json`` into ``--out`` (default ``RUN_DIR/analysis``; required
for the other sources). Every setting is checked, against the model too, before any data is
read. The flags are parsed before TensorFlow loads (``--help`` answers at once): this module
imports it, Keras and the measurements in the functions that analyse.
"""

import argparse
import dataclasses
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from analysis.options import DEFAULT_ALPHAS, DEFAULT_STEPS, DEFAULT_UPDATES, MEASURES
from trainers import cli
from trainers.config import REFERENCE_BATCH, TrainConfig
from trainers.files import check_keras_file, check_writable_folder

# --split -> the splits measured; the paper reports train and test (validation) alike.
SPLITS = {"test": ("test",), "train": ("train",), "both": ("train", "test")}
# --input-scaling -> what a model file or a named model is fed, from float 0..255 images and
# the training split's per-channel mean and std. keras.applications models expect their own
# preprocess_input: ResNet50V2's is "symmetric"; ResNet50's (BGR, mean subtracted) is none of
# these, so put it inside such a model before saving it.
INPUT_SCALINGS = {
    "raw": lambda images, mean, std: images,  # 0..255, as the zoo's models take them
    "standardize": lambda images, mean, std: (images - mean) / std,  # per channel
    "unit": lambda images, mean, std: images / 255.0,  # [0, 1]
    "symmetric": lambda images, mean, std: images / 127.5 - 1.0,  # [-1, 1]
}


@dataclass
class AnalysisConfig:
    """What ``analyze_run`` measured; written as ``analysis_config.json`` beside the results.
    Exactly one source: ``run_dir``, ``model_file`` or ``model`` (with ``weights``)."""

    run_dir: str | None = None  # a finished trainers.train run folder
    model_file: str | None = None  # a .keras file of any functional residual network
    model: str | None = None  # a zoo model name, with shipped pretrained ``weights``
    weights: str | None = None
    dataset: str | None = None  # model file: required; model: default the weights' dataset
    data_dir: str | None = None
    input_scaling: str | None = None  # model file or name: INPUT_SCALINGS, default raw
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
        self._check_source()
        if self.split not in SPLITS:
            raise ValueError(f"Unknown split {self.split!r}; accepted: {', '.join(SPLITS)}.")
        sizes = {"batch_size": self.batch_size, "limit": self.limit,
                 "last_blocks": self.last_blocks}
        bad = {k: v for k, v in sizes.items() if v is not None and v <= 0}
        if bad:
            raise ValueError(f"These settings must be positive: {bad}.")
        from analysis.frames import parse_measures  # loads TensorFlow: after the cheap checks
        from analysis.unroll import check_unroll_options, check_updates

        parse_measures(self.measures)
        check_unroll_options(self.alphas, self.steps)
        check_updates(self.updates)
        check_writable_folder(Path(self.out))

    def _check_source(self) -> None:
        """One source, with what it needs: a run folder holds its model and data settings; a
        model file needs ``dataset`` and ``out``; a model name needs ``weights`` and ``out``."""
        sources = [name for name in ("run_dir", "model_file", "model") if getattr(self, name)]
        if len(sources) != 1:
            raise ValueError("Give one model to analyse: a run folder or a .keras file (the "
                             "positional argument), or --model NAME --weights WEIGHTS; got "
                             f"{' and '.join(sources) or 'none'}.")
        if self.run_dir:
            self._check_run()
        elif not self.out:
            raise ValueError("--out is required for a model file or a named model.")
        if self.run_dir and self.input_scaling is not None:
            raise ValueError("--input-scaling is for a model file or a named model; a run "
                             "folder's model gets its own training pipeline's images.")
        if self.input_scaling is not None and self.input_scaling not in INPUT_SCALINGS:
            raise ValueError(f"Unknown input scaling {self.input_scaling!r}; accepted: "
                             f"{', '.join(INPUT_SCALINGS)}.")
        if self.model_file and not self.dataset:
            raise ValueError("--dataset is required for a model file (cifar10, cifar100...).")
        if self.model_file and not Path(self.model_file).is_file():
            raise ValueError(f"No model file {self.model_file}.")
        if self.model and not self.weights:
            raise ValueError(f"--model {self.model} needs --weights (shipped pretrained "
                             "weights, such as cifar10): an untrained net has nothing to say.")
        if self.model:
            from keras_resnets.pretrained import find

            self.dataset = self.dataset or find(self.model, self.weights).dataset

    def _check_run(self) -> None:
        """A finished run folder: ``final.keras`` and ``config.json``; ``out`` defaults to
        ``RUN_DIR/analysis``."""
        self.out = self.out or str(Path(self.run_dir) / "analysis")
        run = Path(self.run_dir)
        missing = [name for name in ("final.keras", "config.json") if not (run / name).is_file()]
        if missing:
            raise ValueError(f"{run} is not a finished training run: it lacks "
                             f"{', '.join(missing)} (written by trainers.train at the end).")


def load_splits(config: AnalysisConfig, model, train_config: TrainConfig) -> dict:
    """``{split: dataset}``: the data pipeline of the run of ``train_config`` for the splits of
    ``config.split``, without augmentation, rebatched and truncated as asked (the train split
    drops its last partial batch, as in training), in the form ``model`` takes (a run's
    pipeline, or ``config.input_scaling``)."""
    from trainers.data import load_data

    batch_size = config.batch_size or train_config.batch_size
    data = load_data(dataclasses.replace(train_config, augment=False, batch_size=batch_size))
    sizes = {"test": data.test_examples, "train": data.steps_per_epoch(batch_size) * batch_size}
    datasets = {split: _first(data.test if split == "test" else data.train, sizes[split],
                              config.limit, batch_size) for split in SPLITS[config.split]}
    if config.run_dir:
        check_standardises(model, config.run_dir)
        return datasets
    return {split: scaled(dataset, config.input_scaling or "raw", data)
            for split, dataset in datasets.items()}


def scaled(dataset, scaling: str, data):
    """``dataset``'s float 0..255 images scaled as ``INPUT_SCALINGS[scaling]`` says, with the
    training split's per-channel statistics for ``standardize``."""
    import tensorflow as tf

    if scaling == "raw":
        return dataset
    mean, std = (tf.constant(values, tf.float32) for values in (data.mean, data.std))
    scale = INPUT_SCALINGS[scaling]
    return dataset.map(lambda images, labels: (scale(images, mean, std), labels),
                       tf.data.AUTOTUNE)


def check_standardises(model, run_dir) -> None:
    """A run's model must standardise its images itself (a ``standardize`` layer, as
    ``trainers.train`` builds it): the run's pipeline gives raw images. A ``ValueError`` says what
    to do with one that does not."""
    from keras_resnets import standardization_of

    if standardization_of(model) is None:
        raise ValueError(f"{run_dir}/final.keras does not standardise its images (it has no "
                         f"standardize layer), so it would misread the run's raw images; train "
                         f"it again with trainers.train, or analyse it as a .keras file with the "
                         f"--input-scaling it was trained with.")


def _first(dataset, available: int, limit: int | None, batch_size: int):
    """The first ``limit`` examples of ``dataset``, rebatched (all of them without a limit)."""
    import tensorflow as tf

    if limit is None:
        return dataset
    batches = -(-min(limit, available) // batch_size)
    dataset = dataset.unbatch().take(limit).batch(batch_size)
    return dataset.apply(tf.data.experimental.assert_cardinality(batches))  # progress bar


def open_model(config: AnalysisConfig) -> tuple:
    """``(model, TrainConfig of its data, note for the report)`` of ``config``'s source. A
    run's ``config.json`` is read first: a malformed one is bad input, refused before any work.
    A ``.keras`` file is read with ``safe_mode`` (no Lambda layer's code is deserialised)."""
    import keras

    from keras_resnets import build  # (registers the zoo's layers)
    from keras_resnets.pretrained import find

    if config.run_dir:
        train_config = TrainConfig.load(Path(config.run_dir) / "config.json")
        check_keras_file(Path(config.run_dir) / "final.keras")
        model = keras.models.load_model(Path(config.run_dir) / "final.keras", compile=False)
        return model, train_config, f"run: `{config.run_dir}`"
    train_config = TrainConfig(dataset=config.dataset, data_dir=config.data_dir,
                               batch_size=config.batch_size or REFERENCE_BATCH, augment=False)
    if config.model:
        entry = find(config.model, config.weights)
        model = build(config.model, num_classes=entry.num_classes,
                      input_shape=entry.input_shape, weights=config.weights)
        return model, train_config, f"model: `{config.model}`, weights `{config.weights}`"
    check_keras_file(Path(config.model_file))
    model = keras.models.load_model(config.model_file, compile=False, safe_mode=True)
    scaling = config.input_scaling or "raw"
    return model, train_config, f"model file: `{config.model_file}`, input scaling {scaling}"


def analyze_run(config: AnalysisConfig):
    """Measure ``config``'s model and write every result into ``config.out``."""
    from keras_resnets import ResidualChain
    from analysis.frames import analyze, check_settings
    from analysis.plots import analysis_figures
    from analysis.report import analysis_report

    model, train_config, source = open_model(config)
    options = {"alphas": config.alphas, "steps": config.steps, "updates": config.updates,
               "last_blocks": config.last_blocks}
    check_settings(ResidualChain(model), config.measures, **options)  # before reading any data
    datasets = load_splits(config, model, train_config)
    analysis = analyze(model, datasets, config.measures, **options)
    analysis.summary.update(dataset=train_config.dataset)
    out = Path(config.out)
    for name in output_names():
        (out / name).unlink(missing_ok=True)
    analysis.save(out)
    (out / "analysis_config.json").write_text(
        json.dumps(dataclasses.asdict(config), indent=2) + "\n")
    label = f"{model.name}, {train_config.dataset}: "
    figures = analysis_figures(analysis, out, label)
    notes = [source] + (
        [f"limit: first {config.limit} examples of each split"] if config.limit else [])
    (out / "report.md").write_text(analysis_report(
        analysis, figures, f"Iterative inference analysis of {model.name}", notes))
    return analysis


def output_names() -> tuple[str, ...]:
    """Everything ``analyze_run`` writes: a rerun removes the previous run's files first, so a
    folder never mixes results (or figures) of two analyses."""
    from analysis.plots import BLOCK_FIGURES

    return ("blocks.csv", "borderline.csv", "unroll.csv", "summary.json", "report.md",
            "analysis_config.json", "fig6_borderline.png", "fig7_unroll.png",
            *(f"fig{number}_{name}.png" for name, (_, number, _, _) in BLOCK_FIGURES.items()))


HELP = {
    "model": "a zoo model with shipped pretrained weights instead of RUN_DIR or MODEL.keras",
    "weights": "the shipped weights of --model (cifar10, akamaster)",
    "dataset": "a model file's or name's data (cifar10, cifar100; default for --model: the "
               "weights' dataset)",
    "data_dir": "where the dataset is (as trainers.train takes it)",
    "input_scaling": "how a model file or name gets the float 0..255 images: raw (as the zoo's "
                     "models take them), standardize (per channel, the training split's "
                     "statistics), unit ([0, 1]) or symmetric ([-1, 1], ResNet50V2's "
                     "preprocess_input); default raw. A run folder's model gets its training "
                     "pipeline's images",
    "split": "both: train and test in one analysis, a split column in every table",
    "measures": f"all, or a comma-separated subset of {','.join(MEASURES)}",
    "out": "output folder (default: RUN_DIR/analysis; required for a model file or name)",
    "batch_size": "default: the run's batch size (128 for a model file or name)",
    "limit": "first N examples only",
    "alphas": "unrolling step scales, distinct, in (0, 1]",
    "steps": "extra applications of the last block when unrolling",
    "updates": "unrolling updates: scaled (h + alpha d(h)) and/or norm (a step of alpha ||h||)",
    "last_blocks": "borderline: follow the head over this many last blocks (default: the "
                   "paper's 5, or as many as the head can read)",
}


def make_parser() -> argparse.ArgumentParser:
    """The source (``RUN_DIR`` or ``MODEL.keras``) and one flag per other ``AnalysisConfig``
    field."""
    parser = cli.Parser(prog="python -m analysis.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("source", nargs="?", help="a finished trainers.train run folder, or "
                        "a .keras file of a Keras functional residual network")
    cli.add_config_flags(parser, AnalysisConfig, HELP, skip=("run_dir", "model_file"),
                         custom={"split": {"choices": list(SPLITS)},
                                 "input_scaling": {"choices": list(INPUT_SCALINGS)}})
    return parser


def main(argv=None) -> int:
    """CLI (``trainers.cli.run_cli``): 0 on success, 2 for bad input, 1 when reading or writing
    failed, with one ``error:`` line."""
    return cli.run_cli(_analysis_command, argv)


def _analysis_command(argv) -> None:
    """Analyse the command line's run folder, model file or named model."""
    args = make_parser().parse_args(argv)
    source = {}
    if args.source is not None:
        is_file = args.source.endswith(".keras") and not Path(args.source).is_dir()
        source = {"model_file" if is_file else "run_dir": args.source}
    config = cli.config_from_args(AnalysisConfig, args, **source)
    analyze_run(config)
    print(f"Results in {config.out}/ (report.md, blocks.csv, figures).")


if __name__ == "__main__":
    sys.exit(main())
