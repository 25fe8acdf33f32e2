"""Export a trained zoo model as a TF SavedModel that TF Serving loads, or as TF Lite or ONNX.

    python -m saved_models.export runs/preact110-cifar10 --out saved_models/preact110/1
    python -m saved_models.export runs/preact110-cifar10 --format tflite --out preact110.tflite
    python -m saved_models.export runs/preact110-cifar10 --format tflite --quantize dynamic \
        --out preact110-dynamic.tflite
    python -m saved_models.export runs/preact110-cifar10 --format onnx --out preact110.onnx

The SavedModel (``--format saved_model``, the default) follows TF Serving's layout
(``NAME/VERSION/saved_model.pb`` + ``variables/``).
Its ``serving_default`` signature takes raw ``uint8`` images ``(None, H, W, C)`` under the key
``images`` and returns the class probabilities (softmax of the zoo model's logits) under
``probabilities``. The trainers build the training data's per-channel standardisation (the
preprocessing of He et al. 2016, Sec. 4, the training recipe) into the model as its
``standardize`` layer, so the graph only casts the images to float and calls the model; a model
without it (``keras_resnets.build`` without ``standardize``) is refused (exit 2). The graph
needs neither Keras nor ``keras_resnets`` to run. Images of any other shape than the
model's input are refused (``InvalidArgumentError`` naming the expected shape): the graph would
otherwise broadcast one channel to three and pool any size, returning confident nonsense.
``assets.extra/export.json`` records where the model came from and its standardisation.

TF Lite and ONNX files are converted from that SavedModel (written to a temporary folder
first), so they take and return the same: ``uint8`` images under ``images``, ``probabilities``
out. ``--out`` names the one file that their runtimes load (``.tflite``, ``.onnx``); its manifest
is ``FILE.json`` beside it (format, source, quantisation, standardisation). ``--format tflite``
converts with ``tf.lite.TFLiteConverter`` to float32, or with ``--quantize dynamic`` to
dynamic-range quantisation (int8 weights, float activations; a file about 3.5 times smaller,
probabilities within about 0.003 of the float model's). Its ``serving_default`` signature has
the same keys. The interpreter refuses other shapes in ``set_tensor`` and a strict
``resize_tensor_input``; its signature runner resizes the input to any images, so the graph
converted to TF Lite checks their shape once more (``check_shape_in_lite``): other images fail
at ``invoke`` (``RuntimeError``, the ``CONCATENATION`` node failed to prepare). ``--format
onnx`` converts with tf2onnx (opset 17), an optional extra (``pip install -r
requirements-onnx.txt``); onnxruntime refuses other shapes and dtypes. Keras's own ONNX
export is not used: for models with the ``standardize`` layer its graph has extra inputs.

``--overwrite`` keeps the old version until the new one is complete: the new one is written to a
hidden sibling, the old one renamed aside to ``.old-VERSION``, the new one renamed in, the old one
deleted. A run killed between the two renames leaves only ``.old-VERSION``; the next run puts it
back (and says so) before anything else. A TF Lite or ONNX file and its manifest are each
written beside their place and renamed into it. Exit codes: 0 exported, 2 bad input (one
``error:`` line; ``--format onnx`` without tf2onnx too), 1 the writing or the conversion failed
(the old version is kept).
"""

import argparse
import dataclasses
import json
import os
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from trainers import cli
from trainers.files import check_keras_file

INPUT_KEY, OUTPUT_KEY = "images", "probabilities"
MANIFEST = Path("assets.extra") / "export.json"  # TF Serving's folder for files it ignores
FORMATS = ("saved_model", "tflite", "onnx")
SUFFIXES = {"tflite": ".tflite", "onnx": ".onnx"}  # the file each file format is written to
QUANTIZATIONS = ("none", "dynamic")
ONNX_OPSET = 17  # ONNX 1.12 (2022), widely run; tf2onnx 1.17 converts up to 18
ONNX_INSTALL = ("--format onnx needs the optional tf2onnx, which is not installed: pip install -r "
                "requirements-onnx.txt (or pip install -e '.[onnx]')")


