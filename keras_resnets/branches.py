"""The convolutions of a residual branch F: basic, bottleneck and one-conv (He et al.).

A branch is only a list of convolution shapes; which BN/ReLU surround them is the ordering's
business (``orderings.py``), so every ordering combines with every branch.
"""

from dataclasses import dataclass

BOTTLENECK_EXPANSION = 4  # Sec. 4 / He et al. 2015: 1x1 reduce, 3x3, 1x1 expand x4.


@dataclass(frozen=True)
class ConvShape:
    """One convolution of a branch: output channels, square kernel size and stride."""

    filters: int
    kernel_size: int
    strides: int


def _basic(filters: int, strides: int) -> list[ConvShape]:
    """Two 3x3 convolutions; the first carries the unit's stride."""
    return [ConvShape(filters, 3, strides), ConvShape(filters, 3, 1)]


def _bottleneck(filters: int, strides: int) -> list[ConvShape]:
    """1x1 reduce to filters/4, 3x3 (with the stride), 1x1 expand back to ``filters``."""
    width = filters // BOTTLENECK_EXPANSION
    return [ConvShape(width, 1, 1), ConvShape(width, 3, strides), ConvShape(filters, 1, 1)]


def _one_conv(filters: int, strides: int) -> list[ConvShape]:
    """One 3x3 convolution per unit: the first row of Table 3 ("ResNet-110, 1-layer skip")."""
    return [ConvShape(filters, 3, strides)]


# ``1conv`` as the registry variant that selects it; "single" is Jastrzebski et al.'s
# single-representation network (j18-single), never a branch.
BRANCHES = {"basic": _basic, "bottleneck": _bottleneck, "1conv": _one_conv}

CONVS_PER_UNIT = {"basic": 2, "bottleneck": 3, "1conv": 1}


def branch_convs(branch: str, filters: int, strides: int) -> list[ConvShape]:
    """The convolution shapes of ``branch`` for a unit of output width ``filters``."""
    if branch not in BRANCHES:
        raise ValueError(
            f"Unknown branch {branch!r}; accepted: {', '.join(sorted(BRANCHES))}.")
    if branch == "bottleneck" and filters % BOTTLENECK_EXPANSION:
        raise ValueError(
            f"A bottleneck unit needs filters divisible by {BOTTLENECK_EXPANSION}; got {filters}.")
    return BRANCHES[branch](filters, strides)
