"""Sharing the top blocks of each stage (Jastrzebski et al. 2018, Sec. 6, Figures 8-9).

    python -m experiments.sharing --dataset cifar10 --epochs 20 --out results/sharing

Trains, with ``trainers.train.train``, three pre-activation models (the paper's blocks are
pre-activation) and puts them side by side:
- ``preact{depth}-shared``: the top ``shared`` units of each stage share all weights (naive);
- ``preact{depth}-shared-bn``: they share the convolutions, each step keeps its own BN
  statistics, gamma and beta, gamma initialised to 0.1 (the paper's "unshared BN");
- ``preact{d}``: an unshared baseline whose depth ``d`` gives about the same parameter count
  as the naive shared net (``preact38`` for 110/13, found by ``matching_baseline``).
The paper finds that naive sharing overfits and is worse than the baseline, and that unshared
BN closes much of the gap. Writes ``sharing.csv``, ``sharing.md``, ``sharing.png`` (train and
test error per epoch), the gradient norm ratio per epoch (``gradient_ratio.csv/png``, Fig. 8
right), the activation norms at initialisation (``activation_norms.csv/png``) and
``sharing_config.json`` into ``--out``. Each run trains into ``--runs`` (default
``OUT/runs``, working files) and is recorded in the ledger ``OUT/runs.csv``
(``experiments.ledger``): a recorded run never trains again. Anything below the paper's scale
(fewer epochs or examples, other depth) is labelled REDUCED. ``--ablation 1`` adds Fig. 9's
rows: unshared BN with one part turned off (shared statistics, shared gamma and beta, or gamma
initialised to 1).

Measurements for Fig. 8 on any zoo model: ``gradient_norm_ratio`` (``||dL/dh_1|| /
||dL/dh_{1+2n}||``, per epoch through ``gradient_ratio_callback``) and ``activation_norms``
(``||h_j||`` and ``||F_j(h_j)||`` per block, meant at initialisation).
"""

import argparse
import dataclasses
import functools
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import keras
import pandas as pd
import tensorflow as tf

import keras_resnets
from analysis.measures import crossentropy, prepare
from analysis.plots import plot_activation_norms, plot_gradient_ratio, plot_training_curves
from analysis.report import markdown_table
from experiments.ablate import train_one
from keras_resnets.chain import ResidualChain
from keras_resnets.names import format_name
from keras_resnets.registry import resolve
from keras_resnets.shared import SharedResidualStack
from trainers import cli
from trainers.callbacks import read_history
from trainers.config import TrainConfig
from trainers.data import load_data
from experiments.ledger import Ledger, run_name
from trainers.train import build_model, check_config, train

PAPER_DEPTH, PAPER_SHARED = 110, 13
PAPER_DATASETS = ("cifar10", "cifar100")
COLUMNS = ("label", "model", "overrides", "parameters", "train_error", "test_error", "epochs")


@dataclass
class SharingConfig:
    """The whole experiment; written as ``sharing_config.json`` in ``out``."""

    dataset: str = "cifar10"
    epochs: int | None = None  # None: the recipe's 64k iterations
    out: str = "runs/sharing"
    depth: int = PAPER_DEPTH
    shared: int = PAPER_SHARED
    data_dir: str | None = None
    train_size: int | None = None
    test_size: int | None = None
    batch_size: int = 128
    seed: int = 0
    strategy: str = "auto"
    ablation: int = 0  # 1: also the three Fig. 9 rows (one part of unshared BN off each)
    runs: str | None = None  # folder of the run folders (default OUT/runs)

    def __post_init__(self):
        name = format_name("preact", self.depth)
        units = resolve(name)["units_per_stage"]  # refuses a bad depth
        if not 1 <= self.shared < units:
            raise ValueError(f"--shared must be in [1, {units - 1}] for {name} "
                             f"({units} units per stage); got {self.shared}.")

    @property
    def reduced(self) -> list[str]:
        """How this experiment departs from the paper's scale (empty at full scale)."""
        notes = []
        if (self.depth, self.shared) != (PAPER_DEPTH, PAPER_SHARED):
            notes.append(f"depth {self.depth} / {self.shared} shared (paper: 110 / 13)")
        if self.epochs is not None:
            notes.append(f"{self.epochs} epochs (paper: 64k iterations, about 164 epochs)")
        if self.train_size or self.test_size:
            notes.append(f"train_size {self.train_size}, test_size {self.test_size}")
        if self.dataset not in PAPER_DATASETS:
            notes.append(f"dataset {self.dataset} (paper: CIFAR)")
        return notes