@dataclass(frozen=True)
class ExportConfig:
    """The command line of ``python -m saved_models.export`` (``export`` takes the same)."""

    source: str
    out: str
    format: str = "saved_model"
    quantize: str = "none"
    overwrite: bool = False


HELP = {
    "out": "saved_model: saved_models/NAME/VERSION (VERSION numeric); tflite, onnx: the file "
           "(.tflite, .onnx), its manifest written beside it as FILE.json",
    "format": "saved_model (TF Serving), tflite (TF Lite) or onnx (needs requirements-onnx.txt)",
    "quantize": "tflite only: none (float32) or dynamic (dynamic-range: int8 weights)",
    "overwrite": "replace an existing version or file",
}


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


def locate(source: Path) -> Path:
    """The ``.keras`` file to export: ``source``, or a run folder's ``final.keras``."""
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
    return model_path


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


def model_standardization(model, model_path: Path) -> tuple[tuple, tuple]:
    """The per-channel mean and std (0..255 scale) of the model's own ``standardize`` layer;
    a model without one is refused: the exports take raw images, which it would misread."""
    from keras_resnets import standardization_of

    own = standardization_of(model)
    if own is None:
        raise ValueError(f"{model_path} does not standardise its images (it has no standardize "
                         f"layer), so it would misread the raw uint8 images an export takes; "
                         f"train it with trainers.train, or build it with keras_resnets.build("
                         f"..., standardize=(mean, std)) and load its weights, then export "
                         f"that.")
    return own


def serving_archive(model, lite_shape_check: bool = False):
    """An ``ExportArchive`` whose ``serving_default`` maps uint8 images to probabilities;
    ``lite_shape_check``: with the shape check that survives the TF Lite conversion
    (``check_shape_in_lite``)."""
    import keras
    import tensorflow as tf

    shape = (None, *model.input_shape[1:])

    def serve(images):
        # The signature's shape is only advertised: neither a loaded signature nor TF Serving
        # enforces it, and the graph would accept any H, W and a single channel.
        images = tf.ensure_shape(images, shape)
        if lite_shape_check:
            images = check_shape_in_lite(images)
        logits = model(tf.cast(images, tf.float32), training=False)
        return {OUTPUT_KEY: tf.nn.softmax(tf.cast(logits, tf.float32), axis=-1)}

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serving_default", serve,
                         input_signature=[tf.TensorSpec(shape, tf.uint8, INPUT_KEY)])
    return archive


