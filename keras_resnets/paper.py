"""Every number the zoo quotes from the papers, in one place: He et al. 2016, "Identity Mappings
in Deep Residual Networks" (Tables 1-3, CIFAR parameter counts), and Jastrzębski et al. 2018,
"Residual Connections Encourage Iterative Inference" (architectures, sharing Table 1).

Errors are CIFAR test error (%); ``None`` marks a row the paper reports as failing to train.
Rows name a zoo model plus the overrides that make the row, so the ablation runner, ``describe``
and the tests read the same facts.
"""

from dataclasses import dataclass, field

from keras_resnets.names import format_name


@dataclass(frozen=True)
class PaperResult:
    """One error of He et al. 2016's Tables 1-3: the zoo model that makes the row and its error."""
    table: int  # He et al. 2016, Table 1, 2 or 3
    case: str
    base: str  # "resnet" or "preact"
    depth: int
    variant: str = ""
    overrides: dict = field(default_factory=dict)
    dataset: str = "cifar10"
    error: float | None = None

    def model_name(self, depth: int | None = None) -> str:
        """The zoo name of this row, at the paper's depth or at ``depth``."""
        return format_name(self.base, depth or self.depth, variant=self.variant)


def _row(table, case, base, depth, variant="", error=None, dataset="cifar10", **overrides):
    return PaperResult(table, case, base, depth, variant, overrides, dataset, error)


RESULTS: tuple[PaperResult, ...] = (
    # Table 1: shortcut variants on ResNet-110 with original units, CIFAR-10.
    _row(1, "original", "resnet", 110, error=6.61),
    _row(1, "constant scaling 0 / 1", "resnet", 110, "scale0"),
    _row(1, "constant scaling 0.5 / 1", "resnet", 110, "scale0.5"),
    _row(1, "constant scaling 0.5 / 0.5", "resnet", 110, "scale0.5-both", 12.35),
    _row(1, "exclusive gating, b_g = 0 (paper: 0 to -5 fail)", "resnet", 110, "gate-exclusive",
         gate_bias=0.0),
    _row(1, "exclusive gating, b_g = -6", "resnet", 110, "gate-exclusive", 8.70),
    _row(1, "exclusive gating, b_g = -7", "resnet", 110, "gate-exclusive", 9.81, gate_bias=-7.0),
    _row(1, "shortcut-only gating, b_g = 0", "resnet", 110, "gate-shortcut", 12.86,
         gate_bias=0.0),
    _row(1, "shortcut-only gating, b_g = -6", "resnet", 110, "gate-shortcut", 6.91),
    _row(1, "1x1 conv shortcut", "resnet", 110, "conv-shortcut", 12.22),
    _row(1, "dropout shortcut (0.5)", "resnet", 110, "dropout-shortcut"),
    # Table 2: activation placement, CIFAR-10, at two depths.
    *(row for depth, errors in ((110, (6.61, 8.17, 7.84, 6.71, 6.37)),
                                (164, (5.93, 6.50, 6.14, 5.91, 5.46)))
      for row in (
          _row(2, "original (post-activation)", "resnet", depth, error=errors[0]),
          _row(2, "BN after addition", "resnet", depth, "bn-after-add", errors[1]),
          _row(2, "ReLU before addition", "resnet", depth, "relu-before-add", errors[2]),
          _row(2, "ReLU-only pre-activation", "resnet", depth, "relu-preact", errors[3]),
          _row(2, "full pre-activation", "preact", depth, error=errors[4]))),
    # Table 3: original vs pre-activation.
    _row(3, "ResNet-110, one conv per unit: original", "resnet", 110, "1conv", 9.90),
    _row(3, "ResNet-110, one conv per unit: pre-activation", "preact", 110, "1conv", 8.91),
    *(_row(3, f"ResNet-{depth}: {label}", base, depth, error=error, dataset=dataset)
      for dataset, depth, base, label, error in (
          ("cifar10", 110, "resnet", "original", 6.61),
          ("cifar10", 110, "preact", "pre-activation", 6.37),
          ("cifar10", 164, "resnet", "original", 5.93),
          ("cifar10", 164, "preact", "pre-activation", 5.46),
          ("cifar10", 1001, "resnet", "original", 7.61),
          ("cifar10", 1001, "preact", "pre-activation", 4.92),
          ("cifar100", 164, "resnet", "original", 25.16),
          ("cifar100", 164, "preact", "pre-activation", 24.33),
          ("cifar100", 1001, "resnet", "original", 27.82),
          ("cifar100", 1001, "preact", "pre-activation", 22.71))),
)


