"""Where BN and ReLU sit in a residual unit: the five orderings of He et al. 2016, Table 2.

A unit is ``y = h(x) + F(x)`` followed by ``x' = f(y)``. Each ordering is written as the
sequence of operations around every convolution of the branch ``F`` (``inner`` for all but the
last conv, ``last`` for the last one), the operations after the addition (``after_add``, the
paper's ``f``), and the two network-level ends: what follows the stem convolution (``stem``) and
what precedes global pooling (``head``). Operations are the words ``conv``, ``bn`` and ``relu``.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Ordering:
    """One row of Table 2, as the operations around each convolution of the branch."""

    inner: tuple[str, ...]
    last: tuple[str, ...]
    after_add: tuple[str, ...]
    stem: tuple[str, ...]
    head: tuple[str, ...]

    @property
    def preactivation(self) -> tuple[str, ...]:
        """Operations before the branch's first convolution (empty for post-activation)."""
        return self.inner[: self.inner.index("conv")]


ORDERINGS: dict[str, Ordering] = {
    # Original unit (He et al. 2015): conv-BN-ReLU-conv-BN, add, ReLU.
    "post": Ordering(
        inner=("conv", "bn", "relu"), last=("conv", "bn"), after_add=("relu",),
        stem=("bn", "relu"), head=()),
    # Table 2 (b): conv-BN-ReLU-conv, add, BN, ReLU.
    "bn-after-add": Ordering(
        inner=("conv", "bn", "relu"), last=("conv",), after_add=("bn", "relu"),
        stem=("bn", "relu"), head=()),
    # Table 2 (c): conv-BN-ReLU-conv-BN-ReLU, add; nothing after the addition.
    "relu-before-add": Ordering(
        inner=("conv", "bn", "relu"), last=("conv", "bn", "relu"), after_add=(),
        stem=("bn", "relu"), head=()),
    # Table 2 (d): ReLU-conv-BN-ReLU-conv-BN, add. The stem's BN feeds the first ReLU.
    "relu-preact": Ordering(
        inner=("relu", "conv", "bn"), last=("relu", "conv", "bn"), after_add=(),
        stem=("bn",), head=("relu",)),
    # Table 2 (e), full pre-activation: BN-ReLU-conv-BN-ReLU-conv, add. The extra BN-ReLU
    # after the last unit sits in the head (Sec. 4.1).
    "preact": Ordering(
        inner=("bn", "relu", "conv"), last=("bn", "relu", "conv"), after_add=(),
        stem=(), head=("bn", "relu")),
}


def get_ordering(name: str) -> Ordering:
    """The ordering called ``name``; a ``ValueError`` lists the accepted names."""
    if name not in ORDERINGS:
        raise ValueError(
            f"Unknown unit ordering {name!r}; accepted: {', '.join(sorted(ORDERINGS))}.")
    return ORDERINGS[name]