def shared_overrides(config: SharingConfig) -> dict:
    """The ``shared_blocks`` override of the shared nets; none at the paper's 13."""
    return {} if config.shared == PAPER_SHARED else {"shared_blocks": config.shared}


def matching_baseline(depth: int, shared: int) -> str:
    """The unshared ``preact{6n+2}`` whose parameter count is nearest that of
    ``preact{depth}-shared`` (naive sharing): a local search from n = distinct units per stage."""
    overrides = {} if shared == PAPER_SHARED else {"shared_blocks": shared}
    target = keras_resnets.count_parameters(
        keras_resnets.build(format_name("preact", depth, variant="shared"), **overrides))

    def gap(n):
        baseline = keras_resnets.build(format_name("preact", 6 * n + 2))
        return abs(keras_resnets.count_parameters(baseline) - target)

    units = (depth - 2) // 6
    n = units - shared + 1
    best = gap(n)
    for step in (-1, 1):
        while n + step >= 1 and gap(n + step) < best:
            n, best = n + step, gap(n + step)
    return format_name("preact", 6 * n + 2)


# Fig. 9: the remedy with one part turned off (keras_resnets.registry.VARIANTS).
ABLATION_RUNS = {"unshared BN, shared statistics": "shared-bn-shared-stats",
                 "unshared BN, shared gamma and beta": "shared-bn-shared-affine",
                 "unshared BN, gamma initialised to 1": "shared-bn-gamma1"}


def experiment_runs(config: SharingConfig) -> dict:
    """label -> (model name, overrides) of the three runs (six with ``ablation``)."""
    overrides = shared_overrides(config)
    runs = {"shared (naive)": (format_name("preact", config.depth, variant="shared"), overrides),
            "shared convs, unshared BN": (format_name("preact", config.depth, variant="shared-bn"),
                                          overrides),
            "unshared baseline": (matching_baseline(config.depth, config.shared), {})}
    if config.ablation:
        runs.update({label: (format_name("preact", config.depth, variant=variant), overrides)
                     for label, variant in ABLATION_RUNS.items()})
    return runs


def train_config(config: SharingConfig, model: str, overrides: dict):
    """The ``he2016`` recipe for one run of the experiment, sized by ``config``, in its run
    folder."""
    return TrainConfig.for_recipe(
        "he2016", model=model, model_overrides=dict(overrides), dataset=config.dataset,
        data_dir=config.data_dir, train_size=config.train_size, test_size=config.test_size,
        epochs=config.epochs, batch_size=config.batch_size, seed=config.seed,
        strategy=config.strategy, out=str(runs_dir(config) / model))


def runs_dir(config: SharingConfig) -> Path:
    """Where the run folders go: ``--runs``, else ``OUT/runs``."""
    return Path(config.runs) if config.runs else Path(config.out) / "runs"


def run_sharing(config: SharingConfig, train_fn=None) -> pd.DataFrame:
    """Train the runs not yet in the ledger, recording the gradient norm ratio per epoch, and
    write the side-by-side results into ``out``. ``train_fn(TrainConfig, callbacks=...)``
    defaults to ``trainers.train.train``."""
    train_fn = train_fn or train
    runs = {label: train_config(config, *run) for label, run in experiment_runs(config).items()}
    check_config(runs["shared (naive)"])  # dataset found, before training
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "sharing_config.json").write_text(json.dumps(dataclasses.asdict(config), indent=2))
    ledger, probe = Ledger(out / "runs.csv"), Probe(runs["shared (naive)"])
    norms = []
    for label, run in runs.items():
        norms.append(probe.initial_norms(run).assign(label=label, model=run.model))
        ratio = gradient_ratio_callback(probe.images, probe.labels)
        train_one(functools.partial(train_fn, callbacks=[ratio]), run, ledger)
        if ratio.history:
            _save_ratios(out, label, run.model, ratio.history)
    histories = {label: _history(ledger, run) for label, run in runs.items()}
    table = pd.DataFrame([_result_row(ledger, label, run, histories[label])
                          for label, run in runs.items()], columns=list(COLUMNS))
    histories = {f"{label}: {run.model}": histories[label] for label, run in runs.items()}
    write_results(config, table, histories, pd.concat(norms, ignore_index=True))
    return table