@dataclass(frozen=True)
class PaperParameters:
    """A parameter count as the paper prints it, and the counting that reproduces it.

    He et al. 2015 (ResNet-20 ... 1202) use parameter-free zero-padding shortcuts ("option A",
    Sec. 4.2) and count every trainable parameter, BN's scale and shift included. He et al. 2016
    (ResNet-164, 1001) use 1x1 projections; their 10.2M for ResNet-1001 matches the conv and
    dense weights alone (every trainable parameter gives 10.33M), so that is how it is counted.
    Jastrzebski et al. 2018 print exact counts that are Keras's ``count_params()``: conv biases
    and all four BN vectors (gamma, beta, moving mean, moving variance).
    """

    figure: str  # as printed, e.g. "1.7M" or "1,742,762"
    overrides: dict = field(default_factory=dict)
    include_batchnorm: bool = True
    include_statistics: bool = False  # BN's moving mean and variance count too


PARAMETERS: dict[str, PaperParameters] = {  # the zoo's defaults: zero-padding for basic units
    "resnet20": PaperParameters("0.27M"),
    "resnet32": PaperParameters("0.46M"),
    "resnet44": PaperParameters("0.66M"),
    "resnet56": PaperParameters("0.85M"),
    "resnet110": PaperParameters("1.7M"),
    "resnet1202": PaperParameters("19.4M"),
    "preact164": PaperParameters("1.7M", include_batchnorm=False),
    "preact1001": PaperParameters("10.2M", include_batchnorm=False),
    # Jastrzebski et al. 2018, their architectures (experimental setup), counted exactly.
    "j18-resnet110": PaperParameters("1,742,762", include_statistics=True),
    "j18-single": PaperParameters("1,829,210", include_statistics=True),
    "j18-avgpool": PaperParameters("12,201,310", include_statistics=True),
    "j18-wrn": PaperParameters("45,732,842", include_statistics=True),
}

# Jastrzebski et al. 2018, Table 1 (sharing): parameter counts as ranges (thousands, inclusive),
# as printed. The zoo's j18 networks fall inside them counting trainable parameters
# (conv biases, BN gamma and beta; not BN's moving statistics).
SHARING_PARAMETER_RANGES: dict[str, tuple[int, int]] = {
    "j18-resnet32": (467, 473),
    "j18-resnet38": (565, 571),
    "j18-resnet110-ubn": (570, 576),
    "j18-resnet146-ubn": (573, 579),
    "j18-resnet182-ubn": (576, 581),
    "j18-resnet56": (857, 863),
    "j18-resnet110": (1734, 1740),
}


@dataclass(frozen=True)
class ReferenceError:
    """A CIFAR test error (%) reported outside He et al. 2016's Tables 1-3, with the mean and
    standard deviation over runs where the paper gives them."""

    source: str
    model: str  # zoo name
    dataset: str
    error: float
    mean: float | None = None
    std: float | None = None
    note: str = ""


REFERENCE_ERRORS: tuple[ReferenceError, ...] = (
    # He et al. 2015, Table 6 (CIFAR-10, option A shortcuts, 164 epochs).
    *(ReferenceError("He et al. 2015, Table 6", f"resnet{depth}", "cifar10", error)
      for depth, error in ((20, 8.75), (32, 7.51), (44, 7.17), (56, 6.97), (1202, 7.93))),
    ReferenceError("He et al. 2015, Table 6", "resnet110", "cifar10", 6.43, 6.61, 0.16,
                   "best of 5 runs; mean and std over the 5"),
    # He et al. 2016, Table 4 (ResNet-1001 with pre-activation units, 5 runs each).
    ReferenceError("He et al. 2016, Table 4", "preact1001", "cifar10", 4.92, 4.89, 0.14,
                   "mini-batch 128"),
    ReferenceError("He et al. 2016, Table 4", "preact1001", "cifar10", 4.62, 4.69, 0.20,
                   "mini-batch 64"),
    ReferenceError("He et al. 2016, Table 4", "preact1001", "cifar100", 22.71, 22.68, 0.22,
                   "mini-batch 128"),
)


def reference_errors(name: str) -> list[ReferenceError]:
    """He et al. 2015's and He et al. 2016 Table 4's errors for exactly the model ``name``."""
    return [row for row in REFERENCE_ERRORS if row.model == name]


def results_for(name: str) -> list[PaperResult]:
    """The paper rows whose model is exactly ``name`` (no overrides)."""
    return [row for row in RESULTS if row.model_name() == name and not row.overrides]