def check_shape_in_lite(images):
    """``images`` unchanged, through a concatenation with one image of their static shape.

    TF Lite drops ``ensure_shape`` (the input's shape is static to the converter), and its
    signature runner resizes the input to whatever images it is given; its concatenation
    kernel, though, refuses inputs whose other dimensions differ, so other images fail at
    ``invoke`` instead of returning confident nonsense.
    """
    import tensorflow as tf

    one = tf.zeros((1, *images.shape[1:]), images.dtype)
    return tf.concat([images, one], axis=0)[:-1]


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
    delete the old one it did not get to delete."""
    backup = backup_of(out)
    if not backup.exists():
        return
    if out.exists():
        shutil.rmtree(backup)
    else:
        backup.rename(out)
        print(f"Restored {out} from {backup}, set aside by an interrupted --overwrite.")


def check_format(format: str, quantize: str) -> None:
    """Refuse an unknown format or quantisation, and a quantisation of anything but TF Lite."""
    if format not in FORMATS:
        raise ValueError(f"--format must be one of {', '.join(FORMATS)}; got {format!r}.")
    if quantize not in QUANTIZATIONS:
        raise ValueError(f"--quantize must be one of {', '.join(QUANTIZATIONS)}; got "
                         f"{quantize!r}.")
    if quantize != "none" and format != "tflite":
        raise ValueError(f"--quantize {quantize} is for --format tflite only; drop it for "
                         f"--format {format}.")


def check_converter(format: str) -> None:
    """Refuse ``onnx`` without tf2onnx, an optional extra, before any work (its conversion
    comes last), saying how to install it."""
    if format != "onnx":
        return
    try:
        import tf2onnx  # noqa: F401
    except ImportError:
        raise ValueError(ONNX_INSTALL + ".") from None


def check_file_out(out: Path, format: str, overwrite: bool) -> None:
    """Refuse an ``--out`` that is not a ``.tflite``/``.onnx`` file (as ``format`` needs) under
    folders, or a file already there without ``overwrite``."""
    suffix = SUFFIXES[format]
    if out.suffix != suffix:
        raise ValueError(f"--out names the file of --format {format} and must end in {suffix} "
                         f"(e.g. saved_models/preact20{suffix}); got {str(out)!r}.")
    for path in out.parents:
        if path.exists() and not path.is_dir():
            raise ValueError(f"{path} is a file, where --out {out} needs a folder; remove it or "
                             f"choose another --out.")
    if out.is_dir():
        raise ValueError(f"{out} is a folder; --out of --format {format} names a file.")
    if out.exists() and not overwrite:
        raise ValueError(f"{out} already exists; pass --overwrite to replace it or choose "
                         f"another --out.")


def sidecar_of(out: Path) -> Path:
    """The manifest beside a TF Lite or ONNX file: ``model.tflite`` -> ``model.tflite.json``."""
    return out.with_name(out.name + ".json")


def manifest_of(model, model_path: Path, standardization: tuple[tuple, tuple], format: str,
                quantize: str) -> dict:
    """What an export records: the format and quantisation, where the model came from, its
    standardisation, and what the artifact takes and returns."""
    manifest = {"format": format, "quantization": quantize, "source": str(model_path),
                "model": model.name, "input_shape": list(model.input_shape[1:]),
                "num_classes": int(model.output_shape[-1]),
                "signature": None if format == "onnx" else "serving_default",
                "input_key": INPUT_KEY, "input_dtype": "uint8", "output_key": OUTPUT_KEY,
                "mean": list(standardization[0]), "std": list(standardization[1])}
    return manifest | ({"onnx_opset": ONNX_OPSET} if format == "onnx" else {})


def to_tflite(saved_model: Path, quantize: str) -> bytes:
    """The TF Lite flatbuffer of ``saved_model``'s ``serving_default``: float32, or with
    dynamic-range quantisation (weights int8, activations float)."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model), ["serving_default"])
    if quantize == "dynamic":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    return converter.convert()


def to_onnx(saved_model: Path, quantize: str) -> bytes:
    """The ONNX model of ``saved_model``'s ``serving_default`` by tf2onnx, its input and output
    named by the signature's keys (``quantize`` is always ``none``: checked before)."""
    from tf2onnx import convert, tf_loader

    graph_def, inputs, outputs, renamed = tf_loader.from_saved_model(
        str(saved_model), None, None, tag=["serve"], signatures=["serving_default"],
        return_tensors_to_rename=True)
    proto, _ = convert.from_graph_def(graph_def, input_names=inputs, output_names=outputs,
                                      opset=ONNX_OPSET, tensors_to_rename=renamed)
    return proto.SerializeToString()


CONVERTERS = {"tflite": to_tflite, "onnx": to_onnx}


def write_converted(model, manifest: dict, out: Path, verbose: bool = False) -> None:
    """Write the SavedModel to a temporary folder, convert it to ``manifest["format"]`` and put
    the file at ``out``, its manifest beside it (``install_file``)."""
    format, quantize = manifest["format"], manifest["quantization"]
    with tempfile.TemporaryDirectory(prefix="saved_model-") as folder:
        archive = serving_archive(model, lite_shape_check=format == "tflite")
        archive.write_out(folder, verbose=verbose)
        try:
            content = CONVERTERS[format](Path(folder), quantize)
        except Exception as error:  # the converters raise many types, their own too
            raise cli.RunFailed(f"converting {manifest['source']} to {format} failed: "
                                f"{error}") from error
    install_file(out, content, (json.dumps(manifest, indent=2) + "\n").encode())