class Probe:
    """One fixed test batch of the experiment's data, and models built on it at
    initialisation (seeded as the run), for Fig. 8's measurements."""

    def __init__(self, run):
        self.data = load_data(dataclasses.replace(run, augment=False))
        self.images, self.labels = next(iter(self.data.test))

    def initial_norms(self, run) -> pd.DataFrame:
        """``activation_norms`` of ``run``'s model at initialisation on the batch."""
        keras.utils.set_random_seed(run.seed)
        norms = activation_norms(build_model(run, self.data), self.images)
        keras.backend.clear_session()
        return norms


def _save_ratios(out: Path, label: str, model: str, history: list) -> None:
    """Append ``(epoch, ratio)`` of one run to ``gradient_ratio.csv`` (replacing its rows)."""
    path = out / "gradient_ratio.csv"
    rows = pd.DataFrame(history, columns=["epoch", "ratio"]).assign(label=label, model=model)
    if path.is_file():
        saved = pd.read_csv(path)
        rows = pd.concat([saved[saved["model"] != model], rows], ignore_index=True)
    rows[["label", "model", "epoch", "ratio"]].to_csv(path, index=False)


def _history(ledger, run) -> pd.DataFrame:
    return read_history(ledger.history_dir / f"{run_name(run)}.csv")


def _result_row(ledger, label: str, run, history: pd.DataFrame) -> dict:
    """The table row of one run, from the ledger and its recorded ``history``."""
    entry = ledger.lookup(run) or {}
    finished = not history.empty
    return {"label": label, "model": run.model, "overrides": json.dumps(run.model_overrides),
            "parameters": entry.get("parameters"),
            "train_error": 100.0 * (1.0 - float(history["accuracy"].iloc[-1]))
            if finished else float("nan"),
            "test_error": entry.get("test_error"),
            "epochs": entry.get("epochs")}


def write_results(config: SharingConfig, table: pd.DataFrame, histories: dict,
                  norms: pd.DataFrame) -> None:
    """Write the comparison table, the Fig. 8 measurements and their figures, and ``sharing.md``
    into ``out``."""
    out = Path(config.out)
    table.to_csv(out / "sharing.csv", index=False)
    norms.to_csv(out / "activation_norms.csv", index=False)
    plot_activation_norms(norms, out / "activation_norms.png")
    if (out / "gradient_ratio.csv").is_file():
        plot_gradient_ratio(pd.read_csv(out / "gradient_ratio.csv"), out / "gradient_ratio.png")
    scale = ("REDUCED SCALE: " + "; ".join(config.reduced)) if config.reduced else "full scale"
    title = f"Sharing blocks (cf. Jastrzebski et al. 2018, Fig. 8), {config.dataset}, {scale}"
    plot_training_curves(histories, out / "sharing.png", title)
    (out / "sharing.md").write_text(
        f"# {title}\n\nErrors in %; train error is the last epoch's (augmented) training "
        f"error. Paper: naive sharing overfits and is worse than the unshared baseline of "
        f"about the same parameter count; unshared BN closes much of the gap.\n\n"
        f"{markdown_table(table)}\n\n![training curves](sharing.png)\n\n"
        f"Fig. 8 right: the gradient norm ratio ||dL/dh_1|| / ||dL/dh_(1+2n)|| per epoch on one "
        f"fixed test batch (`gradient_ratio.csv`), and the norms of each block's input and "
        f"residual at initialisation (`activation_norms.csv`).\n\n"
        f"![gradient norm ratio](gradient_ratio.png)\n![activation norms](activation_norms.png)\n")


def _stage_starts(chain) -> list[int]:
    """0-based index of the first block of every stage, in order."""
    return [block.index for block in chain.blocks if block.index_in_stage == 0]


def _keeping_statistics(model, measure, training):
    """``measure()``, with BN's moving statistics restored afterwards when ``training`` (a
    training-mode pass updates them; a measurement must leave the model as it was)."""
    saved = [(v, v.numpy()) for v in model.non_trainable_weights] if training else []
    try:
        return measure()
    finally:
        for variable, value in saved:
            variable.assign(value)


