"""Pretrained weights shipped with the package: ``build("preact20", weights="cifar10")``.

Each entry records how the weights were made (data, recipe, epochs, hardware) and what they
score, so a user can judge them; the model they load into takes raw 0..255 images (the
training data's standardisation is its first layer). Files live in ``keras_resnets/weights/``.
"""

from dataclasses import dataclass
from pathlib import Path

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"


@dataclass(frozen=True)
class Pretrained:
    """One shipped weights file and how it was trained."""

    model: str
    dataset: str
    num_classes: int
    input_shape: tuple
    standardize: tuple  # (mean, std) per channel of the training images, 0..255 scale
    test_accuracy: float  # final epoch, on the dataset's full test split
    trained: str  # data, recipe, epochs, backend and hardware; the command is in results/

    @property
    def path(self) -> Path:
        """The weights file inside the package (``keras_resnets/weights/``)."""
        return WEIGHTS_DIR / f"{self.model}-{self.dataset}.weights.h5"


# The 50,000 training images of ../shared/data/cifar10 (4,000 lossless, 46,000 JPEG copies at
# quality 75): their per-channel statistics, computed by trainers.array_fit.
CIFAR10_TRAIN_STANDARDIZE = ((125.27184295654297, 122.933837890625, 113.8616714477539),
                             (62.572052001953125, 61.92380905151367, 66.48088073730469))
PRETRAINED: dict[tuple[str, str], Pretrained] = {
    ("preact20", "cifar10"): Pretrained(
        "preact20", "cifar10", 10, (32, 32, 3), CIFAR10_TRAIN_STANDARDIZE, 0.8915,
        "He et al. 2016 recipe shortened to 153 epochs (59,823 iterations, batch 128, "
        "warm-up and drops at the same fractions) by a 290 s budget; all 50,000 training images "
        "of ../shared/data/cifar10; trainers.array_fit on Keras 3.15.1/JAX 0.11.2, one H200; "
        "results/pretrained/runs.csv"),
    ("resnet20", "cifar10"): Pretrained(
        "resnet20", "cifar10", 10, (32, 32, 3), CIFAR10_TRAIN_STANDARDIZE, 0.8897,
        "He et al. 2016 recipe at its full length, 164 epochs (64,124 iterations, "
        "batch 128); all 50,000 training images of ../shared/data/cifar10; trainers.array_fit "
        "on Keras 3.15.1/JAX 0.11.2, one H200; results/pretrained/runs.csv"),
}


def find(model: str, weights: str) -> Pretrained:
    """The shipped weights ``weights`` of ``model``; a ``ValueError`` lists what exists."""
    entry = PRETRAINED.get((model, weights))
    if entry is None:
        available = ", ".join(f"{m} (weights={d!r})" for m, d in sorted(PRETRAINED)) or "none"
        raise ValueError(f"No pretrained weights {weights!r} for {model!r}; available: "
                         f"{available}. Pass weights=None for random initialisation.")
    return entry


def check_compatible(entry: Pretrained, num_classes: int, input_shape: tuple,
                     overrides: dict) -> None:
    """Weights fit only the architecture they were trained with."""
    problems = []
    if num_classes != entry.num_classes:
        problems.append(f"num_classes={num_classes} (they have {entry.num_classes})")
    if tuple(input_shape) != tuple(entry.input_shape):
        problems.append(f"input_shape={tuple(input_shape)} (they take {entry.input_shape})")
    if overrides:
        problems.append(f"overrides {sorted(overrides)} (they fit the default architecture)")
    if problems:
        raise ValueError(f"The {entry.dataset!r} weights of {entry.model!r} do not fit "
                         f"{'; '.join(problems)}. Build without weights=, or without these.")
