"""Export a trained zoo model as a TF SavedModel that TF Serving loads.

    python -m saved_models.export runs/preact110-cifar10 --out saved_models/preact110/1

The artifact follows TF Serving's layout (``NAME/VERSION/saved_model.pb`` + ``variables/``).
Its ``serving_default`` signature takes raw ``uint8`` images ``(None, H, W, C)`` under the key
``images`` and returns the class probabilities (softmax of the zoo model's logits) under
``probabilities``. The trainers build the training data's per-channel standardisation (the
papers' preprocessing, papers.md "Training recipe") into the model as its ``standardize``
layer, so the graph only casts the images to float and calls the model. The graph needs
neither Keras nor ``keras_resnets`` to run. Images of any other shape than the model's input
are refused (``InvalidArgumentError`` naming the expected shape): the graph would otherwise
broadcast one channel to three and pool any size, returning confident nonsense.
``assets.extra/export.json`` records where the model and its statistics came from.

``--overwrite`` keeps the old version until the new one is complete: the new one is written to a
hidden sibling, the old one renamed aside to ``.old-VERSION``, the new one renamed in, the old one
deleted. A run killed between the two renames leaves only ``.old-VERSION``; the next run puts it
back (and says so) before anything else. Exit codes: 0 exported, 2 bad input (one ``error:``
line), 1 the writing failed (the old version is kept).

Legacy models, saved before the standardisation moved into the model, take standardised
images: their graph standardises the images first, as exports did then (same predictions), with
``--mean``/``--std`` or else the ``normalization`` that the trainer of that time wrote in the
run folder's ``metrics.json``; without either they are refused (exit 2). ``--mean``/``--std``
are for legacy models only: a model that standardises itself refuses them.
"""

import argparse
import json
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from trainers import cli
from trainers.keras_files import check_keras_file

INPUT_KEY, OUTPUT_KEY = "images", "probabilities"
MANIFEST = Path("assets.extra") / "export.json"  # TF Serving's folder for files it ignores


@dataclass(frozen=True)
class Standardization:
    """Per-channel mean and std on the 0..255 scale, where they came from, and whether the
    model applies them itself (``legacy``: the serving graph must, before the model)."""

    mean: tuple
    std: tuple
    source: str
    legacy: bool = False

    def check(self, channels: int) -> None:
        """Refuse a standardisation without one positive std and one mean per channel of the
        model."""
        if len(self.mean) != channels or len(self.std) != channels:
            raise ValueError(
                f"The model takes {channels} channels but the standardisation ({self.source}) "
                f"has {len(self.mean)} means and {len(self.std)} stds; give one per channel.")
        if min(self.std) <= 0:
            raise ValueError(f"Every std must be positive; got {list(self.std)} ({self.source}).")


def check_out(out: Path, overwrite: bool) -> None:
    """Refuse a version folder TF Serving would not load, a file where the version folder (or a
    folder above it) should be, or a version that already holds a model.

    The version must be ASCII digits: ``str.isdigit`` and ``int`` also take other scripts' digits
    (``'１'``), which TF Serving does not read as a version. An ``--overwrite`` killed mid-swap is
    finished first (``recover``), so the check sees the version TF Serving would serve.
    """
    if not re.fullmatch(r"[0-9]+", out.name):
        raise ValueError(
            f"--out must end in a numeric version folder of ASCII digits 0-9 (TF Serving loads "
            f"NAME/VERSION with VERSION an integer, e.g. saved_models/preact110/1); got "
            f"{str(out)!r}.")
    recover(out)
    for path in (out, *out.parents):
        if path.exists() and not path.is_dir():
            raise ValueError(f"{path} is a file, where --out {out} needs a folder; remove it or "
                             f"choose another --out.")
    if out.exists() and not overwrite:
        raise ValueError(f"{out} already exists; pass --overwrite to replace it or pick a new "
                         f"version number.")


def locate(source: Path) -> tuple[Path, Path | None]:
    """The ``.keras`` file to export and its run folder (``None`` for a bare file)."""
    if not source.exists():
        raise ValueError(f"{source} does not exist; give a run folder (holding final.keras and "
                         f"config.json) or a .keras file.")
    if source.is_dir():
        model_path = source / "final.keras"
        if not model_path.is_file():
            raise ValueError(f"Run folder {source} has no final.keras: has its training "
                             f"finished? Or give a .keras file directly.")
    elif source.suffix == ".keras":
        model_path = source
    else:
        raise ValueError(f"{source} is not a .keras file or a run folder.")
    run_dir = model_path.parent
    return model_path, run_dir if (run_dir / "config.json").is_file() else None