def gradient_norm_ratio(model, images, labels, training: bool = False) -> float:
    """Fig. 8 right: ``||dL/dh_1|| / ||dL/dh_{1+2n}||``, the gradient norm at the input of the
    first block of the first stage over that at the input of the first block of the last
    stage (block ``1 + 2n`` of a 3-stage net of ``n`` blocks per stage; a shared stack counts
    one block per step). ``L`` is the summed softmax cross-entropy of the batch (the ratio does
    not depend on that scale); the norms are over the whole batch. ``training``: BN uses batch
    statistics (the moving statistics are left untouched); default: inference mode, as
    ``analysis.measures``. Cheap enough to call once per epoch on a fixed batch."""
    chain = ResidualChain(model)
    images, labels = prepare(images, labels)
    first, last = _stage_starts(chain)[0], _stage_starts(chain)[-1]

    def measure():
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(images)
            inputs, _, logits = chain.hidden_states(images, training=training)
            loss = tf.reduce_sum(crossentropy(labels, logits))
        low, high = tape.gradient(loss, [inputs[first], inputs[last]],
                                  unconnected_gradients=tf.UnconnectedGradients.ZERO)
        return float(tf.norm(low) / tf.norm(high))

    return _keeping_statistics(model, measure, training)


def activation_norms(model, images, training: bool = True) -> pd.DataFrame:
    """Fig. 8: per block ``j`` (0-based, in order), the mean over examples of ``||h_j||``
    (its input) and of ``||F_j(h_j)||`` (its branch output), and the logits' norm as the last
    row's ``output_norm``. Meant at initialisation: ``training=True`` (default) normalises with
    batch statistics, since untrained moving statistics say nothing; they are restored."""
    chain = ResidualChain(model)
    images = tf.cast(images, tf.float32)

    def norm(x):
        return float(tf.reduce_mean(tf.norm(tf.reshape(tf.cast(x, tf.float32),
                                                       [tf.shape(x)[0], -1]), axis=1)))

    def measure():
        inputs, parts, logits = chain.hidden_states(images, training=training)
        rows = [{"block": j, "stage": block.stage, "shared": _is_shared_step(model, block),
                 "input_norm": norm(h), "residual_norm": norm(p.residual)}
                for j, (block, h, p) in enumerate(zip(chain.blocks, inputs, parts))]
        table = pd.DataFrame(rows)
        table["output_norm"] = float("nan")
        table.loc[table.index[-1], "output_norm"] = norm(logits)
        return table

    return _keeping_statistics(model, measure, training)


def _is_shared_step(model, block) -> bool:
    return any(isinstance(layer, SharedResidualStack) and block.unit in layer.units
               for layer in model.layers)


def gradient_ratio_callback(images, labels, training: bool = False):
    """A Keras callback recording ``gradient_norm_ratio`` on one fixed batch before training
    (epoch 0) and after every epoch; its ``history`` is a list of ``(epoch, ratio)``."""

    class GradientRatioHistory(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.history = []

        def _record(self, epoch):
            self.history.append(
                (epoch, gradient_norm_ratio(self.model, images, labels, training)))

        def on_train_begin(self, logs=None):
            self._record(0)

        def on_epoch_end(self, epoch, logs=None):
            self._record(epoch + 1)

    return GradientRatioHistory()


HELP = {"dataset": "synthetic, cifar10, cifar100 or a prepared TFDS dataset",
        "epochs": "train each run this long (None: the recipe's 64k iterations)",
        "out": "experiment folder: results and the ledger runs.csv (commit it)",
        "runs": "folder of the run folders (default OUT/runs; not committed)",
        "depth": "depth of the shared nets, 6n+2", "shared": "units shared per stage",
        "data_dir": "where the dataset lies (see trainers.data)",
        "train_size": "first N training examples only", "test_size": "first N test examples",
        "batch_size": "global batch", "seed": "random seed of every run",
        "strategy": "auto, default, mirrored or multiworker",
        "ablation": "1: also train Fig. 9's three ablations of unshared BN"}


def make_parser() -> argparse.ArgumentParser:
    """One flag per ``SharingConfig`` field."""
    parser = cli.Parser(prog="python -m experiments.sharing", description=__doc__.split("\n\n")[0])
    cli.add_config_flags(parser, SharingConfig, HELP)
    return parser


def main(argv=None) -> int:
    """CLI (``trainers.cli.run_cli``): 0 on success, 2 for bad settings, 1 when a write failed
    (one ``error:`` line, no traceback). A diverged run is a result, as in ``ablate``."""
    return cli.run_cli(_sharing_command, argv)


def _sharing_command(argv) -> None:
    """Run the command line's experiment and print its table."""
    config = cli.config_from_args(SharingConfig, make_parser().parse_args(argv))
    table = run_sharing(config)
    print(table.to_string(index=False))
    print(f"Results in {config.out}/ (sharing.md, sharing.csv, sharing.png).")


if __name__ == "__main__":
    sys.exit(main())