def install_file(out: Path, content: bytes, manifest: bytes) -> None:
    """Write ``content`` to ``out`` and ``manifest`` to its sidecar, each first beside its place
    and then renamed into it, so a runtime never loads half a file and an old one stays until
    the new one is complete."""
    out.parent.mkdir(parents=True, exist_ok=True)
    files = {out: content, sidecar_of(out): manifest}
    staged = {path: path.with_name(f".{path.name}.partial") for path in files}
    try:
        for path, data in files.items():
            staged[path].write_bytes(data)
        for path in files:
            os.replace(staged[path], path)
    finally:
        for path in staged.values():
            path.unlink(missing_ok=True)


def export(source, out, overwrite: bool = False, verbose: bool = False,
           format: str = "saved_model", quantize: str = "none") -> dict:
    """Export ``source`` (run folder or ``.keras`` file) in ``format`` to ``out``.

    A SavedModel's ``out`` is ``.../NAME/VERSION``. It is written next to it first and moved
    into place at the end (``install``), so TF Serving, which watches ``NAME/``, never sees a
    half-written version and an old one stays until the new one replaces it. A TF Lite or ONNX
    ``out`` is the file (``write_converted``). Returns the manifest also written to
    ``out/assets.extra/export.json`` (SavedModel) or ``out.json`` (the files). A model that
    does not standardise its images itself is refused (``model_standardization``).
    """
    source, out = Path(source), Path(out)
    check_format(format, quantize)
    if format == "saved_model":
        check_out(out, overwrite)
    else:
        check_file_out(out, format, overwrite)
    check_converter(format)
    model_path = locate(source)
    model = load_zoo_model(model_path)
    manifest = manifest_of(model, model_path, model_standardization(model, model_path), format,
                           quantize)
    if format != "saved_model":
        write_converted(model, manifest, out, verbose)
        return manifest

    staging = out.parent / f".{out.name}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    serving_archive(model).write_out(str(staging), verbose=verbose)
    (staging / MANIFEST).parent.mkdir(parents=True, exist_ok=True)
    (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    install(staging, out)
    return manifest


def parse_args(argv=None) -> ExportConfig:
    """The flags of ``python -m saved_models.export`` (``ExportConfig``'s fields)."""
    parser = cli.Parser(
        prog="python -m saved_models.export", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 2)[2])
    parser.add_argument("source", help="a run folder (final.keras + config.json) or a .keras file")
    cli.add_config_flags(parser, ExportConfig, HELP, skip=("source",),
                         custom={"format": {"choices": FORMATS},
                                 "quantize": {"choices": QUANTIZATIONS}})
    return cli.config_from_args(ExportConfig, parser.parse_args(argv))


def main(argv=None) -> int:
    """CLI (``trainers.cli.run_cli``): 0 when exported, 2 for bad input, 1 when writing or
    converting failed (one ``error:`` line, no traceback)."""
    return cli.run_cli(_export_command, argv)


def _export_command(argv) -> None:
    """Export the command line's model and say what the artifact takes and returns."""
    config = parse_args(argv)
    try:
        manifest = export(**dataclasses.asdict(config))
    except OSError as error:
        raise cli.RunFailed(f"writing {config.out} failed ({error}); an existing version there "
                            f"is kept.") from error
    print(summary(manifest, config.out))


def summary(manifest: dict, out) -> str:
    """Two lines on what was exported: where, in which format, what it takes and returns, and
    the model's standardisation."""
    quantized = ", dynamic-range quantised" if manifest["quantization"] == "dynamic" else ""
    entry = f"signature {manifest['signature']}, " if manifest["signature"] else ""
    return (f"Exported {manifest['model']} to {out} ({manifest['format']}{quantized}): {entry}"
            f"{INPUT_KEY} uint8 {manifest['input_shape']} -> {OUTPUT_KEY} "
            f"({manifest['num_classes']} classes).\nStandardisation by the model: mean "
            f"{manifest['mean']}, std {manifest['std']}.")


if __name__ == "__main__":
    sys.exit(main())
