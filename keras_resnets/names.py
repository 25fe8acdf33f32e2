"""The grammar of the zoo's model names, in one place: ``{family}{depth}[-{widen}][-{variant}]``
(``resnet110``, ``wrn28-10``, ``resnet110-gate-exclusive``). ``format_name`` writes a name and
``parse_name`` reads one back; what the parts mean (families, variants, depths that fit) is the
registry's business (``keras_resnets.registry``)."""

import re
from dataclasses import dataclass

FAMILY_NAMES = ("resnet", "preact", "wrn")
WIDENED = ("wrn",)  # families whose names carry a width multiplier
PATTERN = re.compile(r"(resnet|preact|wrn)(\d+)((?:-\d+)?)(?:-(.+))?")


@dataclass(frozen=True)
class ModelName:
    """The parts of a zoo name; ``widen`` is 1 for families without a width multiplier."""

    family: str
    depth: int
    widen: int = 1
    variant: str = ""

    def __str__(self) -> str:
        return format_name(self.family, self.depth, self.widen, self.variant)


def format_name(family: str, depth: int, widen: int | None = None, variant: str = "") -> str:
    """``resnet`` 110 -> ``resnet110``; ``wrn`` 28, 10 -> ``wrn28-10``; a variant is appended."""
    name = f"{family}{depth}" + (f"-{widen}" if family in WIDENED else "")
    return f"{name}-{variant}" if variant else name


def parse_name(name: str) -> ModelName | None:
    """The parts of ``name``, or ``None`` when it does not follow the grammar (the registry
    turns that into an error that lists what is accepted)."""
    match = PATTERN.fullmatch(name)
    if not match:
        return None
    family, depth, widen, variant = match.groups()
    return ModelName(family, int(depth), int(widen[1:]) if widen else 1, variant or "")


def has_widen(name: str) -> bool:
    """Whether ``name`` spells a width multiplier (``wrn28-10``: yes; ``resnet20``: no)."""
    match = PATTERN.fullmatch(name)
    return bool(match and match.group(3))
