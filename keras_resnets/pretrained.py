"""Pretrained weights shipped with the package: ``build("preact20", weights="cifar10")``.

Each entry records how the weights were made (data, recipe, epochs, hardware) and what they
score, so a user can judge them; the model they load into takes raw 0..255 images (the
training data's standardisation is its first layer). Files live in ``keras_resnets/weights/``.

Each entry also records the builder settings its weights need (``settings``), the geometry
above all: the ``cifar10`` weights were trained here before the zoo padded strided convs
symmetrically, so they load into models built with ``strided_padding="same"``; the
``akamaster`` weights are ported from PyTorch (akamaster/pytorch_resnet_cifar10, BSD-2-Clause,
``weights/LICENSE-akamaster.txt``; converted by ``keras_resnets.convert``) and need the
papers' symmetric padding and option A's centred zero channels. ``build(name, weights=...)``
applies them. Built with another class count or without the classifier
(``build("preact20", weights="cifar10", num_classes=2)``, ``include_top=False``), a model
takes every layer that fits from the weights and starts its classifier fresh;
``model.pretrained_layers`` names the layers that took them.
"""

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import h5py

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"


@dataclass(frozen=True)
class Pretrained:
    """One shipped weights file and how it was made."""

    model: str
    weights: str  # the name ``build(model, weights=...)`` takes
    dataset: str
    num_classes: int
    input_shape: tuple
    standardize: tuple  # (mean, std) per channel of the images, 0..255 scale
    test_accuracy: float  # of these weights on the dataset's full test split, measured here
    epochs: int
    recipe: str  # optimiser, schedule, batch size and augmentation
    training_data: str
    trainer: str  # who trained them, with which software on which hardware
    record: str  # where the run's command and numbers are (results/)
    settings: dict = field(default_factory=dict)  # builder settings the weights need
    source: str = "trained here"  # or where they were ported from

    def metadata(self) -> dict:
        """How the weights were made and what they score, as plain data (``describe``)."""
        return {"dataset": self.dataset, "num_classes": self.num_classes,
                "test_accuracy": self.test_accuracy, "epochs": self.epochs,
                "recipe": self.recipe, "training_data": self.training_data,
                "trainer": self.trainer, "record": self.record, "source": self.source,
                "settings": dict(self.settings)}

    @property
    def path(self) -> Path:
        """The weights file inside the package (``keras_resnets/weights/``)."""
        return WEIGHTS_DIR / f"{self.model}-{self.weights}.weights.h5"


# The 50,000 training images of ../shared/data/cifar10 (4,000 lossless, 46,000 JPEG copies at
# quality 75): their per-channel statistics, computed by trainers.array_fit.
CIFAR10_TRAIN_STANDARDIZE = ((125.27184295654297, 122.933837890625, 113.8616714477539),
                             (62.572052001953125, 61.92380905151367, 66.48088073730469))
# Trained before the zoo padded strided convs symmetrically: Keras's "same" geometry.
TRAINED_HERE_SETTINGS = {"strided_padding": "same"}
# akamaster/pytorch_resnet_cifar10's trainer.py: torchvision's Normalize(mean=(0.485, 0.456,
# 0.406), std=(0.229, 0.224, 0.225)) on images scaled to [0, 1], here on the 0..255 scale.
AKAMASTER_STANDARDIZE = (tuple(255.0 * m for m in (0.485, 0.456, 0.406)),
                         tuple(255.0 * s for s in (0.229, 0.224, 0.225)))
# PyTorch's padding=1 convolutions and option A's zeros on both sides (its BasicBlock).
AKAMASTER_SETTINGS = {"strided_padding": "symmetric", "pad_placement": "centred"}
AKAMASTER_SOURCE = ("ported from akamaster/pytorch_resnet_cifar10 (Yerlan Idelbayev, "
                    "BSD-2-Clause, keras_resnets/weights/LICENSE-akamaster.txt), not trained here")
# Test accuracy of the converted weights on the 10,000 official CIFAR-10 test images, measured
# here in the zoo (and identical in PyTorch with the original weights):
# results/pretrained/akamaster.md.
AKAMASTER_ACCURACY = {"resnet20": 0.9173, "resnet32": 0.9263, "resnet44": 0.9310,
                      "resnet56": 0.9339}
HE2016_CROPS = "random crops of raw images padded with black (0), not the mean colour"
CIFAR10_HERE = ("all 50,000 training images of ../shared/data/cifar10 (4,000 lossless, "
                "46,000 JPEG copies at quality 75)")
