"""Test accuracy of akamaster/pytorch_resnet_cifar10's ResNets in PyTorch and in the zoo.

    pip install -r benchmarks/requirements.txt       # PyTorch (CPU build)
    python benchmarks/akamaster_accuracy.py CHECKPOINT_DIR --out results/pretrained/akamaster

CHECKPOINT_DIR holds akamaster's original checkpoints (``resnet20-12fca82f.th`` ...; from its
repository's ``pretrained_models/``). For each depth, on the 10,000 official CIFAR-10 test
images (``../shared/data/cifar10/test-png.npz``, lossless, official order; labels from its
``labels.json``), this measures:

- ``pytorch``: the original checkpoint in ``benchmarks/torch_cifar_resnet.py`` (a
  re-implementation of akamaster's ``resnet.py``), images normalised as its ``trainer.py`` does;
- ``zoo``: ``keras_resnets.build(model, weights="akamaster")``, the shipped converted weights
  (``python -m keras_resnets.convert``), on the raw uint8 images;
- ``zoo-same-padding``: the same weights in a zoo model with Keras's ``padding="same"`` strided
  convolutions (the geometry of the zoo before ``strided_padding``), to show what the geometry
  is worth;

and the largest absolute difference between the PyTorch and the zoo logits over all images.
Writes ``OUT.csv`` (one row per model and side) and prints the table.

    python benchmarks/akamaster_accuracy.py CHECKPOINT_DIR \
        --fixture tests/fixtures/akamaster-first16-logits.npz

writes instead the PyTorch logits of the 16 images of ``tests/fixtures/cifar10-test-first16.npz``
for every model: ``tests/test_pretrained.py`` checks the shipped weights against them without
PyTorch.
"""

import argparse
import csv
import importlib.util
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED_CIFAR = REPO.parent / "shared" / "data" / "cifar10"
CHECKPOINTS = {"resnet20": "resnet20-12fca82f.th", "resnet32": "resnet32-d509ac18.th",
               "resnet44": "resnet44-014dd654.th", "resnet56": "resnet56-4bfd9763.th"}
BATCH = 500


def cifar10_test(folder: Path = SHARED_CIFAR) -> tuple[np.ndarray, np.ndarray]:
    """The official test images (10000, 32, 32, 3) uint8 and labels, decoded by the data
    folder's own ``build.py``."""
    spec = importlib.util.spec_from_file_location("cifar10_build", folder / "build.py")
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    images = np.stack(build.images("test-png.npz"))
    labels = np.asarray(json.loads((folder / "labels.json").read_text())["test_labels"])
    assert images.shape == (10000, 32, 32, 3) and labels.shape == (10000,)
    return images, labels


def torch_logits(model_name: str, checkpoint: Path, images: np.ndarray) -> np.ndarray:
    import torch

    sys.path.insert(0, str(REPO / "benchmarks"))
    import torch_cifar_resnet as reference

    model = reference.load_checkpoint(reference.cifar_resnet(int(model_name[6:])), checkpoint)
    with torch.no_grad():
        return np.concatenate([model(reference.preprocess(images[i:i + BATCH])).numpy()
                               for i in range(0, len(images), BATCH)])


def zoo_logits(model, images: np.ndarray) -> np.ndarray:
    return np.asarray(model.predict(images.astype("float32"), batch_size=BATCH, verbose=0))


def measure(checkpoint_dir: Path, models) -> list[dict]:
    import keras_resnets
    from keras_resnets import pretrained

    images, labels = cifar10_test()
    rows = []
    for name in models:
        started = time.time()
        reference = torch_logits(name, checkpoint_dir / CHECKPOINTS[name], images)
        zoo = keras_resnets.build(name, weights="akamaster")
        converted = zoo_logits(zoo, images)
        entry = pretrained.find(name, "akamaster")
        same = keras_resnets.build(name, standardize=entry.standardize,
                                   **{**entry.settings, "strided_padding": "same"})
        same.set_weights(zoo.get_weights())
        legacy = zoo_logits(same, images)
        difference = float(np.abs(converted - reference).max())
        for side, logits in (("pytorch", reference), ("zoo", converted),
                             ("zoo-same-padding", legacy)):
            rows.append({"model": name, "side": side, "test_images": len(labels),
                         "correct": int((logits.argmax(1) == labels).sum()),
                         "test_accuracy": float((logits.argmax(1) == labels).mean()),
                         "max_abs_logit_difference_to_pytorch": (
                             0.0 if side == "pytorch" else
                             difference if side == "zoo" else
                             float(np.abs(legacy - reference).max())),
                         "same_predictions_as_pytorch": int(
                             (logits.argmax(1) == reference.argmax(1)).sum())})
        print(f"{name}: {time.time() - started:.0f} s", file=sys.stderr)
    return rows


def write_fixture(checkpoint_dir: Path, models, out: Path) -> None:
    """The PyTorch logits of the 16 fixture images, one array per model."""
    with np.load(REPO / "tests" / "fixtures" / "cifar10-test-first16.npz") as saved:
        images = saved["images"]
    logits = {name: torch_logits(name, checkpoint_dir / CHECKPOINTS[name], images)
              for name in models}
    np.savez(out, **logits)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint_dir", type=Path)
    parser.add_argument("--models", nargs="+", default=list(CHECKPOINTS),
                        choices=list(CHECKPOINTS))
    parser.add_argument("--out", type=Path, default=None,
                        help="write OUT.csv (e.g. results/pretrained/akamaster)")
    parser.add_argument("--fixture", type=Path, default=None,
                        help="write the PyTorch logits of the 16 fixture images here instead")
    args = parser.parse_args(argv)
    if args.fixture:
        write_fixture(args.checkpoint_dir, args.models, args.fixture)
        return 0
    rows = measure(args.checkpoint_dir, args.models)
    for row in rows:
        print(f"{row['model']:9} {row['side']:17} {100 * row['test_accuracy']:6.2f}% "
              f"({row['correct']}/{row['test_images']})  max |logit - pytorch| "
              f"{row['max_abs_logit_difference_to_pytorch']:.2e}  same argmax "
              f"{row['same_predictions_as_pytorch']}")
    if args.out:
        with open(args.out.with_suffix(".csv"), "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