def load_zoo_model(path: Path):
    """Load a ``.keras`` file saved from a ``keras_resnets`` model mapping images to logits."""
    import keras

    from keras_resnets import ResidualUnit, SharedResidualStack  # registers the zoo's layers

    check_keras_file(path)
    try:
        model = keras.saving.load_model(path, compile=False)
    except Exception as error:  # Keras raises many types for foreign or broken files.
        raise ValueError(f"{path} is not a loadable .keras model: {error}") from None
    is_zoo = isinstance(model, keras.Model) and any(
        isinstance(layer, (ResidualUnit, SharedResidualStack)) for layer in model.layers)
    shape_ok = is_zoo and len(model.inputs) == 1 and len(model.input_shape) == 4 and all(
        model.input_shape[1:]) and len(model.outputs) == 1 and len(model.output_shape) == 2
    if not shape_ok:
        raise ValueError(f"{path} is not a keras_resnets zoo model (residual units, one "
                         f"(H, W, C) image input, one logits output).")
    return model


def choose_standardization(model, model_path: Path, run_dir: Path | None, mean=None,
                           std=None) -> Standardization:
    """The model's own standardisation; for a legacy model, the statistics of the flags or its
    run (``legacy_statistics``)."""
    from keras_resnets import standardization_of

    own = standardization_of(model)
    if own is None:
        chosen = legacy_statistics(model_path, run_dir, mean, std)
        chosen.check(model.input_shape[-1])
        return chosen
    if mean is not None:
        raise ValueError(f"{model_path} standardises its images itself (its standardize layer); "
                         f"--mean/--std are only for legacy models that do not. Drop them.")
    return Standardization(*own, source="the model's own standardize layer")


def legacy_statistics(model_path: Path, run_dir: Path | None, mean=None,
                      std=None) -> Standardization:
    """The statistics a legacy model (no standardisation inside) was trained with: the flags,
    else the ``normalization`` its run's trainer wrote in ``metrics.json``."""
    if mean is not None:
        return Standardization(tuple(map(float, mean)), tuple(map(float, std)), "--mean/--std",
                               legacy=True)
    path = run_dir / "metrics.json" if run_dir is not None else None
    metrics = json.loads(path.read_text()) if path is not None and path.is_file() else {}
    stored = metrics.get("normalization", {})
    if "mean" not in stored or "std" not in stored:
        where = f"{path} has no \"normalization\"" if path else "it is not in a run folder"
        raise ValueError(f"{model_path} is a legacy model that takes standardised images (saved "
                         f"before the standardisation moved into the model), and {where}; pass "
                         f"its training data's --mean and --std (0..255 scale, per channel).")
    return Standardization(tuple(stored["mean"]), tuple(stored["std"]),
                           f"{path} (normalization)", legacy=True)


def graph_inputs(standardization: Standardization):
    """What the serving graph does to the uint8 images before the model: a cast to float32,
    and for a legacy model the standardisation the model lacks (as its exports always did)."""
    import tensorflow as tf

    if not standardization.legacy:
        return lambda images: tf.cast(images, tf.float32)
    mean = tf.constant(standardization.mean, tf.float32)
    std = tf.constant(standardization.std, tf.float32)
    return lambda images: (tf.cast(images, tf.float32) - mean) / std


def serving_archive(model, standardization: Standardization):
    """An ``ExportArchive`` whose ``serving_default`` maps uint8 images to probabilities."""
    import keras
    import tensorflow as tf

    shape = (None, *model.input_shape[1:])
    prepare = graph_inputs(standardization)

    def serve(images):
        # The signature's shape is only advertised: neither a loaded signature nor TF Serving
        # enforces it, and the graph would accept any H, W and a single channel.
        images = tf.ensure_shape(images, shape)
        logits = model(prepare(images), training=False)
        return {OUTPUT_KEY: tf.nn.softmax(tf.cast(logits, tf.float32), axis=-1)}

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serving_default", serve,
                         input_signature=[tf.TensorSpec(shape, tf.uint8, INPUT_KEY)])
    return archive


def backup_of(out: Path) -> Path:
    """Where ``--overwrite`` sets the old version aside: a sibling TF Serving ignores."""
    return out.parent / f".old-{out.name}"


def swap_hook(step: str) -> None:
    """Called before each step of ``install``: the seam where tests simulate a kill."""