TRAINER_HERE = "trainers.array_fit on Keras 3.15.1/JAX 0.11.2, one H200"
PRETRAINED: dict[tuple[str, str], Pretrained] = {
    ("preact20", "cifar10"): Pretrained(
        "preact20", "cifar10", "cifar10", 10, (32, 32, 3), CIFAR10_TRAIN_STANDARDIZE, 0.8915,
        153, "He et al. 2016 recipe shortened to 153 epochs (59,823 iterations, batch 128, "
        f"warm-up and drops at the same fractions) by a 290 s budget; {HE2016_CROPS}",
        CIFAR10_HERE, TRAINER_HERE, "results/pretrained/runs.csv", TRAINED_HERE_SETTINGS),
    ("resnet20", "cifar10"): Pretrained(
        "resnet20", "cifar10", "cifar10", 10, (32, 32, 3), CIFAR10_TRAIN_STANDARDIZE, 0.8897,
        164, "He et al. 2016 recipe at its full length, 164 epochs (64,124 iterations, "
        f"batch 128); {HE2016_CROPS}", CIFAR10_HERE, TRAINER_HERE,
        "results/pretrained/runs.csv", TRAINED_HERE_SETTINGS),
    **{(model, "akamaster"): Pretrained(
        model, "akamaster", "cifar10", 10, (32, 32, 3), AKAMASTER_STANDARDIZE, accuracy,
        200, "SGD momentum 0.9, weight decay 1e-4, batch 128, learning rate 0.1 divided by 10 "
        "at epochs 100 and 150, flip and 4-pixel crop (its trainer.py)",
        "all 50,000 official CIFAR-10 training images",
        "Yerlan Idelbayev in PyTorch; the checkpoints of its pretrained_models/, converted "
        "with keras_resnets.convert", "results/pretrained/akamaster.md",
        AKAMASTER_SETTINGS, AKAMASTER_SOURCE)
      for model, accuracy in AKAMASTER_ACCURACY.items()},
}


def find(model: str, weights: str) -> Pretrained:
    """The shipped weights ``weights`` of ``model``; a ``ValueError`` lists what exists."""
    entry = PRETRAINED.get((model, weights))
    if entry is None:
        available = ", ".join(f"{m} (weights={d!r})" for m, d in sorted(PRETRAINED)) or "none"
        raise ValueError(f"No pretrained weights {weights!r} for {model!r}; available: "
                         f"{available}. Pass weights=None for random initialisation, or the path "
                         f"of a .weights.h5 file.")
    return entry


_UNSET = object()


def check_compatible(entry: Pretrained, input_shape: tuple, overrides: dict) -> None:
    """Weights fit only the architecture they were trained with: the same settings and
    channels (any image size: the classifier pools globally; any class count: it starts
    fresh)."""
    problems = []
    if tuple(input_shape)[-1:] != tuple(entry.input_shape)[-1:]:
        problems.append(f"input_shape={tuple(input_shape)} (they take "
                        f"{entry.input_shape[-1]} channels)")
    other = sorted(k for k, v in overrides.items() if entry.settings.get(k, _UNSET) != v)
    if other:
        settings = "".join(f", {k}={v!r}" for k, v in entry.settings.items())
        problems.append(f"overrides {other} (they fit the architecture {entry.model}{settings})")
    if problems:
        raise ValueError(f"The {entry.weights!r} weights of {entry.model!r} do not fit "
                         f"{'; '.join(problems)}. Build without weights=, or without these.")


def is_weights_file(weights) -> bool:
    """``weights`` names a file (a path object, or a string ending in ``.weights.h5``), not
    shipped weights."""
    return isinstance(weights, os.PathLike) or (
        isinstance(weights, str) and weights.endswith(".weights.h5"))


def load_file(model, path) -> tuple[str, ...]:
    """Load the ``.weights.h5`` file ``path`` whole into ``model``; the names of its layers
    with weights. A file whose weights are not exactly those the model holds (another model,
    class count or top; Keras would load a file with more weights in part, silently) is a
    one-line ``ValueError``."""
    path = Path(path)
    if not path.name.endswith(".weights.h5") or not path.is_file():
        raise ValueError(f"weights={str(path)!r} is not a .weights.h5 file; weights are None, "
                         f"a shipped name ({', '.join(sorted({w for _, w in PRETRAINED}))}) or "
                         f"the path of a .weights.h5 file.")
    with tempfile.TemporaryDirectory() as folder:
        own = Path(folder) / "model.weights.h5"
        model.save_weights(own)
        difference = _layout_difference(_weight_layout(path), _weight_layout(own))
    if difference:
        raise ValueError(f"The weights {str(path)!r} do not fit {model.name!r} as built: "
                         f"{difference}. Build it with the settings the file was saved from "
                         f"(name, num_classes, include_top, overrides).")
    model.load_weights(path)
    return tuple(layer.name for layer in model.layers if layer.weights)


def _weight_layout(path: Path) -> dict:
    """Each weight array of a ``.weights.h5`` file: its path inside the file -> its shape."""
    layout = {}

    def record(name, item):
        if isinstance(item, h5py.Dataset):
            layout[name] = item.shape

    with h5py.File(path, "r") as file:
        file.visititems(record)
    return layout


def _layout_difference(found: dict, expected: dict) -> str:
    """What differs between a file's weights and the model's, first difference first; ``""``
    where they are the same."""
    problems = [f"{key} is {found[key]} in the file, {expected[key]} in the model"
                for key in expected if key in found and found[key] != expected[key]]
    problems += [f"the file lacks {key}" for key in expected if key not in found]
    problems += [f"the model has no {key}" for key in found if key not in expected]
    if not problems:
        return ""
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return f"{problems[0]}{more}; the file holds {len(found)} weight arrays, the model " \
           f"{len(expected)}"


def copy_fitting_weights(source, target) -> tuple[str, ...]:
    """Give every layer of ``target`` with weights those of ``source``'s layer of the same
    name where their shapes are the same; the names of the layers that took them (a
    classifier of another class count keeps its fresh initialisation)."""
    names = {layer.name for layer in source.layers}
    copied = []
    for layer in target.layers:
        if not layer.weights or layer.name not in names:
            continue
        weights = source.get_layer(layer.name).get_weights()
        if [w.shape for w in weights] == [tuple(w.shape) for w in layer.weights]:
            layer.set_weights(weights)
            copied.append(layer.name)
    return tuple(copied)
