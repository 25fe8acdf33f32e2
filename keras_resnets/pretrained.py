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
applies them.
"""

from dataclasses import dataclass, field
from pathlib import Path

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"


@dataclass(frozen=True)
class Pretrained:
    """One shipped weights file and how it was trained."""

    model: str
    weights: str  # the name ``build(model, weights=...)`` takes
    dataset: str
    num_classes: int
    input_shape: tuple
    standardize: tuple  # (mean, std) per channel of the images, 0..255 scale
    test_accuracy: float  # on the dataset's full test split, measured here
    trained: str  # data, recipe, epochs, backend and hardware; the command is in results/
    settings: dict = field(default_factory=dict)  # builder settings the weights need
    source: str = "trained here"  # or where they were ported from

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
PRETRAINED: dict[tuple[str, str], Pretrained] = {
    ("preact20", "cifar10"): Pretrained(
        "preact20", "cifar10", "cifar10", 10, (32, 32, 3), CIFAR10_TRAIN_STANDARDIZE, 0.8915,
        "He et al. 2016 recipe shortened to 153 epochs (59,823 iterations, batch 128, "
        "warm-up and drops at the same fractions) by a 290 s budget; random crops of raw images "
        "padded with black (0), not the mean colour; all 50,000 training images "
        "of ../shared/data/cifar10; trainers.array_fit on Keras 3.15.1/JAX 0.11.2, one H200; "
        "results/pretrained/runs.csv", TRAINED_HERE_SETTINGS),
    ("resnet20", "cifar10"): Pretrained(
        "resnet20", "cifar10", "cifar10", 10, (32, 32, 3), CIFAR10_TRAIN_STANDARDIZE, 0.8897,
        "He et al. 2016 recipe at its full length, 164 epochs (64,124 iterations, "
        "batch 128); random crops of raw images padded with black (0), not the mean colour; "
        "all 50,000 training images of ../shared/data/cifar10; trainers.array_fit "
        "on Keras 3.15.1/JAX 0.11.2, one H200; results/pretrained/runs.csv",
        TRAINED_HERE_SETTINGS),
    **{(model, "akamaster"): Pretrained(
        model, "akamaster", "cifar10", 10, (32, 32, 3), AKAMASTER_STANDARDIZE, accuracy,
        "by Yerlan Idelbayev in PyTorch: all 50,000 official CIFAR-10 training images, SGD "
        "momentum 0.9, weight decay 1e-4, batch 128, learning rate 0.1 divided by 10 at "
        "epochs 100 and 150, 200 epochs, flip and 4-pixel crop (its trainer.py); the "
        "checkpoints of its pretrained_models/, converted with keras_resnets.convert; "
        "results/pretrained/akamaster.md",
        AKAMASTER_SETTINGS, AKAMASTER_SOURCE)
      for model, accuracy in AKAMASTER_ACCURACY.items()},
}


def find(model: str, weights: str) -> Pretrained:
    """The shipped weights ``weights`` of ``model``; a ``ValueError`` lists what exists."""
    entry = PRETRAINED.get((model, weights))
    if entry is None:
        available = ", ".join(f"{m} (weights={d!r})" for m, d in sorted(PRETRAINED)) or "none"
        raise ValueError(f"No pretrained weights {weights!r} for {model!r}; available: "
                         f"{available}. Pass weights=None for random initialisation.")
    return entry


_UNSET = object()


def check_compatible(entry: Pretrained, num_classes: int, input_shape: tuple,
                     overrides: dict) -> None:
    """Weights fit only the architecture they were trained with."""
    problems = []
    if num_classes != entry.num_classes:
        problems.append(f"num_classes={num_classes} (they have {entry.num_classes})")
    if tuple(input_shape) != tuple(entry.input_shape):
        problems.append(f"input_shape={tuple(input_shape)} (they take {entry.input_shape})")
    other = sorted(k for k, v in overrides.items() if entry.settings.get(k, _UNSET) != v)
    if other:
        problems.append(f"overrides {other} (they fit the architecture "
                        f"{entry.model}{''.join(f', {k}={v!r}' for k, v in entry.settings.items())})")
    if problems:
        raise ValueError(f"The {entry.weights!r} weights of {entry.model!r} do not fit "
                         f"{'; '.join(problems)}. Build without weights=, or without these.")