def install(staging: Path, out: Path) -> None:
    """Put the complete ``staging`` at ``out``, deleting the old version only once it is replaced.

    Two folders cannot be swapped in one portable call, so the old one is renamed aside first;
    a failed move puts it back at once, a kill between the two renames leaves it at
    ``backup_of(out)`` for the next run's ``recover``.
    """
    backup = backup_of(out)
    if out.exists():
        swap_hook("set old aside")
        out.rename(backup)
    try:
        swap_hook("move new in")
        staging.rename(out)
    except OSError:
        recover(out)
        raise
    swap_hook("delete old")
    shutil.rmtree(backup, ignore_errors=True)


def recover(out: Path) -> None:
    """Finish a killed ``install``: put the old version back if the new one never arrived, else
    delete the old one it did not get to delete (a file too: exports before the check for a
    file at ``out`` set one aside there)."""
    backup = backup_of(out)
    if not backup.exists():
        return
    if out.exists() and backup.is_dir():
        shutil.rmtree(backup)
    elif out.exists():
        backup.unlink()
    else:
        backup.rename(out)
        print(f"Restored {out} from {backup}, set aside by an interrupted --overwrite.")


def export(source, out, mean=None, std=None, overwrite: bool = False,
           verbose: bool = False) -> dict:
    """Write the SavedModel of ``source`` (run folder or ``.keras`` file) to ``out``.

    ``out`` is ``.../NAME/VERSION``. The model is written next to it first and moved into place
    at the end (``install``), so TF Serving, which watches ``NAME/``, never sees a half-written
    version and an old one stays until the new one replaces it.
    Returns the manifest also written to ``out/assets.extra/export.json``.
    """
    source, out = Path(source), Path(out)
    check_out(out, overwrite)
    model_path, run_dir = locate(source)
    if (mean is None) != (std is None):
        raise ValueError("Give both --mean and --std (one value per channel), or neither.")
    model = load_zoo_model(model_path)
    chosen = choose_standardization(model, model_path, run_dir, mean, std)

    staging = out.parent / f".{out.name}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    serving_archive(model, chosen).write_out(str(staging), verbose=verbose)
    manifest = {"source": str(model_path), "model": model.name,
                "input_shape": list(model.input_shape[1:]),
                "num_classes": int(model.output_shape[-1]), "signature": "serving_default",
                "input_key": INPUT_KEY, "input_dtype": "uint8", "output_key": OUTPUT_KEY,
                "mean": list(chosen.mean), "std": list(chosen.std),
                "standardized_by": "serving graph (legacy model)" if chosen.legacy else "model",
                "standardization_source": chosen.source}
    (staging / MANIFEST).parent.mkdir(parents=True, exist_ok=True)
    (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    install(staging, out)
    return manifest


def parse_args(argv=None) -> argparse.Namespace:
    """The flags of ``python -m saved_models.export``."""
    parser = cli.Parser(
        prog="python -m saved_models.export", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 2)[2])
    parser.add_argument("source", help="a run folder (final.keras + config.json) or a .keras file")
    parser.add_argument("--out", required=True, help="saved_models/NAME/VERSION (VERSION numeric)")
    parser.add_argument("--mean", type=float, nargs="+",
                        help="legacy models only: per-channel mean, 0..255 scale")
    parser.add_argument("--std", type=float, nargs="+",
                        help="legacy models only: per-channel std, 0..255 scale")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing version")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    """CLI (``trainers.cli.run_cli``): 0 when exported, 2 for bad input, 1 when writing failed
    (one ``error:`` line, no traceback)."""
    return cli.run_cli(_export_command, argv)


def _export_command(argv) -> None:
    """Export the command line's model and say what the SavedModel takes and returns."""
    args = parse_args(argv)
    try:
        manifest = export(args.source, args.out, args.mean, args.std, args.overwrite)
    except OSError as error:
        raise cli.RunFailed(f"writing {args.out} failed ({error}); an existing version there "
                            f"is kept.") from error
    print(f"Exported {manifest['model']} to {args.out}: signature serving_default, "
          f"{INPUT_KEY} uint8 {manifest['input_shape']} -> {OUTPUT_KEY} "
          f"({manifest['num_classes']} classes).\nStandardisation by the "
          f"{manifest['standardized_by']}: mean {manifest['mean']}, std {manifest['std']} "
          f"({manifest['standardization_source']}).")


if __name__ == "__main__":
    sys.exit(main())
